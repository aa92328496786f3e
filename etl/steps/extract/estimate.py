"""A dry run: what extracting each source over a window would read and cost, reading no post.

- A query asks ``GET /2/tweets/counts/recent`` for the window (``/counts/all`` when the window
  starts more than seven days ago), ``granularity=day``, and takes ``meta.total_tweet_count``
  (else the sum of the buckets). An incremental window counts from the watermark (``since_id``).
- An account has no counts endpoint. Its last landed window (the manifest the watermark names)
  gives a rate, posts per hour, scaled to this window; without one, the user lookup's
  ``public_metrics.tweet_count`` (capped at the 3,200 posts a timeline reaches back) is the upper
  bound.

The expected cost prices every expected post as billable (a rerun on the same UTC day would be
deduplicated, the estimate does not assume it) plus the user lookup when the id is not cached. What
the dry run itself spends (counts requests, user lookups) is reported apart.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from etl import xapi
from etl.errors import SourceFailed
from etl.ids import parse_id, snowflake_time
from etl.pricing import Prices
from etl.steps.extract.client import (
    DEFAULT_POLICY,
    MAX_REASON,
    FetchContext,
    Fetched,
    RetryPolicy,
)
from etl.steps.extract.cost import whole_count
from etl.steps.extract.land import read_watermark, stored_user_id
from etl.storage.keys import STATE_PREFIX
from etl.storage.store import read_json, sha256_hex

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from etl.config import Source, Window
    from etl.steps.extract.client import XClient
    from etl.storage.store import Store

log = logging.getLogger(__name__)

TIMELINE_REACH = 3200
"""Posts a user timeline reaches back (the API's documented limit)."""
MAX_COUNT_PAGES = 50
"""Counts pages followed per source (``/counts/all`` pages hold 31 days each)."""
_TOKEN = re.compile(r"[A-Za-z0-9_.~+/=-]{1,512}")
_LOOKUP_FIELDS = ("username", "name", "public_metrics")


@dataclass(frozen=True)
class Estimate:
    """What extracting one source would read and cost.

    Attributes:
        source: the source.
        posts: expected posts.
        method: ``counts_recent``, ``counts_all``, ``last_run_rate`` or ``user_tweet_count``.
        detail: how the estimate was made, in words.
        cost_micros: expected cost of the real run (posts, and a user lookup when not cached).
        counts_requests: counts requests the dry run sent.
        user_lookups: user lookups the dry run sent.
        spent_micros: what the dry run itself cost.
    """

    source: Source
    posts: int
    method: str
    detail: str
    cost_micros: int
    counts_requests: int = 0
    user_lookups: int = 0
    spent_micros: int = 0


@dataclass(frozen=True)
class EstimateReport:
    """A dry run's estimates, and the sources it could not estimate."""

    estimates: tuple[Estimate, ...]
    failures: tuple[SourceFailed, ...]

    @property
    def posts(self) -> int:
        """Expected posts over every source."""
        return sum(e.posts for e in self.estimates)

    @property
    def cost_micros(self) -> int:
        """Expected cost over every source."""
        return sum(e.cost_micros for e in self.estimates)

    @property
    def spent_micros(self) -> int:
        """What the dry run cost."""
        return sum(e.spent_micros for e in self.estimates)


def estimate_sources(
    client: XClient,
    store: Store,
    sources: Iterable[Source],
    window: Window,
    *,
    prices: Prices | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> EstimateReport:
    """Estimate every source; one that cannot be estimated fails alone.

    Args:
        client: from :func:`etl.steps.extract.run.make_client`.
        store: where the watermarks, manifests and user cache are read (nothing is written but
            unusable API bodies, under ``state/dry-run/_rejected/``).
        sources: accounts and queries.
        window: bounded, or incremental (from each watermark).
        prices: what reads cost (default: X's published rates).
        clock: epoch seconds now.
        sleep: waits (rate limits, backoff).
        policy: retries and rate-limit margins.

    Returns:
        The estimates and the failures, in source order.
    """
    estimates: list[Estimate] = []
    failures: list[SourceFailed] = []
    for source in sources:
        context = FetchContext(clock, sleep, policy, random.Random())
        try:
            estimates.append(
                estimate_source(client, store, source, window, context, prices or Prices())
            )
        except SourceFailed as exc:
            log.error("%s", exc)
            failures.append(exc)
    return EstimateReport(tuple(estimates), tuple(failures))


def estimate_source(
    client: XClient,
    store: Store,
    source: Source,
    window: Window,
    context: FetchContext,
    prices: Prices,
) -> Estimate:
    """Estimate one source (see the module's description).

    Args:
        client: the API client.
        store: where state is read.
        source: the account or query.
        window: bounded, or incremental.
        context: clock, sleep, policy and counters.
        prices: what reads cost.

    Returns:
        The estimate.

    Raises:
        SourceFailed: the counts or lookup request failed, or its answer is unusable.
    """
    try:
        since_id = None if window.bounded else read_watermark(store, source.slug)
    except ValueError as exc:
        raise SourceFailed(source, str(exc)) from None
    if source.kind == "query":
        return _query(client, store, source, window, since_id, context, prices)
    return _account(client, store, source, window, since_id, context, prices)


# --- queries ------------------------------------------------------------------------------------
def _counts_problem(doc: dict[str, Any]) -> str | None:
    """Why a JSON object is not a counts answer (the OpenAPI shapes); None when it is."""
    data = doc.get("data", [])
    if not isinstance(data, list) or not all(
        isinstance(b, dict) and whole_count(b.get("tweet_count")) is not None for b in data
    ):
        return "counts data is not a list of buckets with a whole tweet_count"
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        return "counts meta is not an object"
    total = meta.get("total_tweet_count")
    if total is not None and whole_count(total) is None:
        return "counts meta.total_tweet_count is not a whole number"
    token = meta.get("next_token")
    if token is not None and not (isinstance(token, str) and _TOKEN.fullmatch(token)):
        return "counts meta.next_token is not a pagination token"
    if "data" not in doc and "errors" in doc:
        return "counts answer holds errors and no data"
    return None


def _query(
    client: XClient,
    store: Store,
    source: Source,
    window: Window,
    since_id: str | None,
    context: FetchContext,
    prices: Prices,
) -> Estimate:
    now = context.now()
    archive = window.start is not None and window.start < now - timedelta(
        days=xapi.RECENT_COUNTS_DAYS
    )
    params: dict[str, Any] = {"query": source.value, "granularity": "day"}
    if window.start is not None and window.end is not None:
        params["start_time"], params["end_time"] = window.start, window.end
    elif since_id is not None:
        params["since_id"] = since_id
    endpoint = xapi.COUNTS_ALL if archive else xapi.COUNTS_RECENT
    total, token, pages = 0, None, 0
    while True:
        pages += 1
        fetched = client.fetch(
            endpoint,
            functools.partial(client.counts_page, params, token, archive=archive),
            context,
            _keep(store, source),
            _counts_problem,
        )
        if not isinstance(fetched, Fetched):
            path = xapi.PATHS[endpoint]
            raise SourceFailed(source, f"GET {path}: {fetched}"[:MAX_REASON], requests=pages)
        meta = fetched.doc.get("meta", {})
        page_total = whole_count(meta.get("total_tweet_count"))
        if page_total is None:
            page_total = sum(b["tweet_count"] for b in fetched.doc.get("data", []))
        total += page_total
        token = meta.get("next_token")
        if token is None or pages >= MAX_COUNT_PAGES:
            break
    spent = context.stats.requests * prices.counts_request
    where = "since the watermark" if since_id else "in the window"
    detail = f"GET {xapi.PATHS[endpoint]}: {total} posts {where} ({pages} page(s))"
    return Estimate(
        source,
        total,
        "counts_all" if archive else "counts_recent",
        detail,
        total * prices.post_read,
        counts_requests=context.stats.requests,
        spent_micros=spent,
    )


def _keep(store: Store, source: Source) -> Callable[[bytes, str, dict[str, Any] | None], Any]:
    """Keep an unusable answer under ``state/dry-run/_rejected/`` (nothing received is lost)."""

    def keep(body: bytes, reason: str, refusal: dict[str, Any] | None) -> dict[str, Any]:
        record: dict[str, Any] = {"reason": reason}
        if body:
            key = f"{STATE_PREFIX}/dry-run/_rejected/{source.slug}-{sha256_hex(body)[:16]}.body"
            store.put(key, body, "application/octet-stream")
            record["key"] = key
        return record

    return keep


# --- accounts -----------------------------------------------------------------------------------
def _account(
    client: XClient,
    store: Store,
    source: Source,
    window: Window,
    since_id: str | None,
    context: FetchContext,
    prices: Prices,
) -> Estimate:
    cached = stored_user_id(store, source.value) is not None
    lookup_micros = 0 if cached else prices.user_read
    rate = _last_rate(store, source.slug)
    if rate is not None:
        per_hour, basis = rate
        hours = _window_hours(window, since_id, context.now())
        posts = min(math.ceil(per_hour * hours), TIMELINE_REACH)
        detail = f"last run's rate, {per_hour:.2f} posts/hour ({basis}), over {hours:.1f} h"
        return Estimate(
            source, posts, "last_run_rate", detail, posts * prices.post_read + lookup_micros
        )
    count = _tweet_count(client, store, source, context)
    posts = min(count, TIMELINE_REACH)
    detail = (
        f"no earlier run: the user's post count ({count}, public_metrics.tweet_count), at most "
        f"the {TIMELINE_REACH} a timeline reaches back"
    )
    lookups = context.stats.user_lookups
    return Estimate(
        source,
        posts,
        "user_tweet_count",
        detail,
        posts * prices.post_read + lookup_micros,
        user_lookups=lookups,
        spent_micros=lookups * prices.user_read,
    )


def _window_hours(window: Window, since_id: str | None, now: datetime) -> float:
    if window.start is not None and window.end is not None:
        return max((window.end - window.start).total_seconds(), 0.0) / 3600
    number = parse_id(since_id) if since_id else None
    if number is None:
        return 7 * 24.0  # a first incremental run reads what the timeline holds, about a week
    return max((now - snowflake_time(number)).total_seconds(), 0.0) / 3600


def _last_rate(store: Store, slug: str) -> tuple[float, str] | None:
    """Posts per hour of the last bounded window the watermark's manifest records, or None."""
    from etl.storage.keys import watermark_key

    try:
        mark = read_json(store, watermark_key(slug))
        key = mark.get("manifest") if mark else None
        manifest = (
            read_json(store, key) if isinstance(key, str) and key.startswith("raw/") else None
        )
    except ValueError:
        return None
    if manifest is None:
        return None
    window = manifest.get("window")
    tweets = whole_count((manifest.get("totals") or {}).get("tweets"))
    if not isinstance(window, dict) or tweets is None:
        return None
    try:
        start = datetime.fromisoformat(str(window.get("start")))
        end = datetime.fromisoformat(str(window.get("end")))
        hours = (end - start).total_seconds() / 3600
    except (TypeError, ValueError):
        return None  # an incremental window has no bounds to make a rate of
    if not 0 < hours <= 24 * 366:
        return None
    return tweets / hours, f"{tweets} posts in {window.get('label', 'its window')}"


def _tweet_count(client: XClient, store: Store, source: Source, context: FetchContext) -> int:
    before = context.stats.requests
    fetched = client.fetch(
        xapi.USER_LOOKUP,
        lambda: client.lookup_user(source.value, _LOOKUP_FIELDS),
        context,
        _keep(store, source),
    )
    context.stats.user_lookups += context.stats.requests - before
    if not isinstance(fetched, Fetched):
        raise SourceFailed(
            source, f"user lookup of @{source.value}: {fetched}"[:MAX_REASON], requests=1
        )
    data = fetched.doc.get("data")
    metrics = data.get("public_metrics") if isinstance(data, dict) else None
    count = whole_count(metrics.get("tweet_count")) if isinstance(metrics, dict) else None
    if count is None:
        raise SourceFailed(
            source,
            f"user lookup of @{source.value} gave no usable public_metrics.tweet_count",
            requests=context.stats.requests,
            user_lookups=context.stats.user_lookups,
        )
    return count
