"""The Great Expectations context the gates run in, and the Data Docs site built from it.

The published site is built by :func:`etl.steps.quality.docs_site.build_docs` (incrementally,
month-split index, pinned offline assets). :func:`build_docs_from_store` and :func:`publish_docs`
below are the full GX rebuild it replaced, kept for the benchmark's comparison and for a local
GX site; a checkpoint still writes into a local GX site (:func:`open_context`).

GX 1.x writes Data Docs only to a local directory, and tasks of the DAG share no disk. So every
checkpoint writes into a local site directory that holds both the HTML pages and, under
``results/``, the GX validation results as JSON (the validation-results store). A checkpoint task
uploads its results to the object store (:func:`save_results`); the final docs task downloads the
results of every run (:func:`build_docs_from_store`), lets GX rebuild the whole site from them, and
uploads the site under ``docs/`` (:func:`publish_docs`). The published site therefore lists every
validation, failed ones included, and carries its own evidence as JSON beside the pages.

GX's index fills its table of validations with jQuery and bootstrap-table loaded from CDNs, so
offline (CI, air-gapped users) that table stays empty. :func:`add_runs_section` therefore writes
the same runs into ``index.html`` as plain HTML, built from the result JSON files; a few lines of
inline script hide it again when GX's own table did render.

Site layout (local directory and store prefix alike)::

    index.html                                   every validation and suite
    validations/<suite>/<run>/<time>/<batch>.html one page per validation
    expectations/<suite>.html                    the suites
    results/<suite>/<run>/<time>/<batch>.json     GX validation results (the source of the pages)
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from etl.contracts.suites import (
    CRITICAL,
    EXPECTATIONS_DIR,
    import_gx,
    load_suite_file,
    suite_kwargs,
)
from etl.storage.keys import DOCS_PREFIX, RESULTS_DIR, docs_results_prefix

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from great_expectations.data_context.data_context.abstract_data_context import (
        AbstractDataContext,
    )

    from etl.storage.store import Store

SITE_NAME = "tweetpipe"

RUNS_SECTION_ID = "tweetpipe-runs"

_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
_RUNS_START = f"<!-- {RUNS_SECTION_ID}: start -->"
_RUNS_END = f"<!-- {RUNS_SECTION_ID}: end -->"
_RUNS_BLOCK = re.compile(re.escape(_RUNS_START) + ".*?" + re.escape(_RUNS_END) + "\n?", re.S)
# GX's first index section; the runs go right above it, in the page's main column.
_GX_FIRST_SECTION = re.compile(r'<div id="section-1"')
# RFC 3986 allows these in a path; run names such as ``…__source=x`` keep their readable form.
_PATH_SAFE = "/!$&'()*+,;=:@"
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)


def open_context(docs_dir: Path, suites: Iterable[dict[str, Any]] = ()) -> AbstractDataContext:
    """An ephemeral GX context whose results and Data Docs live in ``docs_dir``.

    Suites, checkpoints and validation definitions stay in memory (they come from
    ``expectations/`` every time); validation results go to ``docs_dir/results`` and the site to
    ``docs_dir``, so several runs into the same directory accumulate in one index.

    Args:
        docs_dir: the local Data Docs site directory (created if missing).
        suites: suite files (parsed) to add, so the site lists them.

    Returns:
        The context.
    """
    gx = import_gx()
    from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig

    docs_dir.mkdir(parents=True, exist_ok=True)

    def memory(store_class: str) -> dict[str, Any]:
        return {"class_name": store_class, "store_backend": {"class_name": "InMemoryStoreBackend"}}

    config = DataContextConfig(
        stores={
            "expectations_store": memory("ExpectationsStore"),
            "checkpoint_store": memory("CheckpointStore"),
            "validation_definition_store": memory("ValidationDefinitionStore"),
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir / RESULTS_DIR),
                },
            },
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context: AbstractDataContext = gx.get_context(mode="ephemeral", project_config=config)
    for doc in suites:
        context.suites.add(gx.ExpectationSuite(**suite_kwargs(doc)))
    return context


def suite_files(expectations_dir: Path = EXPECTATIONS_DIR) -> list[dict[str, Any]]:
    """Every suite file in ``expectations_dir``, parsed, by name.

    Args:
        expectations_dir: where the suites live.

    Returns:
        The suites.
    """
    return [
        load_suite_file(p.stem, expectations_dir) for p in sorted(expectations_dir.glob("*.json"))
    ]


def _site_files(root: Path, under: str = "") -> list[Path]:
    base = root / under if under else root
    if not base.is_dir():
        return []
    files = (p for p in base.rglob("*") if p.is_file())
    # GX drops a .ge_store_backend_id beside its stores; it is local bookkeeping, not the site.
    return sorted(
        p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _upload(files: list[Path], root: Path, store: Store, prefix: str) -> list[str]:
    keys = []
    for path in files:
        key = prefix + path.relative_to(root).as_posix()
        ctype = _CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        store.put_file(key, path, content_type=ctype or "application/octet-stream")
        keys.append(key)
    return keys


def save_results(docs_dir: Path, store: Store, prefix: str = DOCS_PREFIX) -> list[str]:
    """Upload the GX validation results of a local site to the store.

    A checkpoint task calls this after its validation, passed or failed, so that the docs task can
    rebuild the full site without sharing disk with it.

    Args:
        docs_dir: the local site directory the checkpoint wrote into.
        store: the object store.
        prefix: the docs site's key prefix in the store.

    Returns:
        The keys written (``docs/results/<suite>/<run>/<time>/<batch>.json``).
    """
    return _upload(_site_files(docs_dir, RESULTS_DIR), docs_dir, store, prefix)


def build_docs_from_store(
    store: Store,
    work_dir: Path,
    prefix: str = DOCS_PREFIX,
    expectations_dir: Path = EXPECTATIONS_DIR,
) -> Path:
    """Rebuild the whole Data Docs site from every validation result in the store.

    Args:
        store: the object store holding ``<prefix>results/...`` from :func:`save_results`.
        work_dir: an empty local directory to build the site in.
        prefix: the docs site's key prefix in the store.
        expectations_dir: the suites to list in the site.

    Returns:
        The site directory (``work_dir``); ``index.html`` lists every validation found.
    """
    for key in store.list(docs_results_prefix(prefix)):
        if key.endswith(".json"):
            store.download(key, work_dir / key[len(prefix) :])
    context = open_context(work_dir, suite_files(expectations_dir))
    context.build_data_docs(site_names=[SITE_NAME])
    add_runs_section(work_dir)
    return work_dir


def publish_docs(docs_dir: Path, store: Store, prefix: str = DOCS_PREFIX) -> list[str]:
    """Upload a local Data Docs site (pages, assets and results) under ``prefix`` in the store.

    Args:
        docs_dir: the local site directory (``index.html`` at its root).
        store: the object store.
        prefix: where the site goes (``docs/`` gives ``docs/index.html``).

    Returns:
        The keys written, sorted.
    """
    return _upload(_site_files(docs_dir), docs_dir, store, prefix)


@dataclass(frozen=True)
class ValidationRun:
    """One validation of a Data Docs site, as read from its result JSON.

    Attributes:
        suite: the expectation suite's name.
        data_asset: ``<data source> / <data asset>`` the batch came from.
        run_name: the run's name (the Airflow run and source, for the DAG's gates).
        run_time: when the run started (UTC).
        success: whether every expectation passed (GX's verdict, warnings included).
        evaluated: how many expectations ran.
        unsuccessful: how many of them failed.
        critical_failures: how many of the failed ones are ``critical`` (GX's default severity);
            only these fail the pipeline's gate.
        page: the validation page's path in the site, or None when GX wrote none.
    """

    suite: str
    data_asset: str
    run_name: str
    run_time: datetime
    success: bool
    evaluated: int
    unsuccessful: int
    critical_failures: int
    page: str | None

    @property
    def status(self) -> str:
        """``passed``, ``warning`` (only non-critical expectations failed) or ``failed``."""
        if self.success:
            return "passed"
        # GX failing a validation with no failed expectation listed can only be an error.
        return "warning" if self.unsuccessful and not self.critical_failures else "failed"


def validation_runs(site_dir: Path) -> list[ValidationRun]:
    """Every validation result under ``site_dir/results``, newest first.

    Args:
        site_dir: a Data Docs site directory (see the module's layout).

    Returns:
        The runs, by run time descending (then by result path).

    Raises:
        ValueError: a result file is not a GX validation result; the message names the file.
    """
    files = [p for p in _site_files(site_dir, RESULTS_DIR) if p.suffix == ".json"]
    runs = [_read_run(site_dir, path) for path in files]
    # Stable sort: equal run times keep the path order.
    return sorted(runs, key=lambda r: r.run_time, reverse=True)


def _read_run(site_dir: Path, path: Path) -> ValidationRun:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        meta = doc["meta"]
        run_id = meta["run_id"]
        run_time = datetime.fromisoformat(run_id["run_time"])
        stats = doc.get("statistics") or {}
        batch = meta.get("active_batch_definition") or {}
        success = doc["success"]
        critical = sum(
            (r.get("expectation_config") or {}).get("severity", CRITICAL) == CRITICAL
            for r in doc.get("results") or []
            if r.get("success") is not True
        )
        asset = " / ".join(
            str(batch[k]) for k in ("datasource_name", "data_asset_name") if batch.get(k)
        )
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise ValueError(f"validation result {path}: not a GX validation result ({exc})") from exc
    relative = path.relative_to(site_dir / RESULTS_DIR)
    page = "validations/" + relative.with_suffix(".html").as_posix()
    return ValidationRun(
        suite=str(doc.get("suite_name") or relative.parts[0]),
        data_asset=asset,
        run_name=str(run_id.get("run_name") or ""),
        run_time=_as_utc(run_time),
        success=success is True,
        evaluated=int(stats.get("evaluated_expectations") or 0),
        unsuccessful=int(stats.get("unsuccessful_expectations") or 0),
        critical_failures=critical,
        page=page if (site_dir / page).is_file() else None,
    )


def _as_utc(moment: datetime) -> datetime:
    # GX writes aware times; a naive one can only be UTC (GX takes run times from utcnow).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def add_runs_section(site_dir: Path) -> int:
    """Write every validation run into the site's ``index.html`` as a static HTML table.

    The table (``<section id="tweetpipe-runs">``) needs neither JavaScript nor network: suite,
    data asset, run name, run time, status and the link to each validation page, newest first,
    failed runs marked (and runs whose failed expectations are all warnings, which GX calls
    failed but the gates let pass, marked as such). Running it again replaces the section, so a rebuilt site has one.

    Args:
        site_dir: a Data Docs site directory GX has built (``index.html`` at its root).

    Returns:
        How many runs the table lists.

    Raises:
        FileNotFoundError: the site has no ``index.html``.
        ValueError: a result file is not a GX validation result (the message names it).
    """
    index = site_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"no Data Docs index at {index}: build the site first")
    runs = validation_runs(site_dir)
    page = _RUNS_BLOCK.sub("", index.read_text(encoding="utf-8"))
    block = _runs_block(runs)
    anchor = _GX_FIRST_SECTION.search(page)
    if anchor:
        at = anchor.start()
    else:
        body = _BODY_OPEN.search(page)
        at = body.end() if body else 0
    index.write_text(page[:at] + block + page[at:], encoding="utf-8")
    return len(runs)


_RUNS_STYLE = """<style>
#tweetpipe-runs { font-family: system-ui, sans-serif; margin: 0 0 2rem; }
#tweetpipe-runs table { border-collapse: collapse; width: 100%; }
#tweetpipe-runs th, #tweetpipe-runs td {
  border: 1px solid #c8c8c8; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top;
}
#tweetpipe-runs thead th { background: #f0f0f0; }
#tweetpipe-runs tr.failed td { background: #fde7e9; }
#tweetpipe-runs tr.failed .status { color: #a4001d; font-weight: bold; }
#tweetpipe-runs tr.warning td { background: #fff6d6; }
#tweetpipe-runs tr.warning .status { color: #7a5200; }
#tweetpipe-runs tr.passed .status { color: #17692a; }
</style>"""

# Runs once the page's own scripts have: when jQuery and bootstrap-table came from the CDNs and
# GX's table has rows, that table shows the same runs, with search and filters.
_RUNS_SCRIPT = """<script>
(function () {
  var section = document.currentScript.parentNode;
  document.addEventListener("DOMContentLoaded", function () {
    var jq = window.jQuery;
    var gxRows = document.querySelector(
      ".ge-index-page-validation-results-table tbody tr[data-index]");
    if (jq && jq.fn && jq.fn.bootstrapTable && gxRows) {
      section.style.display = "none";
    }
  });
})();
</script>"""


def _runs_block(runs: list[ValidationRun]) -> str:
    failed = sum(r.status == "failed" for r in runs)
    warned = sum(r.status == "warning" for r in runs)
    title = f"Validation runs: {len(runs)}, {failed} failed"
    if warned:
        title += f", {warned} with failed warnings only"
    if runs:
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "Run time (UTC)",
                "Suite",
                "Data asset",
                "Run",
                "Status",
                "Failed expectations",
            )
        )
        rows = "\n".join(_run_row(r) for r in runs)
        body = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    else:
        body = "<p>No validation runs yet.</p>"
    return (
        f'{_RUNS_START}\n<section id="{RUNS_SECTION_ID}" aria-labelledby="{RUNS_SECTION_ID}-title">'
        f'\n{_RUNS_STYLE}\n<h2 id="{RUNS_SECTION_ID}-title">{html.escape(title)}</h2>\n{body}\n'
        f"{_RUNS_SCRIPT}\n</section>\n{_RUNS_END}\n"
    )


_STATUS_TEXT = {
    "passed": "&#10003; Passed",
    "warning": "&#9888; Warnings only",
    "failed": "&#10007; Failed",
}


def _run_row(run: ValidationRun) -> str:
    esc = html.escape
    name = esc(run.run_name)
    if run.page:
        name = f'<a href="{esc(quote(run.page, safe=_PATH_SAFE))}">{name}</a>'
    status = _STATUS_TEXT[run.status]
    cells = (
        f'<time datetime="{run.run_time.isoformat()}">'
        f"{run.run_time.strftime('%Y-%m-%d %H:%M:%S')}</time>",
        esc(run.suite),
        esc(run.data_asset),
        name,
        status,
        f"{run.unsuccessful} of {run.evaluated}",
    )
    tds = "".join(
        f'<td class="status">{c}</td>' if i == 4 else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f'<tr class="{run.status}">{tds}</tr>'
