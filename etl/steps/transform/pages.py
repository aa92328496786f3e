"""Reading raw bodies into response documents: the reference path, with ``json``.

A body is one JSON response, or JSON Lines with one response per line. Any body ``json.loads``
reads (what the extractor lands) is processed: UTF-8 with or without a BOM, UTF-16 or UTF-32, a
lone surrogate, invalid UTF-8 inside a string. A body that gives no response is a
:class:`Document` with a :class:`PageProblem`; the unit quarantines it whole.

A faster reader (:class:`etl.steps.transform.fast.FastDecoder`) may be tried first on each
document; whatever it declines, this module decides, and the faster reader must give the same
documents (tested).
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

_RESPONSE_KEYS = frozenset(("data", "includes", "meta", "errors"))
NOT_RESPONSE = "not_an_X_API_v2_response"


@dataclass(frozen=True)
class PageProblem:
    """Why a body gives no response document: a stable check key (``page:<check>`` in the
    report) and the message quoted in the quarantine line."""

    check: str
    message: str


class ResponsePage(Protocol):
    """A response document's posts, errors and users, however it was read."""

    posts: list[Any]
    errors: list[Any]
    users: dict[str, Any]

    def object_positions(self) -> Sequence[int]:
        """Positions in :attr:`posts` of the posts that are objects (the others are
        quarantined as they are)."""
        ...

    def values(self, key: str, positions: Sequence[int]) -> Iterator[Any] | list[Any]:
        """The value of post field ``key`` (None when absent) of each post at ``positions``."""
        ...

    def item(self, index: int) -> tuple[Any, Callable[[], bytes | None]]:
        """``data[index]`` as ``json`` reads it, and how to get its original bytes."""
        ...


@dataclass(frozen=True)
class Document:
    """One response document read from a body, or why the body gave none.

    Attributes:
        source: the raw object's name (``:<line>`` appended for a JSON Lines line).
        body: the bytes the document was read from.
        page: the response; None when there is a problem.
        problem: why the body gives no response.
        record: what the quarantine keeps of a body with a problem: the JSON value when it
            parsed, else the body as text (each undecodable byte escaped).
    """

    source: str
    body: bytes
    page: ResponsePage | None = None
    problem: PageProblem | None = None
    record: Any = None


def read_documents(
    source: str,
    body: bytes,
    fast: Callable[[str, bytes], Document | None] | None = None,
    lines: bool = True,
) -> Iterator[Document]:
    """The response documents of one body.

    Args:
        source: the raw object's name, quoted in rows and quarantine lines.
        body: one JSON document, or (``lines``) JSON Lines with one response per line.
        fast: a faster reader tried first on each document; None when it declines.
        lines: whether a body of several documents may be JSON Lines.

    Yields:
        One document per response (or per unreadable body or line).
    """
    if fast is not None:
        doc = fast(source, body)
        if doc is not None:
            yield doc
            return
    if not body.strip():
        yield _unreadable(source, body, PageProblem("empty_body", "empty body"))
        return
    text = BodyText(body)
    try:
        value = json.loads(text.text)
    except json.JSONDecodeError as exc:
        # One line with more after its document is not JSON Lines, only invalid.
        if exc.msg != "Extra data" or not lines or "\n" not in text.text.strip():
            yield _unreadable(source, body, _unparsed(text, exc))
            return
    except (ValueError, RecursionError) as exc:  # too many digits, too deeply nested
        yield _unreadable(source, body, _unparsed(text, exc))
        return
    else:
        yield _response_document(source, body, value, text)
        return
    # JSON strings cannot hold a raw newline, so "\n" splits JSON Lines safely (splitlines would
    # also split on U+2028, which JSON strings may hold).
    for number, line in enumerate(text.text.split("\n"), 1):
        if line.strip():
            yield from read_documents(f"{source}:{number}", text.encode(line), fast, lines=False)


def _unreadable(source: str, body: bytes, problem: PageProblem) -> Document:
    record = body.decode("utf-8", "surrogateescape")  # the body as text, each bad byte escaped
    return Document(source, body, problem=problem, record=record)


def _response_document(source: str, body: bytes, value: Any, text: BodyText) -> Document:
    problem = response_problem(value)
    if problem is not None:
        return Document(source, body, problem=problem, record=value)
    return Document(source, body, page=ParsedPage(value, text))


def _unparsed(text: BodyText, exc: Exception) -> PageProblem:
    # Undecodable bytes are the likelier cause of a parse failure, and the clearer message.
    if text.error is not None:
        where = f"{text.error.reason} at byte {text.error.start}"
        return PageProblem("not_UTF-8", f"not UTF-8 ({where})")
    if isinstance(exc, RecursionError):
        return PageProblem("invalid_JSON", "invalid JSON: nested too deeply")
    return PageProblem("invalid_JSON", f"invalid JSON: {exc}")


_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def json_kind(value: Any) -> str:
    """The JSON type of a value ``json`` read (``number`` for int and float)."""
    return _JSON_KINDS.get(type(value), "number")


def response_problem(value: Any) -> PageProblem | None:
    """Why a parsed JSON value is not an X API v2 response; None when it is one."""
    what = "not an X API v2 response: "
    if not isinstance(value, dict):
        return PageProblem(NOT_RESPONSE, f"{what}a JSON {json_kind(value)}, not an object")
    if not value.keys() & _RESPONSE_KEYS:
        hint = f" (a Problem: {value.get('title')})" if "title" in value else ""
        return PageProblem(NOT_RESPONSE, f"{what}none of data, includes, meta, errors{hint}")
    data = value.get("data")
    if data is not None and not isinstance(data, list | dict):
        return PageProblem(NOT_RESPONSE, f"{what}data is a JSON {json_kind(data)}")
    errors = value.get("errors")
    if errors is not None and not isinstance(errors, list):
        return PageProblem(NOT_RESPONSE, f"{what}errors is a JSON {json_kind(errors)}")
    return None


def users_by_id(users: Any) -> dict[str, Any]:
    """``includes.users`` by id; empty when it is not a list of objects with ids."""
    # A malformed includes only costs the optional author columns, never the posts.
    if not isinstance(users, list):
        return {}
    return {str(u["id"]): u for u in users if isinstance(u, dict) and u.get("id") is not None}


class ParsedPage:
    """A response ``json`` read: its posts as dicts (``data`` that is one post is one item)."""

    def __init__(self, value: dict[str, Any], text: BodyText) -> None:
        data, errors, includes = (value.get(k) for k in ("data", "errors", "includes"))
        self.posts: list[Any] = [data] if isinstance(data, dict) else data or []
        self.errors: list[Any] = errors if isinstance(errors, list) else []
        self.users = users_by_id(includes.get("users") if isinstance(includes, dict) else None)
        self._text = text

    def object_positions(self) -> list[int]:
        """Positions of the posts that are objects."""
        return [i for i, post in enumerate(self.posts) if isinstance(post, dict)]

    def values(self, key: str, positions: Sequence[int]) -> list[Any]:
        """Post field ``key`` of each post at ``positions`` (objects)."""
        posts = self.posts
        return [posts[i].get(key) for i in positions]

    def item(self, index: int) -> tuple[Any, Callable[[], bytes | None]]:
        """``data[index]``, and how to get its original bytes."""
        return self.posts[index], functools.partial(self._text.item_bytes, index)


# --- a body's text, and the bytes each post came from ---------------------------------------------
_WS = re.compile(r"[ \t\n\r]*")  # JSON whitespace
_STRICT_JSON = json.JSONDecoder()


class BodyText:
    """A body as the reference path reads it: its text, and how a slice of the text gives back
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
