"""``tweetpipe transform``: raw pages from files to curated CSV, gated, with lineage beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from etl.errors import ContractError, GateBreachError, InputError
from etl.payloads import nothing_curated
from etl.steps.transform.curate import TransformReport, auto_workers, input_files, transform_files

if TYPE_CHECKING:
    import argparse


def _workers(requested: int | None) -> int | None:
    if requested is not None and requested < 1:
        raise UsageError(f"--workers must be at least 1, not {requested}")
    return requested


def _check_out_dir(out: Path) -> None:
    """``--out`` must be a directory or creatable as one, before anything is read or written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is not a directory; give a directory for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {out}: cannot be created ({reason})") from None


def _page_reasons(report: TransformReport) -> str:
    """Why pages were quarantined, for the summary line: `` (empty body: 1, ...)``."""
    # The report counts quarantined pages by check under "page:<problem>"; shown with spaces.
    reasons = [
        f"{check.removeprefix('page:').replace('_', ' ')}: {count}"
        for check, count in sorted(report.check_failures.items())
        if check.startswith("page:")
    ]
    return f" ({', '.join(reasons)})" if reasons else ""


def run_transform_cli(args: argparse.Namespace) -> int:
    """``tweetpipe transform INPUT... --out DIR [--contract FILE] [--workers N]``.

    Args:
        args: parsed arguments with ``inputs``, ``out``, ``contract`` and ``workers`` (None: by
            input size, see :func:`transform_files`).

    Returns:
        0 when the gate passes, 1 on a gate breach (the message names the failed checks).

    Raises:
        UsageError: a missing input or an unreadable contract (exit code 2).
    """

    out = Path(args.out)
    _check_out_dir(out)
    paths = [Path(p) for p in args.inputs]
    workers = _workers(getattr(args, "workers", None))
    if workers is None:
        try:
            workers = auto_workers(input_files(paths))
        except InputError:
            workers = 1  # transform_files reports the missing input below
    # Lineage: the same job and datasets the DAG's transform task reports, emitted by a process
    # beside this one (etl.lineage.beside) while this one works.
    from etl.lineage.beside import lineage_run_beside

    inputs = ("cli_transform_inputs", (args.inputs,))
    with lineage_run_beside("transform", inputs, out_dir=out) as lineage:
        try:
            report = transform_files(
                paths,
                out,
                Path(args.contract) if args.contract else None,
                progress=sys.stderr.isatty(),
                workers=workers,
            )
        except ContractError as exc:
            raise UsageError(str(exc)) from exc
        written = (out / "tweets.csv", out / "quarantine.jsonl")
        lineage.add("cli_transform_outputs", args.inputs, *written, report.to_dict())
        if not report.passed:
            lineage.fail("; ".join(report.fatal))
    summary = (
        f"{report.tweets_in} posts in {report.pages} pages: {report.curated} curated, "
        f"{report.quarantined} quarantined, {report.duplicates} duplicates, "
        f"{report.api_errors} API errors, {report.pages_quarantined} pages quarantined"
        f"{_page_reasons(report)}"
    )
    print(summary, file=sys.stderr)
    empty = nothing_curated(report.to_dict(), f"input {', '.join(args.inputs)}")
    if empty:
        print(empty, file=sys.stderr)
    print(f"lineage: {lineage.destination}", file=sys.stderr)
    try:
        report.raise_for_gate(f"{out / 'quarantine.jsonl'}, {out / 'report.json'}")
    except GateBreachError as exc:
        print(f"tweetpipe transform: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(out / "tweets.csv")
    return EXIT_OK
