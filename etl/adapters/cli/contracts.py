"""``tweetpipe contracts lint|diff|docs|codeowners|review``: the contract review tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from etl import resources
from etl.adapters.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from etl.errors import (
    CodeownersInputError,
    CodeownersUsageError,
    DiffInputError,
    DocsInputError,
    LintUsageError,
    ReviewUsageError,
    StoreError,
)
from etl.storage.keys import CONTRACT_DOCS_PREFIX
from etl.storage.store import open_store
from etl.tools.contract_codeowners import (
    find_codeowners,
    owned_paths,
    read_codeowners,
    rules_after_section,
    staleness,
    updated_text,
    write_atomically,
)
from etl.tools.contract_diff import diff_against_ref, diff_files
from etl.tools.contract_diff_report import docs_url_setting, render
from etl.tools.contract_docs import build_site, publish_site
from etl.tools.contract_lint import contract_files, lint_file
from etl.tools.contract_review import (
    COMMENT_FILE,
    MAX_LABEL,
    STATE_FILE,
    is_label,
    render_comment,
    run_review,
)

if TYPE_CHECKING:
    import argparse


def run_lint_cli(args: argparse.Namespace) -> int:
    """``tweetpipe contracts lint [PATH...]``: print every finding.

    Args:
        args: parsed arguments with ``paths``.

    Returns:
        0 when every contract is clean, 1 when there are findings.

    Raises:
        UsageError: a path is missing (exit code 2).
    """
    try:
        files = contract_files(args.paths)
        findings = [f for path in files for f in lint_file(path)]
    except LintUsageError as exc:
        raise UsageError(str(exc)) from None
    for finding in findings:
        print(finding)
    noun = "contract" if len(files) == 1 else "contracts"
    # Without paths the folder was chosen for the user (./contracts or the bundled one): say which.
    where = "" if args.paths else f" in {files[0].parent}"
    if findings:
        print(f"{len(findings)} finding(s) in {len(files)} {noun}{where}")
        return EXIT_FAILED
    print(f"{len(files)} {noun} clean{where}")
    return EXIT_OK


def run_diff_cli(args: argparse.Namespace) -> int:
    """``tweetpipe contracts diff OLD NEW`` or ``--base REF``: print the classified changes.

    Args:
        args: parsed arguments with ``files``, ``base``, ``dir`` and ``format``.

    Returns:
        0 when every change may merge, 1 when a breaking change lacks a major version bump.

    Raises:
        UsageError: wrong arguments, a missing file or an unknown revision (exit code 2).
    """
    files = list(args.files or [])
    if args.base is None and len(files) != 2:
        raise UsageError("give OLD and NEW contract files, or --base REF")
    if args.base is not None and files:
        raise UsageError("give either OLD NEW files or --base REF, not both")
    try:
        if args.base is not None:
            directory = Path(args.dir) if args.dir else resources.working_contracts_dir()
            report = diff_against_ref(args.base, directory)
        else:
            report = diff_files(Path(files[0]), Path(files[1]))
        docs_url = docs_url_setting(getattr(args, "docs_url", None))
    except DiffInputError as exc:
        raise UsageError(str(exc)) from None
    print(render(report, args.format, docs_url), end="")
    return EXIT_OK if report.ok else EXIT_FAILED


def run_docs_cli(args: argparse.Namespace) -> int:
    """``tweetpipe contracts docs --out DIR [--store URL] [PATH...]``.

    Args:
        args: parsed arguments with ``paths``, ``out`` and ``store``.

    Returns:
        0 when the site was written.

    Raises:
        UsageError: a path is missing or a contract unreadable (exit code 2).
    """
    try:
        # Checked first (a writable directory, a bucket that answers): a bad --store is one
        # line, before any page is rendered.
        store = open_store(args.store, check=True) if args.store else None
    except StoreError as exc:
        raise UsageError(f"--store: {exc}") from None
    try:
        files = build_site(args.paths, Path(args.out))
    except DocsInputError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {len(files) - 2} contract page(s) and the index to {files[0]}")
    if store is not None:
        keys = publish_site(files, store)
        print(f"published {len(keys)} file(s) under {CONTRACT_DOCS_PREFIX} in {store.url}")
    return EXIT_OK


def run_codeowners_cli(args: argparse.Namespace) -> int:
    """``tweetpipe contracts codeowners [--check] [--root DIR] [--file PATH]``.

    Args:
        args: parsed arguments with ``check``, ``root`` and ``file``.

    Returns:
        0 when the section is (now) up to date, 1 when ``--check`` finds it stale or a contract
        names no usable owner.

    Raises:
        UsageError: no contracts folder, a malformed or oversized CODEOWNERS file (exit code 2).
    """
    root = Path(args.root)
    path = Path(args.file) if args.file else find_codeowners(root)
    shown = _shown(path, root)
    try:
        current = read_codeowners(path)
        wanted = owned_paths(root)
    except CodeownersUsageError as exc:
        raise UsageError(str(exc)) from None
    except CodeownersInputError as exc:
        print(f"tweetpipe contracts codeowners: {exc}", file=sys.stderr)
        return EXIT_FAILED
    reason = staleness(current, wanted)
    if args.check:
        if reason is not None:
            print(
                f"{shown} is out of date: {reason.describe()}; "
                "run `tweetpipe contracts codeowners`",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"{shown}: {len(wanted)} contract rule(s) up to date")
    elif reason is None:
        print(f"{shown}: {len(wanted)} contract rule(s) up to date")
    else:
        write_atomically(path, updated_text(current, wanted))
        print(f"{shown}: wrote {len(wanted)} contract rule(s)")
    later = rules_after_section(current)
    if later:
        print(
            f"note: {later} rule(s) follow the tweetpipe section in {shown}; the host applies the "
            "last matching rule, so they win over it for the paths they match",
            file=sys.stderr,
        )
    return EXIT_OK


def run_review_cli(args: argparse.Namespace) -> int:
    """``tweetpipe contracts review --base REF [--base-label TEXT] [--root DIR] [--out DIR]``.

    Prints the comment (or, with ``--out``, writes ``comment.md`` and ``review.json`` there and
    prints the verdict line).

    Args:
        args: parsed arguments with ``base``, ``base_label``, ``root``, ``out``, ``docs_url``.

    Returns:
        0 when every gate passes or nothing changed, 1 when a gate fails.

    Raises:
        UsageError: not a git tree, an unknown base, a bad label or docs URL (exit code 2).
    """
    label = args.base_label or None
    try:
        if label is not None and not is_label(label):
            raise ReviewUsageError(
                f"--base-label {label[:60]!r}: a branch or revision name (printable, no spaces, "
                f"at most {MAX_LABEL} characters)"
            )
        docs_url = docs_url_setting(args.docs_url)
        review = run_review(Path(args.root), args.base, label)
    except (ReviewUsageError, DiffInputError) as exc:
        raise UsageError(str(exc)) from None
    body = render_comment(review, docs_url)
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / COMMENT_FILE).write_text(body, encoding="utf-8")
            (out / STATE_FILE).write_text(json.dumps(review.state(), indent=2) + "\n", "utf-8")
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write: {exc}") from None
        print(body.splitlines()[1].removeprefix("### "))
    else:
        print(body, end="")
    return EXIT_OK if review.ok else EXIT_FAILED


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
