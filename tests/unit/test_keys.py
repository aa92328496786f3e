"""Every key layout lives in etl.storage.keys: the exact strings, and the store-URL reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from etl.errors import StoreError
from etl.storage.keys import (
    CONTRACT_DOCS_PREFIX,
    DOCS_PREFIX,
    docs_results_prefix,
    incremental_label,
    is_incremental_label,
    object_path,
    partition_for,
)

START = datetime(2024, 3, 1, tzinfo=UTC)


def test_partition_keys_are_the_published_layout() -> None:
    part = partition_for("account-nasa", START, START + timedelta(days=1))

    path = "source=account-nasa/interval=20240301T000000Z_20240302T000000Z"
    assert part.staging_key == f"staging/{path}/tweets.csv"
    assert part.curated_key == f"curated/{path}/tweets.csv"
    assert part.quarantine_key == f"quarantine/{path}/rejected.jsonl"


def test_docs_layout() -> None:
    assert DOCS_PREFIX == "docs/"
    assert docs_results_prefix() == "docs/results/"
    assert docs_results_prefix("site/") == "site/results/"
    assert CONTRACT_DOCS_PREFIX == "docs/contracts/"


def test_incremental_labels_are_read_back_only_in_their_own_shape() -> None:
    at = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    label = incremental_label("1790000000000000001", at)

    assert label == "since-1790000000000000001_at-20240501T120005Z"
    assert incremental_label(None, at) == "since-none_at-20240501T120005Z"
    assert is_incremental_label(label, "1790000000000000001")
    assert not is_incremental_label(label, "1790000000000000002")  # another watermark
    assert not is_incremental_label(label + "/../x", "1790000000000000001")
    assert not is_incremental_label(label + "\n", "1790000000000000001")
    assert not is_incremental_label(42, None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "raw/a/page-00001.json"),
        ("/tmp/store", "raw/a/page-00001.json"),
        ("file:///tmp/store", "raw/a/page-00001.json"),
        ("s3://bucket", "raw/a/page-00001.json"),
        ("s3://bucket/", "raw/a/page-00001.json"),
        ("s3://bucket/team/tweets/", "team/tweets/raw/a/page-00001.json"),
        ("S3://bucket/p", "p/raw/a/page-00001.json"),
    ],
)
def test_object_path_is_the_key_under_the_bucket_prefix(url: str | None, expected: str) -> None:
    assert object_path(url, "raw/a/page-00001.json") == expected


def test_object_path_reads_the_url_with_the_one_store_url_parser() -> None:
    with pytest.raises(StoreError, match="credentials"):
        object_path("s3://KEY:SECRET@bucket/p", "raw/x")
