"""What an expectation found, said in the contract's own terms, as the Data Docs pages say it.

GX reports the quarantined-share rule as ``observed 1`` against ``min_value 4``: true, but the
contract says "at most 5 % of the posts may be quarantined". :func:`explain_check` turns a check's
structured result (a :class:`~etl.steps.quality.CheckpointSummary` entry, or a GX result item
through :func:`entry_from_result`) and the run's parameters back into the rule's words::

    quarantined 3 of 4 posts (75 %); the contract allows at most 5 %

The Data Docs pages call it for every check. A failed gate's task log says its failures with
:func:`etl.steps.quality.explain_gate.explain_failure`, which shares :func:`explain_threshold`
and :data:`MAX_SAMPLE` with it: a contract threshold rule reads the same in both, while a check
of values or bounds is worded for each reader (the log adds the batch's row counts and a
warning's severity).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from etl.contracts.model import ContractSpec, QualityRule

_OPERATOR_WORDS = {
    "mustBe": "exactly",
    "mustNotBe": "anything but",
    "mustBeGreaterThan": "more than",
    "mustBeGreaterOrEqualTo": "at least",
    "mustBeLessThan": "less than",
    "mustBeLessOrEqualTo": "at most",
    "mustBeBetween": "between",
    "mustNotBeBetween": "outside",
}
# A contract rule named in an expectation's meta: a dataset rule (``quarantined_share``), a column
# rule (``tweet_id.pattern``) or a structural one (``columns``).
_RULE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}")
MAX_SAMPLE = 3
"""Most unexpected values a sentence quotes as examples (here and in the task log)."""
_MAX_VALUE = 80


def _percent(part: float, whole: float) -> str:
    share = 100.0 * part / whole if whole else 0.0
    text = f"{share:.1f}".removesuffix(".0")
    return f"{text} %"


def _threshold(rule: QualityRule) -> str:
    words = _OPERATOR_WORDS.get(rule.operator, rule.operator)
    value = rule.threshold
    if isinstance(value, list) and len(value) == 2:  # noqa: PLR2004 - ODCS ranges are pairs
        value = f"{value[0]} and {value[1]}"
    unit = " %" if rule.unit == "percent" else f" {rule.unit}" if rule.unit != "rows" else " rows"
    return f"{words} {value}{unit}"


def _quarantined_share(rule: QualityRule, parameters: Mapping[str, Any]) -> str | None:
    curated, quarantined = parameters.get("curated"), parameters.get("quarantined")
    if not isinstance(curated, int) or not isinstance(quarantined, int):
        return None
    total = curated + quarantined
    return (
        f"quarantined {quarantined} of {total} posts ({_percent(quarantined, total)}); "
        f"the contract allows {_threshold(rule)}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _unexpected(entry: Mapping[str, Any]) -> str:
    count = entry.get("unexpected_count")
    percent = entry.get("unexpected_percent")
    total = entry.get("element_count")
    column = entry.get("column") or "the table"
    if isinstance(total, int) and total:
        head = f"{count} of {total} values of {column} ({_percent(float(count or 0), total)})"
    elif isinstance(percent, int | float):
        head = f"{count} values of {column} ({percent:.1f} %)".replace(".0 %", " %")
    else:
        head = f"{count} values of {column}"
    head += " break the rule"
    sample = entry.get("partial_unexpected_list") or []
    if sample:
        head += "; e.g. " + ", ".join(_short(v) for v in list(sample)[:MAX_SAMPLE])
    return head


def _observed(entry: Mapping[str, Any]) -> str:
    text = f"observed {_short(entry.get('observed_value'))}"
    bounds = entry.get("expected") or {}
    low, high = bounds.get("min_value"), bounds.get("max_value")
    if "value" in bounds:
        text += f"; expected {_short(bounds['value'])}"
    elif low is not None and high is not None:
        text += f"; expected between {_short(low)} and {_short(high)}"
    elif low is not None:
        text += f"; expected at least {_short(low)}"
    elif high is not None:
        text += (
            f"; expected {'less than' if bounds.get('strict_max') else 'at most'} {_short(high)}"
        )
    return text


def rule_names(entry: Mapping[str, Any]) -> list[str]:
    """The contract rules an expectation checks, from its ``rule`` (``a, b``) or ``rules``.

    Args:
        entry: a summary entry (``rule``: comma-separated names) or GX expectation meta
            (``rules``: a list).

    Returns:
        The names that are plausible rule names, in order (others are left out, not trusted).
    """
    names = entry.get("rules")
    if not isinstance(names, list):
        rule = entry.get("rule")
        names = [n.strip() for n in rule.split(",")] if isinstance(rule, str) else []
    return [n for n in names if isinstance(n, str) and _RULE_NAME.fullmatch(n)]


def explain_threshold(
    entry: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
    contract: ContractSpec | None,
) -> str | None:
    """A contract threshold rule's finding: the observed share and the limit in the rule's words.

    Args:
        entry: a summary entry or :func:`entry_from_result` of a GX result item.
        parameters: the run's suite parameters (``curated``, ``quarantined``); None when unknown.
        contract: the contract the suite was derived from.

    Returns:
        E.g. ``quarantined 3 of 4 posts (75 %); the contract allows at most 5 %``; None when the
        check is not such a rule or the counts are unknown.
    """
    for name in rule_names(entry):
        rule = contract.rule(name) if contract is not None else None
        if rule is not None and rule.metric == "invalidValues" and rule.unit == "percent":
            said = _quarantined_share(rule, parameters or {})
            if said:
                return said
    return None


def explain_check(
    entry: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    contract: ContractSpec | None = None,
) -> str:
    """One line, in the contract's terms, saying what a check found.

    For a dataset rule of the contract that is a threshold (``quarantined_share``: at most 5 %),
    the observed share and the limit as the contract states them; for a check of values, how many
    of how many broke it and a few examples; otherwise the observed value against the expected
    bounds.

    Args:
        entry: a :class:`~etl.steps.quality.CheckpointSummary` ``failed``/``results`` entry, or
            :func:`entry_from_result` of a GX result item.
        parameters: the run's suite parameters (``curated``, ``quarantined``, ...), e.g.
            ``CheckpointSummary.parameters``; None when unknown.
        contract: the contract the suite was derived from, for its rules' thresholds.

    Returns:
        The sentence (no trailing period), e.g.
        ``quarantined 3 of 4 posts (75 %); the contract allows at most 5 %``.
    """
    said = explain_threshold(entry, parameters, contract)
    if said:
        return said
    if entry.get("exception"):
        return f"could not be checked: {_short(entry['exception'])}"
    if entry.get("unexpected_count") is not None:
        return _unexpected(entry)
    if "observed_value" in entry:
        return _observed(entry)
    return "passed" if entry.get("success") else "failed"


def entry_from_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """A GX validation result item (from the result JSON) in the shape :func:`explain_check` reads.

    Args:
        result: one item of a GX result's ``results`` list.

    Returns:
        ``expectation_type``, ``column``, ``rules``, ``success``, ``severity``, the counts and the
        observed value, and ``expected`` (the expectation's bounds).
    """
    config = result.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    meta = config.get("meta") or {}
    details = result.get("result") or {}
    info = result.get("exception_info") or {}
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        column = f"{kwargs.get('column_A')},{kwargs.get('column_B')}"
    entry: dict[str, Any] = {
        "expectation_type": config.get("type"),
        "column": column,
        "rules": meta.get("rules") if isinstance(meta.get("rules"), list) else None,
        "rule": meta.get("name"),
        "source": meta.get("source"),
        "success": result.get("success") is True,
        "severity": config.get("severity") or "critical",
        "expected": {k: v for k, v in kwargs.items() if k not in ("column", "batch_id")},
        "exception": info.get("exception_message") if info.get("raised_exception") else None,
    }
    for name in ("observed_value", "unexpected_count", "unexpected_percent", "element_count"):
        if name in details:
            entry[name] = details[name]
    if details.get("partial_unexpected_list"):
        entry["partial_unexpected_list"] = details["partial_unexpected_list"]
    return entry
