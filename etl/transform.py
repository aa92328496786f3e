"""Raw X API v2 response pages to curated CSV, through the Pandera gate built from the contract.

The transform streams: pages are parsed one at a time, rows are gathered into chunks of
:data:`CHUNK_ROWS`, each chunk is validated as one vectorized Pandera call and written out before
the next is read, so memory does not grow with the input (only the set of tweet ids already seen
does, at 8 bytes an id).

Decisions users rely on (each is tested):

* Columns come from the contract. A column whose ``transformSourceObjects`` is a plain path
  (``data[].public_metrics.like_count``, ``data[].referenced_tweets[0].id``) is read from that path,
  coalescing several paths in order; ``text``, the entity lists, the author columns and
  ``source_page`` follow the ``transformLogic`` the contract states for them.
* ``text`` is ``note_tweet.text`` when present, else ``text``, with exactly ``&amp; &lt; &gt;``
  unescaped in one pass: those are the only entities X escapes, so anything else (``&copy;``,
  ``&#39;``) is what the author typed and stays as is (``html.unescape`` would change it).
* Values are written as text. Ids stay exact strings; an id that arrives as a JSON integer keeps
  its digits (JSON integers never pass through float). Counts accept integers and numeric strings
  (seen as type drift); a count the API did not send is empty, not 0. Anything of the wrong type
  is kept as its JSON text, so the gate rejects it with the value in the reason and nothing is lost.
* ``created_at`` is normalised to the contract's format in UTC; a time without a zone is ambiguous
  and is rejected, not guessed.
* List columns are JSON arrays (``[]`` when the API sent none), written with ``ensure_ascii=False``.
* Rows keep input order, so the same input gives a byte-identical CSV. The CSV is RFC 4180: UTF-8,
  CRLF line ends, fields quoted when they hold a comma, quote, CR or LF.
* Duplicates: the first occurrence of a tweet id wins (curated or quarantined); later ones are
  counted in ``duplicates`` and not written again. ``tweets_in = curated + quarantined +
  duplicates`` always holds.
* Quarantine lines are JSON objects ``{"kind", "reason", "source", "record"}``: ``kind`` is
  ``tweet`` (rejected by the gate; ``record`` is the post's JSON as received), ``page`` (a body that
  is empty, not UTF-8, not JSON or not a response; ``record`` is the body as text) or
  ``api_error`` (a Problem from a response's partial ``errors`` array, counted in ``api_errors``).
  A string holding a lone surrogate (JSON can carry ``"\\ud800"``) cannot be written as UTF-8:
  its post is quarantined by the gate's ``utf8`` check and its quarantine line is ASCII-escaped.
* The gate fails (``report.fatal``) when a dataset-level contract rule of severity ``error`` is
  breached (``quarantined_share``), when a required column is missing entirely (no post carried
  it, e.g. a field that was not requested), when the transform cannot produce a contract column,
  or when no page at all could be parsed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from etl.contracts import CURATED_CONTRACT, ContractSpec, TimestampFormat, load_contract

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Iterator

    import pandas as pd
    import pandera.pandas as pa

    from etl.contracts import ColumnSpec, QualityRule

CHUNK_ROWS = 10_000
"""Rows validated per Pandera call: large enough to amortise its per-call cost, small enough to
keep memory flat."""

JSONL_SUFFIXES = (".jsonl", ".ndjson")
INPUT_SUFFIXES = (".json", *JSONL_SUFFIXES)
_RESPONSE_KEYS = frozenset(("data", "includes", "meta", "errors"))
_SHOWN = 80  # characters of an offending value quoted in a reason

Row = list[str | None]


class GateBreachError(Exception):
    """The gate failed: a fatal contract check was breached. The message names the checks."""


@dataclass
class TransformReport:
    """What a transform run did; ``report.json`` is :meth:`to_dict`.

    Attributes:
        tweets_in: posts read from parseable pages (duplicates included).
        curated: posts written to the CSV.
        quarantined: posts rejected by the gate.
        duplicates: posts whose id was already seen in this run.
        api_errors: Problem objects found in the responses' ``errors`` arrays.
        pages: response documents read (a JSONL line is one).
        pages_quarantined: documents quarantined whole (unparseable or not a response).
        check_failures: how many posts (or pages) failed each check, by ``column:check``.
        fatal: messages naming the failed fatal checks; empty when the gate passes.
        contract: name and version of the contract the gate was built from.
    """

    tweets_in: int = 0
    curated: int = 0
    quarantined: int = 0
    duplicates: int = 0
    api_errors: int = 0
    pages: int = 0
    pages_quarantined: int = 0
    check_failures: dict[str, int] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)
    contract: str = ""

    @property
    def passed(self) -> bool:
        """Whether the gate passed (no fatal check failed)."""
        return not self.fatal

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, with ``passed``."""
        out = asdict(self)
        out["check_failures"] = dict(sorted(self.check_failures.items()))
        out["passed"] = self.passed
        return out

    def raise_for_gate(self, evidence: str = "") -> None:
        """Raise :class:`GateBreachError` when the gate failed.

        Args:
            evidence: where the quarantine and report are, quoted in the message.

        Raises:
            GateBreachError: the message lists every failed fatal check.
        """
        if self.fatal:
            where = f"; evidence: {evidence}" if evidence else ""
            raise GateBreachError("gate breach: " + "; ".join(self.fatal) + where)

    def _count(self, check: str, n: int = 1) -> None:
        self.check_failures[check] = self.check_failures.get(check, 0) + n


# --- reading pages -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Doc:
    """One response document, or why a body could not give one."""

    source: str
    value: Any = None
    problem: str | None = None
    text: str = ""


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="surrogateescape")


def _parse_body(source: str, body: bytes) -> Iterator[_Doc]:
    """One body: a JSON document, or JSON Lines with one response per line."""
    if not body.strip():
        yield _Doc(source, problem="empty body", text=_decode(body))
        return
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield _Doc(
            source, problem=f"not UTF-8 ({exc.reason} at byte {exc.start})", text=_decode(body)
        )
        return
    try:
        yield _Doc(source, value=json.loads(text))
        return
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            yield _Doc(source, problem=f"invalid JSON: {exc}", text=text)
            return
    # JSON strings cannot hold a raw newline, so "\n" splits JSON Lines safely (splitlines would
    # also split on U+2028, which JSON strings may hold).
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield _parse_line(f"{source}:{number}", line)


def _parse_line(source: str, line: str) -> _Doc:
    try:
        return _Doc(source, value=json.loads(line))
    except json.JSONDecodeError as exc:
        return _Doc(source, problem=f"invalid JSON: {exc}", text=line)


def _response_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"not an X API v2 response: a JSON {type(value).__name__}, not an object"
    if not value.keys() & _RESPONSE_KEYS:
        hint = f" (a Problem: {value.get('title')})" if "title" in value else ""
        return f"not an X API v2 response: none of data, includes, meta, errors{hint}"
    data = value.get("data")
    if data is not None and not isinstance(data, list | dict):
        return f"not an X API v2 response: data is a {type(data).__name__}"
    errors = value.get("errors")
    if errors is not None and not isinstance(errors, list):
        return f"not an X API v2 response: errors is a {type(errors).__name__}"
    return None


def _users_by_id(response: dict[str, Any]) -> dict[str, Any]:
    # A malformed includes only costs the optional author columns, never the posts.
    includes = response.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    if not isinstance(users, list):
        return {}
    return {str(u.get("id")): u for u in users if isinstance(u, dict)}


# --- one post to one row -------------------------------------------------------------------------
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps would build one per call


def _json_text(value: Any) -> str:
    return _ENCODER.encode(value)


def _as_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an id sent as a JSON number: Python ints keep every digit
    return _json_text(value)


def _as_integer(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return str(int(value))  # type drift: a count sent as a numeric string
    return _json_text(value)


def _as_number(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return _json_text(value)


def _as_boolean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()  # type drift: a flag sent as a string
    return _json_text(value)


def _as_array(value: Any) -> str:
    if value is None or value == []:
        return "[]"
    return _json_text(value)


def _as_object(value: Any) -> str | None:
    return None if value is None else _json_text(value)


def _timestamp_converter(fmt: TimestampFormat | None) -> Callable[[Any], str | None]:
    def as_timestamp(value: Any) -> str | None:
        if not isinstance(value, str):
            return _as_string(value)
        if fmt is None or fmt.pattern.fullmatch(value):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value  # the gate rejects it, quoting the value
        if moment.tzinfo is None:
            return value  # no zone: ambiguous, rejected rather than guessed
        return fmt.render(moment.astimezone(UTC))

    return as_timestamp


_CONVERTERS: dict[str, Callable[[Any], str | None]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "array": _as_array,
    "object": _as_object,
}


def _unescape(text: str) -> str:
    """Undo X's escaping of ``& < >`` in one pass: ``&amp;lt;`` becomes ``&lt;``, not ``<``."""
    if "&" not in text:
        return text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _source_path(path: str) -> tuple[str | int, ...] | None:
    """``data[].a.b[0].c`` as ``("a", "b", 0, "c")``; None when it is not a plain path."""
    if not path.startswith("data[]."):
        return None
    rest = path[len("data[]") :]
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        match = _PATH_STEP.match(rest, pos)
        if not match:
            return None
        steps.append(match[1] if match[1] is not None else int(match[2]))
        pos = match.end()
    return tuple(steps)


def _follow(value: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
        if value is None:
            return None
    return value


def _getter(steps: tuple[str | int, ...]) -> Callable[[dict[str, Any]], Any]:
    # The common shapes get a direct function: this runs for every cell of every post.
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]
        return lambda tweet: tweet.get(key)
    if len(steps) == 2 and isinstance(steps[0], str) and isinstance(steps[1], str):
        outer, inner = steps[0], steps[1]

        def get(tweet: dict[str, Any]) -> Any:
            parent = tweet.get(outer)
            return parent.get(inner) if isinstance(parent, dict) else None

        return get
    return lambda tweet: _follow(tweet, steps)


def _path_cell(col: ColumnSpec) -> Callable[[dict[str, Any], dict[str, Any], str], str | None]:
    paths = [_source_path(p) for p in col.sources]
    if not paths or any(p is None for p in paths):
        raise KeyError(col.name)
    getters = [_getter(p) for p in paths if p is not None]
    if col.logical_type in ("timestamp", "date"):
        convert = _timestamp_converter(TimestampFormat.parse(col.format) if col.format else None)
    else:
        convert = _CONVERTERS.get(col.logical_type, _as_string)
    if len(getters) == 1:
        get = getters[0]
        if convert is _as_string:  # most cells: skip the call when the value is a string
            return lambda tweet, users, source: (
                value if type(value := get(tweet)) is str else _as_string(value)
            )
        return lambda tweet, users, source: convert(get(tweet))

    def cell(tweet: dict[str, Any], users: dict[str, Any], source: str) -> str | None:
        for get in getters:  # coalesce: the first path that has a value
            value = get(tweet)
            if value is not None:
                return convert(value)
        return convert(None)

    return cell


def _text_cell(tweet: dict[str, Any], users: dict[str, Any], source: str) -> str | None:
    note = tweet.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) else None
    if text is None:
        text = tweet.get("text")
    return _unescape(text) if isinstance(text, str) else _as_string(text)


def _entity_cell(
    kind: str, key: str, fallback: str | None = None
) -> Callable[[dict[str, Any], dict[str, Any], str], str | None]:
    def cell(tweet: dict[str, Any], users: dict[str, Any], source: str) -> str | None:
        # Long posts carry their entities in note_tweet; the top-level ones cover the truncation.
        note = tweet.get("note_tweet")
        entities = note.get("entities") if isinstance(note, dict) else None
        if not isinstance(entities, dict):
            entities = tweet.get("entities")
        items = entities.get(kind) if isinstance(entities, dict) else None
        if not items:
            return "[]"
        if not isinstance(items, list):
            return _json_text(items)
        values = [_entity_value(item, key, fallback) for item in items]
        return _json_text(values)

    return cell


def _entity_value(item: Any, key: str, fallback: str | None) -> Any:
    if not isinstance(item, dict):
        return item  # kept as sent; the gate judges it
    value = item.get(key)
    if value is None and fallback is not None:
        value = item.get(fallback)
    return value


def _author_cell(key: str) -> Callable[[dict[str, Any], dict[str, Any], str], str | None]:
    def cell(tweet: dict[str, Any], users: dict[str, Any], source: str) -> str | None:
        user = users.get(str(tweet.get("author_id")))
        return None if user is None else _as_string(user.get(key))

    return cell


def _source_cell(tweet: dict[str, Any], users: dict[str, Any], source: str) -> str | None:
    return source


# Columns whose contract transformLogic is more than reading a path.
_SPECIAL_CELLS: dict[str, Callable[[dict[str, Any], dict[str, Any], str], str | None]] = {
    "text": _text_cell,
    "hashtags": _entity_cell("hashtags", "tag"),
    "mentions": _entity_cell("mentions", "username"),
    "urls": _entity_cell("urls", "expanded_url", fallback="url"),
    "author_username": _author_cell("username"),
    "author_name": _author_cell("name"),
    "source_page": _source_cell,
}


class _RowBuilder:
    """Turns one post into one row of CSV text, in the contract's column order."""

    def __init__(self, spec: ContractSpec) -> None:
        self.columns: list[str] = []
        self.unproduced: list[str] = []
        self._cells: list[Callable[[dict[str, Any], dict[str, Any], str], str | None]] = []
        for col in spec.columns:
            cell = _SPECIAL_CELLS.get(col.name)
            if cell is None:
                try:
                    cell = _path_cell(col)
                except KeyError:
                    self.unproduced.append(col.name)
                    continue
            self.columns.append(col.name)
            self._cells.append(cell)

    def row(self, tweet: dict[str, Any], users: dict[str, Any], source: str) -> Row:
        return [cell(tweet, users, source) for cell in self._cells]


# --- duplicates ----------------------------------------------------------------------------------
class _SeenIds:
    """Tweet ids already taken in this run.

    Decimal ids (all real ones) live in a sorted uint64 array, 8 bytes each: a Python set would
    cost about 100 bytes an id and break the flat-memory target at a million posts.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._other: set[str] = set()

    def first_seen(self, ids: list[str | None]) -> list[bool]:
        """Mark which ids are new (first occurrence, also within ``ids``) and remember them."""
        keep = [True] * len(ids)
        positions: list[int] = []
        numbers: list[int] = []
        for i, tid in enumerate(ids):
            if tid is None:
                continue  # no id: the gate rejects it
            if tid.isascii() and tid.isdigit() and len(tid) <= 19 and (tid[0] != "0" or tid == "0"):
                positions.append(i)
                numbers.append(int(tid))
            elif tid in self._other:
                keep[i] = False
            else:
                self._other.add(tid)
        if numbers:
            self._take(np.array(numbers, dtype=np.uint64), positions, keep)
        return keep

    def _take(self, values: np.ndarray, positions: list[int], keep: list[bool]) -> None:
        unique, first = np.unique(values, return_index=True)
        repeated = np.ones(len(values), dtype=bool)
        repeated[first] = False
        seen = np.isin(values, self._sorted, assume_unique=False)
        for pos in np.flatnonzero(repeated | seen).tolist():
            keep[positions[pos]] = False
        fresh = unique[~np.isin(unique, self._sorted)]
        # Two sorted runs: the stable sort merges them in linear time.
        self._sorted = np.sort(np.concatenate((self._sorted, fresh)), kind="stable")


# --- the gate ------------------------------------------------------------------------------------
def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def _gate_reasons(
    schema: pa.DataFrameSchema, frame: pd.DataFrame
) -> tuple[dict[int, list[str]], list[str]]:
    """Validate a chunk lazily; reasons by row position, and failures that hit every row."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
    else:
        return {}, []
    by_row: dict[int, list[str]] = {}
    every_row: list[str] = []
    for context, column, check, case, index in zip(
        cases["schema_context"],
        cases["column"],
        cases["check"],
        cases["failure_case"],
        cases["index"],
        strict=True,
    ):
        # Frame-level failures (a missing column) name the column in failure_case.
        name = case if context == "DataFrameSchema" else column
        if index is None or index != index:  # NaN: the failure is about the column, not a value
            every_row.append(f"{name}: {check}")
        else:
            by_row.setdefault(int(index), []).append(f"{name}: {check} ({_shown(case)})")
    return by_row, every_row


def _check_key(reason: str) -> str:
    column, _, rest = reason.partition(": ")
    check = rest.split(" (", 1)[0].split(" ", 1)[0]
    return f"{column}:{check}"


_OPERATORS: dict[str, Callable[[float, Any], bool]] = {
    "mustBe": lambda v, t: v == t,
    "mustNotBe": lambda v, t: v != t,
    "mustBeGreaterThan": lambda v, t: v > t,
    "mustBeGreaterOrEqualTo": lambda v, t: v >= t,
    "mustBeLessThan": lambda v, t: v < t,
    "mustBeLessOrEqualTo": lambda v, t: v <= t,
    "mustBeBetween": lambda v, t: t[0] <= v <= t[1],
    "mustNotBeBetween": lambda v, t: not t[0] <= v <= t[1],
}


def _share_breach(rule: QualityRule, report: TransformReport) -> str | None:
    """The contract's quarantined-share rule (``invalidValues`` over the run), if breached."""
    if report.tweets_in == 0:
        return None
    rejected = report.quarantined
    value = 100.0 * rejected / report.tweets_in if rule.unit == "percent" else float(rejected)
    if _OPERATORS[rule.operator](value, rule.threshold):
        return None
    shown = f"{value:.2f}%" if rule.unit == "percent" else f"{rejected:.0f} rows"
    return (
        f"{rule.name}: {shown} of posts quarantined ({rejected} of {report.tweets_in}), "
        f"contract: {rule.operator} {rule.threshold}{'%' if rule.unit == 'percent' else ''}"
    )


# --- the run -------------------------------------------------------------------------------------
def _dump_line(obj: dict[str, Any]) -> str:
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(obj)  # a lone surrogate: \u-escapes keep it, losslessly
    return line + "\n"


class _Run:
    """State of one transform: the open outputs, the current chunk and the counters."""

    def __init__(self, spec: ContractSpec, csv_out: IO[str], quarantine_out: IO[str]) -> None:
        from etl.contracts import pandera_schema

        self.spec = spec
        self.report = TransformReport(contract=f"{spec.name} {spec.version}")
        self.schema = pandera_schema(spec)
        self.builder = _RowBuilder(spec)
        self.quarantine_out = quarantine_out
        self.writer = csv.writer(csv_out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(spec.column_names)
        self.output_index = [
            self.builder.columns.index(c) for c in spec.column_names if c in self.builder.columns
        ]
        self.seen = _SeenIds()
        self.filled: set[str] = set()
        self.id_index = (
            self.builder.columns.index("tweet_id") if "tweet_id" in self.builder.columns else None
        )
        self.rows: list[Row] = []
        self.records: list[tuple[str, Any]] = []

    def quarantine(self, kind: str, reasons: list[str], source: str, record: Any) -> None:
        line = {"kind": kind, "reason": reasons, "source": source, "record": record}
        self.quarantine_out.write(_dump_line(line))

    def page(self, doc: _Doc) -> None:
        report = self.report
        report.pages += 1
        problem = doc.problem or _response_problem(doc.value)
        if problem is not None:
            report.pages_quarantined += 1
            report._count("page:" + problem.split(":", 1)[0].replace(" ", "_"))
            self.quarantine("page", [problem], doc.source, doc.text or doc.value)
            return
        response: dict[str, Any] = doc.value
        for error in response.get("errors") or ():
            report.api_errors += 1
            title = error.get("title", "") if isinstance(error, dict) else ""
            detail = error.get("detail", "") if isinstance(error, dict) else ""
            self.quarantine("api_error", [f"api_error: {title}: {detail}"], doc.source, error)
        data = response.get("data")
        tweets = [data] if isinstance(data, dict) else data or []
        users = _users_by_id(response)
        for tweet in tweets:
            report.tweets_in += 1
            if not isinstance(tweet, dict):
                report.quarantined += 1
                report._count("record:not_an_object")
                reason = f"record: not a post object (a JSON {type(tweet).__name__})"
                self.quarantine("tweet", [reason], doc.source, tweet)
                continue
            self.rows.append(self.builder.row(tweet, users, doc.source))
            self.records.append((doc.source, tweet))
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        rows, records = self.rows, self.records
        self.rows, self.records = [], []
        if self.id_index is not None:
            keep = self.seen.first_seen([r[self.id_index] for r in rows])
            if not all(keep):
                self.report.duplicates += keep.count(False)
                rows = [r for r, k in zip(rows, keep, strict=True) if k]
                records = [r for r, k in zip(records, keep, strict=True) if k]
        by_row, every_row = _gate_reasons(self.schema, self._frame(rows))
        for position, (row, (source, tweet)) in enumerate(zip(rows, records, strict=True)):
            reasons = every_row + by_row.get(position, [])
            if reasons:
                self.report.quarantined += 1
                for reason in reasons:
                    self.report._count(_check_key(reason))
                self.quarantine("tweet", reasons, source, tweet)
            else:
                self.report.curated += 1
                self.writer.writerow(
                    [row[i] for i in self.output_index] if self.builder.unproduced else row
                )

    def _frame(self, rows: list[Row]) -> pd.DataFrame:
        import pandas as pd

        columns = list(zip(*rows, strict=True))
        frame = pd.DataFrame(
            {
                name: pd.Series(values, dtype="str")
                for name, values in zip(self.builder.columns, columns, strict=True)
            }
        )
        for name in self.spec.column_names:
            if name not in self.filled and name in frame and frame[name].notna().any():
                self.filled.add(name)
        return frame

    def finish(self) -> TransformReport:
        self.flush()
        report = self.report
        for name in self.builder.unproduced:
            report.fatal.append(
                f"{name}: contract column has no source the transform can read "
                f"(transformSourceObjects {list(self.spec.column(name).sources)})"
            )
        if report.tweets_in - report.duplicates > 0:
            for col in self.spec.columns:
                if (
                    col.required
                    and col.name in self.builder.columns
                    and col.name not in self.filled
                ):
                    sources = ", ".join(col.sources) or col.name
                    report.fatal.append(
                        f"{col.name}: required column missing entirely (no post carried {sources})"
                    )
        for rule in self.spec.quality:
            if rule.metric == "invalidValues" and rule.fatal:
                breach = _share_breach(rule, report)
                if breach:
                    report.fatal.append(breach)
        if report.pages and report.pages == report.pages_quarantined:
            report.fatal.append(f"pages: none of the {report.pages} pages could be parsed")
        return report


def transform_pages(
    pages: Iterable[tuple[str, bytes]],
    csv_out: IO[str],
    quarantine_out: IO[str],
    contract: ContractSpec | None = None,
    progress: bool = False,
) -> TransformReport:
    """Transform raw response bodies into curated CSV rows and quarantine lines, streaming.

    Args:
        pages: ``(source, body)`` pairs: the name of the raw object (store key or file path) and
            its bytes, one JSON response or JSON Lines with one response per line.
        csv_out: text stream for the CSV, opened with ``newline=""``; the header is written first.
        quarantine_out: text stream for the quarantine JSON lines.
        contract: the curated contract (default: the bundled one).
        progress: show a progress bar (pages) on stderr.

    Returns:
        The report; ``report.passed`` says whether the gate passed. The caller decides what to do
        with the CSV on a breach (``report.raise_for_gate`` raises).
    """
    run = _Run(contract or load_contract(CURATED_CONTRACT), csv_out, quarantine_out)
    if progress:
        from tqdm import tqdm

        pages = tqdm(pages, unit="page", file=sys.stderr)
    for source, body in pages:
        for doc in _parse_body(source, body):
            run.page(doc)
    return run.finish()


# --- files and the CLI ---------------------------------------------------------------------------
def input_files(inputs: list[Path]) -> list[Path]:
    """Expand INPUT arguments: files as given, directories to their JSON/JSONL files, sorted.

    Args:
        inputs: files or directories.

    Returns:
        The files, in argument order, each directory's files sorted by path.

    Raises:
        etl.cli.UsageError: an input does not exist or a directory holds no JSON/JSONL file.
    """
    from etl.cli import UsageError

    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_data_file(p, path))
            if not found:
                raise UsageError(f"{path}: directory holds no .json, .jsonl or .ndjson file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return files


def _is_data_file(path: Path, root: Path) -> bool:
    # Names starting with "_" or "." are metadata (raw/'s _manifest.json and _rejected/ bodies,
    # temporary files), not pages: the Hadoop/Spark convention etl.land follows.
    hidden = any(part.startswith(("_", ".")) for part in path.relative_to(root).parts)
    return path.is_file() and path.suffix in INPUT_SUFFIXES and not hidden


def _file_pages(files: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in files:
        if path.suffix in JSONL_SUFFIXES:
            # Line by line, so a JSONL file of any size never sits in memory whole.
            with path.open("rb") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        yield f"{path}:{number}", line
        else:
            yield str(path), path.read_bytes()


def transform_files(
    inputs: list[Path],
    out_dir: Path,
    contract_path: Path | None = None,
    progress: bool = False,
) -> TransformReport:
    """Transform JSON/JSONL files; publish ``tweets.csv`` only when the gate passes.

    Writes ``out_dir/quarantine.jsonl`` and ``out_dir/report.json`` always. The CSV is written to
    a temporary file and renamed to ``out_dir/tweets.csv`` on a pass; on a breach it is deleted,
    and so is a ``tweets.csv`` left by an earlier run, so the directory never shows curated rows
    beside a failing report.

    Args:
        inputs: files (JSON, or JSONL by suffix ``.jsonl``/``.ndjson``) or directories of them.
        out_dir: output directory (created).
        contract_path: curated contract (default: the bundled one).
        progress: show a progress bar on stderr.

    Returns:
        The report.

    Raises:
        etl.cli.UsageError: an input is missing.
        etl.contracts.ContractError: the contract cannot be read.
    """
    files = input_files(inputs)
    spec = load_contract(contract_path or CURATED_CONTRACT)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "tweets.csv"
    partial = out_dir / ".tweets.csv.partial"
    with (
        partial.open("w", encoding="utf-8", newline="") as csv_out,
        (out_dir / "quarantine.jsonl").open("w", encoding="utf-8", newline="\n") as q_out,
    ):
        report = transform_pages(_file_pages(files), csv_out, q_out, spec, progress)
    if report.passed:
        os.replace(partial, final)
    else:
        partial.unlink()
        final.unlink(missing_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


def run_transform_cli(args: argparse.Namespace) -> int:
    """``tweetpipe transform INPUT... --out DIR [--contract FILE]``.

    Args:
        args: parsed arguments with ``inputs``, ``out`` and ``contract``.

    Returns:
        0 when the gate passes, 1 on a gate breach (the message names the failed checks).

    Raises:
        etl.cli.UsageError: a missing input or an unreadable contract (exit code 2).
    """
    from etl.cli import EXIT_FAILED, EXIT_OK, UsageError
    from etl.contracts import ContractError

    out = Path(args.out)
    # Lineage (etl.lineage): the same job and datasets the DAG's transform task reports.
    from etl.lineage import cli_transform_inputs, cli_transform_outputs, events_file, lineage_run

    inputs = cli_transform_inputs(args.inputs)
    with lineage_run("transform", inputs, default_file=events_file(out)) as lineage:
        try:
            report = transform_files(
                [Path(p) for p in args.inputs],
                out,
                Path(args.contract) if args.contract else None,
                progress=sys.stderr.isatty(),
            )
        except ContractError as exc:
            raise UsageError(str(exc)) from exc
        written = (out / "tweets.csv", out / "quarantine.jsonl")
        lineage.add(cli_transform_outputs(args.inputs, *written, report.to_dict()))
        if not report.passed:
            lineage.fail("; ".join(report.fatal))
    summary = (
        f"{report.tweets_in} posts in {report.pages} pages: {report.curated} curated, "
        f"{report.quarantined} quarantined, {report.duplicates} duplicates, "
        f"{report.api_errors} API errors, {report.pages_quarantined} pages quarantined"
    )
    print(summary, file=sys.stderr)
    print(f"lineage: {lineage.destination}", file=sys.stderr)
    try:
        report.raise_for_gate(f"{out / 'quarantine.jsonl'}, {out / 'report.json'}")
    except GateBreachError as exc:
        print(f"tweetpipe transform: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(out / "tweets.csv")
    return EXIT_OK
