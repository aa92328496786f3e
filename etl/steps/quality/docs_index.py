"""The Data Docs index, split by month so it stays small after years of runs.

Layout (site-relative)::

    index.html                        months, newest first, and the latest runs; filters
    index/months.json                 per month: its parts (counts, digest), sources and suites
    index/<YYYY-MM>/runs/<id>.json    the entries one build added to the month (never rewritten)
    index/<YYYY-MM>/<NNN>.html        the month's runs, at most PART_SIZE a part, newest first
    index/<YYYY-MM>/expired.json      what retention deleted of the month: pages (and results) of
                                      the validations that ran before a time (written by retention)

A build writes its new entries as a fragment of their month (a key of its own, so builds running
at the same time never overwrite each other's entries), then renders the months it touched from
all of their fragments: a part page is uploaded only when its entries changed (digest in
``months.json``), so a run rewrites one part, ``months.json`` and ``index.html`` whatever the
history. Pages are derived data: should two builds of one month race, the later build of that
month (or of the next, which also refreshes the month before) renders what either added.
Every page is plain HTML with a few lines of inline script for the source, suite and status
filters: nothing is loaded from anywhere.

A validation whose page retention deleted keeps its row (the run happened; its status and counts
are still true): the row says the page expired and links the result JSON while that is kept, or
nothing once it is gone too. Retention writes ``expired.json`` of the months it expires pages (or
results) of and renders them before it deletes anything; a build renders a month with the marker
it finds when listing the month (no extra request when there is none).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from etl.storage.keys import RESULTS_DIR, docs_validation_time

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

INDEX_DIR = "index"
MONTHS_FILE = f"{INDEX_DIR}/months.json"
EXPIRED_FILE = "expired.json"
PART_SIZE = 500
LATEST = 20
RUNS_SECTION_ID = "tweetpipe-runs"
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
# An aware UTC time as ``datetime.isoformat`` writes it (what ``expired.json`` holds).
_UTC_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?\+00:00"
)
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


def _check_month(month: str) -> str:
    if not _MONTH.fullmatch(month):
        raise ValueError(f"not a month: {month!r}")
    return month


def part_path(month: str, number: int) -> str:
    """A part's site-relative path (``index/2026-11/001.html``)."""
    return f"{INDEX_DIR}/{_check_month(month)}/{number:03d}.html"


def month_dir(month: str) -> str:
    """Everything of a month's index: parts, fragments, expiry (``index/2026-11/``)."""
    return f"{INDEX_DIR}/{_check_month(month)}/"


def fragments_dir(month: str) -> str:
    """Where the builds' fragments of a month are (``index/2026-11/runs/``)."""
    return f"{month_dir(month)}runs/"


def expired_path(month: str) -> str:
    """What retention deleted of a month (``index/2026-11/expired.json``, see :class:`Expired`)."""
    return f"{month_dir(month)}{EXPIRED_FILE}"


Gone = Literal["", "page", "all"]
"""What of a validation retention deleted: nothing, its page, or its page and its result."""


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True)
class Expired:
    """What retention deleted of a month's validations (``index/<month>/expired.json``).

    Times compare with the run time in a validation's result key
    (:func:`etl.storage.keys.docs_validation_time`), as retention's own do, so a row says expired
    exactly when retention deleted (or is about to delete) the page.

    Attributes:
        pages_before: the validations that ran before this have no page; None: every page kept.
        results_before: nor their result JSON; None: every result kept.
    """

    pages_before: datetime | None = None
    results_before: datetime | None = None

    @classmethod
    def everything(cls) -> Expired:
        """Every page and result gone: how an unreadable marker is read (no link can be dead)."""
        end = datetime.max.replace(tzinfo=UTC)
        return cls(end, end)

    def merged(self, other: Expired | None) -> Expired:
        """The later of each time: what was deleted stays deleted."""
        if other is None:
            return self
        return Expired(
            _later(self.pages_before, other.pages_before),
            _later(self.results_before, other.results_before),
        )

    def to_dict(self) -> dict[str, str | None]:
        """The marker's fields (ISO times, UTC)."""
        return {
            "pages_before": None if self.pages_before is None else self.pages_before.isoformat(),
            "results_before": (
                None if self.results_before is None else self.results_before.isoformat()
            ),
        }

    def to_json(self) -> str:
        """The marker file's text."""
        return json.dumps(self.to_dict(), sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, doc: Any) -> Expired:
        """Parse :meth:`to_dict`'s fields; anything else raises ValueError."""
        if not isinstance(doc, dict) or not set(doc) <= {"pages_before", "results_before"}:
            raise ValueError("expired: expected an object with pages_before, results_before")
        times: list[datetime | None] = []
        for name in ("pages_before", "results_before"):
            value = doc.get(name)
            if value is not None and not (isinstance(value, str) and _UTC_TIME.fullmatch(value)):
                raise ValueError(f"expired: {name} is not a UTC time")
            times.append(None if value is None else datetime.fromisoformat(value))
        return cls(*times)

    def of(self, entry: dict[str, Any]) -> Gone:
        """What of an index entry's validation is gone: ``""``, ``"page"`` or ``"all"``."""
        ran = docs_validation_time(str(entry["result"]), RESULTS_DIR, prefix="")
        if ran is None or self.pages_before is None or ran >= self.pages_before:
            return ""  # retention deletes no page whose key carries no time, nor a newer one
        gone = self.results_before is not None and ran < self.results_before
        return "all" if gone else "page"


def month_expired(info: dict[str, Any]) -> Expired | None:
    """The expiry a month's ``months.json`` entry records (None: nothing expired)."""
    return Expired.from_dict(info["expired"]) if info.get("expired") is not None else None


def fragment_path(month: str, entries: list[dict[str, Any]]) -> str:
    """The fragment key of a build's entries of one month: named by what it holds.

    The newest run time first (fragments list in time order), then a digest of the result paths,
    so the same entries always give the same key (a retried build rewrites its own fragment).
    """
    newest = max(str(e["time"]) for e in entries)
    stamp = re.sub(r"[^0-9]", "", newest)[:20]
    digest = hashlib.sha256("\n".join(sorted(str(e["result"]) for e in entries)).encode())
    return f"{fragments_dir(month)}{stamp}-{digest.hexdigest()[:16]}.json"


@dataclass
class IndexState:
    """What ``index/months.json`` holds.

    Attributes:
        months: per month: ``parts`` (per part: ``runs``, ``failed``, ``warning``, ``digest``),
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
        for month, info in months.items():
            if not _MONTH.fullmatch(str(month)) or not _is_month_info(info):
                raise ValueError(f"months.json: month {str(month)[:20]!r} is malformed")
        if not all(isinstance(e, dict) and is_entry(e) for e in latest):
            raise ValueError("months.json: a latest entry is malformed")
        return cls(months=months, latest=latest)


def _is_month_info(info: Any) -> bool:
    if not isinstance(info, dict) or not isinstance(info.get("parts"), list):
        return False
    parts_ok = all(
        isinstance(p, dict) and all(isinstance(p.get(k), int) for k in ("runs", "failed"))
        for p in info["parts"]
    )
    names_ok = all(
        isinstance(info.get(k), list) and all(isinstance(v, str) for v in info[k])
        for k in ("sources", "suites")
    )
    try:
        month_expired(info)
    except ValueError:
        return False
    return parts_ok and names_ok


def is_entry(entry: dict[str, Any]) -> bool:
    """Whether a dict read back from the store has an index entry's text fields."""
    return all(isinstance(entry.get(k), str) for k in ("result", "page", "suite", "time", "run"))


def _newest_first(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (str(e["time"]), str(e["result"])), reverse=True)


def render_months(
    state: IndexState,
    months: dict[str, list[dict[str, Any]]],
    write: Callable[[str, str], None],
    expired: Mapping[str, Expired] | None = None,
) -> None:
    """Render the given months from all their entries, and the top files.

    Entries are kept once per ``result`` (the last one given wins). Parts hold
    :data:`PART_SIZE` entries, oldest first, so appending rewrites only the last part; a part is
    written only when its rows differ from what ``state`` records (entries, and which of them
    lost their page or result).

    Args:
        state: the index state; updated in place.
        months: month -> every entry of the month (from all its fragments).
        write: ``(site path, text)``: writes one file of the site.
        expired: month -> what retention deleted of it (its ``expired.json``); a month given in
            ``months`` but not here has lost nothing; a month given here only is recorded (the
            latest runs in ``index.html`` may be of it).
    """
    for month, found in sorted(months.items()):
        unique = {str(e["result"]): e for e in found}
        ordered = sorted(unique.values(), key=lambda e: (str(e["time"]), str(e["result"])))
        parts = [ordered[i : i + PART_SIZE] for i in range(0, len(ordered), PART_SIZE)]
        before = state.months.get(month, {}).get("parts", [])
        gone = (expired or {}).get(month)
        info: dict[str, Any] = {
            "parts": [_counts(part, gone) for part in parts],
            "sources": sorted({str(e.get("source") or "") for e in ordered} - {""}),
            "suites": sorted({str(e["suite"]) for e in ordered}),
        }
        if gone is not None:
            info["expired"] = gone.to_dict()
        state.months[month] = info
        for number, part in enumerate(parts, start=1):
            recorded = before[number - 1].get("digest") if number <= len(before) else None
            if recorded != info["parts"][number - 1]["digest"] or len(before) != len(parts):
                write(part_path(month, number), render_part(month, number, part, info))
    for month, gone in (expired or {}).items():
        # A month not rendered again whose runs are among the latest: their rows in index.html.
        if month not in months and month in state.months:
            state.months[month]["expired"] = gone.to_dict()
    fresh = [e for found in months.values() for e in found]
    merged = {str(e["result"]): e for e in [*state.latest, *fresh]}
    state.latest = _newest_first(merged.values())[:LATEST]
    write(MONTHS_FILE, state.to_json())
    write("index.html", render_index(state))


def _counts(part: list[dict[str, Any]], gone: Expired | None) -> dict[str, Any]:
    text = json.dumps(part, sort_keys=True)
    flags = [gone.of(e) for e in part] if gone is not None else []
    if any(flags):
        # Only then: a part nothing of which expired keeps its digest (and is not rewritten).
        text += json.dumps(flags)
    return {
        "runs": len(part),
        "failed": sum(e.get("status") == "failed" for e in part),
        "warning": sum(e.get("status") == "warning" for e in part),
        "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
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
.expired { color: #57606a; font-style: italic; }
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


def _runs_table(
    entries: list[dict[str, Any]], to_root: str, months: Mapping[str, dict[str, Any]]
) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Run time (UTC)", "Suite", "Source", "Interval", "Run", "Status", "Failed")
    )
    expiry = {m: month_expired(info) for m, info in months.items()}
    rows = "\n".join(_row(e, to_root, expiry.get(month_of(e))) for e in _newest_first(entries))
    return f'<table id="runs">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'


def _run_cell(entry: dict[str, Any], to_root: str, expired: Expired | None) -> tuple[str, Gone]:
    """The run's name, linking its page; once retention deleted the page, saying so instead and
    linking the result JSON while that is kept."""
    name = _e(entry["run"])
    if expired is None or expired.pages_before is None or not (gone := expired.of(entry)):
        return f'<a href="{to_root}{_href(str(entry["page"]))}">{name}</a>', ""
    why = "deleted by retention"
    if expired.pages_before.year < datetime.max.year:  # not the unreadable marker's "all"
        why += f"; pages of validations since {expired.pages_before:%Y-%m-%d} are kept"
    if gone == "page":
        result = f'<a class="result" href="{to_root}{_href(str(entry["result"]))}">result JSON</a>'
        return f'{name} <span class="expired" title="{why}">page expired</span> {result}', gone
    return f'{name} <span class="expired" title="{why}">page and result expired</span>', gone


def _row(entry: dict[str, Any], to_root: str, expired: Expired | None) -> str:
    status = str(entry.get("status"))
    name, gone = _run_cell(entry, to_root, expired)
    when = str(entry["time"])
    cells = (
        f'<time datetime="{_e(when)}">{_e(when[:19].replace("T", " "))}</time>',
        _e(entry["suite"]),
        _e(entry.get("source") or "?"),
        _e(entry.get("interval") or "?"),
        name,
        _e(STATUS_TEXT.get(status, status)),
        f"{_e(entry.get('unsuccessful', 0))} of {_e(entry.get('evaluated', 0))}",
    )
    tds = "".join(
        f'<td class="status">{c}</td>' if i == 5 else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return (
        f'<tr class="{_e(status)}" data-status="{_e(status)}" data-source="{_e(entry.get("source") or "")}"'
        f' data-suite="{_e(entry["suite"])}"'
        + (f' data-expired="{gone}"' if gone else "")
        + f">{tds}</tr>"
    )


def render_part(
    month: str, number: int, entries: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    """One part of a month's runs as a page (``index/<month>/<NNN>.html``).

    Args:
        month: ``YYYY-MM``.
        number: the part's number in the month, from 1 (the oldest runs).
        entries: its runs.
        info: the month's ``months.json`` entry (for the links to its other parts, and what
            retention deleted of the month).

    Returns:
        The HTML.
    """
    total = len(info["parts"])
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
        + _runs_table(entries, "../../", {month: info})
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
        runs = sum(c["runs"] for c in info["parts"])
        failed = sum(c["failed"] for c in info["parts"])
        parts = " ".join(
            f'<a class="carry" href="{_href(part_path(month, i))}">'
            f"{'part ' + str(i) if len(info['parts']) > 1 else 'runs'}</a>"
            for i in range(len(info["parts"]), 0, -1)
        )
        status = "failed" if failed else "passed"
        rows.append(
            f'<tr class="{status}" data-status="{status}" data-source="{_e(" ".join(info["sources"]))}"'
            f' data-suite="{_e(" ".join(info["suites"]))}"><td>{_e(month)}</td><td>{runs}</td>'
            f'<td class="status">{failed}</td><td>{_e(", ".join(info["sources"]))}</td>'
            f"<td>{parts}</td></tr>"
        )
    total = sum(c["runs"] for m in state.months.values() for c in m["parts"])
    failed = sum(c["failed"] for m in state.months.values() for c in m["parts"])
    months = (
        '<table id="runs">\n<thead><tr><th>Month</th><th>Validations</th><th>Failed</th>'
        "<th>Sources</th><th>Runs</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )
    latest = (
        _runs_table(state.latest, "", state.months).replace('id="runs"', 'id="latest"')
        if state.latest
        else "<p>No validation runs yet.</p>"
    )
    # The id the runs table of the site had before the index was split by month (links, tests).
    latest = f'<section id="{RUNS_SECTION_ID}">\n{latest}\n</section>'

    body = (
        f"<h1>tweetpipe Data Docs</h1>\n<p>{total} validations, {failed} failed. "
        f'<a href="contracts/index.html">Data contracts</a></p>\n'
        f"<h2>Latest validations</h2>\n{latest}\n<h2>By month, newest first</h2>\n"
        + _filters(sources, suites, statuses=False)
        + f"\n{months}\n{_FILTER_SCRIPT}"
    )
    return _document("tweetpipe Data Docs", body)
