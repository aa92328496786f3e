"""The X API v2 emulator over real HTTP on loopback: requests and tweepy against it.

Shape checks here stand alone, and the responses are also validated against the OpenAPI
document's schemas in ../shared/reference (beside the repository in CI; skipped without it
elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import tweepy

from etl.tools.emulator import DEMO_TOKEN, Corpus, EmulatorServer, Faults, start_emulator
from etl.tools.emulator.corpus import METRICS_SINCE, format_time
from tests.conftest import shared_reference

TOKEN = "emulator-test-token-5f0c9a"
OPENAPI = "x-api-v2/openapi.json"
ALL_TWEET_FIELDS = (
    "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,public_metrics,"
    "entities,lang,possibly_sensitive,edit_history_tweet_ids,edit_controls,note_tweet,withheld"
)


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Rewrite(requests.Session):
    """tweepy hard-codes https://api.twitter.com; send its requests to the emulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        target = str(url).replace("https://api.twitter.com", self.base_url, 1)
        return super().request(method, target, *args, **kwargs)


def _tweepy(server: EmulatorServer, **kwargs: Any) -> tweepy.Client:
    client = tweepy.Client(bearer_token=TOKEN, **kwargs)
    client.session = _Rewrite(server.base_url)
    return client


def _get(server: EmulatorServer, path: str, token: str | None = TOKEN, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.base_url + path, params=params, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def server() -> Any:
    with start_emulator(seed=11, token=TOKEN) as running:
        yield running


@pytest.fixture
def small() -> Any:
    """A fresh emulator on a small corpus, started by the test with its own arguments."""
    started: list[EmulatorServer] = []

    def start(**kwargs: Any) -> EmulatorServer:
        kwargs.setdefault("corpus", Corpus(seed=5, accounts=2, posts_per_account=60))
        running = start_emulator(token=TOKEN, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def _user(server: EmulatorServer, index: int = 0) -> dict[str, Any]:
    return server.corpus.users[index]


# --- pagination and ground truth ------------------------------------------------------------------
def test_timeline_pages_to_the_end_and_equals_the_ground_truth(server: EmulatorServer) -> None:
    user = _user(server)
    ids: list[str] = []
    token: str | None = None
    pages = 0
    for _ in range(20):
        params = {"max_results": 100, **({"pagination_token": token} if token else {})}
        body = _get(server, f"/2/users/{user['id']}/tweets", **params).json()
        pages += 1
        ids += [t["id"] for t in body["data"]]
        assert body["meta"]["result_count"] == len(body["data"])
        assert body["meta"]["newest_id"] == body["data"][0]["id"]
        assert body["meta"]["oldest_id"] == body["data"][-1]["id"]
        token = body["meta"].get("next_token")
        if token is None:
            break

    assert ids == server.corpus.ground_truth(username=user["username"])
    assert pages == math.ceil(len(ids) / 100) == 4


def test_previous_token_pages_back_to_the_newer_posts(server: EmulatorServer) -> None:
    path = f"/2/users/{_user(server)['id']}/tweets"
    first = _get(server, path, max_results=7).json()
    second = _get(server, path, max_results=7, pagination_token=first["meta"]["next_token"]).json()
    back = _get(
        server, path, max_results=7, pagination_token=second["meta"]["previous_token"]
    ).json()

    assert "previous_token" not in first["meta"]
    assert [t["id"] for t in back["data"]] == [t["id"] for t in first["data"]]
    assert {t["id"] for t in first["data"]}.isdisjoint(t["id"] for t in second["data"])


def test_search_window_pages_to_the_end(server: EmulatorServer) -> None:
    start, end = "2023-01-01T00:00:00Z", "2023-03-01T00:00:00Z"
    ids: list[str] = []
    token = None
    for _ in range(30):
        params = {"query": "#python OR coffee", "max_results": 10, "start_time": start}
        params |= {"end_time": end, **({"next_token": token} if token else {})}
        body = _get(server, "/2/tweets/search/recent", **params).json()
        ids += [t["id"] for t in body.get("data", [])]
        token = body["meta"].get("next_token")
        if token is None:
            break

    expected = server.corpus.ground_truth(
        query="#python OR coffee",
        start_time=datetime(2023, 1, 1, tzinfo=UTC),
        end_time=datetime(2023, 3, 1, tzinfo=UTC),
    )
    assert ids == expected
    assert len(expected) > 30


def test_tweepy_paginator_with_window_and_since_id(server: EmulatorServer) -> None:
    client = _tweepy(server, return_type=requests.Response)
    user = _user(server, 1)
    start, end = datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC)
    got: list[str] = []
    for page in tweepy.Paginator(
        client.get_users_tweets,
        user["id"],
        max_results=100,
        start_time=start,
        end_time=end,
        tweet_fields=["created_at"],
        limit=10,
    ):
        assert page.status_code == 200
        got += [t["id"] for t in page.json().get("data", [])]
    truth = server.corpus.ground_truth(username=user["username"], start_time=start, end_time=end)
    since = truth[5]
    newer = client.get_users_tweets(user["id"], since_id=since, max_results=100).json()

    assert got == truth
    assert [t["id"] for t in newer["data"]] == server.corpus.ground_truth(
        username=user["username"], since_id=since
    )


def test_tweepy_parses_user_and_search_responses(server: EmulatorServer) -> None:
    client = _tweepy(server)
    user = _user(server, 2)

    found = client.get_user(username=user["username"].upper(), user_fields=["created_at"])
    search = client.search_recent_tweets(
        f"from:{user['username']}", max_results=10, tweet_fields=["author_id"]
    )

    assert found.data.id == int(user["id"]) and found.data.username == user["username"]
    assert {t.author_id for t in search.data} == {int(user["id"])}
    assert search.meta["result_count"] == 10 and "next_token" in search.meta


def test_timeline_cap_stops_pagination_at_the_cap(small: Any) -> None:
    server = small(corpus=Corpus(seed=1, accounts=1, posts_per_account=[130], timeline_cap=120))
    user = _user(server)
    first = _get(server, f"/2/users/{user['id']}/tweets", max_results=100).json()
    second = _get(
        server,
        f"/2/users/{user['id']}/tweets",
        max_results=100,
        pagination_token=first["meta"]["next_token"],
    ).json()

    assert second["meta"]["result_count"] == 20
    assert "next_token" not in second["meta"]
    assert len({t["id"] for t in first["data"] + second["data"]}) == 120


def test_empty_window_has_meta_only(server: EmulatorServer) -> None:
    body = _get(
        server,
        f"/2/users/{_user(server)['id']}/tweets",
        start_time="2030-01-01T00:00:00Z",
    ).json()

    assert body == {"meta": {"result_count": 0}}


# --- fields, expansions, content ------------------------------------------------------------------
def test_default_fields_are_id_text_and_edit_history_only(server: EmulatorServer) -> None:
    body = _get(server, f"/2/users/{_user(server)['id']}/tweets").json()
    with_created = _get(
        server, f"/2/users/{_user(server)['id']}/tweets", **{"tweet.fields": "created_at"}
    ).json()

    assert len(body["data"]) == 10
    assert {frozenset(t) for t in body["data"]} == {
        frozenset({"id", "text", "edit_history_tweet_ids"})
    }
    assert "includes" not in body
    assert all(
        set(t) == {"id", "text", "edit_history_tweet_ids", "created_at"}
        for t in with_created["data"]
    )


def test_expansions_fill_includes(server: EmulatorServer) -> None:
    user = _user(server)
    body = _get(
        server,
        f"/2/users/{user['id']}/tweets",
        max_results=100,
        expansions="author_id,referenced_tweets.id,referenced_tweets.id.author_id",
        **{"tweet.fields": "referenced_tweets,author_id", "user.fields": "created_at"},
    ).json()
    referenced = {r["id"] for t in body["data"] for r in t.get("referenced_tweets", [])}
    included = {t["id"] for t in body["includes"]["tweets"]}
    users = {u["id"]: u for u in body["includes"]["users"]}

    assert referenced and included == referenced
    assert user["id"] in users and set(users[user["id"]]) == {
        "id",
        "name",
        "username",
        "created_at",
    }
    ref_authors = {t["author_id"] for t in body["includes"]["tweets"]}
    assert ref_authors <= set(users)


def test_content_covers_long_posts_escaping_edits_withheld_and_big_ids(
    server: EmulatorServer,
) -> None:
    tweets: list[dict[str, Any]] = []
    for user in server.corpus.users:
        token = None
        for _ in range(10):
            params = {"max_results": 100, "tweet.fields": ALL_TWEET_FIELDS}
            if token:
                params["pagination_token"] = token
            resp = _get(server, f"/2/users/{user['id']}/tweets", **params)
            tweets += json.loads(resp.content)["data"]
            token = resp.json()["meta"].get("next_token")
            if not token:
                break

    assert any("note_tweet" in t and len(t["note_tweet"]["text"]) > 280 for t in tweets)
    assert any("&amp;" in t["text"] for t in tweets)
    assert any(len(t["edit_history_tweet_ids"]) > 1 for t in tweets)
    assert any("withheld" in t for t in tweets)
    assert any(u.get("expanded_url") for t in tweets for u in t.get("entities", {}).get("urls", []))
    assert {r["type"] for t in tweets for r in t.get("referenced_tweets", [])} == {
        "retweeted",
        "quoted",
        "replied_to",
    }
    assert all(re.fullmatch(r"[0-9]{19}", t["id"]) and int(t["id"]) > 2**53 for t in tweets)
    old = [t for t in tweets if datetime.fromisoformat(t["created_at"]) < METRICS_SINCE]
    assert old and all("impression_count" not in t["public_metrics"] for t in old)


def test_body_is_compact_utf8_json_and_served_bytes_are_logged(small: Any) -> None:
    server = small()
    resp = _get(
        server, f"/2/users/{_user(server)['id']}/tweets", **{"tweet.fields": ALL_TWEET_FIELDS}
    )
    parsed = json.loads(resp.content)

    assert resp.headers["content-type"].startswith("application/json")
    assert resp.content == json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()
    [record] = server.request_log
    assert record.body == resp.content == server.served_bodies[0]
    assert record.status == 200 and record.kind == "users_tweets"
    assert record.params["tweet.fields"] == ALL_TWEET_FIELDS


def test_lookup_by_ids_returns_found_posts_and_errors_for_missing(server: EmulatorServer) -> None:
    known = server.corpus.all_tweets()[3]["id"]
    edited = next(t for t in server.corpus.all_tweets() if len(t["edit_history_tweet_ids"]) > 1)
    old = edited["edit_history_tweet_ids"][0]

    body = _get(server, "/2/tweets", ids=f"{known},{old},123").json()

    assert [t["id"] for t in body["data"]] == [known, old]
    [error] = body["errors"]
    assert error["resource_id"] == "123" and error["resource_type"] == "tweet"
    assert error["type"] == "https://api.twitter.com/2/problems/resource-not-found"


def test_unknown_username_is_200_with_errors(server: EmulatorServer) -> None:
    resp = _get(server, "/2/users/by/username/nobody_here")

    assert resp.status_code == 200
    assert "data" not in resp.json()
    assert resp.json()["errors"][0]["resource_id"] == "nobody_here"
    assert resp.json()["errors"][0]["parameter"] == "username"


# --- validation, auth, rate limits --------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/2/users/{id}/tweets", {"max_results": 4}, "max_results"),
        ("/2/users/{id}/tweets", {"max_results": 101}, "max_results"),
        ("/2/tweets/search/recent", {"query": "a", "max_results": 9}, "max_results"),
        ("/2/users/{id}/tweets", {"since_id": "12x"}, "since_id"),
        ("/2/users/{id}/tweets", {"start_time": "yesterday"}, "start_time"),
        ("/2/users/{id}/tweets", {"tweet.fields": "created_at,colour"}, "tweet.fields"),
        ("/2/users/{id}/tweets", {"expansions": "author"}, "expansions"),
        ("/2/users/{id}/tweets", {"pagination_token": "nonsense"}, "pagination_token"),
        ("/2/users/{id}/tweets", {"next_token": "7140abc"}, "next_token"),
        ("/2/tweets/search/recent", {}, "query"),
        ("/2/tweets/search/recent", {"query": "(a OR b)"}, "query"),
        (
            "/2/tweets/search/recent",
            {
                "query": "a",
                "start_time": "2023-02-01T00:00:00Z",
                "end_time": "2023-01-01T00:00:00Z",
            },
            "end_time",
        ),
        ("/2/tweets", {"ids": ",".join(["1"] * 101)}, "ids"),
        ("/2/users/by/username/not-valid!", {}, "username"),
        # "$" in a pattern also matches before a final line feed: these must be whole matches.
        ("/2/users/by/username/nasa%0A", {}, "username"),
        ("/2/users/{id}%0A/tweets", {}, "id"),
        ("/2/users/{id}/tweets", {"since_id": "1\n"}, "since_id"),
    ],
)
def test_bad_parameters_are_400_problems_naming_the_parameter(
    server: EmulatorServer, path: str, params: dict[str, Any], parameter: str
) -> None:
    resp = _get(server, path.format(id=_user(server)["id"]), **params)

    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["title"] == "Invalid Request"
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert parameter in body["errors"][0]["parameters"]


def test_max_results_bounds_are_accepted(server: EmulatorServer) -> None:
    uid = _user(server)["id"]

    assert len(_get(server, f"/2/users/{uid}/tweets", max_results=5).json()["data"]) == 5
    assert len(_get(server, f"/2/users/{uid}/tweets", max_results=100).json()["data"]) == 100
    found = _get(server, "/2/tweets/search/recent", query="the OR a OR data", max_results=10)
    assert found.json()["meta"]["result_count"] == 10


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
def test_missing_or_wrong_token_is_401_problem_without_echo(small: Any, token: str | None) -> None:
    server = small()
    resp = _get(server, f"/2/users/{_user(server)['id']}/tweets", token=token)

    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json() == {
        "title": "Unauthorized",
        "detail": "Unauthorized",
        "type": "about:blank",
        "status": 401,
    }
    if token:
        assert token.encode() not in resp.content
        assert token not in str(resp.headers)


def test_request_log_never_holds_the_token(small: Any) -> None:
    server = small()
    _get(server, f"/2/users/{_user(server)['id']}/tweets")
    _get(server, "/2/users/by/username/x", token="not-it")
    _tweepy(server).get_user(username=_user(server)["username"])

    dumped = repr(server.request_log)
    assert len(server.request_log) == 3
    assert TOKEN not in dumped and "not-it" not in dumped and "Bearer" not in dumped


def test_rate_limit_headers_429_and_reset_from_the_clock(small: Any) -> None:
    clock = Clock()
    server = small(rate_limit=3, rate_window=60, clock=clock)
    uid = _user(server)["id"]
    path = f"/2/users/{uid}/tweets"

    answers = [_get(server, path) for _ in range(4)]
    clock.now += 30
    other_endpoint = _get(server, "/2/tweets/search/recent", query="data")
    still_limited = _get(server, path)
    clock.now += 31
    after_reset = _get(server, path)

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-rate-limit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r.headers["x-rate-limit-limit"] for r in answers} == {"3"}
    assert {r.headers["x-rate-limit-reset"] for r in answers} == {str(int(1_700_000_000 + 60))}
    assert answers[3].headers["content-type"] == "application/problem+json"
    assert answers[3].json()["title"] == "Too Many Requests"
    assert answers[3].json()["type"] == "about:blank"
    assert answers[3].json()["status"] == 429
    assert other_endpoint.status_code == 200
    assert other_endpoint.headers["x-rate-limit-reset"] == str(int(1_700_000_000 + 90))
    assert still_limited.status_code == 429
    assert after_reset.status_code == 200
    assert after_reset.headers["x-rate-limit-remaining"] == "2"
    assert after_reset.headers["x-rate-limit-reset"] == str(int(1_700_000_000 + 121))


def test_default_rate_limits_are_the_real_apis(server: EmulatorServer) -> None:
    resp = _get(server, "/2/tweets/search/recent", query="rain")

    assert resp.headers["x-rate-limit-limit"] == "450"
    assert int(resp.headers["x-rate-limit-reset"]) > time.time()


def test_tweepy_waits_on_429_until_the_reset(small: Any) -> None:
    """tweepy's own wait_on_rate_limit sleeps until x-rate-limit-reset: the header must fit it."""
    server = small(rate_limit=1, rate_window=1.0, clock=time.time)
    client = _tweepy(server, wait_on_rate_limit=True)
    user = _user(server)

    client.get_users_tweets(user["id"])
    again = client.get_users_tweets(user["id"])  # 429, tweepy sleeps (about 2 s), retries

    assert again.data
    assert [r.status for r in server.request_log] == [200, 429, 200]


# --- faults -------------------------------------------------------------------------------------
def test_server_errors_burst_per_endpoint_then_recover(small: Any) -> None:
    server = small(faults=Faults(server_errors=2))
    path = f"/2/users/{_user(server)['id']}/tweets"

    statuses = [_get(server, path).status_code for _ in range(3)]
    search = _get(server, "/2/tweets/search/recent", query="data")

    assert statuses == [503, 503, 200]
    assert search.status_code == 503
    assert search.json()["title"] == "Service Unavailable"
    assert [r.fault for r in server.request_log] == ["5xx", "5xx", None, "5xx"]


def test_connection_reset_then_recovery(small: Any) -> None:
    server = small(faults=Faults(connection_resets=1))
    path = f"/2/users/{_user(server)['id']}/tweets"

    with pytest.raises(requests.ConnectionError):
        _get(server, path)
    recovered = _get(server, path)

    assert recovered.status_code == 200
    assert [(r.status, r.fault, r.body) for r in server.request_log][0] == (0, "reset", b"")


def test_truncated_body_is_complete_on_the_wire_but_invalid_json(small: Any) -> None:
    server = small(faults=Faults(truncated=1))
    path = f"/2/users/{_user(server)['id']}/tweets"

    cut = _get(server, path)
    whole = _get(server, path)

    assert cut.status_code == 200
    assert int(cut.headers["content-length"]) == len(cut.content) == len(whole.content) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert whole.json()["meta"]["result_count"] == 10
    assert server.request_log[0].body == cut.content


def test_slow_responses_are_delayed(small: Any) -> None:
    server = small(faults=Faults(slow_seconds=0.3))
    started = time.monotonic()

    _get(server, f"/2/users/{_user(server)['id']}/tweets")

    assert time.monotonic() - started >= 0.3


def test_partial_errors_sit_beside_data(small: Any) -> None:
    server = small(faults=Faults(partial_errors=True))
    body = _get(
        server,
        f"/2/users/{_user(server)['id']}/tweets",
        max_results=60,
        expansions="referenced_tweets.id",
        **{"tweet.fields": "referenced_tweets"},
    ).json()

    [error] = body["errors"]
    assert body["data"]
    assert error["resource_type"] == "tweet" and error["section"] == "includes"
    refs = [r["id"] for t in body["data"] for r in t.get("referenced_tweets", [])]
    assert error["resource_id"] == refs[0]
    assert error["resource_id"] not in {t["id"] for t in body.get("includes", {}).get("tweets", [])}


def test_partial_errors_in_lookups(small: Any) -> None:
    server = small(faults=Faults(partial_errors=True))
    quote = next(t for t in server.corpus.all_tweets() if "referenced_tweets" in t)

    body = _get(server, "/2/tweets", ids=f"{quote['id']},42").json()

    assert [t["id"] for t in body["data"]] == [quote["id"]]
    assert [e["resource_id"] for e in body["errors"]] == ["42", quote["referenced_tweets"][0]["id"]]


def test_stop_ends_keep_alive_connections_too(small: Any) -> None:
    server = small()
    session = requests.Session()
    url = f"{server.base_url}/2/users/by/username/{_user(server)['username']}"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    assert session.get(url, headers=headers, timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("drift", "check"),
    [
        ("new_field", lambda t: "community_note_status" in t),
        ("missing_field", lambda t: "public_metrics" not in t),
        (
            "changed_type",
            lambda t: (
                isinstance(t["edit_controls"]["edits_remaining"], str)
                and isinstance(t["public_metrics"]["like_count"], str)
            ),
        ),
    ],
)
def test_drift_modes_change_every_post(small: Any, drift: str, check: Any) -> None:
    server = small(faults=Faults(drift=drift))
    body = _get(
        server,
        f"/2/users/{_user(server)['id']}/tweets",
        max_results=50,
        **{"tweet.fields": ALL_TWEET_FIELDS},
    ).json()

    assert len(body["data"]) == 50
    assert all(check(t) for t in body["data"])


def test_breach_drift_drops_created_at_on_a_large_share(small: Any) -> None:
    server = small(faults=Faults(drift="breach"))
    body = _get(
        server,
        f"/2/users/{_user(server)['id']}/tweets",
        max_results=60,
        **{"tweet.fields": "created_at"},
    ).json()

    missing = sum("created_at" not in t for t in body["data"])
    assert missing / len(body["data"]) > 0.2


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], Faults()),
        (["5xx=3", "reset=2"], Faults(server_errors=3, connection_resets=2)),
        (["truncate=1", "slow=0.2"], Faults(truncated=1, slow_seconds=0.2)),
        (["partial-errors", "drift=new_field"], Faults(partial_errors=True, drift="new_field")),
    ],
)
def test_fault_specs_parse(specs: list[str], expected: Faults) -> None:
    assert Faults.parse(specs) == expected


@pytest.mark.parametrize("spec", ["5xx", "5xx=x", "reset=-1", "drift=sideways", "boom"])
def test_bad_fault_specs_name_the_spec(spec: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(spec))):
        Faults.parse([spec])


# --- the CLI ----------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "etl", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float = 20) -> list[str]:
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(proc.stdout.readline() for _ in range(count)), daemon=True
    )
    reader.start()
    reader.join(timeout)
    assert len(lines) == count, f"no banner within {timeout} s: {lines}"
    return lines


def test_cli_serves_until_sigterm_and_prints_the_demo_token() -> None:
    proc = _cli("--fault", "5xx=1")
    try:
        banner = _read_lines(proc, 4)
        base_url = banner[1].strip().removeprefix("X_API_BASE_URL=")
        headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
        url = f"{base_url}/2/users/by/username/ada_builds"
        first = requests.get(url, headers=headers, timeout=10)
        second = requests.get(url, headers=headers, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)

    assert base_url.startswith("http://127.0.0.1:")
    assert banner[2].strip() == f"X_BEARER_TOKEN={DEMO_TOKEN}"
    assert "server_errors=1" in banner[3]
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.json()["data"]["username"] == "ada_builds"
    assert code == 0


def test_cli_never_prints_a_custom_token() -> None:
    proc = _cli("--token", "my-own-secret-value")
    try:
        banner = _read_lines(proc, 2)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        rest = proc.stdout.read() + proc.stderr.read()

    assert "my-own-secret-value" not in "".join(banner) + rest
    assert "X_BEARER_TOKEN" not in "".join(banner) + rest
    assert code == 0


def test_cli_bad_fault_is_a_usage_error() -> None:
    proc = _cli("--fault", "explode=1")
    _, err = proc.communicate(timeout=20)

    assert proc.returncode == 2
    assert "'explode=1'" in err


# --- the OpenAPI document (../shared/reference, beside the repository) ---------------------------
@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return json.loads(shared_reference(OPENAPI).read_text())


def _errors(openapi: dict[str, Any], schema_name: str, instance: Any) -> list[str]:
    import jsonschema

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def test_responses_validate_against_the_openapi_schemas(
    server: EmulatorServer, openapi: dict[str, Any]
) -> None:
    user = _user(server)
    expand = {"expansions": "author_id,referenced_tweets.id", "tweet.fields": ALL_TWEET_FIELDS}
    known = server.corpus.all_tweets()[0]["id"]
    user_fields = {"user.fields": "created_at,public_metrics,location,pinned_tweet_id"}
    cases = {
        "Get2UsersByUsernameUsernameResponse": [
            _get(server, f"/2/users/by/username/{user['username']}", **user_fields),
            _get(server, "/2/users/by/username/nobody_here"),
        ],
        "Get2UsersIdTweetsResponse": [
            _get(server, f"/2/users/{user['id']}/tweets", max_results=100, **expand)
        ],
        "Get2TweetsSearchRecentResponse": [
            _get(server, "/2/tweets/search/recent", query="data", max_results=100, **expand)
        ],
        "Get2TweetsResponse": [_get(server, "/2/tweets", ids=f"{known},1", **expand)],
        "Problem": [
            _get(server, f"/2/users/{user['id']}/tweets", token="bad"),
            _get(server, f"/2/users/{user['id']}/tweets", max_results=1),
        ],
    }
    for name, responses in cases.items():
        for resp in responses:
            assert _errors(openapi, name, resp.json()) == [], (name, resp.url)


def test_only_old_posts_deviate_from_the_schema_by_lacking_newer_metrics(
    server: EmulatorServer, openapi: dict[str, Any]
) -> None:
    """The document marks bookmark/impression counts required; posts from before X added them
    lack them (as recordings do). That is the one deviation, and it is deliberate."""
    user = _user(server)
    body = _get(
        server,
        f"/2/users/{user['id']}/tweets",
        max_results=100,
        end_time="2022-12-10T00:00:00Z",
        **{"tweet.fields": ALL_TWEET_FIELDS},
    ).json()

    errors = _errors(openapi, "Get2UsersIdTweetsResponse", body)
    assert body["meta"]["result_count"] > 10
    assert errors
    assert all(
        re.search(r"'(bookmark|impression)_count' is a required property", e) for e in errors
    )


def test_cli_serves_posts_of_yesterday_so_a_trigger_on_today_finds_data() -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    proc = _cli()
    try:
        banner = _read_lines(proc, 3)
        base_url = banner[1].strip().removeprefix("X_API_BASE_URL=")
        headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
        window = {
            "query": "python",
            "start_time": format_time(today - timedelta(days=1)),
            "end_time": format_time(today),
        }
        found = requests.get(
            f"{base_url}/2/tweets/search/recent", params=window, headers=headers, timeout=10
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)

    assert found.status_code == 200
    assert found.json()["meta"]["result_count"] > 0
