"""Refuse what a browser could send on a user's behalf from another site.

A browser sends some requests cross-site without asking the server first ("simple" requests: a form post, or
a text/plain body). No write here accepts those content types, and a write whose Origin is another site that
is not in CORS_ORIGINS is refused, whatever it carries. API keys travel in a header a page cannot add without
the server's consent, so this is a second wall, not the first.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api_server.http_errors import error_response

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIMPLE_TYPES = frozenset({b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data"})


class CrossSiteGuard:
    """ASGI middleware: 415 for form and text/plain writes, 403 for writes from another site's page."""

    def __init__(self, app: ASGIApp, *, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = {origin.rstrip("/").lower() for origin in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if content_type in SIMPLE_TYPES:
            refusal = error_response(415, "unsupported_media_type", f"Content-Type {content_type.decode('latin-1')!r} "
                                     "is not accepted for writes (a browser sends it from any site): use "
                                     "application/json or application/yaml", field="Content-Type")
            await refusal(scope, receive, send)
            return
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/").lower()
        if self._from_another_site(origin, headers):
            refusal = error_response(403, "forbidden", f"writes from pages of another site ({origin or 'unknown'}) "
                                     "are refused; allow an origin with CORS_ORIGINS", field="Origin")
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _from_another_site(self, origin: str, headers: dict[bytes, bytes]) -> bool:
        """An opaque origin (a sandboxed page or a file), or one neither allowed nor this server's own."""
        if origin == "null":
            return True
        if origin in self.allowed:
            return False
        if headers.get(b"sec-fetch-site") == b"cross-site":
            return True
        return bool(origin) and not _same_site(origin, headers)


def _same_site(origin: str, headers: dict[bytes, bytes]) -> bool:
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return bool(host) and origin.split("://", 1)[-1] == host

