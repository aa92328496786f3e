"""The Data Docs index, split by month so it stays small after years of runs.

Layout (site-relative)::

    index.html                       months, newest first, and the latest runs; filters
    index/months.json                per month: its chunks and their counts, the sources and suites
    index/<YYYY-MM>/<NNN>.json       the runs of one chunk of a month (at most CHUNK_SIZE)
    index/<YYYY-MM>/<NNN>.html       the same runs as a table, newest first, with filters

A run's validations go to the month of their run time, appended to the month's last chunk (a new
chunk once it holds :data:`CHUNK_SIZE`), so adding a run rewrites one chunk, ``months.json`` and
``index.html``, whatever the history. Every page is plain HTML with a few lines of inline script
for the source, suite and status filters: nothing is loaded from anywhere.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

INDEX_DIR = "index"
MONTHS_FILE = f"{INDEX_DIR}/months.json"
CHUNK_SIZE = 500
LATEST = 20
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
# RFC 3986 allows these in a path; run names such as ``…__source=x`` keep their readable form.
_PATH_SAFE = "/!$&'()*+,;=:@"
STATUS_TEXT = {
    "passed": "\u2713 Passed",
    "warning": "\u26a0 Warnings only",
    "failed": "\u2717 Failed",
}


def month_of(entry: dict[str, Any]) -> str:
    """The month (``YYYY-MM``, UTC) an index entry belongs to: its run time's."""
    return str(entry["time"])[:7]


def chunk_path(month: str, number: int, suffix: str) -> str:
    """A chunk's site-relative path (``index/2026-11/001.html``)."""
    if not _MONTH.fullmatch(month):
        raise ValueError(f"not a month: {month!r}")
    return f"{INDEX_DIR}/{month}/{number:03d}.{suffix}"


@dataclass
class IndexState:
    """What ``index/months.json`` holds.

    Attributes:
        months: per month: ``chunks`` (per chunk: ``runs``, ``failed``, ``warning``),
            ``sources`` and ``suites`` seen.
        latest: the newest :data:`LATEST` entries, newest first.
    """

    months: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The file's text (sorted keys: the same state gives the same bytes)."""
        doc = {"months": self.months, "latest": self.latest}
        return json.dumps(doc, sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndexState:
        """Parse ``months.json``; a malformed file raises ValueError."""
        doc = json.loads(text)
        months, latest = doc.get("months"), doc.get("latest")
        if not isinstance(months, dict) or not isinstance(latest, list):
            raise ValueError("months.json: expected 'months' (object) and 'latest' (list)")
        if not all(_MONTH.fullmatch(str(m)) for m in months):
            raise ValueError("months.json: a month is not YYYY-MM")
        return cls(months=months, latest=latest)


def _newest_first(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (str(e["time"]), str(e["result"])), reverse=True)


def add_entries(
    state: IndexState,
    entries: list[dict[str, Any]],
    read_chunk: Callable[[str, int], list[dict[str, Any]]],
    write: Callable[[str, str], None],
) -> None:
    """Add validation entries to the index: rewrite the chunks they land in and the top files.

    An entry already in its month (same ``result``) is replaced, not repeated, so adding the same
    validation twice (a build that stopped before its pages were uploaded) keeps one row.

    Args:
        state: the index state; updated in place.
        entries: the new entries (see :func:`etl.steps.quality.docs_site.index_entry`).
        read_chunk: ``(month, number) -> entries`` of an existing chunk (only of touched months).
        write: ``(site path, text)``: writes one file of the site.
    """
    by_month: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_month.setdefault(month_of(entry), []).append(entry)
    for month, new in sorted(by_month.items()):
        info = state.months.setdefault(month, {"chunks": [], "sources": [], "suites": []})
        chunks = [read_chunk(month, i + 1) for i in range(len(info["chunks"]))]
        known = {
            str(e["result"]): (c, i) for c, chunk in enumerate(chunks) for i, e in enumerate(chunk)
        }
        touched: set[int] = set()
        for entry in new:
            at = known.get(str(entry["result"]))
            if at is not None:
                chunks[at[0]][at[1]] = entry
                touched.add(at[0])
                continue
            if not chunks or len(chunks[-1]) >= CHUNK_SIZE:
                chunks.append([])
            chunks[-1].append(entry)
            known[str(entry["result"])] = (len(chunks) - 1, len(chunks[-1]) - 1)
            touched.add(len(chunks) - 1)
        info["chunks"] = [_counts(chunk) for chunk in chunks]
        info["sources"] = sorted({*info["sources"], *(str(e["source"]) for e in new)})
        info["suites"] = sorted({*info["suites"], *(str(e["suite"]) for e in new)})
        for c in sorted(touched):
            text = json.dumps(chunks[c], sort_keys=True, indent=0) + "\n"
            write(chunk_path(month, c + 1, "json"), text)
            write(chunk_path(month, c + 1, "html"), render_chunk(month, c + 1, chunks[c], info))
    merged = {str(e["result"]): e for e in [*state.latest, *entries]}
    state.latest = _newest_first(merged.values())[:LATEST]
    write(MONTHS_FILE, state.to_json())
    write("index.html", render_index(state))


def _counts(chunk: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "runs": len(chunk),
        "failed": sum(e.get("status") == "failed" for e in chunk),
        "warning": sum(e.get("status") == "warning" for e in chunk),
    }


_STYLE = """<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 84rem;
  padding: 0 1rem; color: #1b1f24; }
a { color: #0b5cad; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #c8c8c8; padding: .3rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
tr.failed td { background: #fde7e9; }
tr.failed .status { color: #a4001d; font-weight: bold; }
tr.warning td { background: #fff6d6; }
tr.warning .status { color: #7a5200; }
tr.passed .status { color: #17692a; }
.filters { display: flex; gap: 1rem; flex-wrap: wrap; align-items: center; margin: .5rem 0; }
.muted { color: #57606a; }
</style>"""

# Filters rows by the data-source, data-suite and data-status attributes, from the selects or
# the page's #source=…&suite=… fragment (the month links carry the index's choice along).
_FILTER_SCRIPT = """<script>
(function () {
  var form = document.getElementById("filters");
  var table = document.getElementById("runs");
  function read() {
    var f = {};
    ["source", "suite", "status"].forEach(function (n) { f[n] = form.elements[n].value; });
    return f;
  }
  function apply() {
    var f = read(), shown = 0, rows = table.querySelectorAll("tbody tr");
    rows.forEach(function (tr) {
      var ok = (!f.source || (" " + tr.dataset.source + " ").indexOf(" " + f.source + " ") >= 0)
        && (!f.suite || (" " + tr.dataset.suite + " ").indexOf(" " + f.suite + " ") >= 0)
        && (!f.status || tr.dataset.status === f.status);
      tr.hidden = !ok; shown += ok ? 1 : 0;
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " shown";
    var hash = [];
    ["source", "suite"].forEach(function (n) {
      if (f[n]) { hash.push(n + "=" + encodeURIComponent(f[n])); }
    });
    document.querySelectorAll("a.carry").forEach(function (a) {
      a.hash = hash.join("&");
    });
  }
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("="), el = form.elements[p[0]];
    if (p.length === 2 && el) { el.value = decodeURIComponent(p[1]); }
  });
  form.addEventListener("change", apply);
  apply();
})();
</script>"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _href(path: str) -> str:
    return _e(quote(path, safe=_PATH_SAFE))


def _select(name: str, label: str, options: Iterable[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{_e(v)}">{_e(t)}</option>' for v, t in options)
    return f'<label>{_e(label)} <select name="{name}"><option value="">all</option>{opts}</select></label>'


def _filters(sources: Iterable[str], suites: Iterable[str], statuses: bool = True) -> str:
    parts = [
        _select("source", "Source", ((s, s) for s in sorted(sources))),
        _select("suite", "Suite", ((s, s) for s in sorted(suites))),
    ]
    status = (("failed", "failed"), ("warning", "warnings only"), ("passed", "passed"))
    parts.append(
        _select("status", "Status", status) if statuses else '<input type="hidden" name="status">'
    )
    return f'<form id="filters" class="filters">{"".join(parts)}<span id="shown" class="muted"></span></form>'


def _document(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n{_STYLE}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _runs_table(entries: list[dict[str, Any]], to_root: str) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Run time (UTC)", "Suite", "Source", "Interval", "Run", "Status", "Failed")
    )
    rows = "\n".join(_row(e, to_root) for e in _newest_first(entries))
    return f'<table id="runs">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'


def _row(entry: dict[str, Any], to_root: str) -> str:
    status = str(entry.get("status"))
    name = f'<a href="{to_root}{_href(str(entry["page"]))}">{_e(entry["run"])}</a>'
    when = str(entry["time"])
    cells = (
        f'<time datetime="{_e(when)}">{_e(when[:19].replace("T", " "))}</time>',
        _e(entry["suite"]),
        _e(entry.get("source") or "?"),
        _e(entry.get("interval") or "?"),
        name,
        f'<span class="status">{_e(STATUS_TEXT.get(status, status))}</span>',
        f"{_e(entry.get('unsuccessful', 0))} of {_e(entry.get('evaluated', 0))}",
    )
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return (
        f'<tr class="{_e(status)}" data-status="{_e(status)}" data-source="{_e(entry.get("source") or "")}"'
        f' data-suite="{_e(entry["suite"])}">{tds}</tr>'
    )


def render_chunk(
    month: str, number: int, entries: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    """One chunk of a month's runs as a page (``index/<month>/<NNN>.html``).

    Args:
        month: ``YYYY-MM``.
        number: the chunk's number in the month, from 1.
        entries: its runs.
        info: the month's ``months.json`` entry (for the links to its other chunks).

    Returns:
        The HTML.
    """
    total = len(info["chunks"])
    failed = sum(e.get("status") == "failed" for e in entries)
    others = " ".join(
        f'<a class="carry" href="{i:03d}.html">part {i}</a>' if i != number else f"<b>part {i}</b>"
        for i in range(total, 0, -1)
    )
    sources = {str(e.get("source") or "") for e in entries} - {""}
    suites = {str(e["suite"]) for e in entries}
    body = (
        f'<p><a class="carry" href="../../index.html">All months</a></p>\n'
        f"<h1>Validations of {_e(month)}"
        + (f", part {number} of {total}" if total > 1 else "")
        + f"</h1>\n<p>{len(entries)} validations, {failed} failed. "
        + (f"Parts, newest first: {others}</p>\n" if total > 1 else "</p>\n")
        + _filters(sources, suites)
        + "\n"
        + _runs_table(entries, "../../")
        + "\n"
        + _FILTER_SCRIPT
    )
    return _document(f"tweetpipe Data Docs: {month}", body)


def render_index(state: IndexState) -> str:
    """The site's ``index.html``: the months newest first, the latest runs, and filters.

    Args:
        state: the index state.

    Returns:
        The HTML.
    """
    sources = sorted({s for m in state.months.values() for s in m["sources"]})
    suites = sorted({s for m in state.months.values() for s in m["suites"]})
    rows = []
    for month in sorted(state.months, reverse=True):
        info = state.months[month]
        runs = sum(c["runs"] for c in info["chunks"])
        failed = sum(c["failed"] for c in info["chunks"])
        parts = " ".join(
            f'<a class="carry" href="{_href(chunk_path(month, i, "html"))}">'
            f"{'part ' + str(i) if len(info['chunks']) > 1 else 'runs'}</a>"
            for i in range(len(info["chunks"]), 0, -1)
        )
        status = "failed" if failed else "passed"
        rows.append(
            f'<tr class="{status}" data-status="{status}" data-source="{_e(" ".join(info["sources"]))}"'
            f' data-suite="{_e(" ".join(info["suites"]))}"><td>{_e(month)}</td><td>{runs}</td>'
            f'<td class="status">{failed}</td><td>{_e(", ".join(info["sources"]))}</td>'
            f"<td>{parts}</td></tr>"
        )
    total = sum(c["runs"] for m in state.months.values() for c in m["chunks"])
    failed = sum(c["failed"] for m in state.months.values() for c in m["chunks"])
    months = (
        '<table id="runs">\n<thead><tr><th>Month</th><th>Validations</th><th>Failed</th>'
        "<th>Sources</th><th>Runs</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )
    latest = (
        _runs_table(state.latest, "").replace('id="runs"', 'id="latest"')
        if state.latest
        else "<p>No validation runs yet.</p>"
    )
    body = (
        f"<h1>tweetpipe Data Docs</h1>\n<p>{total} validations, {failed} failed. "
        f'<a href="contracts/index.html">Data contracts</a></p>\n'
        f"<h2>Latest validations</h2>\n{latest}\n<h2>By month, newest first</h2>\n"
        + _filters(sources, suites, statuses=False)
        + f"\n{months}\n{_FILTER_SCRIPT}"
    )
    return _document("tweetpipe Data Docs", body)
