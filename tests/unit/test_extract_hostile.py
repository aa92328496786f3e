"""The extractor against a hostile API over real HTTP on 127.0.0.1 (issue 12, "Hardening").

Bodies nested past the parser's stack, gzip bombs, lying ``Content-Length``, pagination that
loops, a 401; and ``tweetpipe extract`` when one source blows up in an unexpected way.
"""

from __future__ import annotations

import json
import random
import zlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

import etl.steps.extract.paging
from etl.adapters.cli import main
from etl.config import DEFAULT_MAX_BODY_BYTES, Source, Window, load_config
from etl.errors import ConfigError, SourceFailed
from etl.steps.extract.client import RetryPolicy
from etl.steps.extract.run import (
    extract_source,
    extract_sources,
    make_client,
)
from etl.storage.keys import is_page_key
from etl.storage.store import LocalStore
from tests.unit.fake_x_api import (
    EPOCH,
    FakeClock,
    FakeXApi,
    Fault,
    deep_json,
    gzip_bomb,
    serve_on_loopback,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from etl.steps.extract.client import XClient
    from etl.steps.extract.run import SourceResult

TOKEN = "hostile-test-bearer-token-4b1d"
ALICE = Source("account", "alice")
POSTS = Source("query", "post")
DAY = Window(EPOCH, EPOCH + timedelta(days=1))
DAY_ARGS = ["--start", "2024-05-01T00:00:00Z", "--end", "2024-05-02T00:00:00Z"]
FAST = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, max_pages=50)
CAP = 256 * 1024  # a small body cap keeps the bombs small


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(EPOCH.timestamp() + 3 * 86400)


@pytest.fixture
def api(clock: FakeClock) -> FakeXApi:
    fake = FakeXApi(clock, TOKEN)
    fake.add_posts("alice", 150)
    return fake


@pytest.fixture
def server(api: FakeXApi) -> Iterator[str]:
    """The fake's base URL on 127.0.0.1."""
    with serve_on_loopback(api) as base_url:
        yield base_url


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _client(server: str, token: str = TOKEN, **kw: Any) -> XClient:
    return make_client(token, server, **kw)


def _extract(
    server: str, store: LocalStore, clock: FakeClock, source: Source = POSTS, **kw: Any
) -> SourceResult:
    client = kw.pop("client", None) or _client(server, max_body_bytes=kw.pop("cap", CAP))
    return extract_source(
        client,
        store,
        source,
        DAY,
        clock=clock,
        sleep=clock.sleep,
        policy=kw.pop("policy", FAST),
        rng=random.Random(7),
        **kw,
    )


def _page_requests(api: FakeXApi) -> list[dict[str, str]]:
    return [params for path, params, _ in api.log if "/by/username/" not in path]


def _manifest(store: LocalStore, result: SourceResult) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(store.get(result.manifest_key))
    return doc


def _cli(server: str, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", token)
    monkeypatch.setenv("X_API_BASE_URL", server)
    monkeypatch.delenv("X_API_MAX_BODY_BYTES", raising=False)


# --- item 1: whatever the parser raises, the body is kept and the source survives ----------------
PAGE = {"data": [{"id": "1790000000000000003", "text": "hi"}], "meta": {"result_count": 1}}
UNUSABLE = {
    "nested past the parser's stack": deep_json(100_000),
    "nested 1000 objects deep": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "not JSON": b"<html>gateway timeout</html>",
    "not UTF-8": b'{"data":"\xff\xfe"}',
    "a JSON array": b"[1,2,3]",
    "JSON null": b"null",
    "data an object": json.dumps({**PAGE, "data": PAGE["data"][0]}).encode(),
    "data items not objects": json.dumps({**PAGE, "data": ["1790000000000000003"]}).encode(),
    "meta a list": json.dumps({**PAGE, "meta": [1]}).encode(),
    "errors an object": json.dumps({**PAGE, "errors": {"title": "x"}}).encode(),
    "includes a list": json.dumps({**PAGE, "includes": []}).encode(),
    "next_token a number": json.dumps({**PAGE, "meta": {"next_token": 7}}).encode(),
    "next_token an object": json.dumps({**PAGE, "meta": {"next_token": {"a": 1}}}).encode(),
    "next_token with a newline": json.dumps({**PAGE, "meta": {"next_token": "a\nb"}}).encode(),
    "next_token empty": json.dumps({**PAGE, "meta": {"next_token": ""}}).encode(),
    "next_token of 10 kB": json.dumps({**PAGE, "meta": {"next_token": "a" * 10_000}}).encode(),
}


@pytest.mark.parametrize("body", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_an_unusable_page_body_is_kept_byte_for_byte_and_refetched(
    body: bytes, api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    api.script = [Fault(200, body)]

    result = _extract(server, store, clock)

    assert result.tweets == 150 and result.retries == 1
    assert len(result.rejected_keys) == 1
    assert store.get(result.rejected_keys[0]) == body
    assert not any(is_page_key(k) for k in result.rejected_keys)
    rejected = _manifest(store, result)["pages"][0]["rejected"]
    assert rejected[0]["key"] == result.rejected_keys[0] and rejected[0]["size"] == len(body)
    assert rejected[0]["reason"]


def test_a_page_that_stays_unusable_fails_the_source_with_every_body_kept(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    bodies = [deep_json(50_000 + n) for n in range(FAST.max_attempts)]
    api.script = [Fault(200, body) for body in bodies]

    with pytest.raises(SourceFailed, match="gave up after 3 attempts.*RecursionError"):
        _extract(server, store, clock)

    kept = [store.get(k) for k in store.list("raw/") if "/_rejected/" in k]
    assert sorted(kept) == sorted(bodies)


def test_a_deep_user_lookup_body_is_kept_and_refetched(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    body = deep_json(100_000)
    api.script = [Fault(200, body)]

    result = _extract(server, store, clock, source=ALICE)

    assert result.tweets == 150 and result.user_lookups == 2
    assert "/_rejected/user-lookup-" in result.rejected_keys[0]
    assert store.get(result.rejected_keys[0]) == body


@pytest.mark.parametrize(("status", "retried"), [(503, True), (401, False), (429, True)])
def test_a_deep_error_body_neither_crashes_tweepy_nor_hides_the_status(
    status: int,
    retried: bool,
    api: FakeXApi,
    server: str,
    store: LocalStore,
    clock: FakeClock,
) -> None:
    headers = {"x-rate-limit-reset": str(int(clock()) + 5)} if status == 429 else {}
    api.script = [Fault(status, deep_json(100_000), headers=headers)]

    if retried:
        assert _extract(server, store, clock).tweets == 150
    else:
        with pytest.raises(SourceFailed, match=f"HTTP {status}"):
            _extract(server, store, clock)


def test_a_rate_limit_reset_header_that_is_not_a_number_is_retried(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    # tweepy itself does int() on this header: what it raises must not escape the extractor.
    body = b'{"title":"Too Many Requests"}'
    api.script = [Fault(429, body, headers={"x-rate-limit-reset": "soon"})]

    result = _extract(server, store, clock)

    assert result.tweets == 150 and result.retries == 1
    assert [store.get(k) for k in result.rejected_keys] == [body]


def test_read_json_turns_any_parse_failure_into_value_error(store: LocalStore) -> None:
    from etl.steps.extract.land import read_json

    store.put("state/watermarks/x.json", deep_json(100_000), "application/json")

    with pytest.raises(ValueError, match="is not valid JSON"):
        read_json(store, "state/watermarks/x.json")


# --- item 2: one failing source fails alone in the CLI, redacted, exit 1 -------------------------
def test_cli_an_unexpected_error_in_one_source_fails_it_alone(
    api: FakeXApi,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli(server, monkeypatch)
    api.add_posts("bob", 20)
    store_dir = tmp_path / "store"
    # A file where alice's window directory must go: the local store raises an OSError there.
    (store_dir / "raw").mkdir(parents=True)
    (store_dir / "raw" / "source=account-alice").write_text("in the way")
    landing = etl.steps.extract.paging.land_page

    def leaky(store: Any, key: str, body: bytes) -> Any:
        if "source=query-" in key:
            raise RuntimeError(f"disk full while writing with Authorization: Bearer {TOKEN}")
        return landing(store, key, body)

    monkeypatch.setattr(etl.steps.extract.paging, "land_page", leaky)

    code = main(
        ["extract", "--account", "alice", "--query", "post", "--account", "bob"]
        + ["--store", str(store_dir), *DAY_ARGS]
    )

    out, err = capsys.readouterr()
    assert code == 1
    assert "FAILED @alice failed: NotADirectoryError" in out
    assert "FAILED query 'post' failed: RuntimeError: disk full" in out
    assert "account-bob  " in out and out.count(" landed ") == 1
    assert "Traceback" not in out + err
    assert TOKEN not in out + err and "[REDACTED]" in out
    assert LocalStore(store_dir).list("raw/source=account-bob/")


def test_extract_sources_keeps_going_after_any_exception(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    client = _client(server)
    api.add_posts("bob", 20)
    original = client.timeline_page

    def explode(user_id: str, params: dict[str, Any], token: str | None) -> Any:
        if user_id == api.users["alice"]:
            raise KeyError(f"token {TOKEN}")  # a bug anywhere below, not a network failure
        return original(user_id, params, token)

    client.timeline_page = explode  # type: ignore[method-assign]

    report = extract_sources(
        client, store, [ALICE, Source("account", "bob")], DAY, clock=clock, sleep=clock.sleep
    )

    assert [r.source.value for r in report.results] == ["bob"]
    assert [f.source for f in report.failures] == [ALICE]
    assert TOKEN not in str(report.failures[0]) and "KeyError" in str(report.failures[0])


# --- item 3: body size cap, enforced while the body streams in -----------------------------------
def _refusal(store: LocalStore, result: SourceResult) -> dict[str, Any]:
    record: dict[str, Any] = _manifest(store, result)["pages"][0]["rejected"][0]
    return record


def test_a_gzip_bomb_is_refused_past_the_cap_with_evidence_in_the_manifest(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    bomb = gzip_bomb(64 << 20)
    api.script = [Fault(200, bomb, headers={"content-encoding": "gzip"})]

    result = _extract(server, store, clock)

    assert result.tweets == 150 and result.retries == 1
    record = _refusal(store, result)
    refusal = record["refusal"]
    assert refusal["cause"] == "decoded bytes"
    assert refusal["max_body_bytes"] == CAP and refusal["status"] == 200
    assert refusal["content_length"] == len(bomb) and refusal["content_encoding"] == "gzip"
    assert CAP < refusal["decoded_bytes_read"] <= CAP + 1  # decoding stops one byte past it
    assert 0 < refusal["wire_bytes_read"] <= len(bomb)
    # What was read is kept as it came, still compressed: the bomb's first wire bytes.
    assert record["size"] == refusal["wire_bytes_read"]
    assert store.get(record["key"]) == bomb[: record["size"]]
    assert "decoded bytes over the limit of 262144 bytes" in record["reason"]


def test_a_deflate_bomb_is_refused_too(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    bomb = zlib.compress(bytes(16 << 20), 9)
    api.script = [Fault(200, bomb, headers={"content-encoding": "deflate"})]

    result = _extract(server, store, clock)

    refusal = _refusal(store, result)["refusal"]
    assert refusal["cause"] == "decoded bytes" and refusal["content_encoding"] == "deflate"


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    api.script = [Fault(200, b'{"data":[]}', headers={"content-length": str(10 << 30)})]

    result = _extract(server, store, clock)

    record = _refusal(store, result)
    assert record["refusal"]["cause"] == "declared length"
    assert record["refusal"]["content_length"] == 10 << 30
    assert record["refusal"]["decoded_bytes_read"] == 0 and record["key"] is None
    assert result.tweets == 150


def test_an_undeclared_body_over_the_cap_is_refused_on_the_wire_bytes(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    noise = random.Random(3).randbytes(CAP * 3)
    api.script = [Fault(200, noise, headers={"transfer-encoding": "chunked"})]

    result = _extract(server, store, clock)

    record = _refusal(store, result)
    refusal = record["refusal"]
    assert refusal["content_length"] is None and refusal["cause"] == "wire bytes"
    assert CAP < refusal["wire_bytes_read"] <= CAP + 64 * 1024
    assert store.get(record["key"]) == noise[: refusal["wire_bytes_read"]]


def test_endless_empty_gzip_members_are_refused_on_the_wire_bytes(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    # Decodes to nothing at all, so only the wire count can stop it.
    empty = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = empty.compress(b"") + empty.flush()
    stream = member * (2 * CAP // len(member))
    api.script = [
        Fault(200, stream, headers={"content-encoding": "gzip", "transfer-encoding": "chunked"})
    ]

    result = _extract(server, store, clock)

    refusal = _refusal(store, result)["refusal"]
    assert refusal["cause"] == "wire bytes" and refusal["decoded_bytes_read"] == 0


def test_a_body_that_is_not_valid_gzip_is_kept_as_received(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    broken = b"\x1f\x8b\x08\x00" + b"not deflate data at all" * 10
    api.script = [Fault(200, broken, headers={"content-encoding": "gzip"})]

    result = _extract(server, store, clock)

    record = _refusal(store, result)
    assert record["refusal"]["cause"].startswith("content not valid gzip")
    assert store.get(record["key"]) == broken and result.tweets == 150


def test_an_error_response_is_capped_as_well(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    bomb = gzip_bomb(8 << 20)
    api.script = [Fault(503, bomb, headers={"content-encoding": "gzip"})]

    result = _extract(server, store, clock)

    assert _refusal(store, result)["refusal"]["status"] == 503 and result.tweets == 150


def test_a_body_of_exactly_the_cap_lands(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    probe = FakeXApi(clock, TOKEN)
    probe.posts = list(api.posts)
    _, first = probe._answer("/2/tweets/search/recent", {"query": "post", "max_results": "100"})
    largest = len(json.dumps(first, separators=(",", ":")).encode())  # page 2 holds fewer posts

    result = _extract(server, store, clock, cap=largest)

    assert result.tweets == 150 and result.retries == 0
    assert max(len(store.get(k)) for k in result.page_keys) == largest


def test_default_cap_is_8_mib() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024


def test_the_cap_comes_from_the_config_the_environment_or_the_flag(
    api: FakeXApi,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "pipeline.yaml"
    # One post matches, so the real pages stay far below even the smallest cap used here.
    config.write_text("api:\n  max_body_bytes: 4096\nsources:\n  queries: ['post 7 by']\n")
    assert load_config(config).max_body_bytes == 4096
    _cli(server, monkeypatch)
    store = LocalStore(tmp_path / "store")
    argv = ["extract", "--config", str(config), "--store", str(store.root)]
    big = json.dumps({"meta": {"result_count": 0, "pad": "x" * 6000}}).encode()

    def refused(day: str) -> bool:
        api.script = [Fault(200, big)]
        assert main([*argv, "--start", f"{day}T00:00:00Z", "--end", f"{day}T12:00:00Z"]) == 0
        label = day.replace("-", "")
        [key] = [k for k in store.list("raw/") if f"window={label}" in k and "_manifest" in k]
        doc = json.loads(store.get(key))
        return any("refusal" in r for p in doc["pages"] for r in p["rejected"])

    assert refused("2024-05-01")
    monkeypatch.setenv("X_API_MAX_BODY_BYTES", "1048576")  # the environment beats the config
    assert not refused("2024-04-01")
    argv += ["--max-body-bytes", "4096"]  # the flag beats both
    assert refused("2024-03-01")
    capsys.readouterr()


@pytest.mark.parametrize("value", ["0", "-5", "8MB", "1e6", "１２３４", "99999999999999999999"])
def test_a_bad_cap_is_a_usage_error_naming_it(
    value: str,
    tmp_path: Path,
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli(server, monkeypatch)
    argv = ["extract", "--query", "post", "--store", str(tmp_path / "s"), *DAY_ARGS]

    assert main([*argv, "--max-body-bytes", value]) == 2
    assert "--max-body-bytes" in capsys.readouterr().err

    monkeypatch.setenv("X_API_MAX_BODY_BYTES", value)
    assert main(argv) == 2
    assert "X_API_MAX_BODY_BYTES" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value", ["0", "'8MB'", "true", "[1]", "2.5"])
def test_a_bad_cap_in_the_config_names_it(value: str, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"api:\n  max_body_bytes: {value}\n")

    with pytest.raises(ConfigError, match=r"api\.max_body_bytes"):
        load_config(config)


# --- item 4: a next_token cycle fails the source at once ---------------------------------------
@pytest.mark.parametrize("cycle", [["A"], ["A", "B", "C"], ["t100"]])
def test_a_next_token_cycle_fails_the_source_at_once(
    cycle: list[str], api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    api.token_cycle = cycle

    with pytest.raises(SourceFailed, match="next_token .* loops") as failed:
        _extract(server, store, clock)

    assert len(_page_requests(api)) == len(cycle) + 1  # the first page, then once round the cycle
    assert failed.value.requests == len(cycle) + 1
    assert len(failed.value.landed) == len(cycle) + 1  # what arrived is kept
    before = len(api.log)

    with pytest.raises(SourceFailed, match="loops"):
        _extract(server, store, clock)  # resumes, sees the cycle in the landed pages

    assert len(api.log) == before


def test_a_token_that_only_repeats_later_pages_is_a_cycle_too(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    api.token_cycle = ["A", "B"]

    with pytest.raises(SourceFailed, match="'A'"):
        _extract(server, store, clock)

    assert [p.get("next_token") for p in _page_requests(api)] == [None, "A", "B"]


# --- item 5: every request sent is counted, whatever came of it ----------------------------------
def test_cli_a_401_counts_the_request_it_made(
    api: FakeXApi,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli(server, monkeypatch, token="not-the-token")

    code = main(
        ["extract", "--account", "alice", "--query", "post"]
        + ["--store", str(tmp_path / "store"), *DAY_ARGS]
    )

    out = capsys.readouterr().out
    assert code == 1 and len(api.log) == 2
    assert "total: 2 requests (1 user lookups, 0 retries)" in out
    assert "HTTP 401" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "FAILED" in line}
    assert rows["account-alice"][4] == "1" and rows[POSTS.slug][4] == "1"


def test_failures_carry_their_request_counts(
    api: FakeXApi, server: str, store: LocalStore, clock: FakeClock
) -> None:
    api.script = [Fault(503, b"{}"), Fault(503, b"{}"), Fault(503, b"{}")]

    with pytest.raises(SourceFailed) as failed:
        _extract(server, store, clock)

    assert failed.value.requests == 3 and failed.value.retries == 2
    assert str(failed.value).startswith("query 'post' failed: page 1")


@pytest.mark.parametrize("value", ["٣", "1_000", " 7 ", "+5", "-1", "9" * 13, "soon"])
def test_rate_limit_headers_take_ascii_numbers_only(value: str) -> None:
    from etl.steps.extract.client import RateLimit

    limits = RateLimit.from_headers(
        {"x-rate-limit-limit": value, "x-rate-limit-remaining": value, "x-rate-limit-reset": value}
    )

    assert limits.as_dict() == {"limit": None, "remaining": None, "reset": None}


def test_rate_limit_headers_read_plain_numbers() -> None:
    from etl.steps.extract.client import RateLimit

    limits = RateLimit.from_headers(
        {
            "x-rate-limit-limit": "900",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": "1700000000",
        }
    )

    assert limits.as_dict() == {"limit": 900, "remaining": 0, "reset": 1700000000}
