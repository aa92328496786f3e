"""OpenLineage datasets: how store objects, raw windows, local files and the X API are named.

Datasets are named the same whichever way the pipeline ran, so lineage is one graph: namespace
``Store.namespace`` (``s3://<bucket>`` or ``file``), name the object key or prefix (``raw/...``,
``staging/...``, ``curated/...``, ``quarantine/...``), under the bucket's key prefix on S3; the X
API's endpoints under its base URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from openlineage.client.event_v2 import InputDataset, OutputDataset

from etl import xapi
from etl.config import parse_store_url
from etl.lineage.facets import schema_facets
from etl.storage.keys import CURATED_PREFIX, object_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from openlineage.client.facet_v2 import (
        DatasetFacet,
        InputDatasetFacet,
        OutputDatasetFacet,
        RunFacet,
    )

_D = TypeVar("_D", InputDataset, OutputDataset)

X_API_NAMESPACE = xapi.BASE_URL
"""Namespace of the X API endpoints read by the extract step (tweepy's base URL)."""


def curated_dataset_uri(store_url: str, slug: str) -> str:
    """The URI of one source's curated dataset (every interval of it), e.g. for an Airflow Asset.

    Named as the lineage datasets are: on S3 the lineage namespace and name joined
    (``s3://bucket/prefix/curated/source=<slug>``); for a local store the key under the store's
    absolute directory (``file:///srv/store/curated/source=<slug>``), where lineage says
    namespace ``file``, name ``curated/...``.

    Args:
        store_url: the store's URL (``s3://bucket/prefix`` or a directory), without credentials.
        slug: the source's slug.

    Returns:
        The URI.
    """
    prefix = f"{CURATED_PREFIX}/source={slug}"
    location = parse_store_url(store_url)
    if location.kind == "s3":
        return f"s3://{location.bucket}/{object_path(store_url, prefix)}"
    assert location.path is not None
    return f"{location.path.resolve().as_uri()}/{prefix}"


# --- datasets -------------------------------------------------------------------------------------
def input_dataset(
    namespace: str,
    name: str,
    facets: Mapping[str, DatasetFacet] | None = None,
    input_facets: Mapping[str, InputDatasetFacet] | None = None,
) -> InputDataset:
    """An input dataset.

    Args:
        namespace: ``Store.namespace`` (``s3://bucket`` or ``file``), or an API base URL.
        name: the object key or prefix.
        facets: dataset facets (``schema``, ``columnLineage``).
        input_facets: input facets (``dataQualityAssertions``, ``dataQualityMetrics``).

    Returns:
        The dataset.
    """
    return InputDataset(
        namespace=namespace,
        name=name,
        facets=dict(facets or {}),
        inputFacets=dict(input_facets or {}),
    )


def output_dataset(
    namespace: str,
    name: str,
    facets: Mapping[str, DatasetFacet] | None = None,
    output_facets: Mapping[str, OutputDatasetFacet] | None = None,
) -> OutputDataset:
    """An output dataset.

    Args:
        namespace: ``Store.namespace`` (``s3://bucket`` or ``file``).
        name: the object key or prefix.
        facets: dataset facets (``schema``, ``columnLineage``).
        output_facets: output facets (``outputStatistics``).

    Returns:
        The dataset.
    """
    return OutputDataset(
        namespace=namespace,
        name=name,
        facets=dict(facets or {}),
        outputFacets=dict(output_facets or {}),
    )


@dataclass
class StepLineage:
    """What one run of a step read and wrote, with facets; the same for Airflow and the CLI.

    Attributes:
        inputs: datasets read.
        outputs: datasets written.
        run_facets: run facets (``errorMessage`` on a failed gate).
    """

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)
    run_facets: dict[str, RunFacet] = field(default_factory=dict)

    def merge(self, other: StepLineage) -> StepLineage:
        """This lineage with ``other``'s datasets added; ``other`` wins on a dataset name clash.

        Args:
            other: lineage learned later in the run (e.g. at completion).

        Returns:
            A new :class:`StepLineage`.
        """
        return StepLineage(
            inputs=_merge_datasets(self.inputs, other.inputs),
            outputs=_merge_datasets(self.outputs, other.outputs),
            run_facets={**self.run_facets, **other.run_facets},
        )


def _merge_datasets(first: list[_D], second: list[_D]) -> list[_D]:
    later = {(d.namespace, d.name) for d in second}
    return [d for d in first if (d.namespace, d.name) not in later] + list(second)


_ENDPOINT_PATHS = {"account": xapi.TIMELINE_PATH, "query": xapi.SEARCH_PATH}
_PAGE_NAME = "page-"


def raw_prefix(key: str) -> str:
    """The ``raw/`` prefix (one source, one window) a raw object lies in.

    Args:
        key: the window's manifest or one of its pages.

    Returns:
        ``raw/source=<slug>/endpoint=<endpoint>/window=<label>``.

    Raises:
        KeyError: ``key`` is empty.
    """
    if not key:
        raise KeyError("no raw object named (a manifest or page key)")
    return key.rsplit("/", 1)[0]


def api_dataset(source_kind: str) -> InputDataset:
    """The X API endpoint a source is read from, as an input dataset.

    Args:
        source_kind: ``account`` (user timeline) or ``query`` (recent search).

    Returns:
        The endpoint under :data:`X_API_NAMESPACE`, with the response-page schema.
    """
    return input_dataset(
        X_API_NAMESPACE, _ENDPOINT_PATHS[source_kind], facets=schema_facets(raw=True)
    )


# --- local files ----------------------------------------------------------------------------------
_STORE_AREAS = ("raw", "staging", "curated", "quarantine")


def local_name(path: Path | str) -> str:
    """The dataset name of a local file or directory, matching the store's key when it is one.

    A path inside a local store (``.../raw/source=a/...``) is named by its key, so a CLI run over
    a store directory joins the graph Airflow drew; a landed page stands for its window prefix,
    as in the DAG. Anything else is named by its absolute path (OpenLineage's ``file`` naming).

    Args:
        path: an input or output of a CLI run.

    Returns:
        ``raw/source=.../window=...``-style key, or the absolute path.
    """
    resolved = Path(path).resolve()
    if resolved.name.startswith(_PAGE_NAME) and resolved.parent.name.startswith("window="):
        resolved = resolved.parent
    parts = resolved.parts
    areas = [i for i, part in enumerate(parts) if part in _STORE_AREAS]
    return "/".join(parts[areas[-1] :]) if areas else str(resolved)
