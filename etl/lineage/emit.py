"""Emission of a CLI run's lineage: jobs named as Airflow names the DAG's tasks, the client
configured as the user (or Airflow) configured it, START then COMPLETE or FAIL.

Jobs: namespace from ``OPENLINEAGE_NAMESPACE`` (Airflow's provider reads the same variable when
``AIRFLOW__OPENLINEAGE__NAMESPACE`` is unset), name ``<dag_id>.<task_id>``, e.g.
``tweetpipe.per_source.transform``, which is what the Airflow provider calls the DAG's tasks.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import job_type_job, nominal_time_run
from openlineage.client.uuid import generate_new_uuid

from etl.lineage.datasets import StepLineage
from etl.lineage.facets import error_facet
from etl.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import JobFacet, RunFacet

log = logging.getLogger(__name__)

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


# --- names ----------------------------------------------------------------------------------------
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


# --- emission -------------------------------------------------------------------------------------
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
