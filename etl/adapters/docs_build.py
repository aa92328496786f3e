"""The Data Docs build the command line (``tweetpipe docs build``) and the DAG's ``build_docs``
task both run: the contract pages, then the incremental site build that publishes them beside
the validation pages. Here because it joins a tool and a step, which only an adapter may do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from pathlib import Path

    from etl.steps.quality.docs_site import DocsBuild
    from etl.storage.store import Store


def build_and_publish(
    store: Store,
    work_dir: Path,
    *,
    full: bool = False,
    runs: Sequence[str] | None = None,
    pages_since: datetime | None = None,
) -> DocsBuild:
    """Render the contract pages and update the store's ``docs/`` site with them.

    Args:
        store: the store whose ``docs/`` site to update.
        work_dir: an empty local directory.
        full: render every validation again and rebuild the index.
        runs: only look at the results of these runs (the DAG's task passes its own run's
            :func:`etl.steps.quality.run_prefix`); None: every result in the store.
        pages_since: validations that ran before this get no page (retention expired them).

    Returns:
        What the build did.

    Raises:
        DocsAssetsError: the page assets are missing (``tweetpipe docs assets fetch``).
    """
    from etl.steps.quality.docs_site import build_docs
    from etl.tools.contract_docs import contract_pages

    extra = contract_pages(work_dir / "contracts")
    return build_docs(
        store,
        work_dir / "build",
        full=full,
        extra_files=extra,
        runs=runs,
        pages_since=pages_since,
    )
