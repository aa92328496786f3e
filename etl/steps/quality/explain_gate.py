"""A failed gate in a user's terms: one sentence per failed expectation, counts and bounds included.

A checkpoint's summary says what GX checked (``expect_table_row_count_to_be_between(table):
observed 1; expected min_value=4``); a user wants what that means for the data ("quarantined 3 of 4
posts (75 %); the contract allows at most 5 %"). :func:`explain_failure` says it for one failed
expectation from its summary entry, the suite parameters the gate ran with (the transform report's
counts, the data interval) and the contract the suite was derived from (its rules' thresholds).
It reads structured fields only, never a formatted message; what it cannot say better falls back
to the GX terms, so no failure goes unexplained. A contract threshold rule is said by
:func:`etl.steps.quality.explain.explain_threshold`, as on the Data Docs pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from etl.steps.quality.explain import MAX_SAMPLE, explain_threshold

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from etl.contracts.model import ContractSpec
    from etl.steps.quality import CheckpointSummary


def _percent(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    text = f"{share:.0f}"
    if text in ("0", "100") and part not in (0, whole):
        text = f"{share:.1f}"  # 1 of 400 is not "0 %"
    return f"{text} %"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sample(entry: Mapping[str, Any]) -> str:
    rows = entry.get("partial_unexpected_index_list") or []
    if rows and all(isinstance(r, dict) for r in rows):
        shown = "; ".join(", ".join(f"{k}={v!r}" for k, v in r.items()) for r in rows[:MAX_SAMPLE])
        return f", e.g. {shown}"
    values = entry.get("partial_unexpected_list") or []
    return f", e.g. {', '.join(repr(v) for v in values[:MAX_SAMPLE])}" if values else ""


def _bad_values(entry: Mapping[str, Any], rows: int, unit: str) -> str | None:
    count = _int(entry.get("unexpected_count"))
    if count is None:
        return None
    what = entry.get("rule") or entry["expectation_type"].removeprefix("expect_column_values_")
    column = entry.get("column") or "the table"
    return (
        f"{count} of {rows} {unit} ({_percent(count, rows)}) break {what} in column {column}"
        f"{_sample(entry)}"
    )


def _row_count_equal(entry: Mapping[str, Any], rows: int, unit: str) -> str:
    expected = (entry.get("expected") or {}).get("value")
    return (
        f"the staged file holds {entry.get('observed_value', rows)} {unit}, but the transform "
        f"reported {expected} curated posts: rows were lost or added between transform and audit"
    )


def _oldest(entry: Mapping[str, Any], rows: int, unit: str) -> str:
    bound = (entry.get("expected") or {}).get("min_value")
    return (
        f"the oldest post in {entry.get('column')} ({entry.get('observed_value')}) is older than "
        f"the data interval's start ({bound})"
    )


def _newest(entry: Mapping[str, Any], rows: int, unit: str) -> str:
    bound = (entry.get("expected") or {}).get("max_value")
    return (
        f"the newest post in {entry.get('column')} ({entry.get('observed_value')}) is not before "
        f"the data interval's end ({bound})"
    )


def _row_count_between(entry: Mapping[str, Any], rows: int, unit: str) -> str:
    expected = entry.get("expected") or {}
    low, high = expected.get("min_value"), expected.get("max_value")
    bounds = " and ".join(
        t
        for t in (f"at least {low}" if low is not None else "", f"at most {high}" if high else "")
        if t
    )
    return f"the batch holds {entry.get('observed_value', rows)} {unit}; it must hold {bounds}"


def _missing_column(entry: Mapping[str, Any]) -> str:
    return f"column {entry.get('column') or '?'} could not be checked: {entry['exception']}"


_BY_TYPE: dict[str, Callable[[Mapping[str, Any], int, str], str]] = {
    "expect_table_row_count_to_equal": _row_count_equal,
    "expect_column_min_to_be_between": _oldest,
    "expect_column_max_to_be_between": _newest,
    "expect_table_row_count_to_be_between": _row_count_between,
}


def _gx_terms(entry: Mapping[str, Any]) -> str:
    target = f"{entry['expectation_type']} on {entry.get('column') or 'the table'}"
    if "observed_value" in entry:
        expected = {k: v for k, v in (entry.get("expected") or {}).items() if v is not None}
        bounds = ", ".join(f"{k}={v!r}" for k, v in expected.items() if not isinstance(v, list))
        return f"{target}: observed {entry['observed_value']!r}" + (
            f", expected {bounds}" if bounds else ""
        )
    return f"{target} failed"


def explain_failure(
    entry: Mapping[str, Any],
    parameters: Mapping[str, Any],
    rows: int,
    contract: ContractSpec | None = None,
    unit: str = "rows",
) -> str:
    """One failed expectation in a user's terms.

    Args:
        entry: the expectation's entry in ``CheckpointSummary.failed`` (type, column, rule,
            severity, observed value, counts, expected bounds, sample).
        parameters: the suite parameters the gate ran with (``curated``, ``quarantined``,
            ``interval_start``...).
        rows: rows in the validated batch.
        contract: the contract the suite was derived from, for its rules' thresholds.
        unit: what a row of the batch is, plural (``rows``; ``pages`` for the raw page gate).

    Returns:
        A sentence without a final stop, e.g. ``quarantined 3 of 4 posts (75 %); the contract
        allows at most 5 %``; a warning (non-critical) expectation says so at its end.
    """
    text = _explained(entry, parameters, rows, contract, unit) or _gx_terms(entry)
    severity = entry.get("severity")
    return (
        text if severity in (None, "critical") else f"{text} (severity {severity}: reported only)"
    )


def _explained(
    entry: Mapping[str, Any],
    parameters: Mapping[str, Any],
    rows: int,
    contract: ContractSpec | None,
    unit: str,
) -> str | None:
    if entry.get("exception"):
        return _missing_column(entry)
    share = explain_threshold(entry, parameters, contract)
    if share:
        return share
    if "unexpected_count" in entry:
        return _bad_values(entry, rows, unit)
    explain = _BY_TYPE.get(str(entry.get("expectation_type")))
    if explain is not None and "observed_value" in entry:
        return explain(entry, rows, unit)
    return None


def explain_summary(
    summary: CheckpointSummary, contract: ContractSpec | None = None, unit: str = "rows"
) -> list[str]:
    """Every failed expectation of a checkpoint in a user's terms, critical ones first.

    Args:
        summary: a checkpoint summary.
        contract: the contract the suite was derived from.
        unit: what a row of the batch is, plural (``rows``, ``pages``).

    Returns:
        One sentence per failed expectation.
    """
    failed = sorted(summary.failed, key=lambda f: f.get("severity") != "critical")
    return [explain_failure(f, summary.parameters, summary.rows, contract, unit) for f in failed]
