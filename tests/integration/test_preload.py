"""The tasks' heavy modules are imported once where task processes fork, and GX's import is quiet.

Each test runs a fresh interpreter, as Airflow starts its components: ``import airflow`` imports
``$AIRFLOW_HOME/config/airflow_local_settings.py``, the file ``tweetpipe airflow up`` writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from etl.adapters.airflow.preload import forks_tasks, preload_enabled
from etl.tools.airflow_local import write_local_settings
from tests.conftest import ROOT, run_probe

if TYPE_CHECKING:
    from pathlib import Path

_PROBE = r"""
import json, sys
sys.argv = json.loads(sys.argv[1])
import airflow  # imports airflow_local_settings, as every Airflow component does
print("@@" + json.dumps({m: m in sys.modules for m in
    ("great_expectations", "pandera", "etl.steps.quality", "etl.adapters.airflow.tasks")}))
"""


def _probe(home: Path, argv: list[str], **env: str) -> dict[str, bool]:
    inherited = {k: v for k, v in os.environ.items() if k != "TWEETPIPE_PRELOAD"}
    environ = {**inherited, "AIRFLOW_HOME": str(home), "PYTHONPATH": str(ROOT), **env}
    loaded: dict[str, bool] = run_probe(_PROBE, json.dumps(argv), env=environ, timeout=240)
    return loaded


def test_the_scheduler_of_the_local_profile_preloads_the_task_modules(tmp_path: Path) -> None:
    write_local_settings(tmp_path)

    loaded = _probe(tmp_path, ["airflow", "scheduler", "--skip-serve-logs"])

    assert all(loaded.values()), loaded


@pytest.mark.parametrize("argv", [["airflow", "api-server"], ["airflow", "dag-processor"]])
def test_components_that_fork_no_task_do_not_preload(tmp_path: Path, argv: list[str]) -> None:
    write_local_settings(tmp_path)

    loaded = _probe(tmp_path, argv)

    assert not any(loaded.values()), loaded


def test_the_preload_can_be_switched_off(tmp_path: Path) -> None:
    write_local_settings(tmp_path)

    loaded = _probe(tmp_path, ["airflow", "scheduler"], TWEETPIPE_PRELOAD="0")

    assert not loaded["great_expectations"]


def test_which_commands_fork_task_processes() -> None:
    assert forks_tasks(["airflow", "scheduler"])
    assert forks_tasks(["/venv/bin/airflow", "celery", "worker", "--concurrency", "2"])
    assert not forks_tasks(["airflow", "celery", "flower"])
    assert not forks_tasks(["airflow", "triggerer"])
    assert not forks_tasks(["pytest"])
    assert preload_enabled({})
    assert not preload_enabled({"TWEETPIPE_PRELOAD": "off"})


def test_importing_gx_leaves_no_closure_noise_in_an_info_log() -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from etl.contracts.suites import import_gx; import_gx()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=True,
    )

    assert "because it is a closure" not in proc.stderr
    assert proc.stderr.count("\n") < 10, proc.stderr[:2000]
