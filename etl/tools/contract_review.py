"""``tweetpipe contracts review``: every contract gate of a pull request, as one comment.

The pull-request workflow's ``contracts`` job runs this on the pull request's tree against its
base. It asks git whether ``contracts/`` or ``expectations/`` changed; when they did it runs the
gates of ``make ci-contracts`` in-process, on the tree given by ``--root`` (not on the package's
own files):

- ``contracts lint``: ODCS v3.1 and our rules, on every contract;
- ``expectations sync --check``: the suites are what the contracts give;
- ``contracts codeowners --check``: the CODEOWNERS section names each contract's team;
- ``contracts diff --base``: every change classified; a breaking one needs a major version bump.

and writes the comment the ``comment`` job posts (``comment.md``, opening with the hidden marker
that job finds it again by) and the state it reads beside it (``review.json``, a
:class:`etl.tools.github_comment.ReviewState`). Exit 0 when every gate passes (or nothing to review),
1 when one fails, 2 on bad input (no git tree, unknown base, bad docs URL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from etl.contracts.suites import suite_locations, sync_expectations
from etl.errors import (
    CodeownersInputError,
    CodeownersUsageError,
    ContractError,
    DiffInputError,
    ReviewUsageError,
)
from etl.tools.contract_codeowners import OwnedPath, check_codeowners, owned_paths
from etl.tools.contract_diff import DiffReport, diff_against_ref
from etl.tools.contract_diff_report import MARKDOWN_MAX_ROWS, markdown_code, markdown_text, render
from etl.tools.contract_lint import CONTRACT_GLOB, lint_text
from etl.tools.git import git_output
from etl.tools.github_comment import COMMENT_MARKER, MAX_BODY_CHARS, ReviewState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

REVIEWED_DIRS = ("contracts", "expectations")
COMMENT_FILE = "comment.md"
STATE_FILE = "review.json"
_MAX_DETAILS = 50
_DIFF_ROW_LIMITS = (MARKDOWN_MAX_ROWS, 40, 10)
_MAX_DETAIL_CHARS = 400
MAX_LABEL = 200


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome.

    Attributes:
        name: what it guards, for the table (``contracts valid``...).
        command: the command that reproduces it locally.
        ok: whether it passed.
        summary: one line.
        details: the findings behind a failure (lint findings, stale files), bounded.
    """

    name: str
    command: str
    ok: bool
    summary: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Review:
    """A pull request's contract review.

    Attributes:
        base: the revision compared with, as shown.
        changed: the files under ``contracts/`` and ``expectations/`` that differ from the base.
        gates: each gate's outcome (none when nothing changed).
        diff: the classified contract changes, when the diff could be computed.
        owners: the owners of each changed contract or suite, from CODEOWNERS' rules.
    """

    base: str
    changed: tuple[str, ...]
    gates: tuple[GateResult, ...] = ()
    diff: DiffReport | None = None
    owners: tuple[OwnedPath, ...] = field(default=())

    @property
    def touched(self) -> bool:
        """Whether the pull request changes contracts or their suites."""
        return bool(self.changed)

    @property
    def ok(self) -> bool:
        """Whether every gate passed."""
        return all(g.ok for g in self.gates)

    def state(self) -> ReviewState:
        """What the comment job reads beside the body."""
        return ReviewState(touched=self.touched, ok=self.ok, base=self.base)


# --- running the gates ---------------------------------------------------------------------------
def run_review(root: Path, base: str, base_label: str | None = None) -> Review:
    """Run every contract gate on the tree at ``root`` against the revision ``base``.

    Args:
        root: the repository's working tree (its top level).
        base: a git revision: the pull request's base.
        base_label: how to name the base in the report (default: ``base``).

    Returns:
        The review; without changes under ``contracts/`` or ``expectations/`` no gate runs.

    Raises:
        ReviewUsageError: not a git tree, or ``base`` is no revision.
    """
    root = root.resolve()
    if git_output(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}") is None:
        raise ReviewUsageError(f"{base!r} is not a git revision in {root}")
    label = base_label or base
    changed = _changed_files(root, base)
    if not changed:
        return Review(label, ())
    diff, diff_gate = _diff_gate(root, base, label)
    gates = (_lint_gate(root), _sync_gate(root), _codeowners_gate(root), diff_gate)
    return Review(label, changed, gates, diff, _owners_of(root, changed))


def _changed_files(root: Path, base: str) -> tuple[str, ...]:
    listed = git_output(
        root, "diff", "--name-only", "--relative", "--no-renames", base, "--", *REVIEWED_DIRS
    )
    if listed is None:
        raise ReviewUsageError(f"git diff against {base!r} failed in {root}")
    untracked = git_output(root, "ls-files", "--others", "--exclude-standard", "--", *REVIEWED_DIRS)
    return tuple(sorted({*listed.splitlines(), *(untracked or "").splitlines()} - {""}))


def _lint_gate(root: Path) -> GateResult:
    command = "tweetpipe contracts lint"
    files = sorted((root / "contracts").glob(CONTRACT_GLOB))
    findings: list[str] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(f"{rel}: cannot read contract: {exc}")
            continue
        findings += [str(f) for f in lint_text(text, rel)]
    if findings:
        summary = f"{len(findings)} finding(s) in {len(files)} contract(s)"
        return GateResult("contracts valid", command, False, summary, _bounded(findings))
    return GateResult("contracts valid", command, True, f"{len(files)} contract(s) clean")


def _sync_gate(root: Path) -> GateResult:
    command = "tweetpipe expectations sync --check"
    expectations_dir, contracts = suite_locations(root)
    try:
        stale = sync_expectations(
            check=True, expectations_dir=expectations_dir, contracts=contracts
        )
    except (ContractError, ValueError) as exc:
        return GateResult("suites in sync", command, False, "cannot derive the suites", (str(exc),))
    if stale:
        names = [p.relative_to(root).as_posix() for p in stale]
        summary = f"out of date: {', '.join(names)}; run `tweetpipe expectations sync`"
        return GateResult("suites in sync", command, False, summary)
    return GateResult("suites in sync", command, True, "every suite matches its contract")


def _codeowners_gate(root: Path) -> GateResult:
    command = "tweetpipe contracts codeowners --check"
    try:
        path, reason = check_codeowners(root)
    except (CodeownersInputError, CodeownersUsageError) as exc:
        return GateResult("reviewers by contract", command, False, str(exc))
    shown = path.relative_to(root).as_posix()
    if reason is not None:
        summary = (
            f"{shown} is out of date: {reason.describe()}; run `tweetpipe contracts codeowners`"
        )
        return GateResult("reviewers by contract", command, False, summary)
    return GateResult("reviewers by contract", command, True, f"{shown} names each contract's team")


def _diff_gate(root: Path, base: str, label: str) -> tuple[DiffReport | None, GateResult]:
    command = f"tweetpipe contracts diff --base {label}"
    try:
        report = diff_against_ref(base, root / "contracts")
    except DiffInputError as exc:
        return None, GateResult("version bump", command, False, str(exc))
    report = DiffReport(report.contracts, base=label)
    if report.ok:
        return report, GateResult("version bump", command, True, "fits the changes")
    failing = [f"{d.contract}: {d.verdict()}" for d in report.contracts if not d.ok]
    return report, GateResult("version bump", command, False, "; ".join(failing))


def _owners_of(root: Path, changed: Sequence[str]) -> tuple[OwnedPath, ...]:
    try:
        rules = owned_paths(root)
    except (CodeownersInputError, CodeownersUsageError):
        return ()
    touched = set(changed)
    return tuple(r for r in rules if r.path in touched)


def _bounded(lines: Sequence[str]) -> tuple[str, ...]:
    kept = [line[:_MAX_DETAIL_CHARS] for line in lines[:_MAX_DETAILS]]
    if len(lines) > _MAX_DETAILS:
        kept.append(f"... and {len(lines) - _MAX_DETAILS} more")
    return tuple(kept)


# --- the comment ---------------------------------------------------------------------------------
def render_comment(review: Review, docs_url: str | None = None) -> str:
    """The pull-request comment: marker, one-line verdict, gates, owners, the diff report.

    Args:
        review: from :func:`run_review`.
        docs_url: where the contract docs are published, linked from the diff report.

    Returns:
        The markdown body, at most :data:`etl.tools.github_comment.MAX_BODY_CHARS` characters.
    """
    base = _code(review.base)
    if not review.touched:
        lines = [
            COMMENT_MARKER,
            "### Contract review: nothing to review",
            "",
            f"This pull request no longer changes `contracts/` or `expectations/` (compared "
            f"with {base}).",
        ]
        return "\n".join(lines) + "\n"
    failed = [g.name for g in review.gates if not g.ok]
    verdict = "passes" if not failed else f"fails ({', '.join(failed)})"
    lines = [COMMENT_MARKER, f"### Contract review against {base}: {verdict}", ""]
    lines += ["| gate | command | result |", "|---|---|---|"]
    for gate in review.gates:
        result = "ok" if gate.ok else "**fails**"
        command = f"`{markdown_code(gate.command)}`"
        lines.append(f"| {gate.name} | {command} | {result}: {_text(gate.summary)} |")
    for gate in (g for g in review.gates if g.details):
        lines += ["", f"{gate.name}:", "", *_fenced(gate.details)]
    lines += _owners_lines(review.owners)
    footer = [
        "",
        f"<sub>Edited in place on every push. Locally: {_code('make ci-contracts')}, or "
        f"{_code(f'tweetpipe contracts review --base {review.base}')}.</sub>",
    ]
    head = "\n".join(lines) + "\n"
    if review.diff is None:
        return _fit(head + "\n".join(footer) + "\n")
    # the whole diff when it fits in a comment, else fewer rows per table (the rest are counted)
    for max_rows in _DIFF_ROW_LIMITS:
        diff = render(review.diff, "markdown", docs_url, max_rows)
        body = head + "\n" + diff + "\n".join(footer) + "\n"
        if len(body) <= MAX_BODY_CHARS:
            return body
    return _fit(body)


def _owners_lines(owners: Sequence[OwnedPath]) -> list[str]:
    if not owners:
        return []
    lines = ["", "Owners asked to review (each contract's `team`, through CODEOWNERS):", ""]
    for rule in owners:
        # code spans: the handles are shown, not mentioned; CODEOWNERS does the asking
        handles = ", ".join(_code(o) for o in rule.owners)
        lines.append(f"- {_code(rule.path)}: {handles}")
    return lines


def _code(text: str) -> str:
    """A code span that no backtick inside can end (outside tables: a ``|`` is not escaped)."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _text(text: str) -> str:
    """A gate's summary in a table cell: no HTML, link, mention or cell break."""
    return markdown_text(text, _MAX_DETAIL_CHARS)


def _fenced(lines: Sequence[str]) -> list[str]:
    """Lines in a fenced block no line inside can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *lines, fence]


def _fit(body: str) -> str:
    """The body cut to what a comment can hold (the parts are bounded; this is the last guard)."""
    if len(body) <= MAX_BODY_CHARS:
        return body
    note = "\n\n(cut: the report is longer than a comment; see the job summary)\n"
    return body[: MAX_BODY_CHARS - len(note)] + note


def is_label(label: str) -> bool:
    """A name git could give a branch: printable, without spaces (markdown escaping does the rest)."""
    return 0 < len(label) <= MAX_LABEL and label.isprintable() and not re.search(r"\s", label)


# --- command line --------------------------------------------------------------------------------
