"""Git in a throw-away repository, for tests of the contract tools that read history."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run ``git args`` in ``repo`` as a fixed test identity, unsigned; its standard output."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout
