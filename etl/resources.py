"""Where the files that ship beside the code are: contracts, expectations, the DAG, the config.

The repository's top-level ``contracts/``, ``expectations/``, ``dags/tweetpipe_dag.py`` and
``pipeline.yaml`` are the sources of truth. The wheel carries copies of them as package data under
``etl/_bundled/`` (``[tool.hatch.build.targets.wheel.force-include]`` in ``pyproject.toml``), laid
out as in the repository::

    etl/_bundled/contracts/*.odcs.yaml
    etl/_bundled/expectations/*.json
    etl/_bundled/dags/tweetpipe_dag.py
    etl/_bundled/pipeline.yaml

Which copy is used depends on where ``etl`` was imported from, never on the working directory:

- a checkout (run in place, or installed editable, as ``uv sync`` does): the package sits beside
  ``pyproject.toml`` and ``contracts/``, so the repository's folders are used. Editing a contract
  takes effect at once, and ``tweetpipe expectations sync`` rewrites the repository's suites;
- an installed wheel: the bundled copies, found through :mod:`importlib.resources`. They are the
  contracts the wheel was built with, read-only.

``python -m etl.resources`` prints every location (for deployment scripts).

Nothing heavy is imported here: the DAG file and ``tweetpipe --help`` may import this module.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

from etl.errors import ResourceError

BUNDLE_NAME = "_bundled"
DAG_FILE_NAME = "tweetpipe_dag.py"
CONSUMER_DAG_FILE_NAME = "tweetpipe_curated_summary.py"
CONFIG_FILE_NAME = "pipeline.yaml"


def _package_dir() -> Path:
    # A regular package imported from a directory answers with a pathlib.Path; anything else
    # (a zip archive) cannot hand GX, Airflow and git the plain file paths they need.
    root = importlib.resources.files("etl")
    if not isinstance(root, Path):
        raise ResourceError(f"the etl package must be installed as files, not imported from {root}")
    return root.resolve()


def _checkout_root(package_dir: Path) -> Path | None:
    parent = package_dir.parent
    if (parent / "pyproject.toml").is_file() and (parent / "contracts").is_dir():
        return parent
    return None


PACKAGE_DIR = _package_dir()
BUNDLE_DIR = PACKAGE_DIR / BUNDLE_NAME
CHECKOUT_ROOT = _checkout_root(PACKAGE_DIR)
"""The repository the package runs from, or None for an installed wheel."""
DATA_ROOT = CHECKOUT_ROOT if CHECKOUT_ROOT is not None else BUNDLE_DIR
"""The folder holding ``contracts/``, ``expectations/``, ``dags/`` and ``pipeline.yaml``.

Without a checkout this is the bundle even when it is missing (a broken install), so a missing
file is reported under ``etl/_bundled/``, where it should have been."""


def contracts_dir() -> Path:
    """The pipeline's own data contracts (``*.odcs.yaml``)."""
    return DATA_ROOT / "contracts"


def expectations_dir() -> Path:
    """The Great Expectations suites the quality gates run (``*.json``)."""
    return DATA_ROOT / "expectations"


def dags_dir() -> Path:
    """A folder holding only the tweetpipe DAG files (the pipeline and its example Asset
    consumer, ``tweetpipe_curated_summary.py``), to use as Airflow's DAGs folder."""
    return DATA_ROOT / "dags"


def dag_file() -> Path:
    """The tweetpipe DAG file (copy it into a deployment's DAGs folder)."""
    return dags_dir() / DAG_FILE_NAME


def consumer_dag_file() -> Path:
    """The example DAG scheduled on the curated data's Assets (copy it beside the DAG file)."""
    return dags_dir() / CONSUMER_DAG_FILE_NAME


def dag_files() -> tuple[Path, Path]:
    """Every DAG file a deployment's DAGs folder needs: :func:`dag_file` and
    :func:`consumer_dag_file` (what ``tweetpipe airflow dag --into`` copies)."""
    return dag_file(), consumer_dag_file()


def default_config() -> Path:
    """The default ``pipeline.yaml`` (sources and store) of the DAG's ``config`` param."""
    return DATA_ROOT / CONFIG_FILE_NAME


def is_bundled(path: Path) -> bool:
    """Whether ``path`` is one of the installed wheel's bundled files (read-only package data).

    Args:
        path: any path.

    Returns:
        True when it lies under ``etl/_bundled`` of an installed wheel.
    """
    return CHECKOUT_ROOT is None and path.resolve().is_relative_to(BUNDLE_DIR)


def working_contracts_dir(cwd: Path | None = None) -> Path:
    """The contracts a review command works on by default (``contracts lint``, ``docs``, ``diff``).

    ``contracts/`` of the working directory when there is one (the project being reviewed),
    otherwise the pipeline's own (:func:`contracts_dir`).

    Args:
        cwd: the working directory (default: the process's).

    Returns:
        The directory.
    """
    here = (cwd if cwd is not None else Path.cwd()) / "contracts"
    return here if here.is_dir() else contracts_dir()


def describe() -> dict[str, str]:
    """Every location by name, as ``python -m etl.resources`` prints them.

    Returns:
        ``{"mode": "checkout" | "installed", "contracts": ..., ...}`` with absolute paths.
    """
    return {
        "mode": "checkout" if CHECKOUT_ROOT is not None else "installed",
        "contracts": str(contracts_dir()),
        "expectations": str(expectations_dir()),
        "dags": str(dags_dir()),
        "dag_file": str(dag_file()),
        "consumer_dag_file": str(consumer_dag_file()),
        "config": str(default_config()),
    }


if __name__ == "__main__":
    for name, value in describe().items():
        sys.stdout.write(f"{name}\t{value}\n")
