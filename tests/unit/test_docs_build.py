"""The docs build's pure parts: the contract-terms formatter, the asset lock checks, the CLI."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
from typing import TYPE_CHECKING

import pytest

from etl.adapters.cli import main
from etl.contracts.model import CONTRACTS_DIR, CURATED_CONTRACT, load_contract
from etl.contracts.suites import EXPECTATIONS_DIR
from etl.steps.quality.docs_assets import (
    LOCK_FILE,
    DocsAssetsError,
    fetch_assets,
    load_lock,
    missing_assets,
    require_assets,
    rewrite_links,
)
from etl.steps.quality.docs_page import contract_anchors, rule_anchor
from etl.steps.quality.explain import entry_from_result, explain_check
from etl.tools.contract_docs import build_site

if TYPE_CHECKING:
    from pathlib import Path

QUARANTINE_CHECK = {
    "expectation_type": "expect_table_row_count_to_be_between",
    "rule": "quarantined_share",
    "observed_value": 1,
    "expected": {"min_value": 4},
    "success": False,
}


def test_a_threshold_rule_is_said_in_the_contract_terms() -> None:
    said = explain_check(QUARANTINE_CHECK, {"curated": 1, "quarantined": 3}, load_contract())
    assert said == "quarantined 3 of 4 posts (75 %); the contract allows at most 5 %"


def test_without_the_counts_the_bounds_are_shown() -> None:
    said = explain_check(QUARANTINE_CHECK, {}, load_contract(CURATED_CONTRACT))
    assert said == "observed 1; expected at least 4"


def test_a_gx_result_item_reads_the_same() -> None:
    item = {
        "success": False,
        "expectation_config": {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "tweet_id", "regex": "x"},
            "meta": {"rules": ["tweet_id.pattern"], "source": "contract"},
        },
        "result": {"element_count": 4, "unexpected_count": 1, "partial_unexpected_list": ["1x"]},
    }
    assert explain_check(entry_from_result(item)) == (
        "1 of 4 values of tweet_id (25 %) break the rule; e.g. '1x'"
    )


def test_every_cdn_link_of_gx_templates_is_rewritten_relative() -> None:
    lock = load_lock()
    page = "".join(f'<script src="{url}"></script>' for url in lock.replaces)
    page += '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">'
    out = rewrite_links(page, "../../", lock)
    assert "https://" not in out
    assert 'src="../../static/vendor/jquery@3.7.1/dist/jquery.min.js"' in out


def test_an_altered_asset_is_refused(tmp_path: Path) -> None:
    lock = load_lock()
    asset = lock.assets[0]
    for a in lock.assets:
        (tmp_path / a.site_path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / a.site_path).write_bytes(b"not the pinned bytes")
    assert len(missing_assets(tmp_path, lock)) == len(lock.assets)
    with pytest.raises(DocsAssetsError, match="tweetpipe docs assets fetch"):
        require_assets(tmp_path, lock)
    assert asset.integrity.startswith("sha256-")


def test_a_lock_that_points_off_the_registry_is_refused(tmp_path: Path) -> None:
    doc = json.loads(LOCK_FILE.read_text(encoding="utf-8"))
    doc["packages"][0]["tarball"] = "https://evil.example/jquery.tgz"
    bad = tmp_path / "lock.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DocsAssetsError, match="not an npm registry URL"):
        load_lock(bad)


def test_docs_build_with_a_bad_store_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["docs", "build", "--store", "s3://KEY:SECRET@bucket/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tweetpipe docs: error: --store:") and err.count("\n") == 1
    assert "SECRET" not in err


# Names in the suites that are structure, not a rule or a column of the contract page.
STRUCTURAL = {"columns", "flattened page columns", "page_is_json_object"}


@pytest.mark.parametrize(
    "suite_file", sorted(EXPECTATIONS_DIR.glob("*.json")), ids=lambda p: p.stem
)
def test_every_contract_check_links_to_an_anchor_of_its_contract_page(
    suite_file: Path, tmp_path: Path
) -> None:
    suite = json.loads(suite_file.read_text(encoding="utf-8"))
    checks = [e for e in suite["expectations"] if e["meta"].get("source") == "contract"]
    (contract,) = {e["meta"]["contract"] for e in checks}
    spec = load_contract(CONTRACTS_DIR / f"{contract}.odcs.yaml")
    (page,) = [
        p
        for p in build_site([CONTRACTS_DIR / f"{contract}.odcs.yaml"], tmp_path)
        if p.stem == contract
    ]
    ids = set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))
    anchors = contract_anchors(spec)

    unresolved = []
    for check in checks:
        for name in check["meta"]["rules"]:
            anchor = rule_anchor(name, anchors)
            if anchor is None:
                unresolved.append(name)
            else:
                assert html.escape(anchor) in ids, f"{name}: #{anchor} is not on {page.name}"
    assert set(unresolved) <= STRUCTURAL


def _fake_package(tmp_path: Path) -> tuple[Path, bytes]:
    """A one-file npm tarball and a lock pinning it, as the registry would serve them."""
    body = b"window.fake = 1;\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("package/dist/fake.min.js")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    tarball = buffer.getvalue()
    package = {
        "name": "fake",
        "version": "1.0.0",
        "tarball": "https://registry.npmjs.org/fake/-/fake-1.0.0.tgz",
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode(),
        "files": {"dist/fake.min.js": hashlib.sha256(body).hexdigest()},
        "replaces": {"https://cdn.example/fake.js": "dist/fake.min.js"},
    }
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({"packages": [package]}), encoding="utf-8")
    return lock, tarball


def test_fetch_checks_the_pins_and_fetches_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl.steps.quality import docs_assets

    lock_file, tarball = _fake_package(tmp_path)
    lock = load_lock(lock_file)
    downloads: list[str] = []
    monkeypatch.setattr(docs_assets, "_download", lambda url: downloads.append(url) or tarball)

    written = fetch_assets(tmp_path / "assets", lock)
    again = fetch_assets(tmp_path / "assets", lock)

    assert [p.relative_to(tmp_path / "assets").as_posix() for p in written] == [
        "static/vendor/fake@1.0.0/dist/fake.min.js"
    ]
    assert again == [] and len(downloads) == 1
    assert require_assets(tmp_path / "assets", lock) == tmp_path / "assets"


def test_a_tarball_that_differs_from_its_integrity_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl.steps.quality import docs_assets

    lock_file, tarball = _fake_package(tmp_path)
    monkeypatch.setattr(docs_assets, "_download", lambda url: tarball + b"\0")

    with pytest.raises(DocsAssetsError, match="sha512 differs"):
        fetch_assets(tmp_path / "assets", load_lock(lock_file))
    assert not (tmp_path / "assets").exists()  # nothing unchecked is written


def test_assets_into_a_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl.steps.quality import docs_assets

    lock_file, tarball = _fake_package(tmp_path)
    monkeypatch.setattr(docs_assets, "LOCK_FILE", lock_file)
    monkeypatch.setattr(docs_assets.load_lock, "__defaults__", (lock_file,))
    monkeypatch.setattr(docs_assets, "_download", lambda url: tarball)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")

    code = main(["docs", "assets", "fetch", "--into", str(blocker)])
    err = capsys.readouterr().err

    assert code == 2
    assert (
        err.startswith(f"tweetpipe docs: error: cannot write {blocker}/") and err.count("\n") == 1
    )


# --- what retention expired, in the index --------------------------------------------------------
def _entry(day: int, status: str = "passed") -> dict[str, str]:
    stamp = f"202601{day:02d}T000000.000000Z"
    return {
        "result": f"results/tweets_curated/r{day}__account-ada/{stamp}/b.json",
        "page": f"validations/tweets_curated/r{day}__account-ada/{stamp}/b.html",
        "suite": "tweets_curated",
        "source": "account-ada",
        "time": f"2026-01-{day:02d}T00:00:00+00:00",
        "run": f"r{day}__account-ada",
        "status": status,
    }


def test_the_expiry_record_reads_back_and_refuses_anything_else() -> None:
    from datetime import UTC, datetime

    from etl.steps.quality.docs_index import Expired

    gone = Expired(datetime(2026, 1, 10, 3, tzinfo=UTC), None)
    assert Expired.from_dict(json.loads(gone.to_json())) == gone
    for bad in (
        [],
        {"pages_before": "2026-01-10"},  # no time, no zone
        {"pages_before": "2026-01-10T00:00:00+02:00"},  # not UTC
        {"pages_before": "<script>"},
        {"pages_before": 12},
        {"pages_before": None, "other": None},
    ):
        with pytest.raises(ValueError, match="expired"):
            Expired.from_dict(bad)
    later = Expired(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert gone.merged(later) == Expired(gone.pages_before, later.results_before)


def test_an_expired_row_stays_says_so_and_links_what_is_kept() -> None:
    from datetime import UTC, datetime

    from etl.steps.quality.docs_index import Expired, IndexState, render_months

    entries = [_entry(2, "failed"), _entry(8), _entry(20)]
    written: dict[str, str] = {}
    gone = Expired(datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC))

    render_months(IndexState(), {"2026-01": entries}, written.__setitem__, {"2026-01": gone})

    part = written["index/2026-01/001.html"]
    rows = re.findall(r'data-suite="tweets_curated"([^>]*)>(.*?)</tr>', part)
    by_run = {re.findall(r">(r[0-9]+)__", r)[0]: (attrs, r) for attrs, r in rows}
    assert len(rows) == len(by_run) == 3
    attrs, row = by_run["r2"]  # page and result gone: still listed, failed, no link
    assert 'data-expired="all"' in attrs and "page and result expired" in row
    assert "<a " not in row and "\u2717 Failed" in row
    attrs, row = by_run["r8"]  # page gone, result kept: its JSON linked
    assert 'data-expired="page"' in attrs and "page expired" in row
    assert f'href="../../{_entry(8)["result"]}"' in row and ".html" not in row
    attrs, row = by_run["r20"]  # younger than the cutoff: its page
    assert "expired" not in attrs + row and f'href="../../{_entry(20)["page"]}"' in row


def test_a_part_nothing_of_which_expired_is_not_written_again() -> None:
    from datetime import UTC, datetime

    from etl.steps.quality.docs_index import Expired, IndexState, render_months

    state = IndexState()
    entries = {"2026-01": [_entry(12), _entry(20)]}
    render_months(state, entries, lambda _p, _t: None)
    written: list[str] = []

    # Retention expired pages before Jan 10: none of this month's; then before Jan 15: one.
    early = Expired(datetime(2026, 1, 10, tzinfo=UTC))
    render_months(state, entries, lambda p, _t: written.append(p), {"2026-01": early})
    assert written == ["index/months.json", "index.html"]
    later = Expired(datetime(2026, 1, 15, tzinfo=UTC))
    render_months(state, entries, lambda p, _t: written.append(p), {"2026-01": later})
    assert "index/2026-01/001.html" in written
