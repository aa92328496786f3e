"""Lineage emitted by a child process beside the CLI run (etl.lineage.beside), in real processes:
a fresh interpreter has one thread, so the fork path is the one taken, as for a user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.pages import body, ids, page, tweet

TWEETPIPE = Path(sys.executable).with_name("tweetpipe")
# The events go to the default file under --out: nothing from the test environment may redirect.
ENV = {k: v for k, v in os.environ.items() if "OPENLINEAGE" not in k}


def _python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )


def _events(out: Path) -> list[dict[str, Any]]:
    path = out / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# Runs `tweetpipe transform` through the console script's entry point, then tells whether this
# process ever imported the OpenLineage client.
_CLI = """
    import sys
    from etl.adapters.cli import main
    code = main(["transform", *sys.argv[1:]])
    print("openlineage imported:", "openlineage.client" in sys.modules, file=sys.stderr)
    sys.exit(code)
"""


def test_transform_lineage_comes_from_a_child_and_this_process_never_imports_it(
    tmp_path: Path,
) -> None:
    src = tmp_path / "page.json"
    src.write_bytes(body(page([tweet(t) for t in ids(0, 4)])))
    out = tmp_path / "out"

    proc = _python(_CLI, str(src), "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    assert "openlineage imported: False" in proc.stderr
    assert f"lineage: file {(out / 'lineage' / 'events.jsonl').resolve()}" in proc.stderr
    start, complete = _events(out)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"]["name"].endswith("transform")
    assert [d["name"] for d in start["inputs"]] == [src.as_posix()]
    curated = next(o for o in complete["outputs"] if o["name"].endswith("tweets.csv"))
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == 4


def test_a_breach_is_reported_as_fail_with_the_failed_checks(tmp_path: Path) -> None:
    src = tmp_path / "page.json"
    posts = [tweet(t) for t in ids(0, 8)] + [tweet(t, created_at="not a time") for t in ids(50, 2)]
    src.write_bytes(body(page(posts)))
    out = tmp_path / "out"

    proc = subprocess.run(
        [str(TWEETPIPE), "transform", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )

    assert proc.returncode == 1
    start, fail = _events(out)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert "quarantined_share: 20.00% of posts quarantined (2 of 10)" in message
    assert [o["name"].rsplit("/", 1)[-1] for o in fail["outputs"]] == ["quarantine.jsonl"]


_RAISES = """
    import sys
    from pathlib import Path
    from etl.lineage.beside import lineage_run_beside
    out = Path(sys.argv[1])
    try:
        with lineage_run_beside("transform", ("cli_transform_inputs", ([],)), out_dir=out):
            raise RuntimeError("disk full while writing tweets.csv")
    except RuntimeError as exc:
        print("propagated:", exc)
"""


def test_an_exception_in_the_step_fails_the_run_with_its_trace_and_propagates(
    tmp_path: Path,
) -> None:
    proc = _python(_RAISES, str(tmp_path))

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "propagated: disk full while writing tweets.csv"
    start, fail = _events(tmp_path)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "disk full while writing tweets.csv"
    assert "RuntimeError: disk full while writing tweets.csv" in error["stackTrace"]
    assert "Traceback" in error["stackTrace"]


_CHILD_KILLED = """
    import multiprocessing, os, signal, sys
    from pathlib import Path
    from etl.lineage.beside import lineage_run_beside
    with lineage_run_beside("transform", ("cli_transform_inputs", ([],)), out_dir=Path(sys.argv[1])) as run:
        (child,) = multiprocessing.active_children()
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    print("step finished; lineage:", run.destination)
"""


def test_a_lineage_process_that_dies_never_fails_the_step(tmp_path: Path) -> None:
    proc = _python(_CHILD_KILLED, str(tmp_path))

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "step finished; lineage: not emitted (the lineage process ended early)"
    )


_PARENT_KILLED = """
    import sys, time
    from pathlib import Path
    from etl.lineage.beside import lineage_run_beside
    with lineage_run_beside("transform", ("cli_transform_inputs", ([],)), out_dir=Path(sys.argv[1])):
        print("running", flush=True)
        time.sleep(120)
"""


def test_a_step_process_killed_midway_leaves_a_fail_event_and_no_process(tmp_path: Path) -> None:
    events = tmp_path / "lineage" / "events.jsonl"
    step = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_PARENT_KILLED), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert step.stdout is not None
    assert step.stdout.readline().strip() == "running"
    deadline = time.monotonic() + 30
    while not events.is_file() and time.monotonic() < deadline:  # START is written by the child
        time.sleep(0.05)

    step.send_signal(signal.SIGKILL)
    step.wait(30)
    deadline = time.monotonic() + 30
    while len(_events(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    start, fail = _events(tmp_path)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message == "the run's process ended without reporting an outcome"
    deadline = time.monotonic() + 30
    while _processes_naming(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_naming(tmp_path) == []  # the lineage process exited too


_PARENT_KILLED_WITH_A_CHILD = """
    import os, sys, time
    from pathlib import Path
    from etl.lineage.beside import lineage_run_beside
    with lineage_run_beside("transform", ("cli_transform_inputs", ([],)), out_dir=Path(sys.argv[1])):
        pid = os.fork()  # like a worker: it holds every pipe this process holds
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
        time.sleep(120)
"""


def test_a_killed_step_is_reported_failed_while_a_process_it_forked_lives_on(
    tmp_path: Path,
) -> None:
    step = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_PARENT_KILLED_WITH_A_CHILD), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert step.stdout is not None
    forked = int(step.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "lineage" / "events.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)  # START is written by the lineage process
        step.send_signal(signal.SIGKILL)
        step.wait(30)
        deadline = time.monotonic() + 20  # the forked process lives for 60 s
        while len(_events(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        start, fail = _events(tmp_path)
        assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
        assert fail["run"]["facets"]["errorMessage"]["message"] == (
            "the run's process ended without reporting an outcome"
        )
    finally:
        os.kill(forked, signal.SIGKILL)


def _processes_naming(path: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if str(path) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.info["pid"])
    return found


def test_with_threads_running_lineage_is_emitted_in_this_process(tmp_path: Path) -> None:
    import threading

    from etl.lineage.beside import lineage_run_beside

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, args=(30,))
    other.start()
    try:
        with lineage_run_beside(
            "transform", ("cli_transform_inputs", ([],)), out_dir=tmp_path
        ) as run:
            run.add("cli_transform_outputs", [], tmp_path / "a.csv", tmp_path / "q.jsonl", {})
    finally:
        stop.set()
        other.join()

    start, complete = _events(tmp_path)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert [o["name"].rsplit("/", 1)[-1] for o in complete["outputs"]] == ["q.jsonl"]
    assert run.destination.startswith("file ")


_INTERRUPTED = """
    import os, signal, sys, time
    from pathlib import Path
    from etl.lineage.beside import lineage_run_beside
    try:
        with lineage_run_beside("transform", ("cli_transform_inputs", ([],)), out_dir=Path(sys.argv[1])):
            os.killpg(0, signal.SIGINT)  # Ctrl-C reaches the whole process group
            time.sleep(30)
    except KeyboardInterrupt:
        print("interrupted")
"""


def test_ctrl_c_stops_the_step_and_the_run_is_reported_failed_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_INTERRUPTED), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
        start_new_session=True,  # its own process group, so the signal stays inside it
    )

    assert proc.stdout.strip() == "interrupted"
    assert "Traceback" not in proc.stderr  # the lineage process did not die of it
    start, fail = _events(tmp_path)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert "KeyboardInterrupt" in fail["run"]["facets"]["errorMessage"]["stackTrace"]
