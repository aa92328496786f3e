"""The Pandera gate over a chunk of posts: one vectorized, lazy validation, reasons per row."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NamedTuple

from etl.contracts.pandera_schema import Mistyped
from etl.steps.transform.values import SHOWN

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

    from etl.steps.transform.values import Column


class GateReason(NamedTuple):
    """Why the gate rejected a post, kept as data from the gate to the report."""

    check: str
    """The report's key: ``column:check`` (the check's name without its arguments)."""
    text: str
    """As the quarantine line quotes it: ``column: check (value)``."""


def _reason(name: str, check: str, text: str) -> GateReason:
    return GateReason(f"{name}:{check.split(' ', 1)[0]}", text)


def frame(
    names: list[str], kinds: list[str], columns: list[Column], types: list[set[type]]
) -> pd.DataFrame:
    """The columns as the frame the gate validates.

    Args:
        names: column names.
        kinds: their logical types.
        columns: their cells.
        types: the types each column holds.

    Returns:
        Text columns as ``str``, integer columns as ``Int64``; a column holding a Mistyped cell
        (or an integer beyond int64) as ``object``, for its checks to reject.
    """
    import pandas as pd

    def series(kind: str, values: Column, held: set[type]) -> pd.Series:
        if Mistyped in held:
            return pd.Series(values, dtype=object)  # the json_type check rejects those cells
        if kind != "integer":
            return pd.Series(values, dtype="str")
        with contextlib.suppress(TypeError, OverflowError):  # beyond int64: coercion judges
            return pd.Series(pd.array(values, dtype="Int64"))
        return pd.Series(values, dtype=object)

    return pd.DataFrame(
        {
            name: series(kind, values, held)
            for name, kind, values, held in zip(names, kinds, columns, types, strict=True)
        }
    )


def gate_reasons(
    schema: pa.DataFrameSchema, data: pd.DataFrame
) -> tuple[dict[int, list[GateReason]], list[GateReason]]:
    """Validate a chunk lazily.

    Args:
        schema: the gate, built from the contract.
        data: the chunk's frame (see :func:`frame`).

    Returns:
        Reasons by row position, and failures that hit every row (a missing column).
    """
    import pandera.pandas as pa

    try:
        schema.validate(data, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
    else:
        return {}, []
    failures: dict[int, list[tuple[str, str, Any]]] = {}
    every_row: list[GateReason] = []
    for context, column, check, case, index in zip(
        cases["schema_context"],
        cases["column"],
        cases["check"],
        cases["failure_case"],
        cases["index"],
        strict=True,
    ):
        # Frame-level failures (a missing column) name the column in failure_case.
        name = case if context == "DataFrameSchema" else column
        if index is None or index != index:  # NaN: the failure is about the column, not a value
            every_row.append(_reason(str(name), str(check), f"{name}: {check}"))
        else:
            failures.setdefault(int(index), []).append((str(name), str(check), case))
    by_row = {
        row: [
            _reason(name, check, f"{name}: {check} ({_shown(case)})")
            for name, check, case in _one_per_cause(found)
        ]
        for row, found in failures.items()
    }
    return by_row, every_row


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "…")


def _one_per_cause(found: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """A value of the wrong JSON type also fails the column's dtype and its coercion, and one
    that fails the coercion fails the dtype: the first cause is reason enough."""
    mistyped = {name for name, check, _ in found if check.startswith("json_type")}
    uncoerced = {name for name, check, _ in found if check.startswith("coerce_dtype(")}
    return [
        (name, check, case)
        for name, check, case in found
        if not (check.startswith(("dtype(", "coerce_dtype(")) and name in mistyped)
        and not (check.startswith("dtype(") and name in uncoerced)
    ]
