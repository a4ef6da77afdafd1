"""Swagger UI and ReDoc render in a real browser with no network: every asset comes from the server itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api_server.main import create_app
from core.db import Database
from core.gateway_router import open_router
from core.settings import Settings
from tests.browser import browser_page
from tests.served import served


@pytest.fixture
async def base_url(settings: Settings, database: Database) -> AsyncIterator[str]:
    router = open_router(settings)
    async with served(create_app(settings, database, router)) as url:
        yield url
    await router.aclose()


async def test_the_docs_pages_refer_to_no_other_host(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        for path in ("/docs", "/redoc"):
            response = await http.get(path)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            page = response.text
            assert "cdn." not in page and "fonts.googleapis" not in page and "https://" not in page, path
            for asset in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/redoc.standalone.js"):
                assert (await http.get(asset)).status_code == 200


async def test_swagger_lists_every_route_in_chromium_without_network(base_url: str) -> None:
    outside: list[str] = []
    async with httpx.AsyncClient(base_url=base_url) as http:
        schema: dict[str, Any] = (await http.get("/openapi.json")).json()
    operations = sum(len(ops) for ops in schema["paths"].values())
    async with browser_page(outside) as page:
        await page.goto(f"{base_url}/docs")
        await page.wait_for_selector(".opblock", timeout=30_000)
        shown = await page.locator(".opblock").count()
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        await page.goto(f"{base_url}/redoc")
        await page.get_by_role("heading", name="Trigger a job of a workflow.").wait_for(timeout=30_000)
    assert shown == operations and operations >= 30
    assert "/api/v1/jobs" in [p.replace("\u200b", "") for p in paths]
    assert outside == []
