"""Selection policy for the browser tests (marker ``browser``).

They take minutes and need the built Backstage frontend, so a plain ``pytest`` (which CI runs
once per database) deselects them, saying so in its summary. They run when asked for:
``tests/e2e/run.sh`` (CI; builds the frontend first, sets CATALOG_E2E=1), ``pytest tests/e2e``,
or ``pytest -m browser``. Selected without a frontend build, they skip with the reason, except
under CI=true or CATALOG_E2E=1, where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the real Backstage frontend in Chromium (tests/e2e/run.sh)"
    )


def _browser_tests_requested(config: pytest.Config) -> bool:
    if os.environ.get("CATALOG_E2E", "").lower() in ("1", "true", "yes"):
        return True
    if "browser" in (config.getoption("markexpr", "") or ""):
        return True
    # An explicit path into tests/e2e on the command line.
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == E2E_DIR or E2E_DIR in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _browser_tests_requested(config):
        return
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        items[:] = [item for item in items if not item.get_closest_marker("browser")]
        config.hook.pytest_deselected(items=browser)
        config.stash[_DESELECTED] = len(browser)


_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count = terminalreporter.config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} browser tests deselected: they run in tests/e2e/run.sh "
            "(or pytest tests/e2e, or -m browser)"
        )
    report = terminalreporter.config.stash.get(REQUEST_REPORT, None)
    if report:
        terminalreporter.section("catalog requests the Backstage frontend made")
        for line in report:
            terminalreporter.write_line(line)


# Filled by test_backstage_ui.py: one line per distinct catalog request and status.
REQUEST_REPORT = pytest.StashKey[list[str]]()
