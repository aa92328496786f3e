"""The manifest of a landed window: what was asked, what landed, what was kept aside, and how.

It is written last, after every page, so a window with a manifest is complete; the request
parameters appear as sent on the wire, never with credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl import xapi
from etl.steps.extract.paging import newest_of

if TYPE_CHECKING:
    from etl.steps.extract.cost import CostCounts
    from etl.steps.extract.paging import SourceRun

MANIFEST_VERSION = 1


def build_manifest(
    job: SourceRun,
    params: dict[str, Any],
    finished: datetime,
    *,
    carried: CostCounts,
    incomplete: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest of a window whose pages are all landed (or of one a spending limit stopped).

    Args:
        job: the source's run, after :func:`~etl.steps.extract.paging.paginate`.
        params: the request parameters (tweepy's names), as
            :func:`~etl.steps.extract.paging.request_params` made them.
        finished: when the last page landed.
        carried: what earlier calls of the window read (one a spending limit stopped), added
            to this call's reads in the manifest's ``cost``.
        incomplete: why the window stopped before its end (``limit``, ``name``, ``reason``), or
            None when it is complete.

    Returns:
        The manifest, ready for :func:`etl.steps.extract.land.write_manifest`.
    """
    stats = job.context.stats
    path = xapi.PATHS[job.endpoint]
    return {
        "manifest_version": MANIFEST_VERSION,
        "complete": incomplete is None,
        "incomplete": incomplete,
        "source": {"kind": job.source.kind, "value": job.source.value, "slug": job.source.slug},
        "endpoint": job.endpoint,
        "api_base_url": job.client.base_url,
        "request": {"method": "GET", "path": path, "params": _manifest_params(params)},
        "user": job.user or None,
        "window": {
            "label": job.label,
            "start": job.window.start.astimezone(UTC).isoformat() if job.window.start else None,
            "end": job.window.end.astimezone(UTC).isoformat() if job.window.end else None,
            "since_id": job.since_id,
        },
        "started_at": job.started.isoformat(),
        "finished_at": finished.isoformat(),
        "pages": [p.entry() for p in job.pages],
        "next_token_chain": [p.next_token for p in job.pages],
        "rejected": list(job.rejected),
        "newest_id": newest_of(*(p.newest_id for p in job.pages)),
        "totals": {
            "pages": len(job.pages),
            "tweets": sum(p.tweets for p in job.pages),
            "api_errors": sum(p.api_errors for p in job.pages),
            "requests": stats.requests,
            "user_lookups": stats.user_lookups,
            "retries": stats.retries,
            "rate_limit_waits": stats.rate_limit_waits,
            "wait_seconds": round(stats.wait_seconds, 3),
            "resumed_pages": sum(p.resumed for p in job.pages),
        },
        "cost": carried.plus(job.cost).payload(job.spending.prices),
        "budget": job.spending.budget.as_dict(),
    }


def _manifest_params(params: dict[str, Any]) -> dict[str, Any]:
    """Request parameters as sent on the wire (tweepy's names and formats); no credentials."""
    wire: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wire[name.replace("_fields", ".fields")] = value
    return wire
