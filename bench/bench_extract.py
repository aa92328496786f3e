"""Benchmark extraction against the emulator under a rate limit, against its theoretical minimum.

Two runs of the same extraction (every account timeline plus a recent-search query, one window
covering the whole corpus) into a fresh local store, both over real HTTP on 127.0.0.1:

1. baseline: the emulator with the real API's limits (never reached here), to measure the cost of
   one request (HTTP, tweepy, landing) on this machine, in this run;
2. limited: the emulator allowing ``--limit`` requests per ``--window`` seconds per endpoint, on
   the real clock, so the extractor has to wait for resets.

The theoretical minimum of the limited schedule replays the limited run's request sequence with a
perfect client: each request costs the baseline's mean request time, and a request that the quota
does not allow is sent exactly at the reset the emulator announces (``x-rate-limit-reset``, whole
epoch seconds like the real API's; the emulator counts its windows in whole seconds too), with no
margin. The extractor's reset margin is scaled
the same way as the window: 1 s for the real API's 900 s windows is about 2 ms for 2 s windows;
``--margin`` sets it.

    python bench/bench_extract.py --limit 15 --window 2

Targets (issue 4): requests equal the minimum (one user lookup per account plus
``max(1, ceil(posts / 100))`` pages per source); wall time within 1.1x of the theoretical minimum.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from etl.config import Source, Window  # noqa: E402
from etl.steps.extract.client import RetryPolicy  # noqa: E402
from etl.steps.extract.run import ExtractReport, extract_sources, make_client  # noqa: E402
from etl.storage.store import LocalStore  # noqa: E402
from etl.tools.emulator import DEMO_TOKEN, Corpus, start_emulator  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

OUT = BENCH / "out"
TIME_TARGET = 1.1
# The corpus's default span: one window covers every post.
WINDOW = Window(datetime(2022, 11, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC))
QUERY = "data"


def _corpus(posts: Sequence[int]) -> Corpus:
    return Corpus(seed=7, accounts=len(posts), posts_per_account=list(posts))


def _sources(corpus: Corpus) -> list[Source]:
    accounts = [Source("account", u["username"]) for u in corpus.users]
    return [*accounts, Source("query", QUERY)]


def _minimal_requests(corpus: Corpus, sources: list[Source]) -> tuple[int, int]:
    """(minimal requests, posts) for the window: lookups plus ceil(n/100) pages per source."""
    requests = posts = 0
    for s in sources:
        account = s.value if s.kind == "account" else None
        query = s.value if s.kind == "query" else None
        n = len(
            corpus.ground_truth(
                username=account, query=query, start_time=WINDOW.start, end_time=WINDOW.end
            )
        )
        posts += n
        requests += max(1, math.ceil(n / 100)) + (s.kind == "account")
    return requests, posts


def _run(
    corpus: Corpus, sources: list[Source], name: str, margin: float, **limits: Any
) -> dict[str, Any]:
    work = OUT / "work" / f"extract-{name}"
    shutil.rmtree(work, ignore_errors=True)
    store = LocalStore(work)
    with start_emulator(corpus=corpus, token=DEMO_TOKEN, **limits) as emulator:
        client = make_client(DEMO_TOKEN, emulator.base_url)
        started_epoch = time.time()
        started = time.perf_counter()
        report = extract_sources(
            client, store, sources, WINDOW, policy=RetryPolicy(reset_margin=margin)
        )
        wall = time.perf_counter() - started
        log = emulator.request_log
    if not report.ok:
        raise SystemExit(f"{name}: extraction failed: {'; '.join(map(str, report.failures))}")
    return {
        "wall": wall,
        "started_epoch": started_epoch,
        "kinds": [r.kind for r in log],
        "statuses": [r.status for r in log],
        **_totals(report),
    }


def _totals(report: ExtractReport) -> dict[str, Any]:
    res = report.results
    return {
        "requests": sum(r.requests for r in res),
        "pages": sum(r.pages for r in res),
        "posts": sum(r.tweets for r in res),
        "rate_limit_waits": sum(r.rate_limit_waits for r in res),
        "wait_seconds": round(sum(r.wait_seconds for r in res), 3),
        "retries": sum(r.retries for r in res),
    }


def theoretical_minimum(
    kinds: Sequence[str], per_request: float, limit: int, window: float, start: float
) -> float:
    """Wall time of a perfect client sending ``kinds`` in order under the emulator's windows.

    As the emulator counts them: a window opens with the first request of its endpoint kind, in
    whole epoch seconds, and ends ``window`` seconds later, at the time ``x-rate-limit-reset``
    names (rounded up to the second when ``window`` is fractional). The perfect client sends a
    request the quota refuses exactly then, with no margin; every request costs ``per_request``.

    Args:
        kinds: endpoint kind of each request, in order.
        per_request: seconds one request takes when nothing waits.
        limit: requests per window and endpoint kind.
        window: window length in seconds.
        start: epoch seconds of the first request (the whole-second rounding depends on it).

    Returns:
        Seconds from the first request to the end of the last one.
    """
    now = start
    windows: dict[str, tuple[float, int]] = {}  # kind -> (reset_at, used)
    for kind in kinds:
        reset_at, used = windows.get(kind, (0.0, 0))
        if used >= limit and now < reset_at:
            now = float(math.ceil(reset_at))
        if now >= reset_at:
            reset_at, used = math.floor(now) + window, 0
        windows[kind] = (reset_at, used + 1)
        now += per_request
    return now - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=15, help="requests per window and endpoint")
    parser.add_argument("--window", type=float, default=2.0, help="rate-limit window, seconds")
    parser.add_argument("--margin", type=float, default=0.002, help="extractor's reset margin")
    parser.add_argument(
        "--posts",
        type=int,
        nargs="+",
        default=[3000, 2000, 1500, 1000],
        help="posts per account (one account each)",
    )
    args = parser.parse_args(argv)

    corpus = _corpus(args.posts)
    sources = _sources(corpus)
    minimal, posts = _minimal_requests(corpus, sources)
    base = _run(corpus, sources, "baseline", args.margin)
    limited = _run(
        corpus, sources, "limited", args.margin, rate_limit=args.limit, rate_window=args.window
    )
    per_request = base["wall"] / base["requests"]
    sent = [k for k, s in zip(limited["kinds"], limited["statuses"], strict=True) if s != 429]
    floor = theoretical_minimum(
        sent, per_request, args.limit, args.window, limited["started_epoch"]
    )
    ratio = limited["wall"] / floor
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "rate_limit": {"limit": args.limit, "window_seconds": args.window},
        "reset_margin_seconds": args.margin,
        "sources": len(sources),
        "posts": posts,
        "minimal_requests": minimal,
        "baseline": {k: v for k, v in base.items() if k not in ("kinds", "statuses")},
        "limited": {k: v for k, v in limited.items() if k not in ("kinds", "statuses")},
        "refused_429": limited["statuses"].count(429),
        "per_request_seconds": per_request,
        "theoretical_minimum_seconds": floor,
        "wall_over_minimum": ratio,
        "requests_over_minimal": limited["requests"] / minimal,
        "requests_per_post": limited["requests"] / posts,
        "time_target": TIME_TARGET,
        "met": ratio <= TIME_TARGET and limited["requests"] == minimal,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "extract.json").write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    return 0 if result["met"] else 1


def _cpus() -> int:
    return os.cpu_count() or 0


def _print(r: dict[str, Any]) -> None:
    b, lim = r["baseline"], r["limited"]
    rows = [
        ("run", "requests", "minimal", "req/post", "waits", "wall s", "minimum s", "ratio"),
        ("baseline (no limit)", b["requests"], r["minimal_requests"],
         f"{b['requests'] / r['posts']:.4f}", b["rate_limit_waits"], f"{b['wall']:.2f}", "-", "-"),
        (f"limited ({r['rate_limit']['limit']}/{r['rate_limit']['window_seconds']:g}s)",
         lim["requests"], r["minimal_requests"], f"{r['requests_per_post']:.4f}",
         lim["rate_limit_waits"], f"{lim['wall']:.2f}", f"{r['theoretical_minimum_seconds']:.2f}",
         f"{r['wall_over_minimum']:.3f}x"),
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    verdict = "met" if r["met"] else "NOT met"
    print(
        f"{r['posts']} posts from {r['sources']} sources; {r['refused_429']} requests refused "
        f"(429); target: requests == minimal and wall <= {r['time_target']}x minimum: {verdict}"
    )
    print(f"wrote {OUT / 'extract.json'}")


if __name__ == "__main__":
    sys.exit(main())
