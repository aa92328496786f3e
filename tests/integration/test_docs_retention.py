"""Retention and the published Data Docs: an expired page keeps its row, never a dead link.

A site with validations in two months (a passing and a failing one each, cloned from two real
curated-gate results), built by ``tweetpipe docs build`` with the contract pages, the curated
partition and quarantine its pages link to present in the store, as a deployment has them. Then
``tweetpipe retention apply`` expires the older month's pages (and, in a second run, their
results). Every ``href``/``src`` of every published HTML page must resolve to a key of the store
(or be an anchor or an external address), before and after, on a local store and on moto's S3.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest

from etl.adapters.cli import main
from etl.config import RetentionPolicy
from etl.steps import retain
from etl.steps.quality import validate_curated_bytes
from etl.steps.quality.docs_assets import missing_assets
from etl.steps.quality.docs_index import STATUS_TEXT
from etl.steps.quality.docs_site import build_docs, mark_expired, page_for
from etl.storage.keys import docs_month, partition_for
from etl.storage.store import LocalStore, open_store
from tests.integration.test_checkpoints import END, START, _breach_bad_id, _csv, _report, _row

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Browser

    from etl.storage.keys import DocsExpiry
    from etl.storage.store import Store, StoredObject

SOURCE = "account-ada"
NOW = datetime.now(UTC).replace(microsecond=0)
# The older month: wholly older than 60 days (its first day lies 90 to 120 days back).
OLD_MONTH_START = (NOW - timedelta(days=90)).replace(day=1, hour=0, minute=0, second=0)
OLD_TIMES = {
    "passed": OLD_MONTH_START + timedelta(hours=2),
    "failed": OLD_MONTH_START + timedelta(days=5),
}
NEW_TIMES = {"passed": NOW - timedelta(days=2), "failed": NOW - timedelta(days=1)}
OLD_MONTH = docs_month(OLD_MONTH_START)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A passing and a failing real curated-gate result (GX runs once for the module)."""
    missing = missing_assets()
    if missing:
        pytest.fail(f"page assets missing ({missing[0].site_path}): run make env")
    tmp = tmp_path_factory.mktemp("docs-retention-gx")
    common: dict[str, Any] = {
        "docs_dir": tmp / "gx",
        "interval_start": START,
        "interval_end": END,
        "partition": partition_for(SOURCE, START, END),
    }
    green = _csv([_row(i) for i in range(12)])
    validate_curated_bytes(green, run_name=f"green__{SOURCE}", report=_report(12), **common)
    body, _ = _breach_bad_id()
    validate_curated_bytes(body, run_name=f"red__{SOURCE}", report=_report(10), **common)
    docs = [json.loads(p.read_text("utf-8")) for p in (tmp / "gx" / "results").rglob("*.json")]
    found = {("passed" if d["success"] else "failed"): d for d in docs}
    assert set(found) == {"passed", "failed"}  # the premise of every test below
    return found


def _place(store: Store, doc: dict[str, Any], run: str, when: datetime) -> str:
    """A copy of ``doc`` saved as the result of ``run`` at ``when`` (as a gate saves it)."""
    copy = json.loads(json.dumps(doc))
    copy["meta"]["run_id"] = {"run_name": run, "run_time": when.isoformat()}
    stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
    key = f"docs/results/tweets_curated/{run}/{stamp}/tweetpipe-tweets_curated.json"
    store.put(key, json.dumps(copy).encode(), "application/json")
    return key


@dataclass
class _Site:
    store: Store
    url: str
    old: dict[str, str]  # status -> result key
    new: dict[str, str]


def _site(store: Store, url: str, templates: dict[str, dict[str, Any]]) -> _Site:
    part = partition_for(SOURCE, START, END)
    # What the pages link outside the site: present in a deployment (the gate passed or not).
    store.put(part.curated_key, b"tweet_id\n1\n", "text/csv")
    store.put(part.quarantine_key, b"", "application/x-ndjson")
    old = {s: _place(store, templates[s], f"old-{s}__{SOURCE}", t) for s, t in OLD_TIMES.items()}
    new = {s: _place(store, templates[s], f"new-{s}__{SOURCE}", t) for s, t in NEW_TIMES.items()}
    assert main(["docs", "build", "--store", url]) == 0
    return _Site(store, url, old, new)


def _local_site(tmp_path: Path, templates: dict[str, dict[str, Any]]) -> _Site:
    """The site on a local store under ``tmp_path/store``."""
    (tmp_path / "store").mkdir()
    return _site(LocalStore(tmp_path / "store"), str(tmp_path / "store"), templates)


@pytest.fixture(params=["local", "s3"])
def site(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    templates: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> _Site:
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "AIRFLOW__OPENLINEAGE__TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # an S3 run's lineage goes to the console, nothing to the repo
    if request.param == "local":
        url = str(tmp_path / "store")
        (tmp_path / "store").mkdir()
    else:
        url = request.getfixturevalue("moto_server").store_url
    return _site(open_store(url, check=True), url, templates)


class _Links(HTMLParser):
    """Every ``href`` and ``src`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("href", "src") and v]


# An address with a scheme (https:, mailto:, data:, javascript:) or an anchor of the page itself.
_NOT_A_KEY = re.compile(r"#|[A-Za-z][A-Za-z0-9+.-]*:")


def _dead_links(store: Store) -> dict[str, list[str]]:
    """Published HTML page -> its links that name no key of the store."""
    keys = set(store.list(""))
    dead: dict[str, list[str]] = {}
    pages = sorted(k for k in keys if k.startswith("docs/") and k.endswith(".html"))
    assert len(pages) >= 8  # index, parts, validation, suite and contract pages
    for key in pages:
        parser = _Links()
        parser.feed(store.get(key).decode("utf-8"))
        for link in parser.found:
            path = unquote(link.split("#", 1)[0].split("?", 1)[0])
            if _NOT_A_KEY.match(link) or not path:
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(key), path))
            if target not in keys:
                dead.setdefault(key, []).append(link)
    return dead


def _rows(page: str) -> dict[str, str]:
    """Run name -> its row's HTML, of a runs table."""
    rows = re.findall(r"<tr class=\"[a-z]+\" data-status=.*?</tr>", page, re.DOTALL)
    found = {}
    for row in rows:
        name = re.search(r"(?:old|new)-[a-z]+__" + SOURCE, row)
        if name is not None:  # not a month's row of index.html
            found[name.group(0)] = row
    return found


def _retention(site: _Site, *flags: str) -> None:
    assert main(["retention", "apply", "--store", site.url, *flags]) == 0


def _text(store: Store, key: str) -> str:
    return store.get(key).decode("utf-8")


def test_expired_pages_keep_their_rows_and_leave_no_dead_link(site: _Site) -> None:
    store = site.store
    assert _dead_links(store) == {}  # the site as built links nothing missing
    fragments = {k: store.get(k) for k in store.list("docs/index/") if "/runs/" in k}

    _retention(site, "--docs-pages-days", "60")

    for status, key in site.old.items():
        assert not store.exists("docs/" + page_for(key.removeprefix("docs/"))), status
        assert store.exists(key)  # the evidence stays
    assert all(store.exists("docs/" + page_for(k.removeprefix("docs/"))) for k in site.new.values())
    assert _dead_links(store) == {}
    # Retention rewrote no build's entries.
    assert {k: store.get(k) for k in store.list("docs/index/") if "/runs/" in k} == fragments
    month = _rows(_text(store, f"docs/index/{OLD_MONTH}/001.html"))
    assert set(month) == {f"old-passed__{SOURCE}", f"old-failed__{SOURCE}"}
    for status, key in site.old.items():
        row = month[f"old-{status}__{SOURCE}"]
        assert f'data-status="{status}"' in row and STATUS_TEXT[status] in row
        assert "page expired" in row and 'data-expired="page"' in row
        assert f'href="../../{key.removeprefix("docs/")}"' in row  # the result JSON, kept
        assert "validations/" not in row
    top = _text(store, "docs/index.html")
    assert f"<td>{OLD_MONTH}</td>" in top and "4 validations, 2 failed." in top
    latest = _rows(top)
    assert len(latest) == 4 and "page expired" in latest[f"old-failed__{SOURCE}"]
    for status, key in site.new.items():
        row = latest[f"new-{status}__{SOURCE}"]
        assert f'href="{page_for(key.removeprefix("docs/"))}"' in row
        assert "expired" not in row


def test_expired_results_too_leave_the_rows_without_links(site: _Site) -> None:
    store = site.store
    _retention(site, "--docs-pages-days", "60")

    # Later the results go as well (the rule for them is longer; here it has come).
    _retention(site, "--docs-pages-days", "60", "--docs-results-days", "80")

    assert not any(store.exists(k) for k in site.old.values())
    assert all(store.exists(k) for k in site.new.values())
    assert _dead_links(store) == {}
    expired = json.loads(_text(store, f"docs/index/{OLD_MONTH}/expired.json"))
    assert set(expired) == {"pages_before", "results_before"} and None not in expired.values()
    for page in (f"docs/index/{OLD_MONTH}/001.html", "docs/index.html"):
        rows = _rows(_text(store, page))
        for status in ("passed", "failed"):
            row = rows[f"old-{status}__{SOURCE}"]
            assert STATUS_TEXT[status] in row and "page and result expired" in row
            assert "<a " not in row and 'data-expired="all"' in row


def _build_run(store: Store, tmp_path: Path, run: str) -> None:
    """The DAG's build: its own run's results only (so no expired page is rendered again)."""
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
    build_docs(store, tmp_path / "work", runs=[run])


def test_later_builds_and_a_full_rebuild_keep_the_rows_and_link_nothing_missing(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    site = _local_site(tmp_path, templates)
    store = site.store
    _retention(site, "--docs-pages-days", "60")
    # A validation in the month after the expired one: its build renders the expired month again
    # (a build refreshes the month before its newest), which must read what retention recorded.
    after = (OLD_MONTH_START + timedelta(days=40)).replace(day=1) + timedelta(hours=3)
    assert docs_month(after) != OLD_MONTH
    _place(store, templates["failed"], f"new-later__{SOURCE}", after)

    _build_run(store, tmp_path, f"new-later__{SOURCE}")

    assert _dead_links(store) == {}
    old_month = f"docs/index/{OLD_MONTH}/001.html"
    assert "page expired" in _text(store, old_month)

    # A full rebuild (the pages retention expired are not rendered again) keeps every month.
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
    build_docs(store, tmp_path / "work", full=True, pages_since=NOW - timedelta(days=60))
    assert _dead_links(store) == {}
    assert set(_rows(_text(store, old_month))) == {f"old-passed__{SOURCE}", f"old-failed__{SOURCE}"}
    assert "5 validations, 3 failed." in _text(store, "docs/index.html")


def test_a_build_racing_retention_loses_no_entry(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    site = _local_site(tmp_path, templates)
    store = site.store
    before = {n: store.get(f"docs/{n}") for n in ("index.html", "index/months.json")}
    racing = _place(store, templates["passed"], f"new-racing__{SOURCE}", NOW)
    _build_run(store, tmp_path, f"new-racing__{SOURCE}")
    # Retention read the index before that build wrote it, and wrote last.
    for name, data in before.items():
        store.put(f"docs/{name}", data)
    _retention(site, "--docs-pages-days", "60")
    assert f"new-racing__{SOURCE}" not in _text(store, "docs/index.html")
    assert _dead_links(store) == {}

    # The next build shows it again (from its fragment, which retention never touches).
    _place(store, templates["passed"], f"new-next__{SOURCE}", NOW + timedelta(seconds=1))
    _build_run(store, tmp_path, f"new-next__{SOURCE}")

    top = _text(store, "docs/index.html")
    assert f"new-racing__{SOURCE}" in top and f"new-next__{SOURCE}" in top
    month = _text(store, f"docs/index/{docs_month(NOW)}/001.html")
    assert f'href="../../{page_for(racing.removeprefix("docs/"))}"' in month
    assert _dead_links(store) == {}


def test_an_unreadable_retention_record_costs_links_never_a_dead_one(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    site = _local_site(tmp_path, templates)
    store = site.store
    _retention(site, "--docs-pages-days", "60")
    store.put(f"docs/index/{OLD_MONTH}/expired.json", b'{"pages_before": "<img src=x>"}')
    store.put("docs/index/months.json", b"{damaged")  # every month is rendered again

    _place(store, templates["passed"], f"new-again__{SOURCE}", NOW)
    _build_run(store, tmp_path, f"new-again__{SOURCE}")

    assert _dead_links(store) == {}
    rows = _rows(_text(store, f"docs/index/{OLD_MONTH}/001.html"))
    assert len(rows) == 2
    assert all("page and result expired" in r and "<a " not in r for r in rows.values())
    assert "<img src=x>" not in _text(store, "docs/index.html")


# --- what it costs ---------------------------------------------------------------------------------
class _Counting:
    """A store that counts its calls by operation and the keys they name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in ("get", "put", "put_file", "exists", "list", "scan", "delete_many"):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            target = args[0] if args else ""
            names = target if isinstance(target, list) else [target]
            self.calls += [(name, str(n)) for n in names]
            return method(*args, **kwargs)

        return counted

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        self.calls.append(("scan", prefix))
        return self.inner.scan(prefix)

    def index_calls(self) -> list[tuple[str, str]]:
        return [(op, key) for op, key in self.calls if key.startswith("docs/index")]


def test_a_run_that_expires_nothing_does_no_index_work_and_one_month_costs_its_month(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    inner = _local_site(tmp_path, templates).store
    store = _Counting(inner)
    told: list[DocsExpiry] = []

    def index(expiry: DocsExpiry) -> list[str]:
        told.append(expiry)
        return mark_expired(store, expiry)  # type: ignore[arg-type]

    keep = RetentionPolicy(docs_pages_days=200)
    quiet = retain.apply_retention(store, keep, docs_index=index, now=NOW)  # type: ignore[arg-type]

    assert (told, quiet.index_written, store.index_calls()) == ([], [], [])
    assert "Data Docs index" not in quiet.summary()

    expire = RetentionPolicy(docs_pages_days=60)
    report = retain.apply_retention(store, expire, docs_index=index, now=NOW)  # type: ignore[arg-type]

    assert [e.months for e in told] == [frozenset({OLD_MONTH})]
    assert report.index_written == [
        f"docs/index/{OLD_MONTH}/expired.json",
        f"docs/index/{OLD_MONTH}/001.html",
        "docs/index/months.json",
        "docs/index.html",
    ]
    ops = [op for op, _ in store.index_calls()]
    # months.json (exists, get); the month's folder listed once and its one fragment read; the
    # four files written. Nothing of any other month.
    assert sorted(ops) == sorted(["exists", "get", "list", "get", "put", "put", "put", "put"])
    assert all(OLD_MONTH in k or k.count("/") <= 2 for _, k in store.index_calls())
    assert "rewrote 4 Data Docs index files" in report.summary()


def test_a_build_finding_no_record_asks_for_none(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    inner = _local_site(tmp_path, templates).store
    store = _Counting(inner)
    _place(inner, templates["passed"], f"new-quiet__{SOURCE}", NOW)

    build_docs(store, tmp_path / "work", runs=[f"new-quiet__{SOURCE}"])  # type: ignore[arg-type]

    # The months it renders say by their listing that they have no record. Only because this
    # site is sparse (its latest 20 runs reach back to the old month, which the build does not
    # render) is that month's record looked for: one HEAD. Daily runs never reach that far.
    asked = [(op, k) for op, k in store.calls if k.endswith("expired.json")]
    assert asked == [("exists", f"docs/index/{OLD_MONTH}/expired.json")]


def test_a_dry_run_rewrites_no_index(tmp_path: Path, templates: dict[str, dict[str, Any]]) -> None:
    site = _local_site(tmp_path, templates)
    store = site.store
    before = {k: store.get(k) for k in store.list("docs/index")}

    _retention(site, "--docs-pages-days", "60", "--dry-run")

    assert {k: store.get(k) for k in store.list("docs/index")} == before


def test_offline_an_expired_row_is_listed_filtered_and_opens_its_result(
    tmp_path: Path, templates: dict[str, dict[str, Any]], browser: Browser
) -> None:
    from playwright.sync_api import expect

    from tests.integration.test_data_docs_offline import _open_offline

    site = _local_site(tmp_path, templates)
    _retention(site, "--docs-pages-days", "60")
    part = tmp_path / "store" / "docs" / "index" / OLD_MONTH / "001.html"

    refused: list[str] = []
    context, page = _open_offline(browser, part, refused)
    try:
        expect(page.locator("#runs tbody tr[data-expired=page]")).to_have_count(2)
        page.select_option("select[name=status]", "failed")
        shown = page.locator("#runs tbody tr:visible")
        expect(shown).to_have_count(1)
        expect(shown.locator(".status")).to_have_text(STATUS_TEXT["failed"])
        expect(shown).to_contain_text("page expired")
        shown.locator("a.result").click()
        page.wait_for_url("**/*.json", timeout=30_000)
        opened = page.url
    finally:
        context.close()

    assert refused == []
    assert opened.endswith(site.old["failed"].removeprefix("docs/"))


def test_the_dag_task_rewrites_the_index_before_it_deletes(
    tmp_path: Path, templates: dict[str, dict[str, Any]]
) -> None:
    from etl.adapters.airflow import retention

    store = _local_site(tmp_path, templates).store
    config = tmp_path / "pipeline.yaml"
    config.write_text("retention:\n  docs_pages_days: 60\n", encoding="utf-8")

    payload = retention.apply_retention({"store": str(tmp_path / "store"), "config": str(config)})

    assert payload["by_area"]["docs_pages"] == 2
    assert _dead_links(store) == {}
    assert "page expired" in _text(store, f"docs/index/{OLD_MONTH}/001.html")
