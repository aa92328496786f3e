"""The one way the contract tools ask git something (diff against a revision, docs history)."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

GIT_TIMEOUT_S = 60


def git_output(cwd: Path, *args: str) -> str | None:
    """Standard output of ``git ARGS`` run in ``cwd``, or None when git fails or exits non-zero.

    Args:
        cwd: the directory to run in.
        args: git's arguments.

    Returns:
        What git printed, or None.
    """
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
