"""The published Data Docs index lists every validation run without JavaScript or network.

One site for the module: a passing and a failing checkpoint on the curated CSV, their results
saved to a local store, the site rebuilt from the store and published, as the DAG's docs task does.
Then the published ``index.html`` is read as HTML and shown in headless Chromium with every
non-``file://`` request refused (GX's jQuery, Bootstrap and bootstrap-table CDNs included).
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest

from etl.steps.quality import (
    CheckpointSummary,
    build_docs_from_store,
    publish_docs,
    save_results,
    validate_curated_bytes,
)
from etl.steps.quality.docs import RUNS_SECTION_ID, add_runs_section, validation_runs
from etl.steps.quality.docs_assets import missing_assets
from etl.steps.quality.docs_site import build_docs, page_for
from etl.storage.keys import partition_for
from etl.storage.store import LocalStore
from tests.integration.test_checkpoints import END, START, _breach_bad_id, _csv, _report, _row

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser

BAD_ID = "17900000x0000000003"
# Shaped like the DAG's run names (``<run id>__<source>``); "=" must survive in the link.
BREACH = "breach__source=ada"


class _Site:
    def __init__(self, root: Path, passed: CheckpointSummary, failed: CheckpointSummary) -> None:
        self.root = root
        self.passed = passed
        self.failed = failed

    @property
    def index(self) -> Path:
        return self.root / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> _Site:
    tmp = tmp_path_factory.mktemp("docs-offline")
    local = tmp / "gx"
    common: dict[str, Any] = {"docs_dir": local, "interval_start": START, "interval_end": END}
    passed = validate_curated_bytes(
        _csv([_row(i) for i in range(12)]), run_name="green", report=_report(12), **common
    )
    body, _ = _breach_bad_id()
    failed = validate_curated_bytes(body, run_name=BREACH, report=_report(10), **common)
    assert passed.success and not failed.success  # the premise of every test below
    store = LocalStore(tmp / "store")
    save_results(local, store)
    built = build_docs_from_store(store, tmp / "build")
    publish_docs(built, store)
    # What a user opens: the published copy, under the store's docs/ prefix.
    return _Site(tmp / "store" / "docs", passed, failed)


class _RunsTable(HTMLParser):
    """The rows of the static runs section: each row's class, cell texts and link."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.in_cell = False
        self.rows: list[dict[str, Any]] = []
        self.scripts = 0
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("id") == RUNS_SECTION_ID:
            self.depth = 1
        elif self.depth:
            self.depth += tag not in ("meta", "link", "img", "br")
            self.srcs += [v or "" for k, v in attrs if k in ("src", "href") and tag != "a"]
            if tag == "tr" and found.get("class"):
                self.rows.append({"class": found["class"], "cells": [], "href": None})
            elif tag == "td" and self.rows:
                self.rows[-1]["cells"].append("")
                self.in_cell = True
            elif tag == "a" and self.rows:
                self.rows[-1]["href"] = found.get("href")
            elif tag == "time" and self.rows:
                self.rows[-1]["time"] = datetime.fromisoformat(found.get("datetime") or "")
            self.scripts += tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in ("meta", "link", "img", "br"):
            self.depth -= 1
        self.in_cell = self.in_cell and tag != "td"

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.rows[-1]["cells"][-1] += data


def _runs_table(page: str) -> _RunsTable:
    parser = _RunsTable()
    parser.feed(page)
    return parser


def test_index_lists_both_runs_newest_first_with_status_and_link(site: _Site) -> None:
    page = site.index.read_text(encoding="utf-8")
    table = _runs_table(page)

    assert [r["class"] for r in table.rows] == ["failed", "passed"]  # the breach ran last
    failed, passed = table.rows
    assert failed["cells"][1:] == [
        "tweets_curated",
        "tweetpipe / tweets_curated",
        BREACH,
        "\u2717 Failed",
        "1 of 55",
    ]
    assert passed["cells"][3:5] == ["green", "\u2713 Passed"]
    # Shown to the second; the attribute has the full time (both runs may share a second).
    assert failed["time"] > passed["time"]
    assert failed["cells"][0] == failed["time"].strftime("%Y-%m-%d %H:%M:%S")
    assert failed["href"] == site.failed.docs_page
    assert passed["href"] == site.passed.docs_page
    assert (site.root / failed["href"]).is_file() and (site.root / passed["href"]).is_file()
    # Server-rendered into the main column, above GX's own (script-filled) table.
    assert page.index(f'id="{RUNS_SECTION_ID}"') < page.index('id="section-1"')
    # Nothing of ours loads from anywhere; the one script only hides the section.
    assert table.srcs == [] and table.scripts == 1


def test_runs_come_from_the_result_files(site: _Site) -> None:
    runs = validation_runs(site.root)

    assert [(r.run_name, r.success, r.unsuccessful) for r in runs] == [
        (BREACH, False, 1),
        ("green", True, 0),
    ]
    assert runs[0].run_time > runs[1].run_time
    assert runs[0].run_time.utcoffset() is not None


def test_adding_again_keeps_one_section(site: _Site, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site.root, copy)
    before = (copy / "index.html").read_text(encoding="utf-8")

    assert add_runs_section(copy) == 2
    after = (copy / "index.html").read_text(encoding="utf-8")

    assert after == before
    assert after.count(f'<section id="{RUNS_SECTION_ID}"') == 1


def test_every_text_is_escaped(site: _Site, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site.root, copy)
    result = next((copy / "results").rglob("*.json"))
    doc = json.loads(result.read_text(encoding="utf-8"))
    hostile = '<img src=x onerror="alert(1)">&amp;'
    doc["suite_name"] = hostile
    doc["meta"]["run_id"]["run_name"] = hostile
    doc["meta"]["active_batch_definition"]["data_asset_name"] = hostile
    result.write_text(json.dumps(doc), encoding="utf-8")

    add_runs_section(copy)
    page = (copy / "index.html").read_text(encoding="utf-8")
    section = page[page.index(f'<section id="{RUNS_SECTION_ID}"') : page.index("</section>")]

    assert hostile not in section
    assert section.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;") == 3
    # Read back as HTML, the cells say exactly what the result file says.
    (row,) = [r for r in _runs_table(page).rows if r["cells"][1] == hostile]
    assert row["cells"][2:4] == [f"tweetpipe / {hostile}", hostile]


def test_a_run_failing_only_warnings_is_marked_apart(site: _Site, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site.root, copy)
    (result,) = (copy / "results").glob("tweets_curated/green/*/*.json")
    doc = json.loads(result.read_text(encoding="utf-8"))
    # GX fails a validation on any failed expectation; the gates only on a critical one.
    doc["success"] = False
    doc["statistics"]["unsuccessful_expectations"] = 1
    doc["results"][0]["success"] = False
    doc["results"][0]["expectation_config"]["severity"] = "warning"
    result.write_text(json.dumps(doc), encoding="utf-8")

    add_runs_section(copy)
    table = _runs_table((copy / "index.html").read_text(encoding="utf-8"))

    assert [r["class"] for r in table.rows] == ["failed", "warning"]
    assert table.rows[1]["cells"][4] == "\u26a0 Warnings only"
    assert table.rows[1]["cells"][5] == "1 of 55"


def test_a_broken_result_file_is_named(site: _Site, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site.root, copy)
    broken = copy / "results" / "tweets_curated" / "x" / "20240501T000000.000000Z" / "b.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"meta": {}}', encoding="utf-8")
    before = (copy / "index.html").read_bytes()

    with pytest.raises(ValueError, match=re.escape(str(broken))):
        add_runs_section(copy)
    assert (copy / "index.html").read_bytes() == before  # nothing half-written


def _offline(refused: list[str]) -> Any:
    def route(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    return route


def test_offline_browser_shows_the_runs_and_follows_the_failed_link(
    site: _Site, browser: Browser
) -> None:
    from playwright.sync_api import expect

    refused: list[str] = []
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route("**/*", _offline(refused))
    try:
        page = context.new_page()
        page.goto(site.index.as_uri(), timeout=30_000)
        section = page.locator(f"#{RUNS_SECTION_ID}")
        expect(section).to_be_visible(timeout=10_000)
        failed_row = section.locator("tr.failed")
        expect(failed_row).to_have_count(1)
        expect(failed_row.locator("td.status")).to_have_text("\u2717 Failed")
        expect(section.locator("tr.passed td.status")).to_have_text("\u2713 Passed")
        # Failed runs stand out even to a glance: a tinted row.
        tint = failed_row.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
        assert tint not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")

        failed_row.get_by_role("link", name=BREACH).click()
        page.wait_for_url(f"**/{site.failed.docs_page}", timeout=30_000)
        text = " ".join(page.inner_text("body").split())
    finally:
        context.close()

    assert refused, "GX's CDN requests should have been made and refused"
    assert "Status: Failed" in text
    assert BREACH in text and BAD_ID in text and "tweet_id" in text


def test_the_section_steps_aside_when_gx_table_rendered(site: _Site, browser: Browser) -> None:
    context = browser.new_context()
    context.route("**/*", _offline([]))
    # Stand-ins for what the CDNs would bring: jQuery with bootstrap-table, and GX's filled table.
    context.add_init_script(
        """
        window.jQuery = {fn: {bootstrapTable: function () {}}};
        document.addEventListener("DOMContentLoaded", function () {
          var table = document.querySelector(".ge-index-page-validation-results-table");
          table.insertAdjacentHTML("beforeend", '<tbody><tr data-index="0"><td>x</td></tr></tbody>');
        }, {capture: true});
        """
    )
    try:
        page = context.new_page()
        page.goto(site.index.as_uri(), timeout=30_000)
        page.wait_for_load_state("load")
        section = page.locator(f"#{RUNS_SECTION_ID}")
        present = section.count()
        visible = section.is_visible()
    finally:
        context.close()

    assert present == 1
    assert visible is False


# --- the incremental site (tweetpipe docs build), opened from disk with the network cut -----------
class _NewSite:
    def __init__(self, root: Path, failed: CheckpointSummary) -> None:
        self.root = root
        self.failed = failed


@pytest.fixture(scope="module")
def new_site(tmp_path_factory: pytest.TempPathFactory) -> _NewSite:
    missing = missing_assets()
    if missing:
        pytest.fail(f"page assets missing ({missing[0].site_path}): run make env")
    tmp = tmp_path_factory.mktemp("docs-incremental")
    part = partition_for("account-ada", START, END)
    common: dict[str, Any] = {
        "docs_dir": tmp / "gx",
        "interval_start": START,
        "interval_end": END,
        "partition": part,
    }
    validate_curated_bytes(
        _csv([_row(i) for i in range(12)]),
        run_name="green__account-ada",
        report=_report(12),
        **common,
    )
    body, _ = _breach_bad_id()
    failed = validate_curated_bytes(body, run_name=BREACH, report=_report(10), **common)
    store = LocalStore(tmp / "store")
    save_results(tmp / "gx", store)
    build_docs(store, tmp / "build")
    return _NewSite(tmp / "store" / "docs", failed)


def _open_offline(browser: Browser, path: Path, refused: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.route("**/*", _offline(refused))
    page = context.new_page()
    page.goto(path.as_uri(), timeout=30_000)
    page.wait_for_load_state("load")
    return context, page


def test_offline_validation_page_is_styled_marks_the_failure_and_filters(
    new_site: _NewSite, browser: Browser
) -> None:
    from playwright.sync_api import expect

    refused: list[str] = []
    context, page = _open_offline(browser, new_site.root / str(new_site.failed.docs_page), refused)
    try:
        # Bootstrap's stylesheet came from the site: its .btn-primary is not the browser default.
        colour = page.locator("label.btn-primary").first.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        # GX's Status column: bootstrap-table renders it with Font Awesome icons.
        failed_rows = page.locator("tr:has(i.fa-times)")
        expect(failed_rows.first).to_be_visible(timeout=10_000)
        passing_before = page.locator("tr:has(i.fa-check-circle):visible").count()
        page.get_by_text("Failed Only").click()
        page.wait_for_timeout(500)
        passing_after = page.locator("tr:has(i.fa-check-circle):visible").count()
        failing_after = page.locator("tr:has(i.fa-times):visible").count()
        text = " ".join(page.inner_text("body").split())
    finally:
        context.close()

    assert refused == []  # nothing left file://, not even an attempt
    assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)", "rgb(239, 239, 239)")
    assert passing_before > 0 and passing_after == 0 and failing_after >= 1
    # The page explains itself: the data asset, the rule, the finding in the contract's terms.
    assert "Data asset: None" not in text
    assert "source account-ada, interval 20240501T000000Z_20240502T000000Z" in text
    assert "curated/source=account-ada/interval=" in text
    assert "1 of 10 values of tweet_id (10 %) break the rule" in text
    assert "the contract allows at most 5 %" in text


def test_offline_index_tables_and_filters_work(new_site: _NewSite, browser: Browser) -> None:
    from playwright.sync_api import expect

    refused: list[str] = []
    context, page = _open_offline(browser, new_site.root / "index.html", refused)
    try:
        latest = page.locator("#latest tbody tr")
        expect(latest).to_have_count(2)
        expect(page.locator("#latest tr.failed .status")).to_have_text("\u2717 Failed")
        page.locator("#runs a.carry").first.click()
        page.wait_for_load_state("load")
        rows = page.locator("#runs tbody tr")
        expect(rows).to_have_count(2)
        page.select_option("select[name=status]", "failed")
        visible = page.locator("#runs tbody tr:visible")
        expect(visible).to_have_count(1)
        page.select_option("select[name=status]", "")
        page.select_option("select[name=source]", "account-ada")
        expect(page.locator("#runs tbody tr:visible")).to_have_count(2)
        page.locator("#runs tr.failed a").click()
        page.wait_for_url(f"**/{new_site.failed.docs_page}", timeout=30_000)
    finally:
        context.close()

    assert refused == []


def test_a_second_build_uploads_nothing_and_a_new_run_only_its_own_files(
    new_site: _NewSite, tmp_path: Path
) -> None:
    store_root = new_site.root.parent
    copy = tmp_path / "store"
    shutil.copytree(store_root, copy)
    store = LocalStore(copy)

    again = build_docs(store, tmp_path / "again")
    assert (again.rendered, again.written) == (0, [])

    old_page = copy / "docs" / str(new_site.failed.docs_page)
    old_page.write_text("an old page is never rendered again", encoding="utf-8")
    result = next((copy / "docs" / "results").rglob("*.json"))
    doc = json.loads(result.read_text(encoding="utf-8"))
    doc["meta"]["run_id"] = {
        "run_name": "next__account-ada",
        "run_time": "2099-12-31T00:00:00+00:00",
    }
    key = "docs/results/tweets_curated/next__account-ada/20991231T000000.000000Z/b.json"
    store.put(key, json.dumps(doc).encode(), "application/json")

    build = build_docs(store, tmp_path / "next")

    assert build.rendered == 1
    assert old_page.read_text(encoding="utf-8") == "an old page is never rendered again"
    pages = [k for k in build.written if k.startswith("docs/validations/")]
    assert pages == [
        "docs/validations/tweets_curated/next__account-ada/20991231T000000.000000Z/b.html"
    ]
    fragments = [k for k in build.written if k.startswith("docs/index/2099-12/runs/")]
    assert len(fragments) == 1
    assert set(build.written) - set(pages) - set(fragments) == {
        "docs/index/2099-12/001.html",
        "docs/index/months.json",
        "docs/index.html",
    }


def _result_in(store: LocalStore, run: str, when: str, template: dict[str, Any]) -> str:
    doc = json.loads(json.dumps(template))
    doc["meta"]["run_id"] = {"run_name": run, "run_time": when}
    stamp = when[:19].replace("-", "").replace(":", "") + ".000000Z"
    key = f"docs/results/tweets_curated/{run}/{stamp}/b.json"
    store.put(key, json.dumps(doc).encode(), "application/json")
    return key


def test_a_page_retention_expired_is_not_rendered_again(new_site: _NewSite, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(new_site.root.parent, copy)
    store = LocalStore(copy)
    template = json.loads(next((copy / "docs" / "results").rglob("*.json")).read_text("utf-8"))
    old = _result_in(store, "old__account-ada", "2020-01-01T00:00:00+00:00", template)
    new = _result_in(store, "new__account-ada", "2099-01-01T00:00:00+00:00", template)

    build = build_docs(store, tmp_path / "b", pages_since=datetime(2021, 1, 1, tzinfo=UTC))

    pages = {k for k in build.written if k.startswith("docs/validations/")}
    assert pages == {"docs/" + page_for(new.removeprefix("docs/"))}
    assert not (copy / "docs" / page_for(old.removeprefix("docs/"))).exists()
    assert store.exists(old)  # the evidence stays


def test_an_entry_lost_to_a_racing_build_comes_back(new_site: _NewSite, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(new_site.root.parent, copy)
    store = LocalStore(copy)
    template = json.loads(next((copy / "docs" / "results").rglob("*.json")).read_text("utf-8"))
    _result_in(store, "a__account-ada", "2099-12-30T00:00:00+00:00", template)
    before = {n: (copy / "docs" / n).read_bytes() for n in ("index.html", "index/months.json")}

    build_docs(store, tmp_path / "a")
    # A build that ran at the same time, from the index as it was, wrote last: "a" is not shown.
    for name, data in before.items():
        (copy / "docs" / name).write_bytes(data)
    assert "a__account-ada" not in (copy / "docs" / "index.html").read_text("utf-8")
    _result_in(store, "b__account-ada", "2099-12-31T00:00:00+00:00", template)

    build_docs(store, tmp_path / "b")

    month = (copy / "docs" / "index" / "2099-12" / "001.html").read_text("utf-8")
    top = (copy / "docs" / "index.html").read_text("utf-8")
    assert "a__account-ada" in month and "b__account-ada" in month
    assert "a__account-ada" in top and "b__account-ada" in top


def test_every_text_of_the_index_is_escaped(new_site: _NewSite, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(new_site.root.parent, copy)
    store = LocalStore(copy)
    template = json.loads(next((copy / "docs" / "results").rglob("*.json")).read_text("utf-8"))
    hostile = '<img src=x onerror="alert(1)">'
    template["suite_name"] = hostile
    _result_in(store, "evil__account-ada", "2099-11-30T00:00:00+00:00", template)

    build_docs(store, tmp_path / "b")

    for name in ("index.html", "index/2099-11/001.html"):
        page = (copy / "docs" / name).read_text("utf-8")
        assert hostile not in page
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_an_unreadable_result_is_named_skipped_and_tried_again(
    new_site: _NewSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from etl.adapters.cli import main

    copy = tmp_path / "store"
    shutil.copytree(new_site.root.parent, copy)
    store = LocalStore(copy)
    template = json.loads(next((copy / "docs" / "results").rglob("*.json")).read_text("utf-8"))
    good = _result_in(store, "good__account-ada", "2099-10-01T00:00:00+00:00", template)
    bad = "docs/results/tweets_curated/bad__account-ada/20991001T000000.000000Z/b.json"
    store.put(bad, b'{"meta": {}}', "application/json")

    code = main(["docs", "build", "--store", str(copy)])
    err = capsys.readouterr().err

    assert code == 1
    assert err.startswith(f"tweetpipe docs: cannot render {bad}: ")
    assert (copy / "docs" / page_for(good.removeprefix("docs/"))).is_file()
    assert not (copy / "docs" / page_for(bad.removeprefix("docs/"))).exists()
    # Mended, the next build renders it.
    store.put(bad, json.dumps(template).encode(), "application/json")
    assert main(["docs", "build", "--store", str(copy)]) == 0
    assert (copy / "docs" / page_for(bad.removeprefix("docs/"))).is_file()


def test_on_s3_a_run_scoped_build_reads_only_its_run(
    new_site: _NewSite, moto_server: Any, tmp_path: Path
) -> None:
    from etl.storage.store import open_store

    store = open_store(moto_server.store_url, check=True)
    results = sorted((new_site.root / "results").rglob("*.json"))
    for path in results:
        key = "docs/" + path.relative_to(new_site.root).as_posix()
        store.put(key, path.read_bytes(), "application/json")

    first = build_docs(store, tmp_path / "one", runs=["green__"])
    second = build_docs(store, tmp_path / "two")

    assert (first.results, first.rendered) == (1, 1)  # the breach run is not even listed
    assert (second.results, second.rendered) == (2, 1)  # the rest, without rendering green again
    objects = moto_server.objects()
    page = objects[f"tweetpipe/docs/{new_site.failed.docs_page}"].decode("utf-8")
    address = f"s3://{moto_server.bucket}/tweetpipe/curated/source=account-ada/interval="
    assert address in page
    assert "https://cdn" not in page and "https://unpkg" not in page
    assert build_docs(store, tmp_path / "three").written == []
