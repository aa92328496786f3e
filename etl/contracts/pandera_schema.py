"""The Pandera gate of a contract: the schema :func:`pandera_schema` builds from a
:class:`~etl.contracts.model.ContractSpec`, and its checks.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl.contracts.formats import TimestampFormat
from etl.contracts.model import JSON_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import pandera.pandas as pa

    from etl.contracts.model import ColumnSpec, ContractSpec

# --- the Pandera gate ------------------------------------------------------------------------
# The gated frame is the CSV as it will be published, so what passes the gate is what consumers
# read: integer columns are Int64, everything else text whose logical type is a check. A value
# whose JSON type is not the column's never becomes text: it stays a Mistyped cell, which the
# gate rejects.


@dataclass(frozen=True)
class Mistyped:
    """A cell of the gated frame whose source value has another JSON type than the column's
    logical type says (``text`` sent as an object, a count as a string, an id as a number, a
    list where an object belongs). It is never converted: the gate's ``json_type`` check rejects
    the row, and the cell is never written.

    Attributes:
        kind: the JSON type the value came as (``object``, ``array``, ``string``, ``number``,
            ``boolean``).
        text: the value's JSON text, for the rejection reason.
    """

    kind: str
    text: str

    def __str__(self) -> str:
        return f"a JSON {self.kind}: {self.text}"


def _values(series: pd.Series) -> list[str]:
    # Iterating a pandas string column boxes every value; its object array does not.
    values: list[str] = series.to_numpy(dtype=object).tolist()
    return values


def _by_unique(series: pd.Series, test: Callable[[str], bool]) -> pd.Series:
    """Apply a per-value test once per distinct value: list columns repeat ``[]`` a lot."""
    import pandas as pd

    values = _values(series)
    distinct = set(values)
    if len(distinct) * 2 > len(values):  # mostly distinct (ids): the lookup would not pay
        return pd.Series([test(v) for v in values], index=series.index, dtype=bool)
    verdicts = {value: test(value) for value in distinct}
    return pd.Series([verdicts[v] for v in values], index=series.index, dtype=bool)


def _encodable(series: pd.Series) -> pd.Series:
    import pandas as pd

    # One encode of the whole column is the fast path; only a column holding a lone surrogate
    # (JSON can carry "\ud800") is checked value by value.
    try:
        "".join(_values(series)).encode("utf-8")
    except UnicodeEncodeError:
        return _by_unique(series, _is_utf8)
    return pd.Series(True, index=series.index)


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The JSON grammar of an array of strings, exactly (RFC 8259: whitespace is space, tab, CR, LF;
# a string holds no raw control character). Matching it is several times faster than json.loads.
_JSON_WS = r"[ \t\n\r]*"
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_JSON_STRING_ARRAY = re.compile(
    rf"{_JSON_WS}\[{_JSON_WS}(?:{_JSON_STRING}(?:{_JSON_WS},{_JSON_WS}{_JSON_STRING})*{_JSON_WS})?\]{_JSON_WS}"
)
# An array of objects whose keys and values are all strings ({"type": ..., "id": ...}): matching
# it proves the text is a JSON array of objects; anything else is left to json.loads.
_JSON_PAIR = rf"{_JSON_STRING}{_JSON_WS}:{_JSON_WS}{_JSON_STRING}"
_JSON_FLAT_OBJECT = (
    rf"\{{{_JSON_WS}(?:{_JSON_PAIR}(?:{_JSON_WS},{_JSON_WS}{_JSON_PAIR})*{_JSON_WS})?\}}"
)
_JSON_FLAT_OBJECT_ARRAY = re.compile(
    rf"{_JSON_WS}\[{_JSON_WS}(?:{_JSON_FLAT_OBJECT}(?:{_JSON_WS},{_JSON_WS}{_JSON_FLAT_OBJECT})*{_JSON_WS})?\]{_JSON_WS}"
)
_ITEM_TESTS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _json_array_of(items_type: str | None) -> Callable[[str], bool]:
    if items_type == "string":
        return lambda text: _JSON_STRING_ARRAY.fullmatch(text) is not None
    item_test = _ITEM_TESTS.get(items_type or "", lambda v: True)

    def is_array(text: str) -> bool:
        if items_type == "object" and _JSON_FLAT_OBJECT_ARRAY.fullmatch(text):
            return True
        try:
            value = json.loads(text)
        except ValueError:
            return False
        return isinstance(value, list) and all(item_test(v) for v in value)

    return is_array


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# A pattern made only of these never matches a line feed: no ".", "\s", negated class, control
# character or flag; escapes are \d, \w or a punctuation character standing for itself.
_NEWLINE_FREE = re.compile(r"(?:[A-Za-z0-9_{},|()\[\]*+?: \-]|\\[dw]|\\[!-/:-@\[-`{-~])*")


@functools.cache
def _column_regex(regex: re.Pattern[str]) -> re.Pattern[str] | None:
    """A regex that fullmatches the values joined by line feeds exactly when each value
    fullmatches ``regex``; None when the pattern could match a line feed, which would let a match
    straddle two values."""
    body = regex.pattern.removeprefix("^").removesuffix("$")
    if regex.flags != re.UNICODE or "(?" in body.replace("(?:", ""):
        return None
    if not _NEWLINE_FREE.fullmatch(body):
        return None
    return re.compile(f"(?:{body})(?:\n(?:{body}))*")


def _all_match(column: re.Pattern[str], separator: str, values: list[Any]) -> bool:
    """Whether ``column`` fullmatches the values joined by ``separator``, which no value holds.
    False when some value is not text: the caller then judges value by value."""
    try:
        joined = separator.join(values)
    except TypeError:
        return False
    return joined.count(separator) == len(values) - 1 and column.fullmatch(joined) is not None


def every_value_matches(regex: re.Pattern[str], values: list[Any]) -> bool:
    """Whether every value is text that ``regex`` fully matches, tested in one match over the
    whole column where the pattern allows it (see :func:`_column_regex`).

    Args:
        regex: the pattern.
        values: the column's values.

    Returns:
        True when all match; False when some value does not, or is not text.
    """
    if _column_matches(regex, values):
        return True
    match = regex.fullmatch
    return all(type(v) is str and match(v) is not None for v in values)


def _column_matches(regex: re.Pattern[str], values: list[Any]) -> bool:
    """The fast path: one match over the values joined by line feeds proves that each value
    matches; False says only that the values must be judged one by one."""
    column = _column_regex(regex)
    return column is not None and bool(values) and _all_match(column, "\n", values)


def _fullmatches(regex: re.Pattern[str], series: pd.Series) -> pd.Series:
    import pandas as pd

    values = _values(series)
    # Almost every column is valid: one match over the whole column proves it, at a fraction of
    # a match per value. A value holding a line feed, or any failure, goes value by value.
    if _column_matches(regex, values):
        return pd.Series(True, index=series.index, dtype=bool)
    # A plain loop over the values: twice as fast as Series.str.fullmatch on python strings.
    match = regex.fullmatch
    hits = [match(v) is not None for v in values]
    return pd.Series(hits, index=series.index, dtype=bool)


def _fullmatch_check(pattern: str, name: str, error: str) -> pa.Check:
    regex = re.compile(pattern)
    return _check(lambda s: _fullmatches(regex, s), name=name, error=error)


def _check(test: Callable[[pd.Series], Any], name: str, error: str) -> pa.Check:
    """A check on a column's values; a Mistyped cell is the ``json_type`` check's to reject, so
    the test only ever sees the values that have the column's type."""
    import pandera.pandas as pa

    return pa.Check(_typed_only(test), name=name, error=error)


def _typed_only(test: Callable[[pd.Series], Any]) -> Callable[[pd.Series], Any]:
    import pandas as pd

    def run(series: pd.Series) -> Any:
        # A column holding a Mistyped cell is the only one built with the object dtype.
        if series.dtype != object:
            return test(series)
        typed = series.map(_not_mistyped).astype(bool)
        verdict = pd.Series(True, index=series.index, dtype=bool)
        if typed.any():
            values = series[typed]
            if all(isinstance(v, str) for v in values):  # else the ints of an integer column
                values = values.astype("str")
            verdict[typed] = test(values)
        return verdict

    return run


def _not_mistyped(value: Any) -> bool:
    return not isinstance(value, Mistyped)


def _json_type_check(col: ColumnSpec) -> pa.Check:
    import pandera.pandas as pa

    def json_typed(series: pd.Series) -> Any:
        if series.dtype != object:
            return True  # a str or Int64 column holds no Mistyped cell
        return series.map(_not_mistyped).astype(bool)

    json_type = JSON_TYPES.get(col.logical_type, col.logical_type)
    return pa.Check(json_typed, name="json_type", error=f"json_type {json_type}")


def _finite_numbers(series: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    return pd.Series(np.isfinite(numbers.to_numpy()), index=series.index, dtype=bool)


def _type_checks(col: ColumnSpec) -> list[pa.Check]:
    import pandas as pd

    kind = col.logical_type
    if kind == "number":
        # JSON has no infinite numbers: 1e400 is out of range, not infinity.
        return [_check(_finite_numbers, "number", "number")]
    if kind == "boolean":
        return [_check(lambda s: s.isin(["true", "false"]), "isin", "boolean true/false")]
    if kind in ("timestamp", "date"):
        fmt = TimestampFormat.parse(col.format) if col.format else None
        strp = fmt.strptime if fmt else "ISO8601"
        rx = fmt.pattern.pattern if fmt else r"[0-9]{4}-[0-9]{2}-[0-9]{2}.*"

        shape = re.compile(rx)
        # The shape check pins the exact layout, so an ISO-shaped format may use pandas' ISO 8601
        # parser (C, ~20x faster than strptime) for the calendar check.
        parse_as = "ISO8601" if strp.startswith("%Y-%m-%d") else strp

        def valid_time(s: pd.Series) -> pd.Series:
            parsed = pd.to_datetime(s, format=parse_as, errors="coerce", utc=True, cache=False)
            return _fullmatches(shape, s) & pd.Series(parsed.notna(), index=s.index)

        return [_check(valid_time, "timestamp", f"timestamp {col.format or 'ISO'}")]
    if kind in ("array", "object"):
        is_json = _json_array_of(col.items_type) if kind == "array" else _json_object
        name = f"json_{kind}" + (f" of {col.items_type}" if col.items_type else "")
        if col.items_type == "string":
            return [_check(lambda s: _string_arrays(s, is_json), "json_array", name)]
        return [_check(lambda s: _by_unique(s, is_json), f"json_{kind}", name)]
    return []


# Arrays of word strings written the way json.dumps writes them (``[]``, ``["a", "b"]``), one
# after another, separated by NUL: a strict subset of the JSON grammar (no value can hold a NUL
# outside a string, and none of these strings holds one), simple enough to match in one pass.
_PLAIN_STRING_ARRAY = r'\[(?:"\w*"(?:, "\w*")*)?\]'
_PLAIN_STRING_ARRAYS = re.compile(rf"{_PLAIN_STRING_ARRAY}(?:\x00{_PLAIN_STRING_ARRAY})*")


def _string_arrays(series: pd.Series, is_json: Callable[[str], bool]) -> pd.Series:
    import pandas as pd

    # Ids, tags and names are almost always plain words: one match over the whole column proves
    # every value valid; otherwise each distinct value is parsed by the full grammar.
    values = _values(series)
    if values and _all_match(_PLAIN_STRING_ARRAYS, "\x00", values):
        return pd.Series(True, index=series.index, dtype=bool)
    return _by_unique(series, is_json)


# An empty JSON array among values joined by NUL (which no JSON text holds outside a string).
_EMPTY_ARRAY = re.compile(r"(?:^|\x00)[ \t\n\r]*\[[ \t\n\r]*\][ \t\n\r]*(?=\x00|$)")


def _item_count_check(col: ColumnSpec) -> pa.Check:
    import pandas as pd

    low, high, unique = col.min_items, col.max_items, col.unique_items

    def items_ok(text: str) -> bool:
        try:
            items = json.loads(text)
        except ValueError:
            return True  # not an array: the type check rejects it
        if not isinstance(items, list):
            return True
        if unique and len({json.dumps(i, sort_keys=True) for i in items}) != len(items):
            return False
        return (low is None or len(items) >= low) and (high is None or len(items) <= high)

    def counts(series: pd.Series) -> pd.Series:
        values = _values(series)
        # The usual contract, "at least one item": one search proves no value is an empty array.
        if (low or 0) <= 1 and high is None and not unique:
            if low is None or low < 1 or not _EMPTY_ARRAY.search("\x00".join(values)):
                return pd.Series(True, index=series.index, dtype=bool)
        return _by_unique(series, items_ok)

    bounds = f"{low or 0}..{'' if high is None else high}"
    error = f"item_count {bounds}" + (", unique items" if unique else "")
    return _check(counts, name="item_count", error=error)


def _value_checks(col: ColumnSpec) -> list[pa.Check]:
    import pandas as pd

    checks: list[pa.Check] = []
    if col.pattern is not None:
        checks.append(_fullmatch_check(col.pattern, name="pattern", error=f"pattern {col.pattern}"))
    if col.min_length is not None or col.max_length is not None:
        low_len, high_len = col.min_length, col.max_length
        checks.append(
            _check(
                lambda s: s.str.len().between(low_len or 0, high_len or float("inf")),
                name="str_length",
                error=f"length {col.min_length or 0}..{col.max_length or ''}",
            )
        )
    if col.min_items is not None or col.max_items is not None or col.unique_items:
        checks.append(_item_count_check(col))
    # A value that is not a number fails the type check; the bounds only judge numbers.
    if col.minimum is not None:
        low = col.minimum
        checks.append(
            _check(
                lambda s: ~(pd.to_numeric(s, errors="coerce") < low), "minimum", f"minimum {low}"
            )
        )
    if col.maximum is not None:
        high = col.maximum
        checks.append(
            _check(
                lambda s: ~(pd.to_numeric(s, errors="coerce") > high), "maximum", f"maximum {high}"
            )
        )
    if col.allowed_values is not None:
        allowed = list(col.allowed_values)
        checks.append(_check(lambda s: s.isin(allowed), "isin", f"allowed values {allowed}"))
    return checks


def pandera_schema(spec: ContractSpec, *, json_types: bool = True) -> pa.DataFrameSchema:
    """Build the Pandera gate for a contract.

    The frame it validates is the CSV as it will be published, empty cells being missing values,
    except that a source value of another JSON type than the column's logical type is a
    :class:`Mistyped` cell (in a column of the object dtype), which each column's ``json_type``
    check rejects; the other checks judge only the values of the column's type.
    ``integer`` columns are nullable ``Int64`` (the contract's int64), coerced from whatever the
    frame holds: a value that is not a 64-bit integer fails the coercion, row by row. Every other
    column is text (pandas ``str``) and its logical type is a check on the text: ``number``,
    ``boolean`` ``true``/``false``, ``timestamp`` in the contract's ``format``, ``array`` a JSON
    array whose items have the items' logical type, ``object`` a JSON object; text must be
    encodable as UTF-8 (the CSV's encoding). From each column's spec besides: ``required`` makes
    it non-nullable, ``unique`` unique, and ``pattern`` (full match), ``minimum``/``maximum``,
    ``minLength``/``maxLength``, ``minItems``/``maxItems``/``uniqueItems`` (arrays) and
    ``validValues`` a check each. Every column must be present. Dataset-level
    ``duplicateValues`` rules over several columns become a unique constraint.

    Args:
        spec: the contract.
        json_types: include the ``json_type`` checks. Without them the schema is for frames
            known to hold no Mistyped cell, on which those checks cannot fail: Pandera spends
            about a millisecond on each check it runs, whatever the check does.

    Returns:
        A schema to run with ``validate(frame, lazy=True)``.
    """
    import pandera.pandas as pa

    columns = {col.name: _column_schema(col, json_types) for col in spec.columns}
    unique: list[str] | None = None
    for rule in spec.quality:
        props = list(rule.arguments.get("properties") or [])
        if rule.metric == "duplicateValues" and len(props) > 1:
            unique = props
    return pa.DataFrameSchema(columns, unique=unique, name=spec.name, ordered=False)


def _column_schema(col: ColumnSpec, json_types: bool) -> pa.Column:
    import pandas as pd
    import pandera.pandas as pa

    common: dict[str, Any] = {
        "nullable": not col.required,
        "unique": col.unique,
        "required": True,
        "description": col.description or None,
    }
    typed = [_json_type_check(col)] if json_types else []
    if col.logical_type == "integer":
        checks = [*typed, *_value_checks(col)]
        return pa.Column(pd.Int64Dtype(), checks=checks, coerce=True, **common)
    checks = [
        *typed,
        _check(_encodable, name="utf8", error="utf8 (no lone surrogates)"),
        *_type_checks(col),
        *_value_checks(col),
    ]
    return pa.Column(str, checks=checks, **common)
