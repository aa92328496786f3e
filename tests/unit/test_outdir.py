"""Replacing a set of outputs together (etl.steps.transform.outdir): interrupted at every step, a directory
either shows a complete set, or no manifest while the replacement is unfinished."""

from __future__ import annotations

import fcntl
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest

from etl.errors import OutputDirBusyError
from etl.steps.transform import outdir as _outdir
from etl.steps.transform.outdir import recover, replace_together

if TYPE_CHECKING:
    from pathlib import Path

NAMES = ("quarantine.jsonl", "tweets.csv", "report.json")  # the manifest last
OLD = {"quarantine.jsonl": b"old q\n", "tweets.csv": b"old,csv\r\n", "report.json": b"old"}
NEW_PASS = {"quarantine.jsonl": b"new q\n", "tweets.csv": b"new,csv\r\n", "report.json": b"new"}
NEW_BREACH = {"quarantine.jsonl": b"breach q\n", "report.json": b"breach"}


def _state(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (directory / name).write_bytes(data)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    _write(directory, OLD)
    (directory / "lineage").mkdir()  # not an output: never touched
    return directory


@pytest.mark.parametrize("new", [NEW_PASS, NEW_BREACH], ids=["pass", "breach"])
def test_a_run_replaces_the_whole_set_and_leaves_nothing_else(out: Path, new: dict) -> None:
    with replace_together(out, NAMES) as staging:
        assert staging.parent == out and staging.name.startswith(".")
        _write(staging, new)
        assert _state(out) == OLD  # nothing visible changes before the commit

    assert _state(out) == new  # a breach's set has no tweets.csv: the old one is gone too
    assert _entries(out) == sorted([*new, "lineage"])


def test_a_run_that_fails_leaves_the_old_set_and_no_staging(out: Path) -> None:
    with pytest.raises(RuntimeError), replace_together(out, NAMES) as staging:
        _write(staging, {"quarantine.jsonl": b"half"})
        raise RuntimeError("killed mid-run")

    assert _state(out) == OLD
    assert _entries(out) == sorted([*OLD, "lineage"])


def test_a_set_without_its_manifest_is_not_committed(out: Path) -> None:
    with pytest.raises(FileNotFoundError), replace_together(out, NAMES) as staging:
        _write(staging, {"tweets.csv": b"rows"})

    assert _state(out) == OLD and _entries(out) == sorted([*OLD, "lineage"])


def _consistent(directory: Path, new: dict[str, bytes]) -> bool:
    """A manifest present describes the files beside it: the old set or the new one, whole."""
    state = _state(directory)
    return "report.json" not in state or state in (OLD, new)


# The file-system changes of a commit, in order: rename staging to the commit directory (the
# commit), unlink the old manifest, replace quarantine.jsonl, replace (or unlink, on a breach)
# tweets.csv, replace the manifest.
COMMIT_STEPS = 5


@pytest.mark.parametrize("new", [NEW_PASS, NEW_BREACH], ids=["pass", "breach"])
@pytest.mark.parametrize("fail_at", range(COMMIT_STEPS))
def test_interrupted_at_any_step_of_the_commit_the_next_run_finishes_it(
    out: Path, new: dict, fail_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = [0]

    def dying(real: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            if done[0] == fail_at:
                raise OSError("the process died here")
            done[0] += 1
            return real(*args, **kwargs)

        return step

    with monkeypatch.context() as patch:
        patch.setattr(_outdir.os, "rename", dying(os.rename))
        patch.setattr(_outdir.os, "replace", dying(os.replace))
        patch.setattr(type(out), "unlink", dying(type(out).unlink))
        with pytest.raises(OSError, match="died here"), replace_together(out, NAMES) as staging:
            _write(staging, new)

    assert _consistent(out, new), _state(out)
    recover(out)  # what the next run does first
    assert _state(out) == (OLD if fail_at == 0 else new)  # committed at the first step
    assert _entries(out) == sorted([*(OLD if fail_at == 0 else new), "lineage"])


def test_a_killed_run_s_staging_is_removed_by_the_next_run(out: Path) -> None:
    stale = out / f"{_outdir.STAGING_PREFIX}dead"
    stale.mkdir()
    (stale / "tweets.csv").write_bytes(b"half written")

    with replace_together(out, NAMES) as staging:
        _write(staging, NEW_PASS)

    assert _entries(out) == sorted([*NEW_PASS, "lineage"])


def test_two_runs_cannot_replace_the_same_set_at_once(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outdir, "_LOCK_WAIT_S", 0.2)
    with replace_together(out, NAMES) as staging:
        _write(staging, NEW_PASS)
        with pytest.raises(OutputDirBusyError, match="another run is writing there"):
            with replace_together(out, NAMES):
                pass
    assert _state(out) == NEW_PASS


def test_a_lock_released_moments_later_is_waited_for(out: Path) -> None:
    # What a killed run's forked workers do: they hold the lock until their parent-death signal.
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Timer(0.3, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd)))
    release.start()
    try:
        with replace_together(out, NAMES) as staging:
            _write(staging, NEW_PASS)
    finally:
        release.join(5)

    assert _state(out) == NEW_PASS
