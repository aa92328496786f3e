"""Write–audit–publish on the local store: keys, staging, publishing only audited bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from etl.errors import StagingChangedError
from etl.steps.publish import publish, stage
from etl.storage.keys import partition_for
from etl.storage.store import LocalStore, sha256_hex

if TYPE_CHECKING:
    from pathlib import Path

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)
CSV_V1 = b"tweet_id,text\r\n1,hello\r\n"
CSV_V2 = b"tweet_id,text\r\n1,hello\r\n2,world\r\n"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _files(tmp_path: Path, csv: bytes, rejected: bytes = b"") -> tuple[Path, Path]:
    csv_path = tmp_path / "candidate.csv"
    rej_path = tmp_path / "rejected.jsonl"
    csv_path.write_bytes(csv)
    rej_path.write_bytes(rejected)
    return csv_path, rej_path


def test_keys_derive_from_source_and_interval_only() -> None:
    part = partition_for("account-nasa", START, END)

    assert part.staging_key == (
        "staging/source=account-nasa/interval=20240301T000000Z_20240302T000000Z/tweets.csv"
    )
    assert part.curated_key.startswith("curated/source=account-nasa/interval=20240301T000000Z_")
    assert part.quarantine_key.endswith("/rejected.jsonl")
    assert part.quarantine_key.startswith("quarantine/source=account-nasa/")


def test_same_instant_in_another_zone_gives_the_same_keys() -> None:
    plus_two = timezone(timedelta(hours=2))

    other = partition_for("q", START.astimezone(plus_two), END.astimezone(plus_two))

    assert other == partition_for("q", START, END)


@pytest.mark.parametrize(
    ("source", "start", "end", "message"),
    [
        ("a/b", START, END, "cannot be used in a key"),
        ("", START, END, "cannot be used in a key"),
        ("a", START.replace(tzinfo=None), END, "no time zone"),
        ("a", START, START, "is empty"),
        ("a", END, START, "is empty"),
        ("a", START.replace(microsecond=5), END, "whole seconds"),
    ],
)
def test_bad_partition_input_is_named(
    source: str, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        partition_for(source, start, end)


def test_stage_writes_candidate_and_quarantine_but_not_curated(
    store: LocalStore, tmp_path: Path
) -> None:
    part = partition_for("a", START, END)
    csv_path, rej_path = _files(tmp_path, CSV_V1, b'{"reason": "bad id"}\n')

    staged = stage(store, part, csv_path, rej_path)

    assert store.get(part.staging_key) == CSV_V1
    assert store.get(part.quarantine_key) == b'{"reason": "bad id"}\n'
    assert staged.sha256 == sha256_hex(CSV_V1)
    assert staged.size == len(CSV_V1)
    assert staged.quarantine_size == len(b'{"reason": "bad id"}\n')
    assert store.list("curated/") == []


def test_publish_copies_exactly_the_audited_bytes(store: LocalStore, tmp_path: Path) -> None:
    part = partition_for("a", START, END)
    staged = stage(store, part, *_files(tmp_path, CSV_V1))

    result = publish(store, part, staged.sha256)

    assert store.get(part.curated_key) == CSV_V1
    assert result.curated_key == part.curated_key
    assert result.sha256 == sha256_hex(CSV_V1)
    assert (result.replaced, result.unchanged) == (False, False)


def test_rerun_of_the_same_interval_replaces_with_identical_bytes(
    store: LocalStore, tmp_path: Path
) -> None:
    part = partition_for("a", START, END)
    publish(store, part, stage(store, part, *_files(tmp_path, CSV_V1)).sha256)

    again = publish(store, part, stage(store, part, *_files(tmp_path, CSV_V1)).sha256)

    assert (again.replaced, again.unchanged) == (True, True)
    assert store.list("curated/") == [part.curated_key]
    assert store.get(part.curated_key) == CSV_V1


def test_candidate_changed_after_audit_is_not_published(store: LocalStore, tmp_path: Path) -> None:
    part = partition_for("a", START, END)
    publish(store, part, stage(store, part, *_files(tmp_path, CSV_V1)).sha256)
    audited = stage(store, part, *_files(tmp_path, CSV_V2)).sha256
    # A concurrent writer replaces the candidate between audit and publish.
    store.put(part.staging_key, b"tweet_id,text\r\nnot audited\r\n")

    with pytest.raises(StagingChangedError, match="unchanged") as err:
        publish(store, part, audited)

    assert part.staging_key in str(err.value)
    assert store.get(part.curated_key) == CSV_V1


def test_other_partitions_are_left_alone(store: LocalStore, tmp_path: Path) -> None:
    day_one = partition_for("a", START, END)
    day_two = partition_for("a", END, END + timedelta(days=1))
    publish(store, day_one, stage(store, day_one, *_files(tmp_path, CSV_V1)).sha256)

    publish(store, day_two, stage(store, day_two, *_files(tmp_path, CSV_V2)).sha256)

    assert store.get(day_one.curated_key) == CSV_V1
    assert store.get(day_two.curated_key) == CSV_V2
