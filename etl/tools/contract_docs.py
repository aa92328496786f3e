"""``tweetpipe contracts docs``: the contracts as a small static HTML site.

One page per contract (datasets, columns with types and constraints, quality rules, owners and the
version history from git) and an index, written as plain HTML with one stylesheet and no script,
so the site can be published next to the GX Data Docs under ``docs/contracts/``. The output is
deterministic: the same contracts and the same git history give the same bytes (no timestamps).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from etl.contracts.model import QUALITY_OPERATORS
from etl.contracts.tree import allowed_values, iter_properties, schema_objects
from etl.errors import DocsInputError, LintUsageError
from etl.storage.keys import CONTRACT_DOCS_PREFIX
from etl.tools.contract_lint import contract_files
from etl.tools.git import git_output

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from etl.contracts.tree import PropertyRef
    from etl.storage.store import Store

_HISTORY_LIMIT = 200
_SEP = "\x1f"
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8"}

STYLE = """\
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
  color: #1b1f24; }
h1, h2, h3 { line-height: 1.2; }
a { color: #0b5cad; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
code { font: 13px ui-monospace, monospace; background: #f3f5f7; padding: 0 .2rem; }
.muted { color: #57606a; }
.yes { font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
"""


@dataclass(frozen=True)
class HistoryEntry:
    """One commit that touched a contract file.

    Attributes:
        commit: the abbreviated commit id (``working tree`` for uncommitted changes).
        date: the commit date, ``YYYY-MM-DD``.
        version: the contract's ``version`` field in that commit (``?`` when unreadable).
        subject: the commit message's first line.
    """

    commit: str
    date: str
    version: str
    subject: str


@dataclass(frozen=True)
class _Page:
    file_name: str
    source: Path
    doc: dict[str, Any]
    history: tuple[HistoryEntry, ...] | None


# --- entry points --------------------------------------------------------------------------------
def version_history(path: Path) -> list[HistoryEntry] | None:
    """The commits that touched a contract file, newest first, with its version at each.

    Renames are followed (``git log --follow``). Uncommitted changes to the file come first as a
    ``working tree`` entry.

    Args:
        path: a contract file.

    Returns:
        The history, or None when the file is not in a git working tree.
    """
    path = path.resolve()
    top_out = git_output(path.parent, "rev-parse", "--show-toplevel")
    if top_out is None:
        return None
    top = Path(top_out.strip()).resolve()
    rel = path.relative_to(top).as_posix()
    log = git_output(
        top,
        "log",
        "--follow",
        f"-n{_HISTORY_LIMIT}",
        f"--format={_SEP}%H{_SEP}%h{_SEP}%cs{_SEP}%s",
        "--name-only",
        "--",
        rel,
    )
    entries = [
        HistoryEntry(short, day, _version_at(top, sha, name), subject)
        for sha, short, day, subject, name in _parse_log(log or "")
    ]
    current = path.read_text(encoding="utf-8")
    if git_output(top, "show", f"HEAD:{rel}") != current:
        entries.insert(0, HistoryEntry("working tree", "", _version_of(current), "uncommitted"))
    return entries


def build_site(paths: Sequence[str | Path], out: Path) -> list[Path]:
    """Write the site: ``index.html``, ``style.css`` and one page per contract.

    Args:
        paths: contract files or directories (empty: ``contracts/`` of this repository).
        out: the output directory (created; files in it with the same names are replaced).

    Returns:
        The written files, index first.

    Raises:
        DocsInputError: a path is missing or a contract is not a YAML mapping.
    """
    try:
        files = contract_files(paths)
    except LintUsageError as exc:
        raise DocsInputError(str(exc)) from exc
    pages = [_load_page(path) for path in files]
    names = [p.file_name for p in pages]
    if len(set(names)) != len(names):
        raise DocsInputError(f"two contracts would share a page name: {sorted(names)}")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "index.html", out / "style.css"]
    written[0].write_text(render_index(pages), encoding="utf-8")
    written[1].write_text(STYLE, encoding="utf-8")
    for page in pages:
        target = out / page.file_name
        target.write_text(render_page(page), encoding="utf-8")
        written.append(target)
    return written


def contract_pages(out: Path) -> dict[str, Path]:
    """Render the pipeline's contracts as the pages the Data Docs link their rules to.

    Args:
        out: an empty directory to write them in.

    Returns:
        Site path (``contracts/<name>.html``, ``contracts/style.css``, ``contracts/index.html``)
        to local file.
    """
    from etl.resources import contracts_dir

    return {f"contracts/{p.name}": p for p in build_site([contracts_dir()], out)}


def publish_site(
    files: Iterable[Path], store: Store | str, prefix: str = CONTRACT_DOCS_PREFIX
) -> list[str]:
    """Copy the site's files into a store, next to the Data Docs.

    Args:
        files: the files :func:`build_site` wrote (all in one directory).
        store: the store, or its URL (``s3://bucket/prefix`` or a local directory).
        prefix: key prefix (default ``docs/contracts/``).

    Returns:
        The keys written.
    """
    from etl.storage.store import open_store

    if isinstance(store, str):
        store = open_store(store)
    keys = []
    for path in files:
        key = f"{prefix}{path.name}"
        content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        store.put(key, path.read_bytes(), content_type)
        keys.append(key)
    return keys


# --- reading -------------------------------------------------------------------------------------
def _load_page(path: Path) -> _Page:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DocsInputError(f"{path}: cannot read contract: {exc}") from exc
    if not isinstance(doc, dict):
        raise DocsInputError(f"{path}: a contract is a YAML mapping")
    history = version_history(path)
    return _Page(page_name(path), path, doc, tuple(history) if history is not None else None)


def page_name(contract: Path | str) -> str:
    """The file name of a contract's page in the site (``x.odcs.yaml`` -> ``x.html``).

    Args:
        contract: the contract file.

    Returns:
        The page's file name, relative to the site's root.
    """
    stem = Path(contract).name.removesuffix(".yaml").removesuffix(".odcs")
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) + ".html"


def _parse_log(log: str) -> list[tuple[str, str, str, str, str]]:
    """(sha, short sha, date, subject, path at that commit) from ``git log --name-only``."""
    commits: list[tuple[str, str, str, str, str]] = []
    header: list[str] | None = None
    for line in log.splitlines():
        if line.startswith(_SEP):
            header = line.split(_SEP)[1:]
        elif line.strip() and header is not None:
            sha, short, day, subject = (header + ["", "", "", ""])[:4]
            commits.append((sha, short, day, subject, line.strip()))
            header = None
    return commits


def _version_at(top: Path, sha: str, name: str) -> str:
    text = git_output(top, "show", f"{sha}:{name}")
    return _version_of(text) if text is not None else "?"


def _version_of(text: str) -> str:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return "?"
    return str(doc.get("version", "?")) if isinstance(doc, dict) else "?"


# --- HTML ----------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _code(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_code(v) for v in value)
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    return f"<code>{_e(value)}</code>"


def _document(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            '<link rel="stylesheet" href="style.css">',
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A table whose cells are already HTML (escape before)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    out.append("</table>")
    return out


def render_index(pages: Sequence[_Page]) -> str:
    """The index page: one row per contract.

    Args:
        pages: the contracts to list.

    Returns:
        The HTML document.
    """
    rows = []
    for page in pages:
        doc = page.doc
        columns = sum(1 for ref in iter_properties(doc) if ref.depth == 0)
        rows.append(
            [
                f'<a href="{_e(page.file_name)}">{_e(doc.get("name") or page.source.name)}</a>',
                _e(doc.get("version")),
                _e(doc.get("status")),
                ", ".join(_e(obj.get("name")) for _, obj in schema_objects(doc)),
                str(columns),
                _e(_team_name(doc)),
                _e(_purpose(doc)),
            ]
        )
    body = [
        "<h1>Data contracts</h1>",
        '<p class="muted">Rendered from the ODCS contracts in <code>contracts/</code> '
        "by <code>tweetpipe contracts docs</code>.</p>",
        *_table(["contract", "version", "status", "datasets", "columns", "owner", "purpose"], rows),
    ]
    return _document("Data contracts", body)


def render_page(page: _Page) -> str:
    """One contract's page.

    Args:
        page: the contract, its source file and its history.

    Returns:
        The HTML document.
    """
    doc = page.doc
    title = str(doc.get("name") or page.source.name)
    body = [
        '<p><a href="index.html">&larr; all contracts</a></p>',
        f"<h1>{_e(title)}</h1>",
        *_summary(doc, page.source),
        *_description(doc.get("description")),
        *_team(doc.get("team")),
    ]
    for _, obj in schema_objects(doc):
        body += _dataset(doc, obj)
    body += _history(page.history)
    body.append(
        f'<p class="muted">Generated from <code>{_e(page.source.name)}</code> by '
        "<code>tweetpipe contracts docs</code>.</p>"
    )
    return _document(f"{title} — data contract", body)


def _summary(doc: dict[str, Any], source: Path) -> list[str]:
    fields = ("id", "version", "status", "apiVersion", "domain", "dataProduct", "tenant")
    items = [f"<dt>{_e(k)}</dt><dd>{_e(doc[k])}</dd>" for k in fields if doc.get(k) is not None]
    items.append(f"<dt>file</dt><dd>{_code(source.name)}</dd>")
    return ["<dl>", *items, "</dl>"]


def _description(description: Any) -> list[str]:
    if isinstance(description, dict):
        parts = [
            f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>"
            for k, v in description.items()
            if isinstance(v, str | int | float)
        ]
        return ["<h2>Description</h2>", "<dl>", *parts, "</dl>"] if parts else []
    if description:
        return ["<h2>Description</h2>", f"<p>{_e(description)}</p>"]
    return []


def _team(team: Any) -> list[str]:
    if not isinstance(team, dict):
        return []
    members = [m for m in team.get("members") or [] if isinstance(m, dict)]
    rows = [[_e(m.get("username")), _e(m.get("name")), _e(m.get("role"))] for m in members]
    head = [f"<h2>Owners: {_e(team.get('name', ''))}</h2>"]
    return head + (_table(["username", "name", "role"], rows) if rows else [])


def _dataset(doc: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    name = obj.get("name", "")
    facts = ", ".join(
        f"{k} {_code(obj[k])}"
        for k in ("physicalName", "physicalType", "businessName")
        if obj.get(k)
    )
    out = [f'<h2 id="{_e(name)}">Dataset {_e(name)}</h2>']
    if facts:
        out.append(f'<p class="muted">{facts}</p>')
    if obj.get("description"):
        out.append(f"<p>{_e(obj['description'])}</p>")
    refs = [r for r in iter_properties(doc) if r.dataset == name and not r.is_item]
    out.append("<h3>Columns</h3>")
    out += _table(
        ["column", "type", "required", "unique", "constraints", "description", "source"],
        (_column_row(ref) for ref in refs),
    )
    rules = [("(dataset)", r) for r in obj.get("quality") or [] if isinstance(r, dict)]
    rules += [
        (ref.name, r) for ref in refs for r in ref.prop.get("quality") or [] if isinstance(r, dict)
    ]
    if rules:
        out.append("<h3>Quality rules</h3>")
        out += _table(
            ["rule", "applies to", "check", "severity", "description"],
            (_rule_row(where, rule) for where, rule in rules),
        )
    return out


def _column_row(ref: PropertyRef) -> list[str]:
    prop = ref.prop
    indent = "&nbsp;&nbsp;" * ref.depth
    key = " (primary key)" if prop.get("primaryKey") else ""
    source = [_code(prop.get("transformSourceObjects") or [])]
    if prop.get("transformLogic"):
        source.append(f'<span class="muted">{_e(prop["transformLogic"])}</span>')
    # The anchor Data Docs pages link a column's checks to (``#column-tweet_id``).
    return [
        f'{indent}<span id="column-{_e(ref.name)}"></span>{_code(ref.name)}',
        _type_cell(prop),
        _yes(prop.get("required")),
        _yes(prop.get("unique")) + _e(key),
        "<br>".join(_constraints(prop)),
        _e(prop.get("description")),
        "<br>".join(s for s in source if s),
    ]


def _yes(flag: Any) -> str:
    return '<span class="yes">yes</span>' if flag else "no"


def _type_cell(prop: dict[str, Any]) -> str:
    text = _e(prop.get("logicalType", "?"))
    items = prop.get("items")
    if isinstance(items, dict):
        text += f" of {_e(items.get('logicalType', '?'))}"
    if prop.get("physicalType"):
        text += f' <span class="muted">({_e(prop["physicalType"])})</span>'
    return text


def _constraints(prop: dict[str, Any]) -> list[str]:
    out = [f"{_e(k)} {_code(v)}" for k, v in _options(prop).items()]
    items = prop.get("items")
    if isinstance(items, dict):
        out += [f"items {_e(k)} {_code(v)}" for k, v in _options(items).items()]
    values = allowed_values(prop)
    if values is not None:
        out.append("one of " + ", ".join(_code(v) for v in values))
    return out


def _options(prop: dict[str, Any]) -> dict[str, Any]:
    options = prop.get("logicalTypeOptions")
    return options if isinstance(options, dict) else {}


def _rule_row(where: str, rule: dict[str, Any]) -> list[str]:
    ops = [f"{_e(op)} {_code(rule[op])}" for op in QUALITY_OPERATORS if op in rule]
    metric = rule.get("metric") or rule.get("type", "")
    check = f"{_e(metric)} " + ", ".join(ops)
    if rule.get("unit"):
        check += f" {_e(rule['unit'])}"
    arguments = rule.get("arguments")
    if isinstance(arguments, dict) and arguments:
        check += "<br>" + ", ".join(f"{_e(k)} {_code(v)}" for k, v in arguments.items())
    # The anchor Data Docs pages link a rule's checks to (``#rule-quarantined_share``).
    return [
        f'<span id="rule-{_e(rule.get("name", ""))}"></span>{_code(rule.get("name", ""))}',
        _e(where),
        check,
        _e(rule.get("severity", "error")),
        _e(rule.get("description")),
    ]


def _history(history: Sequence[HistoryEntry] | None) -> list[str]:
    out = ["<h2>Version history</h2>"]
    if history is None:
        return [*out, '<p class="muted">Not in a git working tree: no history.</p>']
    rows = [[_code(h.commit), _e(h.date), _e(h.version), _e(h.subject)] for h in history]
    return out + _table(["commit", "date", "version", "change"], rows)


def _team_name(doc: dict[str, Any]) -> str:
    team = doc.get("team")
    return str(team.get("name", "")) if isinstance(team, dict) else ""


def _purpose(doc: dict[str, Any]) -> str:
    description = doc.get("description")
    if isinstance(description, dict):
        return str(description.get("purpose", ""))
    return str(description or "")
