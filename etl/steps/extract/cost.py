"""What an extraction costs under pay-per-use, and the budget that caps it.

- :class:`CostCounts`: one source's billable reads (posts, users, counts requests), priced in
  whole micro-dollars (:mod:`etl.pricing`), as the manifest, the XCom summary and the lineage facet
  record them;
- :class:`DailyReads`: the post and user ids read on the current UTC day, kept in the store under
  ``state/billing/day=<day>/<slug>.json`` (one object per source, at most :data:`MAX_DAY_IDS` ids
  each; older days are deleted), so a post read again the same day (an overlapping window, a
  rerun) counts as deduplicated: X does not bill it twice;
- :class:`Spending`: the budget of a run (per run, per source, per month) and what was spent so
  far; before each request it says how many posts the request may return, or that the budget is
  spent (:func:`fit_max_results`);
- :func:`month_spent`: what the calendar month spent, from the manifests in the store and, when the
  API answers it, ``GET /2/usage/tweets``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from etl.payloads import COST_COUNT_FIELDS
from etl.pricing import Budget, Prices, usd
from etl.storage.keys import (
    BILLING_PREFIX,
    MANIFEST_NAME,
    RAW_PREFIX,
    billing_key,
    billing_prefix,
)

if TYPE_CHECKING:
    from datetime import datetime

    from etl.config import PipelineConfig
    from etl.payloads import CostPayload
    from etl.steps.extract.client import FetchContext, XClient
    from etl.storage.store import Store

log = logging.getLogger(__name__)

MAX_DAY_IDS = 200_000
"""Ids kept per source and UTC day; past it, new ids count as billable (never under-counted)."""
MAX_DAY_OBJECTS = 1_000
"""Day objects read (one per source); past it, the others are not consulted."""
MAX_STATE_BYTES = 8 * 1024 * 1024
"""A day object larger than this is ignored (its reads count as billable)."""
MAX_MANIFESTS = 100_000
"""Manifests read to sum a month's spending; past it, the sum stops (and says so)."""
MAX_COUNT = 10**12
"""The largest count accepted from a manifest or the API (more posts than X holds)."""

_ID = re.compile(r"[0-9]{1,19}")


def whole_count(value: object) -> int | None:
    """``value`` when it is a whole number from 0 to :data:`MAX_COUNT` (a JSON int), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


@dataclass
class CostCounts:
    """One source's billable reads; see :class:`etl.payloads.CostPayload` for the fields."""

    posts_read: int = 0
    posts_billable: int = 0
    posts_deduplicated: int = 0
    user_reads: int = 0
    user_reads_billable: int = 0
    user_reads_deduplicated: int = 0
    user_reads_cached: int = 0
    counts_requests: int = 0

    def micros(self, prices: Prices) -> int:
        """The cost in micro-dollars: billable posts and users, and counts requests."""
        return (
            self.posts_billable * prices.post_read
            + self.user_reads_billable * prices.user_read
            + self.counts_requests * prices.counts_request
        )

    def plus(self, other: CostCounts) -> CostCounts:
        """The sum of two counts (a window continued over several calls)."""
        return CostCounts(**{n: getattr(self, n) + getattr(other, n) for n in COST_COUNT_FIELDS})

    def payload(self, prices: Prices) -> CostPayload:
        """The counts with the prices and the cost, as the manifest and XCom record them."""
        micros = self.micros(prices)
        return {
            "prices": prices.as_dict(),
            **asdict(self),  # type: ignore[typeddict-item]  # COST_COUNT_FIELDS, in order
            "estimated_cost_micro_usd": micros,
            "estimated_cost_usd": usd(micros),
        }

    @classmethod
    def from_manifest(cls, doc: object) -> CostCounts:
        """The counts an (incomplete) manifest's ``cost`` recorded; unusable fields read as 0."""
        if not isinstance(doc, dict):
            return cls()
        return cls(**{n: whole_count(doc.get(n)) or 0 for n in COST_COUNT_FIELDS})


# --- reads X does not bill twice within a UTC day -----------------------------------------------
class DailyReads:
    """The post and user ids read on one UTC day, by every source, as the store records them.

    Each source writes its own object (the DAG's sources run in parallel and never write the same
    key); all objects of the day are read, so a post another source read today counts as
    deduplicated too. Unreadable objects and ids that are not ids are ignored: the reads they
    would have excused count as billable, so the cost is never understated.
    """

    def __init__(self, store: Store, slug: str, day: str) -> None:
        self.store = store
        self.slug = slug
        self.day = day
        self._seen_posts: set[str] = set()
        self._seen_users: set[str] = set()
        self._own_posts: list[str] = []
        self._own_users: list[str] = []
        self._changed = False

    @classmethod
    def load(cls, store: Store, slug: str, now: datetime) -> DailyReads:
        """The ids read so far on ``now``'s UTC day.

        Args:
            store: where ``state/`` lives.
            slug: the source that is about to read (its own object is rewritten on save).
            now: the current time.

        Returns:
            The day's reads.
        """
        reads = cls(store, slug, now.strftime("%Y-%m-%d"))
        own = billing_key(reads.day, slug)
        for key in store.list(billing_prefix(reads.day))[:MAX_DAY_OBJECTS]:
            posts, users = _day_ids(store, key)
            reads._seen_posts.update(posts)
            reads._seen_users.update(users)
            if key == own:
                reads._own_posts, reads._own_users = posts, users
        return reads

    def read_post(self, post_id: object) -> bool:
        """Record a post read; True when it is billable (not read before today)."""
        return self._read(post_id, self._seen_posts, self._own_posts)

    def read_user(self, user_id: object) -> bool:
        """Record a user read; True when it is billable (not read before today)."""
        return self._read(user_id, self._seen_users, self._own_users)

    def _read(self, item: object, seen: set[str], own: list[str]) -> bool:
        if not isinstance(item, str) or not _ID.fullmatch(item):
            return True  # not an id we can remember: billed, as far as we know
        if item in seen:
            return False
        if len(own) < MAX_DAY_IDS:
            seen.add(item)
            own.append(item)
            self._changed = True
        return True

    def save(self) -> None:
        """Write this source's ids of the day; delete its objects of earlier days."""
        if self._changed:
            from etl.steps.extract.land import encode_json

            doc = {"day": self.day, "source": self.slug, "posts": self._own_posts}
            doc["users"] = self._own_users
            self.store.put(billing_key(self.day, self.slug), encode_json(doc), "application/json")
            self._changed = False
        suffix = f"/{self.slug}.json"
        for key in self.store.list(BILLING_PREFIX):
            if key.endswith(suffix) and not key.startswith(billing_prefix(self.day)):
                self.store.delete(key)


def _day_ids(store: Store, key: str) -> tuple[list[str], list[str]]:
    try:
        body = store.get(key)
        if len(body) > MAX_STATE_BYTES:
            return [], []
        from etl.steps.extract.client import parse_json_object

        doc = parse_json_object(body)
    except Exception:  # noqa: BLE001 - a broken day object excuses nothing; reads stay billable
        return [], []
    if isinstance(doc, str):
        return [], []

    def ids(name: str) -> list[str]:
        items = doc.get(name)
        if not isinstance(items, list):
            return []
        return [i for i in items[:MAX_DAY_IDS] if isinstance(i, str) and _ID.fullmatch(i)]

    return ids("posts"), ids("users")


# --- the budget ---------------------------------------------------------------------------------
@dataclass
class Spending:
    """A run's budget and what it has spent, shared by its sources.

    Attributes:
        prices: what reads cost.
        budget: the caps (micro-dollars).
        names: the setting each cap came from (``per_run`` -> ``--max-cost-usd``), for messages.
        run_spent: micro-dollars spent by this run so far (every source; updated as reads land).
        month_spent: micro-dollars the month had spent before this run.
        month_basis: how ``month_spent`` was found (for the summary).
    """

    prices: Prices = field(default_factory=Prices)
    budget: Budget = field(default_factory=Budget)
    names: dict[str, str] = field(default_factory=dict)
    run_spent: int = 0
    month_spent: int = 0
    month_basis: str = ""

    @classmethod
    def from_config(
        cls, config: PipelineConfig | None, run_cap: int | None, run_name: str
    ) -> Spending:
        """The config's prices and budget, the per-run cap lowered to a flag's or param's.

        Args:
            config: the pipeline config (None: X's published rates, no cap).
            run_cap: the per-run cap of the flag or param (micro-dollars), or None.
            run_name: that flag or param (``--max-cost-usd``), named in messages when its cap binds.

        Returns:
            The spending, nothing spent yet.
        """
        budget = (config.budget if config else Budget()).with_run_cap(run_cap)
        names = {"per_run": run_name} if run_cap is not None and budget.per_run == run_cap else {}
        return cls(config.prices if config else Prices(), budget, names)

    def headroom(self, source_spent: int) -> tuple[int, str] | None:
        """What may still be spent, and the cap that binds; None when nothing is capped.

        Args:
            source_spent: micro-dollars the current source spent in this run.

        Returns:
            ``(micro-dollars left, name of the binding cap)`` or None.
        """
        left: list[tuple[int, str]] = []
        budget = self.budget
        if budget.per_run is not None:
            left.append((budget.per_run - self.run_spent, self.cap_name("per_run")))
        if budget.per_source is not None:
            left.append((budget.per_source - source_spent, self.cap_name("per_source")))
        if budget.per_month is not None:
            spent = self.month_spent + self.run_spent
            left.append((budget.per_month - spent, self.cap_name("per_month")))
        return min(left) if left else None

    def cap_name(self, cap: str) -> str:
        """Where cap ``cap`` (``per_run``, ``per_source``, ``per_month``) came from, for messages."""
        return self.names.get(cap, f"budget.{cap}_usd")


def split_run_cap(budget: Budget, shares: int, run_name: str) -> tuple[Budget, dict[str, str]]:
    """A per-run cap shared out among sources that run apart (the DAG's parallel tasks).

    Each source may spend the cap divided by the number of sources (or its own per-source cap,
    when lower), so the sources together never spend more than the cap, whatever their order.

    Args:
        budget: the run's budget.
        shares: the number of sources of the run.
        run_name: where the per-run cap came from (``max_cost_usd``), for messages.

    Returns:
        The budget of one source (no per-run cap left) and the names of its caps.
    """
    names = {"per_run": run_name}
    if budget.per_run is None:
        return budget, names
    share = budget.per_run // max(shares, 1)
    if budget.per_source is not None and budget.per_source <= share:
        return Budget(None, budget.per_source, budget.per_month), names
    names["per_source"] = f"{run_name} / {max(shares, 1)} sources"
    return Budget(None, share, budget.per_month), names


def with_month_spent(spending: Spending, store: Store, client: XClient, now: datetime) -> None:
    """Fill ``spending.month_spent`` (see :func:`month_spent`) when a monthly cap is set.

    Args:
        spending: the run's spending; changed in place.
        store: whose manifests are summed.
        client: to ask ``GET /2/usage/tweets``.
        now: the current time.
    """
    if spending.budget.per_month is None:
        return
    import random
    import time

    from etl.steps.extract.client import DEFAULT_POLICY, FetchContext

    context = FetchContext(time.time, time.sleep, DEFAULT_POLICY, random.Random())
    spending.month_spent, spending.month_basis = month_spent(
        store, now, spending.prices, client, context
    )


def fit_max_results(
    headroom: tuple[int, str] | None, price: int, low: int, high: int
) -> int | tuple[int, str]:
    """The largest ``max_results`` whose worst case (every post new and billed) fits the budget.

    Args:
        headroom: from :meth:`Spending.headroom`.
        price: one post read, in micro-dollars.
        low: the endpoint's smallest ``max_results``.
        high: its largest.

    Returns:
        The ``max_results`` to send, or the headroom when not even ``low`` posts fit (stop).
    """
    if headroom is None or price == 0:
        return high
    left, _ = headroom
    fits = max(left, 0) // price
    if fits < low:
        return headroom
    return min(fits, high)


# --- the month ------------------------------------------------------------------------------------
def month_spent(
    store: Store,
    now: datetime,
    prices: Prices,
    client: XClient | None = None,
    context: FetchContext | None = None,
) -> tuple[int, str]:
    """What the calendar month (UTC) of ``now`` has spent, in micro-dollars, and how it was found.

    The manifests in the store that finished this month are summed (a window continued over
    several runs counts in the month it completed or last stopped in); when ``client`` is given,
    ``GET /2/usage/tweets`` is asked too, and its ``project_usage`` (posts read this billing cycle,
    by every app of the project) priced as post reads: the larger of the two is taken.

    Args:
        store: the store whose ``raw/`` manifests are summed.
        now: the current time.
        prices: to price the API's post usage.
        client: to ask the usage endpoint (None: manifests only).
        context: clock, sleep and policy for that request.

    Returns:
        ``(micro-dollars, basis)``.
    """
    month = now.strftime("%Y-%m")
    from_manifests, read = 0, 0
    keys = [k for k in store.list(f"{RAW_PREFIX}/") if k.endswith(f"/{MANIFEST_NAME}")]
    for key in keys[:MAX_MANIFESTS]:
        read += 1
        from_manifests += _manifest_micros(store, key, month)
    basis = f"{read} manifest(s) of {month}" + (" (limit reached)" if len(keys) > read else "")
    if client is None or context is None:
        return from_manifests, basis
    posts = usage_posts(client, context)
    if posts is None:
        return from_manifests, basis + "; GET /2/usage/tweets did not answer"
    from_usage = posts * prices.post_read
    basis += f"; GET /2/usage/tweets: {posts} posts this billing cycle"
    return max(from_manifests, from_usage), basis


def _manifest_micros(store: Store, key: str, month: str) -> int:
    from etl.storage.store import read_json

    try:
        doc = read_json(store, key)
    except ValueError:
        return 0
    if doc is None or not str(doc.get("finished_at", "")).startswith(month):
        return 0
    cost = doc.get("cost")
    return (whole_count(cost.get("estimated_cost_micro_usd")) or 0) if isinstance(cost, dict) else 0


def usage_posts(client: XClient, context: FetchContext) -> int | None:
    """``project_usage`` of ``GET /2/usage/tweets`` (posts read this cycle), or None.

    Args:
        client: the API client.
        context: clock, sleep and policy.

    Returns:
        The count, or None when the endpoint refused, failed or answered something else.
    """
    from etl import xapi
    from etl.steps.extract.client import Fetched

    def nothing_kept(body: bytes, reason: str, refusal: dict[str, Any] | None) -> dict[str, Any]:
        log.warning("GET /2/usage/tweets: %s", reason)
        return {"reason": reason}

    fetched = client.fetch(xapi.USAGE, lambda: client.usage(31), context, nothing_kept)
    if not isinstance(fetched, Fetched):
        log.warning("GET /2/usage/tweets: %s", fetched)
        return None
    data = fetched.doc.get("data")
    return whole_count(data.get("project_usage")) if isinstance(data, dict) else None
