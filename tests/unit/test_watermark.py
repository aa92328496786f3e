"""Post ids (ASCII, the API's schema, Snowflake time) and the watermark state functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from etl.config import Source, parse_source
from etl.errors import ConfigError, WatermarkError
from etl.ids import parse_id, snowflake_time, watermark_problem
from etl.steps.extract.land import read_watermark, reset_watermark
from etl.storage.keys import watermark_key
from etl.storage.store import LocalStore
from tests.unit.fake_x_api import EPOCH, snowflake

if TYPE_CHECKING:
    from pathlib import Path

ALICE = Source("account", "alice")
DATA = Source("query", "#data")
NOW = EPOCH + timedelta(days=3)
MAX_ID = "9223372036854775807"  # the largest 64-bit id: "newer" than every real post


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _poison(store: LocalStore, slug: str, newest_id: Any) -> None:
    """A watermark as an earlier version, or a hand edit, could have left it."""
    doc = {"source": slug, "newest_id": newest_id, "manifest": "m", "updated_at": "x"}
    store.put(watermark_key(slug), json.dumps(doc).encode())


# --- ids ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["²", "٣", "１２３", "123\n", " 123", "+123", "1_000", "", "12345678901234567890", "9" * 19],
)
def test_only_ascii_ids_of_the_api_schema_are_ids(text: str) -> None:
    assert parse_id(text) is None


def test_ids_are_numbers_up_to_the_largest_64_bit_one() -> None:
    assert parse_id("0") == 0
    assert parse_id(MAX_ID) == 2**63 - 1
    assert parse_id(123) is None and parse_id(None) is None and parse_id(["1"]) is None


def test_an_id_carries_its_creation_time() -> None:
    minted = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)

    assert snowflake_time(snowflake(minted, 4095)) == minted
    assert snowflake_time(2**63 - 1).year == 2080


@pytest.mark.parametrize(
    ("post_id", "created_at", "problem"),
    [
        (str(snowflake(EPOCH, 1)), "2024-05-01T00:00:00.000Z", None),
        (str(snowflake(EPOCH, 1)), "2024-05-01T00:04:59.000Z", None),  # within the tolerance
        (str(snowflake(EPOCH, 1)), None, None),  # no created_at: the clock is the only check
        (str(snowflake(NOW + timedelta(minutes=4), 1)), None, None),  # our clock runs behind
        (MAX_ID, "2024-05-03T00:00:00.000Z", "in the future"),
        (str(snowflake(NOW + timedelta(hours=1), 1)), None, "in the future"),
        (str(snowflake(EPOCH, 1)), "2024-05-01T00:06:00.000Z", "disagrees with created_at"),
        (str(snowflake(EPOCH, 1)), "yesterday", "created_at unreadable"),
        (str(snowflake(EPOCH, 1)), "２０２４-05-01T00:00:00.000Z", "created_at unreadable"),
        (str(snowflake(EPOCH, 1)), 1714521600, "created_at unreadable"),
        ("²", "2024-05-01T00:00:00.000Z", "malformed"),
        ("12345678901234567890", "2024-05-01T00:00:00.000Z", "malformed"),
    ],
)
def test_watermark_problem(post_id: str, created_at: Any, problem: str | None) -> None:
    assert watermark_problem(post_id, created_at, NOW) == problem


def test_reset_overwrites_even_an_unreadable_watermark(store: LocalStore) -> None:
    store.put(watermark_key(ALICE.slug), b"\xff not json")

    assert reset_watermark(store, ALICE.slug, now=NOW) is None

    assert read_watermark(store, ALICE.slug) is None


def test_a_username_with_a_trailing_line_feed_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid X username"):
        Source("account", "alice\n")


def test_source_spec_round_trips() -> None:
    for source in (ALICE, DATA, Source("query", "a:b 'c' \"d\"")):
        assert parse_source(source.spec) == source


def test_watermark_error_names_key_value_and_problem(store: LocalStore) -> None:
    _poison(store, ALICE.slug, "x" * 500)

    with pytest.raises(WatermarkError) as error:
        read_watermark(store, ALICE.slug)

    assert error.value.key == watermark_key(ALICE.slug)
    assert len(str(error.value)) < 200  # a hostile value is shortened, not echoed whole
