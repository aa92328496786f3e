"""Git in a throw-away repository, for tests of the contract tools that read history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from etl.adapters.cli import main

ROOT = Path(__file__).resolve().parents[1]
CURATED = "contracts/tweets_curated.odcs.yaml"
# The contract's version today, and the major bump a breaking change needs from it.
VERSION = yaml.safe_load((ROOT / CURATED).read_text(encoding="utf-8"))["version"]
BUMPED = f"{int(VERSION.split('.')[0]) + 1}.0.0"


def git(repo: Path, *args: str) -> str:
    """Run ``git args`` in ``repo`` as a fixed test identity, unsigned; its standard output."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def edit_curated_contract(repo: Path, drop: str | None = None, version: str | None = None) -> None:
    """Drop a column from, or set the version of, ``repo``'s curated contract; then sync its suites,
    so the version bump is the only thing a breaking change can still miss."""
    path = repo / CURATED
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if drop is not None:
        props = doc["schema"][0]["properties"]
        doc["schema"][0]["properties"] = [p for p in props if p["name"] != drop]
    if version is not None:
        doc["version"] = version
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    assert main(["expectations", "sync", "--root", str(repo)]) == 0
