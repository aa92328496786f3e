"""The emulator's request-parameter checks, shared by the search, timeline and counts endpoints.

A bad parameter raises the API's 400 ``invalid-request`` Problem naming it (:func:`invalid`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from etl import xapi
from etl.errors import HttpProblem
from etl.tools.emulator.corpus import Corpus

# The OpenAPI patterns, matched in full (``$`` would let a trailing line feed through) and on
# ASCII digits only (``str.isdigit`` takes "²", on which ``int`` raises, and "٣", read as 3).
ID_RE = re.compile(r"[0-9]{1,19}")


def invalid(parameter: str, value: str, message: str) -> HttpProblem:
    """The 400 ``invalid-request`` Problem of one bad parameter."""
    return HttpProblem(
        400,
        {
            "errors": [{"parameters": {parameter: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": f"{xapi.PROBLEMS_URL}invalid-request",
        },
    )


def time_param(params: dict[str, str], name: str) -> datetime | None:
    """The RFC 3339 time ``params[name]``, None when absent; 400 when it is not one."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise invalid(name, raw, f"Invalid '{name}':'{raw}'. '{name}' must be an RFC 3339 time")
    return when


def id_param(params: dict[str, str], name: str) -> str | None:
    """The post id ``params[name]``, None when absent; 400 when it is not one."""
    raw = params.get(name)
    if raw is not None and ID_RE.fullmatch(raw) is None:
        raise invalid(name, raw, f"The `{name}` query parameter value [{raw}] is not valid")
    return raw


def in_window(
    params: dict[str, str], tweets: list[dict[str, Any]], *, ids_first: bool
) -> list[dict[str, Any]]:
    """The posts within ``start_time``/``end_time``/``since_id``/``until_id`` of ``params``.

    Args:
        params: the query parameters.
        tweets: the posts to filter.
        ids_first: the timeline's rule: ``since_id``/``until_id`` take precedence over the times.

    Returns:
        The posts in the window.

    Raises:
        HttpProblem: a bound is invalid, or ``end_time`` is not after ``start_time`` (400).
    """
    start, end = time_param(params, "start_time"), time_param(params, "end_time")
    if start is not None and end is not None and end <= start:
        raise invalid("end_time", params["end_time"], "'end_time' must be after 'start_time'")
    since, until = id_param(params, "since_id"), id_param(params, "until_id")
    if ids_first:
        start = None if since else start
        end = None if until else end
    return Corpus.window(tweets, start, end, since, until)
