"""OpenLineage for every step: datasets, facets built from what the pipeline knows, and emission.

Airflow and the CLI name jobs and datasets the same way, so lineage is one graph whichever way the
pipeline ran:

- jobs: namespace from ``OPENLINEAGE_NAMESPACE`` (Airflow's provider reads the same variable when
  ``AIRFLOW__OPENLINEAGE__NAMESPACE`` is unset), name ``<dag_id>.<task_id>``, e.g.
  ``tweetpipe.transform``, which is what the Airflow provider calls the DAG's tasks;
- datasets: namespace ``Store.namespace`` (``s3://<bucket>`` or ``file``), name the object key or
  prefix (``raw/...``, ``staging/...``, ``curated/...``, ``quarantine/...``).

Facets are never typed twice: the ``schema`` facet comes from the data contract, the quality facets
from the checkpoint's results, the ``columnLineage`` facet from the contract's
``transformSourceObjects``. This module has no Airflow imports; ``etl.adapters.airflow.lineage_operator`` hands the
same :class:`StepLineage` to the Airflow provider, and :func:`lineage_run` emits it from the CLI
through the openlineage-python client.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.uuid import generate_new_uuid

from etl import xapi
from etl.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from openlineage.client import OpenLineageClient
    from openlineage.client.facet_v2 import (
        DatasetFacet,
        InputDatasetFacet,
        JobFacet,
        OutputDatasetFacet,
        RunFacet,
    )

    from etl.contracts.model import ContractSpec
    from etl.storage.store import Store

log = logging.getLogger(__name__)
_D = TypeVar("_D", InputDataset, OutputDataset)

DAG_ID = "tweetpipe"
"""The DAG's id: the first part of every job name, in Airflow and from the CLI."""

PER_SOURCE_GROUP = "per_source"
"""The DAG's mapped task group: per-source task ids are ``per_source.<step>``."""

PER_SOURCE_STEPS = ("extract", "validate_raw", "transform", "validate_curated", "publish")
"""The steps that run once per source inside :data:`PER_SOURCE_GROUP`."""

DEFAULT_NAMESPACE = "tweetpipe"
"""Job namespace when neither ``OPENLINEAGE_NAMESPACE`` nor Airflow's setting names one."""

DEFAULT_EVENTS_FILE = "lineage/events.jsonl"
"""Where the CLI appends JSON Lines events when nothing else is configured, relative to the run's
local output directory (the demo's layout too)."""

X_API_NAMESPACE = xapi.BASE_URL
"""Namespace of the X API endpoints read by the extract step (tweepy's base URL)."""


# --- names --------------------------------------------------------------------------------------
def job_namespace() -> str:
    """The job namespace shared by Airflow and the CLI.

    Returns:
        ``OPENLINEAGE_NAMESPACE``, else ``AIRFLOW__OPENLINEAGE__NAMESPACE``, else ``tweetpipe``.
    """
    for var in ("OPENLINEAGE_NAMESPACE", "AIRFLOW__OPENLINEAGE__NAMESPACE"):
        if value := os.environ.get(var, "").strip():
            return value
    return DEFAULT_NAMESPACE


def job_name(step: str) -> str:
    """The job name of a step, as the Airflow provider names the DAG's task (``dag.task_id``).

    Args:
        step: the task function's name (``extract``, ``transform``, ``validate_curated``...).

    Returns:
        ``tweetpipe.per_source.<step>`` for the per-source steps, else ``tweetpipe.<step>``.
    """
    task_id = f"{PER_SOURCE_GROUP}.{step}" if step in PER_SOURCE_STEPS else step
    return f"{DAG_ID}.{task_id}"


# --- dataset facets -----------------------------------------------------------------------------
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


# --- datasets -----------------------------------------------------------------------------------
def input_dataset(
    namespace: str,
    name: str,
    facets: Mapping[str, DatasetFacet] | None = None,
    input_facets: Mapping[str, InputDatasetFacet] | None = None,
) -> InputDataset:
    """An input dataset.

    Args:
        namespace: ``Store.namespace`` (``s3://bucket`` or ``file``), or an API base URL.
        name: the object key or prefix.
        facets: dataset facets (``schema``, ``columnLineage``).
        input_facets: input facets (``dataQualityAssertions``, ``dataQualityMetrics``).

    Returns:
        The dataset.
    """
    return InputDataset(
        namespace=namespace,
        name=name,
        facets=dict(facets or {}),
        inputFacets=dict(input_facets or {}),
    )


def output_dataset(
    namespace: str,
    name: str,
    facets: Mapping[str, DatasetFacet] | None = None,
    output_facets: Mapping[str, OutputDatasetFacet] | None = None,
) -> OutputDataset:
    """An output dataset.

    Args:
        namespace: ``Store.namespace`` (``s3://bucket`` or ``file``).
        name: the object key or prefix.
        facets: dataset facets (``schema``, ``columnLineage``).
        output_facets: output facets (``outputStatistics``).

    Returns:
        The dataset.
    """
    return OutputDataset(
        namespace=namespace,
        name=name,
        facets=dict(facets or {}),
        outputFacets=dict(output_facets or {}),
    )


@dataclass
class StepLineage:
    """What one run of a step read and wrote, with facets; the same for Airflow and the CLI.

    Attributes:
        inputs: datasets read.
        outputs: datasets written.
        run_facets: run facets (``errorMessage`` on a failed gate).
    """

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)
    run_facets: dict[str, RunFacet] = field(default_factory=dict)

    def merge(self, other: StepLineage) -> StepLineage:
        """This lineage with ``other``'s datasets added; ``other`` wins on a dataset name clash.

        Args:
            other: lineage learned later in the run (e.g. at completion).

        Returns:
            A new :class:`StepLineage`.
        """
        return StepLineage(
            inputs=_merge_datasets(self.inputs, other.inputs),
            outputs=_merge_datasets(self.outputs, other.outputs),
            run_facets={**self.run_facets, **other.run_facets},
        )


def _merge_datasets(first: list[_D], second: list[_D]) -> list[_D]:
    later = {(d.namespace, d.name) for d in second}
    return [d for d in first if (d.namespace, d.name) not in later] + list(second)


@dataclass(frozen=True)
class TaskCall:
    """One call of a step, as the orchestrator (Airflow or the CLI) saw it.

    Attributes:
        arguments: the step's arguments by parameter name (object keys, small summaries).
        result: what the step returned; None before it finished or when it failed.
        error: the exception that failed the step, if it failed.
    """

    arguments: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None
    error: BaseException | None = None


LineageBuilder = Callable[[TaskCall], StepLineage]
"""Builds a step's lineage from one call; pure, no I/O."""

TASK_LINEAGE: dict[str, LineageBuilder] = {}
"""Lineage builder of each DAG task, by task function name (filled below)."""


def task_lineage(step: str, call: TaskCall, builder: LineageBuilder | None = None) -> StepLineage:
    """The lineage of one call of ``step``; empty (never an exception) when it cannot be built.

    Args:
        step: the task function's name, used to find the builder in :data:`TASK_LINEAGE`.
        call: the call's arguments and outcome.
        builder: a builder to use instead of the registered one.

    Returns:
        Datasets and facets for the run event.
    """
    build = builder or TASK_LINEAGE.get(step)
    if build is None:
        return StepLineage()
    try:
        return build(call)
    except Exception as exc:  # noqa: BLE001
        # Lineage observes the pipeline; a builder bug must not fail the task it describes.
        log.warning("lineage for %s could not be built: %s", step, redact(repr(exc)))
        return StepLineage()


# --- emission from the CLI ----------------------------------------------------------------------
def _configured_elsewhere() -> bool:
    """Whether the user configured an OpenLineage transport the client finds on its own."""
    if os.environ.get("OPENLINEAGE_CONFIG") or os.environ.get("OPENLINEAGE_URL"):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in os.environ.items()):
        return True
    candidates = (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml")
    return any(p.is_file() for p in candidates)


def lineage_client(default_file: Path | None = None) -> tuple[OpenLineageClient, str]:
    """The OpenLineage client the CLI emits through, from configuration.

    The order: the openlineage-python client's own configuration (``OPENLINEAGE_CONFIG``, an
    ``openlineage.yml`` in the working directory or ``~/.openlineage``, ``OPENLINEAGE__TRANSPORT__*``
    variables, ``OPENLINEAGE_URL`` for Marquez); else Airflow's ``AIRFLOW__OPENLINEAGE__TRANSPORT``
    JSON, so CLI and DAG runs land in the same place; else ``default_file`` (JSON Lines, appended
    to); else the console. ``OPENLINEAGE_DISABLED=true`` turns emission off.

    Args:
        default_file: the JSON Lines file when nothing is configured (see :func:`events_file`).

    Returns:
        The client and a short description of where events go (shown in the CLI summary).
    """
    from openlineage.client import OpenLineageClient

    if _configured_elsewhere() or os.environ.get("OPENLINEAGE_DISABLED", "").lower() == "true":
        client = OpenLineageClient()
    else:
        airflow_transport = os.environ.get("AIRFLOW__OPENLINEAGE__TRANSPORT", "").strip()
        if airflow_transport:
            transport = json.loads(airflow_transport)
        elif default_file is not None:
            path = default_file.resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            transport = {"type": "file", "log_file_path": str(path), "append": True}
        else:
            transport = {"type": "console"}
        client = OpenLineageClient(config={"transport": transport})
    return client, _describe(client)


def _describe(client: OpenLineageClient) -> str:
    transport = client.transport
    if transport.kind == "noop":
        return "disabled"
    config = getattr(transport, "config", None)
    where = getattr(transport, "url", None) or getattr(config, "log_file_path", None) or ""
    return f"{transport.kind} {where}".strip()


def events_file(directory: Path | str | None) -> Path | None:
    """The default events file of a CLI run whose outputs go to ``directory``.

    Args:
        directory: the run's output directory (``--out``, a local store); None when the outputs
            are not local (an S3 store).

    Returns:
        ``<directory>/lineage/events.jsonl``, or None: without a local output directory there is
        no sensible place for a file, and events go to the console unless configured.
    """
    return Path(directory) / DEFAULT_EVENTS_FILE if directory else None


class LineageRun:
    """One CLI run of a step: collects lineage while the step runs; see :func:`lineage_run`.

    Attributes:
        step: the step (task id) the run belongs to.
        run_id: the OpenLineage run id (UUIDv7).
        lineage: what the run read and wrote so far.
        destination: where the events go, for the CLI summary.
        error: the failure, when the step failed without raising (e.g. exit code 1 on a breach).
    """

    def __init__(self, step: str, lineage: StepLineage, destination: str) -> None:
        self.step = step
        self.run_id = str(generate_new_uuid())
        self.lineage = lineage
        self.destination = destination
        self.error: BaseException | str | None = None
        self.stack_trace: str | None = None

    def add(self, lineage: StepLineage) -> None:
        """Add what the step learned (outputs, statistics, quality results).

        Args:
            lineage: datasets and facets; a dataset already present is replaced.
        """
        self.lineage = self.lineage.merge(lineage)

    def fail(self, error: BaseException | str, stack_trace: str | None = None) -> None:
        """Mark the run failed although the step returned normally.

        Args:
            error: the breach or failure, for the ``errorMessage`` facet.
            stack_trace: with a message, the trace to report (see :func:`error_facet`).
        """
        self.error = error
        self.stack_trace = stack_trace


def _event(
    state: RunState,
    run: LineageRun,
    nominal: tuple[datetime, datetime] | None,
    extra_run_facets: Mapping[str, RunFacet] | None = None,
) -> RunEvent:
    run_facets: dict[str, RunFacet] = dict(run.lineage.run_facets)
    if nominal is not None:
        run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=nominal[0].isoformat(), nominalEndTime=nominal[1].isoformat()
        )
    run_facets.update(extra_run_facets or {})
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="TWEETPIPE", jobType="TASK"
        )
    }
    return RunEvent(
        eventType=state,
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run.run_id, facets=run_facets),
        job=Job(namespace=job_namespace(), name=job_name(run.step), facets=job_facets),
        inputs=list(run.lineage.inputs),
        outputs=list(run.lineage.outputs),
    )


def _emit(client: OpenLineageClient, event: RunEvent) -> None:
    # Lineage is an observer: a broken transport must never fail the pipeline it observes.
    try:
        client.emit(event)
    except Exception as exc:  # noqa: BLE001
        log.warning("OpenLineage event for %s not emitted: %s", event.job.name, redact(str(exc)))


@contextmanager
def lineage_run(
    step: str,
    inputs: Sequence[InputDataset] = (),
    *,
    default_file: Path | None = None,
    nominal: tuple[datetime, datetime] | None = None,
) -> Iterator[LineageRun]:
    """Emit START, then COMPLETE or FAIL, around one CLI run of a step.

    The body adds outputs and facets with :meth:`LineageRun.add` and marks a breach that does not
    raise with :meth:`LineageRun.fail`. An exception from the body emits FAIL with the
    ``errorMessage`` facet and propagates.

    Args:
        step: the task id in the DAG; the job is ``tweetpipe.<step>`` as in Airflow.
        inputs: datasets known before the step runs (sent with START).
        default_file: JSON Lines file when no transport is configured (see :func:`lineage_client`).
        nominal: the data interval, sent as the ``nominalTime`` run facet.

    Yields:
        The run, to add lineage to.
    """
    client, destination = lineage_client(default_file)
    run = LineageRun(step, StepLineage(inputs=list(inputs)), destination)
    _emit(client, _event(RunState.START, run, nominal))
    try:
        yield run
    except BaseException as exc:
        _emit(client, _event(RunState.FAIL, run, nominal, {"errorMessage": error_facet(exc)}))
        raise
    else:
        if run.error is not None:
            failed = {"errorMessage": error_facet(run.error, run.stack_trace)}
            _emit(client, _event(RunState.FAIL, run, nominal, failed))
        else:
            _emit(client, _event(RunState.COMPLETE, run, nominal))
    finally:
        client.close(timeout=5.0)


# --- the steps ----------------------------------------------------------------------------------
# Each builder reads the step's summary (what the DAG task returns to XCom and the CLI prints):
# every per-source summary carries ``namespace`` (the store's), ``slug`` and ``source``; the keys
# each step adds are named in its builder. Builders do no I/O, so Airflow and the CLI agree.
_ENDPOINT_PATHS = {"account": xapi.TIMELINE_PATH, "query": xapi.SEARCH_PATH}
_PAGE_NAME = "page-"


@cache
def _curated_contract() -> ContractSpec:
    from etl.contracts.model import load_contract

    return load_contract()


@cache
def _raw_contract() -> ContractSpec:
    from etl.contracts.model import RAW_PAGE_CONTRACT, load_contract

    return load_contract(RAW_PAGE_CONTRACT)


def _schema(raw: bool = False) -> dict[str, DatasetFacet]:
    return {"schema": schema_facet(_raw_contract() if raw else _curated_contract())}


def raw_prefix(summary: Mapping[str, Any]) -> str:
    """The ``raw/`` prefix (one source, one window) a per-source summary points at.

    Args:
        summary: a summary with ``manifest_key`` or ``page_keys``.

    Returns:
        ``raw/source=<slug>/endpoint=<endpoint>/window=<label>``.
    """
    key = summary.get("manifest_key") or next(iter(summary.get("page_keys") or ()), "")
    if not key:
        raise KeyError("the summary names no raw object (manifest_key or page_keys)")
    return str(key).rsplit("/", 1)[0]


def object_name(store_url: str | None, key: str) -> str:
    """The dataset name of a store object: its key, under the bucket's key prefix on S3.

    Args:
        store_url: the store's URL (``s3://bucket/prefix`` or a directory); None for a key alone.
        key: the object key or key prefix in the store (``raw/...``, ``curated/...``).

    Returns:
        ``prefix/key`` for an S3 store with a prefix (the object's path in the bucket, as
        OpenLineage names S3 datasets), else ``key``.
    """
    if store_url and store_url.startswith("s3://"):
        prefix = store_url[len("s3://") :].partition("/")[2].strip("/")
        if prefix:
            return f"{prefix}/{key}"
    return key


def _named(summary: Mapping[str, Any], key: str) -> str:
    return object_name(summary.get("store"), key)


def api_dataset(source_kind: str) -> InputDataset:
    """The X API endpoint a source is read from, as an input dataset.

    Args:
        source_kind: ``account`` (user timeline) or ``query`` (recent search).

    Returns:
        The endpoint under :data:`X_API_NAMESPACE`, with the response-page schema.
    """
    return input_dataset(X_API_NAMESPACE, _ENDPOINT_PATHS[source_kind], facets=_schema(raw=True))


def extract_outputs(summary: Mapping[str, Any]) -> StepLineage:
    """Lineage of one source's extract, from its summary.

    Args:
        summary: ``source``, ``namespace``, ``manifest_key``, ``page_keys``, ``tweets``,
            ``pages`` and, when known, ``bytes``.

    Returns:
        The endpoint as input; the window's ``raw/`` prefix as output with its statistics.
    """
    stats = output_statistics_facet(
        int(summary.get("tweets", 0)), summary.get("bytes"), file_count=int(summary["pages"])
    )
    raw = output_dataset(
        summary["namespace"],
        _named(summary, raw_prefix(summary)),
        facets=_schema(raw=True),
        output_facets={"outputStatistics": stats},
    )
    return StepLineage(inputs=[api_dataset(summary["source"]["kind"])], outputs=[raw])


def _extract(call: TaskCall) -> StepLineage:
    if isinstance(call.result, Mapping):
        return extract_outputs(call.result)
    source = call.arguments.get("source") or {}
    return StepLineage(inputs=[api_dataset(source["kind"])]) if "kind" in source else StepLineage()


def _checkpoint(call: TaskCall) -> Mapping[str, Any] | None:
    """The checkpoint summary of a gate task: in its result, or carried by its failure."""
    if isinstance(call.result, Mapping) and isinstance(call.result.get("checkpoint"), Mapping):
        checkpoint: Mapping[str, Any] = call.result["checkpoint"]
        return checkpoint
    error: BaseException | None = call.error
    for _ in range(5):  # the gate's QualityGateFailed may be wrapped (AirflowFailException)
        if error is None:
            return None
        summary = getattr(error, "summary", None)
        if isinstance(summary, Mapping):
            return summary
        if summary is not None and callable(getattr(summary, "to_dict", None)):
            as_dict: Mapping[str, Any] = summary.to_dict()
            return as_dict
        error = error.__cause__ or error.__context__
    return None


QUARANTINE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("kind", "string", "tweet (rejected by the gate), page (unusable body) or api_error"),
    ("reason", "array<string>", "every check the record failed"),
    ("source", "string", "the raw object (store key or file) the record came from"),
    ("record", "object", "the record as received: the post's JSON, or the body as text"),
)
"""Fields of a quarantine line (``etl.steps.transform`` writes them); no contract governs quarantine."""


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
    checkpoint: Mapping[str, Any], contract: ContractSpec
) -> dict[str, InputDatasetFacet]:
    """The quality facets of a checkpoint's validated input, from its summary.

    Args:
        checkpoint: ``etl.steps.quality.CheckpointSummary.to_dict()``: ``results`` (one entry per
            expectation run: ``expectation_type``, ``column``, ``success``, ``observed_value`` or
            ``unexpected_count``, ``missing_count``, ``rule``, ``severity``) and ``rows``.
        contract: the validated dataset's contract; its columns are the schema's fields.

    Returns:
        ``dataQualityAssertions`` (one assertion per expectation) and ``dataQualityMetrics``
        (rows, and null counts of the contract's columns where the checkpoint measured them).
    """
    results = list(checkpoint.get("results") or [])
    columns = set(contract.column_names)
    return {
        "dataQualityAssertions": quality_assertions_facet(_assertion(r, columns) for r in results),
        "dataQualityMetrics": quality_metrics_facet(
            int(checkpoint.get("rows", 0)), _null_counts(results, columns)
        ),
    }


def _gate(
    call: TaskCall,
    argument: str,
    contract: ContractSpec,
    build_input: Callable[[Mapping[str, Any]], InputDataset],
) -> StepLineage:
    upstream = call.arguments.get(argument)
    if not isinstance(upstream, Mapping):
        return StepLineage()
    validated = build_input(upstream)
    checkpoint = _checkpoint(call)
    if checkpoint is not None:
        facets = checkpoint_facets(checkpoint, contract)
        validated.inputFacets = {**(validated.inputFacets or {}), **facets}
    return StepLineage(inputs=[validated])


def _validate_raw(call: TaskCall) -> StepLineage:
    return _gate(
        call,
        "landed",
        _raw_contract(),
        lambda s: input_dataset(s["namespace"], _named(s, raw_prefix(s)), facets=_schema(raw=True)),
    )


def _validate_curated(call: TaskCall) -> StepLineage:
    return _gate(
        call,
        "staged",
        _curated_contract(),
        lambda s: input_dataset(s["namespace"], _named(s, s["staging_key"]), facets=_schema()),
    )


def transform_outputs(summary: Mapping[str, Any], raw: str) -> StepLineage:
    """Lineage of one source's transform, from its summary.

    Args:
        summary: ``namespace``, ``staging_key``, ``quarantine_key``, ``size`` (candidate bytes)
            and ``report`` (the transform report: ``curated``, ``quarantined``...).
        raw: the name of the ``raw/`` prefix the transform read (from its input summary).

    Returns:
        The raw prefix as input; the staged candidate (schema, column lineage from the raw JSON
        paths, statistics) and the quarantine (schema, statistics) as outputs.
    """
    namespace, report = summary["namespace"], summary.get("report") or {}
    staging = output_dataset(
        namespace,
        _named(summary, summary["staging_key"]),
        facets={
            **_schema(),
            "columnLineage": column_lineage_facet(_curated_contract(), [(namespace, raw)]),
        },
        output_facets={
            "outputStatistics": output_statistics_facet(
                int(report.get("curated", 0)), summary.get("size")
            )
        },
    )
    quarantine = output_dataset(
        namespace,
        _named(summary, summary["quarantine_key"]),
        facets={"schema": schema_facet_from_columns(QUARANTINE_COLUMNS)},
        output_facets={
            "outputStatistics": output_statistics_facet(
                int(report.get("quarantined", 0)), summary.get("quarantine_size")
            )
        },
    )
    return StepLineage(
        inputs=[input_dataset(namespace, raw, facets=_schema(raw=True))],
        outputs=[staging, quarantine],
    )


def _transform(call: TaskCall) -> StepLineage:
    checked = call.arguments.get("checked")
    if not isinstance(checked, Mapping):
        return StepLineage()
    raw = _named(checked, raw_prefix(checked))
    if isinstance(call.result, Mapping):
        return transform_outputs(call.result, raw)
    return StepLineage(inputs=[input_dataset(checked["namespace"], raw, facets=_schema(raw=True))])


def publish_outputs(summary: Mapping[str, Any]) -> StepLineage:
    """Lineage of one source's publish, from its summary.

    Args:
        summary: ``namespace``, ``staging_key``, ``curated_key``, ``size`` and ``report``.

    Returns:
        The audited candidate as input; the curated CSV as output (schema, identity column lineage
        from the candidate, statistics).
    """
    namespace, report = summary["namespace"], summary.get("report") or {}
    staging = (namespace, _named(summary, summary["staging_key"]))
    curated = output_dataset(
        namespace,
        _named(summary, summary["curated_key"]),
        facets={
            **_schema(),
            "columnLineage": identity_column_lineage_facet(_curated_contract(), staging),
        },
        output_facets={
            "outputStatistics": output_statistics_facet(
                int(report.get("curated", 0)), summary.get("size")
            )
        },
    )
    return StepLineage(inputs=[input_dataset(*staging, facets=_schema())], outputs=[curated])


def _publish(call: TaskCall) -> StepLineage:
    if isinstance(call.result, Mapping):
        return publish_outputs(call.result)
    audited = call.arguments.get("audited")
    if not isinstance(audited, Mapping):
        return StepLineage()
    return StepLineage(
        inputs=[
            input_dataset(
                audited["namespace"], _named(audited, audited["staging_key"]), facets=_schema()
            )
        ]
    )


TASK_LINEAGE.update(
    extract=_extract,
    validate_raw=_validate_raw,
    transform=_transform,
    validate_curated=_validate_curated,
    publish=_publish,
)


# --- the CLI's view of the same steps -----------------------------------------------------------
_STORE_AREAS = ("raw", "staging", "curated", "quarantine")


def local_name(path: Path | str) -> str:
    """The dataset name of a local file or directory, matching the store's key when it is one.

    A path inside a local store (``.../raw/source=a/...``) is named by its key, so a CLI run over
    a store directory joins the graph Airflow drew; a landed page stands for its window prefix,
    as in the DAG. Anything else is named by its absolute path (OpenLineage's ``file`` naming).

    Args:
        path: an input or output of a CLI run.

    Returns:
        ``raw/source=.../window=...``-style key, or the absolute path.
    """
    resolved = Path(path).resolve()
    if resolved.name.startswith(_PAGE_NAME) and resolved.parent.name.startswith("window="):
        resolved = resolved.parent
    parts = resolved.parts
    areas = [i for i, part in enumerate(parts) if part in _STORE_AREAS]
    return "/".join(parts[areas[-1] :]) if areas else str(resolved)


def cli_transform_inputs(paths: Iterable[Path | str]) -> list[InputDataset]:
    """The inputs of ``tweetpipe transform``: raw pages named as in the store, with the schema.

    Args:
        paths: the files and directories given on the command line.

    Returns:
        One dataset per distinct name, in argument order.
    """
    names = dict.fromkeys(local_name(p) for p in paths)
    return [input_dataset("file", name, facets=_schema(raw=True)) for name in names]


def cli_transform_outputs(
    paths: Iterable[Path | str], csv_path: Path, quarantine_path: Path, report: Mapping[str, Any]
) -> StepLineage:
    """The outputs of ``tweetpipe transform``: the curated CSV and the quarantine, with facets.

    Args:
        paths: the inputs given on the command line (the column lineage points at them).
        csv_path: the curated CSV written.
        quarantine_path: the quarantine written.
        report: ``TransformReport.to_dict()``.

    Returns:
        The same facets the DAG's transform task reports, for local files; the CSV only when it
        was written (a breached gate writes none).
    """
    sources = [("file", d.name) for d in cli_transform_inputs(paths)]
    contract = _curated_contract()

    def size(path: Path) -> int | None:
        return path.stat().st_size if path.is_file() else None

    curated = output_dataset(
        "file",
        local_name(csv_path),
        facets={**_schema(), "columnLineage": column_lineage_facet(contract, sources)},
        output_facets={
            "outputStatistics": output_statistics_facet(
                int(report.get("curated", 0)), size(csv_path)
            )
        },
    )
    quarantine = output_dataset(
        "file",
        local_name(quarantine_path),
        facets={"schema": schema_facet_from_columns(QUARANTINE_COLUMNS)},
        output_facets={
            "outputStatistics": output_statistics_facet(
                int(report.get("quarantined", 0)), size(quarantine_path)
            )
        },
    )
    # On a breach the transform deletes the CSV: only the quarantine was written.
    return StepLineage(outputs=[curated, quarantine] if csv_path.is_file() else [quarantine])


def cli_extract_inputs(source_kinds: Iterable[str]) -> list[InputDataset]:
    """The inputs of ``tweetpipe extract``: the X API endpoints its sources read.

    Args:
        source_kinds: ``account`` or ``query``, one per source.

    Returns:
        One dataset per endpoint.
    """
    return [api_dataset(kind) for kind in dict.fromkeys(source_kinds)]


def cli_extract_outputs(summaries: Iterable[Mapping[str, Any]], store: Store) -> StepLineage:
    """The lineage of ``tweetpipe extract`` over several sources (one run, as one CLI call).

    Args:
        summaries: ``SourceResult.to_dict()`` of every source that landed.
        store: the store they landed in (its namespace and URL name the datasets).

    Returns:
        Every endpoint read and every ``raw/`` window written.
    """
    lineage = StepLineage()
    for summary in summaries:
        named = {**summary, "namespace": store.namespace, "store": store.url}
        lineage = lineage.merge(extract_outputs(named))
    return lineage
