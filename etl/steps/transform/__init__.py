"""Raw X API v2 response pages to curated CSV, through the Pandera gate built from the contract.

The transform streams: pages are grouped into units of about :data:`UNIT_BYTES`; each unit is
parsed, turned into columns, validated by one vectorized Pandera call and written out before more
input is read, so memory does not grow with the input (only the set of tweet ids already seen
does, at 8 bytes an id). Units can run in worker processes (``workers``); results are merged in
input order, so the output does not depend on how many.

Speed comes from doing per-post work in C where the semantics allow it: msgspec decodes a page
into structs holding only the fields the contract reads (:class:`_FastDecoder`); columns are built
with ``map``/``attrgetter`` and only values of an unexpected type take the per-value path; the
gate runs once per unit. Any page the fast path cannot take goes through ``json`` and the generic
path, whose behaviour the fast path must match (tested).

Decisions users rely on (each is tested):

* Columns come from the contract. A column whose ``transformSourceObjects`` is a plain path
  (``data[].public_metrics.like_count``, ``data[].referenced_tweets[0].id``) is read from that path,
  coalescing several paths in order; ``text``, the entity lists, the author columns and
  ``source_page`` follow the ``transformLogic`` the contract states for them.
* ``text`` is ``note_tweet.text`` when present, else ``text``, with exactly ``&amp; &lt; &gt;``
  unescaped in one pass: those are the only entities X escapes, so anything else (``&copy;``,
  ``&#39;``) is what the author typed and stays as is (``html.unescape`` would change it).
* JSON types are the contract's: a column's logical type is also the JSON type its source must
  have (ids and text are strings, counts integers, flags booleans, lists arrays; on the way, an
  object such as ``public_metrics`` must be an object). A value of another JSON type (an id sent
  as a number, a count as a numeric string or a float, text as an object, a hashtag as a bare
  string) is never converted: it reaches the gate as a :class:`~etl.contracts.model.Mistyped` cell, the
  column's ``json_type`` check rejects the post, and the reason quotes the value. Ids stay exact
  strings; counts are integers (Int64 in the gate, as the contract's int64 says); a value the API
  did not send (absent or null) is empty, not 0. Unknown and new fields are never read, never
  checked, and never make a post or page fail.
* ``created_at`` is normalised to the contract's format in UTC; a time without a zone is ambiguous
  and is rejected, not guessed.
* List columns are JSON arrays (``[]`` when the API sent none), written with ``ensure_ascii=False``.
* Rows keep input order, so the same input gives a byte-identical CSV. The CSV is RFC 4180: UTF-8,
  CRLF line ends, fields quoted when they hold a comma, quote, CR or LF.
* Duplicates: the first occurrence of a tweet id wins (curated or quarantined); later ones are
  counted in ``duplicates`` and not written again. ``tweets_in = curated + quarantined +
  duplicates`` always holds.
* Any body ``json.loads`` reads (what the extractor lands) is processed: UTF-8 with or without a
  BOM, UTF-16 or UTF-32; a lone surrogate, escaped (``"\\ud800"``) or raw (bytes ``ED A0 80``);
  invalid UTF-8 inside a string; ``NaN`` or a number out of range (``1e400``). The fast path
  (msgspec) gives way to the reference path (``json``) on whatever it raises, and a bad value
  costs only its post: a string that cannot be UTF-8 fails the gate's ``utf8`` check wherever
  the contract reads it, a non-finite number its column's type; the rest of the page is curated.
* Quarantine lines are strict JSON objects ``{"kind", "reason", "source", "record"}``: ``kind`` is
  ``tweet`` (rejected by the gate; ``record`` is the post's JSON as received), ``page`` (a body that
  is empty, not UTF-8, not JSON or not a response; ``record`` is the body as text, or the JSON
  value when it parsed) or
  ``api_error`` (a Problem from a response's partial ``errors`` array, counted in ``api_errors``).
  A record JSON in UTF-8 cannot hold as it is (a lone surrogate, undecodable bytes, a non-finite
  number) is written ASCII-escaped, non-finite numbers as the strings ``NaN``/``Infinity``, and
  ``record_base64`` holds its original bytes: the post's own bytes, cut from the page, or the
  body's (an ``api_error`` record has none; its page is in ``raw/``).
* The gate fails (``report.fatal``) when a dataset-level contract rule of severity ``error`` is
  breached (``quarantined_share``), when a required column is missing entirely (no post carried
  it, e.g. a field that was not requested), when the transform cannot produce a contract column,
  or when no page at all could be parsed.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import csv
import functools
import gc
import json
import keyword
import math
import os
import re
import signal
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import compress, repeat
from json.decoder import scanstring  # type: ignore[attr-defined]
from operator import attrgetter
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

import msgspec
import numpy as np

from etl.contracts.formats import TimestampFormat
from etl.contracts.model import CURATED_CONTRACT, ContractSpec, load_contract
from etl.contracts.pandera_schema import Mistyped, every_value_matches
from etl.errors import GateBreachError, InputError, OutputDirBusyError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from concurrent.futures import Future
    from pathlib import Path

    import pandas as pd
    import pandera.pandas as pa

    from etl.contracts.model import ColumnSpec, QualityRule

UNIT_BYTES = 8 * 2**20
"""Page bytes per unit of work (about 10,000 posts): one Pandera call each, large enough to
amortise its per-call cost, small enough to keep memory flat."""

JSONL_SUFFIXES = (".jsonl", ".ndjson")
INPUT_SUFFIXES = (".json", *JSONL_SUFFIXES)
_RESPONSE_KEYS = frozenset(("data", "includes", "meta", "errors"))
_SHOWN = 80  # characters of an offending value quoted in a reason

Column = list[Any]  # CSV cells: text or None (empty); ints in integer columns on the fast path


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
class _Problem:
    """Why a body gives no response document: a stable check key (``page:<check>`` in the
    report) and the message quoted in the quarantine line."""

    check: str
    message: str


@dataclass(frozen=True)
class _Doc:
    """One response document (a dict, or a typed page from the fast path), or why a body could
    not give one."""

    source: str
    value: Any = None
    problem: _Problem | None = None
    body: bytes = b""
    typed: bool = False  # value is a page struct from the fast path, not parsed JSON
    origin: _Origin | None = None  # how the reference path read the body


_WS = re.compile(r"[ \t\n\r]*")  # JSON whitespace
_STRICT_JSON = json.JSONDecoder()


class _Origin:
    """A body as the reference path read it: its text, and how a slice of the text gives back
    the bytes it came from, so a rejected post's original bytes can be kept exactly.

    The body is decoded as ``json.loads`` decodes bytes, which is what the extractor parses
    before landing one: UTF-8 (with or without a BOM), UTF-16 or UTF-32, found from the first
    bytes, with ``surrogatepass`` (so ``ED A0 80``, U+D800 encoded as UTF-8, is a lone
    surrogate). A body with bytes invalid even so is decoded as UTF-8 with ``surrogateescape``:
    each bad byte becomes a lone surrogate, which the gate's ``utf8`` check rejects wherever the
    contract reads it, and which encodes back to the same byte.
    """

    def __init__(self, body: bytes) -> None:
        encoding = json.detect_encoding(body)
        self.codec: str = "utf-8" if encoding.startswith("utf-8") else encoding
        self.errors = "surrogatepass"  # how json.loads decodes UTF-16/32
        self.error: UnicodeDecodeError | None = None  # the first undecodable bytes, if any
        if self.codec in ("utf-16", "utf-32"):  # the BOM says which byte order
            little = body.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF16_LE))
            self.codec += "-le" if little else "-be"
        skip = _bom_size(body, encoding)
        try:
            self.text = body[skip:].decode(self.codec, self.errors)
        except UnicodeDecodeError as exc:
            self.error = exc
            self.codec, self.errors = "utf-8", "surrogateescape"
            self.text = body.decode("utf-8", "surrogateescape")
        self._spans: list[tuple[int, int]] | None = None

    def encode(self, text: str) -> bytes:
        """The bytes a slice of the text was decoded from."""
        return text.encode(self.codec, self.errors)

    def item_bytes(self, index: int) -> bytes | None:
        """The original bytes of ``data[index]`` (``data`` itself when it is one post)."""
        if self._spans is None:
            try:
                self._spans = _data_spans(self.text)
            except (ValueError, IndexError, RecursionError):
                self._spans = []  # cannot happen for a body json.loads read; nothing to offer
        if index >= len(self._spans):
            return None
        start, end = self._spans[index]
        return self.encode(self.text[start:end])


def _bom_size(body: bytes, encoding: str) -> int:
    boms = {
        "utf-8-sig": codecs.BOM_UTF8,
        "utf-16": codecs.BOM_UTF16_LE,
        "utf-32": codecs.BOM_UTF32_LE,
    }
    return len(boms[encoding]) if encoding in boms else 0


def _data_spans(text: str) -> list[tuple[int, int]]:
    """Where each item of a response's ``data`` sits in its text, as ``json.loads`` reads it:
    the last ``data`` key wins; a ``data`` that is one object is one item."""
    at = _past_ws(text, 0)
    if text[at] != "{":
        return []
    spans: list[tuple[int, int]] = []
    at = _past_ws(text, at + 1)
    while text[at] == '"':
        key, at = scanstring(text, at + 1)
        at = _past_ws(text, _past_ws(text, at) + 1)  # past the ":"
        if key == "data":
            spans, at = _value_spans(text, at)
        else:
            at = _STRICT_JSON.raw_decode(text, at)[1]
        at = _past_ws(text, at)
        if text[at] != ",":
            break
        at = _past_ws(text, at + 1)
    return spans


def _value_spans(text: str, at: int) -> tuple[list[tuple[int, int]], int]:
    if text[at] != "[":
        end = _STRICT_JSON.raw_decode(text, at)[1]
        return [(at, end)], end
    spans: list[tuple[int, int]] = []
    at = _past_ws(text, at + 1)
    if text[at] == "]":
        return spans, at + 1
    while True:
        end = _STRICT_JSON.raw_decode(text, at)[1]
        spans.append((at, end))
        at = _past_ws(text, end)
        if text[at] != ",":
            return spans, at + 1  # past "]"
        at = _past_ws(text, at + 1)


def _past_ws(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return match.end() if match else at


class _FastDecoder:
    """The fast path: msgspec decodes a page into structs holding only the post fields the
    contract reads, skipping everything else without building Python objects for it.

    A page it cannot take (JSON Lines, a BOM, UTF-16, invalid UTF-8, a lone surrogate, NaN, a
    number out of its range, deep nesting, a post or envelope field of an unexpected JSON type)
    goes through ``json`` and the generic path, whose behaviour is the reference: the fast path
    only ever gives the same rows sooner.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(sorted(keys))
        # Struct fields must be identifiers; a contract reading any other key uses json only.
        usable = all(k.isidentifier() and not keyword.iskeyword(k) for k in self.keys)
        fields = self.keys if usable else ()
        self.post = msgspec.defstruct("Post", [(k, Any, None) for k in fields])
        includes = msgspec.defstruct("Includes", [("users", list[Any] | None, None)])
        unset = msgspec.UnsetType
        page = msgspec.defstruct(
            "Page",
            [
                ("data", list[self.post] | self.post | None | unset, msgspec.UNSET),  # type: ignore[name-defined]
                ("includes", includes | None | unset, msgspec.UNSET),
                ("meta", Any, msgspec.UNSET),
                ("errors", list[Any] | None | unset, msgspec.UNSET),
                ("title", Any, msgspec.UNSET),
            ],
        )
        self._decoder = msgspec.json.Decoder(page) if usable else None

    def decode(self, body: bytes) -> Any:
        """The typed page, or None when the generic path must take the body."""
        if self._decoder is None:
            return None
        try:
            return self._decoder.decode(body)
        # Not only DecodeError: msgspec raises UnicodeDecodeError on invalid UTF-8 and
        # RecursionError on deep nesting. Whatever it raises, the reference path decides.
        except Exception:
            return None


def _parse_body(source: str, body: bytes, fast: _FastDecoder, lines: bool = True) -> Iterator[_Doc]:
    """One body: a JSON document, or (``lines``) JSON Lines with one response per line."""
    typed = fast.decode(body)
    if typed is not None:
        yield _Doc(source, value=typed, body=body, typed=True)
        return
    if not body.strip():
        yield _Doc(source, problem=_Problem("empty_body", "empty body"), body=body)
        return
    origin = _Origin(body)
    try:
        yield _Doc(source, value=json.loads(origin.text), body=body, origin=origin)
        return
    except json.JSONDecodeError as exc:
        # One line with more after its document is not JSON Lines, only invalid.
        if exc.msg != "Extra data" or not lines or "\n" not in origin.text.strip():
            yield _Doc(source, problem=_unparsed(origin, exc), body=body)
            return
    except (ValueError, RecursionError) as exc:  # too many digits, too deeply nested
        yield _Doc(source, problem=_unparsed(origin, exc), body=body)
        return
    # JSON strings cannot hold a raw newline, so "\n" splits JSON Lines safely (splitlines would
    # also split on U+2028, which JSON strings may hold).
    for number, line in enumerate(origin.text.split("\n"), 1):
        if line.strip():
            yield from _parse_body(f"{source}:{number}", origin.encode(line), fast, lines=False)


def _unparsed(origin: _Origin, exc: Exception) -> _Problem:
    # Undecodable bytes are the likelier cause of a parse failure, and the clearer message.
    if origin.error is not None:
        where = f"{origin.error.reason} at byte {origin.error.start}"
        return _Problem("not_UTF-8", f"not UTF-8 ({where})")
    if isinstance(exc, RecursionError):
        return _Problem("invalid_JSON", "invalid JSON: nested too deeply")
    return _Problem("invalid_JSON", f"invalid JSON: {exc}")


_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _json_kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), "number")


_NOT_RESPONSE = "not_an_X_API_v2_response"


def _response_problem(value: Any) -> _Problem | None:
    what = "not an X API v2 response: "
    if not isinstance(value, dict):
        return _Problem(_NOT_RESPONSE, f"{what}a JSON {_json_kind(value)}, not an object")
    if not value.keys() & _RESPONSE_KEYS:
        hint = f" (a Problem: {value.get('title')})" if "title" in value else ""
        return _Problem(_NOT_RESPONSE, f"{what}none of data, includes, meta, errors{hint}")
    data = value.get("data")
    if data is not None and not isinstance(data, list | dict):
        return _Problem(_NOT_RESPONSE, f"{what}data is a JSON {_json_kind(data)}")
    errors = value.get("errors")
    if errors is not None and not isinstance(errors, list):
        return _Problem(_NOT_RESPONSE, f"{what}errors is a JSON {_json_kind(errors)}")
    return None


def _typed_problem(page: Any) -> _Problem | None:
    unset = msgspec.UNSET
    if page.data is unset and page.includes is unset and page.meta is unset:
        if page.errors is unset:
            hint = f" (a Problem: {page.title})" if page.title is not unset else ""
            message = f"not an X API v2 response: none of data, includes, meta, errors{hint}"
            return _Problem(_NOT_RESPONSE, message)
    return None


def _json_or_text(body: bytes) -> Any:
    """A body msgspec read, as ``json`` reads it; its text when ``json`` cannot (a number with
    more digits than Python converts, nesting deeper than its parser goes)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "surrogateescape")


def _users_by_id(users: Any) -> dict[str, Any]:
    # A malformed includes only costs the optional author columns, never the posts.
    if not isinstance(users, list):
        return {}
    return {str(u["id"]): u for u in users if isinstance(u, dict) and u.get("id") is not None}


# --- posts to columns ----------------------------------------------------------------------------
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps would build one per call
_NONE = type(None)


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _json_text(value: Any) -> str:
    # Lists of plain strings (ids, tags, URLs) are most of what is encoded: when no item needs
    # escaping, join them the way the encoder would, at a fraction of its cost.
    if type(value) is list and all(type(v) is str for v in value):
        joined = '", "'.join(value)
        if not _NEEDS_ESCAPE.search(joined):
            return f'["{joined}"]' if value else "[]"
    return _ENCODER.encode(value)


def _mistyped(value: Any) -> Mistyped:
    """A value of the wrong JSON type, kept for the gate to reject (never converted)."""
    if type(value) is Mistyped:
        return value
    try:
        text = _json_text(value)
    except (ValueError, RecursionError):  # nested too deeply to write: the kind says enough
        text = "…"
    return Mistyped(_json_kind(value), text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def _as_string(value: Any) -> str | Mistyped | None:
    if value is None or type(value) is str:
        return value
    return _mistyped(value)  # an id sent as a number, text as an object: the API says string


def _as_integer(value: Any) -> int | Mistyped | None:
    if value is None or type(value) is int:
        return value
    return _mistyped(value)  # a count sent as a string, a float or a boolean


def _as_number(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is int:
        return repr(value)
    if type(value) is float:
        return repr(value) if math.isfinite(value) else _json_text(value)  # the gate judges 1e400
    return _mistyped(value)


def _as_boolean(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is bool:
        return "true" if value else "false"
    return _mistyped(value)  # a flag sent as a string or a number


def _as_array(value: Any) -> str | Mistyped:
    if value is None:
        return "[]"
    if type(value) is list:
        return _json_text(value)
    return _mistyped(value)


def _as_object(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is dict:
        return _json_text(value)
    return _mistyped(value)


def _timestamp_converter(fmt: TimestampFormat | None) -> Callable[[Any], Any]:
    """One value to the contract's format."""

    def as_timestamp(value: Any) -> str | Mistyped | None:
        if type(value) is not str:
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


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "array": _as_array,
    "object": _as_object,
}
_BOOLEAN_TEXT = {True: "true", False: "false"}


def _convert_all(values: list[Any], kind: str, convert: Callable[[Any], Any]) -> Column:
    # Fast paths for the types the API is documented to send; anything else, value by value.
    types = set(map(type, values))
    if kind == "string" and types <= {str, _NONE}:
        return values
    if kind == "integer" and types <= {int, _NONE}:
        return values  # ints go to the gate as Int64 and to the CSV as csv writes them
    if kind == "boolean" and types <= {bool, _NONE}:
        return list(map(_BOOLEAN_TEXT.get, values))
    if kind == "array" and types <= {list, _NONE}:
        return cast("Column", _json_texts([v or [] for v in values]))
    return list(map(convert, values))


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
    return tuple(steps) if steps and isinstance(steps[0], str) else None


def _follow(value: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` below ``value``; None when a step is absent, a Mistyped when a
    step is of the wrong JSON type (``public_metrics`` sent as a list)."""
    if value is None:
        return None
    for step in steps:
        if isinstance(step, int):
            if type(value) is not list:
                return _mistyped(value)
            value = value[step] if len(value) > step else None
        elif type(value) is dict:
            value = value.get(step)
        else:
            return _mistyped(value)
        if value is None:
            return None
    return value


class _Chunk:
    """The posts waiting for the gate, column by column: for each top-level post field the
    contract reads, its values; and per post its author (from includes.users), its source and
    how to find its original JSON for the quarantine."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.fields: dict[str, list[Any]] = {k: [] for k in keys}
        self.authors: list[Any] = []
        self.sources: list[str] = []
        self.records: list[Any] = []  # a _DictRef, or (page number, position) in bodies
        self.bodies: list[bytes] = []
        self._entities: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.sources)

    def entities(self) -> list[Any]:
        """Each post's entities: note_tweet's for a long post (the top-level ones only cover the
        truncated text), else the top-level ones. Computed once for the three entity columns."""
        if self._entities is None:
            self._entities = [
                n["entities"] if type(n) is dict and n.get("entities") is not None else e
                for n, e in zip(self.fields["note_tweet"], self.fields["entities"], strict=True)
            ]
        return self._entities

    def add_typed(self, source: str, posts: list[Any], users: dict[str, Any], body: bytes) -> None:
        for key, values in self.fields.items():
            values.extend(map(attrgetter(key), posts))
        self._add(source, len(posts), users)
        self.records.extend(zip(repeat(len(self.bodies)), range(len(posts))))
        self.bodies.append(body)

    def add_dicts(self, source: str, posts: list[_DictRef], users: dict[str, Any]) -> None:
        for key, values in self.fields.items():
            values.extend([p.post.get(key) for p in posts])
        self._add(source, len(posts), users)
        self.records.extend(posts)

    def _add(self, source: str, n: int, users: dict[str, Any]) -> None:
        self.sources.extend(repeat(source, n))
        if users:
            ids = self.fields["author_id"][-n:] if n else []
            self.authors.extend(users.get(a if type(a) is str else str(a)) for a in ids)
        else:
            self.authors.extend(repeat(None, n))

    def record(
        self, position: int, parsed: dict[int, Any]
    ) -> tuple[Any, Callable[[], bytes | None]]:
        """The original JSON of the post at ``position`` (typed pages are parsed again), and how
        to get its original bytes (kept when the JSON cannot be written as it came)."""
        ref = self.records[position]
        if isinstance(ref, _DictRef):
            return ref.post, functools.partial(ref.origin.item_bytes, ref.at)
        page_no, index = ref
        if page_no not in parsed:
            parsed[page_no] = _typed_data(self.bodies[page_no])
        data = parsed[page_no]
        return (data[index] if isinstance(data, list) else data), lambda: None


class _DictRef(NamedTuple):
    """A post read by the reference path: its dict, its page and its position in ``data``."""

    post: dict[str, Any]
    origin: _Origin
    at: int


_RAW_DATA = msgspec.json.Decoder(msgspec.defstruct("RawData", [("data", msgspec.Raw)]))
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def _typed_data(body: bytes) -> Any:
    """``data`` of a page the fast path read, as ``json`` reads it. A post ``json`` cannot read
    (a number of more digits than Python converts, in a field msgspec skipped) is its JSON text."""
    try:
        return json.loads(body)["data"]
    except (ValueError, RecursionError):
        raw = bytes(cast("Any", _RAW_DATA.decode(body)).data)
        items = _RAW_ITEMS.decode(raw) if raw.startswith(b"[") else raw
        return _json_or_text(raw) if not isinstance(items, list) else list(map(_raw_item, items))


def _raw_item(raw: msgspec.Raw) -> Any:
    return _json_or_text(bytes(raw))


def _path_values(chunk: _Chunk, steps: tuple[str | int, ...]) -> list[Any]:
    base = chunk.fields[str(steps[0])]
    rest = steps[1:]
    if not rest:
        return base
    # The common shapes in one comprehension each; anything unusual (absent, or a step of the
    # wrong JSON type) takes _follow, which says which.
    if len(rest) == 1 and isinstance(rest[0], str):
        key = rest[0]
        return [v.get(key) if type(v) is dict else _follow(v, rest) for v in base]
    if len(rest) == 2 and rest[0] == 0 and isinstance(rest[1], str):  # referenced_tweets[0].id
        key = rest[1]
        return [
            v[0].get(key) if type(v) is list and v and type(v[0]) is dict else _follow(v, rest)
            for v in base
        ]
    return [_follow(v, rest) for v in base]


def _path_column(col: ColumnSpec) -> tuple[set[str], Callable[[_Chunk], Column]]:
    paths = [_source_path(p) for p in col.sources]
    if not paths or any(p is None for p in paths):
        raise KeyError(col.name)
    steps = [p for p in paths if p is not None]
    fmt = None
    if col.logical_type in ("timestamp", "date"):
        fmt = TimestampFormat.parse(col.format) if col.format else None
        convert = _timestamp_converter(fmt)
    else:
        convert = _CONVERTERS.get(col.logical_type, _as_string)
    kind = col.logical_type

    def build(chunk: _Chunk) -> Column:
        values = _path_values(chunk, steps[0])
        for more in steps[1:]:  # coalesce: the first path that has a value
            values = [
                v if v is not None else w
                for v, w in zip(values, _path_values(chunk, more), strict=True)
            ]
        if fmt is not None and every_value_matches(fmt.pattern, values):
            return values  # the API's own format: nothing to convert
        return _convert_all(values, kind, convert)

    return {str(s[0]) for s in steps}, build


def _text_column(chunk: _Chunk) -> Column:
    return [
        (_unescape(t) if type(t) is str else _as_string(t)) if n is None else _note_text(n, t)
        for n, t in zip(chunk.fields["note_tweet"], chunk.fields["text"], strict=True)
    ]


def _note_text(note: Any, text: Any) -> Any:
    if type(note) is not dict:
        return _mistyped(note)
    full = note.get("text")
    if full is None:
        return _unescape(text) if type(text) is str else _as_string(text)
    return _unescape(full) if type(full) is str else _mistyped(full)


def _entity_column(kind: str, key: str, fallback: str | None = None) -> Callable[[_Chunk], Column]:
    def build(chunk: _Chunk) -> Column:
        column: Column = []
        lists: list[list[Any]] = []  # the item values of each non-empty list, in row order
        where: list[int] = []
        for entities in chunk.entities():
            items = entities.get(kind) if type(entities) is dict else _follow(entities, (kind,))
            if items and type(items) is list:
                where.append(len(column))
                column.append(None)
                if fallback is None:
                    lists.append([i.get(key) if type(i) is dict else _mistyped(i) for i in items])
                else:
                    lists.append([_entity_value(i, key, fallback) for i in items])
            elif items is None or type(items) is list:  # none sent
                column.append("[]")
            else:  # not a list (or entities not an object): the gate rejects it
                column.append(_mistyped(items))
        for position, text in zip(where, _json_texts(lists), strict=True):
            column[position] = text
        return column

    return build


def _json_texts(lists: list[list[Any]]) -> list[str | Mistyped]:
    """:func:`_json_text` of each list; lists of plain strings (tags, names, URLs) are checked
    for characters needing an escape in one pass over all of them."""
    flat = [v for values in lists for v in values]
    types = set(map(type, flat))
    if types <= {str} and not _NEEDS_ESCAPE.search("".join(flat)):
        return ['["' + '", "'.join(values) + '"]' if values else "[]" for values in lists]
    if Mistyped in types:
        return [_list_text(values) for values in lists]
    return [_json_text(values) if values else "[]" for values in lists]


def _list_text(values: list[Any]) -> str | Mistyped:
    # An item of the wrong JSON type (a hashtag sent as a bare string) makes the cell Mistyped.
    mistyped = next((v for v in values if type(v) is Mistyped), None)
    if mistyped is not None:
        return mistyped
    return _json_text(values) if values else "[]"


def _entity_value(item: Any, key: str, fallback: str | None) -> Any:
    if type(item) is not dict:
        return _mistyped(item)
    value = item.get(key)
    if value is None and fallback is not None:
        value = item.get(fallback)
    return value


def _author_column(key: str) -> Callable[[_Chunk], Column]:
    def build(chunk: _Chunk) -> Column:
        return [None if u is None else _as_string(u.get(key)) for u in chunk.authors]

    return build


def _source_column(chunk: _Chunk) -> Column:
    return cast("Column", chunk.sources)


# Columns whose contract transformLogic is more than reading a path, with the top-level post
# fields they read.
_SPECIAL_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[_Chunk], Column]]] = {
    "text": (("note_tweet", "text"), _text_column),
    "hashtags": (("note_tweet", "entities"), _entity_column("hashtags", "tag")),
    "mentions": (("note_tweet", "entities"), _entity_column("mentions", "username")),
    "urls": (("note_tweet", "entities"), _entity_column("urls", "expanded_url", fallback="url")),
    "author_username": (("author_id",), _author_column("username")),
    "author_name": (("author_id",), _author_column("name")),
    "source_page": ((), _source_column),
}


class _Columns:
    """How each contract column is built from a chunk, and which post fields that needs."""

    def __init__(self, spec: ContractSpec) -> None:
        self.names: list[str] = []
        self.kinds: list[str] = []
        self.unproduced: list[str] = []
        self.builders: list[Callable[[_Chunk], Column]] = []
        keys: set[str] = {"author_id"}
        for col in spec.columns:
            if col.name in _SPECIAL_COLUMNS:
                needs, build = _SPECIAL_COLUMNS[col.name]
                keys.update(needs)
            else:
                try:
                    needs_set, build = _path_column(col)
                except KeyError:
                    self.unproduced.append(col.name)
                    continue
                keys.update(needs_set)
            self.names.append(col.name)
            self.kinds.append(col.logical_type)
            self.builders.append(build)
        self.keys = tuple(sorted(keys))

    def build(self, chunk: _Chunk) -> list[Column]:
        return [build(chunk) for build in self.builders]


# --- duplicates ----------------------------------------------------------------------------------
# Decimal ids of up to 19 digits without a leading zero (they fit in a uint64), one a line.
_DECIMAL_IDS = re.compile(r"(?:0|[1-9][0-9]{0,18})(?:\n(?:0|[1-9][0-9]{0,18}))*")


def _all_decimal_ids(ids: list[str | None]) -> bool:
    """Whether every id is a decimal id (see :class:`_SeenIds`), checked in one pass."""
    try:
        joined = "\n".join(cast("list[str]", ids))
    except TypeError:  # a missing id
        return False
    return joined.count("\n") == len(ids) - 1 and _DECIMAL_IDS.fullmatch(joined) is not None


def _id_numbers(ids: list[str | None]) -> np.ndarray:
    """Decimal ids (see :func:`_all_decimal_ids`) as uint64 numbers."""
    return np.array(list(map(int, cast("list[str]", ids))), dtype=np.uint64)


class _SeenIds:
    """Tweet ids already taken in this run.

    Decimal ids (all real ones) live in a sorted uint64 array, 8 bytes each: a Python set would
    cost about 100 bytes an id and break the flat-memory target at a million posts.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._other: set[str] = set()

    def first_seen(self, ids: list[str | None] | np.ndarray) -> list[bool]:
        """Mark which ids are new (first occurrence, also within ``ids``) and remember them.
        ``ids`` may be decimal ids already as numbers (see :func:`_id_numbers`)."""
        keep = [True] * len(ids)
        if isinstance(ids, np.ndarray):
            self._take(ids, range(len(ids)), keep)
            return keep
        if _all_decimal_ids(ids):  # the usual case: one match over all ids, no loop
            self._take(_id_numbers(ids), range(len(ids)), keep)
            return keep
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

    def _take(self, values: np.ndarray, positions: Sequence[int], keep: list[bool]) -> None:
        unique, first = np.unique(values, return_index=True)
        drop = np.ones(len(values), dtype=bool)
        drop[first] = False
        drop |= self._known(values)
        for pos in np.flatnonzero(drop).tolist():
            keep[positions[pos]] = False
        fresh = unique[~self._known(unique)]
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        self._sorted = np.sort(np.concatenate((self._sorted, fresh)), kind="stable")

    def _known(self, values: np.ndarray) -> np.ndarray:
        if not len(self._sorted):
            return np.zeros(len(values), dtype=bool)
        at = np.minimum(np.searchsorted(self._sorted, values), len(self._sorted) - 1)
        known: np.ndarray = self._sorted[at] == values
        return known


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
    failures: dict[int, list[tuple[str, str, Any]]] = {}
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
            failures.setdefault(int(index), []).append((str(name), str(check), case))
    by_row = {
        row: [f"{name}: {check} ({_shown(case)})" for name, check, case in _one_per_cause(found)]
        for row, found in failures.items()
    }
    return by_row, every_row


def _one_per_cause(found: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """A value of the wrong JSON type also fails the column's dtype and its coercion, and one
    that fails the coercion fails the dtype: the first cause is reason enough."""
    mistyped = {name for name, check, _ in found if check.startswith("json_type")}
    uncoerced = {name for name, check, _ in found if check.startswith("coerce_dtype(")}
    return [
        (name, check, case)
        for name, check, case in found
        if not (check.startswith(("dtype(", "coerce_dtype(")) and name in mistyped)
        and not (check.startswith("dtype(") and name in uncoerced)
    ]


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
def _dump_line(obj: dict[str, Any], original: Callable[[], bytes | None] | None = None) -> str:
    """One quarantine line: the record as it came when JSON in UTF-8 can hold it. A record it
    cannot hold as it is (a lone surrogate or undecodable bytes in a string, a number out of
    range such as ``1e400``, ``NaN``) is written ASCII-escaped, with non-finite numbers as the
    strings ``NaN``/``Infinity``/``-Infinity``, and its original bytes go beside it in
    ``record_base64``: those, not the approximation, are the record."""
    try:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        line.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    else:
        return line + "\n"
    kept = dict(obj)
    raw = original() if original is not None else None
    if raw is not None:
        kept["record_base64"] = base64.b64encode(raw).decode("ascii")
    try:
        kept["record"] = _finite(obj["record"])
        return json.dumps(kept, ensure_ascii=True, allow_nan=False) + "\n"
    except (ValueError, RecursionError):  # nested too deeply to write: the bytes hold it
        kept["record"] = None
        return json.dumps(kept, ensure_ascii=True) + "\n"


def _finite(value: Any) -> Any:
    """``value`` with each non-finite float as the JSON token it stands for, as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@dataclass
class _UnitResult:
    """What one unit of pages gave: counters, quarantine lines found while reading, and per
    post (first occurrences within the unit, in input order) its id and verdict; the CSV rows
    of the posts that passed as one UTF-8 block with each row's size, and the quarantine line
    of each post that did not.

    Ids that are all decimal travel as a uint64 array and rows as bytes: a worker's result then
    crosses to the caller, and into the CSV, without a Python object per row.
    """

    pages: int = 0
    pages_quarantined: int = 0
    tweets_in: int = 0
    api_errors: int = 0
    not_objects: int = 0
    duplicates: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    early_lines: list[str] = field(default_factory=list)
    ids: list[str | None] | np.ndarray = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)
    csv: bytes = b""
    csv_sizes: list[int] = field(default_factory=list)  # bytes of each row in csv
    rejected: dict[int, str] = field(default_factory=dict)  # quarantine line of a failed post
    reasons: dict[int, list[str]] = field(default_factory=dict)  # check keys of rejected posts
    filled: set[str] = field(default_factory=set)


class _LineSink:
    """A file-like target for csv.writer that keeps each row's text apart."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


class _Unit:
    """Turns a unit of pages into a :class:`_UnitResult`: parse, build columns, drop repeats
    within the unit, run the Pandera gate once, format the CSV and quarantine lines. Runs in the
    caller's process or in a worker; it holds no state between units."""

    def __init__(self, spec: ContractSpec) -> None:
        from etl.contracts.pandera_schema import pandera_schema

        self.spec = spec
        self.schema = pandera_schema(spec)
        # The same gate for the usual unit, where no value has the wrong JSON type.
        self.schema_well_typed = pandera_schema(spec, json_types=False)
        self.columns = _Columns(spec)
        self.fast = _FastDecoder(self.columns.keys)

    def process(self, pages: list[tuple[str, bytes]]) -> _UnitResult:
        out = _UnitResult()
        chunk = _Chunk(self.columns.keys)
        for source, body in pages:
            for doc in _parse_body(source, body, self.fast):
                self._page(doc, chunk, out)
        if len(chunk):
            self._gate(chunk, out)
        return out

    def _page(self, doc: _Doc, chunk: _Chunk, out: _UnitResult) -> None:
        out.pages += 1
        typed = doc.typed
        problem = doc.problem or (
            _typed_problem(doc.value) if typed else _response_problem(doc.value)
        )
        if problem is not None:
            self._page_problem(doc, problem, out)
            return
        if typed:
            page = doc.value
            errors, data, includes = page.errors, page.data, page.includes
            posts = [data] if isinstance(data, self.fast.post) else data or []
            users = includes.users if includes and includes is not msgspec.UNSET else None
        else:
            errors, data, includes = (doc.value.get(k) for k in ("errors", "data", "includes"))
            posts = [data] if isinstance(data, dict) else data or []
            users = includes.get("users") if isinstance(includes, dict) else None
        for error in errors if isinstance(errors, list) else ():
            out.api_errors += 1
            title = error.get("title", "") if isinstance(error, dict) else ""
            detail = error.get("detail", "") if isinstance(error, dict) else ""
            reason = f"api_error: {title}: {detail}"
            out.early_lines.append(_quarantine_line("api_error", [reason], doc.source, error))
        out.tweets_in += len(posts)
        if typed:
            chunk.add_typed(doc.source, posts, _users_by_id(users), doc.body)
            return
        origin = cast("_Origin", doc.origin)
        objects = []
        for index, item in enumerate(posts):
            if isinstance(item, dict):
                objects.append(_DictRef(item, origin, index))
                continue
            out.not_objects += 1
            out.checks["record:not_an_object"] = out.checks.get("record:not_an_object", 0) + 1
            reason = f"record: not a post object (a JSON {_json_kind(item)})"
            original = functools.partial(origin.item_bytes, index)
            out.early_lines.append(_quarantine_line("tweet", [reason], doc.source, item, original))
        chunk.add_dicts(doc.source, objects, _users_by_id(users))

    @staticmethod
    def _page_problem(doc: _Doc, problem: _Problem, out: _UnitResult) -> None:
        out.pages_quarantined += 1
        key = f"page:{problem.check}"
        out.checks[key] = out.checks.get(key, 0) + 1
        if doc.problem is not None:  # unparseable: the body as text, each bad byte escaped
            record = doc.body.decode("utf-8", "surrogateescape")
        else:  # parsed, but not a response
            record = _json_or_text(doc.body) if doc.typed else doc.value
        line = _quarantine_line("page", [problem.message], doc.source, record, lambda: doc.body)
        out.early_lines.append(line)

    def _gate(self, chunk: _Chunk, out: _UnitResult) -> None:
        names = self.columns.names
        columns = self.columns.build(chunk)
        positions = list(range(len(chunk)))
        if "tweet_id" in names:
            keep = _first_in_unit(columns[names.index("tweet_id")])
            if not all(keep):
                out.duplicates += keep.count(False)
                columns = [list(compress(c, keep)) for c in columns]
                positions = list(compress(positions, keep))
        ids = columns[names.index("tweet_id")] if "tweet_id" in names else [None] * len(positions)
        if _all_decimal_ids(ids):
            out.ids = _id_numbers(ids)
        else:  # a mistyped id is rejected by the gate, never taken as anyone's duplicate
            out.ids = [t if type(t) is str else None for t in ids]
        # The first value almost always settles it; list.count(None) would compare every value.
        out.filled = {
            n for n, c in zip(names, columns, strict=True) if any(v is not None for v in c)
        }
        types = [set(map(type, c)) for c in columns]  # once, for the frame and the CSV
        frame = _frame(names, self.columns.kinds, columns, types)
        mistyped = any(Mistyped in held for held in types)
        by_row, every_row = _gate_reasons(
            self.schema if mistyped else self.schema_well_typed, frame
        )
        lines = _csv_lines(columns, types)
        out.passed = [True] * len(positions)
        if by_row or every_row:
            parsed: dict[int, Any] = {}
            for i, position in enumerate(positions):
                reasons = every_row + by_row.get(i, [])
                if reasons:
                    record, original = chunk.record(position, parsed)
                    out.passed[i] = False
                    out.reasons[i] = [_check_key(r) for r in reasons]
                    source = chunk.sources[position]
                    line = _quarantine_line("tweet", reasons, source, record, original)
                    out.rejected[i] = line
            lines = list(compress(lines, out.passed))
        # Rows that passed are valid UTF-8 (the gate checks it); an ASCII row's size is its length.
        out.csv = "".join(lines).encode("utf-8")
        out.csv_sizes = [len(x) if x.isascii() else len(x.encode("utf-8")) for x in lines]


_CSV_SPECIAL = re.compile(r'[,"\r\n]')  # what makes csv's QUOTE_MINIMAL quote a field
_CSV_CELL_TYPES = frozenset((str, int, _NONE))


def _csv_cells(values: Column, types: set[type] | None = None) -> list[str] | None:
    """One column as CSV cells, quoted as csv.writer would; None when it holds a value of
    another type, which csv.writer must format. ``types``: the types the column holds."""
    types = set(map(type, values)) if types is None else types
    if Mistyped in types:  # the gate rejects those rows: they are never written
        values = [None if type(v) is Mistyped else v for v in values]
        types = (types - {Mistyped}) | {_NONE}
    if not types <= _CSV_CELL_TYPES:
        return None
    cells: list[str] = values if types <= {str} else ["" if v is None else str(v) for v in values]
    # Most columns (ids, counts, times) never need quoting: one search over the whole column
    # proves it, and only columns that do (text, names) are quoted value by value.
    if not _CSV_SPECIAL.search("".join(cells)):
        return cells
    # Four substring tests are several times cheaper than a regex search per value.
    return [
        '"' + c.replace('"', '""') + '"' if '"' in c or "," in c or "\n" in c or "\r" in c else c
        for c in cells
    ]


def _csv_lines(columns: list[Column], types: list[set[type]] | None = None) -> list[str]:
    """The CSV line of each row: the bytes csv.writer writes (RFC 4180, QUOTE_MINIMAL, CRLF),
    built column by column, which costs a fraction of formatting field by field."""
    held = types if types is not None else [set(map(type, c)) for c in columns]
    cells = [_csv_cells(c, t) for c, t in zip(columns, held, strict=True)]
    if not columns or not columns[0] or any(c is None for c in cells):
        sink = _LineSink()
        csv.writer(sink, lineterminator="\r\n").writerows(zip(*columns, strict=True))
        return sink.lines
    ready = cast("list[list[str]]", cells)
    # A row of one empty field is written as "" by csv.writer; join would write nothing.
    if len(ready) == 1:
        return [(c or '""') + "\r\n" for c in ready[0]]
    ready[-1] = [c + "\r\n" for c in ready[-1]]
    return list(map(",".join, zip(*ready, strict=True)))


def _first_in_unit(ids: list[Any]) -> list[bool]:
    seen: set[str] = set()
    keep = []
    for tid in ids:
        fresh = type(tid) is not str or tid not in seen  # no id, or a mistyped one: the gate's
        keep.append(fresh)
        if fresh and tid is not None:
            seen.add(tid)
    return keep


def _frame(
    names: list[str], kinds: list[str], columns: list[Column], types: list[set[type]]
) -> pd.DataFrame:
    import pandas as pd

    def series(kind: str, values: Column, held: set[type]) -> pd.Series:
        if Mistyped in held:
            return pd.Series(values, dtype=object)  # the json_type check rejects those cells
        if kind != "integer":
            return pd.Series(values, dtype="str")
        with contextlib.suppress(TypeError, OverflowError):  # beyond int64: coercion judges
            return pd.Series(pd.array(values, dtype="Int64"))
        return pd.Series(values, dtype=object)

    return pd.DataFrame(
        {
            name: series(kind, values, held)
            for name, kind, values, held in zip(names, kinds, columns, types, strict=True)
        }
    )


def _quarantine_line(
    kind: str,
    reasons: list[str],
    source: str,
    record: Any,
    original: Callable[[], bytes | None] | None = None,
) -> str:
    obj = {"kind": kind, "reason": reasons, "source": source, "record": record}
    return _dump_line(obj, original)


class _Run:
    """The caller's side of a run: the outputs, the ids already taken and the report."""

    def __init__(self, spec: ContractSpec, csv_out: IO[str], quarantine_out: IO[str]) -> None:
        self.spec = spec
        self.report = TransformReport(contract=f"{spec.name} {spec.version}")
        self.columns = _Columns(spec)
        self.csv_out = csv_out
        self.quarantine_out = quarantine_out
        csv.writer(csv_out, lineterminator="\r\n").writerow(spec.column_names)
        # Rows arrive as UTF-8 bytes: a file's binary layer takes them as they are.
        self.csv_bytes: IO[bytes] | None = getattr(csv_out, "buffer", None)
        if self.csv_bytes is not None:
            csv_out.flush()
        self.seen = _SeenIds()
        self.filled: set[str] = set()

    def merge(self, unit: _UnitResult) -> None:
        """Take a unit's result in input order; repeats of ids from earlier units are dropped."""
        report = self.report
        report.pages += unit.pages
        report.pages_quarantined += unit.pages_quarantined
        report.tweets_in += unit.tweets_in
        report.api_errors += unit.api_errors
        report.quarantined += unit.not_objects
        report.duplicates += unit.duplicates
        for key, n in unit.checks.items():
            report._count(key, n)
        self.quarantine_out.writelines(unit.early_lines)
        self.filled |= unit.filled
        keep = self.seen.first_seen(unit.ids)
        if all(keep) and not unit.rejected:
            self._write_csv(unit.csv)
            report.curated += len(unit.passed)
            return
        rows: list[bytes] = []
        start = 0
        sizes = iter(unit.csv_sizes)
        for i, (kept, passed) in enumerate(zip(keep, unit.passed, strict=True)):
            if passed:
                end = start + next(sizes)
                row, start = unit.csv[start:end], end
            if not kept:
                report.duplicates += 1
            elif passed:
                rows.append(row)
                report.curated += 1
            else:
                self.quarantine_out.write(unit.rejected[i])
                report.quarantined += 1
                for key in unit.reasons[i]:
                    report._count(key)
        self._write_csv(b"".join(rows))

    def _write_csv(self, rows: bytes) -> None:
        if self.csv_bytes is not None:
            self.csv_bytes.write(rows)
        else:
            self.csv_out.write(rows.decode("utf-8"))

    def finish(self) -> TransformReport:
        report = self.report
        for name in self.columns.unproduced:
            report.fatal.append(
                f"{name}: contract column has no source the transform can read "
                f"(transformSourceObjects {list(self.spec.column(name).sources)})"
            )
        if report.tweets_in - report.duplicates > 0:
            for col in self.spec.columns:
                if col.required and col.name in self.columns.names and col.name not in self.filled:
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


def _units(pages: Iterable[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """Group pages into units of about UNIT_BYTES (one unit is one Pandera call)."""
    unit: list[tuple[str, bytes]] = []
    size = 0
    for source, body in pages:
        unit.append((source, body))
        size += len(body)
        if size >= UNIT_BYTES:
            yield unit
            unit, size = [], 0
    if unit:
        yield unit


_WORKER: _Unit | None = None  # a worker process's unit processor, for the last contract seen


def _warm_worker(parent: int) -> None:
    """A worker's start: it dies with ``parent``, the process running the transform; with fork
    it shares the modules that process imported; a spawned worker imports pandas and pandera
    here, before any work."""
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent reports it; a worker just stops,
    # without a traceback of its own.
    signal.signal(signal.SIGINT, lambda *_: os._exit(128 + signal.SIGINT))
    import pandera.pandas  # noqa: F401

    gc.freeze()  # as in _few_gc_passes, for the worker's lifetime
    gc.set_threshold(50_000, 20, 100)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` dies, however it dies (Linux).

    A worker whose parent was killed would otherwise wait for work forever: it holds its
    siblings' queue open, and the pipes that tell the lineage process its step has ended.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # no prctl: nothing to ask for
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: no signal would come
        os._exit(1)


def _work(spec: ContractSpec, pages: list[tuple[str, bytes]]) -> _UnitResult:
    global _WORKER
    if _WORKER is None or _WORKER.spec != spec:
        _WORKER = _Unit(spec)
    return _WORKER.process(pages)


def _new_pool(workers: int) -> Any:
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    # Imported once here, pandas and pandera come with every forked worker for free (each would
    # otherwise spend a third of a second of CPU importing its own).
    import pandera.pandas  # noqa: F401

    # With other threads running, forking is unsafe and spawn is used instead.
    method = "fork" if threading.active_count() == 1 else "spawn"
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(workers, context, _warm_worker, (os.getpid(),))


def _results_in_parallel(
    spec: ContractSpec, units: Iterator[list[tuple[str, bytes]]], workers: int
) -> Iterator[_UnitResult]:
    """Process units in worker processes, yielding results in input order; at most two units
    per worker are in flight, so memory stays flat however long the input."""
    from collections import deque

    with _new_pool(workers) as pool:
        pending: deque[Future[_UnitResult]] = deque()
        try:
            for unit in units:
                pending.append(pool.submit(_work, spec, unit))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the run failed: no more work
            raise


def transform_pages(
    pages: Iterable[tuple[str, bytes]],
    csv_out: IO[str],
    quarantine_out: IO[str],
    contract: ContractSpec | None = None,
    progress: bool = False,
    workers: int = 1,
) -> TransformReport:
    """Transform raw response bodies into curated CSV rows and quarantine lines, streaming.

    Args:
        pages: ``(source, body)`` pairs: the name of the raw object (store key or file path) and
            its bytes, one JSON response or JSON Lines with one response per line.
        csv_out: text stream for the CSV, opened with ``newline=""``; the header is written first.
        quarantine_out: text stream for the quarantine JSON lines.
        contract: the curated contract (default: the bundled one).
        progress: show a progress bar (pages) on stderr.
        workers: worker processes for parsing and the gate; 1 (the default) runs everything in
            this process. The output is the same byte for byte whatever the number.

    Returns:
        The report; ``report.passed`` says whether the gate passed. The caller decides what to do
        with the CSV on a breach (``report.raise_for_gate`` raises).
    """
    spec = contract or load_contract(CURATED_CONTRACT)
    run = _Run(spec, csv_out, quarantine_out)
    if progress:
        from tqdm import tqdm

        pages = tqdm(pages, unit="page", file=sys.stderr)
    units = _units(pages)
    with _few_gc_passes():
        if workers > 1:
            results: Iterable[_UnitResult] = _results_in_parallel(spec, units, workers)
        else:
            unit = _Unit(spec)
            results = map(unit.process, units)
        for result in results:
            run.merge(result)
    return run.finish()


@contextlib.contextmanager
def _few_gc_passes() -> Iterator[None]:
    """Fewer cyclic garbage collections while the transform runs.

    It allocates millions of short-lived, acyclic objects (freed by reference counting anyway);
    at the default threshold the collector would rescan them every 700 allocations and cost
    about 15% of the run. Objects that exist before the run are frozen out of the scans.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


# --- files and the CLI ---------------------------------------------------------------------------
def input_files(inputs: list[Path]) -> list[Path]:
    """Expand INPUT arguments: files as given, directories to their JSON/JSONL files, sorted.

    Args:
        inputs: files or directories.

    Returns:
        The files, in argument order, each directory's files sorted by path.

    Raises:
        etl.errors.InputError: an input does not exist or a directory holds no JSON/JSONL file.
    """
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_data_file(p, path))
            if not found:
                raise InputError(f"{path}: directory holds no .json, .jsonl or .ndjson file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _is_data_file(path: Path, root: Path) -> bool:
    # Names starting with "_" or "." are metadata (raw/'s _manifest.json and _rejected/ bodies,
    # temporary files), not pages: the Hadoop/Spark convention etl.steps.extract.land follows.
    hidden = any(part.startswith(("_", ".")) for part in path.relative_to(root).parts)
    return path.is_file() and path.suffix in INPUT_SUFFIXES and not hidden


def _file_pages(files: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in files:
        if path.suffix in JSONL_SUFFIXES:
            # Line by line, so a JSONL file of any size never sits in memory whole.
            with path.open("rb") as handle:
                for number, line in enumerate(handle, 1):
                    if line and not line.isspace():  # as line.strip(), without copying the line
                        yield f"{path}:{number}", line
        else:
            yield str(path), path.read_bytes()


def transform_files(
    inputs: list[Path],
    out_dir: Path,
    contract_path: Path | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> TransformReport:
    """Transform JSON/JSONL files; publish ``tweets.csv`` only when the gate passes.

    A run's outputs replace the last run's together, or not at all (see :mod:`etl.steps.transform.outdir`):
    they are written into a staging directory inside ``out_dir`` and moved into place when the
    run is done, ``report.json`` last; so a run that fails or is killed leaves the last outputs
    as they were, and a ``report.json`` always describes the files beside it. Each run writes
    ``quarantine.jsonl`` and ``report.json``; ``tweets.csv`` only on a pass; on a breach a
    ``tweets.csv`` left by an earlier run is removed, so the directory never shows curated rows
    beside a failing report.

    Args:
        inputs: files (JSON, or JSONL by suffix ``.jsonl``/``.ndjson``) or directories of them.
        out_dir: output directory (created).
        contract_path: curated contract (default: the bundled one).
        progress: show a progress bar on stderr.
        workers: worker processes (see :func:`transform_pages`); None: one per CPU (at most 4)
            when the input holds at least four units, else 1 (starting workers costs more than
            it saves on small inputs).

    Returns:
        The report.

    Raises:
        etl.errors.InputError: an input is missing, or another run is writing to ``out_dir``.
        etl.errors.ContractError: the contract cannot be read.
    """
    from etl.steps.transform.outdir import replace_together

    files = input_files(inputs)
    if workers is None:
        workers = auto_workers(files)
    spec = load_contract(contract_path or CURATED_CONTRACT)
    try:
        with replace_together(out_dir, OUTPUT_NAMES) as staging:
            return _transform_into(staging, files, spec, progress, workers)
    except OutputDirBusyError as exc:
        raise InputError(str(exc)) from exc


OUTPUT_NAMES = ("quarantine.jsonl", "tweets.csv", "report.json")
"""What ``tweetpipe transform`` writes in ``--out``, in the order a run's set replaces the last
one's: the report, which describes the others, last."""


def _transform_into(
    staging: Path, files: list[Path], spec: ContractSpec, progress: bool, workers: int
) -> TransformReport:
    csv_path = staging / "tweets.csv"
    with (
        csv_path.open("w", encoding="utf-8", newline="") as csv_out,
        (staging / "quarantine.jsonl").open("w", encoding="utf-8", newline="\n") as q_out,
    ):
        report = transform_pages(_file_pages(files), csv_out, q_out, spec, progress, workers)
    if not report.passed:
        csv_path.unlink()
    (staging / "report.json").write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


def auto_workers(files: list[Path]) -> int:
    big = sum(f.stat().st_size for f in files) >= 4 * UNIT_BYTES
    return min(os.cpu_count() or 1, 4) if big else 1
