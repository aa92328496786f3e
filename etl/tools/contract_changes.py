"""What a contract change means for consumers: every difference between two versions of a
contract, listed and classified (for ``tweetpipe contracts diff``, :mod:`etl.tools.contract_diff`).

The rules, in one sentence each (README "Changing a contract" has the table):

- **The type is the consumer's code, so any change to it is breaking, in either direction.** The
  type is: ``logicalType``, ``physicalType``, ``format``/timezone options, nullability
  (``required``), the closed value set (``validValues``), the array item type, the column's name
  and ``physicalName``. Widening int to string breaks every consumer that parses ints; an optional
  column that was required hands empty values to code that never checked for them; a new enum
  value falls through a consumer's exhaustive match.
- **Checks may loosen, never tighten.** Ranges, lengths, item counts, ``multipleOf``, ``pattern``,
  uniqueness and quality rules judge values; tightening one can reject data that passed before
  (stored partitions, the producer, the gate), loosening one cannot. A changed pattern counts as
  tighter, because whether one regular expression accepts everything another does is not
  decidable in general; a removed pattern is looser.
- **Columns:** removed or renamed is breaking; added is breaking when required (producers and old
  partitions lack it), not when optional. Moving a column is not: consumers read CSV by header.
- **Contracts and datasets:** a removed contract or schema object is breaking (unless the old
  contract's ``status`` was ``retired``); an added one is not. ``id``, ``name`` and ``servers``
  changes are breaking (consumers and lineage find the data by them); status ``retired`` is
  breaking. Descriptions, owners and other metadata are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from etl.contracts.model import QUALITY_OPERATORS
from etl.contracts.tree import allowed_values

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# Contract keys consumers and lineage find the data by; any other top-level key is metadata.
_CONTRACT_BREAKING_KEYS = {"id": "the contract id", "name": "the dataset name"}
_OBJECT_TYPE_KEYS = ("logicalType", "physicalType", "physicalName")
_PROPERTY_TYPE_KEYS = ("logicalType", "physicalType", "physicalName")
_HANDLED_PROPERTY_KEYS = {
    "name",
    "logicalType",
    "physicalType",
    "physicalName",
    "required",
    "unique",
    "primaryKey",
    "logicalTypeOptions",
    "quality",
    "properties",
    "items",
}
# Rule keys that change what a quality rule checks (the threshold is compared on its own).
_RULE_CHECK_KEYS = {"type", "metric", "unit", "arguments", "query", "engine", "implementation"}
_TYPE_OPTIONS = ("format", "timezone", "defaultTimezone")
_BOUND_OPTIONS = {
    "value": ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"),
    "length": ("minLength", None, "maxLength", None),
    "item count": ("minItems", None, "maxItems", None),
    "property count": ("minProperties", None, "maxProperties", None),
}


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract.

    Attributes:
        where: what changed: ``contract``, a dataset ``tweets`` or a column ``tweets.author_id``.
        kind: a stable code (``column-removed``, ``type-changed``, ``check-tightened``...).
        breaking: whether consumers or producers of the old contract can break.
        message: what changed and why it is (not) breaking.
        old: the old value (None when added).
        new: the new value (None when removed).
    """

    where: str
    kind: str
    breaking: bool
    message: str
    old: Any = None
    new: Any = None


# --- contract and schema objects -----------------------------------------------------------------
def contract_changes(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    """Every difference between two parsed versions of one contract, classified.

    Args:
        old: the old document.
        new: the new document.

    Yields:
        The changes, in document order.
    """
    for key in _keys(old, new, skip={"schema", "version"}):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        yield _contract_key_change(key, before, after)
    yield from _objects_changes(old.get("schema"), new.get("schema"))


def _contract_key_change(key: str, before: Any, after: Any) -> Change:
    if key in _CONTRACT_BREAKING_KEYS:
        what = _CONTRACT_BREAKING_KEYS[key]
        message = f"{key} {before!r} -> {after!r}: consumers and lineage find {what} by it"
        return Change("contract", f"{key}-changed", True, message, before, after)
    if key == "servers" and before is not None:
        message = "servers changed: consumers read the data where the old servers said"
        return Change("contract", "servers-changed", True, message, before, after)
    if key == "status":
        retired = after == "retired"
        why = "the dataset is no longer produced" if retired else "an announcement"
        return Change(
            "contract",
            "status-changed",
            retired,
            f"status {before!r} -> {after!r}: {why}",
            before,
            after,
        )
    return Change("contract", f"{key}-changed", False, f"{key} changed (metadata)", before, after)


def _objects_changes(old: Any, new: Any) -> Iterator[Change]:
    before, after = _by_name(old), _by_name(new)
    for name in _ordered_union(before, after):
        if name not in after:
            yield Change(name, "dataset-removed", True, "schema object removed", old=name)
        elif name not in before:
            yield Change(name, "dataset-added", False, "schema object added", new=name)
        else:
            yield from _object_changes(name, before[name], after[name])


def _object_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _keys(old, new, skip={"name", "properties", "quality"}):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key in _OBJECT_TYPE_KEYS:
            message = f"{key} {before!r} -> {after!r}: consumers read the dataset as the old one"
            yield Change(name, f"{key}-changed", True, message, before, after)
        else:
            yield Change(name, f"{key}-changed", False, f"{key} changed (metadata)", before, after)
    yield from _rules_changes(name, old.get("quality"), new.get("quality"))
    yield from _columns_changes(name, "", old.get("properties"), new.get("properties"))


# --- columns -------------------------------------------------------------------------------------
def _columns_changes(dataset: str, prefix: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = _by_name(old), _by_name(new)
    removed = [n for n in before if n not in after]
    added = [n for n in after if n not in before]
    renamed = _renames(before, after, removed, added)
    for old_name, new_name in renamed.items():
        where = f"{dataset}.{prefix}{old_name}"
        message = (
            f"column renamed to {prefix}{new_name} (same definition): consumers reading "
            f"{old_name} break"
        )
        yield Change(where, "column-renamed", True, message, old_name, new_name)
    for name in removed:
        if name not in renamed:
            where = f"{dataset}.{prefix}{name}"
            yield Change(where, "column-removed", True, "column removed", old=name)
    for name in added:
        if name not in renamed.values():
            yield _column_added(f"{dataset}.{prefix}{name}", after[name])
    for name in (n for n in before if n in after):
        yield from _property_changes(dataset, f"{prefix}{name}", before[name], after[name])
    yield from _order_change(dataset, prefix, before, after)


def _column_added(where: str, prop: dict[str, Any]) -> Change:
    if prop.get("required") is True:
        message = "required column added: producers and stored partitions do not have it"
        return Change(where, "required-column-added", True, message, new=prop.get("name"))
    return Change(
        where, "optional-column-added", False, "optional column added", new=prop.get("name")
    )


def _renames(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    removed: list[str],
    added: list[str],
) -> dict[str, str]:
    """Removed and added columns with the same definition apart from name and description."""
    pairs: dict[str, str] = {}
    for old_name in removed:
        shape = _shape(before[old_name])
        match = next(
            (n for n in added if n not in pairs.values() and _shape(after[n]) == shape), None
        )
        if match is not None:
            pairs[old_name] = match
    return pairs


def _shape(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k in _HANDLED_PROPERTY_KEYS - {"name"}}


def _order_change(
    dataset: str, prefix: str, before: dict[str, Any], after: dict[str, Any]
) -> Iterator[Change]:
    old_order = [n for n in before if n in after]
    new_order = [n for n in after if n in before]
    if old_order != new_order:
        where = f"{dataset}.{prefix}".rstrip(".")
        message = "column order changed (consumers read CSV by header, not by position)"
        yield Change(where, "column-order-changed", False, message, old_order, new_order)


def _property_changes(
    dataset: str, name: str, old: dict[str, Any], new: dict[str, Any]
) -> Iterator[Change]:
    where = f"{dataset}.{name}"
    yield from _type_changes(where, old, new)
    yield from _flag_changes(where, old, new)
    yield from _options_changes(where, old.get("logicalTypeOptions"), new.get("logicalTypeOptions"))
    yield from _enum_changes(where, allowed_values(old), allowed_values(new))
    yield from _rules_changes(where, old.get("quality"), new.get("quality"))
    yield from _metadata_changes(where, old, new)
    yield from _columns_changes(dataset, f"{name}.", old.get("properties"), new.get("properties"))
    yield from _items_changes(dataset, name, old.get("items"), new.get("items"))


def _type_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _PROPERTY_TYPE_KEYS:
        before, after = old.get(key), new.get(key)
        if before != after:
            message = (
                f"{key} {before!r} -> {after!r}: every type change is breaking (consumers parsing "
                f"{before!r} fail on the new values; old values may not fit the new type)"
            )
            yield Change(where, f"{key}-changed", True, message, before, after)


def _flag_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    was, now = bool(old.get("required")), bool(new.get("required"))
    if not was and now:
        message = "optional -> required: stored rows with empty values no longer conform"
        yield Change(where, "required-added", True, message, was, now)
    elif was and not now:
        message = (
            "required -> optional: consumers get empty values where the contract promised none"
        )
        yield Change(where, "required-removed", True, message, was, now)
    for key in ("unique", "primaryKey"):
        was, now = bool(old.get(key)), bool(new.get(key))
        if not was and now:
            message = f"{key} added: stored data with repeated values no longer conforms"
            yield Change(where, f"{key}-added", True, message, was, now)
        elif was and not now:
            message = f"{key} removed (check loosened; consumers may now see repeated values)"
            yield Change(where, f"{key}-removed", False, message, was, now)


def _metadata_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _keys(old, new, skip=_HANDLED_PROPERTY_KEYS):
        before, after = old.get(key), new.get(key)
        if before != after:
            yield Change(where, f"{key}-changed", False, f"{key} changed (metadata)", before, after)


def _items_changes(dataset: str, name: str, old: Any, new: Any) -> Iterator[Change]:
    if old is None and new is None:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        message = "array items added or removed: the item type changed"
        yield Change(f"{dataset}.{name}[]", "items-changed", True, message, old, new)
        return
    yield from _property_changes(dataset, f"{name}[]", old, new)


def _enum_changes(where: str, old: list[Any] | None, new: list[Any] | None) -> Iterator[Change]:
    if old == new or (
        old is not None and new is not None and set(map(repr, old)) == set(map(repr, new))
    ):
        return
    if old is None:
        message = f"value set added {new}: stored values outside it no longer conform"
        yield Change(where, "enum-added", True, message, old, new)
        return
    if new is None:
        message = "value set removed: consumers matching every value meet values they never saw"
        yield Change(where, "enum-removed", True, message, old, new)
        return
    gone = [v for v in old if v not in new]
    extra = [v for v in new if v not in old]
    if gone:
        message = f"values {gone} no longer allowed: stored data with them no longer conforms"
        yield Change(where, "enum-values-removed", True, message, old, new)
    if extra:
        message = f"values {extra} added: consumers matching every value meet one they never saw"
        yield Change(where, "enum-values-added", True, message, old, new)


# --- checks: logicalTypeOptions ------------------------------------------------------------------
def _options_changes(where: str, old: Any, new: Any) -> Iterator[Change]:
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    for key in _TYPE_OPTIONS:
        if before.get(key) != after.get(key):
            message = (
                f"{key} {before.get(key)!r} -> {after.get(key)!r}: consumers parse values with it"
            )
            yield Change(where, f"{key}-changed", True, message, before.get(key), after.get(key))
    yield from _pattern_change(where, before.get("pattern"), after.get("pattern"))
    for label, keys in _BOUND_OPTIONS.items():
        yield from _bounds_change(where, label, keys, before, after)
    yield from _multiple_of_change(where, before.get("multipleOf"), after.get("multipleOf"))
    yield from _set_option_change(where, "required", before.get("required"), after.get("required"))
    if before.get("uniqueItems") != after.get("uniqueItems"):
        tighter = bool(after.get("uniqueItems"))
        yield _check_change(
            where, "uniqueItems", tighter, before.get("uniqueItems"), after.get("uniqueItems")
        )
    known = {*_TYPE_OPTIONS, "pattern", "multipleOf", "required", "uniqueItems"}
    known.update(k for keys in _BOUND_OPTIONS.values() for k in keys if k)
    for key in _keys(before, after, skip=known):
        if before.get(key) != after.get(key):
            message = (
                f"{key} {before.get(key)!r} -> {after.get(key)!r}: unknown option, assumed tighter"
            )
            yield Change(where, f"{key}-changed", True, message, before.get(key), after.get(key))


def _check_change(where: str, what: str, tighter: bool | None, old: Any, new: Any) -> Change:
    if tighter is None:
        why = "cannot tell whether it is looser, so it counts as tighter"
        return Change(where, "check-changed", True, f"{what} {old!r} -> {new!r}: {why}", old, new)
    if tighter:
        why = "tighter: data that passed before may be rejected"
        return Change(where, "check-tightened", True, f"{what} {old!r} -> {new!r}: {why}", old, new)
    return Change(where, "check-loosened", False, f"{what} {old!r} -> {new!r}: looser", old, new)


def _pattern_change(where: str, old: Any, new: Any) -> Iterator[Change]:
    if old == new:
        return
    if new is None:
        yield _check_change(where, "pattern", False, old, new)
    elif old is None:
        yield _check_change(where, "pattern", True, old, new)
    else:
        yield _check_change(where, "pattern", None, old, new)


def _set_option_change(where: str, key: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = set(old or ()), set(new or ())
    if before == after:
        return
    tighter = None if (before - after and after - before) else bool(after - before)
    yield _check_change(where, key, tighter, sorted(before), sorted(after))


def _multiple_of_change(where: str, old: Any, new: Any) -> Iterator[Change]:
    if old == new:
        return
    if old is None or new is None:
        yield _check_change(where, "multipleOf", new is not None, old, new)
        return
    tighter = None
    if _is_multiple(new, old):
        tighter = True
    elif _is_multiple(old, new):
        tighter = False
    yield _check_change(where, "multipleOf", tighter, old, new)


def _is_multiple(value: Any, base: Any) -> bool:
    try:
        ratio = float(value) / float(base)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isclose(ratio, round(ratio))


# --- checks: intervals (value bounds, lengths, quality thresholds) -------------------------------
class _Shown(dict[str, Any]):
    """Options or thresholds that print as ``maxLength 100, minLength 1`` (or ``none``)."""

    def __repr__(self) -> str:
        return ", ".join(f"{k} {v!r}" for k, v in self.items()) or "none"


@dataclass(frozen=True)
class _Interval:
    """Accepted values ``lo..hi``; None is unbounded; ``negated`` means everything outside."""

    lo: Any = None
    lo_open: bool = False
    hi: Any = None
    hi_open: bool = False
    negated: bool = False


def _bounds_change(
    where: str,
    label: str,
    keys: tuple[str | None, ...],
    old: dict[str, Any],
    new: dict[str, Any],
) -> Iterator[Change]:
    present = [k for k in keys if k]
    before = {k: old[k] for k in present if k in old}
    after = {k: new[k] for k in present if k in new}
    if before == after:
        return
    tighter = _tighter(_option_interval(before, keys), _option_interval(after, keys))
    yield _check_change(where, f"{label} bounds", tighter, _Shown(before), _Shown(after))


def _option_interval(options: dict[str, Any], keys: tuple[str | None, ...]) -> _Interval | None:
    low_key, low_excl, high_key, high_excl = keys
    lows = [(options[k], k == low_excl) for k in (low_key, low_excl) if k and k in options]
    highs = [(options[k], k == high_excl) for k in (high_key, high_excl) if k and k in options]
    try:
        lo = max(((_comparable(v), o) for v, o in lows), default=(None, False))
        hi = min(((_comparable(v), not o) for v, o in highs), default=(None, True))
    except TypeError:
        return None
    return _Interval(lo[0], lo[1], hi[0], not hi[1])


def _comparable(value: Any) -> float | datetime | date:
    """A bound as something ordered; raises TypeError when it has no meaningful order."""
    if isinstance(value, bool):
        raise TypeError("a boolean bound")
    if isinstance(value, int | float | datetime | date):
        return value
    if isinstance(value, str):
        for parse in (datetime.fromisoformat, date.fromisoformat):
            try:
                return parse(value)
            except ValueError:
                continue
    raise TypeError(f"bound {value!r} has no order")


def _tighter(old: _Interval | None, new: _Interval | None) -> bool | None:
    """True when new accepts a subset of old, False when a superset, None when neither or unknown."""
    if old is None or new is None or old.negated != new.negated:
        return None
    if old.negated:
        old, new = new, old  # the complement of a wider range accepts less
    try:
        if _within(new, old):
            return True
        if _within(old, new):
            return False
    except TypeError:
        return None
    return None


def _within(inner: _Interval, outer: _Interval) -> bool:
    low_ok = outer.lo is None or (
        inner.lo is not None
        and (inner.lo > outer.lo or (inner.lo == outer.lo and (inner.lo_open or not outer.lo_open)))
    )
    high_ok = outer.hi is None or (
        inner.hi is not None
        and (inner.hi < outer.hi or (inner.hi == outer.hi and (inner.hi_open or not outer.hi_open)))
    )
    return low_ok and high_ok


# --- checks: quality rules -----------------------------------------------------------------------
def _rules_changes(where: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = _rules_by_name(old), _rules_by_name(new)
    for name in _ordered_union(before, after):
        if name not in after:
            message = f"quality rule {name!r} removed (check loosened)"
            yield Change(where, "rule-removed", False, message, before[name], None)
        elif name not in before:
            yield _rule_added(where, name, after[name])
        else:
            yield from _rule_changes(where, name, before[name], after[name])


def _rule_added(where: str, name: str, rule: dict[str, Any]) -> Change:
    if _enforced(rule):
        message = f"quality rule {name!r} added: data that passed before may now fail it"
        return Change(where, "rule-added", True, message, None, rule)
    message = f"quality rule {name!r} added (does not fail a run: severity or type text)"
    return Change(where, "rule-added", False, message, None, rule)


def _rule_changes(
    where: str, name: str, old: dict[str, Any], new: dict[str, Any]
) -> Iterator[Change]:
    what = f"quality rule {name!r}"
    for key in sorted(_RULE_CHECK_KEYS):
        if old.get(key) != new.get(key):
            yield _check_change(where, f"{what} {key}", None, old.get(key), new.get(key))
    old_interval, new_interval = _rule_interval(old), _rule_interval(new)
    if old_interval != new_interval:
        yield _check_change(
            where,
            f"{what} threshold",
            _tighter(old_interval, new_interval),
            _threshold(old),
            _threshold(new),
        )
    if _enforced(old) != _enforced(new):
        yield _check_change(
            where, f"{what} severity", _enforced(new), old.get("severity"), new.get("severity")
        )
    # a severity change that keeps the rule (not) failing runs is bookkeeping
    handled = _RULE_CHECK_KEYS | {"name", *QUALITY_OPERATORS}
    if _enforced(old) != _enforced(new):
        handled.add("severity")
    for key in _keys(old, new, skip=handled):
        if old.get(key) != new.get(key):
            yield Change(
                where,
                "rule-metadata-changed",
                False,
                f"{what}: {key} changed (metadata)",
                old.get(key),
                new.get(key),
            )


def _rules_by_name(rules: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            name = str(rule.get("name") or f"{rule.get('metric', 'rule')}#{index}")
            out[name] = _without_valid_values(rule)
    return out


def _without_valid_values(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule without its value set: the value set is compared as the column's type."""
    arguments = rule.get("arguments")
    if not isinstance(arguments, dict) or "validValues" not in arguments:
        return rule
    rest = {k: v for k, v in arguments.items() if k != "validValues"}
    return {**rule, "arguments": rest or None}


def _enforced(rule: dict[str, Any]) -> bool:
    return bool(rule.get("type", "library") != "text" and rule.get("severity", "error") == "error")


def _threshold(rule: dict[str, Any]) -> _Shown:
    return _Shown({k: rule[k] for k in QUALITY_OPERATORS if k in rule})


def _rule_interval(rule: dict[str, Any]) -> _Interval | None:
    ops = _threshold(rule)
    if len(ops) != 1:
        return None
    ((op, value),) = ops.items()
    try:
        if op in ("mustBeBetween", "mustNotBeBetween"):
            lo, hi = (_comparable(v) for v in value)
            return _Interval(lo, False, hi, False, negated=op == "mustNotBeBetween")
        bound = _comparable(value)
    except (TypeError, ValueError):
        return None
    return {
        "mustBe": _Interval(bound, False, bound, False),
        "mustNotBe": _Interval(bound, False, bound, False, negated=True),
        "mustBeGreaterThan": _Interval(lo=bound, lo_open=True),
        "mustBeGreaterOrEqualTo": _Interval(lo=bound),
        "mustBeLessThan": _Interval(hi=bound, hi_open=True),
        "mustBeLessOrEqualTo": _Interval(hi=bound),
    }[op]


# --- helpers -------------------------------------------------------------------------------------
def _by_name(items: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            out[str(item.get("name", f"#{index}"))] = item
    return out


def _ordered_union(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [*before, *(k for k in after if k not in before)]


def _keys(old: dict[str, Any], new: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    skipped = set(skip)
    return [k for k in _ordered_union(old, new) if k not in skipped]
