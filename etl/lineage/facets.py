"""OpenLineage facets built from what the pipeline knows, never typed twice.

The ``schema`` facet comes from the data contract, the ``columnLineage`` facet from the contract's
``transformSourceObjects``, the quality facets from a checkpoint's results, ``outputStatistics``
from what a step wrote, ``errorMessage`` from the exception that failed it (secrets scrubbed).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    error_message_run,
    output_statistics_output_dataset,
    schema_dataset,
)

from etl.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from openlineage.client.facet_v2 import DatasetFacet, InputDatasetFacet

    from etl.contracts.model import ContractSpec


# --- dataset facets -------------------------------------------------------------------------------
def _field_type(prop: Mapping[str, Any]) -> str:
    logical = str(prop.get("logicalType", ""))
    items = prop.get("items")
    if logical == "array" and isinstance(items, Mapping) and not items.get("properties"):
        return f"array<{items.get('logicalType', 'object')}>"
    return logical


def _nested_props(prop: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # Arrays of objects list their item's properties, so field paths read like the contract's
    # transformSourceObjects (data[].public_metrics...).
    items = prop.get("items")
    if isinstance(items, Mapping) and items.get("properties"):
        return list(items["properties"])
    return list(prop.get("properties") or [])


def _schema_field(
    prop: Mapping[str, Any], position: int | None
) -> schema_dataset.SchemaDatasetFacetFields:
    return schema_dataset.SchemaDatasetFacetFields(
        name=str(prop["name"]),
        type=_field_type(prop),
        description=str(prop.get("description", "")) or None,
        ordinal_position=position,
        fields=[_schema_field(p, None) for p in _nested_props(prop)] or None,
    )


def schema_facet(contract: ContractSpec) -> schema_dataset.SchemaDatasetFacet:
    """The ``schema`` facet of a dataset governed by ``contract``.

    Args:
        contract: the data contract of the dataset.

    Returns:
        One field per contract column, in contract order, with its logical type and description;
        nested object and array-item properties become nested fields.
    """
    props = {str(p.get("name")): p for p in contract.raw["schema"][0].get("properties") or []}
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            _schema_field(
                {
                    **props.get(col.name, {}),
                    "name": col.name,
                    "logicalType": col.logical_type,
                    "description": col.description,
                },
                position,
            )
            for position, col in enumerate(contract.columns, start=1)
        ]
    )


def schema_facet_from_columns(
    columns: Sequence[tuple[str, str, str]],
) -> schema_dataset.SchemaDatasetFacet:
    """The ``schema`` facet of a dataset no contract governs (e.g. the quarantine file).

    Args:
        columns: ``(name, type, description)`` triples, as the step that writes the data declares
            them.

    Returns:
        The facet with one field per triple.
    """
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=name, type=type_, description=description or None, ordinal_position=pos
            )
            for pos, (name, type_, description) in enumerate(columns, start=1)
        ]
    )


def column_lineage_facet(
    contract: ContractSpec, sources: Sequence[tuple[str, str]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """The ``columnLineage`` facet: raw JSON paths to curated columns, from the contract.

    Args:
        contract: the curated contract; each column's ``transformSourceObjects`` lists the raw
            JSON paths (``data[].public_metrics.like_count``) it is derived from.
        sources: ``(namespace, name)`` of every input dataset the columns are read from.

    Returns:
        One entry per column that names sources; a column computed from one path without logic is
        an ``IDENTITY`` copy, anything else a ``TRANSFORMATION``.
    """
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for col in contract.columns:
        if not col.sources:
            continue
        subtype = (
            "IDENTITY" if len(col.sources) == 1 and not col.transform_logic else "TRANSFORMATION"
        )
        transformation = column_lineage_dataset.Transformation(
            type="DIRECT", subtype=subtype, description=col.transform_logic or None
        )
        fields[col.name] = column_lineage_dataset.Fields(
            inputFields=[
                column_lineage_dataset.InputField(
                    namespace=namespace, name=name, field=path, transformations=[transformation]
                )
                for namespace, name in sources
                for path in col.sources
            ]
        )
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)


def identity_column_lineage_facet(
    contract: ContractSpec, source: tuple[str, str]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """The ``columnLineage`` facet of a byte-for-byte copy (staging to curated).

    Args:
        contract: the contract both datasets follow.
        source: ``(namespace, name)`` of the copied dataset.

    Returns:
        Every column maps to the same column of ``source`` as an ``IDENTITY`` transformation.
    """
    identity = column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            col.name: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=source[0],
                        name=source[1],
                        field=col.name,
                        transformations=[identity],
                    )
                ]
            )
            for col in contract.columns
        }
    )


@dataclass(frozen=True)
class AssertionResult:
    """One expectation's outcome, as a checkpoint reports it.

    Attributes:
        assertion: the expectation type (``expect_column_values_to_not_be_null``).
        success: whether the data met it.
        column: the column it checks; None for a table-level expectation.
        observed: what the checkpoint observed (observed value or unexpected count), if anything.
        expected: the threshold or rule checked against, if the expectation has one.
        name: a name identifying the check (e.g. the contract rule), if any.
        severity: ``error`` blocks the pipeline, ``warning`` only reports.
        params: the expectation's arguments (bounds, value sets), JSON-safe.
    """

    assertion: str
    success: bool
    column: str | None = None
    observed: Any = None
    expected: Any = None
    name: str | None = None
    severity: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def quality_assertions_facet(
    results: Iterable[AssertionResult],
) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """The ``dataQualityAssertions`` facet of a checkpoint's validated input.

    Args:
        results: every expectation's outcome, in the order the checkpoint ran them.

    Returns:
        One assertion per expectation with its success, column, and observed value as ``actual``.
    """
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=r.assertion,
                success=r.success,
                column=r.column,
                severity=r.severity,
                name=r.name,
                expected=_as_text(r.expected),
                actual=_as_text(r.observed),
                params=dict(r.params) or None,
            )
            for r in results
        ]
    )


def quality_metrics_facet(
    row_count: int,
    null_counts: Mapping[str, int] | None = None,
    size: int | None = None,
    file_count: int | None = None,
) -> data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet:
    """The ``dataQualityMetrics`` facet of a validated input.

    Args:
        row_count: rows evaluated.
        null_counts: empty values per column.
        size: bytes evaluated.
        file_count: objects evaluated.

    Returns:
        The facet.
    """
    return data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        rowCount=row_count,
        bytes=size,
        fileCount=file_count,
        columnMetrics={
            column: data_quality_metrics_input_dataset.ColumnMetrics(
                nullCount=int(count), quantiles=None
            )
            for column, count in (null_counts or {}).items()
        },
    )


def output_statistics_facet(
    row_count: int, size: int | None, file_count: int | None = None
) -> output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet:
    """The ``outputStatistics`` facet of a written dataset.

    Args:
        row_count: rows (or records) written.
        size: bytes written, if known.
        file_count: objects written.

    Returns:
        The facet.
    """
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=row_count, size=size, fileCount=file_count
    )


def error_facet(
    error: BaseException | str, stack_trace: str | None = None
) -> error_message_run.ErrorMessageRunFacet:
    """The ``errorMessage`` run facet of a failed step.

    Args:
        error: the exception that failed the step, or a message.
        stack_trace: the trace to report with a message (an exception brings its own), e.g. one
            formatted in another process.

    Returns:
        The facet with the message and, for an exception, its stack trace, secrets scrubbed.
    """
    if isinstance(error, BaseException):
        message = str(error) or type(error).__name__
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return error_message_run.ErrorMessageRunFacet(
            message=redact(message), programmingLanguage="python", stackTrace=redact(trace)
        )
    return error_message_run.ErrorMessageRunFacet(
        message=redact(error),
        programmingLanguage="python",
        stackTrace=redact(stack_trace) if stack_trace else None,
    )


# --- the contracts' facets ------------------------------------------------------------------------
@cache
def curated_contract() -> ContractSpec:
    """The curated data contract (loaded once per process)."""
    from etl.contracts.model import load_contract

    return load_contract()


@cache
def raw_contract() -> ContractSpec:
    """The raw page contract: the X API response envelope (loaded once per process)."""
    from etl.contracts.model import RAW_PAGE_CONTRACT, load_contract

    return load_contract(RAW_PAGE_CONTRACT)


def schema_facets(*, raw: bool = False) -> dict[str, DatasetFacet]:
    """The ``schema`` facet of a raw window or of a curated dataset, keyed for a dataset.

    Args:
        raw: the raw page contract's schema instead of the curated one's.

    Returns:
        ``{"schema": facet}``.
    """
    return {"schema": schema_facet(raw_contract() if raw else curated_contract())}


QUARANTINE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("kind", "string", "tweet (rejected by the gate), page (unusable body) or api_error"),
    ("reason", "array<string>", "every check the record failed"),
    ("source", "string", "the raw object (store key or file) the record came from"),
    ("record", "object", "the record as received: the post's JSON, or the body as text"),
)
"""Fields of a quarantine line (``etl.steps.transform`` writes them); no contract governs it."""


def _null_counts(results: Iterable[Mapping[str, Any]], columns: set[str]) -> dict[str, int]:
    # GX reports the missing values of a column-map expectation as missing_count; a not-null
    # expectation reports them as unexpected. All of a column's expectations see the same batch,
    # so the largest figure seen for a column is its null count.
    counts: dict[str, int] = {}
    for entry in results:
        column = str(entry.get("column") or "")
        if column not in columns:
            continue
        figures = [entry.get("missing_count")]
        if entry.get("expectation_type") == "expect_column_values_to_not_be_null":
            figures.append(entry.get("unexpected_count"))
        known = [int(f) for f in figures if isinstance(f, int | float)]
        if known:
            counts[column] = max([*known, counts.get(column, 0)])
    return counts


def _assertion(entry: Mapping[str, Any], columns: set[str]) -> AssertionResult:
    # An assertion's column names a field of the dataset's schema; a check on a derived column
    # (the raw gate checks flags computed per page) refers to the whole dataset, its column kept
    # as a parameter.
    column = entry.get("column")
    own = column if column in columns else None
    return AssertionResult(
        assertion=str(entry["expectation_type"]),
        success=bool(entry["success"]),
        column=own,
        observed=entry.get("observed_value", entry.get("unexpected_count")),
        expected=entry.get("expected"),
        name=entry.get("rule"),
        severity=entry.get("severity"),
        params={"column": column} if column and own is None else {},
    )


def checkpoint_facets(
    results: Sequence[Mapping[str, Any]], rows: int, contract: ContractSpec
) -> dict[str, InputDatasetFacet]:
    """The quality facets of a checkpoint's validated input, from its results.

    Args:
        results: one entry per expectation run (``etl.steps.quality.CheckpointSummary.results``:
            ``expectation_type``, ``column``, ``success``, ``observed_value`` or
            ``unexpected_count``, ``missing_count``, ``rule``, ``severity``).
        rows: rows in the validated batch.
        contract: the validated dataset's contract; its columns are the schema's fields.

    Returns:
        ``dataQualityAssertions`` (one assertion per expectation) and ``dataQualityMetrics``
        (rows, and null counts of the contract's columns where the checkpoint measured them).
    """
    columns = set(contract.column_names)
    return {
        "dataQualityAssertions": quality_assertions_facet(_assertion(r, columns) for r in results),
        "dataQualityMetrics": quality_metrics_facet(rows, _null_counts(results, columns)),
    }
