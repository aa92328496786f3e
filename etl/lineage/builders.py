"""Per-step lineage: what each step read and wrote, built from the payloads the steps hand on.

A DAG task's builder reads the task's typed payloads (:mod:`etl.payloads`): the one the task was
given (known at START) and the one it returned (at COMPLETE), or the exception that failed it.
The CLI's builders read what the command line knows (paths, the transform report, the extract
results). Both name the same jobs and datasets with the same facets, so lineage is one graph
whichever way the pipeline ran. Builders do no I/O.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from openlineage.client.facet_v2 import lifecycle_state_change_dataset

from etl.errors import QualityGateFailed, SpendingStopped
from etl.lineage.cost_facet import FACET_KEY, cost_facet
from etl.lineage.datasets import (
    StepLineage,
    api_dataset,
    input_dataset,
    local_name,
    output_dataset,
    raw_prefix,
)
from etl.lineage.facets import (
    QUARANTINE_COLUMNS,
    checkpoint_facets,
    column_lineage_facet,
    curated_contract,
    identity_column_lineage_facet,
    output_statistics_facet,
    raw_contract,
    schema_facet_from_columns,
    schema_facets,
)
from etl.redact import redact
from etl.storage.keys import object_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from openlineage.client.event_v2 import InputDataset, OutputDataset

    from etl.contracts.model import ContractSpec
    from etl.payloads import (
        CheckpointPayload,
        ExtractPayload,
        PlannedSource,
        PublishPayload,
        RetentionPayload,
        TransformPayload,
        ValidateCuratedPayload,
        ValidateRawPayload,
    )
    from etl.steps.extract.run import SourceResult
    from etl.storage.store import Store

log = logging.getLogger(__name__)

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True)
class TaskCall(Generic[_In, _Out]):
    """One call of a task, as the orchestrator saw it.

    Attributes:
        payload: the task's input payload (its first parameter: the payload the upstream task
            returned, or a planned source); None when the orchestrator could not tell.
        result: the payload the task returned; None before it finished or when it failed.
        error: the exception that failed the task, if it failed.
    """

    payload: _In | None = None
    result: _Out | None = None
    error: BaseException | None = None


LineageBuilder = Callable[[TaskCall[Any, Any]], StepLineage]
"""Builds a task's lineage from one call; pure, no I/O."""


def task_lineage(
    step: str,
    call: TaskCall[Any, Any],
    builder: LineageBuilder | None = None,
) -> StepLineage:
    """The lineage of one call of ``step``; empty (never an exception) when it cannot be built.

    Args:
        step: the task function's name, used to find the builder in :data:`TASK_LINEAGE`.
        call: the call's payloads and outcome.
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
        # Lineage observes the pipeline: a builder bug must not fail the task it describes, but
        # it is a bug (a payload that lost a field), so it is logged loudly, with its trace.
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error(
            "lineage for %s could not be built; its event goes out without datasets:\n%s",
            step,
            redact(trace),
        )
        return StepLineage()


# --- datasets of the per-source tasks -----------------------------------------------------------
def _raw_window(namespace: str, store_url: str, manifest_key: str) -> tuple[str, str]:
    return namespace, object_path(store_url, raw_prefix(manifest_key))


def _landed(source_kind: str, raw: tuple[str, str], tweets: int, pages: int) -> StepLineage:
    stats = output_statistics_facet(tweets, None, file_count=pages)
    window = output_dataset(
        *raw, facets=schema_facets(raw=True), output_facets={"outputStatistics": stats}
    )
    return StepLineage(inputs=[api_dataset(source_kind)], outputs=[window])


def _staged(
    staging: tuple[str, str], sources: Sequence[tuple[str, str]], rows: int, size: int | None
) -> OutputDataset:
    return output_dataset(
        *staging,
        facets={
            **schema_facets(),
            "columnLineage": column_lineage_facet(curated_contract(), sources),
        },
        output_facets={"outputStatistics": output_statistics_facet(rows, size)},
    )


def _quarantine(quarantine: tuple[str, str], rows: int, size: int | None) -> OutputDataset:
    return output_dataset(
        *quarantine,
        facets={"schema": schema_facet_from_columns(QUARANTINE_COLUMNS)},
        output_facets={"outputStatistics": output_statistics_facet(rows, size)},
    )


def _gated(
    validated: InputDataset,
    checkpoint: tuple[Sequence[Mapping[str, Any]], int] | None,
    contract: ContractSpec,
) -> StepLineage:
    if checkpoint is not None:
        results, rows = checkpoint
        facets = checkpoint_facets(results, rows, contract)
        validated.inputFacets = {**(validated.inputFacets or {}), **facets}
    return StepLineage(inputs=[validated])


def _checkpoint(
    result: ValidateRawPayload | ValidateCuratedPayload | None, error: BaseException | None
) -> tuple[Sequence[Mapping[str, Any]], int] | None:
    """A gate task's checkpoint results and rows: in its result, or carried by its failure."""
    if result is not None:
        checkpoint: CheckpointPayload = result["checkpoint"]
        return checkpoint["results"], checkpoint["rows"]
    for _ in range(5):  # the gate's QualityGateFailed may be wrapped (AirflowFailException)
        if error is None:
            return None
        if isinstance(error, QualityGateFailed) and error.summary is not None:
            return error.summary.results, int(error.summary.rows)
        error = error.__cause__ or error.__context__
    return None


# --- the DAG's per-source tasks -----------------------------------------------------------------
def extract_outputs(landed: ExtractPayload) -> StepLineage:
    """Lineage of one source's extract, from the payload of task ``extract``.

    Args:
        landed: what the task returned.

    Returns:
        The endpoint as input; the window's ``raw/`` prefix as output with its statistics.
    """
    raw = _raw_window(landed["namespace"], landed["store"], landed["manifest_key"])
    lineage = _landed(landed["source"]["kind"], raw, landed["tweets"], landed["pages"])
    cost = landed.get("cost")  # absent from the XCom of runs before cost accounting
    facet = cost_facet([(landed["slug"], landed["status"], cost)]) if cost else None
    if facet is not None:
        lineage.run_facets[FACET_KEY] = facet
    return lineage


def _extract(call: TaskCall[PlannedSource, ExtractPayload]) -> StepLineage:
    if call.result is not None:
        return extract_outputs(call.result)
    if call.payload is None:
        return StepLineage()
    lineage = StepLineage(inputs=[api_dataset(call.payload["kind"])])
    stopped = _spending_stopped(call.error)
    if stopped is not None and stopped.cost:
        # A source a spending limit stopped spent all the same: its cost is reported.
        facet = cost_facet([(call.payload["slug"], "stopped", stopped.cost)])  # type: ignore[list-item]
        if facet is not None:
            lineage.run_facets[FACET_KEY] = facet
    return lineage


def _spending_stopped(error: BaseException | None) -> SpendingStopped | None:
    for _ in range(5):  # wrapped in AirflowFailException: the stop is its cause
        if error is None or isinstance(error, SpendingStopped):
            return error
        error = error.__cause__ or error.__context__
    return None


def _validate_raw(call: TaskCall[ExtractPayload, ValidateRawPayload]) -> StepLineage:
    landed = call.payload
    if landed is None:
        return StepLineage()
    raw = _raw_window(landed["namespace"], landed["store"], landed["manifest_key"])
    validated = input_dataset(*raw, facets=schema_facets(raw=True))
    return _gated(validated, _checkpoint(call.result, call.error), raw_contract())


def transform_outputs(staged: TransformPayload, raw: str) -> StepLineage:
    """Lineage of one source's transform, from the payload of task ``transform``.

    Args:
        staged: what the task returned.
        raw: the name of the ``raw/`` prefix the transform read (from its input payload).

    Returns:
        The raw prefix as input; the staged candidate (schema, column lineage from the raw JSON
        paths, statistics) and the quarantine (schema, statistics) as outputs.
    """
    namespace, store, report = staged["namespace"], staged["store"], staged["report"]
    staging = (namespace, object_path(store, staged["staging_key"]))
    quarantine = (namespace, object_path(store, staged["quarantine_key"]))
    return StepLineage(
        inputs=[input_dataset(namespace, raw, facets=schema_facets(raw=True))],
        outputs=[
            _staged(staging, [(namespace, raw)], report["curated"], staged["size"]),
            _quarantine(quarantine, report["quarantined"], staged["quarantine_size"]),
        ],
    )


def _transform(call: TaskCall[ValidateRawPayload, TransformPayload]) -> StepLineage:
    checked = call.payload
    if checked is None:
        return StepLineage()
    namespace, raw = _raw_window(checked["namespace"], checked["store"], checked["manifest_key"])
    if call.result is not None:
        return transform_outputs(call.result, raw)
    return StepLineage(inputs=[input_dataset(namespace, raw, facets=schema_facets(raw=True))])


def _validate_curated(call: TaskCall[TransformPayload, ValidateCuratedPayload]) -> StepLineage:
    staged = call.payload
    if staged is None:
        return StepLineage()
    name = object_path(staged["store"], staged["staging_key"])
    validated = input_dataset(staged["namespace"], name, facets=schema_facets())
    return _gated(validated, _checkpoint(call.result, call.error), curated_contract())


def publish_outputs(published: PublishPayload) -> StepLineage:
    """Lineage of one source's publish, from the payload of task ``publish``.

    Args:
        published: what the task returned.

    Returns:
        The audited candidate as input; the curated CSV as output (schema, identity column lineage
        from the candidate, statistics).
    """
    namespace, store = published["namespace"], published["store"]
    staging = (namespace, object_path(store, published["staging_key"]))
    curated = output_dataset(
        namespace,
        object_path(store, published["curated_key"]),
        facets={
            **schema_facets(),
            "columnLineage": identity_column_lineage_facet(curated_contract(), staging),
        },
        output_facets={
            "outputStatistics": output_statistics_facet(
                published["report"]["curated"], published["size"]
            )
        },
    )
    return StepLineage(inputs=[input_dataset(*staging, facets=schema_facets())], outputs=[curated])


def _publish(call: TaskCall[ValidateCuratedPayload, PublishPayload]) -> StepLineage:
    if call.result is not None:
        return publish_outputs(call.result)
    audited = call.payload
    if audited is None:
        return StepLineage()
    name = object_path(audited["store"], audited["staging_key"])
    return StepLineage(inputs=[input_dataset(audited["namespace"], name, facets=schema_facets())])


def retention_outputs(done: RetentionPayload) -> StepLineage:
    """Lineage of a retention run: every dataset it deleted, as an output that was dropped.

    Args:
        done: what task ``apply_retention`` (or ``tweetpipe retention apply``) returned.

    Returns:
        One output per deleted dataset (raw window, staging candidate, docs page or result) with
        the ``lifecycleStateChange`` facet ``DROP``; none for a dry run.
    """
    if done["dry_run"]:
        return StepLineage()
    dropped = lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
        lifecycleStateChange=lifecycle_state_change_dataset.LifecycleStateChange.DROP
    )
    return StepLineage(
        outputs=[
            output_dataset(
                done["namespace"],
                object_path(done["store"], d["name"]),
                facets={"lifecycleStateChange": dropped},
            )
            for d in done["deleted"]
        ]
    )


def _apply_retention(call: TaskCall[Any, RetentionPayload]) -> StepLineage:
    return retention_outputs(call.result) if call.result is not None else StepLineage()


TASK_LINEAGE: dict[str, LineageBuilder] = {
    "extract": _extract,
    "validate_raw": _validate_raw,
    "transform": _transform,
    "validate_curated": _validate_curated,
    "publish": _publish,
    "apply_retention": _apply_retention,
}
"""Lineage builder of each DAG task, by task function name."""


# --- the CLI's view of the same steps -------------------------------------------------------------
def cli_transform_inputs(paths: Iterable[Path | str]) -> list[InputDataset]:
    """The inputs of ``tweetpipe transform``: raw pages named as in the store, with the schema.

    Args:
        paths: the files and directories given on the command line.

    Returns:
        One dataset per distinct name, in argument order.
    """
    names = dict.fromkeys(local_name(p) for p in paths)
    return [input_dataset("file", name, facets=schema_facets(raw=True)) for name in names]


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

    def size(path: Path) -> int | None:
        return path.stat().st_size if path.is_file() else None

    curated = _staged(
        ("file", local_name(csv_path)), sources, int(report.get("curated", 0)), size(csv_path)
    )
    quarantine = _quarantine(
        ("file", local_name(quarantine_path)),
        int(report.get("quarantined", 0)),
        size(quarantine_path),
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


def cli_extract_outputs(
    results: Iterable[SourceResult], store: Store, stopped: Iterable[SpendingStopped] = ()
) -> StepLineage:
    """The lineage of ``tweetpipe extract`` over several sources (one run, as one CLI call).

    Args:
        results: every source that landed.
        store: the store they landed in (its namespace and URL name the datasets).
        stopped: the sources a spending limit stopped (their cost is reported too).

    Returns:
        Every endpoint read and every ``raw/`` window written, and the ``tweetpipe_cost`` facet.
    """
    lineage = StepLineage()
    costs = []
    for result in results:
        raw = _raw_window(store.namespace, store.url, result.manifest_key)
        lineage = lineage.merge(_landed(result.source.kind, raw, result.tweets, result.pages))
        costs.append((result.source.slug, result.status, result.cost))
    costs += [(f.source.slug, "stopped", f.cost) for f in stopped if f.cost]  # type: ignore[misc]
    facet = cost_facet(costs)
    if facet is not None:
        lineage.run_facets[FACET_KEY] = facet
    return lineage
