"""One source value to its CSV cell, per the contract: the reference conversions.

A column's logical type is also the JSON type its source must have. A value of another JSON type
is never converted: it becomes a :class:`~etl.contracts.model.Mistyped` cell, which the gate's
``json_type`` check rejects, quoting the value.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.contracts.pandera_schema import Mistyped
from etl.steps.transform.pages import json_kind

if TYPE_CHECKING:
    from collections.abc import Callable

    from etl.contracts.formats import TimestampFormat

Column = list[Any]  # CSV cells: text or None (empty); ints in integer columns
SHOWN = 80  # characters of an offending value quoted in a reason

_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps would build one per call
json_text: Callable[[Any], str] = _ENCODER.encode
"""A value as JSON text, as ``json.dumps(value, ensure_ascii=False)`` writes it."""


def mistyped(value: Any) -> Mistyped:
    """A value of the wrong JSON type, kept for the gate to reject (never converted)."""
    if type(value) is Mistyped:
        return value
    try:
        text = json_text(value)
    except (ValueError, RecursionError):  # nested too deeply to write: the kind says enough
        text = "…"
    return Mistyped(json_kind(value), text if len(text) <= SHOWN else text[:SHOWN] + "…")


def as_string(value: Any) -> str | Mistyped | None:
    """A string as it is; anything else but null is mistyped."""
    if value is None or type(value) is str:
        return value
    return mistyped(value)  # an id sent as a number, text as an object: the API says string


def _as_integer(value: Any) -> int | Mistyped | None:
    if value is None or type(value) is int:
        return value
    return mistyped(value)  # a count sent as a string, a float or a boolean


def _as_number(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is int:
        return repr(value)
    if type(value) is float:
        return repr(value) if math.isfinite(value) else json_text(value)  # the gate judges 1e400
    return mistyped(value)


def _as_boolean(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is bool:
        return "true" if value else "false"
    return mistyped(value)  # a flag sent as a string or a number


def _as_array(value: Any) -> str | Mistyped:
    if value is None:
        return "[]"
    if type(value) is list:
        return json_text(value)
    return mistyped(value)


def _as_object(value: Any) -> str | Mistyped | None:
    if value is None:
        return None
    if type(value) is dict:
        return json_text(value)
    return mistyped(value)


def timestamp_converter(fmt: TimestampFormat | None) -> Callable[[Any], Any]:
    """How one value becomes a time in the contract's format, in UTC.

    Args:
        fmt: the contract's format; None keeps strings as they are.

    Returns:
        The converter: a value already in the format stays; a time without a zone is
        ambiguous and kept as it is, for the gate to reject rather than guess.
    """

    def as_timestamp(value: Any) -> str | Mistyped | None:
        if type(value) is not str:
            return as_string(value)
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


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "array": _as_array,
    "object": _as_object,
}
"""The conversion of each logical type but timestamps (:func:`timestamp_converter`)."""


def list_text(values: list[Any]) -> str | Mistyped:
    """A list of item values as a JSON array; Mistyped when an item is (a hashtag sent as a
    bare string makes the cell Mistyped)."""
    bad = next((v for v in values if type(v) is Mistyped), None)
    if bad is not None:
        return bad
    return json_text(values) if values else "[]"


def unescape(text: str) -> str:
    """Undo X's escaping of ``& < >`` in one pass: ``&amp;lt;`` becomes ``&lt;``, not ``<``."""
    if "&" not in text:
        return text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def source_path(path: str) -> tuple[str | int, ...] | None:
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


def follow(value: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` below ``value``; None when a step is absent, a Mistyped when a
    step is of the wrong JSON type (``public_metrics`` sent as a list)."""
    if value is None:
        return None
    for step in steps:
        if isinstance(step, int):
            if type(value) is not list:
                return mistyped(value)
            value = value[step] if len(value) > step else None
        elif type(value) is dict:
            value = value.get(step)
        else:
            return mistyped(value)
        if value is None:
            return None
    return value
