"""The extractor over real HTTP on loopback: the X API v2 emulator, and moto's S3 server as store."""

from __future__ import annotations

import base64
import json
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from etl.config import Source, Window
from etl.steps.extract.client import DEFAULT_POLICY
from etl.steps.extract.land import read_watermark
from etl.steps.extract.run import extract_source, extract_sources, make_client
from etl.storage.keys import user_key
from etl.storage.store import open_store, sha256_hex
from etl.tools.emulator import Faults
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable

    from etl.steps.extract.run import SourceResult
    from etl.storage.store import Store
    from tests.integration.conftest import FakeClock, S3Endpoint

WINDOW = Window(datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC))
WHOLE_CORPUS = Window(datetime(2022, 11, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC))
ADA = Source("account", "ada_builds")
SOURCES = [ADA, Source("account", "tomas_ng"), Source("query", "python")]


def _truth(emulator: Any, source: Source, window: Window, since_id: str | None = None) -> list[str]:
    kind = "username" if source.kind == "account" else "query"
    return list(
        emulator.corpus.ground_truth(
            **{kind: source.value},
            start_time=window.start,
            end_time=window.end,
            since_id=since_id,
        )
    )


def _landed_ids(store: Store, result: SourceResult) -> list[str]:
    return [t["id"] for k in result.page_keys for t in json.loads(store.get(k)).get("data", [])]


def test_extraction_equals_the_ground_truth_with_minimal_requests_and_exact_bytes(
    emulator: Any, moto_server: S3Endpoint
) -> None:
    store = open_store(moto_server.store_url)

    report = extract_sources(make_client(EMULATOR_TOKEN, emulator.base_url), store, SOURCES, WINDOW)

    assert report.ok, report.failures
    minimal = 0
    for result in report.results:
        truth = _truth(emulator, result.source, WINDOW)
        assert len(truth) > 100  # several pages per source
        assert _landed_ids(store, result) == truth  # complete, in order, nothing twice
        minimal += max(1, math.ceil(len(truth) / 100)) + (result.source.kind == "account")
    log = emulator.request_log
    assert len(log) == sum(r.requests for r in report.results) == minimal
    served = [r.body for r in log if r.kind != "users_by_username"]
    assert [store.get(k) for r in report.results for k in r.page_keys] == served


def test_manifests_checksums_and_user_cache_in_s3(emulator: Any, moto_server: S3Endpoint) -> None:
    store = open_store(moto_server.store_url)
    sent: dict[str, dict[str, str]] = {}

    def capture(request: Any, **_: Any) -> None:
        key = requests.utils.unquote(request.url.split(f"/{moto_server.bucket}/tweetpipe/")[1])
        sent[key] = {k.lower(): _text(v) for k, v in request.headers.items()}

    store.client.meta.events.register("before-send.s3.PutObject", capture)  # type: ignore[attr-defined]

    result = extract_source(make_client(EMULATOR_TOKEN, emulator.base_url), store, ADA, WINDOW)

    manifest = json.loads(store.get(result.manifest_key))
    s3 = moto_server.client()
    for page in manifest["pages"]:
        body = store.get(page["key"])
        assert page["sha256"] == sha256_hex(body) and page["size"] == len(body)
        # moto does not return checksums, so check what went over the wire: conditional, SHA-256.
        checksum = base64.b64encode(bytes.fromhex(page["sha256"])).decode()
        assert sent[page["key"]]["x-amz-checksum-sha256"] == checksum
        assert sent[page["key"]]["if-none-match"] == "*"
        head = s3.head_object(Bucket=moto_server.bucket, Key=f"tweetpipe/{page['key']}")
        assert head["ContentType"] == "application/json"
        assert page["status"] == 200 and page["rate_limit"]["limit"] == 1500
    assert manifest["totals"]["tweets"] == len(_truth(emulator, ADA, WINDOW))
    assert manifest["window"]["start"] == "2023-01-01T00:00:00+00:00"
    assert list(sent)[-2:] == [result.manifest_key, f"state/watermarks/{ADA.slug}.json"]
    lookup = [r.body for r in emulator.request_log if r.kind == "users_by_username"]
    assert store.get(user_key("ada_builds")) == lookup[0]
    assert read_watermark(store, ADA.slug) == _truth(emulator, ADA, WINDOW)[0]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_reruns_fetch_nothing_and_incremental_runs_fetch_only_new_posts(
    emulator: Any, moto_server: S3Endpoint
) -> None:
    store = open_store(moto_server.store_url)
    first = extract_source(make_client(EMULATOR_TOKEN, emulator.base_url), store, ADA, WINDOW)
    emulator.clear_log()

    # A fresh client (a new process): the window's manifest and the user cache are in the store.
    again = extract_source(make_client(EMULATOR_TOKEN, emulator.base_url), store, ADA, WINDOW)
    assert again.status == "skipped" and emulator.request_log == []
    assert again.page_keys == first.page_keys

    newer = extract_source(make_client(EMULATOR_TOKEN, emulator.base_url), store, ADA, Window())
    truth = _truth(emulator, ADA, Window(), since_id=first.newest_id)
    assert truth and _landed_ids(store, newer) == truth
    assert not set(truth) & set(_landed_ids(store, first))
    timeline = [r for r in emulator.request_log if r.kind == "users_tweets"]
    assert len(timeline) == max(1, math.ceil(len(truth) / 100))
    assert {r.params["since_id"] for r in timeline} == {first.newest_id}
    assert "start_time" not in timeline[0].params
    emulator.clear_log()

    nothing_new = extract_source(
        make_client(EMULATOR_TOKEN, emulator.base_url), store, ADA, Window()
    )
    assert (nothing_new.requests, nothing_new.pages, nothing_new.tweets) == (1, 1, 0)
    assert emulator.request_log[0].params["since_id"] == truth[0]
    assert read_watermark(store, ADA.slug) == truth[0]


def test_429_and_spent_quota_wait_until_the_reset(
    emulator_factory: Callable[..., Any], moto_server: S3Endpoint, fake_clock: FakeClock
) -> None:
    emu = emulator_factory(rate_limit=3, rate_window=60, clock=fake_clock)
    uid = emu.corpus.user_by_username("ada_builds")["id"]
    for _ in range(3):  # another client spent the timeline quota of this window
        requests.get(
            f"{emu.base_url}/2/users/{uid}/tweets",
            headers={"Authorization": f"Bearer {EMULATOR_TOKEN}"},
            timeout=10,
        )
    emu.clear_log()
    started = fake_clock()
    store = open_store(moto_server.store_url)

    result = extract_source(
        make_client(EMULATOR_TOKEN, emu.base_url),
        store,
        ADA,
        WHOLE_CORPUS,
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )

    log = emu.request_log
    timeline = [r for r in log if r.kind == "users_tweets"]
    assert [r.status for r in timeline] == [429, 200, 200, 200, 200]  # refused once, never again
    refused_until = int(timeline[0].headers["x-rate-limit-reset"])
    spent_until = int(timeline[3].headers["x-rate-limit-reset"])
    assert timeline[3].headers["x-rate-limit-remaining"] == "0"
    margin = DEFAULT_POLICY.reset_margin
    assert fake_clock.sleeps == [
        pytest.approx(refused_until - started + margin),  # after the 429
        pytest.approx(spent_until - (refused_until + margin) + margin),  # quota spent: no 429
    ]
    assert result.rate_limit_waits == 2 and result.requests == 6
    assert _landed_ids(store, result) == _truth(emu, ADA, WHOLE_CORPUS)


def test_faults_are_survived_and_nothing_received_is_lost(
    emulator_factory: Callable[..., Any], moto_server: S3Endpoint, fake_clock: FakeClock
) -> None:
    faults = Faults(server_errors=2, connection_resets=1, truncated=1, partial_errors=True)
    emu = emulator_factory(faults=faults)
    store = open_store(moto_server.store_url)
    client = make_client(EMULATOR_TOKEN, emu.base_url, timeout=(5.0, 10.0))

    report = extract_sources(
        client, store, SOURCES, WINDOW, clock=fake_clock, sleep=fake_clock.sleep
    )

    assert report.ok, report.failures
    for result in report.results:
        assert _landed_ids(store, result) == _truth(emu, result.source, WINDOW)
    log = emu.request_log
    good = [
        r.body for r in log if r.status == 200 and r.fault is None and r.kind != "users_by_username"
    ]
    assert [store.get(k) for r in report.results for k in r.page_keys] == good
    # The first request of each endpoint kind: reset, 503, 503, truncated, then served.
    assert sum(r.retries for r in report.results) == 3 * 4
    assert len(fake_clock.sleeps) == 12 and max(fake_clock.sleeps) <= DEFAULT_POLICY.max_delay
    truncated = {r.body for r in log if r.fault == "truncate"}
    kept = {store.get(k) for r in report.results for k in r.rejected_keys}
    assert kept == truncated and len(kept) == 3  # lookup, timeline page 1, search page 1
    manifest = json.loads(store.get(report.results[0].manifest_key))
    assert manifest["pages"][0]["attempts"] == 5 and len(manifest["pages"][0]["rejected"]) == 1
    served_errors = sum(len(json.loads(b).get("errors", [])) for b in good)
    assert served_errors > 0 and sum(r.api_errors for r in report.results) == served_errors


def test_token_is_in_no_landed_object_manifest_message_or_log_line(
    emulator_factory: Callable[..., Any],
    moto_server: S3Endpoint,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = emulator_factory(faults=Faults(server_errors=1, truncated=1))
    store = open_store(moto_server.store_url)
    wrong = "wrong-token-0a9f7c1e55"

    good = extract_sources(
        make_client(EMULATOR_TOKEN, emu.base_url),
        store,
        SOURCES[:2],
        WINDOW,
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )
    refused = extract_sources(
        make_client(wrong, emu.base_url),
        store,
        [Source("account", "quietriver")],
        WINDOW,
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )

    assert good.ok and not refused.ok
    assert "HTTP 401: Unauthorized" in str(refused.failures[0])
    objects = moto_server.objects()
    assert any(k.endswith("/_manifest.json") for k in objects)
    assert any("/_rejected/" in k for k in objects)
    texts = [caplog.text, *(str(f) for f in refused.failures)]
    texts += [json.dumps(r.to_dict()) for r in good.results]
    for secret in (EMULATOR_TOKEN, wrong):
        assert not [k for k, body in objects.items() if secret.encode() in body]
        assert not [t for t in texts if secret in t]
        assert not [r for r in caplog.records if secret in r.getMessage()]
    assert "Bearer [REDACTED]" in caplog.text  # tweepy's debug log line was there, redacted
