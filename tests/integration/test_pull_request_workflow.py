"""The pull-request workflow, run here without the host: its file is checked (schema, zizmor,
least privilege, pinned actions), and the ``contracts`` and ``comment`` jobs' own ``run`` scripts
are executed with bash on a temporary git repository with a base and a head commit, posting to a
fake GitHub API on 127.0.0.1. What is asserted is the comment a reviewer would read."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from etl.adapters.cli import main
from etl.tools.github_comment import COMMENT_MARKER
from tests.git_repo import BUMPED, CURATED, VERSION, edit_curated_contract, git
from tests.integration.fake_github import FakeGitHub, serve

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"
BIN = Path(sys.executable).parent
TOKEN = "ghs_workflow-test-token-5f2a"
REPO = "acme/tweetpipe"
_SHA_PIN = re.compile(r"[^@\s]+@[0-9a-f]{40}")


def _workflow() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return doc


def _step(job: str, name: str) -> dict[str, Any]:
    return next(s for s in _workflow()["jobs"][job]["steps"] if s.get("name") == name)


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's ``run`` as the host runs it: ``bash --noprofile --norc -eo pipefail``."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- the workflow file ---------------------------------------------------------------------------
def test_the_workflow_is_valid_and_zizmor_finds_nothing() -> None:
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    # the same audit as `make ci-workflows`, at every severity and the auditor persona
    audit = _zizmor(WORKFLOW, "--persona", "auditor")
    assert audit.returncode == 0, audit.stdout


def _zizmor(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("TOKEN")}
    return subprocess.run(
        [BIN / "zizmor", "--offline", "--no-config", "--no-ignores", "--no-progress", *extra, path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_the_checks_fail_on_an_unsafe_or_invalid_workflow(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(
        "on: pull_request_target\n"
        "jobs:\n"
        "  x:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo '${{ github.event.pull_request.title }}'\n",
        encoding="utf-8",
    )
    audit = _zizmor(unsafe, "--min-severity", "medium")
    assert audit.returncode != 0
    for finding in ("dangerous-triggers", "template-injection", "unpinned-uses"):
        assert finding in audit.stdout, audit.stdout
    invalid = tmp_path / "invalid.yml"
    invalid.write_text("on: pull_request\njobs:\n  x:\n    steps: []\n", encoding="utf-8")
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", invalid],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert schema.returncode == 1


def test_least_privilege_and_pinned_actions() -> None:
    doc = _workflow()
    # PyYAML reads the key `on` as True
    assert set(doc[True]) == {"pull_request"}
    assert doc["permissions"] == {"contents": "read"}
    jobs = doc["jobs"]
    granted = {name: job.get("permissions") for name, job in jobs.items()}
    assert granted == {"test": None, "contracts": None, "comment": {"pull-requests": "write"}}
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets." not in text
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert _SHA_PIN.fullmatch(step["uses"]), step["uses"]
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
    # the job with the write token runs the base branch's script, nothing the pull request brings
    comment = jobs["comment"]
    checkout = comment["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    runs = [s["run"] for s in comment["steps"] if "run" in s]
    assert runs == [_step("comment", "Post or update the comment")["run"]]
    assert runs[0].startswith("python3 -m etl.tools.github_comment")
    assert "github.repository" in comment["if"]  # not for forks: their token is read-only
    for line in text.splitlines():
        if re.search(r"uses: \S+@[0-9a-f]{40}", line):
            assert re.search(r"# v[0-9]+\.[0-9]+\.[0-9]+$", line), line


def test_the_comment_job_needs_nothing_but_the_standard_library() -> None:
    probe = (
        "import sys; import etl.tools.github_comment; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); {probe}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # etl.errors (the package's exception classes) is standard library only, like the script.
    assert done.stdout.strip() == (
        "['__main__', 'etl', 'etl.errors', 'etl.tools', 'etl.tools.github_comment']"
    )


# --- the jobs' scripts on a repository -----------------------------------------------------------
@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    yield from serve(FakeGitHub(token=TOKEN))


@pytest.fixture
def pull(tmp_path: Path) -> Path:
    """A repository whose base commit holds this repository's contracts, suites and CODEOWNERS."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("contracts", "expectations", ".github"):
        shutil.copytree(ROOT / folder, repo / folder)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def _push(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def _runner(tmp_path: Path, **extra: str) -> dict[str, str]:
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "RUNNER_TEMP": str(runner),
        "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
        **extra,
    }


def _review(repo: Path, tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    """The contracts job's review step, where the host runs it: on the merge commit of the pull
    request's branch into its base (``refs/pull/N/merge``), whose first parent is the base."""
    env = _runner(
        tmp_path, BASE_REF="main", TWEETPIPE_CONTRACT_DOCS_URL="https://docs.example.org/contracts"
    )
    git(repo, "checkout", "-q", "--detach", "main")
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "pr")
    try:
        done = _bash(_step("contracts", "Review")["run"], repo, env)
    finally:
        git(repo, "checkout", "-q", "pr")
    out = Path(env["RUNNER_TEMP"]) / "contract-review"
    body = (out / "comment.md").read_text(encoding="utf-8")
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8").endswith(body)
    return done.returncode, body, json.loads((out / "review.json").read_text(encoding="utf-8"))


def _post(tmp_path: Path, api: FakeGitHub) -> subprocess.CompletedProcess[str]:
    """The comment job's post step, from this checkout, with a Python that has no site-packages."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    python = shim / "python3"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}), encoding="utf-8")
    env = _runner(
        tmp_path,
        PATH=f"{shim}{os.pathsep}/usr/bin{os.pathsep}/bin",
        GITHUB_TOKEN=TOKEN,
        GITHUB_REPOSITORY=REPO,
        GITHUB_EVENT_PATH=str(event),
        GITHUB_API_URL=api.url,
    )
    return _bash(_step("comment", "Post or update the comment")["run"], ROOT, env)


def test_a_breaking_change_fails_the_review_and_one_comment_follows_the_pushes(
    pull: Path, tmp_path: Path, api: FakeGitHub
) -> None:
    # push 1: a column removed, suites synced, no major bump
    edit_curated_contract(pull, drop="withheld_country_codes")
    _push(pull, "drop withheld_country_codes")
    code, body, state = _review(pull, tmp_path)
    assert code == 1
    assert state == {"touched": True, "ok": False, "base": "main"}
    lines = body.splitlines()
    assert lines[0] == COMMENT_MARKER
    assert lines[1] == "### Contract review against `main`: fails (version bump)"
    assert (
        "| version bump | `tweetpipe contracts diff --base main` | **fails**: "
        "contracts/tweets\\_curated.odcs.yaml: 1 breaking change(s) need a major version bump "
        f"({VERSION} -&gt; {BUMPED}); the version is {VERSION} |"
    ) in lines
    for gate in ("contracts valid", "suites in sync", "reviewers by contract"):
        assert any(line.startswith(f"| {gate} |") and "| ok: " in line for line in lines), gate
    assert f"- `{CURATED}`: `@tweetpipe/data-eng`" in lines
    assert "- `expectations/tweets_curated.json`: `@tweetpipe/data-eng`" in lines
    diff_at = lines.index(
        "### Contract changes against `main`: fails (1 breaking change without a major version "
        f"bump: `{CURATED}` needs version {BUMPED}, is {VERSION})"
    )
    assert lines[diff_at + 1 :].index("#### 1 breaking change") >= 0
    assert f"| `{CURATED}` | `tweets.withheld_country_codes` | column removed |" in lines
    assert (
        f"| [`{CURATED}`](https://docs.example.org/contracts/tweets_curated.html) "
        f"| {VERSION} -&gt; {VERSION} | 1 | **FAIL**:"
    ) in body
    posted = _post(tmp_path, api)
    assert posted.returncode == 0, posted.stderr
    assert posted.stdout.strip() == f"contract review comment on {REPO}#7: created"

    # push 2: the major bump; the same comment now says it passes
    edit_curated_contract(pull, version=BUMPED)
    _push(pull, f"tweets_curated {BUMPED}")
    code, body, state = _review(pull, tmp_path)
    assert code == 0, body
    assert state["ok"] is True
    assert body.splitlines()[1] == "### Contract review against `main`: passes"
    assert _post(tmp_path, api).stdout.strip().endswith(": updated")

    # push 3: the contract change taken back out: the comment says so, no new one
    for folder in ("contracts", "expectations"):
        shutil.rmtree(pull / folder)
        shutil.copytree(ROOT / folder, pull / folder)
    _push(pull, "revert")
    code, body, state = _review(pull, tmp_path)
    assert (code, state["touched"]) == (0, False)
    assert body.splitlines()[1] == "### Contract review: nothing to review"
    assert _post(tmp_path, api).stdout.strip().endswith(": updated")
    (only,) = api.comments[(REPO, 7)]
    assert only["body"] == body
    assert [m for m, _ in api.writes()] == ["POST", "PATCH", "PATCH"]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in api.requests)


def test_each_gate_reports_its_own_failure(pull: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pull / CURATED
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["schema"][0]["properties"][0].pop("description")  # lint
    doc["schema"][0]["properties"].append(  # an optional column: suite out of date, no bump needed
        {"name": "note", "logicalType": "string", "description": "n", "required": False}
    )
    doc["team"] = {"members": [{"username": "jane"}]}  # CODEOWNERS out of date
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    assert main(["contracts", "review", "--base", "HEAD", "--root", str(pull)]) == 1
    body = capsys.readouterr().out
    assert "### Contract review against `HEAD`: fails (contracts valid, suites in sync, " in body
    assert "reviewers by contract)" in body
    assert (
        "| suites in sync | `tweetpipe expectations sync --check` | **fails**: out of date: "
        in body
    )
    assert (
        "**fails**: .github/CODEOWNERS is out of date: /contracts/tweets\\_curated.odcs.yaml is "
        "owned "
        "by @\u2060tweetpipe/data-eng in the file, by @\u2060jane in the contract's team" in body
    )
    assert (
        "| version bump | `tweetpipe contracts diff --base HEAD` | ok: fits the changes |" in body
    )
    fenced = body.split("contracts valid:\n\n```text\n", 1)[1].split("\n```", 1)[0]
    assert fenced.startswith(f"{CURATED}:") and "description" in fenced


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--base", "no-such-ref"], "'no-such-ref' is not a git revision"),
        (["--base", "HEAD", "--base-label", "main; rm -rf /"], "--base-label"),
        (["--base", "HEAD", "--docs-url", "javascript:x"], "--docs-url"),
    ],
)
def test_review_usage_errors_exit_2(
    pull: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["contracts", "review", "--root", str(pull), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
