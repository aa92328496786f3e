"""``tweetpipe emulator``: the bundled X API v2 emulator on 127.0.0.1 until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import UsageError
from etl.tools.emulator import DEMO_TOKEN, Corpus, Faults, start_emulator

if TYPE_CHECKING:
    import argparse


def run_emulator_cli(args: argparse.Namespace) -> int:
    """``tweetpipe emulator``: serve on 127.0.0.1 until SIGINT or SIGTERM.

    Prints the base URL, and the ``X_BEARER_TOKEN=...`` line only for the built-in demo token (a
    token given with ``--token`` is never printed).

    Args:
        args: parsed ``--port --seed --token --fault --rate-limit --rate-window --recent-days``.

    Returns:
        0 after a clean stop, 1 when the port cannot be bound.

    Raises:
        UsageError: a bad ``--fault`` or rate limit (exit code 2).
    """
    token = args.token or DEMO_TOKEN
    try:
        faults = Faults.parse(list(args.fault))
        corpus = Corpus(args.seed, recent_days=args.recent_days)
        server = start_emulator(
            corpus=corpus,
            port=args.port,
            token=token,
            faults=faults,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"tweetpipe emulator: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    covers = f", posts up to {args.recent_days} days back" if args.recent_days else ""
    print(f"X API v2 emulator on {server.base_url} (seed {args.seed}{covers})", flush=True)
    print(f"X_API_BASE_URL={server.base_url}", flush=True)
    if token == DEMO_TOKEN:
        print(f"X_BEARER_TOKEN={DEMO_TOKEN}", flush=True)
    if faults.describe():
        print(f"faults: {faults.describe()}", flush=True)
    while not stopped.wait(0.5):
        pass
    server.stop()
    return 0
