"""The dashboard: one page, its script and its style, served from the install (no build step, nothing fetched
from elsewhere). The page holds no data: everything it shows comes from the API with the key signed in."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from api_server.http_errors import error_response

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
# Only this server's own files and API; no inline script, no frame around it.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}
CONTENTS = {name: (DASHBOARD / name).read_bytes() for name in ASSETS}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> Response:
    """The dashboard's address."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def dashboard() -> Response:
    """The dashboard page (it asks for an API key before it shows anything)."""
    return Response(CONTENTS["index.html"], media_type=ASSETS["index.html"], headers=HEADERS)


@router.get("/ui/{name}")
async def asset(name: str) -> Response:
    """The dashboard's script and style; nothing else is served from here."""
    if name not in ASSETS or name == "index.html":
        return error_response(404, "not_found", f"no dashboard file {name[:64]!r}", field="name")
    return Response(CONTENTS[name], media_type=ASSETS[name], headers=HEADERS)
