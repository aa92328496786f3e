"""Check OpenLineage events against the spec's JSON Schemas in ../shared/reference/openlineage.

A run event is validated against ``OpenLineage.json#/$defs/RunEvent``; each facet is validated
against the schema its own ``_schemaURL`` names (so a facet of a version the reference does not
hold is reported, not silently passed). Shared by the lineage unit and integration tests.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from tests.conftest import shared_reference

if TYPE_CHECKING:
    from collections.abc import Iterator

    from referencing import Registry

RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

# The facets tweetpipe emits itself: their schemas must be in the reference.
OUR_FACETS = {
    "schema",
    "columnLineage",
    "dataQualityAssertions",
    "dataQualityMetrics",
    "outputStatistics",
    "errorMessage",
    "tweetpipe_cost",  # our own facet: its schema ships in etl.lineage.cost_facet
}


@cache
def registry() -> Registry:
    """Every schema in the reference folder, by its ``$id`` (skips the test without it), and the
    schemas of our own facets."""
    from referencing import Registry, Resource

    reference = shared_reference("openlineage/OpenLineage.json").parent
    files = [reference / "OpenLineage.json", *(reference / "facets").glob("*.json")]
    resources = []
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    from etl.lineage.cost_facet import SCHEMA

    resources.append((SCHEMA["$id"], Resource.from_contents(SCHEMA)))
    return Registry().with_resources(resources)


def _errors(instance: Any, ref: str) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(
        {"$ref": ref}, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every facet of an event as ``(where, key, facet)``."""
    yield from (("run", k, v) for k, v in (event["run"].get("facets") or {}).items())
    yield from (("job", k, v) for k, v in (event["job"].get("facets") or {}).items())
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for ds in event.get(side) or []:
            for group in ("facets", extra):
                for k, v in (ds.get(group) or {}).items():
                    yield f"{side}[{ds['name']}].{group}", k, v


def validate_event(event: dict[str, Any], required_facets: set[str]) -> list[str]:
    """Schema errors of one run event; facets in ``required_facets`` must resolve in the reference.

    Args:
        event: the event as JSON.
        required_facets: facet keys whose schema must be in the reference (the ones we emit);
            other facets (Airflow's own) are validated when their schema is there.

    Returns:
        Human-readable errors; empty when the event is valid.
    """
    errors = [f"RunEvent {e}" for e in _errors(event, RUN_EVENT)]
    for where, key, facet in facets_of(event):
        url = facet.get("_schemaURL", "")
        try:
            registry().get_or_retrieve(url.split("#")[0])
        except Exception:  # noqa: BLE001 - referencing raises its own Unretrievable
            if key in required_facets:
                errors.append(f"{where}.{key}: schema {url} is not in the reference")
            continue
        errors.extend(f"{where}.{key} {e}" for e in _errors(facet, url))
    return errors
