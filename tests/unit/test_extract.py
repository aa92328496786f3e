"""The extractor against an in-process fake X API (tweepy's real code, no socket, fake clock)."""

from __future__ import annotations

import json
import logging
import math
import random
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import requests

from etl.config import Source, Window
from etl.errors import SourceFailed
from etl.steps.extract.land import read_watermark
from etl.steps.extract.run import (
    ExtractReport,
    extract_source,
    extract_sources,
    make_client,
)
from etl.storage.keys import is_page_key, user_key
from etl.storage.store import LocalStore
from tests.unit.fake_x_api import (
    EPOCH,
    FAKE_BASE,
    FAST_RETRIES,
    FakeClock,
    FakeXApi,
    Fault,
    mounted_client,
)

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "unit-test-bearer-token-7f3a9c"
ALICE = Source("account", "alice")
DAY = Window(EPOCH, EPOCH + timedelta(days=1))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(EPOCH.timestamp() + 3 * 86400)


@pytest.fixture
def api(clock: FakeClock) -> FakeXApi:
    return FakeXApi(clock, TOKEN)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _extract(api: FakeXApi, store: LocalStore, clock: FakeClock, source=ALICE, window=DAY, **kw):  # type: ignore[no-untyped-def]
    return extract_source(
        mounted_client(api),
        store,
        source,
        window,
        clock=clock,
        sleep=clock.sleep,
        policy=kw.pop("policy", FAST_RETRIES),
        rng=random.Random(7),
        **kw,
    )


def _timeline_requests(api: FakeXApi) -> list[dict[str, str]]:
    return [params for path, params, _ in api.log if path.endswith("/tweets")]


def test_make_client_sends_tweepy_requests_to_the_base_url(api: FakeXApi) -> None:
    client = make_client(TOKEN, FAKE_BASE + "/")
    client.session.mount(FAKE_BASE, api)

    response = client.lookup_user("alice")

    assert isinstance(response, requests.Response)
    assert response.request.url.startswith(f"{FAKE_BASE}/2/users/by/username/alice")
    assert api.log[0][0] == "/2/users/by/username/alice"


def test_make_client_refuses_an_empty_token() -> None:
    with pytest.raises(ValueError, match="token is empty"):
        make_client("  ")


def test_bounded_window_lands_every_page_byte_for_byte_with_minimal_requests(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 250)
    api.add_posts("bob", 30)

    result = _extract(api, store, clock)

    assert result.status == "landed"
    assert result.pages == math.ceil(250 / 100) == 3
    assert result.tweets == 250
    assert result.requests == 1 + 3 and result.user_lookups == 1
    prefix = (
        "raw/source=account-alice/endpoint=users_tweets/window=20240501T000000Z_20240502T000000Z"
    )
    assert result.page_keys == tuple(f"{prefix}/page-{n:05d}.json" for n in (1, 2, 3))
    assert [store.get(k) for k in result.page_keys] == api.served["/2/users/101/tweets"]
    landed_ids = [t["id"] for k in result.page_keys for t in json.loads(store.get(k))["data"]]
    assert sorted(landed_ids) == sorted(str(p.id) for p in api.posts_of("alice"))
    sent = _timeline_requests(api)
    assert [p.get("pagination_token") for p in sent] == [None, "t100", "t200"]
    assert {p["max_results"] for p in sent} == {"100"}
    assert sent[0]["start_time"] == "2024-05-01T00:00:00Z"
    assert "created_at" in sent[0]["tweet.fields"] and sent[0]["expansions"] == "author_id"


def test_manifest_is_complete_and_written_last(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 120)

    result = _extract(api, store, clock)

    manifest = json.loads(store.get(result.manifest_key))
    assert result.manifest_key.endswith("/_manifest.json")
    assert manifest["totals"]["tweets"] == 120 and manifest["totals"]["pages"] == 2
    assert manifest["next_token_chain"] == ["t100", None]
    first = manifest["pages"][0]
    assert first["status"] == 200 and first["size"] == len(store.get(first["key"]))
    assert first["rate_limit"]["remaining"] == 10_000 - 1
    assert manifest["request"]["params"]["max_results"] == 100
    assert manifest["request"]["params"]["end_time"] == "2024-05-02T00:00:00Z"
    assert manifest["newest_id"] == str(max(p.id for p in api.posts_of("alice")))
    assert manifest["user"]["id"] == "101"
    # Written last: the manifest object is newer than every page it lists.
    mtime = (store.root / result.manifest_key).stat().st_mtime_ns
    assert all((store.root / k).stat().st_mtime_ns <= mtime for k in result.page_keys)


def test_rerun_of_a_complete_window_fetches_nothing(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 150)
    first = _extract(api, store, clock)
    before = len(api.log)

    again = _extract(api, store, clock)

    assert len(api.log) == before
    assert again.status == "skipped" and again.requests == 0
    assert again.page_keys == first.page_keys and again.tweets == 150


def test_user_lookup_is_cached_in_state_across_clients(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 5)
    _extract(api, store, clock)
    assert json.loads(store.get(user_key("alice")))["data"]["id"] == "101"

    second = _extract(api, store, clock, window=Window(EPOCH - timedelta(days=1), EPOCH))

    lookups = [path for path, _, _ in api.log if "/by/username/" in path]
    assert lookups == ["/2/users/by/username/alice"]
    assert second.user_lookups == 0 and second.requests == 1


def test_incremental_run_starts_from_the_watermark(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 40)
    first = _extract(api, store, clock, window=Window())
    assert read_watermark(store, "account-alice") == first.newest_id
    new = api.add_posts("alice", 3)
    clock.now += 60

    second = _extract(api, store, clock, window=Window())

    assert second.tweets == 3 and second.requests == 1
    assert _timeline_requests(api)[-1]["since_id"] == first.newest_id
    assert second.window.startswith(f"since-{first.newest_id}_at-")
    assert first.window.startswith("since-none_at-")
    assert read_watermark(store, "account-alice") == str(max(p.id for p in new))


def test_watermark_never_moves_backwards(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 10, start=EPOCH - timedelta(days=1))  # older posts, lower ids
    api.add_posts("alice", 10)
    newest = _extract(api, store, clock).newest_id

    _extract(api, store, clock, window=Window(EPOCH - timedelta(days=1), EPOCH))

    assert read_watermark(store, "account-alice") == newest


def test_query_source_uses_recent_search_and_next_token(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 90)
    api.add_posts("bob", 90)
    source = Source("query", "#data")

    result = _extract(api, store, clock, source=source)

    assert result.tweets == 180 and result.pages == 2 and result.user_lookups == 0
    assert f"source={source.slug}/endpoint=tweets_search_recent/" in result.page_keys[0]
    search = [p for path, p, _ in api.log if path == "/2/tweets/search/recent"]
    assert [p.get("next_token") for p in search] == [None, "t100"]
    assert search[0]["query"] == "#data"


def test_429_waits_until_the_reset_then_continues(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 150)
    reset = int(clock()) + 37
    limited = {
        "x-rate-limit-limit": "5",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(reset),
    }
    api.script = [Fault(429, b'{"title":"Too Many Requests"}', headers=limited)]

    result = _extract(api, store, clock)

    assert clock.sleeps == [37 + FAST_RETRIES.reset_margin]
    assert clock() >= reset
    assert result.rate_limit_waits == 1 and result.tweets == 150
    assert result.requests == 1 + 1 + 2  # the refused lookup, the lookup, two pages


def test_spent_quota_waits_for_the_reset_before_asking(clock: FakeClock, store: LocalStore) -> None:
    api = FakeXApi(clock, TOKEN, rate_limit=2)
    api.add_posts("alice", 450)

    result = _extract(api, store, clock)

    assert result.tweets == 450 and result.pages == 5
    assert [status for _, _, status in api.log] == [200] * 6  # never refused: waited instead
    assert result.rate_limit_waits == 2
    assert clock.sleeps == [pytest.approx(api.window + FAST_RETRIES.reset_margin)] * 2


def test_server_errors_are_retried_with_bounded_jittered_backoff(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 20)
    api.script = [Fault(503, b'{"title":"Service Unavailable"}'), Fault(500, b"oops")]

    result = _extract(api, store, clock)

    assert result.tweets == 20 and result.retries == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0


def test_connection_errors_are_retried(api: FakeXApi, store: LocalStore, clock: FakeClock) -> None:
    api.add_posts("alice", 20)
    api.script = [Fault(raise_error=requests.ConnectionError("connection reset by peer"))]

    result = _extract(api, store, clock)

    assert result.tweets == 20 and result.retries == 1 and result.requests == 3


def test_broken_body_is_kept_aside_and_refetched(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 20)
    _extract(api, store, clock, window=Window(EPOCH - timedelta(days=2), EPOCH))  # caches user
    truncated = b'{"data":[{"id":"17900000000000000'
    api.script = [Fault(200, truncated)]

    result = _extract(api, store, clock)

    assert result.retries == 1 and result.tweets == 20
    assert len(result.rejected_keys) == 1 and "/_rejected/page-00001-" in result.rejected_keys[0]
    assert store.get(result.rejected_keys[0]) == truncated
    assert store.get(result.page_keys[0]) == api.served["/2/users/101/tweets"][-1]
    manifest = json.loads(store.get(result.manifest_key))
    assert manifest["pages"][0]["rejected"][0]["reason"].startswith("body of 33 bytes")
    assert not any(is_page_key(k) for k in result.rejected_keys)


def test_persistent_failure_fails_the_source_and_a_rerun_resumes(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 250)
    # lookup and page 1 succeed, then page 2 fails three times in a row
    api.script = []
    client = mounted_client(api)
    original = client.timeline_page
    calls = {"n": 0}

    def flaky(user_id, params, token):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if token == "t100":
            raise requests.ConnectionError("connection reset by peer")
        return original(user_id, params, token)

    client.timeline_page = flaky  # type: ignore[method-assign]
    with pytest.raises(SourceFailed) as failed:
        extract_source(
            client, store, ALICE, DAY, clock=clock, sleep=clock.sleep, policy=FAST_RETRIES
        )

    assert "gave up after 3 attempts" in str(failed.value) and "@alice" in str(failed.value)
    assert len(failed.value.landed) == 1 and store.exists(failed.value.landed[0])
    assert not any(k.endswith("_manifest.json") for k in store.list("raw/"))
    assert read_watermark(store, "account-alice") is None
    before = len(_timeline_requests(api))

    resumed = _extract(api, store, clock)

    sent = _timeline_requests(api)[before:]
    assert [p.get("pagination_token") for p in sent] == ["t100", "t200"]
    assert resumed.resumed_pages == 1 and resumed.pages == 3 and resumed.tweets == 250
    assert resumed.page_keys[0] == failed.value.landed[0]


def test_client_errors_are_not_retried(api: FakeXApi, store: LocalStore, clock: FakeClock) -> None:
    api.script = [Fault(400, b'{"title":"Invalid Request","detail":"bad start_time"}')]

    with pytest.raises(SourceFailed, match="HTTP 400: Invalid Request - bad start_time"):
        _extract(api, store, clock)

    assert len(api.log) == 1 and clock.sleeps == []


def test_unknown_account_fails_alone(api: FakeXApi, store: LocalStore, clock: FakeClock) -> None:
    api.add_posts("bob", 12)
    client = mounted_client(api)
    sources = [Source("account", "nobody"), Source("account", "bob")]

    report = extract_sources(client, store, sources, DAY, clock=clock, sleep=clock.sleep)

    assert isinstance(report, ExtractReport) and not report.ok
    assert [r.source.value for r in report.results] == ["bob"] and report.results[0].tweets == 12
    assert len(report.failures) == 1
    assert "@nobody failed: user lookup of @nobody found no user: Not Found Error" in str(
        report.failures[0]
    )


def test_token_is_in_no_log_record_message_or_landed_object(
    api: FakeXApi, store: LocalStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.add_posts("alice", 130)
    # An upstream error page that echoes the credential must not carry it into our messages.
    echo = json.dumps({"title": "Unauthorized", "detail": f"Bearer {TOKEN} rejected"}).encode()
    api.script = [Fault(503, echo), Fault(401, echo)]

    with pytest.raises(SourceFailed) as failed:
        _extract(api, store, clock)
    api.script = []
    _extract(api, store, clock)

    assert "[REDACTED]" in str(failed.value) and TOKEN not in str(failed.value)
    assert any("Bearer [REDACTED]" in r.getMessage() for r in caplog.records)  # tweepy's debug
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    for key in store.list(""):
        assert TOKEN.encode() not in store.get(key), key
    assert TOKEN not in repr(mounted_client(api))


# --- command line: usage errors (exit 2, naming the input) ------------------------------------
@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {"X_BEARER_TOKEN": "t"}, "no sources: give --account, --query or --config"),
        (
            ["--account", "a", "--start", "last week", "--end", "2024-05-02"],
            {"X_BEARER_TOKEN": "t"},
            "--start 'last week' is not an ISO 8601 time",
        ),
        (
            ["--account", "a", "--start", "2024-05-01"],
            {"X_BEARER_TOKEN": "t"},
            "--start and --end go together",
        ),
        (
            ["--account", "a", "--start", "2024-05-02", "--end", "2024-05-01"],
            {"X_BEARER_TOKEN": "t"},
            "is not before end",
        ),
        (["--account", "not a name"], {"X_BEARER_TOKEN": "t"}, "not a valid X username"),
        (["--account", "a"], {}, "X_BEARER_TOKEN is not set"),
        (
            ["--account", "a"],
            {"X_BEARER_TOKEN": "t", "X_API_BASE_URL": "localhost:8089"},
            "X_API_BASE_URL must be an http(s) URL with a host",
        ),
        (
            ["--config", "/nonexistent/pipeline.yaml"],
            {"X_BEARER_TOKEN": "t"},
            "/nonexistent/pipeline.yaml: cannot be read (No such file or directory)",
        ),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from etl.adapters.cli import main

    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    monkeypatch.delenv("X_API_BASE_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    code = main(["extract", "--store", str(tmp_path / "store"), *argv])

    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_source_failed_survives_pickling() -> None:
    import pickle

    failed = SourceFailed(ALICE, "HTTP 400: Invalid Request", ["raw/a/page-00001.json"])

    copy = pickle.loads(pickle.dumps(failed))

    assert str(copy) == str(failed) and copy.source == ALICE and copy.landed == failed.landed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:hunter2@x-api.fake", "must not carry credentials"),
        ("ftp://x-api.fake", "is not an http"),
        ("x-api.fake", "is not an http"),
    ],
)
def test_make_client_refuses_unusable_base_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        make_client(TOKEN, url)

    assert "hunter2" not in str(error.value)
