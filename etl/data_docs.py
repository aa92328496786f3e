"""The Great Expectations context the gates run in, and the Data Docs site built from it.

GX 1.x writes Data Docs only to a local directory, and tasks of the DAG share no disk. So every
checkpoint writes into a local site directory that holds both the HTML pages and, under
``results/``, the GX validation results as JSON (the validation-results store). A checkpoint task
uploads its results to the object store (:func:`save_results`); the final docs task downloads the
results of every run (:func:`build_docs_from_store`), lets GX rebuild the whole site from them, and
uploads the site under ``docs/`` (:func:`publish_docs`). The published site therefore lists every
validation, failed ones included, and carries its own evidence as JSON beside the pages.

Site layout (local directory and store prefix alike)::

    index.html                                   every validation and suite
    validations/<suite>/<run>/<time>/<batch>.html one page per validation
    expectations/<suite>.html                    the suites
    results/<suite>/<run>/<time>/<batch>.json     GX validation results (the source of the pages)
"""

from __future__ import annotations

import logging
import mimetypes
import os
from typing import TYPE_CHECKING, Any

from etl.suites import EXPECTATIONS_DIR, load_suite_file

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from great_expectations.data_context.data_context.abstract_data_context import (
        AbstractDataContext,
    )

    from etl.store import Store

DOCS_PREFIX = "docs/"
RESULTS_DIR = "results"
SITE_NAME = "tweetpipe"

_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}


def import_gx() -> Any:
    """Import Great Expectations with analytics off and its chatter turned down.

    Returns:
        The ``great_expectations`` module.
    """
    # GX reads this when it is imported; nothing of ours may leave loopback.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # GX logs every suite-parameter parse at INFO; under Airflow's INFO root that floods logs.
        gx_logger.setLevel(logging.WARNING)
    return gx


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
    results_prefix = f"{prefix}{RESULTS_DIR}/"
    for key in store.list(results_prefix):
        if key.endswith(".json"):
            store.download(key, work_dir / key[len(prefix) :])
    context = open_context(work_dir, suite_files(expectations_dir))
    context.build_data_docs(site_names=[SITE_NAME])
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


def suite_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``gx.ExpectationSuite`` built from a suite file.

    Args:
        doc: the parsed suite file.

    Returns:
        ``name``, ``expectations`` (copies) and ``meta``.
    """
    return {
        "name": doc["name"],
        "expectations": [dict(e) for e in doc["expectations"]],
        "meta": doc.get("meta") or {},
    }
