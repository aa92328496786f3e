"""Posts to contract columns: which post fields each column reads, and how it is built.

A column whose ``transformSourceObjects`` is a plain path (``data[].public_metrics.like_count``,
``data[].referenced_tweets[0].id``) is read from that path, coalescing several paths in order;
``text``, the entity lists, the author columns and ``source_page`` follow the ``transformLogic``
the contract states for them.

Columns are built a chunk of posts at a time through :class:`ColumnOps`: the reference
operations here go value by value; :data:`etl.steps.transform.fast.FAST_COLUMN_OPS` does the
same over whole columns, and must give the same cells (tested).
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from etl.contracts.formats import TimestampFormat
from etl.steps.transform.values import (
    CONVERTERS,
    Column,
    as_string,
    follow,
    list_text,
    mistyped,
    source_path,
    timestamp_converter,
    unescape,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from etl.contracts.model import ColumnSpec, ContractSpec
    from etl.contracts.pandera_schema import Mistyped
    from etl.steps.transform.pages import ResponsePage


class ColumnOps(NamedTuple):
    """The operations column building spends its time in, swappable as one.

    Attributes:
        path_values: ``(values, steps)``: the value at ``steps`` below each value (see
            :func:`~etl.steps.transform.values.follow`).
        convert: ``(values, logical type, converter, timestamp format)``: each value converted.
        json_texts: lists of item values, each as a JSON array cell (see
            :func:`~etl.steps.transform.values.list_text`).
    """

    path_values: Callable[[list[Any], tuple[str | int, ...]], list[Any]]
    convert: Callable[[list[Any], str, Callable[[Any], Any], TimestampFormat | None], Column]
    json_texts: Callable[[list[list[Any]]], list[str | Mistyped]]


def _follow_each(values: list[Any], steps: tuple[str | int, ...]) -> list[Any]:
    return [follow(v, steps) for v in values]


def _convert_each(
    values: list[Any], kind: str, convert: Callable[[Any], Any], fmt: TimestampFormat | None
) -> Column:
    return list(map(convert, values))


def _list_texts(lists: list[list[Any]]) -> list[str | Mistyped]:
    return [list_text(values) for values in lists]


REFERENCE_COLUMN_OPS = ColumnOps(_follow_each, _convert_each, _list_texts)


class Chunk:
    """The posts waiting for the gate, column by column: for each top-level post field the
    contract reads, its values; and per post its author (from includes.users), its source and
    where to find its original JSON for the quarantine."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.fields: dict[str, list[Any]] = {k: [] for k in keys}
        self.authors: list[Any] = []
        self.sources: list[str] = []
        self.records: list[tuple[ResponsePage, int]] = []  # a post's page and place in data
        self._entities: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.sources)

    def add(self, source: str, page: ResponsePage, positions: Sequence[int]) -> None:
        """Add the posts at ``positions`` of a page's ``data`` (objects only)."""
        for key, values in self.fields.items():
            values.extend(page.values(key, positions))
        n = len(positions)
        self.sources.extend(repeat(source, n))
        users = page.users
        if users:
            ids = self.fields["author_id"][-n:] if n else []
            self.authors.extend(users.get(a if type(a) is str else str(a)) for a in ids)
        else:
            self.authors.extend(repeat(None, n))
        self.records.extend(zip(repeat(page), positions))

    def record(self, position: int) -> tuple[Any, Callable[[], bytes | None]]:
        """The original JSON of the post at ``position``, and how to get its original bytes
        (kept when the JSON cannot be written as it came)."""
        page, index = self.records[position]
        return page.item(index)

    def entities(self) -> list[Any]:
        """Each post's entities: note_tweet's for a long post (the top-level ones only cover the
        truncated text), else the top-level ones. Computed once for the three entity columns."""
        if self._entities is None:
            self._entities = [
                n["entities"] if type(n) is dict and n.get("entities") is not None else e
                for n, e in zip(self.fields["note_tweet"], self.fields["entities"], strict=True)
            ]
        return self._entities


def _path_column(col: ColumnSpec) -> tuple[set[str], Callable[[Chunk, ColumnOps], Column]]:
    paths = [source_path(p) for p in col.sources]
    if not paths or any(p is None for p in paths):
        raise KeyError(col.name)
    steps = [p for p in paths if p is not None]
    fmt = None
    if col.logical_type in ("timestamp", "date"):
        fmt = TimestampFormat.parse(col.format) if col.format else None
        convert = timestamp_converter(fmt)
    else:
        convert = CONVERTERS.get(col.logical_type, as_string)
    kind = col.logical_type

    def values_at(chunk: Chunk, ops: ColumnOps, path: tuple[str | int, ...]) -> list[Any]:
        base = chunk.fields[str(path[0])]
        return ops.path_values(base, path[1:]) if len(path) > 1 else base

    def build(chunk: Chunk, ops: ColumnOps) -> Column:
        values = values_at(chunk, ops, steps[0])
        for more in steps[1:]:  # coalesce: the first path that has a value
            values = [
                v if v is not None else w
                for v, w in zip(values, values_at(chunk, ops, more), strict=True)
            ]
        return ops.convert(values, kind, convert, fmt)

    return {str(s[0]) for s in steps}, build


def _text_column(chunk: Chunk, ops: ColumnOps) -> Column:
    """``note_tweet.text`` when present, else ``text``, with exactly ``&amp; &lt; &gt;``
    unescaped: the only entities X escapes (``html.unescape`` would change ``&copy;``)."""
    return [
        (unescape(t) if type(t) is str else as_string(t)) if n is None else _note_text(n, t)
        for n, t in zip(chunk.fields["note_tweet"], chunk.fields["text"], strict=True)
    ]


def _note_text(note: Any, text: Any) -> Any:
    if type(note) is not dict:
        return mistyped(note)
    full = note.get("text")
    if full is None:
        return unescape(text) if type(text) is str else as_string(text)
    return unescape(full) if type(full) is str else mistyped(full)


def _entity_column(
    kind: str, key: str, fallback: str | None = None
) -> Callable[[Chunk, ColumnOps], Column]:
    def build(chunk: Chunk, ops: ColumnOps) -> Column:
        column: Column = []
        lists: list[list[Any]] = []  # the item values of each non-empty list, in row order
        where: list[int] = []
        for entities in chunk.entities():
            items = entities.get(kind) if type(entities) is dict else follow(entities, (kind,))
            if items and type(items) is list:
                where.append(len(column))
                column.append(None)
                if fallback is None:
                    lists.append([i.get(key) if type(i) is dict else mistyped(i) for i in items])
                else:
                    lists.append([_entity_value(i, key, fallback) for i in items])
            elif items is None or type(items) is list:  # none sent
                column.append("[]")
            else:  # not a list (or entities not an object): the gate rejects it
                column.append(mistyped(items))
        for position, text in zip(where, ops.json_texts(lists), strict=True):
            column[position] = text
        return column

    return build


def _entity_value(item: Any, key: str, fallback: str | None) -> Any:
    if type(item) is not dict:
        return mistyped(item)
    value = item.get(key)
    if value is None and fallback is not None:
        value = item.get(fallback)
    return value


def _author_column(key: str) -> Callable[[Chunk, ColumnOps], Column]:
    def build(chunk: Chunk, ops: ColumnOps) -> Column:
        return [None if u is None else as_string(u.get(key)) for u in chunk.authors]

    return build


def _source_column(chunk: Chunk, ops: ColumnOps) -> Column:
    return cast("Column", chunk.sources)


# Columns whose contract transformLogic is more than reading a path, with the top-level post
# fields they read.
_SPECIAL_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[Chunk, ColumnOps], Column]]] = {
    "text": (("note_tweet", "text"), _text_column),
    "hashtags": (("note_tweet", "entities"), _entity_column("hashtags", "tag")),
    "mentions": (("note_tweet", "entities"), _entity_column("mentions", "username")),
    "urls": (("note_tweet", "entities"), _entity_column("urls", "expanded_url", fallback="url")),
    "author_username": (("author_id",), _author_column("username")),
    "author_name": (("author_id",), _author_column("name")),
    "source_page": ((), _source_column),
}


class Columns:
    """How each contract column is built from a chunk, and which post fields that needs.

    Attributes:
        names: the columns the transform builds, in contract order.
        kinds: their logical types.
        unproduced: contract columns with no source the transform can read (fatal).
        keys: the top-level post fields the columns read.
    """

    def __init__(self, spec: ContractSpec, ops: ColumnOps = REFERENCE_COLUMN_OPS) -> None:
        self.ops = ops
        self.names: list[str] = []
        self.kinds: list[str] = []
        self.unproduced: list[str] = []
        self._builders: list[Callable[[Chunk, ColumnOps], Column]] = []
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
            self._builders.append(build)
        self.keys = tuple(sorted(keys))

    def build(self, chunk: Chunk) -> list[Column]:
        """Every column the transform builds, for the posts of ``chunk``."""
        return [build(chunk, self.ops) for build in self._builders]
