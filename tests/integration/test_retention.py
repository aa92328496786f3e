"""Retention on a real store (a local directory and moto's S3 on loopback): what goes, what stays.

The store is filled as a year of runs leaves it; ``now`` lies in the future so that everything
written by the test is older than the grace period, and the labels are placed around it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from etl.adapters.cli import main
from etl.config import RetentionPolicy
from etl.lineage.builders import retention_outputs
from etl.steps import retain
from etl.storage import store as store_module
from etl.storage.keys import compact_time, partition_for
from etl.storage.store import LocalStore, S3Store, open_store
from tests.openlineage_schemas import OUR_FACETS, validate_event

if TYPE_CHECKING:
    from pathlib import Path

    from etl.storage.store import Store
    from tests.integration.conftest import S3Endpoint

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
SLUG = "account-ada_builds"
POLICY = RetentionPolicy(
    raw_days=400, staging_days=7, grace_hours=1, docs_pages_days=90, docs_results_days=None
)


def _day(days_ago: int) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0)


def _window_at(start: datetime) -> str:
    label = f"{compact_time(start)}_{compact_time(start + timedelta(days=1))}"
    return f"raw/source={SLUG}/endpoint=users_tweets/window={label}"


def _window(days_ago: int) -> str:
    return _window_at(_day(days_ago))


def _partition(days_ago: int) -> Any:
    start = _day(days_ago)
    return partition_for(SLUG, start, start + timedelta(days=1))


def _gx_time(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y%m%dT%H%M%S.123456Z")


def _docs_key(folder: str, days_ago: int, ext: str) -> str:
    run = f"manual__run{days_ago}__{SLUG}"
    return f"docs/{folder}/tweets_curated/{run}/{_gx_time(days_ago)}/tweetpipe-tweets_curated.{ext}"


def _fill(store: Store) -> dict[str, set[str]]:
    """A store as runs leave it; returns the keys retention must delete and must keep."""
    gone: set[str] = set()
    kept: set[str] = set()

    def put(key: str, body: bytes, bucket: set[str]) -> None:
        store.put(key, body)
        bucket.add(key)

    # An old interval that was published: its raw window is what the partition derives from.
    published_old = _window(500)
    for name in ("page-00001.json", "page-00002.json", "_manifest.json"):
        put(f"{published_old}/{name}", b'{"data":[]}', kept)
    put(_partition(500).curated_key, b"tweet_id\n1\n", kept)
    put(_partition(500).quarantine_key, b"", kept)
    # An old interval never published (its audit failed): pages, manifest, rejected bodies go.
    for name in ("page-00001.json", "_manifest.json", "_rejected/page-00002-0123456789abcdef.body"):
        put(f"{_window(450)}/{name}", b"{}", gone)
    put(_partition(450).quarantine_key, b"{}\n", kept)
    # A recent window stays.
    put(f"{_window(10)}/page-00001.json", b"{}", kept)
    # Incremental windows: the open one stays whatever its age, a finished old one goes.
    opened = compact_time(NOW - timedelta(days=600))
    finished = compact_time(NOW - timedelta(days=700))
    open_prefix = f"raw/source={SLUG}/endpoint=users_tweets/window=since-12_at-{opened}"
    put(f"{open_prefix}/page-00001.json", b"{}", kept)
    done_prefix = f"raw/source={SLUG}/endpoint=users_tweets/window=since-none_at-{finished}"
    put(f"{done_prefix}/page-00001.json", b"{}", gone)
    record = {"endpoint": "users_tweets", "since_id": "12", "label": f"since-12_at-{opened}"}
    put(f"state/windows/{SLUG}.json", json.dumps(record).encode(), kept)
    # A window of no shape we write is never touched.
    put(f"raw/source={SLUG}/endpoint=users_tweets/window=mystery/page-00001.json", b"{}", kept)
    # Staging: published (curated holds the same bytes), rejected long ago, and one that differs
    # from what is published but is recent enough (its run may still publish it).
    put(_partition(500).staging_key, b"tweet_id\n1\n", gone)
    put(_partition(450).staging_key, b"tweet_id\nbad\n", gone)
    put(_partition(3).curated_key, b"tweet_id\n1\n", kept)
    # Docs: old pages go, their results stay (results_days: forever); recent pages stay.
    put(_docs_key("validations", 100, "html"), b"<html>", gone)
    put(_docs_key("results", 100, "json"), b"{}", kept)
    put(_docs_key("validations", 10, "html"), b"<html>", kept)
    put("docs/index.html", b"<html>", kept)
    return {"gone": gone, "kept": kept}


def _local(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "store"), check=True)


def _s3(moto_server: S3Endpoint) -> Store:
    return open_store(moto_server.store_url)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return _local(tmp_path)
    return _s3(request.getfixturevalue("moto_server"))


def test_expired_data_goes_and_what_curated_data_derives_from_stays(store: Store) -> None:
    expected = _fill(store)
    report = retain.apply_retention(store, POLICY, now=NOW, docs_index=None)

    left = set(store.list(""))
    assert expected["gone"] & left == set()
    assert expected["kept"] <= left
    assert left == expected["kept"]
    assert report.by_area() == {"raw": 4, "staging": 2, "docs_pages": 1, "docs_results": 0}
    reasons = {d.name: d.reason for d in report.deletions if d.area == "staging"}
    assert reasons == {
        _partition(500).staging_key: "published",
        _partition(450).staging_key: "unpublished",
    }
    assert report.protected == [
        _window(500),
        f"raw/source={SLUG}/endpoint=users_tweets/window=since-12_at-"
        f"{compact_time(NOW - timedelta(days=600))}",
    ]
    assert report.unreadable == 1


def test_a_dry_run_reports_the_same_and_deletes_nothing(store: Store) -> None:
    _fill(store)
    before = set(store.list(""))

    dry = retain.apply_retention(store, POLICY, now=NOW, dry_run=True, docs_index=None)

    assert set(store.list("")) == before
    real = retain.apply_retention(store, POLICY, now=NOW, docs_index=None)
    assert [d.name for d in dry.deletions] == [d.name for d in real.deletions]


def test_the_default_policy_keeps_raw_and_docs_forever(store: Store) -> None:
    expected = _fill(store)

    report = retain.apply_retention(store, RetentionPolicy(), now=NOW, docs_index=None)

    assert report.by_area() == {"raw": 0, "staging": 2, "docs_pages": 0, "docs_results": 0}
    written = expected["gone"] | expected["kept"]
    assert set(store.list("raw/")) == {k for k in written if k.startswith("raw/")}


def test_nothing_written_within_the_grace_period_is_deleted(store: Store) -> None:
    # A backfill of an old interval is landing and staging right now: neither may vanish.
    old = _partition(450)
    store.put(f"{_window(450)}/page-00001.json", b"{}")
    store.put(old.staging_key, b"tweet_id\n")
    store.put(_partition(460).staging_key, b"tweet_id\n1\n")
    store.put(_partition(460).curated_key, b"tweet_id\n1\n")

    report = retain.apply_retention(store, POLICY, now=datetime.now(UTC), docs_index=None)

    assert report.deletions == []
    assert store.exists(old.staging_key) and store.exists(f"{_window(450)}/page-00001.json")


def test_listing_is_paged_and_deletions_are_batched_on_s3(
    moto_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "DELETE_BATCH", 4)
    monkeypatch.setattr(retain, "DELETE_BATCH", 4)
    client = moto_server.client()
    calls: list[tuple[str, int]] = []

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        size = len(params.get("Delete", {}).get("Objects", [])) or params.get("MaxKeys", 0)
        calls.append((model.name, size))

    client.meta.events.register("provide-client-params.s3", count)
    s3 = S3Store(moto_server.bucket, "tweetpipe", client=client)
    for n in range(11):
        s3.put(f"{_window(500 + n)}/page-00001.json", b"{}")
    calls.clear()

    report = retain.apply_retention(
        s3, replace(POLICY, docs_pages_days=None), now=NOW, docs_index=None
    )

    lists = [size for name, size in calls if name == "ListObjectsV2"]
    deletes = [size for name, size in calls if name == "DeleteObjects"]
    assert lists == [4, 4, 4, 4]  # raw/: 11 keys in pages of 4 (3 requests), then staging/
    assert deletes == [4, 4, 3]
    assert report.by_area()["raw"] == 11 and s3.list("raw/") == []


def test_lineage_names_every_deleted_dataset_as_dropped(tmp_path: Path) -> None:
    store = _local(tmp_path)
    _fill(store)

    payload = retain.apply_retention(store, POLICY, now=NOW, docs_index=None).to_payload(store)
    outputs = retention_outputs(payload).outputs

    assert {o.name for o in outputs} == {d["name"] for d in payload["deleted"]}
    assert {o.facets["lifecycleStateChange"].lifecycleStateChange.value for o in outputs} == {
        "DROP"
    }
    assert all(o.namespace == "file" for o in outputs)


def test_cli_applies_the_config_and_emits_lineage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "AIRFLOW__OPENLINEAGE__TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    store = LocalStore(tmp_path / "store")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    store.put(f"{_window_at(today - timedelta(days=1))}/page-00001.json", b"{}")
    old_window = _window_at(today - timedelta(days=500))
    store.put(f"{old_window}/page-00001.json", b"{}")
    config = tmp_path / "pipeline.yaml"
    config.write_text("retention:\n  raw_days: 400\n  grace_hours: 0\n")

    code = main(["retention", "apply", "--store", str(tmp_path / "store"), "--config", str(config)])

    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == f"deleted raw {old_window} (1 objects): expired"
    assert "retention deleted 1 objects" in err
    events = [json.loads(line) for line in (tmp_path / "store/lineage/events.jsonl").open()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[-1]["job"]["name"] == "tweetpipe.apply_retention"
    assert [o["name"] for o in events[-1]["outputs"]] == [old_window]
    assert validate_event(events[-1], OUR_FACETS | {"lifecycleStateChange"}) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--raw-days", "-1"], "--raw-days -1 must be 0 or more days"),
        (["--grace-hours", "-2"], "--grace-hours -2 must be 0 or more hours"),
        (["--raw-days", "x"], "invalid int value"),
        (["--config", "/nonexistent/pipeline.yaml"], "/nonexistent/pipeline.yaml"),
        (["--docs-pages-days", "30", "--docs-results-days", "10"], "docs_results_days"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()

    try:
        code = main(["retention", "apply", "--store", str(store_dir), *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
