"""``tweetpipe retention apply``: the store's retention rules, applied once, with lineage."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from etl.adapters.cli.exits import EXIT_OK, UsageError
from etl.config import load_config
from etl.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import argparse

    from etl.config import RetentionPolicy


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    from dataclasses import replace

    from etl import resources

    policy = load_config(args.config or resources.default_config()).retention
    flags = {
        "raw_days": args.raw_days,
        "staging_days": args.staging_days,
        "docs_pages_days": args.docs_pages_days,
        "docs_results_days": args.docs_results_days,
        "grace_hours": args.grace_hours,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    for name, value in given.items():
        if value < 0:
            unit = "hours" if name == "grace_hours" else "days"
            raise ConfigError(f"--{name.replace('_', '-')} {value} must be 0 or more {unit}")
    return replace(policy, **given)


def run_retention_cli(args: argparse.Namespace) -> int:
    """``tweetpipe retention apply``: delete what the retention rules let go; print what.

    The rules are ``retention:`` of ``--config`` (default: the bundled ``pipeline.yaml``), each
    overridable by a flag (``--raw-days`` ...). Lineage goes where the other verbs' goes.

    Args:
        args: parsed ``--store --config --dry-run --raw-days --staging-days --docs-pages-days
            --docs-results-days --grace-hours``.

    Returns:
        0 when the rules were applied (or, with ``--dry-run``, reported).

    Raises:
        UsageError: an unreadable config, a bad flag or an unusable store (exit code 2).
    """
    from etl.lineage.builders import retention_outputs
    from etl.lineage.emit import events_file, lineage_run
    from etl.steps.quality.docs_site import mark_expired
    from etl.steps.retain import apply_retention
    from etl.storage.store import open_store

    try:
        policy = _policy(args)
        store = open_store(args.store, check=True)
    except (ConfigError, StoreError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    events = events_file(store.url if store.namespace == "file" else None)
    with lineage_run("apply_retention", default_file=events) as lineage:
        report = apply_retention(
            store,
            policy,
            dry_run=args.dry_run,
            # The index of the months whose pages go is rewritten first: no row links them.
            docs_index=lambda expiry: mark_expired(store, expiry),
        )
        lineage.add(retention_outputs(report.to_payload(store)))
    verb = "would delete" if args.dry_run else "deleted"
    for deletion in report.deletions:
        print(
            f"{verb} {deletion.area} {deletion.name} ({deletion.objects} objects): {deletion.reason}"
        )
    print(report.summary(), file=sys.stderr)
    print(f"lineage: {lineage.destination}", file=sys.stderr)
    return EXIT_OK
