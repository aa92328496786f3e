"""Great Expectations suites derived from ``contracts/``, and ``tweetpipe expectations sync``.

Two suites live in ``expectations/``, one per contract, as GX 1.x JSON:

- ``tweets_curated.json`` audits a curated CSV (a CSV contract gives a table suite);
- ``x_api_v2_tweets_page.json`` audits landed raw pages, flattened to one row per page (a JSON
  contract gives the page suite, over :func:`flatten_page`).

Each suite has two parts. Expectations whose ``meta.source`` is ``"contract"`` are derived here
from the contract (never edit them; edit the contract). Every other expectation is hand-written
(``meta.source: "hand-written"``) and kept by :func:`sync_expectations` exactly as it is.
Nothing here imports Great Expectations: the files are plain JSON, so ``sync --check`` is fast.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl import resources
from etl.contracts.formats import TimestampFormat, end_anchored
from etl.contracts.model import (
    CURATED_CONTRACT,
    JSON_TYPES,
    RAW_PAGE_CONTRACT,
    ColumnSpec,
    ContractSpec,
    QualityRule,
    load_contract,
)
from etl.errors import ContractError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

EXPECTATIONS_DIR = resources.expectations_dir()
SUITE_CONTRACTS = (CURATED_CONTRACT, RAW_PAGE_CONTRACT)
CURATED_SUITE = "tweets_curated"
RAW_PAGE_SUITE = "x_api_v2_tweets_page"
CONTRACT_SOURCE = "contract"
CRITICAL = "critical"
WARNING = "warning"
# GX's pandas engine searches (``str.contains``): every regex is anchored at both ends, and with
# ``\Z``, since Python's ``$`` also matches before a final line feed ("123\n" would pass).
INTEGER_REGEX = r"^-?[0-9]+\Z"
NUMBER_REGEX = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"
# The dialect of every JSON Schema a suite checks values against. GX validates each value with
# ``jsonschema.validate``, which first checks the schema itself against its dialect's metaschema:
# 2020-12 (the default) spans several vocabulary documents, draft 7 is one, so a value costs
# 87 µs instead of 369 µs (a 2,000-post gate: 1.5 s instead of 5.2 s). The keywords we use
# (type, items, minItems, maxItems, uniqueItems) mean the same in both.
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
_ISO_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)


def load_suite_file(name: str, expectations_dir: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Read ``expectations/<name>.json``.

    Args:
        name: the suite name (the contract's name).
        expectations_dir: where the suites live.

    Returns:
        The suite as parsed JSON.

    Raises:
        ValueError: the file is missing or not a JSON suite.
    """
    path = expectations_dir / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read expectation suite: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list):
        raise ValueError(f"{path}: an expectation suite is a JSON object with 'expectations'")
    return doc


# --- deriving expectations from a contract ------------------------------------------------------
def _expectation(
    spec: ContractSpec,
    rule: str,
    type_: str,
    description: str = "",
    severity: str = CRITICAL,
    **kwargs: Any,
) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "type": type_,
        "kwargs": {k: v for k, v in kwargs.items() if v is not None},
    }
    if description:
        exp["description"] = description
    if severity != CRITICAL:
        exp["severity"] = severity
    exp["meta"] = {
        "source": CONTRACT_SOURCE,
        "contract": spec.name,
        "version": spec.version,
        "rules": [rule],
    }
    return exp


def _rule_expectation(
    spec: ContractSpec, rule: QualityRule, type_: str, description: str = "", **kwargs: Any
) -> dict[str, Any]:
    """An expectation for a contract quality rule, with the rule's severity."""
    severity = CRITICAL if rule.fatal else WARNING
    return _expectation(spec, rule.name, type_, description, severity, **kwargs)


def _merge(out: list[dict[str, Any]], new: Iterable[dict[str, Any]]) -> None:
    """Append expectations, folding one that repeats an earlier one into its ``rules``."""
    for exp in new:
        same = ("type", "kwargs", "severity")
        twin = next((e for e in out if all(e.get(k) == exp.get(k) for k in same)), None)
        if twin is None:
            out.append(exp)
        else:
            twin["meta"]["rules"].extend(exp["meta"]["rules"])


def _raw_property(spec: ContractSpec, name: str) -> dict[str, Any]:
    props = spec.raw.get("schema", [{}])[0].get("properties") or []
    return next((p for p in props if p.get("name") == name), {})


def _json_schema(prop: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": JSON_TYPES[prop["logicalType"]],
    }
    items = prop.get("items") or {}
    if schema["type"] == "array" and items.get("logicalType") in JSON_TYPES:
        schema["items"] = {"type": JSON_TYPES[items["logicalType"]]}
    return schema


def _item_options(col: ColumnSpec) -> dict[str, Any]:
    """The array options of a column as JSON Schema keywords (ODCS uses the same names)."""
    options: dict[str, Any] = {}
    if col.min_items is not None:
        options["minItems"] = col.min_items
    if col.max_items is not None:
        options["maxItems"] = col.max_items
    if col.unique_items:
        options["uniqueItems"] = True
    return options


def _type_expectations(spec: ContractSpec, col: ColumnSpec) -> Iterator[dict[str, Any]]:
    rule, name, lt = f"{col.name}.logicalType", col.name, col.logical_type
    regex = {"integer": INTEGER_REGEX, "number": NUMBER_REGEX, "date": _DATE}.get(lt)
    if lt == "timestamp":
        regex = TimestampFormat.parse(col.format).search_regex if col.format else _ISO_TIMESTAMP
    if regex:
        yield _expectation(
            spec, rule, "expect_column_values_to_match_regex", column=name, regex=regex
        )
    elif lt == "boolean":
        yield _expectation(
            spec,
            rule,
            "expect_column_values_to_be_in_set",
            column=name,
            value_set=["true", "false"],
        )
    elif lt in ("array", "object"):
        schema = _json_schema({**_raw_property(spec, name), "logicalType": lt})
        yield _expectation(spec, rule, "expect_column_values_to_be_json_parseable", column=name)
        yield _expectation(
            spec, rule, "expect_column_values_to_match_json_schema", column=name, json_schema=schema
        )
    elif lt != "string":
        raise ContractError(f"{spec.path}: column {name}: logical type {lt!r} has no GX mapping")


def _column_expectations(spec: ContractSpec, col: ColumnSpec) -> Iterator[dict[str, Any]]:
    name = col.name
    if col.required:
        yield _expectation(
            spec, f"{name}.required", "expect_column_values_to_not_be_null", column=name
        )
    if col.unique:
        yield _expectation(spec, f"{name}.unique", "expect_column_values_to_be_unique", column=name)
    yield from _type_expectations(spec, col)
    if col.pattern:
        yield _expectation(
            spec,
            f"{name}.pattern",
            "expect_column_values_to_match_regex",
            column=name,
            regex=end_anchored(col.pattern),
        )
    if col.minimum is not None or col.maximum is not None:
        yield _expectation(
            spec,
            f"{name}.range",
            "expect_column_values_to_be_between",
            column=name,
            min_value=col.minimum,
            max_value=col.maximum,
        )
    if col.min_items is not None or col.max_items is not None or col.unique_items:
        yield _expectation(
            spec,
            f"{name}.itemCount",
            "expect_column_values_to_match_json_schema",
            column=name,
            json_schema={"$schema": JSON_SCHEMA_DIALECT, "type": "array", **_item_options(col)},
        )
    if (col.min_length or 0) > 0 or col.max_length is not None:
        yield _expectation(
            spec,
            f"{name}.length",
            "expect_column_value_lengths_to_be_between",
            column=name,
            min_value=col.min_length or None,
            max_value=col.max_length,
        )
    for rule in col.quality:
        if "validValues" not in rule.arguments or rule.metric != "invalidValues":
            raise ContractError(f"{spec.path}: column {name}: {_unmapped(rule)}")
        yield _rule_expectation(
            spec,
            rule,
            "expect_column_values_to_be_in_set",
            column=name,
            value_set=list(rule.arguments["validValues"]),
            mostly=_mostly(spec, rule),
        )


def _unmapped(rule: QualityRule) -> str:
    return (
        f"quality rule {rule.name!r} (metric {rule.metric}, {rule.operator} {rule.threshold!r}) "
        "has no Great Expectations mapping in etl/contracts/suites.py"
    )


def _mostly(spec: ContractSpec, rule: QualityRule) -> float | None:
    """The GX ``mostly`` of an invalid-values rule (None: every value must be valid)."""
    if rule.operator == "mustBe" and rule.threshold == 0:
        return None
    if rule.unit == "percent" and rule.operator == "mustBeLessOrEqualTo":
        return round(1 - float(rule.threshold) / 100, 6)
    raise ContractError(f"{spec.path}: {_unmapped(rule)}")


def _quarantined_share(spec: ContractSpec, rule: QualityRule) -> dict[str, Any]:
    """Share of gate rejects, as a row count: curated rows >= (100 - t)% of curated + quarantined.

    GX compares a batch metric with a number, and the quarantined rows are not in the batch, so the
    transform report's counts come in as suite parameters and the bound is computed by GX's
    parameter arithmetic. Hundredths keep the ceiling exact: a bound of 104.5 rows must mean 105.
    """
    keep_hundredths = round((100 - float(rule.threshold)) * 100)
    if abs(keep_hundredths - (100 - float(rule.threshold)) * 100) > 1e-9:
        raise ContractError(f"{spec.path}: {rule.name}: use at most two decimals in the percent")
    bound = f"trunc(({keep_hundredths} * (curated + quarantined) + 9999) / 10000)"
    return _rule_expectation(
        spec,
        rule,
        "expect_table_row_count_to_be_between",
        description=(
            f"{rule.description} Checked as: curated rows >= {100 - float(rule.threshold):g}% of "
            "the curated plus quarantined posts reported by the transform."
        ).strip(),
        min_value={"$PARAMETER": bound},
    )


def _dataset_expectation(spec: ContractSpec, rule: QualityRule) -> dict[str, Any]:
    columns = list(rule.arguments.get("properties") or [])
    if rule.metric == "duplicateValues" and rule.operator == "mustBe" and rule.threshold == 0:
        if len(columns) == 1:
            return _rule_expectation(
                spec, rule, "expect_column_values_to_be_unique", column=columns[0]
            )
        return _rule_expectation(
            spec, rule, "expect_compound_columns_to_be_unique", column_list=columns
        )
    if rule.metric == "invalidValues" and rule.unit == "percent" and not columns:
        if rule.operator == "mustBeLessOrEqualTo":
            return _quarantined_share(spec, rule)
    if rule.metric == "rowCount" and rule.operator in ("mustBeGreaterOrEqualTo", "mustBeBetween"):
        low, high = (rule.threshold, None) if rule.operator != "mustBeBetween" else rule.threshold
        return _rule_expectation(
            spec, rule, "expect_table_row_count_to_be_between", min_value=low, max_value=high
        )
    raise ContractError(f"{spec.path}: {_unmapped(rule)}")


def _derive_table(spec: ContractSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    _merge(
        out,
        [
            _expectation(
                spec,
                "columns",
                "expect_table_columns_to_match_ordered_list",
                column_list=spec.column_names,
            )
        ],
    )
    for col in spec.columns:
        _merge(out, _column_expectations(spec, col))
    _merge(out, (_dataset_expectation(spec, r) for r in spec.quality))
    return out


# --- the raw page, flattened to one row per page --------------------------------------------------
_ABSENT = object()


@dataclass(frozen=True)
class _PageCheck:
    """One contract property of a raw page, checked as a count of violations per page."""

    column: str
    path: str
    prop: dict[str, Any]
    parent: str | None = None
    in_items: bool = False

    def constraints(self) -> str:
        opts = self.prop.get("logicalTypeOptions") or {}
        parts = ["required" if self.prop.get("required") else "optional"]
        parts.append(f"a JSON {JSON_TYPES[self.prop['logicalType']]}")
        item_type = (self.prop.get("items") or {}).get("logicalType")
        if item_type:
            parts.append(f"of {JSON_TYPES[item_type]} items")
        if "pattern" in opts:
            parts.append(f"matching {opts['pattern']}")
        if "minimum" in opts or "maximum" in opts:
            parts.append(f"between {opts.get('minimum', '-inf')} and {opts.get('maximum', 'inf')}")
        low, high = opts.get("minItems"), opts.get("maxItems")
        if low is not None or high is not None:
            bounds = f"{low} to {high}" if low is not None and high is not None else None
            bounds = bounds or (f"at least {low}" if low is not None else f"at most {high}")
            parts.append(f"item count {bounds}")
        if opts.get("uniqueItems"):
            parts.append("without repeated items")
        return ", ".join(parts)


_PAGE_BASE_COLUMNS = ("key", "parsed_ok", "data_len", "result_count")


def page_checks(spec: ContractSpec) -> list[_PageCheck]:
    """The contract properties of a raw page, two levels deep (top level, then items or fields).

    Args:
        spec: the raw page contract.

    Returns:
        One check per property; each becomes a ``bad_*`` count column of the page table.

    Raises:
        ContractError: a property has no known logical type.
    """
    checks = []
    for top in spec.raw["schema"][0].get("properties") or []:
        name = top["name"]
        checks.append(_PageCheck(f"bad_{name}", name, top))
        items = top.get("items") or {}
        children = (items if top["logicalType"] == "array" else top).get("properties") or []
        in_items = top["logicalType"] == "array"
        for child in children:
            path = f"{name}[].{child['name']}" if in_items else f"{name}.{child['name']}"
            checks.append(
                _PageCheck(f"bad_{name}_{child['name']}", path, child, name, in_items=in_items)
            )
    for check in checks:
        if check.prop.get("logicalType") not in JSON_TYPES:
            raise ContractError(f"{spec.path}: {check.path}: needs a known logicalType")
    return checks


def page_columns(spec: ContractSpec) -> list[str]:
    """Columns of the flattened raw-page table, in order.

    Args:
        spec: the raw page contract.

    Returns:
        ``key``, ``parsed_ok``, ``data_len``, ``result_count``, then one ``bad_*`` count per
        contract property.
    """
    return [*_PAGE_BASE_COLUMNS, *(c.column for c in page_checks(spec))]


def _derive_page(spec: ContractSpec) -> list[dict[str, Any]]:
    out = [
        _expectation(
            spec,
            "flattened page columns",
            "expect_table_columns_to_match_ordered_list",
            column_list=page_columns(spec),
        )
    ]
    for rule in spec.quality:
        if rule.metric != "invalidValues" or rule.arguments:
            raise ContractError(f"{spec.path}: {_unmapped(rule)}")
        out.append(
            _rule_expectation(
                spec,
                rule,
                "expect_column_values_to_be_in_set",
                description=f"{rule.description} (pages that parse as a JSON object)".strip(),
                column="parsed_ok",
                value_set=[True],
                mostly=_mostly(spec, rule),
            )
        )
    for check in page_checks(spec):
        # A post that breaks the contract is the transform's to quarantine, and the curated
        # suite bounds the quarantined share; here it is evidence, so it only warns.
        scope = (
            "every post (warning: such posts are quarantined)" if check.in_items else "every page"
        )
        out.append(
            _expectation(
                spec,
                check.path,
                "expect_column_values_to_be_in_set",
                description=f"{check.path} is {check.constraints()}, in {scope}.",
                severity=WARNING if check.in_items else CRITICAL,
                column=check.column,
                value_set=[0],
            )
        )
    return out


def _json_type_ok(value: Any, json_type: str) -> bool:
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "boolean": bool,
        "object": dict,
        "array": list,
    }
    return isinstance(value, kinds[json_type])


@functools.cache
def _python_pattern(ecma: str) -> re.Pattern[str]:
    return re.compile(end_anchored(ecma))


def ecma_search(pattern: str, value: str) -> bool:
    """Whether ``value`` matches a contract's ECMA-262 ``pattern`` (JSON Schema semantics).

    Python's ``$`` also matches before a final line feed, ECMA-262's only at the end: each bare
    ``$`` is read as ``\\Z`` (:func:`etl.contracts.formats.end_anchored`), so ``"123\\n"`` does not
    pass ``^[0-9]+$``.

    Args:
        pattern: the contract's pattern (searched, not anchored, as JSON Schema does).
        value: the value.

    Returns:
        Whether it matches.
    """
    return _python_pattern(pattern).search(value) is not None


def _violates(value: Any, prop: dict[str, Any]) -> bool:
    """Whether a present value breaks its property's type, items type, pattern or range."""
    json_type = JSON_TYPES[prop["logicalType"]]
    if not _json_type_ok(value, json_type):
        return True
    opts = prop.get("logicalTypeOptions") or {}
    if isinstance(value, str) and "pattern" in opts and not ecma_search(opts["pattern"], value):
        return True
    if json_type in ("integer", "number"):
        if value < opts.get("minimum", value) or value > opts.get("maximum", value):
            return True
    if isinstance(value, list) and _bad_items(value, prop, opts):
        return True
    return False


def _bad_items(items: list[Any], prop: dict[str, Any], opts: dict[str, Any]) -> bool:
    """Whether an array breaks its items' type, item count or item uniqueness."""
    if len(items) < opts.get("minItems", 0) or len(items) > opts.get("maxItems", len(items)):
        return True
    if opts.get("uniqueItems"):
        if len({json.dumps(i, sort_keys=True) for i in items}) != len(items):
            return True
    item_type = (prop.get("items") or {}).get("logicalType")
    if item_type in JSON_TYPES:
        return not all(_json_type_ok(v, JSON_TYPES[item_type]) for v in items)
    return False


def _bad_count(values: Iterable[Any], prop: dict[str, Any]) -> int:
    required = bool(prop.get("required"))
    bad = 0
    for value in values:
        if value is _ABSENT or value is None:
            bad += required
        elif _violates(value, prop):
            bad += 1
    return bad


def _check_values(doc: dict[str, Any], check: _PageCheck) -> list[Any]:
    if check.parent is None:
        return [doc.get(check.path, _ABSENT)]
    parent = doc.get(check.parent)
    name = check.prop["name"]
    if check.in_items:
        # Elements that are not objects are counted by the parent's items-type check.
        return (
            [e.get(name, _ABSENT) for e in parent if isinstance(e, dict)]
            if isinstance(parent, list)
            else []
        )
    return [parent.get(name, _ABSENT)] if isinstance(parent, dict) else []


def flatten_page(key: str, body: bytes, checks: list[_PageCheck]) -> dict[str, Any]:
    """One landed page as one row of the raw-page table.

    Args:
        key: the page's store key.
        body: the page bytes as landed.
        checks: the contract checks (from the raw page contract).

    Returns:
        The row: key, whether it parsed as a JSON object, ``len(data)``, ``meta.result_count``
        and a violation count per contract property (None when the page did not parse).
    """
    row: dict[str, Any] = {c: None for c in _PAGE_BASE_COLUMNS} | {c.column: None for c in checks}
    row["key"] = key
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    row["parsed_ok"] = isinstance(doc, dict)
    if not isinstance(doc, dict):
        return row
    data, meta = doc.get("data"), doc.get("meta")
    row["data_len"] = len(data) if isinstance(data, list) else 0
    count = meta.get("result_count") if isinstance(meta, dict) else None
    row["result_count"] = count if _json_type_ok(count, "integer") else None
    for check in checks:
        row[check.column] = _bad_count(_check_values(doc, check), check.prop)
    return row


# --- suite files and `tweetpipe expectations sync` ------------------------------------------------
def derive_expectations(spec: ContractSpec) -> list[dict[str, Any]]:
    """The expectations a contract implies, as GX 1.x expectation dicts.

    A CSV contract gives a table suite (columns, not-null, unique, types, patterns, ranges, lengths,
    value sets, dataset rules); a JSON contract gives the raw-page suite over the flattened table.

    Args:
        spec: the contract.

    Returns:
        Expectations with ``meta.source == "contract"`` and the contract rules they check.

    Raises:
        ContractError: a rule or type has no mapping to GX.
    """
    physical = str(spec.raw.get("schema", [{}])[0].get("physicalType", ""))
    derive: Callable[[ContractSpec], list[dict[str, Any]]] = (
        _derive_page if physical == "json" else _derive_table
    )
    return derive(spec)


def render_suite(spec: ContractSpec, existing: dict[str, Any] | None) -> str:
    """The suite file text for a contract, keeping the hand-written part of ``existing``.

    Args:
        spec: the contract.
        existing: the current suite file, parsed, if there is one.

    Returns:
        The JSON text (derived expectations first, then the hand-written ones in their order).
    """
    kept = [
        e
        for e in (existing or {}).get("expectations", [])
        if (e.get("meta") or {}).get("source") != CONTRACT_SOURCE
    ]
    doc = {
        "name": spec.name,
        "meta": {
            "contract": f"contracts/{spec.path.name}",
            "contract_id": spec.id,
            "contract_version": spec.version,
            "generated_by": "tweetpipe expectations sync",
            "about": (
                "Expectations with meta.source 'contract' are regenerated from the contract; edit "
                "the contract, not them. All others are hand-written and kept by sync."
            ),
        },
        "expectations": derive_expectations(spec) + kept,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def suite_locations(root: Path) -> tuple[Path, tuple[Path, ...]]:
    """The suites folder and the contracts with a suite, in another copy of the repository.

    ``tweetpipe expectations sync --root DIR`` checks a checkout other than the one the package
    runs from (a pre-commit hook's repository, a pull request's tree).

    Args:
        root: a folder holding ``contracts/`` and ``expectations/``.

    Returns:
        ``ROOT/expectations`` and the contracts of :data:`SUITE_CONTRACTS` under ``ROOT/contracts``.
    """
    return root / "expectations", tuple(root / "contracts" / c.name for c in SUITE_CONTRACTS)


def sync_expectations(
    *,
    check: bool,
    expectations_dir: Path = EXPECTATIONS_DIR,
    contracts: Iterable[Path] = SUITE_CONTRACTS,
) -> list[Path]:
    """Regenerate the derived part of every suite, or only report which files are out of date.

    Args:
        check: report only, write nothing.
        expectations_dir: where the suite files live.
        contracts: the contracts that have a suite (``<contract name>.json``).

    Returns:
        The files that were out of date (with ``check=False`` they have been rewritten).

    Raises:
        ContractError: a contract cannot be read or mapped.
        ValueError: an existing suite file is not valid JSON.
    """
    stale = []
    for contract in contracts:
        spec = load_contract(contract)
        path = expectations_dir / f"{spec.name}.json"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        existing = load_suite_file(spec.name, expectations_dir) if current is not None else None
        text = render_suite(spec, existing)
        if text == current:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return stale


_GX_IMPORT_LOGGER = "great_expectations._docs_decorators"


def import_gx() -> Any:
    """Import Great Expectations with analytics off and its chatter turned down.

    Returns:
        The ``great_expectations`` module.
    """
    # GX reads this when it is imported; nothing of ours may leave loopback.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # Before the import: importing GX logs ~200 "Skipping registering function ... because it is
    # a closure" lines at INFO from this logger, which filled a failed gate's task log.
    logging.getLogger(_GX_IMPORT_LOGGER).setLevel(logging.WARNING)
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # GX logs every suite-parameter parse at INFO; under Airflow's INFO root that floods logs.
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def suite_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``gx.ExpectationSuite`` built from a suite file.

    Args:
        doc: the parsed suite file.

    Returns:
        ``name``, ``expectations`` (copies) and ``meta``.
    """
    return {
        "name": doc["name"],
        "expectations": [dict(e) for e in doc["expectations"]],
        "meta": doc.get("meta") or {},
    }
