"""Plain ASGI middleware that every response passes through."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


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


# The theme's own files carry a content hash in their names, so they can be kept for good.
FINGERPRINTED = re.compile(r"\.[0-9a-f]{8}\.min\.(?:css|js)$")


def cache_control_for(path: str, content_type: str) -> str:
    if FINGERPRINTED.search(path):
        return "public, max-age=31536000, immutable"
    if content_type.startswith("text/html"):
        # Pages change when the guidelines do: always check, using the ETag, before reuse.
        return "no-cache"
    return "public, max-age=3600"


# Files a page loads; everything else (pages, the bad-Host refusal, JSON) is a document.
SUBRESOURCE_TYPES = (
    "text/css",
    "text/javascript",
    "application/javascript",
    "image/",
    "font/",
    "application/manifest+json",
)


class StandardHeaders:
    """Headers every response gets: privacy and security, and caching that spares a slow phone.

    A view's own headers win (form pages say no-store), since these are only set when absent.
    """

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
                content_type = headers.get("content-type", "")
                extra = dict(self.headers)
                if not content_type.startswith(SUBRESOURCE_TYPES):
                    extra |= self.document_headers
                extra["Cache-Control"] = cache_control_for(scope["path"], content_type)
                if scope.get("scheme") == "https":
                    extra["Strict-Transport-Security"] = "max-age=31536000"
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


INCIDENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sorry, something went wrong</title></head>
<body><main><h1>Sorry, something went wrong</h1>
<p>Your form may not have been sent. Try again in a few minutes.
If it still does not work, email the facilitators instead.</p>
<p>If you contact us about this, give this code: <strong>{incident}</strong></p>
</main></body></html>"""


class IncidentPages:
    """The outermost layer: an unexpected error becomes a plain page with an incident code.

    The log gets the code and the error's type only. Never the message or a traceback, which
    could hold what a member typed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, track)
        except Exception as error:  # noqa: BLE001 - this is the last line of defence
            incident = secrets.token_hex(4).upper()
            logger.error("Incident %s: %s", incident, type(error).__name__)
            if started:
                return
            body = INCIDENT_PAGE.format(incident=incident).encode("utf-8")
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(body)).encode("ascii")),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


class LoggedTrustedHosts:
    """Starlette's Host check, which refuses silently, plus one line in the log for each host
    it refuses (the first 100 distinct ones): a proxy sending the wrong Host, or a public
    address missing from FORMS_ALLOWED_HOSTS, is otherwise a 400 nobody can explain."""

    MAX_HOSTS_LOGGED = 100

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.check = TrustedHostMiddleware(self.allowed, allowed_hosts=allowed_hosts)
        self.hosts_logged: set[str] = set()

    async def allowed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["forms.host_allowed"] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.check(scope, receive, send)
        if scope["type"] != "http" or scope.get("forms.host_allowed"):
            return
        host = Headers(scope=scope).get("host", "")[:100]
        if host in self.hosts_logged or len(self.hosts_logged) >= self.MAX_HOSTS_LOGGED:
            return
        self.hosts_logged.add(host)
        logger.warning(
            "Refused a request for host %r: FORMS_ALLOWED_HOSTS is %s. If members reach the "
            "server at that name, set FORMS_PUBLIC_URL to it (or add it to FORMS_ALLOWED_HOSTS); "
            "if a proxy is in front, make it pass the original Host header.",
            host,
            ", ".join(self.allowed_hosts),
        )
