"""Replace a directory's set of output files together, or not at all.

A run writes its outputs into a staging directory inside the output directory; nothing the
readers see changes meanwhile, so a run that fails or is killed leaves the previous outputs as
they were. When the run is done, its staging directory is renamed to ``.tweetpipe-commit``: one
atomic step after which the new set is decided. Then each output is renamed into place (outputs
the new set lacks are removed), the manifest last, and the commit directory is removed.

POSIX has no rename of several files at once, so the manifest is what makes the set one thing:
it is removed first and put back last, hence **a manifest beside the outputs always describes
them**; while it is absent, the set is being replaced. A run killed in the middle of that leaves
the commit directory behind, and the next run (or :func:`recover`) finishes the replacement
before anything else, from the names the commit lists. A staging directory without a commit is
a run that never finished: it is removed. An advisory lock on the directory keeps two runs from
replacing the same set at once.

Renames are atomic against a process that dies, not against a machine that loses power (the
files are not fsync'ed: that would cost more than the rest of a small run).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import OutputDirBusyError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

COMMIT_DIR = ".tweetpipe-commit"
STAGING_PREFIX = ".tweetpipe-staging-"
_LISTING = ".outputs.json"  # in the commit directory: the names of the new set


@contextmanager
def replace_together(directory: Path, names: Sequence[str]) -> Iterator[Path]:
    """Stage a set of outputs and replace ``names`` in ``directory`` with them in one commit.

    Args:
        directory: the output directory (created when missing).
        names: every output name of a run, the manifest last; the body writes the new set into
            the staging directory it is given, the manifest always, others as it decides.

    Yields:
        The staging directory (inside ``directory``, so renames stay on one file system).

    Raises:
        OutputDirBusyError: another run is replacing outputs in ``directory``.
        FileNotFoundError: the body did not write the manifest.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        recover(directory)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
        try:
            yield staging
            _commit(directory, staging, names)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone once committed; else dropped


def _take_lock(fd: int, directory: Path) -> None:
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                raise OutputDirBusyError(f"{directory}: another run is writing there") from exc
        time.sleep(_LOCK_POLL_S)


def recover(directory: Path) -> None:
    """Finish a replacement a killed run left half done; remove what runs never committed.

    Args:
        directory: the output directory.
    """
    commit = directory / COMMIT_DIR
    if commit.is_dir():
        _roll_forward(directory, commit)
    for stale in directory.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _commit(directory: Path, staging: Path, names: Sequence[str]) -> None:
    manifest = names[-1]
    if not (staging / manifest).is_file():
        raise FileNotFoundError(f"{staging / manifest}: a set of outputs needs its {manifest}")
    new_set = [name for name in names if (staging / name).is_file()]
    (staging / _LISTING).write_text(
        json.dumps({"names": list(names), "new": new_set}), encoding="utf-8"
    )
    os.rename(staging, directory / COMMIT_DIR)  # the commit: from here the new set wins
    _roll_forward(directory, directory / COMMIT_DIR)


def _roll_forward(directory: Path, commit: Path) -> None:
    """Move a committed set into place; safe to repeat after any step of it."""
    listing = json.loads((commit / _LISTING).read_text(encoding="utf-8"))
    names: list[str] = listing["names"]
    new_set = set(listing["new"])
    manifest = names[-1]
    if (commit / manifest).is_file():  # not done: the old manifest describes nothing now
        (directory / manifest).unlink(missing_ok=True)
        for name in names[:-1]:
            staged = commit / name
            if name not in new_set:
                (directory / name).unlink(missing_ok=True)
            elif staged.is_file():  # else moved before an interruption
                os.replace(staged, directory / name)
        os.replace(commit / manifest, directory / manifest)
    shutil.rmtree(commit)


# Forked workers share the lock; after a killed run they die with it (parent-death signal), a few
# milliseconds later. A short bounded wait lets the next run start right after the kill.
_LOCK_WAIT_S = 5.0
_LOCK_POLL_S = 0.05


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        _take_lock(fd, directory)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
