"""``tweetpipe expectations sync``: the Great Expectations suites regenerated from the contracts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from etl import resources
from etl.adapters.cli.exits import UsageError
from etl.contracts.suites import (
    EXPECTATIONS_DIR,
    SUITE_CONTRACTS,
    suite_locations,
    sync_expectations,
)
from etl.errors import ContractError

if TYPE_CHECKING:
    import argparse


def run_sync_cli(args: argparse.Namespace) -> int:
    """``tweetpipe expectations sync [--check] [--root DIR]``.

    Args:
        args: parsed arguments (``check``; ``root``: another checkout's ``contracts/`` and
            ``expectations/`` instead of the pipeline's own).

    Returns:
        0 when in sync (or rewritten), 1 when ``--check`` found out-of-date files or a contract
        cannot be mapped.

    Raises:
        UsageError: a rewrite was asked of an installed wheel's suites, or ``--root`` has no
            ``contracts/`` (exit code 2).
    """
    expectations_dir: Path = EXPECTATIONS_DIR
    contracts: tuple[Path, ...] = SUITE_CONTRACTS
    if getattr(args, "root", None):
        if not (Path(args.root) / "contracts").is_dir():
            raise UsageError(f"--root {args.root}: no contracts/ folder there")
        expectations_dir, contracts = suite_locations(Path(args.root))
    if not args.check and resources.is_bundled(expectations_dir):
        # The installed gates read these files; rewriting them inside site-packages would change
        # the pipeline behind its wheel's back, and suites written anywhere else are never read.
        raise UsageError(
            f"the suites in {EXPECTATIONS_DIR} belong to the installed wheel and are not "
            "rewritten; run `tweetpipe expectations sync` in a checkout of the repository and "
            "build a new wheel (--check compares them with the bundled contracts)"
        )
    try:
        stale = sync_expectations(
            check=args.check, expectations_dir=expectations_dir, contracts=contracts
        )
    except (ContractError, ValueError) as exc:
        print(f"tweetpipe expectations sync: error: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(_display(p, expectations_dir) for p in stale)
    if args.check and stale:
        print(
            f"expectations out of date: {names}; run `tweetpipe expectations sync"
            + (f" --root {args.root}`" if getattr(args, "root", None) else "`"),
            file=sys.stderr,
        )
        return 1
    print(f"rewrote {names}" if stale else "expectations in sync with contracts/")
    return 0


def _display(path: Path, expectations_dir: Path) -> str:
    try:
        return path.relative_to(expectations_dir.parent).as_posix()
    except ValueError:
        return str(path)
