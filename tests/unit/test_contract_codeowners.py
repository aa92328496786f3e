"""``tweetpipe contracts codeowners``: owners from each contract's ``team``, written into (or
checked against) a delimited CODEOWNERS section; everything else in the file is kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl.adapters.cli import main
from etl.errors import CodeownersInputError
from etl.tools.contract_codeowners import (
    SECTION_BEGIN,
    SECTION_END,
    contract_owners,
    normalize_owner,
    owned_paths,
)

ROOT = Path(__file__).resolve().parents[2]


def _member(username: str, **extra: Any) -> dict[str, Any]:
    return {"username": username, "role": "owner", **extra}


def _owner_prop(value: Any) -> list[dict[str, Any]]:
    return [{"property": "codeowner", "value": value}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's contracts and suites, without a CODEOWNERS file."""
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    shutil.copytree(ROOT / "expectations", tmp_path / "expectations")
    return tmp_path


def _set_team(repo: Path, team: Any, name: str = "tweets_curated.odcs.yaml") -> None:
    path = repo / "contracts" / name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["team"] = team
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _codeowners(repo: Path, *extra: str, check: bool = False) -> int:
    argv = ["contracts", "codeowners", "--root", str(repo), *extra]
    return main([*argv, "--check"] if check else argv)


# --- owners from a team ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "owner"),
    [
        ("jane", "@jane"),
        ("@jane", "@jane"),
        ("acme/data-eng", "@acme/data-eng"),
        ("@acme/data-eng", "@acme/data-eng"),
        ("jane.doe@example.com", "jane.doe@example.com"),
        ("Jane Doe", None),
        ("-jane", None),
        ("jane--doe", None),
        ("@jane\n/etc @mallory", None),
        ("j" * 40, None),
        ("jäne", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_owner(value: Any, owner: str | None) -> None:
    assert normalize_owner(value) == owner


def test_owners_come_from_codeowner_properties_then_usernames_team_first() -> None:
    team = {
        "name": "data",
        "customProperties": _owner_prop("@acme/data"),
        "members": [
            _member("Jane Doe", customProperties=_owner_prop(["@jane", "jane@example.com"])),
            _member("bob"),
            _member("carol", dateOut="2024-01-31"),
            _member("dave", customProperties=_owner_prop([])),
            _member("bob"),
        ],
    }
    owners = contract_owners({"team": team}, "c")
    assert owners == ("@acme/data", "@jane", "jane@example.com", "@bob")


def test_the_v3_0_team_list_is_read() -> None:
    assert contract_owners({"team": [_member("jane")]}, "c") == ("@jane",)


@pytest.mark.parametrize(
    ("team", "message"),
    [
        (None, "names no code owner"),
        ({"name": "x", "members": []}, "names no code owner"),
        ({"members": [_member("jane", dateOut="2024-01-01")]}, "names no code owner"),
        ({"members": [_member("Jane Doe")]}, "username is not a GitHub handle"),
        ({"members": [_member("jane", customProperties=_owner_prop("@a b"))]}, "'@a b'"),
        ({"members": ["jane"]}, "not a mapping"),
        ("data-eng", "neither a mapping nor a list"),
    ],
)
def test_a_team_without_a_usable_owner_is_refused(team: Any, message: str) -> None:
    with pytest.raises(CodeownersInputError, match=message):
        contract_owners({"team": team}, "contracts/c.odcs.yaml")


def test_every_contract_and_its_suite_get_the_teams_owners(repo: Path) -> None:
    rules = owned_paths(repo)
    assert [(r.path, r.owners) for r in rules] == [
        ("contracts/tweets_curated.odcs.yaml", ("@tweetpipe/data-eng",)),
        ("expectations/tweets_curated.json", ("@tweetpipe/data-eng",)),
        ("contracts/x_api_v2_tweets_page.odcs.yaml", ("@tweetpipe/data-eng",)),
        ("expectations/x_api_v2_tweets_page.json", ("@tweetpipe/data-eng",)),
    ]


def test_a_contract_without_a_suite_gets_only_its_own_rule(repo: Path) -> None:
    (repo / "expectations" / "tweets_curated.json").unlink()
    paths = [r.path for r in owned_paths(repo)]
    assert "expectations/tweets_curated.json" not in paths
    assert "contracts/tweets_curated.odcs.yaml" in paths


def test_a_file_name_that_would_change_the_rule_is_refused(repo: Path) -> None:
    shutil.copy(
        repo / "contracts" / "tweets_curated.odcs.yaml", repo / "contracts" / "a b#c.odcs.yaml"
    )
    with pytest.raises(CodeownersInputError, match="rename the file"):
        owned_paths(repo)


# --- the file ------------------------------------------------------------------------------------
def test_write_creates_the_file_then_check_passes(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _codeowners(repo, check=True) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        ".github/CODEOWNERS is out of date: the file does not exist; "
        "run `tweetpipe contracts codeowners`"
    )
    assert _codeowners(repo) == 0
    text = (repo / ".github" / "CODEOWNERS").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == SECTION_BEGIN and lines[-1] == SECTION_END
    assert "/contracts/tweets_curated.odcs.yaml @tweetpipe/data-eng" in lines
    assert "/expectations/x_api_v2_tweets_page.json @tweetpipe/data-eng" in lines
    assert _codeowners(repo, check=True) == 0


def test_the_section_is_appended_and_replaced_keeping_the_rest(repo: Path) -> None:
    owners = repo / ".github" / "CODEOWNERS"
    owners.parent.mkdir()
    head = "# team rules\r\n* @acme/maintainers\r\n/dags/ @acme/airflow"  # CRLF, no final newline
    owners.write_bytes(head.encode())
    assert _codeowners(repo) == 0
    first = owners.read_bytes()
    assert first.startswith(head.encode() + b"\n\n" + SECTION_BEGIN.encode())
    _set_team(repo, {"members": [_member("jane")]})
    assert _codeowners(repo, check=True) == 1
    tail = b"\n# after\n"
    owners.write_bytes(first + tail)
    assert _codeowners(repo) == 0
    second = owners.read_bytes()
    assert second.startswith(head.encode() + b"\n\n" + SECTION_BEGIN.encode())
    assert second.endswith(SECTION_END.encode() + b"\n" + tail)
    assert b"/contracts/tweets_curated.odcs.yaml @jane\n" in second


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda t: t.replace("/expectations/tweets_curated.json @tweetpipe/data-eng\n", ""),
            "no rule for /expectations/tweets_curated.json (owners @tweetpipe/data-eng)",
        ),
        (
            lambda t: t.replace(
                "/contracts/tweets_curated.odcs.yaml @tweetpipe/data-eng",
                "/contracts/tweets_curated.odcs.yaml @mallory",
            ),
            "/contracts/tweets_curated.odcs.yaml is owned by @mallory in the file, "
            "by @tweetpipe/data-eng in the contract's team",
        ),
        (
            lambda t: t.replace(SECTION_END, f"/contracts/old.odcs.yaml @x\n{SECTION_END}"),
            "a rule for /contracts/old.odcs.yaml, which is no contract or suite any more",
        ),
        (
            lambda t: t.replace(SECTION_END, f"# a note\n{SECTION_END}"),
            "the section's lines differ from the generated ones (order or comments)",
        ),
        (
            lambda t: "* @acme/all\n",
            "the file has no tweetpipe section",
        ),
    ],
)
def test_check_names_the_first_difference(
    repo: Path, capsys: pytest.CaptureFixture[str], edit: Any, reason: str
) -> None:
    assert _codeowners(repo) == 0
    owners = repo / ".github" / "CODEOWNERS"
    owners.write_text(edit(owners.read_text(encoding="utf-8")), encoding="utf-8")
    capsys.readouterr()
    assert _codeowners(repo, check=True) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == f".github/CODEOWNERS is out of date: {reason}; run `tweetpipe contracts codeowners`"
    )
    assert _codeowners(repo) == 0
    assert _codeowners(repo, check=True) == 0


def test_the_file_the_host_reads_first_is_the_one_written(repo: Path) -> None:
    (repo / "docs").mkdir()
    (repo / "docs" / "CODEOWNERS").write_text("* @acme/docs\n", encoding="utf-8")
    assert _codeowners(repo) == 0
    assert not (repo / ".github" / "CODEOWNERS").exists()
    assert SECTION_BEGIN in (repo / "docs" / "CODEOWNERS").read_text(encoding="utf-8")


def test_rules_after_the_section_are_reported(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _codeowners(repo) == 0
    owners = repo / ".github" / "CODEOWNERS"
    owners.write_text(owners.read_text(encoding="utf-8") + "* @acme/all\n", encoding="utf-8")
    assert _codeowners(repo, check=True) == 0
    assert "1 rule(s) follow the tweetpipe section" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        f"{SECTION_BEGIN}\n/x @a\n",
        f"{SECTION_END}\n{SECTION_BEGIN}\n",
        f"{SECTION_BEGIN}\n{SECTION_END}\n{SECTION_BEGIN}\n{SECTION_END}\n",
    ],
)
def test_unbalanced_markers_are_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    owners = repo / ".github" / "CODEOWNERS"
    owners.parent.mkdir()
    owners.write_text(text, encoding="utf-8")
    for check in (True, False):
        assert _codeowners(repo, check=check) == 2
        err = capsys.readouterr().err
        assert "fix the file by hand" in err and len(err.strip().splitlines()) == 1
    assert owners.read_text(encoding="utf-8") == text


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _codeowners(tmp_path, check=True) == 2
    assert "no such contracts directory" in capsys.readouterr().err
    (tmp_path / "contracts").mkdir()
    (tmp_path / "big").write_bytes(b"#" * (3 * 1024 * 1024 + 1))
    assert _codeowners(tmp_path, "--file", str(tmp_path / "big"), check=True) == 2
    assert "which the host ignores" in capsys.readouterr().err


def test_a_team_without_owners_fails_with_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_team(repo, {"name": "nobody"})
    assert _codeowners(repo) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tweetpipe contracts codeowners: contracts/tweets_curated.odcs.yaml:")
    assert len(err.splitlines()) == 1
    assert not (repo / ".github" / "CODEOWNERS").exists()


def test_the_repositorys_codeowners_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert _codeowners(ROOT, check=True) == 0, capsys.readouterr().err
