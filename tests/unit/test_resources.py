"""``etl.resources``: the bundled files are found in a checkout and in an installed wheel alike.

The installed wheel itself is exercised by ``tests/integration/test_wheel.py``; here the checkout's
answers, the build configuration that makes the bundle, and the commands' choices.
"""

from __future__ import annotations

import filecmp
import shutil
import tomllib
from pathlib import Path

import pytest

from etl import resources
from etl.adapters.airflow import tasks as pipeline
from etl.adapters.cli import expectations as cli_expectations
from etl.adapters.cli import main
from etl.contracts.model import CONTRACTS_DIR
from etl.contracts.suites import EXPECTATIONS_DIR
from etl.steps import quality
from etl.tools import airflow_local, demo
from tests.conftest import ROOT

BROKEN_CONTRACT = "apiVersion: v3.1.0\nkind: DataContract\n"


def test_a_checkout_uses_the_repository_folders() -> None:
    assert resources.CHECKOUT_ROOT == ROOT
    assert resources.describe() == {
        "mode": "checkout",
        "contracts": str(ROOT / "contracts"),
        "expectations": str(ROOT / "expectations"),
        "dags": str(ROOT / "dags"),
        "dag_file": str(ROOT / "dags" / "tweetpipe_dag.py"),
        "consumer_dag_file": str(ROOT / "dags" / "tweetpipe_curated_summary.py"),
        "config": str(ROOT / "pipeline.yaml"),
    }
    # Every module that reads them takes them from here.
    assert CONTRACTS_DIR == resources.contracts_dir()
    assert EXPECTATIONS_DIR == quality.EXPECTATIONS_DIR == resources.expectations_dir()
    assert demo.DAGS_FOLDER == airflow_local.DAGS_FOLDER == resources.dags_dir()
    assert pipeline.DEFAULT_CONFIG == resources.default_config()
    assert not resources.is_bundled(resources.expectations_dir())


def test_the_wheel_bundles_every_resource_in_the_same_layout() -> None:
    """The build's force-include maps each top-level source into etl/_bundled, as resources
    expects to find it; a file added to resources but not to the build would be missing."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    wanted = {
        Path(resources.describe()[name]).relative_to(resources.DATA_ROOT).as_posix()
        for name in ("contracts", "expectations", "dag_file", "consumer_dag_file", "config")
    }

    assert set(mapping) == wanted
    assert all(target == f"etl/{resources.BUNDLE_NAME}/{src}" for src, target in mapping.items())
    assert all((ROOT / src).exists() for src in mapping)
    # dags/ holds nothing else: the whole folder is Airflow's DAGs folder in the local profiles.
    assert sorted(p.name for p in resources.dags_dir().glob("*.py")) == [
        "tweetpipe_curated_summary.py",
        "tweetpipe_dag.py",
    ]


def test_the_dag_does_not_locate_its_config_from_where_it_lies() -> None:
    # A copy in a deployment's DAGs folder has no pipeline.yaml beside it; the empty default is
    # resolved by the task, on the worker, to the installed package's file.
    text = resources.dag_file().read_text(encoding="utf-8")
    assert "__file__" not in text
    assert pipeline._config_path({"config": ""}) == resources.default_config()
    assert pipeline._config_path({"config": "/etc/tp.yaml"}) == Path("/etc/tp.yaml")


def test_review_commands_prefer_the_working_directorys_contracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resources.working_contracts_dir() == resources.contracts_dir()

    assert main(["contracts", "lint"]) == 0
    assert f"2 contracts clean in {resources.contracts_dir()}" in capsys.readouterr().out

    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "mine.odcs.yaml").write_text(BROKEN_CONTRACT, encoding="utf-8")
    assert resources.working_contracts_dir() == tmp_path / "contracts"

    assert main(["contracts", "lint"]) == 1
    out = capsys.readouterr().out
    assert "mine.odcs.yaml" in out and f"in 1 contract in {tmp_path / 'contracts'}" in out


def test_airflow_dag_prints_the_dag_file_and_copies_both_dag_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DAGs folder filled by ``--into`` holds the pipeline and its example Asset consumer."""
    names = ["tweetpipe_curated_summary.py", "tweetpipe_dag.py"]
    # The path alone, for scripts: ``aws s3 cp "$(tweetpipe airflow dag)" ...``.
    assert main(["airflow", "dag"]) == 0
    assert capsys.readouterr().out.strip() == str(resources.dag_file())

    dags = tmp_path / "airflow" / "dags"
    assert main(["airflow", "dag", "--into", str(dags)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in dags.iterdir()) == names  # no partial file left
    for name in names:
        assert filecmp.cmp(dags / name, resources.dags_dir() / name, shallow=False)
        assert f"copied {resources.dags_dir() / name} to {dags / name}\n" in out

    for name in names:
        (dags / name).write_text("# an older copy\n", encoding="utf-8")
    assert main(["airflow", "dag", "--into", str(dags)]) == 0
    for name in names:
        assert filecmp.cmp(dags / name, resources.dags_dir() / name, shallow=False)


def test_airflow_dag_into_copies_nothing_when_a_dag_file_is_missing(
    installed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken install (the consumer not bundled) fails with one line and leaves the folder
    as it was, instead of deploying half of the DAGs."""
    (installed / "dags").mkdir()
    shutil.copyfile(ROOT / "dags" / "tweetpipe_dag.py", installed / "dags" / "tweetpipe_dag.py")
    dags = tmp_path / "dags"
    dags.mkdir()

    assert main(["airflow", "dag", "--into", str(dags)]) == 1
    assert capsys.readouterr().err.strip() == (
        "tweetpipe airflow dag: the DAG file "
        f"{installed / 'dags' / 'tweetpipe_curated_summary.py'} is missing; reinstall tweetpipe"
    )
    assert list(dags.iterdir()) == []


def test_airflow_dag_into_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dags"
    target.write_text("not a folder", encoding="utf-8")

    assert main(["airflow", "dag", "--into", str(target)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tweetpipe airflow: error: --into {target} is not a directory"
    )


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The resources as an installed wheel sees them: no checkout, a bundle under ``etl/``."""
    bundle = tmp_path / "site-packages" / "etl" / resources.BUNDLE_NAME
    shutil.copytree(ROOT / "expectations", bundle / "expectations")
    monkeypatch.setattr(resources, "CHECKOUT_ROOT", None)
    monkeypatch.setattr(resources, "BUNDLE_DIR", bundle)
    monkeypatch.setattr(resources, "DATA_ROOT", bundle)
    monkeypatch.setattr(cli_expectations, "EXPECTATIONS_DIR", bundle / "expectations")
    return bundle


def test_an_installed_wheel_checks_its_suites_but_never_rewrites_them(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = installed / "expectations" / "tweets_curated.json"
    suite.write_text(suite.read_text(encoding="utf-8").replace("tweet_id", "tweet_key"), "utf-8")
    before = suite.read_bytes()
    assert resources.is_bundled(suite)

    assert main(["expectations", "sync", "--check"]) == 1
    assert "expectations out of date" in capsys.readouterr().err

    assert main(["expectations", "sync"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tweetpipe expectations: error: the suites in ")
    assert "belong to the installed wheel" in err and len(err.strip().splitlines()) == 1
    assert suite.read_bytes() == before


def test_an_installed_wheel_lints_its_bundled_contracts_from_anywhere(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "contracts", installed / "contracts")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert resources.working_contracts_dir() == installed / "contracts"
    assert main(["contracts", "lint"]) == 0
