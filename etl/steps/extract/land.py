"""Landing: response bodies into ``raw/`` under deterministic keys, manifests, and ``state/``.

The key layouts (``raw/``, ``state/``) live in :mod:`etl.storage.keys`. The open incremental
window is recorded in ``state/windows/``, so a run that starts from the same watermark while that
window has no manifest (an earlier run was killed midway) resumes it instead of opening another
one and fetching everything again. ``_rejected/`` keeps bodies that arrived unusable (a 200 whose body is not a JSON page: truncated
in transit, nested past the parser's stack, members of the wrong type) and the part read of a body
refused for its size: they were retried, and are kept so nothing received is lost; the manifest
lists each with its reason.

Pages and manifests are written once (:meth:`etl.storage.store.Store.put_once`); the watermark, the open
window and the user cache are state and are overwritten.

A watermark only ever holds a post id that is valid by the API's schema and plausible by its
Snowflake time (:mod:`etl.ids`): :func:`read_watermark` raises :class:`WatermarkError` for anything
else, and :func:`reset_watermark` (``tweetpipe state reset``) is the way out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.errors import WatermarkError
from etl.ids import ID_TIME_TOLERANCE, parse_id, snowflake_time
from etl.storage.keys import (
    incremental_label,
    is_incremental_label,
    is_page_key,
    manifest_key,
    open_window_key,
    user_key,
    watermark_key,
    window_prefix,
)
from etl.storage.store import read_json

if TYPE_CHECKING:
    from etl.storage.store import PutResult, Store

MANIFEST_VERSION = 1
_JSON = "application/json"
_SHOWN = 40  # characters of a hostile state value quoted in a message


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def land_page(store: Store, key: str, body: bytes) -> PutResult:
    """Write a response body once, byte-for-byte.

    Args:
        store: where to write.
        key: from :func:`etl.storage.keys.page_key`.
        body: the bytes exactly as received.

    Returns:
        The put result; ``created`` is False when an identical object was already there.

    Raises:
        etl.storage.store.ObjectExistsError: the key holds a different body.
    """
    return store.put_once(key, body, _JSON)


def land_rejected(store: Store, key: str, body: bytes) -> PutResult:
    """Keep an unusable body received for a request (or the part read of a refused one), once."""
    return store.put_once(key, body, "application/octet-stream")


def landed_pages(store: Store, prefix: str) -> list[str]:
    """The pages already landed under ``prefix``, in page order.

    Args:
        store: where to look.
        prefix: from :func:`etl.storage.keys.window_prefix`.

    Returns:
        Page keys, sorted (page numbers are zero-padded, so text order is page order).
    """
    return [k for k in store.list(f"{prefix}/") if is_page_key(k)]


def encode_json(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes for metadata objects (sorted keys, indented, trailing newline)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_manifest(
    store: Store, key: str, manifest: dict[str, Any], *, replace: bool = False
) -> PutResult | None:
    """Write a run's manifest once; call it after every page is landed.

    Args:
        store: where to write.
        key: from :func:`etl.storage.keys.manifest_key`.
        manifest: JSON-ready metadata, without secrets.
        replace: overwrite what is there: only for an incomplete manifest (a window stopped by
            its budget), or for the manifest that completes a window an incomplete one marked.

    Returns:
        The put result (None when replacing).
    """
    if replace:
        store.put(key, encode_json(manifest), _JSON)
        return None
    return store.put_once(key, encode_json(manifest), _JSON)


def is_complete(manifest: dict[str, Any] | None) -> bool:
    """Whether a window's manifest says the window is complete (older manifests say nothing)."""
    return manifest is not None and manifest.get("complete", True) is not False


def stored_user_id(store: Store, username: str) -> str | None:
    """The user id ``state/users/`` caches for ``username``, or None.

    Args:
        store: where ``state/`` lives.
        username: the account name.

    Returns:
        The id, or None when nothing usable is cached (absent, broken, or not an id): the user
        is looked up again and the entry overwritten.
    """
    try:
        doc = read_json(store, user_key(username))
    except ValueError:
        return None
    data = doc.get("data") if doc else None
    if isinstance(data, dict) and parse_id(data.get("id")) is not None:
        return str(data["id"])
    return None


def read_watermark(store: Store, slug: str, *, now: datetime | None = None) -> str | None:
    """The newest tweet id landed for a source, or None before its first landing or after a reset.

    Args:
        store: where state lives.
        slug: the source slug.
        now: when given, a watermark whose Snowflake time lies further in the future than
            :data:`etl.ids.ID_TIME_TOLERANCE` is refused too.

    Returns:
        A decimal id string (1 to 19 ASCII digits), or None.

    Raises:
        WatermarkError: the stored object is not a JSON object, its ``newest_id`` is not a post
            id, or (with ``now``) it lies in the future.
    """
    key = watermark_key(slug)
    try:
        doc = read_json(store, key)
    except ValueError:
        raise WatermarkError(key, None, "not a JSON object") from None
    value = doc.get("newest_id") if doc is not None else None
    if value is None:
        return None
    number = parse_id(value)
    if number is None:
        raise WatermarkError(key, _shown(value), "not a post id (1 to 19 ASCII digits, < 2**63)")
    if now is not None and snowflake_time(number) > now + ID_TIME_TOLERANCE:
        minted = snowflake_time(number).isoformat(timespec="seconds")
        raise WatermarkError(key, _shown(value), f"its Snowflake time {minted} is in the future")
    return str(value)


def advance_watermark(
    store: Store, slug: str, newest_id: str | None, *, manifest: str, now: datetime
) -> str | None:
    """Move a source's watermark forward to ``newest_id``; never backwards.

    Call only after the pages holding ``newest_id`` and their manifest are landed, with an id
    that passed :func:`etl.ids.watermark_problem`.

    Args:
        store: where state lives.
        slug: the source slug.
        newest_id: newest tweet id of the run, or None when it landed no tweets.
        manifest: the manifest key of the run, recorded for traceability.
        now: the update time.

    Returns:
        The watermark after the call.

    Raises:
        WatermarkError: the stored watermark is unusable (see :func:`read_watermark`); it is
            left as it is, for ``tweetpipe state reset``.
        ValueError: ``newest_id`` is not a post id, or lies in the future.
    """
    current = read_watermark(store, slug, now=now)
    if newest_id is None:
        return current
    number = parse_id(newest_id)
    if number is None or snowflake_time(number) > now + ID_TIME_TOLERANCE:
        raise ValueError(f"{_shown(newest_id)} is not a plausible post id for a watermark")
    if current is not None and int(current) >= number:
        return current
    doc = {
        "source": slug,
        "newest_id": newest_id,
        "manifest": manifest,
        "updated_at": now.astimezone(UTC).isoformat(),
    }
    store.put(watermark_key(slug), encode_json(doc), _JSON)
    return newest_id


def reset_watermark(store: Store, slug: str, *, now: datetime, to: str | None = None) -> str | None:
    """Remove a source's watermark, or rewind it to ``to``, whatever it held.

    The object is overwritten, not deleted (the pipeline needs no delete permission): its
    ``newest_id`` becomes ``to`` (None: the next incremental run starts from scratch) and
    ``reset_from`` keeps what it held before.

    Args:
        store: where state lives.
        slug: the source slug.
        now: the reset time (also bounds ``to``).
        to: a post id to rewind to, or None.

    Returns:
        The ``newest_id`` held before (shortened when it was not a post id), or None when there
        was none or the object was unreadable.

    Raises:
        ValueError: ``to`` is not a post id, or lies in the future.
    """
    if to is not None:
        number = parse_id(to)
        if number is None:
            raise ValueError(f"{_shown(to)} is not a post id (1 to 19 ASCII digits, < 2**63)")
        if snowflake_time(number) > now + ID_TIME_TOLERANCE:
            minted = snowflake_time(number).isoformat(timespec="seconds")
            raise ValueError(f"post id {to} is in the future (its Snowflake time is {minted})")
    try:
        doc = read_json(store, watermark_key(slug))
    except ValueError:
        doc = None
    held = doc.get("newest_id") if doc is not None else None
    previous = None if held is None else held if parse_id(held) is not None else _shown(held)
    record = {
        "source": slug,
        "newest_id": to,
        "manifest": None,
        "updated_at": now.astimezone(UTC).isoformat(),
        "reset_from": previous,
    }
    store.put(watermark_key(slug), encode_json(record), _JSON)
    return previous


def incremental_window(
    store: Store, slug: str, endpoint: str, since_id: str | None, now: datetime
) -> str:
    """The label of the incremental window to fill from ``since_id``.

    The window an earlier run opened from the same watermark is reused while it has no manifest
    (that run was killed or failed midway), so its landed pages are resumed, not fetched again.
    Otherwise a new window is opened at ``now`` and recorded under ``state/windows/``.

    Args:
        store: where state lives.
        slug: the source slug.
        endpoint: the endpoint part of the keys.
        since_id: the watermark the run starts from (None before the first one).
        now: when the run started.

    Returns:
        A label ``since-<id>_at-<time>``.
    """
    key = open_window_key(slug)
    try:
        doc = read_json(store, key)
    except ValueError:
        doc = None  # a broken record is replaced by the new window's
    label = _resumable_label(store, doc, slug, endpoint, since_id)
    if label is not None:
        return label
    label = incremental_label(since_id, now)
    record = {
        "source": slug,
        "endpoint": endpoint,
        "since_id": since_id,
        "label": label,
        "opened_at": now.astimezone(UTC).isoformat(),
    }
    store.put(key, encode_json(record), _JSON)
    return label


def _resumable_label(
    store: Store, doc: dict[str, Any] | None, slug: str, endpoint: str, since_id: str | None
) -> str | None:
    """The recorded window's label when it starts at ``since_id`` and is unfinished."""
    if doc is None or doc.get("endpoint") != endpoint:
        return None
    label = doc.get("label")
    # The label goes into keys: only one of our own shape, never whatever the record holds.
    if not is_incremental_label(label, since_id):
        return None
    try:
        manifest = read_json(store, manifest_key(window_prefix(slug, endpoint, label)))
    except ValueError:
        return None  # an unreadable manifest: a new window, not a guess
    return None if manifest is not None and is_complete(manifest) else label
