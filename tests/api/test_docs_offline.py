"""Swagger UI and ReDoc render in a real browser with no network: every asset comes from the server itself."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.browser import browser_page


async def test_the_docs_pages_refer_to_no_other_host(served_url: str) -> None:
    async with httpx.AsyncClient(base_url=served_url) as http:
        for path in ("/docs", "/redoc"):
            response = await http.get(path)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            page = response.text
            assert "cdn." not in page and "fonts.googleapis" not in page and "https://" not in page, path
            for asset in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/redoc.standalone.js"):
                assert (await http.get(asset)).status_code == 200


async def test_swagger_lists_every_route_in_chromium_without_network(served_url: str) -> None:
    outside: list[str] = []
    async with httpx.AsyncClient(base_url=served_url) as http:
        schema: dict[str, Any] = (await http.get("/openapi.json")).json()
    operations = sum(len(ops) for ops in schema["paths"].values())
    async with browser_page(outside) as page:
        await page.goto(f"{served_url}/docs")
        await page.wait_for_selector(".opblock", timeout=30_000)
        shown = await page.locator(".opblock").count()
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        await page.goto(f"{served_url}/redoc")
        await page.get_by_role("heading", name="Trigger a job of a workflow.").wait_for(timeout=30_000)
    assert shown == operations and operations >= 30
    assert "/api/v1/jobs" in [p.replace("\u200b", "") for p in paths]
    assert outside == []
