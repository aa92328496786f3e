"""``tweetpipe demo``: the whole DAG once on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import UsageError
from etl.errors import DemoError
from etl.tools import demo

if TYPE_CHECKING:
    import argparse


def run_demo_cli(args: argparse.Namespace) -> int:
    """``tweetpipe demo [--dir DIR] [--breach]``.

    Args:
        args: parsed arguments with ``dir`` and ``breach``.

    Returns:
        0 when the DAG run succeeded, 1 when it failed (as ``--breach`` should).
    """
    try:
        result = demo.run_demo(Path(args.dir), breach=args.breach)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(demo.format_summary(result))
    return 0 if result.outcome.state == "success" else 1
