"""Fast paths of reading pages and building columns, each swappable for the reference.

* :class:`FastDecoder`: msgspec decodes a page into structs holding only the post fields the
  contract reads, skipping everything else without building Python objects for it. A page it
  cannot take (JSON Lines, a BOM, UTF-16, invalid UTF-8, a lone surrogate, NaN, a number out of
  its range, deep nesting, a post or envelope field of an unexpected JSON type) goes to
  :func:`etl.steps.transform.pages.read_documents`, whose behaviour is the reference.
* :data:`FAST_COLUMN_OPS`: the column operations over whole columns, with ``map`` and type-set
  checks; only values of an unexpected type take the per-value reference conversion.

Both only ever give the same rows sooner (tests/unit/test_transform_parts.py).
"""

from __future__ import annotations

import json
import keyword
import re
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

import msgspec

from etl.contracts.pandera_schema import Mistyped, every_value_matches
from etl.steps.transform.columns import ColumnOps
from etl.steps.transform.pages import NOT_RESPONSE, Document, PageProblem, users_by_id
from etl.steps.transform.values import Column, follow, list_text
from etl.steps.transform.values import json_text as reference_json_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from etl.contracts.formats import TimestampFormat


# --- pages ---------------------------------------------------------------------------------------
class FastDecoder:
    """Reads a body with msgspec into a :class:`TypedPage`, or declines (returns None).

    Args:
        keys: the top-level post fields the contract reads.
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

    def __call__(self, source: str, body: bytes) -> Document | None:
        """The document of ``body``, or None when the reference path must read it."""
        if self._decoder is None:
            return None
        try:
            page = self._decoder.decode(body)
        # Not only DecodeError: msgspec raises UnicodeDecodeError on invalid UTF-8 and
        # RecursionError on deep nesting. Whatever it raises, the reference path decides.
        except Exception:
            return None
        problem = _typed_problem(page)
        if problem is not None:
            return Document(source, body, problem=problem, record=json_or_text(body))
        return Document(source, body, page=TypedPage(page, body, self.post))


def _typed_problem(page: Any) -> PageProblem | None:
    """:func:`~etl.steps.transform.pages.response_problem` for a page msgspec read (its types
    already rule out the other problems)."""
    unset = msgspec.UNSET
    if page.data is unset and page.includes is unset and page.meta is unset:
        if page.errors is unset:
            hint = f" (a Problem: {page.title})" if page.title is not unset else ""
            message = f"not an X API v2 response: none of data, includes, meta, errors{hint}"
            return PageProblem(NOT_RESPONSE, message)
    return None


class TypedPage:
    """A response msgspec read: its posts are structs (every one an object)."""

    def __init__(self, page: Any, body: bytes, post_type: type) -> None:
        data, errors, includes = page.data, page.errors, page.includes
        self.posts: list[Any] = [data] if isinstance(data, post_type) else data or []
        self.errors: list[Any] = errors if isinstance(errors, list) else []
        users = includes.users if includes and includes is not msgspec.UNSET else None
        self.users = users_by_id(users)
        self._body = body
        self._data: Any = None  # data as json reads it, parsed again when a post is rejected

    def object_positions(self) -> range:
        """Every position: msgspec only takes pages whose posts are all objects."""
        return range(len(self.posts))

    def values(self, key: str, positions: Sequence[int]) -> Iterator[Any]:
        """Post field ``key`` of every post (``positions`` are all of them)."""
        return map(attrgetter(key), self.posts)

    def item(self, index: int) -> tuple[Any, Callable[[], bytes | None]]:
        """``data[index]`` as ``json`` reads it; its bytes are not needed (msgspec took only
        valid UTF-8 and finite numbers, which a quarantine line holds as they are)."""
        if self._data is None:
            self._data = _typed_data(self._body)
        data = self._data
        return (data[index] if isinstance(data, list) else data), _no_bytes


def _no_bytes() -> None:
    return None


def json_or_text(body: bytes) -> Any:
    """A body msgspec read, as ``json`` reads it; its text when ``json`` cannot (a number with
    more digits than Python converts, nesting deeper than its parser goes)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "surrogateescape")


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
        return json_or_text(raw) if not isinstance(items, list) else list(map(_raw_item, items))


def _raw_item(raw: msgspec.Raw) -> Any:
    return json_or_text(bytes(raw))


# --- columns -------------------------------------------------------------------------------------
_NONE = type(None)
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_BOOLEAN_TEXT = {True: "true", False: "false"}


def json_text(value: Any) -> str:
    """:func:`etl.steps.transform.values.json_text`, sooner for lists of plain strings."""
    # Lists of plain strings (ids, tags, URLs) are most of what is encoded: when no item needs
    # escaping, join them the way the encoder would, at a fraction of its cost.
    if type(value) is list and all(type(v) is str for v in value):
        joined = '", "'.join(value)
        if not _NEEDS_ESCAPE.search(joined):
            return f'["{joined}"]' if value else "[]"
    return reference_json_text(value)


def _json_texts(lists: list[list[Any]]) -> list[str | Mistyped]:
    """Each list as a JSON array cell; lists of plain strings (tags, names, URLs) are checked
    for characters needing an escape in one pass over all of them."""
    flat = [v for values in lists for v in values]
    types = set(map(type, flat))
    if types <= {str} and not _NEEDS_ESCAPE.search("".join(flat)):
        return ['["' + '", "'.join(values) + '"]' if values else "[]" for values in lists]
    if Mistyped in types:
        return [list_text(values) for values in lists]
    return [json_text(values) if values else "[]" for values in lists]


def _convert_all(
    values: list[Any], kind: str, convert: Callable[[Any], Any], fmt: TimestampFormat | None
) -> Column:
    # Fast paths for the types the API is documented to send; anything else, value by value.
    if fmt is not None and every_value_matches(fmt.pattern, values):
        return values  # the API's own format: nothing to convert
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


def _path_values(values: list[Any], steps: tuple[str | int, ...]) -> list[Any]:
    # The common shapes in one comprehension each; anything unusual (absent, or a step of the
    # wrong JSON type) takes follow, which says which.
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]
        return [v.get(key) if type(v) is dict else follow(v, steps) for v in values]
    if len(steps) == 2 and steps[0] == 0 and isinstance(steps[1], str):  # referenced_tweets[0].id
        key = steps[1]
        return [
            v[0].get(key) if type(v) is list and v and type(v[0]) is dict else follow(v, steps)
            for v in values
        ]
    return [follow(v, steps) for v in values]


FAST_COLUMN_OPS = ColumnOps(_path_values, _convert_all, _json_texts)
