"""Task ``apply_retention``: the store's retention rules (``retention:`` in the pipeline config),
applied once per DAG run after the Data Docs are published.

Kept apart from :mod:`etl.adapters.airflow.tasks` so that module stays the per-source chain.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from etl.payloads import RetentionPayload

log = logging.getLogger(__name__)

_LOGGED = 50  # deletions named one per line in the task log; the rest are counted


def apply_retention(params: Mapping[str, Any]) -> RetentionPayload:
    """Task ``apply_retention``: delete what the config's retention rules let go, and say what.

    Args:
        params: the DAG run's params (``config``, ``store``, ``aws_conn_id``).

    Before Data Docs pages (or results) go, the index of their months is rendered again so that
    their rows say the page expired (:func:`etl.steps.quality.docs_site.mark_expired`).

    Returns:
        The retention report (counts, the datasets deleted, the raw windows kept because a
        curated partition derives from them); its lineage names every deleted dataset.

    Raises:
        AirflowFailException: the config cannot be read (not retried).
    """
    from etl.adapters.airflow.tasks import _config_path, _not_retried, open_pipeline_store
    from etl.config import load_config
    from etl.errors import ConfigError, PipelineError
    from etl.steps.quality.docs_site import mark_expired
    from etl.steps.retain import apply_retention as apply

    path = _config_path(params)
    try:
        policy = load_config(path).retention
    except ConfigError as exc:
        raise _not_retried(PipelineError(str(exc))) from None
    store = open_pipeline_store(params)
    # The index of the months whose pages go is rewritten first: no row links them.
    report = apply(store, policy, docs_index=lambda expiry: mark_expired(store, expiry))
    log.info("%s", report.summary())
    for deletion in report.deletions[:_LOGGED]:
        log.info(
            "deleted %s %s (%d objects, %d bytes): %s",
            deletion.area,
            deletion.name,
            deletion.objects,
            deletion.size,
            deletion.reason,
        )
    if len(report.deletions) > _LOGGED:
        log.info("... and %d more datasets", len(report.deletions) - _LOGGED)
    return report.to_payload(store)
