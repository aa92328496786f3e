"""The curated asset events' extra and the example consumer's summary (etl.adapters.airflow.assets)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from etl.adapters.airflow.assets import published_event, write_summary
from etl.storage.keys import partition_for
from etl.storage.store import LocalStore

if TYPE_CHECKING:
    from pathlib import Path

START, END = datetime(2023, 3, 14, tzinfo=UTC), datetime(2023, 3, 15, tzinfo=UTC)
CSV = (
    b"tweet_id,author_id,created_at,lang,like_count\r\n"
    b"1,10,2023-03-14T01:00:00.000Z,en,3\r\n"
    b"2,11,2023-03-14T05:00:00.000Z,ja,4\r\n"
)


def _event(store: LocalStore, body: bytes = CSV) -> dict[str, object]:
    partition = partition_for("account-ada_builds", START, END)
    store.put(partition.curated_key, body)
    payload = {
        "source": {"kind": "account", "value": "ada_builds"},
        "slug": "account-ada_builds",
        "store": store.url,
        "namespace": "file",
        "start": START.isoformat(),
        "end": END.isoformat(),
        "curated_key": partition.curated_key,
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "replaced": False,
        "unchanged": False,
        "staging_key": partition.staging_key,
        "quarantine_key": partition.quarantine_key,
        "report": {"curated": 2, "quarantined": 1, "contract": "tweets_curated 2.0.0"},
    }
    uri, extra = published_event(payload)  # type: ignore[arg-type]
    assert uri == f"file://{store.root}/curated/source=account-ada_builds"
    return dict(extra)


def test_the_event_extra_carries_counts_interval_digest_and_contract(tmp_path: Path) -> None:
    extra = _event(LocalStore(tmp_path))

    assert extra["rows"] == 2 and extra["quarantined"] == 1
    assert (extra["contract"], extra["contract_version"]) == ("tweets_curated", "2.0.0")
    assert extra["interval_start"] == "2023-03-14T00:00:00+00:00"
    assert extra["sha256"] == hashlib.sha256(CSV).hexdigest()


def test_the_summary_goes_beside_the_curated_data(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    extra = _event(store)

    key = write_summary(store, extra)

    assert (
        key
        == "summaries/source=account-ada_builds/interval=20230314T000000Z_20230315T000000Z/summary.json"
    )
    summary = json.loads(store.get(key))
    assert summary["posts"] == 2 and summary["authors"] == 2 and summary["likes"] == 7
    assert summary["languages"] == {"en": 1, "ja": 1}
    assert summary["first_post"] == "2023-03-14T01:00:00.000Z"


def test_a_partition_replaced_since_its_event_is_left_alone(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    extra = _event(store)
    store.put(str(extra["curated_key"]), CSV + b"3,12,2023-03-14T06:00:00.000Z,en,0\r\n")

    assert write_summary(store, extra) is None
    assert store.list("summaries/") == []


def test_an_event_naming_another_key_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    extra = _event(store)
    store.put("state/secret.json", b"{}")

    with pytest.raises(ValueError, match="names another key"):
        write_summary(store, {**extra, "curated_key": "state/secret.json"})
