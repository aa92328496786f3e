"""Every key layout of the store, in one place (the same in S3 and in a local directory).

::

    raw/source=<slug>/endpoint=<endpoint>/window=<label>/page-00001.json    body, byte-for-byte
    raw/source=<slug>/endpoint=<endpoint>/window=<label>/_manifest.json     written last
    raw/source=<slug>/endpoint=<endpoint>/window=<label>/_rejected/page-00001-<sha16>.body
    state/watermarks/<slug>.json      newest tweet id landed for the source
    state/windows/<slug>.json         the incremental window last opened for the source
    state/users/<username>.json       the user-lookup response body (username -> id cache)
    state/billing/day=<YYYY-MM-DD>/<slug>.json   post and user ids a source read that UTC day
    staging/source=<slug>/interval=<start>_<end>/tweets.csv          candidate awaiting its audit
    curated/source=<slug>/interval=<start>_<end>/tweets.csv          the audited, published CSV
    quarantine/source=<slug>/interval=<start>_<end>/rejected.jsonl   rows the gate rejected
    docs/index.html, docs/results/<suite>/<run>/<time>/<batch>.json  the GX Data Docs site
    docs/contracts/<contract>.html                                   the contract docs site

``<label>`` is ``<start>_<end>`` (compact UTC, e.g. ``20240501T000000Z_20240502T000000Z``) for a
bounded window, so a rerun of the same interval finds its own objects; for an incremental run it is
``since-<id>_at-<time the window was opened>`` (``since-none`` before the first watermark). Names
starting with ``_`` are metadata, not pages (the Hadoop ``_SUCCESS`` convention): readers of raw
pages take ``page-*.json`` only.

Keys derive only from the source and the data interval, so reruns and backfills of the same
interval address the same objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeGuard

from etl.config import parse_store_url

if TYPE_CHECKING:
    from etl.config import Window

RAW_PREFIX = "raw"
STATE_PREFIX = "state"
MANIFEST_NAME = "_manifest.json"
_PAGE_PREFIX = "page-"
_PAGE_SUFFIX = ".json"
_INCREMENTAL_LABEL = re.compile(r"since-(?:none|[0-9]{1,19})_at-[0-9]{8}T[0-9]{6}Z")

STAGING_PREFIX = "staging"
CURATED_PREFIX = "curated"
QUARANTINE_PREFIX = "quarantine"
CURATED_FILE = "tweets.csv"
QUARANTINE_FILE = "rejected.jsonl"
SUMMARY_PREFIX = "summaries"
SUMMARY_FILE = "summary.json"
_STAMP = "%Y%m%dT%H%M%SZ"

DOCS_PREFIX = "docs/"
"""The GX Data Docs site's key prefix (``docs/index.html``)."""
RESULTS_DIR = "results"
"""The folder of validation results inside the Data Docs site (local and in the store)."""
CONTRACT_DOCS_PREFIX = f"{DOCS_PREFIX}contracts/"
"""The contract docs site's key prefix, next to the Data Docs."""


def object_path(store_url: str | None, key: str) -> str:
    """The path of a store object in its bucket or directory: the key, under the bucket's key
    prefix on S3 (as OpenLineage names S3 datasets).

    Args:
        store_url: the store's URL (``s3://bucket/prefix`` or a directory); None for a key alone.
        key: the object key or key prefix in the store (``raw/...``, ``curated/...``).

    Returns:
        ``prefix/key`` for an S3 store with a prefix, else ``key``.

    Raises:
        etl.errors.StoreError: ``store_url`` is not a store URL (:func:`etl.config.parse_store_url`).
    """
    if store_url is None:
        return key
    location = parse_store_url(store_url)
    return f"{location.prefix}/{key}" if location.kind == "s3" and location.prefix else key


def object_location(store_url: str, key: str) -> str:
    """Where a user opens a store object: a file path for a local store, an ``s3://`` URL on S3.

    Args:
        store_url: the store's URL (``s3://bucket/prefix`` or a directory), without credentials.
        key: the object key or key prefix (a prefix keeps its final ``/``).

    Returns:
        ``/srv/store/docs/index.html`` or ``s3://bucket/prefix/docs/index.html``.

    Raises:
        etl.errors.StoreError: ``store_url`` is not a store URL.
    """
    location = parse_store_url(store_url)
    if location.kind == "s3":
        return f"s3://{location.bucket}/{object_path(store_url, key)}"
    assert location.path is not None
    path = str(location.path.resolve() / key)
    return path + "/" if key.endswith("/") else path


# --- raw/ -----------------------------------------------------------------------------------------
def compact_time(value: datetime) -> str:
    """A time as compact UTC for keys: ``20240501T000000Z``.

    Args:
        value: a timezone-aware datetime.

    Returns:
        The label (seconds precision).
    """
    return value.astimezone(UTC).strftime(_STAMP)


def window_label(window: Window, since_id: str | None, run_at: datetime) -> str:
    """The ``window=`` part of the keys.

    Args:
        window: bounded or incremental.
        since_id: the watermark an incremental run starts from (ignored for bounded windows).
        run_at: when the run started (used for incremental runs only).

    Returns:
        ``<start>_<end>`` for a bounded window, ``since-<id>_at-<run_at>`` for an incremental one.
    """
    if window.start is not None and window.end is not None:
        return f"{compact_time(window.start)}_{compact_time(window.end)}"
    return incremental_label(since_id, run_at)


def incremental_label(since_id: str | None, opened_at: datetime) -> str:
    """The label of an incremental window.

    Args:
        since_id: the watermark the window starts from (None before the first one).
        opened_at: when the window was opened.

    Returns:
        ``since-<id>_at-<opened_at>`` (``since-none`` without a watermark).
    """
    return f"{_since_part(since_id)}{compact_time(opened_at)}"


def is_incremental_label(label: object, since_id: str | None) -> TypeGuard[str]:
    """Whether ``label`` is an incremental window label of our own shape starting at ``since_id``.

    A label read back from ``state/`` goes into keys: only one of this exact shape is ever used.

    Args:
        label: the value read (any type).
        since_id: the watermark the window must start from.

    Returns:
        True for a ``since-<since_id>_at-<time>`` label.
    """
    if not isinstance(label, str) or _INCREMENTAL_LABEL.fullmatch(label) is None:
        return False
    return label.startswith(_since_part(since_id))


def _since_part(since_id: str | None) -> str:
    return f"since-{since_id or 'none'}_at-"


def window_prefix(slug: str, endpoint: str, label: str) -> str:
    """The prefix holding one run's pages and manifest for one source.

    Args:
        slug: the source slug (:attr:`etl.config.Source.slug`).
        endpoint: e.g. ``users_tweets`` or ``tweets_search_recent``.
        label: from :func:`window_label`.

    Returns:
        ``raw/source=<slug>/endpoint=<endpoint>/window=<label>``.
    """
    return f"{RAW_PREFIX}/source={slug}/endpoint={endpoint}/window={label}"


_WINDOW_PREFIX = re.compile(
    r"(raw/source=(?P<slug>[^/]+)/endpoint=[^/]+/window=(?P<label>[^/]+))/.+", re.S
)
_BOUNDED_LABEL = re.compile(r"(?P<start>[0-9]{8}T[0-9]{6}Z)_(?P<end>[0-9]{8}T[0-9]{6}Z)")
_OPENED_AT = re.compile(r"since-(?:none|[0-9]{1,19})_at-(?P<at>[0-9]{8}T[0-9]{6}Z)")


def window_of(key: str) -> tuple[str, str, str] | None:
    """The raw window a raw object belongs to.

    Args:
        key: any key.

    Returns:
        ``(window prefix, source slug, label)``, or None when ``key`` is no raw window's object.
    """
    found = _WINDOW_PREFIX.fullmatch(key)
    return (found[1], found["slug"], found["label"]) if found else None


def _stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)
    except ValueError:  # e.g. month 13
        return None


def window_bounds(label: str) -> tuple[datetime, datetime] | None:
    """The interval of a bounded window label (``<start>_<end>``), or None for any other label."""
    found = _BOUNDED_LABEL.fullmatch(label)
    if found is None:
        return None
    start, end = _stamp(found["start"]), _stamp(found["end"])
    return (start, end) if start is not None and end is not None and start < end else None


def window_time(label: str) -> datetime | None:
    """When a window's data ends: a bounded window's end, an incremental window's opening time.

    Args:
        label: the ``window=`` part of the keys.

    Returns:
        The time, or None for a label of no shape we write.
    """
    bounds = window_bounds(label)
    if bounds is not None:
        return bounds[1]
    found = _OPENED_AT.fullmatch(label)
    return _stamp(found["at"]) if found else None


def page_key(prefix: str, page: int) -> str:
    """Key of page ``page`` (1-based) under ``prefix``."""
    return f"{prefix}/{_PAGE_PREFIX}{page:05d}{_PAGE_SUFFIX}"


def manifest_key(prefix: str) -> str:
    """Key of the manifest under ``prefix``."""
    return f"{prefix}/{MANIFEST_NAME}"


def rejected_key(prefix: str, what: str, sha256: str) -> str:
    """Key of a broken body received for ``what`` (e.g. ``page-00001``, ``user-lookup``).

    Content-addressed, so a rerun that receives the same broken bytes finds them.
    """
    return f"{prefix}/_rejected/{what}-{sha256[:16]}.body"


def is_page_key(key: str) -> bool:
    """Whether ``key`` is a landed page (not a manifest, rejected body or state)."""
    name = key.rsplit("/", 1)[-1]
    return (
        key.startswith(f"{RAW_PREFIX}/")
        and "/_" not in key
        and name.startswith(_PAGE_PREFIX)
        and name.endswith(_PAGE_SUFFIX)
    )


# --- state/ ---------------------------------------------------------------------------------------
def watermark_key(slug: str) -> str:
    """Key of a source's watermark."""
    return f"{STATE_PREFIX}/watermarks/{slug}.json"


def open_window_key(slug: str) -> str:
    """Key of the record of a source's last opened incremental window."""
    return f"{STATE_PREFIX}/windows/{slug}.json"


def user_key(username: str) -> str:
    """Key of the cached user lookup for ``username`` (case-insensitive)."""
    return f"{STATE_PREFIX}/users/{username.lower()}.json"


BILLING_PREFIX = f"{STATE_PREFIX}/billing/"
"""Where the day objects of :func:`billing_key` live, one ``day=`` folder per UTC day."""


def billing_prefix(day: str) -> str:
    """Prefix of the ids read on UTC day ``day`` (``YYYY-MM-DD``), one object per source."""
    return f"{BILLING_PREFIX}day={day}/"


def billing_key(day: str, slug: str) -> str:
    """Key of the post and user ids source ``slug`` read on UTC day ``day``."""
    return f"{billing_prefix(day)}{slug}.json"


# --- staging/, curated/, quarantine/ --------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    """One source over one data interval: the unit that is staged, audited and published.

    Attributes:
        source: the source's slug (safe in a key).
        start: interval start (inclusive), UTC.
        end: interval end (exclusive), UTC.
    """

    source: str
    start: datetime
    end: datetime

    @property
    def interval(self) -> str:
        """The interval as it appears in keys, e.g. ``20240301T000000Z_20240302T000000Z``."""
        return f"{self.start.strftime(_STAMP)}_{self.end.strftime(_STAMP)}"

    @property
    def _path(self) -> str:
        return f"source={self.source}/interval={self.interval}"

    @property
    def staging_key(self) -> str:
        """Where the curated candidate waits for its audit."""
        return f"{STAGING_PREFIX}/{self._path}/{CURATED_FILE}"

    @property
    def curated_key(self) -> str:
        """Where the audited CSV is published."""
        return f"{CURATED_PREFIX}/{self._path}/{CURATED_FILE}"

    @property
    def summary_key(self) -> str:
        """Where the example consumer DAG writes its summary of the published partition."""
        return f"{SUMMARY_PREFIX}/{self._path}/{SUMMARY_FILE}"

    @property
    def quarantine_key(self) -> str:
        """Where the rows the gate rejected are kept, with their reasons."""
        return f"{QUARANTINE_PREFIX}/{self._path}/{QUARANTINE_FILE}"


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"interval {name} {value.isoformat()} has no time zone; give it in UTC")
    return value.astimezone(UTC)


def partition_for(source: str, start: datetime, end: datetime) -> Partition:
    """The partition of ``source`` over ``[start, end)``.

    Args:
        source: the source's slug; it becomes part of the keys.
        start: interval start, time-zone aware.
        end: interval end, time-zone aware, after ``start``.

    Returns:
        The partition, with the interval normalised to UTC whole seconds.

    Raises:
        ValueError: the slug is unusable in a key, a bound is naive, or the interval is empty.
    """
    if not source or any(c in source for c in "/= ") or source in (".", ".."):
        raise ValueError(f"source slug {source!r} cannot be used in a key")
    lo, hi = _utc(start, "start"), _utc(end, "end")
    if lo.microsecond or hi.microsecond:
        raise ValueError(f"interval {lo.isoformat()}..{hi.isoformat()} is not in whole seconds")
    if hi - lo < timedelta(seconds=1):
        raise ValueError(f"interval {lo.isoformat()}..{hi.isoformat()} is empty")
    return Partition(source, lo, hi)


# --- docs/ ----------------------------------------------------------------------------------------
def docs_results_prefix(prefix: str = DOCS_PREFIX) -> str:
    """Where a Data Docs site's validation results are kept in the store.

    Args:
        prefix: the site's key prefix.

    Returns:
        ``<prefix>results/`` (``docs/results/`` by default).
    """
    return f"{prefix}{RESULTS_DIR}/"


VALIDATIONS_DIR = "validations"
"""The folder of the Data Docs validation pages inside the site."""
_DOCS_RUN = re.compile(
    r"[^/]+/[^/]+/(?P<time>[0-9]{8}T[0-9]{6})(?:\.[0-9]{1,6})?Z/[^/]+\.(?:html|json)"
)


def docs_validation_time(key: str, folder: str, prefix: str = DOCS_PREFIX) -> datetime | None:
    """When the validation behind a Data Docs page or result ran, from its key.

    Keys are ``<prefix><folder>/<suite>/<run>/<time>/<batch>.html`` (or ``.json``), ``<time>``
    being GX's run time, e.g. ``20240501T000312.123456Z``.

    Args:
        key: a store key.
        folder: :data:`VALIDATIONS_DIR` or :data:`RESULTS_DIR`.
        prefix: the site's key prefix.

    Returns:
        The run time (UTC), or None when ``key`` is not such a page or result.
    """
    head = f"{prefix}{folder}/"
    if not key.startswith(head):
        return None
    found = _DOCS_RUN.fullmatch(key[len(head) :])
    return _stamp(found["time"] + "Z") if found else None


def docs_month(moment: datetime) -> str:
    """The month (``YYYY-MM``, UTC) the Data Docs index files a validation under, by its run time.

    Args:
        moment: the validation's run time (aware).

    Returns:
        e.g. ``2026-11``.
    """
    return moment.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class DocsExpiry:
    """What one retention run deletes from a Data Docs site, as the site's index must know it.

    Retention (``etl.steps.retain``) builds it; the docs step
    (``etl.steps.quality.docs_site.mark_expired``) rewrites the index of those months before the
    pages go, so no row links a deleted page. Times compare with :func:`docs_validation_time` of
    a validation's page and result keys, as retention's own do.

    Attributes:
        months: the months (:func:`docs_month`) of the validations whose page or result goes.
        pages_before: the validations that ran before this lose their page (None: pages kept).
        results_before: the validations that ran before this lose their result JSON too (None:
            results kept).
    """

    months: frozenset[str]
    pages_before: datetime | None = None
    results_before: datetime | None = None
