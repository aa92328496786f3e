"""Test kinds by folder: tests/unit, tests/integration, tests/e2e get their marker automatically,
so `pytest -m unit` selects exactly the fast pure tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
"""The reference documents (OpenAPI, OpenLineage and ODCS schemas) CI keeps beside the repository;
a user's clone usually has none. Reach them through :func:`shared_reference`."""
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


def run_probe(code: str, *args: str, env: Mapping[str, str], timeout: float) -> Any:
    """Run ``code`` in a fresh interpreter (nothing this process imported leaks in) and return
    the JSON it prints on its last line starting with ``@@``; fails the test, with the probe's
    stderr, when it exits non-zero or prints none."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][2:])


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set, as CI services do, to anything but false/0)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_reference(relative: str) -> Path:
    """A file or folder of ``../shared/reference``, for a test that checks against it.

    When it is missing the test is skipped, naming the path, so ``make test`` passes on a clone
    that has no reference beside it; in CI (``CI=true``) it fails instead, so CI still proves it.

    Args:
        relative: the path under ``../shared/reference``, e.g. ``odcs/odcs-json-schema-v3.1.0.json``.

    Returns:
        The existing path.
    """
    path = SHARED_REFERENCE / relative
    if not path.exists():
        message = f"reference document missing: {path} (../shared/reference beside the repository)"
        if in_ci():
            pytest.fail(f"{message}; CI is set, where it must be present")
        pytest.skip(message)
    return path


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
