"""Tests that check against ../shared/reference skip on a clone without it, and fail in CI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests import conftest
from tests.conftest import shared_reference

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def no_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    missing = tmp_path / "shared" / "reference"
    monkeypatch.setattr(conftest, "SHARED_REFERENCE", missing)
    return missing


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_reference_skips_naming_the_path_outside_ci(
    no_reference: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)

    with pytest.raises(pytest.skip.Exception) as skipped:
        shared_reference("odcs/odcs-json-schema-v3.1.0.json")

    assert str(no_reference / "odcs" / "odcs-json-schema-v3.1.0.json") in str(skipped.value)


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_reference_fails_in_ci(
    no_reference: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)

    with pytest.raises(pytest.fail.Exception) as failed:
        shared_reference("x-api-v2/openapi.json")

    assert str(no_reference / "x-api-v2" / "openapi.json") in str(failed.value)
    assert "CI is set" in str(failed.value)


def test_a_present_reference_is_returned_in_and_out_of_ci(
    no_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = no_reference / "openlineage" / "OpenLineage.json"
    document.parent.mkdir(parents=True)
    document.write_text("{}", encoding="utf-8")

    for ci in ("true", ""):
        monkeypatch.setenv("CI", ci)
        assert shared_reference("openlineage/OpenLineage.json") == document
