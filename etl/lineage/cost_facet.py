"""The ``tweetpipe_cost`` run facet: what an extract run read from the X API and what it costs.

A custom OpenLineage facet (the spec's ``RunFacet`` plus our fields), with its own JSON Schema
(:data:`SCHEMA`, named by the facet's ``_schemaURL``), so a lineage backend shows the cost of every
extract run beside its datasets. The per-source fields are those of
:class:`etl.payloads.CostPayload`, as the window's manifest and the task's XCom carry them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attr
from openlineage.client.facet_v2 import RunFacet

from etl.payloads import COST_COUNT_FIELDS
from etl.pricing import PRICE_KEYS, usd

if TYPE_CHECKING:
    from collections.abc import Iterable

    from etl.payloads import CostPayload

FACET_KEY = "tweetpipe_cost"
"""The facet's key in ``run.facets``."""
SCHEMA_ID = "https://tweetpipe.example/spec/facets/1-0-0/ExtractCostRunFacet.json"
"""The ``$id`` of :data:`SCHEMA` (the schema ships in this module; the host is a placeholder)."""
SCHEMA_URL = f"{SCHEMA_ID}#/$defs/ExtractCostRunFacet"
"""The facet's ``_schemaURL``."""

_COUNT = {"type": "integer", "minimum": 0}
_USD = {"type": "number", "minimum": 0}
_PRICES = {
    "type": "object",
    "description": "The prices used, in US dollars per read or request.",
    "properties": {key: _USD for key in PRICE_KEYS},
    "required": list(PRICE_KEYS),
    "additionalProperties": False,
}
_SOURCE = {
    "type": "object",
    "properties": {
        "slug": {"type": "string", "description": "The source's key-safe name."},
        "status": {
            "type": "string",
            "enum": ["landed", "skipped", "stopped"],
            "description": "landed; skipped (already complete); stopped by a spending limit.",
        },
        **{name: _COUNT for name in COST_COUNT_FIELDS},
        "estimated_cost_micro_usd": _COUNT,
        "estimated_cost_usd": _USD,
    },
    "required": ["slug", "status", *COST_COUNT_FIELDS, "estimated_cost_usd"],
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "$defs": {
        "ExtractCostRunFacet": {
            "allOf": [
                {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"},
                {
                    "type": "object",
                    "description": "Billable X API reads of an extract run and their cost "
                    "under pay-per-use prices (reads X does not bill twice within a UTC day "
                    "are counted as deduplicated).",
                    "properties": {
                        "prices": _PRICES,
                        "sources": {"type": "array", "items": _SOURCE},
                        "estimatedCostMicroUsd": _COUNT,
                        "estimatedCostUsd": _USD,
                    },
                    "required": ["prices", "sources", "estimatedCostUsd"],
                },
            ],
            "type": "object",
        }
    },
    "type": "object",
    "properties": {FACET_KEY: {"$ref": "#/$defs/ExtractCostRunFacet"}},
}
"""The facet's JSON Schema (draft 2020-12, extending the OpenLineage ``RunFacet``)."""


@attr.define
class ExtractCostRunFacet(RunFacet):
    """The ``tweetpipe_cost`` run facet (see :data:`SCHEMA`)."""

    prices: dict[str, float] = attr.field(factory=dict)
    sources: list[dict[str, Any]] = attr.field(factory=list)
    estimatedCostMicroUsd: int = attr.field(default=0)  # noqa: N815 - OpenLineage's camelCase
    estimatedCostUsd: float = attr.field(default=0.0)  # noqa: N815
    _additional_skip_redact: ClassVar[list[str]] = ["prices", "sources"]

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def cost_facet(costs: Iterable[tuple[str, str, CostPayload]]) -> ExtractCostRunFacet | None:
    """The facet of an extract run over some sources.

    Args:
        costs: ``(slug, status, cost)`` per source, as the manifest or XCom records the cost.

    Returns:
        The facet, or None when there is no source to report.
    """
    sources: list[dict[str, Any]] = []
    prices: dict[str, float] = {}
    total = 0
    for slug, status, cost in costs:
        prices = {key: float(cost["prices"][key]) for key in PRICE_KEYS}  # type: ignore[literal-required]
        entry: dict[str, Any] = {"slug": slug, "status": status}
        entry.update({name: int(cost[name]) for name in COST_COUNT_FIELDS})  # type: ignore[literal-required]
        entry["estimated_cost_micro_usd"] = int(cost["estimated_cost_micro_usd"])
        entry["estimated_cost_usd"] = float(cost["estimated_cost_usd"])
        total += entry["estimated_cost_micro_usd"]
        sources.append(entry)
    if not sources:
        return None
    return ExtractCostRunFacet(
        prices=prices, sources=sources, estimatedCostMicroUsd=total, estimatedCostUsd=usd(total)
    )
