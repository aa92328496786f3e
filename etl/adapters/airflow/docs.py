"""Task ``build_docs``: this run's validations into the published Data Docs site."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.adapters.airflow.tasks import _config_path, _workdir, open_pipeline_store

if TYPE_CHECKING:
    from collections.abc import Mapping

    from etl.payloads import BuildDocsPayload

_log = logging.getLogger(__name__)


def build_docs(params: Mapping[str, Any], run_id: str | None = None) -> BuildDocsPayload:
    """Task ``build_docs``: render this run's validations into the Data Docs site under ``docs/``.

    The build ``tweetpipe docs build`` runs too (:func:`etl.adapters.docs_build.build_and_publish`),
    limited to this run: only the results without a page are downloaded and rendered, the month's
    index chunk and the top index are rewritten, and only the files that changed are uploaded.

    Args:
        params: the DAG run's params.
        run_id: the Airflow run id: only this run's validations are looked for (the history is
            not listed); None looks at every result in the store.

    Returns:
        The store, the site's index key and how many files were published.
    """
    from etl.adapters.docs_build import build_and_publish
    from etl.steps.quality import run_prefix

    store = open_pipeline_store(params)
    runs = None if run_id is None else [run_prefix(run_id)]
    with _workdir("docs") as tmp:
        build = build_and_publish(store, tmp, runs=runs, pages_since=_pages_since(params))
    for key, reason in sorted(build.unreadable.items()):
        # Not a failure of this run: the site is published; the next build tries the file again.
        _log.warning("Data Docs: cannot render %s: %s", key, reason)
    return {"store": store.url, "index_key": build.index_key, "files": len(build.written)}


def _pages_since(params: Mapping[str, Any]) -> datetime | None:
    """When the oldest validation that keeps its page ran (``retention.docs_pages_days``)."""
    from etl.config import load_config

    config = _config_path(params)
    if not config.is_file():
        return None
    return load_config(config).retention.pages_before(datetime.now(UTC))
