"""The curated data as Airflow Assets: what ``publish`` announces and what a consumer reads.

Every source's curated dataset is one Asset whose URI is the dataset's lineage name
(:func:`etl.lineage.datasets.curated_dataset_uri`: ``s3://bucket/prefix/curated/source=<slug>``
or ``file:///srv/store/curated/source=<slug>``). The sources are only known at run time, so the
``publish`` task declares the alias :data:`CURATED_ALIAS` as its outlet and, once the partition is
in ``curated/``, adds one event to the source's asset through it (:func:`emit_published`), its
``extra`` being :class:`PublishedEvent`. A failed gate never reaches ``publish``, so a breach
emits nothing. A DAG scheduled on the alias (``dags/tweetpipe_curated_summary.py``) runs after
every publish; :func:`write_summary` is what its task does per event.

Nothing heavy is imported at module level: the DAG files import :data:`CURATED_ALIAS` at parse time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from etl.payloads import PublishPayload
    from etl.storage.store import Store

CURATED_ALIAS = "tweetpipe_curated"
"""The asset alias ``publish`` emits its events through, and consumers are scheduled on."""
_TOP_LANGUAGES = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PublishedEvent(TypedDict):
    """The ``extra`` of a curated asset event: what was published, for whom to trust it.

    Attributes:
        source: the source's slug.
        store: the store's URL, without credentials.
        curated_key: the published CSV's key.
        interval_start: the data interval's start, ISO 8601 UTC.
        interval_end: its end (exclusive).
        rows: curated rows.
        quarantined: rows the gate rejected (in ``quarantine_key``).
        quarantine_key: where they are.
        sha256: digest of the published bytes.
        contract: the contract's name.
        contract_version: the contract's version the partition was built and audited with.
    """

    source: str
    store: str
    curated_key: str
    interval_start: str
    interval_end: str
    rows: int
    quarantined: int
    quarantine_key: str
    sha256: str
    contract: str
    contract_version: str


def published_event(published: PublishPayload) -> tuple[str, PublishedEvent]:
    """The asset URI and event ``extra`` for a published partition.

    Args:
        published: what the ``publish`` task returns.

    Returns:
        ``(uri, extra)``.
    """
    from etl.lineage.datasets import curated_dataset_uri
    from etl.payloads import split_contract_label

    report = published["report"]
    name, version = split_contract_label(str(report["contract"]))
    extra: PublishedEvent = {
        "source": published["slug"],
        "store": published["store"],
        "curated_key": published["curated_key"],
        "interval_start": published["start"],
        "interval_end": published["end"],
        "rows": int(report["curated"]),
        "quarantined": int(report["quarantined"]),
        "quarantine_key": published["quarantine_key"],
        "sha256": published["sha256"],
        "contract": name or str(report["contract"]),
        "contract_version": version,
    }
    return curated_dataset_uri(published["store"], published["slug"]), extra


def emit_published(outlet_events: Any, published: PublishPayload) -> str:
    """Add the published partition's event to its asset through :data:`CURATED_ALIAS`.

    Args:
        outlet_events: the task context's ``outlet_events``.
        published: what the ``publish`` task returns.

    Returns:
        The asset's URI.
    """
    from airflow.sdk import Asset, AssetAlias

    uri, extra = published_event(published)
    outlet_events[AssetAlias(CURATED_ALIAS)].add(Asset(uri=uri), extra=dict(extra))
    return uri


class PartitionSummary(TypedDict):
    """What the example consumer writes beside the curated data, per published partition.

    Attributes:
        source: the source's slug.
        curated_key: the CSV summarised.
        sha256: its digest (the one the asset event announced).
        interval_start: the data interval's start.
        interval_end: its end.
        posts: curated posts.
        quarantined: posts the gate rejected.
        authors: distinct authors.
        languages: the most frequent languages, with their counts.
        first_post: the oldest ``created_at``, or None without posts.
        last_post: the newest ``created_at``, or None.
        likes: the sum of ``like_count``.
        contract_version: the contract's version.
    """

    source: str
    curated_key: str
    sha256: str
    interval_start: str
    interval_end: str
    posts: int
    quarantined: int
    authors: int
    languages: dict[str, int]
    first_post: str | None
    last_post: str | None
    likes: int
    contract_version: str


def summarize_partition(body: bytes, event: Mapping[str, Any]) -> PartitionSummary:
    """Summarise one published CSV.

    Args:
        body: the curated CSV's bytes.
        event: the asset event's ``extra`` (:class:`PublishedEvent`).

    Returns:
        The summary.
    """
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    created = sorted(r["created_at"] for r in rows if r.get("created_at"))
    likes = sum(int(r["like_count"]) for r in rows if (r.get("like_count") or "").isdigit())
    languages = Counter(r.get("lang") or "" for r in rows)
    return {
        "source": str(event["source"]),
        "curated_key": str(event["curated_key"]),
        "sha256": str(event["sha256"]),
        "interval_start": str(event["interval_start"]),
        "interval_end": str(event["interval_end"]),
        "posts": len(rows),
        "quarantined": int(event["quarantined"]),
        "authors": len({r.get("author_id") for r in rows}),
        "languages": dict(languages.most_common(_TOP_LANGUAGES)),
        "first_post": created[0] if created else None,
        "last_post": created[-1] if created else None,
        "likes": likes,
        "contract_version": str(event["contract_version"]),
    }


def write_summary(store: Store, event: Mapping[str, Any]) -> str | None:
    """Summarise the partition an asset event announced and write it under ``summaries/``.

    Args:
        store: the store the event names.
        event: the asset event's ``extra``.

    Returns:
        The summary's key, or None when the partition no longer holds the announced bytes (a
        later publish replaced it; its own event brings its own summary).

    Raises:
        ValueError: the event's key is not its partition's curated CSV, or its interval or
            digest is malformed.
    """
    from etl.storage.keys import partition_for

    # Whoever may emit to the alias writes this extra: only the partition's own key is read.
    partition = partition_for(
        str(event["source"]),
        datetime.fromisoformat(str(event["interval_start"])),
        datetime.fromisoformat(str(event["interval_end"])),
    )
    if event["curated_key"] != partition.curated_key or not _SHA256.fullmatch(str(event["sha256"])):
        raise ValueError(
            f"asset event for {partition.curated_key} names another key or no sha256; not read"
        )
    body = store.get(partition.curated_key)
    if hashlib.sha256(body).hexdigest() != event["sha256"]:
        return None
    summary = summarize_partition(body, event)
    store.put(
        partition.summary_key,
        (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
        content_type="application/json",
    )
    return partition.summary_key


def curated_events(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> list[dict[str, Any]]:
    """The ``extra`` of every curated-partition event that triggered a run, oldest first.

    Args:
        triggering_asset_events: the run context's ``triggering_asset_events``.

    Returns:
        The extras that carry a published partition (events of other assets are left out).
    """
    events = [e for batch in triggering_asset_events.values() for e in batch]
    events.sort(key=lambda e: str(getattr(e, "timestamp", "")))
    needed = set(PublishedEvent.__annotations__)
    return [dict(e.extra) for e in events if isinstance(e.extra, dict) and needed <= set(e.extra)]
