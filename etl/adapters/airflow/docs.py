"""Task ``build_docs``: this run's validations into the published Data Docs site."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from etl.adapters.airflow.tasks import _config_path, _workdir, open_pipeline_store
from etl.storage.keys import DOCS_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    from etl.payloads import BuildDocsPayload

_log = logging.getLogger(__name__)


def build_docs(params: Mapping[str, Any], run_id: str | None = None) -> BuildDocsPayload:
    """Task ``build_docs``: render this run's validations into the Data Docs site under ``docs/``.

    The same build as ``tweetpipe docs build``: only the results without a page are downloaded
    and rendered, the month's index chunk and the top index are rewritten, and only the files
    that changed are uploaded (:func:`etl.steps.quality.docs_site.build_docs`).

    Args:
        params: the DAG run's params.
        run_id: the Airflow run id: only this run's validations are looked for (the history is
            not listed); None looks at every result in the store.

    Returns:
        The store, the site's index key and how many files were published.
    """
    from etl.resources import contracts_dir
    from etl.steps.quality import run_prefix
    from etl.steps.quality.docs_site import build_docs as build_site_docs
    from etl.tools.contract_docs import build_site as build_contract_pages

    store = open_pipeline_store(params)
    with _workdir("docs") as tmp:
        pages = build_contract_pages([contracts_dir()], tmp / "contracts")
        extra = {f"contracts/{p.name}": p for p in pages}
        runs = None if run_id is None else [run_prefix(run_id)]
        build = build_site_docs(
            store,
            tmp / "build",
            prefix=DOCS_PREFIX,
            extra_files=extra,
            runs=runs,
            pages_since=_pages_since(params),
        )
    for key, reason in sorted(build.unreadable.items()):
        # Not a failure of this run: the site is published; the next build tries the file again.
        _log.warning("Data Docs: cannot render %s: %s", key, reason)
    return {"store": store.url, "index_key": build.index_key, "files": len(build.written)}


def _pages_since(params: Mapping[str, Any]) -> datetime | None:
    """When the oldest validation that keeps its page ran (``retention.docs_pages_days``)."""
    from etl.config import load_config

    config = _config_path(params)
    days = load_config(config).retention.docs_pages_days if config.is_file() else None
    return None if days is None else datetime.now(UTC) - timedelta(days=days)
