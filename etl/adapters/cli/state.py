"""``tweetpipe state reset``: clear or rewind a source's watermark in state/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import EXIT_OK, UsageError
from etl.steps.extract.land import reset_watermark
from etl.storage.keys import watermark_key

if TYPE_CHECKING:
    import argparse


def run_state_reset_cli(args: argparse.Namespace) -> int:
    """``tweetpipe state reset``: clear (or rewind) a source's watermark.

    Args:
        args: parsed arguments (``source``, ``store``, ``to``).

    Returns:
        0 (bad input raises :class:`etl.adapters.cli.exits.UsageError`, exit 2).
    """
    from etl.config import parse_source
    from etl.storage.store import open_store

    now = datetime.now(UTC)
    try:
        source = parse_source(args.source)
        store = open_store(args.store)
        key = watermark_key(source.slug)
        if args.to is None and not store.exists(key):
            print(f"{source.spec}: no watermark in {store.url}, nothing to reset")
            return EXIT_OK
        previous = reset_watermark(store, source.slug, now=now, to=args.to)
    except ValueError as exc:  # ConfigError included: bad input, named in the message
        raise UsageError(f"{exc}") from None
    held = "none" if previous is None else previous
    after = f"rewound to {args.to}" if args.to else "cleared: the next run starts without one"
    print(f"{source.spec}: watermark {store.url}/{key} (was {held}) {after}")
    return EXIT_OK
