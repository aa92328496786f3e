"""The reports of ``tweetpipe contracts diff``: text for people, markdown for pull-request
comments, JSON for tools.
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import TYPE_CHECKING

from etl.errors import DiffInputError
from etl.tools.contract_diff import next_major

if TYPE_CHECKING:
    from etl.tools.contract_changes import Change
    from etl.tools.contract_diff import ContractDiff, DiffReport

FORMATS = ("text", "json", "markdown")
DOCS_URL_ENV = "TWEETPIPE_CONTRACT_DOCS_URL"
# A docs URL goes into markdown links as it is: only characters that cannot end the link or
# start markup, bounded.
_DOCS_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+,;=:@!$&-]*)?")
_DOCS_URL_MAX = 2000
# The markdown report is a pull-request comment, which the host caps at 65,536 characters:
# bounded tables with bounded cells stay well below.
MARKDOWN_MAX_ROWS = 100
_MD_MAX_CELL = 240
_MD_MAX_CODE = 160


def render(
    report: DiffReport,
    fmt: str = "text",
    docs_url: str | None = None,
    max_rows: int = MARKDOWN_MAX_ROWS,
) -> str:
    """Write a report for people (``text``), CI comments (``markdown``) or tools (``json``).

    The markdown report opens with a one-line verdict, then a table of contracts, then the
    breaking changes, then the non-breaking ones folded in a ``<details>`` block.

    Args:
        report: the report.
        fmt: one of ``text``, ``json``, ``markdown``.
        docs_url: where ``tweetpipe contracts docs`` is published (checked with
            :func:`docs_url_setting`); the markdown report links each contract's page.
        max_rows: the most rows of each markdown table (the rest are counted).

    Returns:
        The rendered report, ending with a newline.

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "markdown":
        return _markdown(report, docs_url, max_rows)
    return _text(report)


def docs_url_setting(given: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The contract docs URL from a flag, else ``$TWEETPIPE_CONTRACT_DOCS_URL``, checked.

    Args:
        given: the ``--docs-url`` value, if any.
        environ: the environment (default: the process's).

    Returns:
        The URL without a trailing slash, or None when neither is set (or both are empty).

    Raises:
        DiffInputError: the URL is not a plain http(s) URL.
    """
    env = os.environ if environ is None else environ
    source, value = ("--docs-url", given) if given else (DOCS_URL_ENV, env.get(DOCS_URL_ENV, ""))
    if not value:
        return None
    if len(value) > _DOCS_URL_MAX or not _DOCS_URL.fullmatch(value):
        raise DiffInputError(
            f"{source}: {value[:80]!r} is not a plain http(s) URL (letters, digits and "
            f"._~%/+,;=:@!$&- only, at most {_DOCS_URL_MAX} characters)"
        )
    return value.rstrip("/")


# --- rendering -----------------------------------------------------------------------------------
def _label(change: Change) -> str:
    return "BREAKING" if change.breaking else "non-breaking"


def _versions(diff: ContractDiff) -> str:
    return f"{diff.old_version or '(none)'} -> {diff.new_version or '(none)'}"


def _text(report: DiffReport) -> str:
    lines: list[str] = []
    for diff in report.contracts:
        lines.append(f"{diff.contract}  {_versions(diff)}")
        width = max((len(c.where) for c in diff.changes), default=0)
        for change in diff.changes:
            lines.append(f"  {_label(change):<12}  {change.where:<{width}}  {change.message}")
        status = "ok" if diff.ok else "FAIL"
        lines.append(f"  => {status}: {diff.verdict()}")
    if not report.contracts:
        lines.append("no contracts to compare")
    lines.append(
        "contracts diff: "
        + ("ok" if report.ok else "FAIL (breaking change without a major version bump)")
    )
    return "\n".join(lines) + "\n"


def markdown_code(text: str) -> str:
    """Text for a code span in a markdown table cell: nothing in it can end the cell or the span.

    Args:
        text: the text (a path, a column, a revision).

    Returns:
        The text to put between single backticks, on one line, cut at 160 characters.
    """
    if len(text) > _MD_MAX_CODE:
        text = text[: _MD_MAX_CODE - 1] + "\u2026"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def markdown_text(text: str, limit: int = _MD_MAX_CELL) -> str:
    """Prose for a markdown table cell, shown as text: no HTML, link, mention or cell break.

    The values come from the pull request under review, so nothing in them may open or close an
    HTML block (``</details>``), ping someone (``@user``) or make a link.

    Args:
        text: the prose.
        limit: the longest text kept (longer ones are cut with an ellipsis).

    Returns:
        The escaped text, on one line.
    """
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    text = html.escape(text.replace("\n", " "), quote=False)
    text = re.sub(r"([\\`*_\[\]|])", r"\\\1", text)
    # a word joiner after @ keeps the text readable but is no mention
    return text.replace("@", "@\u2060")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _md_verdict(report: DiffReport) -> str:
    base = f" against `{markdown_code(report.base)}`" if report.base else ""
    breaking = [c for d in report.contracts for c in d.changes if c.breaking]
    others = sum(not c.breaking for d in report.contracts for c in d.changes)
    if report.ok:
        if not breaking and not others:
            why = "no contract changed"
        else:
            parts = [f"{_plural(len(breaking), 'breaking change')} with a major version bump"]
            parts = parts if breaking else []
            parts += [f"{_plural(others, 'non-breaking change')}"] if others else []
            why = ", ".join(parts)
        return f"### Contract changes{base}: passes ({why})"
    failing = [d for d in report.contracts if not d.ok]
    wanted = "; ".join(
        f"`{markdown_code(d.contract)}` needs version {markdown_text(next_major(d.old_version))}, "
        f"is {markdown_text(d.new_version)}"
        if d.new_version
        else f"`{markdown_code(d.contract)}` removed while its status is not retired"
        for d in failing
    )
    count = sum(c.breaking for d in failing for c in d.changes)
    return (
        f"### Contract changes{base}: fails ({_plural(count, 'breaking change')} without a major "
        f"version bump: {wanted})"
    )


def _md_contract(diff: ContractDiff, docs_url: str | None) -> str:
    name = f"`{markdown_code(diff.contract)}`"
    if docs_url is None or diff.new_source is None:
        return name
    from etl.tools.contract_docs import page_name

    return f"[{name}]({docs_url}/{page_name(diff.contract)})"


def _md_changes(
    title: list[str], changes: list[tuple[ContractDiff, Change]], max_rows: int
) -> list[str]:
    lines = [*title, "", "| contract | where | change |", "|---|---|---|"]
    for diff, change in changes[:max_rows]:
        lines.append(
            f"| `{markdown_code(diff.contract)}` | `{markdown_code(change.where)}` "
            f"| {markdown_text(change.message)} |"
        )
    if len(changes) > max_rows:
        rest = len(changes) - max_rows
        lines += [
            "",
            f"... and {rest} more: run `tweetpipe contracts diff --base` to see them all.",
        ]
    return lines


def _markdown(report: DiffReport, docs_url: str | None, max_rows: int) -> str:
    lines = [_md_verdict(report), ""]
    lines += ["| contract | version | breaking | verdict |", "|---|---|---|---|"]
    for diff in report.contracts[:max_rows]:
        mark = "ok" if diff.ok else "**FAIL**"
        breaking = sum(c.breaking for c in diff.changes)
        lines.append(
            f"| {_md_contract(diff, docs_url)} | {markdown_text(_versions(diff))} | {breaking} "
            f"| {mark}: {markdown_text(diff.verdict())} |"
        )
    if len(report.contracts) > max_rows:
        lines += ["", f"... and {len(report.contracts) - max_rows} more contract(s)."]
    changes = [(d, c) for d in report.contracts for c in d.changes]
    breaking_changes = [(d, c) for d, c in changes if c.breaking]
    other_changes = [(d, c) for d, c in changes if not c.breaking]
    if breaking_changes:
        title = [f"#### {_plural(len(breaking_changes), 'breaking change')}"]
        lines += ["", *_md_changes(title, breaking_changes, max_rows)]
    if other_changes:
        # GitHub renders markdown inside <details> only after a blank line
        summary = (
            f"<details><summary>{_plural(len(other_changes), 'non-breaking change')}</summary>"
        )
        lines += ["", *_md_changes([summary], other_changes, max_rows), "", "</details>"]
    if docs_url is not None:
        lines += ["", f"Contract docs: {docs_url}/index.html"]
    return "\n".join(lines) + "\n"
