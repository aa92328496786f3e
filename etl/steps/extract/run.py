"""Run the extract step: make the client, extract one source or several, report what landed.

One call of :func:`extract_source` handles one source (an account's timeline or a recent-search
query) over one window: it resolves the account (user lookups are cached in ``state/users/``),
pages to the end (:mod:`etl.steps.extract.paging`), lands every body unchanged the moment it
arrives, writes the window's manifest last (:mod:`etl.steps.extract.manifest`) and then advances
the source's watermark. :func:`extract_sources` runs several, each failing alone.

The bearer token is a parameter of :func:`make_client` and lives only inside the tweepy client: it
is redacted from tweepy's debug log, and no message, manifest or landed object carries it.
"""

from __future__ import annotations

import logging
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import tweepy

from etl import xapi
from etl.config import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_MAX_BODY_BYTES,
    MIN_MAX_BODY_BYTES,
    PipelineConfig,
    Source,
    Window,
    parse_max_body_bytes,
)
from etl.errors import SourceFailed, SpendingStopped, WatermarkError
from etl.pricing import Prices
from etl.redact import install_bearer_log_filter
from etl.steps.extract.client import DEFAULT_POLICY, MAX_REASON, FetchContext, RetryPolicy, XClient
from etl.steps.extract.cost import CostCounts, DailyReads, Spending
from etl.steps.extract.land import is_complete, read_watermark, write_manifest
from etl.steps.extract.manifest import build_manifest
from etl.steps.extract.paging import (
    SourceRun,
    Stopped,
    advance,
    paginate,
    request_params,
    resume,
)
from etl.steps.extract.session import ApiSession
from etl.storage.store import read_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from etl.payloads import CostPayload
    from etl.storage.store import Store

log = logging.getLogger(__name__)


def make_client(
    token: str,
    base_url: str | None = None,
    *,
    timeout: tuple[float, float] = (10.0, 60.0),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> XClient:
    """An X API v2 client authenticated with an app bearer token.

    Args:
        token: the bearer token (resolved by the caller: ``X_BEARER_TOKEN``, an Airflow
            connection). It stays inside the client.
        base_url: API base URL, e.g. the emulator's ``http://127.0.0.1:8089``; None for the real
            API (``https://api.twitter.com``).
        timeout: (connect, read) timeout of every request, in seconds; a timeout is retried.
        max_body_bytes: the largest response body accepted, on the wire and decoded; a larger
            one is refused while it streams in (1 KiB to 1 GiB; see :func:`resolve_max_body_bytes`).

    Returns:
        The client.
    """
    if not token or not token.strip():
        raise ValueError("the X API bearer token is empty")
    if not MIN_MAX_BODY_BYTES <= max_body_bytes <= MAX_MAX_BODY_BYTES:
        raise ValueError(
            f"max_body_bytes {max_body_bytes} is not between {MIN_MAX_BODY_BYTES} and "
            f"{MAX_MAX_BODY_BYTES}"
        )
    parts = urlsplit(base_url or xapi.BASE_URL)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"API base URL {base_url!r} is not an http(s) URL")
    if "@" in parts.netloc:  # requests would send them as basic auth, replacing the bearer token
        raise ValueError("the API base URL must not carry credentials (user:password@host)")
    install_bearer_log_filter("tweepy.client")
    session = ApiSession(base_url or xapi.BASE_URL, timeout, max_body_bytes)
    api = tweepy.Client(bearer_token=token, return_type=requests.Response, wait_on_rate_limit=False)
    api.session = session
    return XClient(api, session, token)


# --- one source ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceResult:
    """What :func:`extract_source` did for one source.

    Attributes:
        source: the source.
        status: ``"landed"`` (this call completed the window) or ``"skipped"`` (its manifest
            already existed, so nothing was fetched).
        window: the ``window=`` label in the keys.
        page_keys: every page of the window, in order (also for a skipped window).
        manifest_key: the manifest of the window.
        pages: number of pages.
        tweets: posts in those pages.
        api_errors: partial errors (``errors`` beside ``data``) in those pages.
        requests: HTTP requests sent by this call (user lookup, pages, retries, 429s).
        user_lookups: user-lookup requests among them (0 when the id was cached).
        retries: tries repeated after a server error, network error or broken body.
        rate_limit_waits: waits for a rate-limit reset.
        wait_seconds: seconds spent waiting (rate limits and backoff).
        resumed_pages: pages found landed by an earlier, unfinished call and not fetched again.
        rejected_keys: broken bodies kept under ``_rejected/``.
        newest_id: newest post id in the window, or None.
        watermark: the source's watermark after the call.
        cost: what this call read and what it costs (:mod:`etl.steps.extract.cost`); the
            manifest's ``cost`` covers every call of the window.
    """

    source: Source
    status: str
    window: str
    page_keys: tuple[str, ...]
    manifest_key: str
    pages: int
    tweets: int
    api_errors: int = 0
    requests: int = 0
    user_lookups: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0
    resumed_pages: int = 0
    rejected_keys: tuple[str, ...] = ()
    newest_id: str | None = None
    watermark: str | None = None
    cost: CostPayload = field(default_factory=lambda: CostCounts().payload(Prices()))

    def to_dict(self) -> dict[str, Any]:
        """Small JSON-ready summary (e.g. for XCom)."""
        doc = dict(self.__dict__)
        doc["source"] = {"kind": self.source.kind, "value": self.source.value}
        doc["slug"] = self.source.slug
        doc["page_keys"] = list(self.page_keys)
        doc["rejected_keys"] = list(self.rejected_keys)
        doc["cost"] = dict(self.cost)
        return doc


def _skipped(source: Source, manifest: dict[str, Any], key: str, store: Store) -> SourceResult:
    pages = manifest.get("pages", [])
    totals = manifest.get("totals", {})
    return SourceResult(
        source=source,
        status="skipped",
        window=str(manifest.get("window", {}).get("label", "")),
        page_keys=tuple(p["key"] for p in pages),
        manifest_key=key,
        pages=len(pages),
        tweets=int(totals.get("tweets", 0)),
        api_errors=int(totals.get("api_errors", 0)),
        newest_id=manifest.get("newest_id"),
        watermark=_watermark_or_none(store, source.slug),
    )


def _watermark_or_none(store: Store, slug: str) -> str | None:
    """The watermark for a report; an unusable one reads as none (the next run names it)."""
    try:
        return read_watermark(store, slug)
    except WatermarkError as exc:
        log.warning("%s", exc)
        return None


def extract_source(
    client: XClient,
    store: Store,
    source: Source,
    window: Window,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_page: Callable[[int], None] | None = None,
    rng: random.Random | None = None,
    spending: Spending | None = None,
) -> SourceResult:
    """Extract one source over one window and land it in ``raw/``.

    Pages are landed as they arrive; the manifest is written after the last page, then the
    watermark advances (to the newest plausible post id, :func:`etl.ids.watermark_problem`). A
    window whose manifest exists is skipped without a request; a window with pages but no
    manifest (an earlier call failed or was killed midway) resumes after its last page, for an
    incremental window also in a later run from the same watermark.

    Args:
        client: from :func:`make_client`.
        store: where ``raw/`` and ``state/`` live.
        source: the account or query.
        window: bounded (``start``/``end``) or incremental (from the watermark).
        clock: epoch seconds now (injectable: tests pass a fake clock).
        sleep: waits that many seconds (injectable: tests pass a fake that advances the clock).
        policy: retries, backoff and rate-limit margins.
        on_page: called with the post count of each landed page (progress bars).
        rng: jitter source (default: a fresh ``random.Random``).
        spending: the run's prices, budget and spending so far, shared by its sources (default:
            X's published rates, no cap). No request is sent whose worst case (every post new
            and billed) would exceed a cap: ``max_results`` is lowered to fit, or the source stops.

    Returns:
        Keys, counts, waits and cost of the window.

    Raises:
        SpendingStopped: a budget, or the API's usage cap (a 429 ``UsageCapExceeded``, never
            retried), stopped the source: what was read is landed, the manifest says the window
            is incomplete and why, and the next call continues it.
        SourceFailed: the API refused, or kept failing after the retries; pages landed so far stay.
            Also when the stored watermark is unusable or refused as ``since_id``: the message
            names it and the ``tweetpipe state reset`` command that clears it.
        etl.storage.store.ObjectExistsError: a key already holds a different body (never overwritten).
    """
    context = FetchContext(clock, sleep, policy, rng or random.Random())
    job = SourceRun(client, store, source, window, context)
    job.on_page = on_page
    job.spending = spending or Spending()
    existing = read_json(store, job.manifest_key)
    if existing is not None and is_complete(existing):
        log.info("%s: %s already complete, skipped", source, job.manifest_key)
        return _skipped(source, existing, job.manifest_key, store)
    # A window a spending limit stopped: its cost so far carries over into its manifest.
    carried = CostCounts.from_manifest(existing.get("cost")) if existing else CostCounts()
    job.reads = DailyReads.load(store, source.slug, context.now())
    try:
        target = job.resolve_user() if source.kind == "account" else source.value
        params = request_params(source, window, job.since_id)
        try:
            job.pages = resume(store, job.prefix, context.now())
        except ValueError as exc:
            raise job.fail(str(exc)) from None
        paginate(job, target, params)
    except Stopped as stop:
        raise _stopped(job, stop, carried) from None
    finally:
        _save_reads(job)
    manifest = build_manifest(job, params, context.now(), carried=carried)
    write_manifest(store, job.manifest_key, manifest, replace=existing is not None)
    watermark = advance(job, manifest["newest_id"])
    totals = manifest["totals"]
    return SourceResult(
        source=source,
        status="landed",
        window=job.label,
        page_keys=tuple(p.key for p in job.pages),
        manifest_key=job.manifest_key,
        pages=totals["pages"],
        tweets=totals["tweets"],
        api_errors=totals["api_errors"],
        requests=context.stats.requests,
        user_lookups=context.stats.user_lookups,
        retries=context.stats.retries,
        rate_limit_waits=context.stats.rate_limit_waits,
        wait_seconds=context.stats.wait_seconds,
        resumed_pages=totals["resumed_pages"],
        rejected_keys=tuple(job.rejected),
        newest_id=manifest["newest_id"],
        watermark=watermark,
        cost=job.cost.payload(job.spending.prices),
    )


def _save_reads(job: SourceRun) -> None:
    """Save the day's reads; a store that refuses only costs the next run its deduplication."""
    if job.reads is None:
        return
    try:
        job.reads.save()
    except Exception as exc:  # noqa: BLE001 - never hide the source's own outcome behind this
        log.warning("%s: the day's reads were not saved (%s)", job.source, exc.__class__.__name__)


def _stopped(job: SourceRun, stop: Stopped, carried: CostCounts) -> SpendingStopped:
    """Land the incomplete window's manifest (the next run continues it) and name the limit.

    The watermark does not move: the window's newest posts may be landed, its oldest are not.
    """
    params = request_params(job.source, job.window, job.since_id)
    manifest = build_manifest(
        job, params, job.context.now(), carried=carried, incomplete=stop.record()
    )
    write_manifest(job.store, job.manifest_key, manifest, replace=True)
    stats = job.context.stats
    failed = SpendingStopped(
        job.source,
        f"{stop.reason}; the window is incomplete ({job.manifest_key}): the next run continues it",
        [p.key for p in job.pages],
        stats.requests,
        stats.user_lookups,
        limit=stop.limit,
        name=stop.name,
    )
    failed.retries, failed.rate_limit_waits = stats.retries, stats.rate_limit_waits
    failed.wait_seconds = stats.wait_seconds
    failed.cost = dict(job.cost.payload(job.spending.prices))
    return failed


# --- many sources -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractReport:
    """What :func:`extract_sources` did.

    Attributes:
        results: the sources that landed (or were already complete).
        failures: the sources that failed, with their errors; the others still landed.
    """

    results: tuple[SourceResult, ...]
    failures: tuple[SourceFailed, ...]

    @property
    def ok(self) -> bool:
        """Whether every source landed."""
        return not self.failures


def extract_sources(
    client: XClient,
    store: Store,
    sources: Iterable[Source],
    window: Window,
    **kwargs: Any,
) -> ExtractReport:
    """Extract several sources one after the other; a failing source fails alone.

    Whatever a source raises (an API that keeps failing, a store error, a disk that is full, a bug)
    becomes its :class:`SourceFailed`, with the requests it sent and a message without the token;
    the next source runs all the same. Only ``KeyboardInterrupt`` and ``SystemExit`` stop the loop.

    Args:
        client: from :func:`make_client` (shared, so rate limits and user lookups are shared).
        store: where ``raw/`` and ``state/`` live.
        sources: accounts and queries.
        window: the same window for every source.
        **kwargs: passed to :func:`extract_source` (``clock``, ``sleep``, ``policy``, ...).

    Returns:
        Results and failures, in source order.
    """
    results: list[SourceResult] = []
    failures: list[SourceFailed] = []
    for source in sources:
        sent = client.session.sent
        try:
            results.append(extract_source(client, store, source, window, **kwargs))
        except SourceFailed as exc:
            log.error("%s", exc)
            failures.append(exc)
        except Exception as exc:  # a source fails alone, whatever it raised
            failures.append(_unexpected_failure(client, source, exc, client.session.sent - sent))
    return ExtractReport(tuple(results), tuple(failures))


def _unexpected_failure(
    client: XClient, source: Source, exc: Exception, requests_sent: int
) -> SourceFailed:
    """A :class:`SourceFailed` for an exception extract_source does not raise on purpose."""
    reason = client.redact(f"{exc.__class__.__name__}: {exc}")[:MAX_REASON]
    failed = SourceFailed(source, reason, requests=requests_sent)
    log.error("%s", failed)
    # The traceback is for debugging only, and goes through the same redaction as the message.
    trace = "".join(traceback.format_exception(exc))
    log.debug("%s failed with this traceback:\n%s", source, client.redact(trace))
    return failed


# --- settings -----------------------------------------------------------------------------------
def resolve_max_body_bytes(config: PipelineConfig | None, flag: str | None = None) -> int:
    """The response body limit: ``flag``, else ``X_API_MAX_BODY_BYTES``, else the config's
    ``api.max_body_bytes``, else :data:`DEFAULT_MAX_BODY_BYTES` (8 MiB).

    Args:
        config: the pipeline config, if any.
        flag: the value of ``--max-body-bytes``, if given.

    Returns:
        The limit in bytes.

    Raises:
        etl.config.ConfigError: the flag or the variable is not a whole number of bytes in range.
    """
    if flag is not None:
        return parse_max_body_bytes(flag, "--max-body-bytes")
    from_env = os.environ.get("X_API_MAX_BODY_BYTES", "").strip()
    if from_env:
        return parse_max_body_bytes(from_env, "X_API_MAX_BODY_BYTES")
    if config is not None and config.max_body_bytes is not None:
        return config.max_body_bytes
    return DEFAULT_MAX_BODY_BYTES
