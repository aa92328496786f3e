"""The git hooks of ``.pre-commit-config.yaml``, installed with pre-commit in a temporary
repository holding this repository's contracts, suites and CODEOWNERS: a commit that removes a
contract column without a major version bump is refused with the diff's explanation, the same
change with the bump goes through. Every hook is local, so nothing is fetched (no network here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from etl.adapters.cli import main
from tests.git_repo import BUMPED, CURATED, VERSION, edit_curated_contract

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(repo: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _git(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    return _run(repo, env, "git", *identity, "-c", "commit.gpgsign=false", *args)


@pytest.fixture
def hooked(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository with one commit and the hooks installed; the environment to commit in."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("contracts", "expectations", ".github"):
        shutil.copytree(ROOT / folder, repo / folder)
    shutil.copy(ROOT / ".pre-commit-config.yaml", repo)
    env = {
        # the project's environment on PATH, as after `. .venv/bin/activate`
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LANG": "C.UTF-8",
    }
    assert _git(repo, env, "init", "-q", "-b", "main").returncode == 0
    assert _git(repo, env, "add", ".").returncode == 0
    assert _git(repo, env, "commit", "-q", "-m", "base").returncode == 0
    installed = _run(repo, env, "pre-commit", "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return repo, env


def _commits(repo: Path, env: dict[str, str]) -> int:
    return int(_git(repo, env, "rev-list", "--count", "HEAD").stdout)


def test_a_removed_column_needs_the_major_bump_to_commit(
    hooked: tuple[Path, dict[str, str]],
) -> None:
    repo, env = hooked
    edit_curated_contract(repo, drop="withheld_country_codes")
    _git(repo, env, "add", "-A")
    refused = _git(repo, env, "commit", "-m", "drop withheld_country_codes")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert _commits(repo, env) == 1
    assert "contracts diff --base HEAD" in output and "Failed" in output
    assert "BREAKING      tweets.withheld_country_codes  column removed" in output
    assert (
        f"=> FAIL: 1 breaking change(s) need a major version bump ({VERSION} -> {BUMPED}); "
        f"the version is {VERSION}"
    ) in output
    # the other hooks ran and passed on the same change
    for hook in ("contracts lint", "expectations sync --check", "contracts codeowners --check"):
        line = next(li for li in output.splitlines() if li.startswith(hook))
        assert line.endswith("Passed"), line

    edit_curated_contract(repo, version=BUMPED)
    _git(repo, env, "add", "-A")
    accepted = _git(
        repo, env, "commit", "-m", f"tweets_curated {BUMPED}: withheld_country_codes gone"
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert _commits(repo, env) == 2
    assert "Failed" not in accepted.stdout + accepted.stderr
    # local hooks only: pre-commit cloned no hook repository
    home = Path(env["PRE_COMMIT_HOME"])
    clones = [p.name for p in home.iterdir() if p.is_dir()] if home.exists() else []
    assert clones == []


def test_stale_suites_and_codeowners_are_refused_too(hooked: tuple[Path, dict[str, str]]) -> None:
    repo, env = hooked
    path = repo / CURATED
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["team"] = {"members": [{"username": "jane"}]}
    doc["schema"][0]["properties"].append(
        {"name": "note", "logicalType": "string", "description": "n", "required": False}
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    _git(repo, env, "add", "-A")
    refused = _git(repo, env, "commit", "-m", "note column, new owner")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "expectations out of date: expectations/tweets_curated.json" in output
    assert (
        ".github/CODEOWNERS is out of date: /contracts/tweets_curated.odcs.yaml is owned by "
        "@tweetpipe/data-eng in the file, by @jane in the contract's team"
    ) in output
    assert _commits(repo, env) == 1
    assert main(["expectations", "sync", "--root", str(repo)]) == 0
    assert main(["contracts", "codeowners", "--root", str(repo)]) == 0
    _git(repo, env, "add", "-A")
    accepted = _git(repo, env, "commit", "-m", "note column, new owner")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_python_files_go_through_ruff(hooked: tuple[Path, dict[str, str]]) -> None:
    repo, env = hooked
    (repo / "job.py").write_text("import os\n", encoding="utf-8")
    _git(repo, env, "add", "job.py")
    refused = _git(repo, env, "commit", "-m", "job")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "F401" in output
    # contract hooks are skipped when no contract file is staged
    diff_hook = next(li for li in output.splitlines() if li.startswith("contracts diff"))
    assert diff_hook.endswith("Skipped")
    assert _commits(repo, env) == 1
