"""Test kinds by folder: tests/unit, tests/integration, tests/e2e get their marker automatically,
so `pytest -m unit` selects exactly the fast pure tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
_KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        kind = parts[0] if parts else ""
        if kind not in _KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, integration or e2e")
        item.add_marker(getattr(pytest.mark, kind))
