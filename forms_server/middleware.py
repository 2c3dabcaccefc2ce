"""Plain ASGI middleware that every response passes through."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(script_hashes: Iterable[str]) -> str:
    """Only this server's own files may load; the theme's inline scripts are allowed by hash."""
    scripts = " ".join(["'self'", *sorted(script_hashes)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            # Material draws its icons from data: URIs in its CSS.
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )


class SecurityHeaders:
    """Adds the headers that keep a member's visit private and the pages unframed."""

    def __init__(self, app: ASGIApp, script_hashes: Iterable[str] = ()) -> None:
        self.app = app
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        # Only documents are governed by these; on every CSS and JS file they would be dead
        # weight (a kilobyte each) on a slow connection.
        self.document_headers = {
            "Content-Security-Policy": content_security_policy(script_hashes),
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                extra = dict(self.headers)
                if headers.get("content-type", "").startswith("text/html"):
                    extra |= self.document_headers
                for name, value in extra.items():
                    headers.setdefault(name, value)
                if scope.get("scheme") == "https":
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The theme's own files carry a content hash in their names, so they can be kept for good.
FINGERPRINTED = re.compile(r"\.[0-9a-f]{8}\.min\.(?:css|js)$")


def cache_control_for(path: str, content_type: str) -> str:
    if FINGERPRINTED.search(path):
        return "public, max-age=31536000, immutable"
    if content_type.startswith("text/html"):
        # Pages change when the guidelines do: always check, using the ETag, before reuse.
        return "no-cache"
    return "public, max-age=3600"


class CachePolicy:
    """Repeat visits on a slow phone fetch nothing that has not changed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cache_control(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                policy = cache_control_for(scope["path"], headers.get("content-type", ""))
                headers.setdefault("Cache-Control", policy)
            await send(message)

        await self.app(scope, receive, send_with_cache_control)
