"""Watermarks and incremental windows, end to end over HTTP on 127.0.0.1.

The extractor talks to the hostile fake X API (``tests.unit.fake_x_api``, served on loopback) with
a fake clock. Post ids in the fake are Snowflake ids minted from ``created_at``, like real ones;
the hostile ones are added on purpose. ``tweetpipe state reset`` runs through ``etl.adapters.cli.main``.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from etl.adapters.cli import main
from etl.config import Source, Window
from etl.errors import SourceFailed
from etl.steps.extract.land import read_watermark
from etl.steps.extract.run import extract_source, extract_sources, make_client
from etl.storage.keys import open_window_key, watermark_key
from etl.storage.store import LocalStore
from tests.unit.fake_x_api import EPOCH, FakeClock, FakeXApi, Fault, serve_on_loopback, snowflake

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from etl.steps.extract.run import SourceResult

TOKEN = "integration-bearer-token-5be1d0"
ALICE = Source("account", "alice")
BOB = Source("account", "bob")
DATA = Source("query", "#data")
NOW = EPOCH + timedelta(days=3)
MAX_ID = "9223372036854775807"  # the largest 64-bit id: "newer" than every real post


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW.timestamp())


@pytest.fixture
def api(clock: FakeClock) -> FakeXApi:
    return FakeXApi(clock, TOKEN)


@pytest.fixture
def base_url(api: FakeXApi) -> Iterator[str]:
    with serve_on_loopback(api) as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _extract(
    base_url: str, store: LocalStore, clock: FakeClock, source: Source = ALICE, **kw: Any
) -> SourceResult:
    return extract_source(
        make_client(TOKEN, base_url),
        store,
        source,
        kw.pop("window", Window()),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(3),
        **kw,
    )


def _timeline(api: FakeXApi) -> list[dict[str, str]]:
    return [params for path, params, _ in api.log if path.endswith("/tweets")]


def _poison(store: LocalStore, slug: str, newest_id: Any) -> None:
    """A watermark as an earlier version, or a hand edit, could have left it."""
    doc = {"source": slug, "newest_id": newest_id, "manifest": "m", "updated_at": "x"}
    store.put(watermark_key(slug), json.dumps(doc).encode())


# --- hostile ids on the wire ------------------------------------------------------------------
def _hostile_posts(api: FakeXApi) -> int:
    """Posts whose ids must not count, placed first in alice's timeline; returns how many."""
    later = EPOCH + timedelta(days=1)
    hostile: list[tuple[Any, int]] = [
        (MAX_ID, 2**63 - 1),  # beyond every real id
        ("99999999999999999999", 2**63 - 2),  # 20 digits: the API refuses it as since_id
        ("²", 2**63 - 3),  # isdigit() is True, int() raises
        ("٣", 2**63 - 4),  # isdigit() is True, int() reads 3
        ("１２３", 2**63 - 5),
        ("123\n", 2**63 - 6),
        (1790000000000000000, 2**63 - 7),  # a JSON number
        (str(snowflake(later + timedelta(days=1), 9)), 2**63 - 8),  # minted a day after created_at
    ]
    for id_text, order in hostile:
        api.add_post("alice", later, id_text=id_text, order=order)
    return len(hostile)


def test_hostile_ids_land_byte_for_byte_but_never_become_the_watermark(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    real = api.add_posts("alice", 150)
    hostile = _hostile_posts(api)
    api.add_posts("bob", 5)
    client = make_client(TOKEN, base_url)

    report = extract_sources(client, store, [ALICE, BOB], Window(), clock=clock, sleep=clock.sleep)

    assert report.ok, report.failures
    alice, bob = report.results
    assert bob.tweets == 5  # the source after the hostile one ran
    assert [store.get(k) for k in alice.page_keys] == api.served["/2/users/101/tweets"]
    assert alice.tweets == 150 + hostile
    newest_real = str(max(p.id for p in real))
    assert alice.newest_id == newest_real
    assert read_watermark(store, ALICE.slug) == newest_real
    manifest = json.loads(store.get(alice.manifest_key))
    assert [p["ids_not_counted"] for p in manifest["pages"]] == [hostile, 0]
    assert manifest["newest_id"] == newest_real

    again = _extract(base_url, store, clock)

    assert _timeline(api)[-1]["since_id"] == newest_real
    assert again.status == "landed" and again.tweets == hostile  # the fake still sends them
    assert read_watermark(store, ALICE.slug) == newest_real


def test_a_resumed_page_with_hostile_ids_does_not_crash_either(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    real = api.add_posts("alice", 150)
    _hostile_posts(api)
    window = Window(EPOCH, NOW)

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _extract(base_url, store, clock, window=window, on_page=interrupt)

    resumed = _extract(base_url, store, clock, window=window)

    assert resumed.resumed_pages == 1 and resumed.pages == 2
    assert resumed.newest_id == str(max(p.id for p in real))
    manifest = json.loads(store.get(resumed.manifest_key))
    assert manifest["pages"][0]["ids_not_counted"] == 8


# --- a poisoned or broken watermark fails loud, with the way out -----------------------------
@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (MAX_ID, "is in the future"),
        ("99999999999999999999", "not a post id"),
        ("²", "not a post id"),
        (1790000000000000000, "not a post id"),
    ],
)
def test_an_unusable_watermark_fails_the_source_before_any_request_and_others_run(
    api: FakeXApi,
    base_url: str,
    store: LocalStore,
    clock: FakeClock,
    stored: Any,
    problem: str,
) -> None:
    api.add_posts("alice", 20)
    api.add_posts("bob", 7)
    _poison(store, ALICE.slug, stored)
    client = make_client(TOKEN, base_url)

    report = extract_sources(client, store, [ALICE, BOB], Window(), clock=clock, sleep=clock.sleep)

    assert [r.source for r in report.results] == [BOB] and report.results[0].tweets == 7
    (failed,) = report.failures
    message = str(failed)
    assert f"watermark {watermark_key(ALICE.slug)} holds newest_id" in message
    assert problem in message
    assert f"`tweetpipe state reset --source account:alice --store {store.url}`" in message
    assert not [p for p in _timeline(api) if "since_id" in p]  # alice asked nothing


def test_an_unreadable_watermark_fails_the_source_with_the_way_out(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    store.put(watermark_key(ALICE.slug), b"{not json")

    with pytest.raises(SourceFailed, match="is unreadable: not a JSON object; clear it with"):
        _extract(base_url, store, clock)

    assert api.log == []


def test_the_reset_command_in_the_message_repairs_the_source(
    api: FakeXApi,
    base_url: str,
    store: LocalStore,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    posts = api.add_posts("alice", 130)
    _poison(store, ALICE.slug, MAX_ID)
    with pytest.raises(SourceFailed) as failed:
        _extract(base_url, store, clock)
    command = str(failed.value).split("`")[1]

    code = main(shlex.split(command)[1:])

    assert code == 0
    assert f"account:alice: watermark {store.url}/{watermark_key(ALICE.slug)}" in (
        capsys.readouterr().out
    )
    assert read_watermark(store, ALICE.slug) is None
    assert json.loads(store.get(watermark_key(ALICE.slug)))["reset_from"] == MAX_ID
    repaired = _extract(base_url, store, clock)
    assert repaired.tweets == 130 and "since_id" not in _timeline(api)[-1]
    assert read_watermark(store, ALICE.slug) == str(max(p.id for p in posts))


def test_a_since_id_the_api_refuses_fails_the_source_naming_the_watermark(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 30)
    first = _extract(base_url, store, clock, source=DATA)
    assert first.tweets == 30
    clock.now += 8 * 86400  # recent search takes no since_id older than 7 days
    api.add_posts("alice", 3, start=datetime.fromtimestamp(clock(), UTC) - timedelta(hours=1))

    with pytest.raises(SourceFailed) as failed:
        _extract(base_url, store, clock, source=DATA)

    message = str(failed.value)
    assert f"HTTP 400: Invalid 'since_id':'{first.newest_id}'" in message
    assert (
        f"the API refused since_id={first.newest_id}, the watermark "
        f"{watermark_key(DATA.slug)}; if it is wrong, clear it with "
        f"`tweetpipe state reset --source 'query:#data' --store {store.url}`"
    ) in message
    assert main(["state", "reset", "--source", "query:#data", "--store", store.url]) == 0
    again = _extract(base_url, store, clock, source=DATA)
    assert again.tweets == 33


def test_a_400_without_since_id_says_nothing_about_the_watermark(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    api.script = [Fault(200, json.dumps({"data": {"id": "101", "username": "alice"}}).encode())]
    api.script.append(Fault(400, b'{"title":"Invalid Request","detail":"bad start_time"}'))

    with pytest.raises(SourceFailed) as failed:
        _extract(base_url, store, clock, window=Window(EPOCH, NOW))

    assert "bad start_time" in str(failed.value) and "state reset" not in str(failed.value)


def test_a_bounded_run_lands_despite_a_poisoned_watermark_and_names_it(
    api: FakeXApi,
    base_url: str,
    store: LocalStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.add_posts("alice", 5)
    _poison(store, ALICE.slug, MAX_ID)

    result = _extract(base_url, store, clock, window=Window(EPOCH, NOW))

    assert result.status == "landed" and result.tweets == 5 and result.watermark is None
    (warning,) = [r.getMessage() for r in caplog.records if "cannot advance" in r.getMessage()]
    assert f"`tweetpipe state reset --source account:alice --store {store.url}`" in warning
    assert json.loads(store.get(watermark_key(ALICE.slug)))["newest_id"] == MAX_ID
    with pytest.raises(SourceFailed, match="is in the future; clear it with"):
        _extract(base_url, store, clock)  # the incremental run that would start from it


# --- tweetpipe state reset ------------------------------------------------------------------
def test_state_reset_rewinds_to_a_given_id(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    posts = api.add_posts("alice", 12)
    _extract(base_url, store, clock)
    rewind = str(posts[4].id)

    assert main(["state", "reset", "--source", "@alice", "--store", store.url, "--to", rewind]) == 0

    again = _extract(base_url, store, clock)
    assert _timeline(api)[-1]["since_id"] == rewind and again.tweets == 7


def test_state_reset_without_a_watermark_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "nowhere"

    assert main(["state", "reset", "--source", "account:alice", "--store", str(where)]) == 0

    assert "no watermark" in capsys.readouterr().out and not where.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "alice"], "source 'alice' is neither 'account:NAME'"),
        (["--source", "account:not a name"], "not a valid X username"),
        (["--source", "account:alice", "--to", "²"], "'²' is not a post id"),
        (["--source", "account:alice", "--to", MAX_ID], f"post id {MAX_ID} is in the future"),
    ],
)
def test_state_reset_usage_errors_exit_2(
    argv: list[str], message: str, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _poison(store, ALICE.slug, MAX_ID)

    code = main(["state", "reset", "--store", store.url, *argv])

    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert json.loads(store.get(watermark_key(ALICE.slug)))["newest_id"] == MAX_ID


def test_state_reset_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["state", "reset", "--store", "x"])

    assert exited.value.code == 2 and "--source" in capsys.readouterr().err


# --- incremental windows resume across runs ---------------------------------------------------
def test_an_interrupted_incremental_window_resumes_in_a_later_run(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 350)  # four pages
    landed: list[int] = []

    def interrupt_after_two_pages(tweets: int) -> None:
        landed.append(tweets)
        if len(landed) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or the task killed, between two pages

    with pytest.raises(KeyboardInterrupt):
        _extract(base_url, store, clock, on_page=interrupt_after_two_pages)
    first_tokens = [p.get("pagination_token") for p in _timeline(api)]
    clock.now += 3600  # the rerun starts an hour later
    before = len(api.log)

    resumed = _extract(base_url, store, clock)

    rerun_tokens = [p.get("pagination_token") for p in _timeline(api)[len(first_tokens) :]]
    assert first_tokens == [None, "t100"] and rerun_tokens == ["t200", "t300"]
    assert len(api.log) - before == resumed.requests == 2  # no user lookup, no page twice
    assert resumed.resumed_pages == 2 and resumed.pages == 4 and resumed.tweets == 350
    assert resumed.window.startswith("since-none_at-20240504T000000Z")  # the first run's window
    pages = [k for k in store.list("raw/") if k.endswith(".json") and "/page-" in k]
    assert len(pages) == 4


def test_a_finished_incremental_window_is_not_reused(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 3)
    _extract(base_url, store, clock)
    clock.now += 60
    first = _extract(base_url, store, clock)  # nothing new: the watermark stays
    clock.now += 60
    api.add_posts("alice", 2)

    second = _extract(base_url, store, clock)

    assert first.status == second.status == "landed"
    assert first.window != second.window and second.tweets == 2


@pytest.mark.parametrize(
    "record",
    [
        b"not json",
        json.dumps({"endpoint": "users_tweets", "label": "../../../etc"}).encode(),
        json.dumps({"endpoint": "users_tweets", "label": "since-1_at-20240501T000000Z/x"}).encode(),
        json.dumps({"endpoint": "users_tweets", "label": 7}).encode(),
    ],
)
def test_a_hostile_open_window_record_is_replaced(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock, record: bytes
) -> None:
    api.add_posts("alice", 3)
    store.put(open_window_key(ALICE.slug), record)

    result = _extract(base_url, store, clock)

    assert result.window == "since-none_at-20240504T000000Z" and result.tweets == 3
    assert json.loads(store.get(open_window_key(ALICE.slug)))["label"] == result.window


def test_the_transform_quarantines_posts_whose_id_is_not_one(
    api: FakeXApi, base_url: str, store: LocalStore, clock: FakeClock, tmp_path: Path
) -> None:
    api.add_posts("alice", 10)
    _hostile_posts(api)
    result = _extract(base_url, store, clock)
    out = tmp_path / "out"

    code = main(["transform", str(store.root / result.page_keys[0]), "--out", str(out)])

    assert code == 1  # a third of the posts quarantined: the gate's share is breached
    report = json.loads((out / "report.json").read_text())
    assert (report["tweets_in"], report["quarantined"]) == (18, 6)
    lines = (out / "quarantine.jsonl").read_text().splitlines()
    reasons = [r for line in lines for r in json.loads(line)["reason"]]
    pattern = "tweet_id: pattern ^[0-9]{1,19}$"
    for shown in ("'99999999999999999999'", "'²'", "'٣'", "'１２３'", "'123\\n'"):
        assert f"{pattern} ({shown})" in reasons
    # A JSON number for an id fails on its edit history (a list of numbers, not of strings).
    assert "edit_history_tweet_ids: json_array of string ('[1790000000000000000]')" in reasons


def test_extract_cli_names_the_reset_and_the_reset_lets_it_go_on(
    api: FakeXApi,
    base_url: str,
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api.add_posts("alice", 12)
    api.add_posts("bob", 4)
    _poison(store, ALICE.slug, MAX_ID)
    monkeypatch.setenv("X_API_BASE_URL", base_url)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    extract = ["extract", "--account", "alice", "--account", "bob", "--store", store.url]

    assert main(extract) == 1
    out = capsys.readouterr().out
    (failed,) = [line for line in out.splitlines() if line.startswith("FAILED @alice")]
    command = failed.split("`")[1]
    assert command == f"tweetpipe state reset --source account:alice --store {store.url}"
    assert re.search(r"^account-bob +landed +1 +4 ", out, re.MULTILINE)

    assert main(shlex.split(command)[1:]) == 0
    assert main(extract) == 0

    assert "FAILED" not in capsys.readouterr().out
    assert read_watermark(store, ALICE.slug) == str(max(p.id for p in api.posts_of("alice")))
