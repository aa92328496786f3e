"""One unit of pages to its result: read, build columns, drop repeats, gate, format the lines.

A unit runs in the caller's process or in a worker and holds no state between units; its
:class:`UnitResult` is merged by the caller in input order. What it is built from is a
:class:`Parts`: :data:`REFERENCE_PARTS` are the plain implementations, and each fast part
(``etl.steps.transform.fast``, ``csv_lines``, ``uint64_ids``, ``pool``) replaces one of them
with the same output (tests/unit/test_transform_parts.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from itertools import compress
from typing import TYPE_CHECKING, Any, Protocol

from etl.contracts.pandera_schema import Mistyped
from etl.steps.transform.columns import REFERENCE_COLUMN_OPS, Chunk, ColumnOps, Columns
from etl.steps.transform.duplicates import SeenIdSet, first_in_unit
from etl.steps.transform.gate import frame, gate_reasons
from etl.steps.transform.lines import csv_writer_lines, quarantine_line
from etl.steps.transform.pages import json_kind, read_documents

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractContextManager

    from etl.contracts.model import ContractSpec
    from etl.steps.transform.pages import Document, ResponsePage
    from etl.steps.transform.values import Column


class SeenIdsRegistry(Protocol):
    """The caller's record of tweet ids taken by earlier units."""

    @staticmethod
    def pack(ids: list[Any]) -> Any:
        """A unit's id column as it travels to the caller."""
        ...

    def first_seen(self, ids: Any) -> list[bool]:
        """Which packed ids are new; remembers them."""
        ...


@dataclass(frozen=True)
class Parts:
    """The swappable parts of a run; every combination gives the same bytes out.

    Attributes:
        reader: builds, from the post fields the contract reads, a reader tried before
            ``json`` on each document (returning None to decline); None: ``json`` only.
        column_ops: how columns are built (see :class:`~etl.steps.transform.columns.ColumnOps`).
        csv_lines: the CSV line of each row, from the columns and the types they hold.
        seen_ids: the registry of ids taken by earlier units.
        gc_tuning: the garbage collector's settings while the run lasts.
    """

    reader: Callable[[tuple[str, ...]], Callable[[str, bytes], Document | None]] | None
    column_ops: ColumnOps
    csv_lines: Callable[[list[Column], list[set[type]]], list[str]]
    seen_ids: type[SeenIdsRegistry]
    gc_tuning: Callable[[], AbstractContextManager[None]]


REFERENCE_PARTS = Parts(
    reader=None,
    column_ops=REFERENCE_COLUMN_OPS,
    csv_lines=csv_writer_lines,
    seen_ids=SeenIdSet,
    gc_tuning=contextlib.nullcontext,
)


@dataclass
class UnitResult:
    """What one unit of pages gave: counters, quarantine lines found while reading, and per
    post (first occurrences within the unit, in input order) its id and verdict; the CSV rows
    of the posts that passed as one UTF-8 block with each row's size, and the quarantine line
    of each post that did not.

    Ids may travel packed (see :meth:`SeenIdsRegistry.pack`) and rows as bytes: a worker's
    result then crosses to the caller, and into the CSV, without a Python object per row.
    """

    pages: int = 0
    pages_quarantined: int = 0
    tweets_in: int = 0
    api_errors: int = 0
    not_objects: int = 0
    duplicates: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    early_lines: list[str] = field(default_factory=list)
    ids: Any = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)
    csv: bytes = b""
    csv_sizes: list[int] = field(default_factory=list)  # bytes of each row in csv
    rejected: dict[int, str] = field(default_factory=dict)  # quarantine line of a failed post
    reasons: dict[int, list[str]] = field(default_factory=dict)  # check keys of rejected posts
    filled: set[str] = field(default_factory=set)

    def count(self, check: str) -> None:
        """One more failure of ``check`` (``column:check``)."""
        self.checks[check] = self.checks.get(check, 0) + 1


class UnitProcessor:
    """Turns a unit of pages into a :class:`UnitResult`, for one contract and set of parts."""

    def __init__(self, spec: ContractSpec, parts: Parts = REFERENCE_PARTS) -> None:
        from etl.contracts.pandera_schema import pandera_schema

        self.spec = spec
        self.parts = parts
        self.schema = pandera_schema(spec)
        # The same gate for the usual unit, where no value has the wrong JSON type.
        self.schema_well_typed = pandera_schema(spec, json_types=False)
        self.columns = Columns(spec, parts.column_ops)
        self.reader = parts.reader(self.columns.keys) if parts.reader is not None else None

    def process(self, pages: Iterable[tuple[str, bytes]]) -> UnitResult:
        """Process a unit of ``(source, body)`` pages."""
        out = UnitResult()
        chunk = Chunk(self.columns.keys)
        for source, body in pages:
            for doc in read_documents(source, body, self.reader):
                _take_document(doc, chunk, out)
        if len(chunk):
            self._gate(chunk, out)
        return out

    def _gate(self, chunk: Chunk, out: UnitResult) -> None:
        names = self.columns.names
        columns = self.columns.build(chunk)
        positions = list(range(len(chunk)))
        if "tweet_id" in names:
            keep = first_in_unit(columns[names.index("tweet_id")])
            if not all(keep):
                out.duplicates += keep.count(False)
                columns = [list(compress(c, keep)) for c in columns]
                positions = list(compress(positions, keep))
        ids = columns[names.index("tweet_id")] if "tweet_id" in names else [None] * len(positions)
        out.ids = self.parts.seen_ids.pack(ids)
        # The first value almost always settles it; list.count(None) would compare every value.
        out.filled = {
            n for n, c in zip(names, columns, strict=True) if any(v is not None for v in c)
        }
        types = [set(map(type, c)) for c in columns]  # once, for the frame and the CSV
        cells = frame(names, self.columns.kinds, columns, types)
        mistyped = any(Mistyped in held for held in types)
        by_row, every_row = gate_reasons(self.schema if mistyped else self.schema_well_typed, cells)
        lines = self.parts.csv_lines(columns, types)
        out.passed = [True] * len(positions)
        if by_row or every_row:
            for i, position in enumerate(positions):
                reasons = every_row + by_row.get(i, [])
                if reasons:
                    record, original = chunk.record(position)
                    out.passed[i] = False
                    out.reasons[i] = [r.check for r in reasons]
                    texts = [r.text for r in reasons]
                    source = chunk.sources[position]
                    out.rejected[i] = quarantine_line("tweet", texts, source, record, original)
            lines = list(compress(lines, out.passed))
        # Rows that passed are valid UTF-8 (the gate checks it); an ASCII row's size is its length.
        out.csv = "".join(lines).encode("utf-8")
        out.csv_sizes = [len(x) if x.isascii() else len(x.encode("utf-8")) for x in lines]


def _take_document(doc: Document, chunk: Chunk, out: UnitResult) -> None:
    """Count a document; quarantine it whole, its API errors and its non-object posts; add its
    posts to the chunk."""
    out.pages += 1
    if doc.page is None:
        _quarantine_page(doc, out)
        return
    page = doc.page
    for error in page.errors:
        out.api_errors += 1
        title = error.get("title", "") if isinstance(error, dict) else ""
        detail = error.get("detail", "") if isinstance(error, dict) else ""
        reason = f"api_error: {title}: {detail}"
        out.early_lines.append(quarantine_line("api_error", [reason], doc.source, error))
    out.tweets_in += len(page.posts)
    positions = page.object_positions()
    if len(positions) < len(page.posts):
        _quarantine_non_objects(doc.source, page, set(positions), out)
    chunk.add(doc.source, page, positions)


def _quarantine_non_objects(
    source: str, page: ResponsePage, objects: set[int], out: UnitResult
) -> None:
    for index, item in enumerate(page.posts):
        if index in objects:
            continue
        out.not_objects += 1
        out.count("record:not_an_object")
        reason = f"record: not a post object (a JSON {json_kind(item)})"
        record, original = page.item(index)
        out.early_lines.append(quarantine_line("tweet", [reason], source, record, original))


def _quarantine_page(doc: Document, out: UnitResult) -> None:
    problem = doc.problem
    assert problem is not None  # a document has a page or a problem
    out.pages_quarantined += 1
    out.count(f"page:{problem.check}")
    line = quarantine_line("page", [problem.message], doc.source, doc.record, lambda: doc.body)
    out.early_lines.append(line)
