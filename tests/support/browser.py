"""Debian's chromium driven by Playwright (no browser download): found, or the test skips (fails in CI)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.support.services import REQUIRED


def chromium_path() -> str:
    """The chromium executable; skip the test without one (`.ci/run` installs Debian's `chromium`)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = "chromium is not installed (apt-get install chromium; .ci/run does)"
    if REQUIRED:
        pytest.fail(f"{message}, and ROWLOOM_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


@asynccontextmanager
async def browser_page(outside: list[str]) -> AsyncIterator[Any]:
    """A page in headless chromium that refuses, and records in `outside`, any request off 127.0.0.1."""
    from playwright.async_api import async_playwright

    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True,
                                                   args=["--no-sandbox"])
        try:
            page = await browser.new_page()

            async def only_local(route: Any) -> None:
                url = route.request.url
                if url.startswith(("http://127.0.0.1", "data:", "blob:")):
                    await route.continue_()
                else:
                    outside.append(url)
                    await route.abort()

            await page.route("**/*", only_local)
            yield page
        finally:
            await browser.close()
