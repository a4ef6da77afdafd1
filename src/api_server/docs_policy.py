"""A Content-Security-Policy on the docs pages: Swagger UI and ReDoc load nothing from another host.

Their scripts and styles are served by the app itself (fastapi-offline's files); ReDoc's footer would still
fetch a logo from its vendor's CDN, which the policy stops before any request leaves the browser.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
          b"img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


class DocsPolicy:
    """ASGI middleware: the policy header on the answers of `paths`."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", POLICY)]
            await send(message)

        await self.app(scope, receive, with_policy)
