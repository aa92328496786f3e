"""Import the tasks' heavy modules once, in the long-lived process that forks the task processes.

On Linux, Airflow 3 runs every task in a fresh ``os.fork()`` of its executor's worker: the
LocalExecutor's workers are forked from the scheduler when it starts, a Celery worker's pool
processes from the ``airflow celery worker`` process, and each of them forks a task supervisor
that forks the task itself. Whatever the forking process has imported, the task process has
too, for free. Without this, every quality task imported Great Expectations afresh (4–6 s of a
task that then validates for under a second), so two GX tasks cost a source 8–10 s while
``publish`` took 0.3 s.

:func:`preload_task_modules` imports what the tasks import (Great Expectations, pandas,
pandera, the steps and the adapter) and warms Great Expectations up on a one-row batch of each
suite, so the templates, metric registries and validators a checkpoint builds on first use are
built here once. Nothing it does opens a socket, starts a thread that outlives it or writes
outside a temporary directory, so forking afterwards is safe.

Call :func:`preload_for_airflow` from ``airflow_local_settings.py`` (Airflow imports it in
every component when ``airflow`` itself is imported): it preloads only in the components that
fork task processes — the scheduler (LocalExecutor) and ``airflow celery worker`` — and nowhere
when ``TWEETPIPE_PRELOAD=0``. ``tweetpipe airflow up`` writes that file; a deployment adds the same
two lines to its own::

    from etl.adapters.airflow.preload import preload_for_airflow

    preload_for_airflow()
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

PRELOAD_ENV = "TWEETPIPE_PRELOAD"
"""``0`` (or ``false``/``no``/``off``) turns the preload off (for the benchmark's baseline)."""

TASK_MODULES = (
    "pandas",
    "pandera",
    "great_expectations",
    "etl.steps.quality",
    "etl.steps.quality.docs",
    "etl.steps.transform.curate",
    "etl.steps.extract.run",
    "etl.steps.publish",
    "etl.lineage.builders",
    "etl.adapters.airflow.tasks",
    "etl.adapters.airflow.lineage_operator",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.openlineage.extractors",
)
"""What the DAG's tasks import, heaviest first; each is imported once, in the forking process."""

# The Airflow CLI commands whose process forks task processes.
_FORKING_COMMANDS = (("scheduler",), ("celery", "worker"))
_OFF = ("0", "false", "no", "off")

log = logging.getLogger(__name__)


def forks_tasks(argv: Sequence[str]) -> bool:
    """Whether the Airflow command in ``argv`` forks task processes (and so should preload).

    Args:
        argv: the process's arguments (``sys.argv``): ``airflow scheduler``, ``airflow celery
            worker``, ``airflow api-server``...

    Returns:
        True for the scheduler (its LocalExecutor forks the task workers) and a Celery worker.
    """
    words = [a for a in argv[1:] if not a.startswith("-")]
    return any(tuple(words[: len(c)]) == c for c in _FORKING_COMMANDS)


def preload_enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether ``$TWEETPIPE_PRELOAD`` allows preloading (unset: yes).

    Args:
        environ: the environment (default: ``os.environ``).

    Returns:
        False when the variable says ``0``, ``false``, ``no`` or ``off``.
    """
    env = os.environ if environ is None else environ
    return env.get(PRELOAD_ENV, "").strip().lower() not in _OFF


def preload_task_modules(warm_up: bool = True) -> dict[str, float]:
    """Import :data:`TASK_MODULES` and (by default) run each quality gate once on a tiny batch.

    A module that cannot be imported (an optional provider missing on this worker) is skipped;
    the task that needs it fails with its own import error, as without the preload.

    Args:
        warm_up: also run both GX checkpoints once, in a temporary directory.

    Returns:
        Seconds spent per module imported here (already imported ones are not listed), and
        ``warm_up`` for the checkpoints.
    """
    spent: dict[str, float] = {}
    for name in TASK_MODULES:
        if name in sys.modules:
            continue
        if name == "great_expectations":
            # Through our importer: analytics off and GX's import chatter silenced first.
            from etl.contracts.suites import import_gx

            started = time.perf_counter()
            import_gx()
            spent[name] = time.perf_counter() - started
            continue
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("tweetpipe preload: %s not imported (%s)", name, exc)
            continue
        spent[name] = time.perf_counter() - started
    if warm_up:
        started = time.perf_counter()
        _no_monitor_thread()
        _warm_up()
        spent["warm_up"] = time.perf_counter() - started
    return spent


def _no_monitor_thread() -> None:
    """Keep tqdm (GX's progress bars) from starting its monitor thread in the forking process."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.monitor_interval = 0


def _warm_up() -> None:
    """Both gates and the transform on a one-post page: GX and pandera import and build on their
    first run what every later run reuses (pandera's backends alone took 0.75 s per transform)."""
    import io

    from etl.contracts.model import CURATED_CONTRACT, load_contract
    from etl.steps.quality import validate_curated_bytes, validate_raw_pages
    from etl.steps.transform.curate import transform_pages

    page = (
        b'{"data":[{"id":"1","text":"t","author_id":"2","created_at":"2023-03-14T00:00:00.000Z",'
        b'"edit_history_tweet_ids":["1"]}],"includes":{"users":[{"id":"2","username":"u",'
        b'"name":"U"}]},"meta":{"result_count":1}}'
    )
    columns = load_contract(CURATED_CONTRACT).column_names
    # Every column, one row: each expectation of the suite runs (most fail; nothing is raised).
    csv = (",".join(columns) + "\n" + ",".join("1" for _ in columns) + "\n").encode()
    transform_pages([("raw/preload/page-0001.json", page)], io.StringIO(), io.StringIO())
    with tempfile.TemporaryDirectory(prefix="tweetpipe-preload-") as tmp:
        docs = Path(tmp) / "gx"
        # As the DAG's gates run them: without rendering a page (build_docs renders them all).
        validate_raw_pages(
            [("raw/preload/page-0001.json", page)],
            docs_dir=docs,
            run_name="warm",
            build_page=False,
        )
        validate_curated_bytes(
            csv,
            docs_dir=docs,
            run_name="warm",
            interval_start=None,
            interval_end=None,
            build_page=False,
        )


def preload_for_airflow(argv: Sequence[str] | None = None) -> bool:
    """Preload the tasks' modules if this Airflow process forks task processes.

    Meant for ``airflow_local_settings.py``. Never raises: a failed preload is logged and the
    tasks import what they need themselves, as they would without it.

    Args:
        argv: the process's arguments (default: ``sys.argv``).

    Returns:
        Whether it preloaded.
    """
    if not preload_enabled() or not forks_tasks(sys.argv if argv is None else argv):
        return False
    started = time.perf_counter()
    try:
        spent = preload_task_modules()
    except Exception:  # noqa: BLE001 - a preload must never keep the scheduler from starting
        log.exception("tweetpipe preload failed; tasks will import their modules themselves")
        return False
    log.info(
        "tweetpipe preload: task modules imported in %.1f s (%s)",
        time.perf_counter() - started,
        ", ".join(f"{k} {v:.1f} s" for k, v in spent.items()),
    )
    return True
