"""``tweetpipe demo``: the real DAG, once, through ``dag.test()``, on the embedded default.

Everything lives under one directory (``--dir``, default ``demo-output``)::

    store/          the local-directory object store: raw/ staging/ quarantine/ curated/ docs/ state/
    airflow-home/   AIRFLOW_HOME: SQLite metadata database, airflow.cfg, logs/dag-test.log
    lineage/        events.jsonl, the OpenLineage events of every task (file transport)

The bundled X API emulator runs on a free loopback port behind the ``x_api_default`` connection
(``AIRFLOW_CONN_X_API_DEFAULT``; the token never reaches the output). ``--breach`` starts it in drift
mode: the curated gate fails, nothing reaches ``curated/``, the Data Docs show why, and the command
exits 1. A rerun starts from a clean directory; a directory that was not made by the demo is never
touched.

The Airflow plumbing (:func:`airflow_environment`, :func:`configure_airflow`, :func:`migrate_db`,
:func:`run_dag`) is shared with the integration tests, which run the same DAG the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl import resources
from etl.errors import DemoError
from etl.payloads import nothing_curated, partition_label
from etl.storage.keys import DOCS_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from etl.tools.emulator import Corpus

# The repository's dags/ in a checkout, the wheel's bundled copy when installed.
DAGS_FOLDER = resources.dags_dir()
DAG_ID = "tweetpipe"
MARKER = ".tweetpipe-demo"
DEMO_CORPUS_START = datetime(2023, 3, 10, tzinfo=UTC)
DEMO_CORPUS_END = datetime(2023, 3, 17, tzinfo=UTC)
DEMO_LOGICAL_DATE = datetime(2023, 3, 15, tzinfo=UTC)
"""Logical date of the demo run. A manual run's data interval is the day before its logical date
(2023-03-14), in the middle of the demo corpus's week, so every source has posts to extract."""
DEMO_SOURCES = ("account:ada_builds", "account:tomas_ng", "account:quietriver", "query:python")
"""Three of the corpus's accounts and a recent-search query."""

_SUBDIRS = ("store", "airflow-home", "lineage")
_CHECKPOINT_TASKS = ("per_source.validate_raw", "per_source.validate_curated")


# --- Airflow plumbing (shared with the integration tests) ---------------------------------------
def x_connection(base_url: str, token: str) -> str:
    """The ``x_api_default`` connection as JSON for an ``AIRFLOW_CONN_*`` variable.

    Args:
        base_url: the API base URL (the emulator's).
        token: the bearer token, kept in the connection's password field.

    Returns:
        The JSON text.
    """
    return json.dumps({"conn_type": "http", "host": base_url, "password": token})


def airflow_environment(home: Path, lineage_file: Path) -> dict[str, str]:
    """Settings for an embedded Airflow: SQLite under ``home``, the tweetpipe DAG, file lineage.

    Args:
        home: ``AIRFLOW_HOME``.
        lineage_file: where the OpenLineage file transport appends events.

    Returns:
        Environment variables to set before Airflow is imported (or reconfigured).
    """
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(lineage_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "tweetpipe",
        "GX_ANALYTICS_ENABLED": "false",
    }


def configure_airflow(env: Mapping[str, str]) -> None:
    """Apply ``env`` to this process; re-read Airflow's settings if Airflow is already loaded.

    Args:
        env: from :func:`airflow_environment` (plus connections).
    """
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if "airflow.settings" in sys.modules:
        from airflow import settings

        # Airflow read its settings at import; point it at this home's database and DAGs.
        settings.dispose_orm()
        settings.configure_vars()  # type: ignore[no-untyped-call]
        settings.configure_orm()  # type: ignore[no-untyped-call]


def migrate_db() -> None:
    """Create or upgrade the metadata database, as ``airflow db migrate`` does."""
    from airflow.utils import db

    db.upgradedb()


@dataclass(frozen=True)
class TaskOutcome:
    """One task instance of the run.

    Attributes:
        task_id: e.g. ``per_source.validate_curated``.
        map_index: -1 for an unmapped task.
        label: the rendered map index (the source's slug), or None.
        state: ``success``, ``failed``, ``upstream_failed``, ``skipped``...
        tries: how many times it ran (1 when it was not retried).
    """

    task_id: str
    map_index: int
    label: str | None
    state: str
    tries: int = 1


@dataclass
class RunOutcome:
    """What one ``dag.test()`` run did.

    Attributes:
        run_id: the DAG run id.
        state: the DAG run's state (``success`` or ``failed``).
        tasks: every task instance.
        xcoms: XCom values by ``(task_id, map_index, key)``.
        seconds: wall time of ``dag.test()``.
    """

    run_id: str
    state: str
    tasks: list[TaskOutcome]
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sources(self) -> list[str]:
        """The slugs of the run's sources, in map-index order (empty if planning failed)."""
        planned = self.xcoms.get(("plan_sources", -1, "return_value")) or []
        return [str(s["slug"]) for s in planned]

    def task_state(self, task_id: str, map_index: int = -1) -> str | None:
        """The state of one task instance, or None when it does not exist."""
        for t in self.tasks:
            if t.task_id == task_id and t.map_index == map_index:
                return t.state
        return None

    def by_source(self, task_id: str, key: str = "return_value") -> dict[str, Any]:
        """A per-source task's XCom values under ``key``, by source slug."""
        return {
            slug: self.xcoms[(task_id, i, key)]
            for i, slug in enumerate(self.sources)
            if (task_id, i, key) in self.xcoms
        }


def run_dag(
    logical_date: datetime, conf: Mapping[str, Any], *, retries: int | None = 0
) -> RunOutcome:
    """Run the tweetpipe DAG once through ``dag.test()`` and collect states and XComs.

    Call :func:`configure_airflow` and :func:`migrate_db` first.

    Args:
        logical_date: the run's logical date; its data interval is the day before it.
        conf: DAG params for the run (``store``, ``sources``...).
        retries: retries of every task for this run; the default 0 reports a failure at once
            instead of waiting minutes of backoff (``dag.test()`` really waits). None keeps the
            DAG's own retry settings.

    Returns:
        The run's state, its task instances and their XComs.
    """
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(str(DAGS_FOLDER))
    if bag.import_errors:
        raise DemoError(f"the DAG does not import: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    started = time.monotonic()
    dr = dag.test(logical_date=logical_date, run_conf=dict(conf))
    seconds = time.monotonic() - started
    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        tasks = [
            TaskOutcome(
                ti.task_id, ti.map_index, ti.rendered_map_index, str(ti.state), ti.try_number
            )
            for ti in sorted(tis, key=lambda ti: (ti.task_id, ti.map_index))
        ]
        rows = session.scalars(select(XComModel).where(XComModel.run_id == dr.run_id)).all()
        xcoms = {(x.task_id, x.map_index, x.key): XComModel.deserialize_value(x) for x in rows}
    return RunOutcome(dr.run_id, str(dr.state), tasks, xcoms, seconds)


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Send everything written to this process's stdout and stderr to ``log_file``.

    Airflow, GX and the emulator log a lot while the DAG runs in-process; the summary should be
    readable, and the logs stay available in the file. File descriptors are redirected, so output
    from any library (and from forked lineage emitters) is caught.

    Args:
        log_file: appended to.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# --- the demo ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps things.

    Attributes:
        root: the ``--dir`` directory.
        store: the local object store.
        home: ``AIRFLOW_HOME``.
        lineage_file: the OpenLineage events.
        log_file: Airflow's, GX's and the emulator's output during the run.
    """

    root: Path
    store: Path
    home: Path
    lineage_file: Path
    log_file: Path


def prepare_dir(directory: Path) -> DemoLayout:
    """Create (or clean, if the demo made it) the demo directory.

    Args:
        directory: the ``--dir`` argument.

    Returns:
        The layout, with every part empty.

    Raises:
        DemoError: the directory exists, is not empty and was not made by the demo.
    """
    root = directory.resolve()
    if root.exists() and not root.is_dir():
        raise DemoError(f"--dir {directory} is a file")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise DemoError(
            f"--dir {directory} is not empty and was not made by the demo; choose another"
        )
    for name in _SUBDIRS:
        shutil.rmtree(root / name, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by tweetpipe demo; its contents are replaced on rerun\n")
    home = root / "airflow-home"
    return DemoLayout(
        root=root,
        store=root / "store",
        home=home,
        lineage_file=root / "lineage" / "events.jsonl",
        log_file=home / "logs" / "dag-test.log",
    )


@dataclass
class DemoResult:
    """A finished demo run.

    Attributes:
        layout: where everything is.
        outcome: the DAG run.
        breach: whether the emulator ran in drift mode.
        seconds: wall time of the whole demo.
    """

    layout: DemoLayout
    outcome: RunOutcome
    breach: bool
    seconds: float


def demo_corpus() -> Corpus:
    """The emulator's corpus for the demo: three accounts, about 17 posts a day each, for a week.

    Returns:
        The corpus (deterministic: seed 42).
    """
    from etl.tools.emulator import Corpus

    return Corpus(
        seed=42, accounts=3, posts_per_account=120, start=DEMO_CORPUS_START, end=DEMO_CORPUS_END
    )


def run_demo(directory: Path, *, breach: bool = False) -> DemoResult:
    """Run the DAG once against the emulator and the local store under ``directory``.

    Args:
        directory: holds the store, ``AIRFLOW_HOME`` and the lineage events.
        breach: start the emulator in drift mode, so the curated gate fails.

    Returns:
        The run and where its outputs are.
    """
    from etl.tools.emulator import DEMO_TOKEN, Faults, start_emulator

    started = time.monotonic()
    layout = prepare_dir(directory)
    layout.store.mkdir(parents=True)
    layout.lineage_file.parent.mkdir(parents=True)
    with output_to(layout.log_file):
        server = start_emulator(
            corpus=demo_corpus(), faults=Faults(drift="breach") if breach else Faults()
        )
        try:
            env = airflow_environment(layout.home, layout.lineage_file)
            env["AIRFLOW_CONN_X_API_DEFAULT"] = x_connection(server.base_url, DEMO_TOKEN)
            configure_airflow(env)
            migrate_db()
            conf = {"store": str(layout.store), "sources": list(DEMO_SOURCES)}
            outcome = run_dag(DEMO_LOGICAL_DATE, conf)
        finally:
            server.stop()
    return DemoResult(layout, outcome, breach, time.monotonic() - started)


# --- the summary ---------------------------------------------------------------------------------
def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _checkpoint_line(summary: Mapping[str, Any] | None, state: str | None) -> str:
    if summary is None:
        return f"not run ({state or 'no task'})"
    counts = f"{summary.get('evaluated', 0)} expectations on {summary.get('rows', 0)} rows"
    if summary.get("success"):
        return f"passed ({counts})"
    failed = [
        f"{f.get('expectation_type')}({f.get('column') or 'table'})"
        + (f" [{f['rule']}]" if f.get("rule") else "")
        for f in summary.get("failed", [])
        if f.get("severity", "critical") == "critical"
    ]
    text = f"FAILED ({counts}): {', '.join(failed[:3])}"
    if len(failed) > 3:
        text += f" and {len(failed) - 3} more"
    return text


def _source_lines(outcome: RunOutcome, store: Path) -> list[str]:
    extracted = outcome.by_source("per_source.extract")
    transformed = outcome.by_source("per_source.transform")
    published = outcome.by_source("per_source.publish")
    lines = []
    for index, slug in enumerate(outcome.sources):
        report = transformed.get(slug, {}).get("report", {})
        lines += [
            f"  {slug}",
            f"    tweets extracted {extracted.get(slug, {}).get('tweets', '-')}, "
            f"curated {report.get('curated', '-')}, quarantined {report.get('quarantined', '-')}, "
            f"duplicates {report.get('duplicates', '-')}",
        ]
        start, end = (transformed.get(slug, {}).get(k, "?") for k in ("start", "end"))
        empty = nothing_curated(report, partition_label(slug, start, end)) if report else None
        if empty:
            lines.append(f"    {empty}")
        for task in _CHECKPOINT_TASKS:
            summary = outcome.by_source(task, "checkpoint").get(slug)
            state = outcome.task_state(task, index)
            lines.append(f"    {task.split('.')[-1]:<17}{_checkpoint_line(summary, state)}")
            if summary and not summary.get("success") and summary.get("docs_page"):
                page = store / DOCS_PREFIX / summary["docs_page"]
                lines.append(f"      why: {_rel(page)}")
        if slug in published:
            lines.append(f"    curated CSV      {_rel(store / published[slug]['curated_key'])}")
        else:
            lines.append("    curated CSV      not published (curated/ unchanged)")
        if slug in transformed:
            lines.append(
                f"    quarantine       {_rel(store / transformed[slug]['quarantine_key'])}"
            )
    return lines


def _totals_line(outcome: RunOutcome) -> str:
    extracted = sum(
        int(x.get("tweets", 0)) for x in outcome.by_source("per_source.extract").values()
    )
    reports = [x.get("report", {}) for x in outcome.by_source("per_source.transform").values()]
    published = len(outcome.by_source("per_source.publish"))
    return (
        f"  sources {len(outcome.sources)}, published {published}; tweets extracted {extracted}, "
        f"curated {sum(int(r.get('curated', 0)) for r in reports)}, "
        f"quarantined {sum(int(r.get('quarantined', 0)) for r in reports)}"
    )


def _cost_line(outcome: RunOutcome) -> str:
    """The run's estimated X API cost, summed from the extract tasks' ``cost`` (micro-dollars)."""
    from etl.pricing import usd_text

    costs = [x.get("cost") for x in outcome.by_source("per_source.extract").values()]
    costs = [c for c in costs if isinstance(c, dict)]
    if not costs:
        return "  estimated cost   unknown (no extract reported one)"
    micros = sum(int(c.get("estimated_cost_micro_usd", 0)) for c in costs)
    posts = sum(int(c.get("posts_billable", 0)) for c in costs)
    users = sum(int(c.get("user_reads_billable", 0)) for c in costs)
    return (
        f"  estimated cost   {usd_text(micros)} at pay-per-use prices ({posts} billable posts, "
        f"{users} user lookups)"
    )


def format_summary(result: DemoResult) -> str:
    """The short, human summary the demo prints.

    Args:
        result: the finished run.

    Returns:
        Lines of text.
    """
    outcome, layout = result.outcome, result.layout
    mode = "drift mode (--breach)" if result.breach else "clean"
    lines = [
        f"tweetpipe demo: DAG run {outcome.state.upper()} "
        f"(emulator {mode}, {result.seconds:.0f} s in all, dag.test {outcome.seconds:.0f} s)",
        _totals_line(outcome),
        _cost_line(outcome),
        *_source_lines(outcome, layout.store),
        f"  Data Docs        {_rel(layout.store / DOCS_PREFIX / 'index.html')}",
        f"  lineage events   {_rel(layout.lineage_file)}",
        f"  Airflow logs     {_rel(layout.log_file)}",
    ]
    failed = [t for t in outcome.tasks if t.state == "failed"]
    if failed:
        names = ", ".join(t.task_id + (f"[{t.label}]" if t.label else "") for t in failed)
        lines.append(f"  failed tasks     {names}")
    return "\n".join(lines)
