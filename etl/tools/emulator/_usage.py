"""The emulator's counts and usage endpoints: ``GET /2/tweets/counts/recent``, ``/counts/all`` and
``GET /2/usage/tweets``, shaped as the OpenAPI document says (``Get2TweetsCountsRecentResponse``,
``Get2UsageTweetsResponse``), and the ``UsageCapExceeded`` Problem of a project over its cap.

Counts are made over exactly the posts the recent search would return for the same query and
window (the corpus has no seven-day horizon), so a dry run's estimate and the real run agree.
Usage counts the posts the emulator served in timeline, search and lookup pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from etl import xapi
from etl.errors import QueryError
from etl.tools.emulator._params import in_window, invalid, time_param

if TYPE_CHECKING:
    from etl.tools.emulator.corpus import Corpus

GRANULARITIES = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
MAX_BUCKETS = 31 * 24 * 60
"""Buckets in one answer at most (a month by the minute); more is refused as invalid."""
ALL_PAGE_DAYS = 31
"""Days one page of ``/counts/all`` covers; older ones follow through ``next_token``."""
_SEARCH_COUNT_FIELDS = frozenset({"end", "start", "tweet_count"})
_USAGE_FIELDS = frozenset(
    {
        "cap_reset_day",
        "daily_client_app_usage",
        "daily_project_usage",
        "project_cap",
        "project_id",
        "project_usage",
    }
)
_DEFAULT_USAGE_FIELDS = ("cap_reset_day", "project_cap", "project_id", "project_usage")
PROJECT_ID = "1468700000000000000"
CLIENT_APP_ID = "29800000"
DEFAULT_PROJECT_CAP = 10_000_000
_ID_FIELD = "id"

COUNTS_PARAMS = frozenset(
    {"query", "start_time", "end_time", "since_id", "until_id", "next_token"}
    | {"pagination_token", "granularity", "search_count.fields"}
)
USAGE_PARAMS = frozenset({"days", "usage.fields"})


@dataclass
class Usage:
    """Posts the emulator served, by UTC day, and the project's cap (what the usage endpoint says).

    Attributes:
        cap: the project's monthly post cap; reaching it makes post reads answer 429.
        by_day: posts served per UTC day (``YYYY-MM-DD``).
    """

    cap: int = DEFAULT_PROJECT_CAP
    by_day: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Posts served so far."""
        return sum(self.by_day.values())

    def served(self, posts: int, now: float) -> None:
        """Count ``posts`` served at epoch second ``now``."""
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        self.by_day[day] = self.by_day.get(day, 0) + posts

    def over(self) -> bool:
        """Whether post reads are refused now."""
        return self.total >= self.cap


def usage_capped_problem(period: str = "Monthly", scope: str = "Product") -> dict[str, Any]:
    """The body of the 429 a project over its usage cap gets (``UsageCapExceededProblem``)."""
    return {
        "title": "UsageCapExceeded",
        "detail": f"Usage cap exceeded: {period} {scope.lower()} cap",
        "type": xapi.USAGE_CAPPED,
        "status": 429,
        "period": period,
        "scope": scope,
    }


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _floor(when: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((when - epoch) // step) * step


def counts(
    corpus: Corpus,
    params: dict[str, str],
    now: float,
    *,
    archive: bool,
) -> dict[str, Any]:
    """The body of ``/2/tweets/counts/recent`` (``/all`` with ``archive``).

    Args:
        corpus: the posts.
        params: the query parameters (already checked against :data:`COUNTS_PARAMS`).
        now: the emulator's clock, epoch seconds (the end of an open window).
        archive: ``/counts/all`` (pages of :data:`ALL_PAGE_DAYS` days through ``next_token``).

    Returns:
        ``data`` (buckets, oldest first) and ``meta.total_tweet_count``.

    Raises:
        HttpProblem: a parameter is invalid (400).
    """
    query = params.get("query")
    if not query:
        raise invalid("query", "", "The `query` query parameter can not be empty")
    granularity = params.get("granularity", "hour")
    if granularity not in GRANULARITIES:
        raise invalid(
            "granularity",
            granularity,
            f"The `granularity` query parameter value [{granularity}] is not one of "
            "[day,hour,minute]",
        )
    fields = params.get("search_count.fields")
    wanted = fields.split(",") if fields else sorted(_SEARCH_COUNT_FIELDS)
    for name in wanted:
        if name not in _SEARCH_COUNT_FIELDS:
            raise invalid("search_count.fields", name, f"[{name}] is not a SearchCount field")
    try:
        matched = in_window(params, corpus.search(query), ids_first=False)
    except QueryError as exc:
        raise invalid("query", query, str(exc)) from None
    step = GRANULARITIES[granularity]
    created = [datetime.fromisoformat(t["created_at"]) for t in matched]
    end = time_param(params, "end_time") or max(
        [datetime.fromtimestamp(now, UTC), *(c + step for c in created)]
    )
    start = time_param(params, "start_time") or min([end - timedelta(days=7), *created])
    token = params.get("next_token") or params.get("pagination_token")
    if archive and token is not None:
        end = _page_end(token, start, end)
    if archive and end - start > timedelta(days=ALL_PAGE_DAYS):
        page_start = end - timedelta(days=ALL_PAGE_DAYS)
    else:
        page_start = start
    buckets = _buckets(created, page_start, end, step)
    body: dict[str, Any] = {
        "data": [{k: v for k, v in b.items() if k in wanted} for b in buckets],
        "meta": {"total_tweet_count": sum(b["tweet_count"] for b in buckets)},
    }
    if page_start > start:
        body["meta"]["next_token"] = f"c{int(page_start.timestamp())}"
    return body


def _page_end(token: str, start: datetime, end: datetime) -> datetime:
    digits = token[1:]
    if (
        not token.startswith("c")
        or not digits.isascii()
        or not digits.isdigit()
        or len(digits) > 12
    ):
        raise invalid(
            "next_token", token, f"The `next_token` query parameter value [{token}] is not valid"
        )
    page_end = datetime.fromtimestamp(int(digits), UTC)
    if not start < page_end <= end:
        raise invalid(
            "next_token", token, f"The `next_token` query parameter value [{token}] is not valid"
        )
    return page_end


def _buckets(
    created: list[datetime], start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    first = _floor(start, step)
    n = max(1, -(-(end - first) // step))
    if n > MAX_BUCKETS:
        raise invalid(
            "granularity", "", f"The window holds {n} buckets; at most {MAX_BUCKETS} per request"
        )
    tally = [0] * n
    for when in created:
        if start <= when < end:
            tally[(when - first) // step] += 1
    return [
        {
            "end": _stamp(min(first + (i + 1) * step, end)),
            "start": _stamp(max(first + i * step, start)),
            "tweet_count": tally[i],
        }
        for i in range(n)
    ]


def usage(state: Usage, params: dict[str, str], now: float) -> dict[str, Any]:
    """The body of ``GET /2/usage/tweets``.

    Args:
        state: posts served and the cap.
        params: ``days`` (1 to 90, default 7) and ``usage.fields``.
        now: the emulator's clock, epoch seconds.

    Returns:
        ``data`` with the requested usage fields.

    Raises:
        HttpProblem: a parameter is invalid (400).
    """
    raw_days = params.get("days", "7")
    if not (raw_days.isascii() and raw_days.isdigit() and 1 <= int(raw_days) <= 90):
        raise invalid(
            "days",
            raw_days,
            f"The `days` query parameter value [{raw_days}] is not between 1 and 90",
        )
    fields = params.get("usage.fields")
    wanted = fields.split(",") if fields else list(_DEFAULT_USAGE_FIELDS)
    for name in wanted:
        if name not in _USAGE_FIELDS:
            raise invalid("usage.fields", name, f"[{name}] is not a Usage field")
    today = datetime.fromtimestamp(now, UTC)
    days = [
        (today - timedelta(days=i)).strftime("%Y-%m-%d") for i in reversed(range(int(raw_days)))
    ]
    daily = [{"date": f"{d}T00:00:00.000Z", "usage": state.by_day.get(d, 0)} for d in days]
    month = today.strftime("%Y-%m")
    next_month = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    full = {
        "cap_reset_day": (next_month.date() - today.date()).days,
        "project_cap": state.cap,
        "project_id": PROJECT_ID,
        "project_usage": sum(n for d, n in state.by_day.items() if d.startswith(month)),
        "daily_project_usage": {"project_id": int(PROJECT_ID[:9]), "usage": daily},
        "daily_client_app_usage": [
            {"client_app_id": CLIENT_APP_ID, "usage": daily, "usage_result_count": len(daily)}
        ],
    }
    return {"data": {k: full[k] for k in wanted}}
