"""Fixtures of the web admin tests: Debian's Chromium driven by Playwright (from PyPI;
its own browser downloads are not used), a node with the harness dataplane behind a real
uvicorn server, and a page per test whose screenshot lands in tests/web/artifacts/ when
the test fails.

Without Chromium or Playwright the tests are skipped, saying so; under CI (CI set) they
fail instead, since `make test` installs both."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from api_helpers import Node, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPORT = pytest.StashKey[pytest.TestReport]()


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (make deps installs it into .venv)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/install-deps.sh installs Debian's chromium)"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[REPORT] = report
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def url(node: Node) -> Iterator[str]:
    """The node's API and web admin on a real server."""
    with running_server(node) as base:
        yield base


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (so a fresh sessionStorage) per test. Script errors in the
    page fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    the_page = context.new_page()
    errors: list[str] = []
    the_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield the_page
    report = request.node.stash.get(REPORT, None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        the_page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
    assert not errors, f"script errors in the page: {errors}"
