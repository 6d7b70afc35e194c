"""A real browser for the console's tests: Debian's chromium, driven by Playwright.

Fixtures, to be re-exported by tests/console/conftest.py
(`from tests.console.browser import browser, page  # noqa: F401`); a session-scoped
fixture pulled into several test modules one by one is a separate fixture in each,
and launches a browser per module:

- `browser`, session-scoped: one headless chromium per test session (per xdist worker),
  the system's `chromium` (scripts/setup installs it), never a Playwright download.
  Without it the fixture fails, naming scripts/setup: a missing browser is a broken
  machine, not a reason to skip the console's tests.
- `page`, per test: a page in a fresh browser context (no cookies or storage shared
  between tests), 1280x900.

`screenshot(page, name)` saves a full-page PNG to docs/console/<name>.png.

Both fixtures run on the session's event loop (pyproject: asyncio_default_fixture_loop_scope
and asyncio_default_test_loop_scope are "session"), so the tests that use them are async
tests on that loop too, as every test in this repository is by default.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

REPO_ROOT: Final = Path(__file__).resolve().parent.parent.parent
SCREENSHOT_DIR: Final = REPO_ROOT / "docs" / "console"
VIEWPORT: Final[ViewportSize] = {"width": 1280, "height": 900}
_DEBIAN_CHROMIUM: Final = Path("/usr/bin/chromium")
_SCREENSHOT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def chromium_executable() -> str:
    """The system chromium's path; fails the test (not skips) when there is none."""
    found = shutil.which("chromium")
    if found is not None:
        return found
    if _DEBIAN_CHROMIUM.is_file():
        return str(_DEBIAN_CHROMIUM)
    pytest.fail(
        "chromium not found (on PATH or at /usr/bin/chromium): the console's browser tests "
        "need Debian's chromium; run scripts/setup (as root it runs apt-get install chromium)",
        pytrace=False,
    )


# loop_scope="session" spelled out: a session-scoped browser must live on the loop that
# outlives every test, whatever the defaults in pyproject become.
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # That is --no-sandbox: the tests run as root, where chromium's sandbox cannot start.
            chromium_sandbox=False,
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of `page` to docs/console/<name>.png; returns its path."""
    if _SCREENSHOT_NAME.fullmatch(name) is None:
        raise ValueError(f"screenshot name must be a plain file name, got {name!r}")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path
