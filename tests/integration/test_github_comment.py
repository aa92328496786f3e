"""The review comment poster (``python3 -m etl.tools.github_comment``) against a fake GitHub API on
127.0.0.1: one comment per pull request, edited in place, found by its marker among the
workflow account's own comments; bad input exits 2, a refused write 1; the token never shows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from etl.tools.github_comment import COMMENT_MARKER, MAX_BODY_CHARS, PER_PAGE, main
from tests.integration.fake_github import FakeGitHub, serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "ghs_fake-token-0b5e1c7a"
REPO = "acme/tweetpipe"
NUMBER = 17
BOT = "github-actions[bot]"


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    yield from serve(FakeGitHub(token=TOKEN))


def _files(tmp_path: Path, body: str, touched: bool = True) -> list[str]:
    (tmp_path / "comment.md").write_text(body, encoding="utf-8")
    state = {"touched": touched, "ok": True, "base": "main"}
    (tmp_path / "review.json").write_text(json.dumps(state), encoding="utf-8")
    return ["--body", str(tmp_path / "comment.md"), "--state", str(tmp_path / "review.json")]


def _env(tmp_path: Path, api: FakeGitHub, number: object = NUMBER) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": number}}), encoding="utf-8")
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_API_URL": api.url,
    }


def _bodies(api: FakeGitHub) -> list[str]:
    return [c["body"] for c in api.comments.get((REPO, NUMBER), [])]


def test_first_push_creates_later_pushes_edit_the_same_comment(
    tmp_path: Path, api: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(tmp_path, api)
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nfirst push\n"), env) == 0
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nsecond push\n"), env) == 0
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nsecond push\n"), env) == 0
    assert _bodies(api) == [f"{COMMENT_MARKER}\nsecond push\n"]
    assert [m for m, _ in api.writes()] == ["POST", "PATCH"]
    out = capsys.readouterr().out.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in out] == ["created", "updated", "unchanged"]


def test_the_comment_is_found_on_a_later_page(tmp_path: Path, api: FakeGitHub) -> None:
    for index in range(PER_PAGE + 5):
        api.add_comment(REPO, NUMBER, f"comment {index}", "someone")
    mine = api.add_comment(REPO, NUMBER, f"{COMMENT_MARKER}\nold\n", BOT)
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nnew\n"), _env(tmp_path, api)) == 0
    assert api.writes() == [("PATCH", f"/repos/{REPO}/issues/comments/{mine}")]
    pages = [p for m, p, _ in api.requests if m == "GET"]
    assert len(pages) == 2 and pages[1].endswith("page=2")


def test_a_marker_comment_by_someone_else_is_not_edited(tmp_path: Path, api: FakeGitHub) -> None:
    theirs = api.add_comment(REPO, NUMBER, f"{COMMENT_MARKER}\nlooks like the bot\n", "mallory")
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nreview\n"), _env(tmp_path, api)) == 0
    assert [m for m, _ in api.writes()] == ["POST"]
    assert api.comments[(REPO, NUMBER)][0] == {
        "id": theirs,
        "body": f"{COMMENT_MARKER}\nlooks like the bot\n",
        "user": {"login": "mallory", "type": "User"},
    }


def test_no_contract_change_posts_nothing_but_corrects_an_earlier_comment(
    tmp_path: Path, api: FakeGitHub
) -> None:
    env = _env(tmp_path, api)
    untouched = f"{COMMENT_MARKER}\nnothing to review\n"
    assert main(_files(tmp_path, untouched, touched=False), env) == 0
    assert api.writes() == []
    api.add_comment(REPO, NUMBER, f"{COMMENT_MARKER}\nfails\n", BOT)
    assert main(_files(tmp_path, untouched, touched=False), env) == 0
    assert _bodies(api) == [untouched]


def test_a_next_page_off_the_api_is_not_followed(
    tmp_path: Path, api: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(PER_PAGE + 1):
        api.add_comment(REPO, NUMBER, f"comment {index}", "someone")
    api.next_link_base = "http://127.0.0.2:9"
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nx\n"), _env(tmp_path, api)) == 1
    assert "outside the API" in capsys.readouterr().err
    assert len(api.requests) == 1


def test_a_refused_write_exits_1_without_the_token(
    tmp_path: Path, api: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    api.refuse_writes = True
    assert main(_files(tmp_path, f"{COMMENT_MARKER}\nx\n"), _env(tmp_path, api)) == 1
    captured = capsys.readouterr()
    assert "answered 403" in captured.err
    assert TOKEN not in captured.out + captured.err
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in api.requests)


@pytest.mark.parametrize(
    ("body", "state", "env_change", "message"),
    [
        ("no marker\n", None, {}, "does not start with"),
        (COMMENT_MARKER + "x" * MAX_BODY_CHARS, None, {}, "characters, over"),
        (None, "[]", {}, "not a JSON object"),
        (None, '{"touched": "yes", "ok": true, "base": "main"}', {}, "'touched' is not a bool"),
        (None, None, {"GITHUB_TOKEN": ""}, "GITHUB_TOKEN is not set"),
        (None, None, {"GITHUB_REPOSITORY": "acme/tweetpipe\nX: y"}, "is not owner/name"),
        (None, None, {"GITHUB_API_URL": "file:///etc/passwd"}, "not a plain http(s) URL"),
        (None, None, {"number": "17"}, "not a pull_request event"),
        (None, None, {"number": True}, "not a pull_request event"),
    ],
)
def test_bad_input_exits_2_naming_it(
    tmp_path: Path,
    api: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    body: str | None,
    state: str | None,
    env_change: dict[str, object],
    message: str,
) -> None:
    argv = _files(tmp_path, body if body is not None else f"{COMMENT_MARKER}\nok\n")
    if state is not None:
        (tmp_path / "review.json").write_text(state, encoding="utf-8")
    changes = dict(env_change)
    env = _env(tmp_path, api, changes.pop("number", NUMBER))
    env.update({k: str(v) for k, v in changes.items()})
    assert main(argv, env) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert api.requests == []
