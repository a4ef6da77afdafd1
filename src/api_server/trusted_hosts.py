"""Only requests addressed to this server's own names are served (the Host header), against DNS rebinding.

A page on another site can make a browser resolve its own name to 127.0.0.1 and then call the API as a
same-origin page would; the request still carries that site's name as its Host. Without keys
(AUTH_REQUIRED=false) only `localhost` and loopback addresses are served; TRUSTED_HOSTS narrows any
deployment to its own names (`api.example.com`, `*.example.com`).
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from api_server.http_errors import error_response

LOCAL_NAMES = ("localhost",)


def host_name(header: str) -> str:
    """The name in a Host header, without its port (IPv6 addresses without their brackets), in lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_local(name: str) -> bool:
    """`localhost` (or a name under it) or a loopback address."""
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def matches(name: str, pattern: str) -> bool:
    """`pattern` is a name, or `*.domain` for any name under that domain."""
    pattern = pattern.strip().lower()
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and name != pattern[2:]
    return name == pattern.strip("[]")


class TrustedHosts:
    """ASGI middleware: 400 in the one error shape for a Host this server does not answer to."""

    def __init__(self, app: ASGIApp, *, trusted: list[str], local_only: bool) -> None:
        self.app = app
        self.trusted = trusted
        self.local_only = local_only

    def allowed(self, name: str) -> bool:
        """Whether a request for `name` is served."""
        if self.local_only:
            return is_local(name)
        return not self.trusted or any(matches(name, pattern) for pattern in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not self.allowed(host_name(header)):
            why = "without API keys (AUTH_REQUIRED=false) only localhost is served" if self.local_only \
                else "it is not one of TRUSTED_HOSTS"
            refusal = error_response(400, "untrusted_host", f"Host {header!r} is not served: {why}", field="Host")
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
