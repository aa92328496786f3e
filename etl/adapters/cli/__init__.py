"""The ``tweetpipe`` command line: the parser, and :func:`main` mapping errors to exit codes.

Each verb (one module per verb group beside this one) resolves secrets and configuration at the
edge (environment, flags) and calls the steps and tools of ``etl``; they raise domain errors
(:mod:`etl.errors`), never exit codes. Exit codes (:mod:`etl.adapters.cli.exits`): 0 success, 1 a
gate breach or a failed source, 2 usage errors (:class:`UsageError`, :class:`etl.errors.InputError`).
Heavy imports (pandas, GX, Airflow) happen inside the handlers, so ``tweetpipe --help`` is fast.
The console script reads ``.env`` from the working directory first; the real environment wins
over it, and flags win over both.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

from etl.adapters.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from etl.errors import InputError

__all__ = [
    "ENV_FILE",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "load_env_file",
    "main",
    "run",
]

ENV_FILE = ".env"
"""Read from the working directory by the console script, below the real environment."""


def _verb(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """The handler of a verb: ``etl.adapters.cli.<module>.<function>``, imported when it runs, so
    building the parser (and ``--help``) loads no step."""

    def handle(args: argparse.Namespace) -> int:
        run_verb: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"etl.adapters.cli.{module}"), function
        )
        return run_verb(args)

    return handle


# --- transform ---------------------------------------------------------------------------------
def _add_transform(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "transform",
        help="raw X API v2 pages (JSON/JSONL files or directories) to curated CSV, gated",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="a JSON or JSONL file, or a directory"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--contract", metavar="FILE", help="curated contract (default: the bundled one)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (default: one per CPU, max 4, for inputs over 32 MiB, else 1); "
        "the output is the same",
    )
    p.set_defaults(handler=_verb("transform", "run_transform_cli"))


# --- extract / emulator --------------------------------------------------------------------------
def _add_extract(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("extract", help="fetch posts from the X API v2 and land them in raw/")
    p.add_argument("--account", action="append", default=[], metavar="USERNAME")
    p.add_argument("--query", action="append", default=[], metavar="QUERY")
    p.add_argument("--config", metavar="FILE", help="pipeline.yaml with sources")
    p.add_argument(
        "--store",
        metavar="URL",
        help="s3://bucket/prefix or a directory (default: $TWEETPIPE_STORE, then the config's "
        "store:)",
    )
    p.add_argument("--start", metavar="ISO", help="window start (inclusive), ISO 8601")
    p.add_argument("--end", metavar="ISO", help="window end (exclusive), ISO 8601")
    p.add_argument(
        "--max-body-bytes",
        metavar="BYTES",
        help="largest API response body accepted, on the wire and decoded (default: "
        "X_API_MAX_BODY_BYTES, else api.max_body_bytes of --config, else 8388608 = 8 MiB)",
    )
    p.add_argument(
        "--max-cost-usd",
        metavar="USD",
        help="the most this run may spend, in US dollars (e.g. 2.50); also budget.per_run_usd "
        "of --config (the lower applies); a source stops before a request that could exceed it",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read no post: estimate each source's posts and cost (counts endpoint for queries; "
        "last run's rate or the user's post count for accounts), print them and exit",
    )
    p.set_defaults(handler=_verb("extract", "run_extract_cli"))


def _add_state(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("state", help="inspect or repair state/ (watermarks) in a store")
    verbs = p.add_subparsers(dest="state_verb", required=True)
    reset = verbs.add_parser(
        "reset",
        help="clear a source's watermark (or rewind it with --to), so incremental runs go on",
    )
    reset.add_argument(
        "--source", required=True, metavar="SOURCE", help="account:NAME, @NAME or query:TEXT"
    )
    reset.add_argument(
        "--store", required=True, metavar="URL", help="s3://bucket/prefix or a directory"
    )
    reset.add_argument("--to", metavar="ID", help="rewind to this post id instead of clearing")
    reset.set_defaults(handler=_verb("state", "run_state_reset_cli"))


def _add_emulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emulator", help="run the bundled X API v2 emulator on 127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--token", default=None, help="bearer token to accept (default: demo token)")
    p.add_argument("--fault", action="append", default=[], metavar="MODE", help="fault mode")
    p.add_argument("--rate-limit", type=int, default=None, metavar="N", help="requests per window")
    p.add_argument("--rate-window", type=float, default=900.0, metavar="SECONDS")
    p.add_argument(
        "--recent-days",
        type=int,
        default=400,
        metavar="N",
        help="besides the fixed 2022-11..2023-04 corpus, posts on each of the last N days up to "
        "now, so today's interval has data (0: the fixed corpus only; default 400)",
    )
    p.set_defaults(handler=_verb("emulator", "run_emulator_cli"))


# --- expectations / demo -------------------------------------------------------------------------
def _add_expectations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("expectations", help="Great Expectations suites derived from contracts/")
    verbs = p.add_subparsers(dest="expectations_verb", required=True)
    sync = verbs.add_parser("sync", help="regenerate expectations/ from contracts/")
    sync.add_argument("--check", action="store_true", help="fail when the files are out of date")
    sync.add_argument(
        "--root",
        metavar="DIR",
        help="the suites in DIR/expectations from the contracts in DIR/contracts "
        "(default: the pipeline's own)",
    )
    sync.set_defaults(handler=_verb("expectations", "run_sync_cli"))


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole DAG once on the embedded default")
    p.add_argument("--dir", default="demo-output", metavar="DIR", help="store and outputs")
    p.add_argument("--breach", action="store_true", help="emulator drift mode: the gate fails")
    p.set_defaults(handler=_verb("demo", "run_demo_cli"))


# --- airflow (local Airflow 3 for the UI) -----------------------------------------------------
def _add_airflow(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "airflow", help="a local Airflow 3 with the tweetpipe DAG; where the DAG file is"
    )
    verbs = p.add_subparsers(dest="airflow_verb", required=True)
    up = verbs.add_parser("up", help="start it in the background (127.0.0.1), print URL and login")
    up.add_argument("--dir", default="airflow-local", metavar="DIR", help="home, store and logs")
    up.add_argument("--port", type=int, default=8080, help="api-server port on 127.0.0.1")
    up.add_argument(
        "--triggered-only",
        action="store_true",
        help="no runs on the DAGs' schedules, only the ones you trigger: the scheduler creates "
        "no run by itself, so the asset-scheduled consumer tweetpipe_curated_summary does not "
        "run either (its events stay queued)",
    )
    up.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local: LocalExecutor on SQLite (default); celery: CeleryExecutor with its own "
        "PostgreSQL, Redis, N workers and an S3 store (moto)",
    )
    up.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="Celery workers, 1 to 8 (--executor celery; default 2)",
    )
    up.add_argument(
        "--store",
        metavar="URL",
        help="the DAG's store (--executor celery; default: a bucket on moto's S3 server)",
    )
    up.set_defaults(handler=_verb("airflow", "run_airflow_cli"))
    down = verbs.add_parser("down", help="stop every process it started, by process id")
    down.add_argument("--dir", default="airflow-local", metavar="DIR")
    down.set_defaults(handler=_verb("airflow", "run_airflow_cli"))
    dag = verbs.add_parser(
        "dag",
        help="print the path of the tweetpipe DAG file, or copy the DAG files into a DAGs folder",
    )
    dag.add_argument(
        "--into",
        metavar="DIR",
        help="copy both DAG files into this DAGs folder: tweetpipe_dag.py (the pipeline) and "
        "tweetpipe_curated_summary.py (the example consumer of its curated Assets)",
    )
    dag.set_defaults(handler=_verb("airflow", "run_airflow_cli"))


# --- contracts (lint, diff, docs for pull-request review) -------------------------------------
def _add_contracts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("contracts", help="lint, diff and document the contracts in contracts/")
    verbs = p.add_subparsers(dest="contracts_verb", required=True)
    lint = verbs.add_parser("lint", help="check contracts against ODCS v3.1 and our rules")
    lint.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or dirs (default: ./contracts, else the bundled ones)",
    )
    lint.set_defaults(handler=_verb("contracts", "run_lint_cli"))
    diff = verbs.add_parser("diff", help="classify the changes between two versions of contracts")
    diff.add_argument("files", nargs="*", metavar="FILE", help="OLD NEW contract files")
    diff.add_argument(
        "--base", metavar="REF", help="compare the working tree with git revision REF"
    )
    diff.add_argument(
        "--dir",
        metavar="DIR",
        help="contracts directory for --base (default: ./contracts, else the bundled ones)",
    )
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    diff.add_argument("--docs-url", metavar="URL", help=_DOCS_URL_HELP)
    diff.set_defaults(handler=_verb("contracts", "run_diff_cli"))
    docs = verbs.add_parser("docs", help="render the contracts as a static HTML site")
    docs.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or dirs (default: ./contracts, else the bundled ones)",
    )
    docs.add_argument("--out", required=True, metavar="DIR", help="output directory")
    docs.add_argument("--store", metavar="URL", help="also publish under docs/contracts/ there")
    docs.set_defaults(handler=_verb("contracts", "run_docs_cli"))
    _add_contracts_review(verbs)


_DOCS_URL_HELP = (
    "where `contracts docs` is published, linked from the markdown report "
    "(default: $TWEETPIPE_CONTRACT_DOCS_URL)"
)


def _add_contracts_review(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    owners = verbs.add_parser(
        "codeowners", help="write the CODEOWNERS section: each contract is reviewed by its team"
    )
    owners.add_argument("--check", action="store_true", help="fail when the section is stale")
    owners.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    owners.add_argument(
        "--file",
        metavar="PATH",
        help="the CODEOWNERS file (default: the one the host reads, else .github/CODEOWNERS)",
    )
    owners.set_defaults(handler=_verb("contracts", "run_codeowners_cli"))
    review = verbs.add_parser(
        "review", help="every contract gate against a base revision, as a pull-request comment"
    )
    review.add_argument("--base", required=True, metavar="REF", help="the pull request's base")
    review.add_argument("--base-label", metavar="TEXT", help="how to name the base (a branch)")
    review.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    review.add_argument("--out", metavar="DIR", help="write comment.md and review.json there")
    review.add_argument("--docs-url", metavar="URL", help=_DOCS_URL_HELP)
    review.set_defaults(handler=_verb("contracts", "run_review_cli"))


def _add_docs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("docs", help="the published Great Expectations Data Docs site")
    verbs = p.add_subparsers(dest="docs_verb", required=True)
    build = verbs.add_parser(
        "build", help="render the validations without a page, update the index, publish"
    )
    build.add_argument(
        "--store", required=True, metavar="URL", help="s3://bucket/prefix or a directory"
    )
    build.add_argument(
        "--full", action="store_true", help="render every validation again, rebuild the index"
    )
    build.add_argument(
        "--config",
        metavar="FILE",
        help="pipeline.yaml whose retention.docs_pages_days applies (default: the bundled one)",
    )
    build.set_defaults(handler=_verb("docs", "run_docs_build_cli"))
    assets = verbs.add_parser("assets", help="the pinned scripts and styles pages load")
    assets_verbs = assets.add_subparsers(dest="assets_verb", required=True)
    fetch = assets_verbs.add_parser(
        "fetch", help="download them from the npm registry, check their hashes, keep them"
    )
    fetch.add_argument("--into", metavar="DIR", help="default: $TWEETPIPE_DOCS_ASSETS or cache")
    fetch.set_defaults(handler=_verb("docs", "run_docs_assets_fetch_cli"))


def _add_retention(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("retention", help="delete what the store's retention rules let go")
    verbs = p.add_subparsers(dest="retention_verb", required=True)
    apply = verbs.add_parser(
        "apply", help="apply retention: (config) to a store; never what curated data derives from"
    )
    apply.add_argument("--store", required=True, metavar="URL", help="s3://bucket/prefix or a dir")
    apply.add_argument(
        "--config", metavar="FILE", help="pipeline.yaml with retention: (default: the bundled one)"
    )
    apply.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    for name, what in (
        ("raw-days", "raw/ windows"),
        ("staging-days", "unpublished staging/ candidates"),
        ("docs-pages-days", "Data Docs validation pages"),
        ("docs-results-days", "Data Docs validation results"),
    ):
        apply.add_argument(f"--{name}", type=int, metavar="N", help=f"keep {what} N days")
    apply.add_argument(
        "--grace-hours",
        type=int,
        metavar="N",
        help="never touch raw/ or staging/ younger than this",
    )
    apply.set_defaults(handler=_verb("retention", "run_retention_cli"))


_ADDERS = (
    _add_transform,
    _add_extract,
    _add_state,
    _add_emulator,
    _add_expectations,
    _add_demo,
    _add_airflow,
    _add_contracts,
    _add_docs,
    _add_retention,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="tweetpipe",
        description="Data-contract-driven pipeline for X API v2 posts.",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tweetpipe`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (UsageError, InputError) as exc:
        print(f"tweetpipe {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def load_env_file(path: Path | None = None) -> bool:
    """Read ``KEY=value`` lines of a ``.env`` file into the environment, without overriding.

    The precedence is: command-line flags, then the real environment, then ``.env``: a variable
    already set is left alone, and a flag always wins over a variable. Values are never printed;
    a line the parser cannot read is reported (by python-dotenv) with its line number only.

    Args:
        path: the file; default ``.env`` in the working directory.

    Returns:
        Whether the file was there and read.
    """
    from dotenv import load_dotenv

    env_file = path or Path.cwd() / ENV_FILE
    if not env_file.is_file():
        return False
    return load_dotenv(env_file, override=False, interpolate=False)


def run() -> NoReturn:
    """The ``tweetpipe`` console script: ``.env`` (see :func:`load_env_file`), :func:`main`, then
    exit with its code.

    Objects left at exit are frozen first, so the interpreter's last garbage collection skips
    them: with pandas loaded it would spend a tenth of a second freeing memory the operating
    system takes back anyway.
    """
    load_env_file()
    code = main()
    gc.freeze()
    sys.exit(code)
