"""The same runs through ``dag.test()``, in a process of its own: the reference for the Celery runs.

``python tests/e2e/dag_test_reference.py WORKDIR SPEC_JSON`` runs the DAG once per entry of the
spec (``{"name": {"logical_date": ISO, "conf": {...}, "x_url": URL}}``) with a SQLite
``AIRFLOW_HOME`` and a local-directory store under ``WORKDIR``, against the emulator at ``x_url``
(the Celery profile's own emulators), and prints one JSON document: per run its state, every task
instance's state and the bytes of everything under ``curated/`` (hex). Its own process because
``dag.test()`` configures Airflow for the whole interpreter.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def _run(workdir: Path, spec: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from etl.storage.store import LocalStore
    from etl.tools import demo
    from etl.tools.emulator import DEMO_TOKEN

    home = workdir / "home"
    env = demo.airflow_environment(home, workdir / "lineage" / "events.jsonl")
    for run in spec.values():
        conn_id = run["conf"].get("x_conn_id", "x_api_default")
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = demo.x_connection(run["x_url"], str(DEMO_TOKEN))
    (workdir / "lineage").mkdir(parents=True, exist_ok=True)
    demo.configure_airflow(env)
    demo.migrate_db()
    results: dict[str, Any] = {}
    for name, run in spec.items():
        store_dir = workdir / name / "store"
        conf = {**run["conf"], "store": str(store_dir)}
        # The DAG's own retry settings, as on the Celery profile.
        outcome = demo.run_dag(datetime.fromisoformat(run["logical_date"]), conf, retries=None)
        store = LocalStore(store_dir)
        results[name] = {
            "state": outcome.state,
            "tasks": [[t.task_id, t.map_index, t.state] for t in outcome.tasks],
            "curated": {k: store.get(k).hex() for k in store.list("curated/")},
            "seconds": outcome.seconds,
        }
    return results


def main() -> int:
    """Run the spec and print the results as JSON on the last line of stdout."""
    workdir, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    noise = io.StringIO()
    with contextlib.redirect_stdout(noise):
        results = _run(workdir, spec)
    (workdir / "dag_test.log").write_text(noise.getvalue(), encoding="utf-8")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
