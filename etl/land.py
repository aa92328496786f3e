"""Landing: response bodies into ``raw/`` under deterministic keys, manifests, and ``state/``.

Key layout (the same in S3 and in a local directory)::

    raw/source=<slug>/endpoint=<endpoint>/window=<label>/page-00001.json    body, byte-for-byte
    raw/source=<slug>/endpoint=<endpoint>/window=<label>/_manifest.json     written last
    raw/source=<slug>/endpoint=<endpoint>/window=<label>/_rejected/page-00001-<sha16>.body
    state/watermarks/<slug>.json      newest tweet id landed for the source
    state/users/<username>.json       the user-lookup response body (username -> id cache)

``<label>`` is ``<start>_<end>`` (compact UTC, e.g. ``20240501T000000Z_20240502T000000Z``) for a
bounded window, so a rerun of the same interval finds its own objects; for an incremental run it is
``since-<id>_at-<run time>`` (``since-none`` before the first watermark). Names starting with ``_``
are metadata, not pages (the Hadoop ``_SUCCESS`` convention): readers of raw pages take
``page-*.json`` only. ``_rejected/`` keeps bodies that arrived unusable (a 200 whose body is not
a JSON page: truncated in transit, nested past the parser's stack, members of the wrong type) and
the part read of a body refused for its size: they were retried, and are kept so nothing received
is lost; the manifest lists each with its reason.

Pages and manifests are written once (:meth:`etl.store.Store.put_once`); the watermark and the user
cache are state and are overwritten.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etl.config import Window
    from etl.store import PutResult, Store

RAW_PREFIX = "raw"
STATE_PREFIX = "state"
MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
_PAGE_PREFIX = "page-"
_PAGE_SUFFIX = ".json"
_JSON = "application/json"


def compact_time(value: datetime) -> str:
    """A time as compact UTC for keys: ``20240501T000000Z``.

    Args:
        value: a timezone-aware datetime.

    Returns:
        The label (seconds precision).
    """
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


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
    return f"since-{since_id or 'none'}_at-{compact_time(run_at)}"


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


def watermark_key(slug: str) -> str:
    """Key of a source's watermark."""
    return f"{STATE_PREFIX}/watermarks/{slug}.json"


def user_key(username: str) -> str:
    """Key of the cached user lookup for ``username`` (case-insensitive)."""
    return f"{STATE_PREFIX}/users/{username.lower()}.json"


def is_page_key(key: str) -> bool:
    """Whether ``key`` is a landed page (not a manifest, rejected body or state)."""
    name = key.rsplit("/", 1)[-1]
    return (
        key.startswith(f"{RAW_PREFIX}/")
        and "/_" not in key
        and name.startswith(_PAGE_PREFIX)
        and name.endswith(_PAGE_SUFFIX)
    )


def land_page(store: Store, key: str, body: bytes) -> PutResult:
    """Write a response body once, byte-for-byte.

    Args:
        store: where to write.
        key: from :func:`page_key`.
        body: the bytes exactly as received.

    Returns:
        The put result; ``created`` is False when an identical object was already there.

    Raises:
        etl.store.ObjectExistsError: the key holds a different body.
    """
    return store.put_once(key, body, _JSON)


def land_rejected(store: Store, key: str, body: bytes) -> PutResult:
    """Keep an unusable body received for a request (or the part read of a refused one), once."""
    return store.put_once(key, body, "application/octet-stream")


def landed_pages(store: Store, prefix: str) -> list[str]:
    """The pages already landed under ``prefix``, in page order.

    Args:
        store: where to look.
        prefix: from :func:`window_prefix`.

    Returns:
        Page keys, sorted (page numbers are zero-padded, so text order is page order).
    """
    return [k for k in store.list(f"{prefix}/") if is_page_key(k)]


def encode_json(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes for metadata objects (sorted keys, indented, trailing newline)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_manifest(store: Store, key: str, manifest: dict[str, Any]) -> PutResult:
    """Write a run's manifest once; call it after every page is landed.

    Args:
        store: where to write.
        key: from :func:`manifest_key`.
        manifest: JSON-ready metadata, without secrets.

    Returns:
        The put result.
    """
    return store.put_once(key, encode_json(manifest), _JSON)


def read_json(store: Store, key: str) -> dict[str, Any] | None:
    """Read a JSON object from the store, or None when the key is absent.

    Args:
        store: where to read.
        key: the object key.

    Returns:
        The parsed object, or None.

    Raises:
        ValueError: the object is not a JSON object, whatever the parser raised on it.
    """
    if not store.exists(key):
        return None
    body = store.get(key)
    try:
        doc = json.loads(body)
    except Exception as exc:  # not only ValueError: nesting past the stack raises RecursionError
        detail = f"{exc.__class__.__name__}: {exc}"[:200]
        raise ValueError(f"{store.url}/{key} is not valid JSON ({detail})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{store.url}/{key} is not a JSON object")
    return doc


def read_watermark(store: Store, slug: str) -> str | None:
    """The newest tweet id landed for a source, or None before its first landing.

    Args:
        store: where state lives.
        slug: the source slug.

    Returns:
        A decimal id string, or None.
    """
    doc = read_json(store, watermark_key(slug))
    if doc is None:
        return None
    value = doc.get("newest_id")
    return str(value) if value else None


def advance_watermark(
    store: Store, slug: str, newest_id: str | None, *, manifest: str, now: datetime
) -> str | None:
    """Move a source's watermark forward to ``newest_id``; never backwards.

    Call only after the pages holding ``newest_id`` and their manifest are landed.

    Args:
        store: where state lives.
        slug: the source slug.
        newest_id: newest tweet id of the run, or None when it landed no tweets.
        manifest: the manifest key of the run, recorded for traceability.
        now: the update time.

    Returns:
        The watermark after the call.
    """
    current = read_watermark(store, slug)
    if newest_id is None or (current is not None and int(current) >= int(newest_id)):
        return current
    doc = {
        "source": slug,
        "newest_id": newest_id,
        "manifest": manifest,
        "updated_at": now.astimezone(UTC).isoformat(),
    }
    store.put(watermark_key(slug), encode_json(doc), _JSON)
    return newest_id
