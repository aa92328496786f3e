"""Test kinds by folder: tests/unit, tests/integration, tests/e2e get their marker automatically,
so `pytest -m unit` selects exactly the fast pure tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
_KINDS = ("unit", "integration", "e2e")
# Debian's Chromium (`make system-deps`), never a downloaded browser; the flags keep it off the
# network, which is closed here anyway.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        kind = parts[0] if parts else ""
        if kind not in _KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, integration or e2e")
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (no browser download).

    Module-scoped on purpose: Playwright's driver process and event loop must not outlive the
    module, or later tests that fork worker processes (the transform's) hang.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian package chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()
