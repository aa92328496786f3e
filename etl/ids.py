"""Post ids: what the API's id strings may be, and when a post id is fit to be a watermark.

The OpenAPI document types every id as a string matching ``^[0-9]{1,19}$``. ``str.isdigit`` is
not that check: it accepts superscripts (``"²"``, on which ``int`` raises) and digits of other
scripts (``"٣"``, which ``int`` reads as 3), so ids are checked here with an ASCII pattern and
:meth:`re.Pattern.fullmatch` (``$`` would also let a trailing line feed through).

Post ids are Snowflake ids: the bits above the lowest 22 count milliseconds since the Twitter
epoch (1288834974657 ms after the Unix epoch), so an id carries its creation time. The API's
``created_at`` is that same instant (truncated to the second), which makes an id checkable: one
whose time disagrees with its post's ``created_at`` by more than :data:`ID_TIME_TOLERANCE`, or
lies further than that in the future, is not a real post id and must never become a watermark
(one id beyond every real one would stop incremental extraction for good).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "ID_TIME_TOLERANCE",
    "TWITTER_EPOCH_MS",
    "IdProblem",
    "parse_id",
    "snowflake_time",
    "watermark_problem",
]

TWITTER_EPOCH_MS = 1_288_834_974_657
"""Milliseconds from the Unix epoch to the Snowflake epoch (2010-11-04T01:42:54.657Z)."""

ID_TIME_TOLERANCE = timedelta(minutes=5)
"""How far an id's Snowflake time may stray from its post's ``created_at`` and from our clock.

Real ids agree with ``created_at`` to the second; the margin is for our own clock, which may run
a few minutes behind the API's (an unsynchronised host), so a post created "now" is not refused.
"""

_ID = re.compile(r"[0-9]{1,19}")  # the OpenAPI ``^[0-9]{1,19}$``, ASCII digits only
_MAX_ID = 2**63 - 1  # Snowflake ids are signed 64-bit numbers
# RFC 3339 as the API writes it (``2024-05-01T12:34:56.000Z``), ASCII digits only.
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

IdProblem = Literal[
    "malformed", "in the future", "created_at unreadable", "disagrees with created_at"
]
"""Why an id is not a watermark (data, shown as is in messages and manifests)."""


def parse_id(value: object) -> int | None:
    """An API id as a number, or None when it is not one.

    Args:
        value: anything found where an id belongs.

    Returns:
        The number when ``value`` is a string of 1 to 19 ASCII digits within 64-bit signed range,
        else None.
    """
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        return None
    number = int(value)
    return number if number <= _MAX_ID else None


def snowflake_time(post_id: int) -> datetime:
    """The creation time a Snowflake id carries.

    Args:
        post_id: a post id (from :func:`parse_id`).

    Returns:
        ``(post_id >> 22) + 1288834974657`` milliseconds after the Unix epoch, in UTC.
    """
    return _UNIX_EPOCH + timedelta(milliseconds=(post_id >> 22) + TWITTER_EPOCH_MS)


def _parse_time(value: str) -> datetime | None:
    if _TIME.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13
        return None


def watermark_problem(
    post_id: object,
    created_at: object,
    now: datetime,
    tolerance: timedelta = ID_TIME_TOLERANCE,
) -> IdProblem | None:
    """Why a post's id may not become a watermark, or None when it may.

    Args:
        post_id: the post's ``id`` as received.
        created_at: the post's ``created_at`` as received; None when the post has none, and
            then only the id's own time is checked against ``now``.
        now: the current time (timezone-aware).
        tolerance: the largest gap allowed between the id's time and ``created_at``, and
            between the id's time and a ``now`` it runs ahead of.

    Returns:
        None for a plausible id, else the problem.
    """
    number = parse_id(post_id)
    if number is None:
        return "malformed"
    minted = snowflake_time(number)
    if minted > now + tolerance:
        return "in the future"
    if created_at is None:
        return None
    created = _parse_time(created_at) if isinstance(created_at, str) else None
    if created is None:
        return "created_at unreadable"
    if abs(minted - created) > tolerance:
        return "disagrees with created_at"
    return None
