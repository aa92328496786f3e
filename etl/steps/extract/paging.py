"""One source over one window: resolve the account, page to the end, land each page as it comes.

:class:`SourceRun` holds the state of one :func:`~etl.steps.extract.run.extract_source` call. It
pages with ``max_results=100`` (the fewest requests the API allows) and lands every usable body
unchanged the moment it arrives; a 200 whose body is not a usable page (:func:`_page_problem`) is
kept under the window's ``_rejected/`` and the request retried. A window with pages but no
manifest (an earlier call failed midway) resumes after its last landed page (:func:`resume`); a
``next_token`` that was already requested (pagination that loops) fails the source at once.

The watermark only advances to ids that are valid by the API's schema and plausible by their
Snowflake time (:func:`etl.ids.watermark_problem`): a post with any other id is landed like every
post, it just does not count. A stored watermark that is unusable, or that the API refuses as
``since_id``, fails the source with the ``tweetpipe state reset`` command that clears it.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from etl import xapi
from etl.errors import SourceFailed, WatermarkError
from etl.ids import parse_id, watermark_problem
from etl.steps.extract.client import (
    USER_FIELDS,
    Fetched,
    Refused,
    UsageCapped,
    parse_json_object,
)
from etl.steps.extract.cost import CostCounts, DailyReads, Spending, fit_max_results
from etl.steps.extract.land import (
    advance_watermark,
    incremental_window,
    land_page,
    land_rejected,
    landed_pages,
    read_watermark,
    stored_user_id,
)
from etl.storage.keys import (
    manifest_key,
    page_key,
    rejected_key,
    user_key,
    watermark_key,
    window_label,
    window_prefix,
)
from etl.storage.store import sha256_hex

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    import requests

    from etl.config import Source, Window
    from etl.steps.extract.client import FetchContext, XClient
    from etl.storage.store import Store

log = logging.getLogger(__name__)

MAX_RESULTS = 100
# What the curated contract needs; everything else the API sends is kept in raw/ anyway.
TWEET_FIELDS = (
    "created_at",
    "author_id",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "public_metrics",
    "entities",
    "lang",
    "possibly_sensitive",
    "edit_history_tweet_ids",
    "edit_controls",
    "note_tweet",
    "withheld",
)
EXPANSIONS = ("author_id",)

# What a pagination token may be: the API's are base32/base36/decimal; this admits URL-safe
# base64 too, and nothing that could break a log line, a manifest or a query string.
_NEXT_TOKEN = re.compile(r"[A-Za-z0-9_.~+/=-]{1,512}")

_PAGE_MEMBERS: dict[str, type] = {"data": list, "includes": dict, "meta": dict, "errors": list}


def _page_problem(doc: dict[str, Any]) -> str | None:
    """Why a JSON object is not a usable page of posts, or None when it is.

    Absent members are fine (an empty page has no ``data``); present ones must have the types of
    the OpenAPI document, and ``meta.next_token`` must look like a token, since it is sent back.
    """
    for name, kind in _PAGE_MEMBERS.items():
        if name in doc and not isinstance(doc[name], kind):
            return f"page {name} is {type(doc[name]).__name__}, not {kind.__name__}"
    if not all(isinstance(item, dict) for item in doc.get("data", ())):
        return "page data holds an item that is not an object"
    token = doc.get("meta", {}).get("next_token")
    if token is not None and not (isinstance(token, str) and _NEXT_TOKEN.fullmatch(token)):
        return "page meta.next_token is not a pagination token (1-512 URL-safe ASCII characters)"
    return None


@dataclass
class Page:
    """One landed page of the window, as the manifest lists it."""

    number: int
    key: str
    sha256: str
    size: int
    tweets: int
    api_errors: int
    newest_id: str | None
    next_token: str | None
    request_token: str | None
    created: bool
    resumed: bool = False
    fetch: dict[str, Any] | None = None
    ids_not_counted: int = 0

    def entry(self) -> dict[str, Any]:
        """The page's entry in the manifest (its fetch facts inline)."""
        doc = {k: v for k, v in self.__dict__.items() if k != "fetch"}
        doc["pagination_token"] = doc.pop("request_token")
        if self.fetch is not None:
            doc.update(self.fetch)
        return doc


class _Facts(NamedTuple):
    tweets: int
    api_errors: int
    newest_id: str | None
    next_token: str | None
    ids_not_counted: int


def _page_facts(doc: dict[str, Any], now: datetime) -> _Facts:
    """What a parsed page holds; ``newest_id`` counts only ids fit for the watermark.

    A post whose id is not one (malformed, in the future, at odds with its ``created_at``) is
    landed with its page like any other; it is counted in ``ids_not_counted`` instead.
    """
    data = doc.get("data")
    tweets = data if isinstance(data, list) else []
    errors = doc.get("errors")
    newest: int | None = None
    not_counted = 0
    for tweet in tweets:
        if not isinstance(tweet, dict):
            continue  # not a post at all: the transform quarantines it
        post_id = tweet.get("id")
        if watermark_problem(post_id, tweet.get("created_at"), now) is not None:
            not_counted += 1
            continue
        number = parse_id(post_id)
        if number is not None and (newest is None or number > newest):
            newest = number
    meta = doc.get("meta")
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return _Facts(
        len(tweets),
        len(errors) if isinstance(errors, list) else 0,
        str(newest) if newest is not None else None,
        str(token) if token else None,
        not_counted,
    )


def newest_of(*ids: str | None) -> str | None:
    """The largest of the ids that parse as post ids, or None."""
    present = [n for n in map(parse_id, ids) if n is not None]
    return str(max(present)) if present else None


def resume(store: Store, prefix: str, now: datetime) -> list[Page]:
    """Pages an earlier, unfinished call landed under ``prefix`` (read back, not refetched).

    Args:
        store: where the window's pages are.
        prefix: the window's prefix.
        now: for which post ids count for the watermark.

    Returns:
        The pages, in order, each with the token that requested it.

    Raises:
        ValueError: a landed page does not parse, or the pages have a gap.
    """
    pages = []
    token: str | None = None
    for number, key in enumerate(landed_pages(store, prefix), start=1):
        body = store.get(key)
        parsed = parse_json_object(body)
        if isinstance(parsed, str) or key != page_key(prefix, number):
            raise ValueError(f"{store.url}/{key}: cannot resume from it ({parsed or 'gap'})")
        facts = _page_facts(parsed, now)
        pages.append(
            Page(
                number,
                key,
                sha256_hex(body),
                len(body),
                facts.tweets,
                facts.api_errors,
                facts.newest_id,
                facts.next_token,
                token,
                created=False,
                resumed=True,
                ids_not_counted=facts.ids_not_counted,
            )
        )
        token = facts.next_token
    return pages


def request_params(source: Source, window: Window, since_id: str | None) -> dict[str, Any]:
    """The query of every page request, in tweepy's names (a bounded window, or ``since_id``)."""
    params: dict[str, Any] = {
        "max_results": MAX_RESULTS,
        "tweet_fields": list(TWEET_FIELDS),
        "expansions": list(EXPANSIONS),
        "user_fields": list(USER_FIELDS),
    }
    if window.start is not None and window.end is not None:
        params["start_time"] = window.start
        params["end_time"] = window.end
    elif since_id is not None:
        params["since_id"] = since_id
    return params


class SourceRun:
    """The state of one :func:`~etl.steps.extract.run.extract_source` call.

    Made for a source and a window, it reads the watermark (an incremental window) and names the
    window's keys before any request; :func:`paginate` then fills :attr:`pages`.
    """

    def __init__(
        self, client: XClient, store: Store, source: Source, window: Window, context: FetchContext
    ) -> None:
        self.client = client
        self.store = store
        self.source = source
        self.window = window
        self.context = context
        self.started = context.now()
        self.endpoint = xapi.SOURCE_ENDPOINTS[source.kind]
        self.pages: list[Page] = []
        self.since_id: str | None = None
        if window.bounded:
            self.label = window_label(window, None, self.started)
        else:
            self.since_id = self._watermark()
            self.label = incremental_window(
                store, source.slug, self.endpoint, self.since_id, self.started
            )
        self.prefix = window_prefix(source.slug, self.endpoint, self.label)
        self.manifest_key = manifest_key(self.prefix)
        self.rejected: list[str] = []
        self.user: dict[str, Any] = {}
        self.on_page: Callable[[int], None] | None = None
        self.cost = CostCounts()
        self.spending = Spending()
        self.reads: DailyReads | None = None

    def fail(self, reason: str) -> SourceFailed:
        stats = self.context.stats
        return SourceFailed(
            self.source,
            reason,
            [p.key for p in self.pages],
            requests=stats.requests,
            user_lookups=stats.user_lookups,
            retries=stats.retries,
            rate_limit_waits=stats.rate_limit_waits,
            wait_seconds=stats.wait_seconds,
        )

    def spent(self) -> int:
        """Micro-dollars this call has spent so far."""
        return self.cost.micros(self.spending.prices)

    def _charge(self, before: int) -> None:
        self.spending.run_spent += self.spent() - before

    def charge_posts(self, doc: dict[str, Any]) -> None:
        """Count the posts of a landed page: billable unless read before on the same UTC day."""
        before = self.spent()
        data = doc.get("data")
        for tweet in data if isinstance(data, list) else ():
            post_id = tweet.get("id") if isinstance(tweet, dict) else None
            self.cost.posts_read += 1
            if self.reads is None or self.reads.read_post(post_id):
                self.cost.posts_billable += 1
            else:
                self.cost.posts_deduplicated += 1
        self._charge(before)

    def charge_user(self, user_id: str) -> None:
        """Count a user lookup that returned a user."""
        before = self.spent()
        self.cost.user_reads += 1
        if self.reads is None or self.reads.read_user(user_id):
            self.cost.user_reads_billable += 1
        else:
            self.cost.user_reads_deduplicated += 1
        self._charge(before)

    def over_budget(self, what: str, headroom: tuple[int, str], worst: int) -> Stopped:
        """The stop before a request whose worst case the budget cannot pay."""
        from etl.pricing import usd_text

        left, name = headroom
        return Stopped(
            "budget",
            name,
            f"budget cap {name} reached: {usd_text(max(left, 0))} left, and {what} may cost "
            f"{usd_text(worst)}; spent {usd_text(self.spent())} on this source",
        )

    def reset_command(self) -> str:
        """The command that clears this source's watermark, ready to paste into a shell."""
        return (
            f"tweetpipe state reset --source {shlex.quote(self.source.spec)} "
            f"--store {shlex.quote(self.store.url)}"
        )

    def _watermark(self) -> str | None:
        """The stored watermark, checked before any request; unusable -> the source fails."""
        try:
            return read_watermark(self.store, self.source.slug, now=self.started)
        except WatermarkError as exc:
            raise self.fail(f"{exc}; clear it with `{self.reset_command()}`") from None

    def refused_since_id(self, refused: Refused) -> str:
        """Why a request carrying the watermark as ``since_id`` was refused, and the way out."""
        blamed = "since_id" in refused.parameters
        cause = "refused" if blamed else "refused a request carrying"
        return (
            f"the API {cause} since_id={self.since_id}, the watermark "
            f"{watermark_key(self.source.slug)}; if it is wrong, clear it with "
            f"`{self.reset_command()}` (the next run starts without it)"
        )

    def keep_rejected(
        self, what: str
    ) -> Callable[[bytes, str, dict[str, Any] | None], dict[str, Any]]:
        def keep(body: bytes, reason: str, refusal: dict[str, Any] | None) -> dict[str, Any]:
            record: dict[str, Any] = {"key": None, "sha256": None, "size": 0, "reason": reason}
            if body:  # a body refused on its declared length left nothing to keep
                key = rejected_key(self.prefix, what, sha256_hex(body))
                put = land_rejected(self.store, key, body)
                self.rejected.append(put.key)
                record.update(key=put.key, sha256=put.sha256, size=put.size)
            if refusal is not None:
                record["refusal"] = refusal
            return record

        return keep

    def resolve_user(self) -> str:
        """The account's user id: process cache, then ``state/users/``, then one lookup."""
        username = self.source.value
        cached = self.client.cached_user_id(username)
        if cached is None:
            cached = stored_user_id(self.store, username)
        if cached is not None:
            self.user = {"username": username, "id": cached, "looked_up": False}
            self.client.remember_user_id(username, cached)
            self.cost.user_reads_cached += 1
            return cached
        price = self.spending.prices.user_read
        headroom = self.spending.headroom(self.spent())
        if headroom is not None and headroom[0] < price:
            raise self.over_budget(f"the lookup of @{username}", headroom, price)
        before = self.context.stats.requests
        fetched = self.client.fetch(
            xapi.USER_LOOKUP,
            lambda: self.client.lookup_user(username),
            self.context,
            self.keep_rejected("user-lookup"),
        )
        self.context.stats.user_lookups += self.context.stats.requests - before
        if isinstance(fetched, UsageCapped):
            raise Stopped.usage_cap(fetched, f"user lookup of @{username}")
        if not isinstance(fetched, Fetched):
            raise self.fail(f"user lookup of @{username}: {fetched}")
        data = fetched.doc.get("data")
        if not isinstance(data, dict) or parse_id(data.get("id")) is None:
            raise self.fail(
                f"user lookup of @{username} found no user: {_errors_text(fetched.doc)}"
            )
        user_id = str(data["id"])
        self.charge_user(user_id)
        self.store.put(user_key(username), fetched.body, "application/json")
        self.client.remember_user_id(username, user_id)
        self.user = {
            "username": username,
            "id": user_id,
            "looked_up": True,
            "state_key": user_key(username),
        }
        return user_id

    def page_call(
        self, target: str, params: dict[str, Any], token: str | None
    ) -> Callable[[], requests.Response]:
        if self.source.kind == "account":
            return lambda: self.client.timeline_page(target, params, token)
        return lambda: self.client.search_page(target, params, token)

    def land(self, fetched: Fetched, token: str | None) -> Page:
        number = len(self.pages) + 1
        put = land_page(self.store, page_key(self.prefix, number), fetched.body)
        facts = _page_facts(fetched.doc, self.context.now())
        if facts.ids_not_counted:
            log.warning(
                "%s: %d post id(s) in %s do not count for the watermark (malformed, in the "
                "future or at odds with created_at)",
                self.source,
                facts.ids_not_counted,
                put.key,
            )
        return Page(
            number,
            put.key,
            put.sha256,
            put.size,
            facts.tweets,
            facts.api_errors,
            facts.newest_id,
            facts.next_token,
            token,
            created=put.created,
            ids_not_counted=facts.ids_not_counted,
            fetch={
                "status": fetched.status,
                "fetched_at": fetched.fetched_at,
                "rate_limit": fetched.rate_limit.as_dict(),
                "attempts": fetched.attempts,
                "rejected": list(fetched.rejected),
            },
        )


def _errors_text(doc: dict[str, Any]) -> str:
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return " - ".join(str(first[k]) for k in ("title", "detail") if first.get(k)) or "no data"
    return "no data"


def advance(job: SourceRun, newest_id: str | None) -> str | None:
    """Advance the source's watermark, after the window's manifest is written.

    An unusable watermark fails an incremental run (it read it at the start, so it changed
    meanwhile); a bounded run, which does not start from it, lands anyway and leaves it to the
    next incremental run to report, with a warning now.

    Args:
        job: the source's run.
        newest_id: the newest plausible post id of the window, or None.

    Returns:
        The watermark after the call, or None when it cannot advance (a bounded run).

    Raises:
        SourceFailed: an incremental run whose watermark cannot advance.
    """
    try:
        return advance_watermark(
            job.store, job.source.slug, newest_id, manifest=job.manifest_key, now=job.context.now()
        )
    except WatermarkError as exc:
        reason = (
            f"the window is landed ({job.manifest_key}) but the watermark cannot advance: {exc}; "
            f"clear it with `{job.reset_command()}`"
        )
        if not job.window.bounded:
            raise job.fail(reason) from None
        log.warning("%s: %s", job.source, reason)
        return None


def paginate(job: SourceRun, target: str, params: dict[str, Any]) -> None:
    """Fetch and land pages after ``job.pages`` (resumed ones) until the last has no token.

    Args:
        job: the source's run; each landed page is appended to ``job.pages``.
        target: the user id (a timeline) or the query (a search).
        params: from :func:`request_params`.

    Raises:
        SourceFailed: a request failed for good, the pagination loops or does not end.
    """
    token = job.pages[-1].next_token if job.pages else None
    finished = bool(job.pages) and token is None
    # Every token requested so far (resumed pages too), by the page it fetched: a next_token among
    # them means the pagination loops, and following it would never end.
    requested = {p.request_token: p.number for p in job.pages}
    while not finished:
        if token in requested:
            raise job.fail(_cycle_reason(token, requested[token], len(job.pages)))
        if len(job.pages) >= job.context.policy.max_pages:
            raise job.fail(f"pagination did not end after {job.context.policy.max_pages} pages")
        size = _page_size(job, len(job.pages) + 1)
        requested[token] = len(job.pages) + 1
        fetched = job.client.fetch(
            job.endpoint,
            job.page_call(target, {**params, "max_results": size}, token),
            job.context,
            job.keep_rejected(f"page-{len(job.pages) + 1:05d}"),
            _page_problem,
        )
        if isinstance(fetched, UsageCapped):
            raise Stopped.usage_cap(fetched, f"page {len(job.pages) + 1} of {job.endpoint}")
        if not isinstance(fetched, Fetched):
            reason = f"page {len(job.pages) + 1} of {job.endpoint}: {fetched}"
            if isinstance(fetched, Refused) and fetched.status == 400 and job.since_id:
                reason += f"; {job.refused_since_id(fetched)}"
            raise job.fail(reason)
        page = job.land(fetched, token)
        job.charge_posts(fetched.doc)
        if page.fetch is not None:
            page.fetch["max_results"] = size
        job.pages.append(page)
        log.debug("landed %s (%d posts)", page.key, page.tweets)
        if job.on_page is not None:
            job.on_page(page.tweets)
        token = page.next_token
        finished = token is None


def _page_size(job: SourceRun, number: int) -> int:
    """``max_results`` of the next page: 100, or fewer so the worst case fits the budget.

    Raises:
        Stopped: not even the endpoint's smallest page fits.
    """
    low, high = xapi.MAX_RESULTS_RANGE[job.endpoint]
    price = job.spending.prices.post_read
    size = fit_max_results(job.spending.headroom(job.spent()), price, low, high)
    if isinstance(size, tuple):
        raise job.over_budget(f"page {number} ({low} posts at least)", size, low * price)
    return size


class Stopped(Exception):
    """A source stops before a request: its budget is spent, or the API's usage cap is reached.

    Attributes:
        limit: ``"budget"`` or ``"usage_cap"``.
        name: the budget (``budget.per_run_usd``, ``--max-cost-usd``) or ``X API usage cap``.
        reason: the message.
    """

    def __init__(self, limit: str, name: str, reason: str) -> None:
        super().__init__(reason)
        self.limit = limit
        self.name = name
        self.reason = reason

    @classmethod
    def usage_cap(cls, capped: UsageCapped, what: str) -> Stopped:
        """The stop after a ``UsageCapExceeded`` 429 (sent once, not retried)."""
        detail = ", ".join(p for p in (capped.period, capped.scope) if p)
        name = f"X API usage cap ({detail})" if detail else "X API usage cap"
        return cls("usage_cap", name, f"{what}: {name} reached: {capped.reason}; not retried")

    def record(self) -> dict[str, str]:
        """The manifest's ``incomplete`` entry."""
        return {"limit": self.limit, "name": self.name, "reason": self.reason}


def _cycle_reason(token: str | None, asked_by: int, last: int) -> str:
    shown = repr(token) if token is None or len(token) <= 64 else repr(token[:61] + "...")
    return (
        f"next_token {shown} of page {last} was already requested for page {asked_by}: "
        f"the API's pagination loops (a cycle of {last - asked_by + 1} page(s))"
    )
