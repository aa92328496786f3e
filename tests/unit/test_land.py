"""Landing keys, write-once pages, manifests, watermarks; and the pipeline config they key on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from etl.config import Source, Window, load_config, load_sources, parse_time
from etl.errors import ConfigError, ObjectExistsError
from etl.steps.extract.land import (
    advance_watermark,
    land_page,
    land_rejected,
    landed_pages,
    read_json,
    read_watermark,
    write_manifest,
)
from etl.storage.keys import (
    compact_time,
    is_page_key,
    manifest_key,
    page_key,
    rejected_key,
    user_key,
    watermark_key,
    window_label,
    window_prefix,
)
from etl.storage.store import LocalStore

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2024, 5, 1, tzinfo=UTC)
PREFIX = window_prefix("account-alice", "users_tweets", "20240501T000000Z_20240502T000000Z")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path)


# --- keys -----------------------------------------------------------------------------------
def test_bounded_window_label_is_deterministic_and_utc() -> None:
    paris = timezone(timedelta(hours=2))
    window = Window(datetime(2024, 5, 1, 2, tzinfo=paris), datetime(2024, 5, 2, 2, tzinfo=paris))

    label = window_label(window, since_id="123", run_at=datetime.now(UTC))

    assert label == "20240501T000000Z_20240502T000000Z"


def test_incremental_window_label_names_the_watermark_and_run_time() -> None:
    run_at = T0 + timedelta(hours=5, seconds=7.9)

    assert window_label(Window(), "1790000000000000003", run_at) == (
        "since-1790000000000000003_at-20240501T050007Z"
    )
    assert window_label(Window(), None, run_at) == "since-none_at-20240501T050007Z"


def test_key_layout() -> None:
    assert PREFIX == (
        "raw/source=account-alice/endpoint=users_tweets/window=20240501T000000Z_20240502T000000Z"
    )
    assert page_key(PREFIX, 7) == f"{PREFIX}/page-00007.json"
    assert manifest_key(PREFIX) == f"{PREFIX}/_manifest.json"
    assert rejected_key(PREFIX, "page-00002", "ab" * 32) == (
        f"{PREFIX}/_rejected/page-00002-{'ab' * 8}.body"
    )
    assert watermark_key("query-x-12") == "state/watermarks/query-x-12.json"
    assert user_key("NASA") == "state/users/nasa.json"
    assert compact_time(T0 + timedelta(microseconds=999)) == "20240501T000000Z"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (f"{PREFIX}/page-00001.json", True),
        (f"{PREFIX}/_manifest.json", False),
        (f"{PREFIX}/_rejected/page-00001-abcd.body", False),
        ("state/users/alice.json", False),
        (f"{PREFIX}/page-00001.json.tmp", False),
    ],
)
def test_is_page_key(key: str, expected: bool) -> None:
    assert is_page_key(key) is expected


# --- write once -----------------------------------------------------------------------------
def test_land_page_is_write_once(store: LocalStore) -> None:
    key = page_key(PREFIX, 1)
    body = b'{"data":[{"id":"1790000000000000001","text":"a &amp; b"}]}'

    first = land_page(store, key, body)
    again = land_page(store, key, body)

    assert first.created and not again.created and store.get(key) == body
    with pytest.raises(ObjectExistsError, match="never overwritten"):
        land_page(store, key, body.replace(b"a &amp; b", b"edited"))
    assert store.get(key) == body


def test_landed_pages_lists_pages_only_in_order(store: LocalStore) -> None:
    for n in (2, 1, 10):
        land_page(store, page_key(PREFIX, n), b"{}")
    land_rejected(store, rejected_key(PREFIX, "page-00003", "f" * 64), b"{broken")
    write_manifest(store, manifest_key(PREFIX), {"pages": []})
    land_page(store, page_key(PREFIX + "9", 1), b"{}")  # a neighbouring window

    assert landed_pages(store, PREFIX) == [page_key(PREFIX, n) for n in (1, 2, 10)]


def test_manifest_is_canonical_json_and_write_once(store: LocalStore) -> None:
    key = manifest_key(PREFIX)
    manifest = {"b": 1, "a": {"text": "café"}}

    write_manifest(store, key, manifest)

    assert store.get(key) == b'{\n  "a": {\n    "text": "caf\xc3\xa9"\n  },\n  "b": 1\n}\n'
    assert read_json(store, key) == manifest
    write_manifest(store, key, dict(reversed(manifest.items())))  # same content: fine
    with pytest.raises(ObjectExistsError):
        write_manifest(store, key, {"b": 2})


def test_read_json_absent_and_not_an_object(store: LocalStore) -> None:
    store.put("state/x.json", b"[1, 2]")

    assert read_json(store, "state/missing.json") is None
    with pytest.raises(ValueError, match="is not a JSON object"):
        read_json(store, "state/x.json")


# --- watermarks -----------------------------------------------------------------------------
def test_watermark_only_moves_forward(store: LocalStore) -> None:
    slug = "account-alice"
    now = T0 + timedelta(days=31)  # the ids below were minted on 2024-05-13
    assert read_watermark(store, slug) is None

    assert advance_watermark(store, slug, "1790000000000000100", manifest="m1", now=now) == (
        "1790000000000000100"
    )
    # numeric, not text, comparison: "999" > "1790..." as strings
    assert advance_watermark(store, slug, "999", manifest="m2", now=now) == "1790000000000000100"
    assert advance_watermark(store, slug, None, manifest="m3", now=now) == "1790000000000000100"
    assert advance_watermark(store, slug, "1790000000000000101", manifest="m4", now=now) == (
        "1790000000000000101"
    )
    doc = json.loads(store.get(watermark_key(slug)))
    assert doc["manifest"] == "m4" and doc["updated_at"] == "2024-06-01T00:00:00+00:00"


# --- config ---------------------------------------------------------------------------------
def test_source_slugs() -> None:
    assert Source("account", "NASA").slug == "account-nasa"
    query = Source("query", "#DataEngineering -is:retweet lang:en")
    assert query.slug.startswith("query-dataengineering-is-retweet-lang-en-")
    assert query.slug != Source("query", "#DataEngineering -is:retweet lang:fr").slug
    assert (
        Source("query", "日本").slug.startswith("query-") and "/" not in Source("query", "a/b").slug
    )
    assert str(Source("account", "nasa")) == "@nasa"


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("account", "@nasa", "not a valid X username"),
        ("account", "much_too_long_username", "not a valid X username"),
        ("query", "  ", "must be a non-empty query"),
        ("query", "x" * 513, "at most 512"),
        ("list", "x", "neither 'account' nor 'query'"),
    ],
)
def test_bad_sources_are_refused(kind: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Source(kind, value)  # type: ignore[arg-type]


def test_window_validation() -> None:
    assert not Window().bounded and Window(T0, T0 + timedelta(hours=1)).bounded
    with pytest.raises(ConfigError, match="both start and end, or neither"):
        Window(T0, None)
    with pytest.raises(ConfigError, match="is not before end"):
        Window(T0, T0)
    with pytest.raises(ConfigError, match="has no timezone"):
        Window(datetime(2024, 5, 1), datetime(2024, 5, 2))


def test_parse_time() -> None:
    assert parse_time("2024-05-01T00:00:00Z") == T0
    assert parse_time("2024-05-01") == T0
    assert parse_time("2024-05-01T02:00:00+02:00") == T0
    with pytest.raises(ConfigError, match="--start 'yesterday' is not an ISO 8601 time"):
        parse_time("yesterday", "--start")


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "store: s3://bucket/tp\napi:\n  base_url: http://127.0.0.1:8089\n"
        "sources:\n  accounts: [nasa, NASA, esa]\n  queries: ['#data lang:en']\n"
    )

    config = load_config(path)

    assert [s.slug for s in config.sources][:2] == ["account-nasa", "account-esa"]
    assert config.sources[2] == Source("query", "#data lang:en")
    assert config.store_url == "s3://bucket/tp" and config.api_base_url == "http://127.0.0.1:8089"
    assert load_sources(path) == list(config.sources)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("sources: [a]\n", "sources: must be a mapping"),
        ("sources:\n  accounts: nasa\n", "sources.accounts: must be a list"),
        ("sources:\n  accounts: ['@nasa']\n", "not a valid X username"),
        ("sources: {a: [\n", "not valid YAML"),
        ("store: 3\n", "store: must be a string"),
    ],
)
def test_load_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)

    assert str(path) in str(error.value)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot be read"):
        load_config(tmp_path / "nope.yaml")


def test_read_json_names_a_broken_object(store: LocalStore) -> None:
    store.put("raw/x/_manifest.json", b'{"pages": [')

    with pytest.raises(ValueError, match=r"raw/x/_manifest\.json is not valid JSON"):
        read_json(store, "raw/x/_manifest.json")


# --- importing the landing module stays light ---------------------------------------------------
_LOADED = """
import sys
import {module}
print(",".join(sorted(m for m in ("tweepy", "requests", "urllib3") if m in sys.modules)))
"""


@pytest.mark.parametrize("module", ["etl.steps.extract.land", "etl.adapters.cli.state"])
def test_the_landing_module_loads_no_http_client(module: str) -> None:
    # `tweetpipe state reset` needs only the keys and the store: a fresh interpreter (this one has
    # loaded tweepy through other tests) shows what importing it drags in.
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert proc.stdout.strip() == "", f"importing {module} loaded {proc.stdout.strip()}"
