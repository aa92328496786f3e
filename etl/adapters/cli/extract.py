"""``tweetpipe extract``: secrets, configuration, store and window resolved at the edge, then
:func:`etl.steps.extract.run.extract_sources`."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.adapters.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from etl.config import (
    STORE_ENV,
    PipelineConfig,
    Source,
    Window,
    api_base_url_problem,
    dedupe_sources,
    load_config,
    parse_time,
)
from etl.errors import ConfigError, SourceFailed, SpendingStopped
from etl.pricing import parse_usd, usd_text
from etl.steps.extract.cost import Spending, with_month_spent
from etl.steps.extract.run import (
    ExtractReport,
    SourceResult,
    extract_sources,
    make_client,
    resolve_max_body_bytes,
)

if TYPE_CHECKING:
    import argparse

    from etl.payloads import CostPayload
    from etl.steps.extract.client import XClient
    from etl.storage.store import Store


def _cli_config(args: argparse.Namespace) -> PipelineConfig | None:
    return load_config(args.config) if args.config else None


def _cli_sources(args: argparse.Namespace, config: PipelineConfig | None) -> list[Source]:
    sources = list(config.sources) if config else []
    sources += [Source("account", a.lstrip("@")) for a in args.account]
    sources += [Source("query", q) for q in args.query]
    if not sources:
        raise ConfigError("no sources: give --account, --query or --config FILE with sources")
    return dedupe_sources(sources)


def _cli_window(args: argparse.Namespace) -> Window:
    start = parse_time(args.start, "--start") if args.start else None
    end = parse_time(args.end, "--end") if args.end else None
    if (start is None) != (end is None):
        raise ConfigError("--start and --end go together (or give neither for an incremental run)")
    return Window(start, end)


def _cli_client(config: PipelineConfig | None, max_body_bytes: int) -> XClient:
    """The client from ``X_BEARER_TOKEN`` and ``X_API_BASE_URL`` (else the config's base URL)."""
    token = os.environ.get("X_BEARER_TOKEN", "").strip()
    if not token:
        raise ConfigError("X_BEARER_TOKEN is not set: export the X API bearer token")
    from_env = os.environ.get("X_API_BASE_URL", "").strip()
    base_url = from_env or (config.api_base_url if config else None)
    # The config file's URL was checked when it was read; the variable's is checked here, and
    # neither is quoted (it may carry credentials).
    if from_env and (problem := api_base_url_problem(from_env)):
        raise ConfigError(f"X_API_BASE_URL {problem}")
    try:
        return make_client(token, base_url, max_body_bytes=max_body_bytes)
    except ValueError as exc:
        where = "X_API_BASE_URL" if from_env else "api.base_url of the config"
        raise ConfigError(f"{where}: {exc}") from None


def _cli_store(args: argparse.Namespace, config: PipelineConfig | None) -> Store:
    """The store: ``--store``, else ``$TWEETPIPE_STORE``, else the config's ``store:``; checked
    (a writable directory, a bucket that answers) before anything is fetched."""
    from etl.errors import StoreError
    from etl.storage.store import open_store

    candidates = (
        ("--store", args.store or ""),
        (STORE_ENV, os.environ.get(STORE_ENV, "").strip()),
        (f"store: in {args.config}", (config.store_url or "") if config else ""),
    )
    for where, url in candidates:
        if url:
            try:
                return open_store(url, check=True)
            except StoreError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(
        f"no store: give --store, set {STORE_ENV}, or name one under store: in --config FILE"
    )


def _cost_text(cost: CostPayload | dict[str, Any] | None) -> str:
    if not cost:
        return "-"
    return usd_text(int(cost["estimated_cost_micro_usd"]))


def _summary(report: ExtractReport, seconds: float, spending: Spending) -> str:
    rows = [("source", "status", "pages", "posts", "requests", "waits", "billable", "cost")]
    # billable: posts + user lookups X bills (a read of the same resource the same UTC day is not)
    for r in report.results:
        rows.append(
            (
                r.source.slug,
                r.status,
                str(r.pages),
                str(r.tweets),
                str(r.requests),
                str(r.rate_limit_waits),
                f"{r.cost['posts_billable']}+{r.cost['user_reads_billable']}u",
                _cost_text(r.cost),
            )
        )
    for f in report.failures:
        cost = f.cost if isinstance(f, SpendingStopped) else None
        rows.append(
            (
                f.source.slug,
                "STOPPED" if isinstance(f, SpendingStopped) else "FAILED",
                str(len(f.landed)),
                "-",
                str(f.requests),
                str(f.rate_limit_waits),
                f"{cost['posts_billable']}+{cost['user_reads_billable']}u" if cost else "-",
                _cost_text(cost),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    res = report.results
    # Requests, lookups, retries and waits of failed sources count too: they were spent.
    spent: tuple[SourceResult | SourceFailed, ...] = (*res, *report.failures)
    lines.append(
        f"total: {sum(r.requests for r in spent)} requests ({sum(r.user_lookups for r in spent)} "
        f"user lookups, {sum(r.retries for r in spent)} retries), {sum(r.pages for r in res)} "
        f"pages, {sum(r.tweets for r in res)} posts, {sum(r.rate_limit_waits for r in spent)} "
        f"rate-limit waits ({sum(r.wait_seconds for r in spent):.1f} s waiting), {seconds:.1f} s"
    )
    prices = spending.prices
    lines.append(
        f"estimated cost: {usd_text(spending.run_spent)} (billable reads at "
        f"{usd_text(prices.post_read)}/post, {usd_text(prices.user_read)}/user lookup; reads "
        "X does not bill twice within a UTC day excluded)"
    )
    if spending.budget.capped:
        caps = ", ".join(f"{k} {usd_text(v)}" for k, v in _caps(spending))
        lines.append(
            f"budget: {caps}"
            + (f"; month so far: {spending.month_basis}" if spending.month_basis else "")
        )
    skipped = [r for r in res if r.status == "skipped"]
    if skipped:
        lines.append(f"{len(skipped)} source(s) skipped: their window was already complete")
    lines += [
        f"{'STOPPED' if isinstance(f, SpendingStopped) else 'FAILED'} {f}" for f in report.failures
    ]
    return "\n".join(lines)


def _caps(spending: Spending) -> list[tuple[str, int]]:
    budget = spending.budget
    caps = [("per_run", budget.per_run), ("per_source", budget.per_source)]
    caps.append(("per_month", budget.per_month))
    return [(spending.cap_name(k), v) for k, v in caps if v is not None]


def _cli_spending(args: argparse.Namespace, config: PipelineConfig | None) -> Spending:
    """Prices and budget: the config's, the per-run cap lowered to ``--max-cost-usd``."""
    flag = getattr(args, "max_cost_usd", None)
    run_cap = None if flag is None else parse_usd(flag, "--max-cost-usd")
    return Spending.from_config(config, run_cap, "--max-cost-usd")


def run_extract_cli(args: argparse.Namespace) -> int:
    """``tweetpipe extract``: land the configured sources in the store (or, with ``--dry-run``,
    estimate what that would read and cost).

    The token comes from ``X_BEARER_TOKEN``, the API base URL from ``X_API_BASE_URL`` (else the
    config file's ``api.base_url``, else the real API), the store from ``--store`` (else
    ``TWEETPIPE_STORE``, else the config file's ``store:``), the body limit from
    ``--max-body-bytes`` (else ``X_API_MAX_BODY_BYTES``, else ``api.max_body_bytes``, else 8 MiB),
    prices and budget from the config's ``prices:`` and ``budget:``, the per-run cap lowered to
    ``--max-cost-usd``. A source that fails, whatever it raised, fails alone: it is reported, the
    others still land, and the exit is 1; so is a source a budget or the API's usage cap stopped.

    Args:
        args: parsed arguments (``account``, ``query``, ``config``, ``store``, ``start``, ``end``,
            ``max_body_bytes``, ``max_cost_usd``, ``dry_run``).

    Returns:
        0 when every source landed (or was estimated), 1 when any failed or was stopped.
    """
    from tqdm import tqdm

    try:
        config = _cli_config(args)
        sources = _cli_sources(args, config)
        window = _cli_window(args)
        limit = resolve_max_body_bytes(config, getattr(args, "max_body_bytes", None))
        spending = _cli_spending(args, config)
        client = _cli_client(config, limit)
        store = _cli_store(args, config)
    except ValueError as exc:  # ConfigError included: bad input, named in the message
        raise UsageError(str(exc)) from None
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "dry_run", False):
        return _dry_run(client, store, sources, window, spending)
    started = time.monotonic()
    with_month_spent(spending, store, client, datetime.now(UTC))
    # Lineage (etl.lineage): the same job and datasets the DAG's extract task reports.
    from etl.lineage.builders import cli_extract_inputs, cli_extract_outputs
    from etl.lineage.emit import events_file, lineage_run

    bounds = (window.start, window.end) if window.start and window.end else None
    inputs = cli_extract_inputs(s.kind for s in sources)
    events = events_file(store.url if store.namespace == "file" else None)
    with lineage_run("extract", inputs, default_file=events, nominal=bounds) as lineage:
        with tqdm(
            desc="extract", unit=" posts", disable=not sys.stderr.isatty(), file=sys.stderr
        ) as bar:
            report = extract_sources(
                client, store, sources, window, on_page=bar.update, spending=spending
            )
        stopped = [f for f in report.failures if isinstance(f, SpendingStopped)]
        lineage.add(cli_extract_outputs(report.results, store, stopped))
        if not report.ok:
            lineage.fail("; ".join(str(f) for f in report.failures))
    print(_summary(report, time.monotonic() - started, spending))
    print(f"lineage: {lineage.destination}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _dry_run(
    client: XClient, store: Store, sources: list[Source], window: Window, spending: Spending
) -> int:
    """Estimate every source, print the table and the totals; exit 1 if any could not be."""
    from etl.steps.extract.estimate import estimate_sources

    report = estimate_sources(client, store, sources, window, prices=spending.prices)
    rows = [("source", "expected posts", "expected cost", "how")]
    for e in report.estimates:
        rows.append((e.source.slug, str(e.posts), usd_text(e.cost_micros), e.detail))
    for f in report.failures:
        rows.append((f.source.slug, "-", "-", f"FAILED {f.reason}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]])
        for row in rows
    ]
    lines.append(
        f"total: {report.posts} posts expected, {usd_text(report.cost_micros)} expected "
        f"(every post priced as billable at {usd_text(spending.prices.post_read)}); the dry run "
        f"itself: {sum(e.counts_requests for e in report.estimates)} counts request(s), "
        f"{sum(e.user_lookups for e in report.estimates)} user lookup(s), "
        f"{usd_text(report.spent_micros)}; no post was read"
    )
    cap = spending.headroom(0)
    if cap is not None and report.cost_micros > cap[0]:
        lines.append(
            f"over budget: {cap[1]} allows {usd_text(max(cap[0], 0))}; a real run would stop "
            "there and continue its windows in later runs"
        )
    print("\n".join(lines))
    return EXIT_OK if not report.failures else EXIT_FAILED
