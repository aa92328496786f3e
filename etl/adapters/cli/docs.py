"""``tweetpipe docs build`` and ``tweetpipe docs assets fetch``: the published Data Docs site."""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from etl.adapters.docs_build import build_and_publish

if TYPE_CHECKING:
    import argparse


def run_docs_build_cli(args: argparse.Namespace) -> int:
    """``tweetpipe docs build --store URL [--full] [--config FILE]``.

    Validations older than the config's ``retention.docs_pages_days`` get no page (the retention
    task deleted theirs; their results stay).

    Args:
        args: parsed arguments (``store``, ``full``, ``config``).

    Returns:
        0 when the site is published; 1 when it is, but some results could not be rendered (each
        named on stderr; the next build tries them again). A bad store raises UsageError: exit 2.
    """
    from etl.errors import StoreError
    from etl.steps.quality.docs_assets import DocsAssetsError
    from etl.storage.store import open_store

    try:
        store = open_store(args.store, check=True)
    except (StoreError, ValueError) as exc:
        raise UsageError(f"--store: {exc}") from None
    pages_since = _pages_since(args.config)
    with tempfile.TemporaryDirectory(prefix="tweetpipe-docs-") as tmp:
        try:
            build = build_and_publish(store, Path(tmp), full=args.full, pages_since=pages_since)
        except DocsAssetsError as exc:
            raise UsageError(str(exc)) from None
    print(
        f"Data Docs {store.url}/{build.index_key}: {build.rendered} new page(s) of "
        f"{build.results} validation(s); {len(build.written)} file(s), "
        f"{build.bytes_written} bytes written"
    )
    for key, reason in sorted(build.unreadable.items()):
        print(f"tweetpipe docs: cannot render {key}: {reason}", file=sys.stderr)
    return EXIT_FAILED if build.unreadable else EXIT_OK


def _pages_since(config: str | None) -> datetime | None:
    """When the oldest validation that keeps its page ran, by ``retention.docs_pages_days``."""
    from etl import resources
    from etl.config import load_config
    from etl.errors import ConfigError

    try:
        policy = load_config(config or resources.default_config()).retention
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return policy.pages_before(datetime.now(UTC))


def run_docs_assets_fetch_cli(args: argparse.Namespace) -> int:
    """``tweetpipe docs assets fetch [--into DIR]``: download and check the pinned page assets.

    Args:
        args: parsed arguments (``into``).

    Returns:
        0 when every asset is in place (a failed or mismatching download raises UsageError).
    """
    from etl.steps.quality.docs_assets import DocsAssetsError, assets_dir, fetch_assets

    root = Path(args.into) if args.into else assets_dir()
    try:
        written = fetch_assets(root)
    except DocsAssetsError as exc:
        raise UsageError(str(exc)) from None
    print(f"Data Docs page assets in {root}: {len(written)} file(s) fetched and checked")
    return EXIT_OK
