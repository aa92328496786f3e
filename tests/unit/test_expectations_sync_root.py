"""``tweetpipe expectations sync --root DIR``: the suites of another checkout (a hook's or a pull
request's tree) are checked and rewritten there, never the package's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from etl.adapters.cli import main

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "expectations" / "tweets_curated.json"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    shutil.copytree(ROOT / "expectations", tmp_path / "expectations")
    return tmp_path


def test_root_checks_and_rewrites_that_checkout_only(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = SUITE.read_bytes()
    assert main(["expectations", "sync", "--check", "--root", str(checkout)]) == 0
    contract = checkout / "contracts" / "tweets_curated.odcs.yaml"
    doc = yaml.safe_load(contract.read_text(encoding="utf-8"))
    doc["schema"][0]["properties"] = doc["schema"][0]["properties"][:-1]
    contract.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    capsys.readouterr()
    assert main(["expectations", "sync", "--check", "--root", str(checkout)]) == 1
    assert capsys.readouterr().err.strip() == (
        "expectations out of date: expectations/tweets_curated.json; "
        f"run `tweetpipe expectations sync --root {checkout}`"
    )
    assert main(["expectations", "sync", "--root", str(checkout)]) == 0
    assert main(["expectations", "sync", "--check", "--root", str(checkout)]) == 0
    assert (checkout / "expectations" / "tweets_curated.json").read_bytes() != ours
    assert SUITE.read_bytes() == ours


def test_a_root_without_contracts_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["expectations", "sync", "--check", "--root", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip().endswith(f"--root {tmp_path}: no contracts/ folder there")
    )
