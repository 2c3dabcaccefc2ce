"""Operations: the health check, searching the handbook without JavaScript, and (development
only) the mail the recipients would have received."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from datetime import UTC, datetime

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from forms_server.handbook.search import marked, search
from forms_server.web.guards import read_form
from forms_server.web.pages import NO_STORE, context_of, render

logger = logging.getLogger(__name__)


def may_see_details(request: Request) -> bool:
    """From this machine (and not forwarded by a proxy on it), or with the health token."""
    token = context_of(request).settings.health_token
    given = request.headers.get("authorization", "")
    if token is not None and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return local and "x-forwarded-for" not in request.headers


async def healthz(request: Request) -> Response:
    """For monitoring: 200 "ok" or 503 "failing", and nothing else to the world. Asked from
    this machine or with the health token, the details too (counts and reasons; nothing
    personal). It reads what the worker last saw and does no I/O of its own."""
    context = context_of(request)
    try:
        if context.services is None:
            body = {
                "status": "failing",
                "problems": [f"The forms cannot be saved: {context.unavailable}"],
            }
        else:
            health = context.services.worker.health(datetime.now(UTC))
            body = health.to_json()
    except Exception as error:  # noqa: BLE001 - monitoring must always get an answer
        logger.error("The health check hit %s", type(error).__name__)
        body = {"status": "failing", "problems": ["The health check itself failed."]}
    status = 200 if body["status"] == "ok" else 503
    shown = body if may_see_details(request) else {"status": body["status"]}
    return JSONResponse(shown, status_code=status, headers=NO_STORE)


# Longer than any question a member types; a longer one is cut, not refused.
SEARCH_QUERY_LIMIT = 200


async def search_page(request: Request) -> Response:
    """The handbook's search form posts here when the browser runs no JavaScript: the same
    index, spellings and ranking as the handbook's own script. The query comes in the body,
    never the address, so it stays out of the history and of any proxy's log; it is never
    logged or kept. An address with `?q=` shows the empty form."""
    query = ""
    if request.method == "POST":
        asked = (await read_form(request, counted=False)).get("q", "")
        query = " ".join((asked if isinstance(asked, str) else " ".join(asked)).split())
        query = query[:SEARCH_QUERY_LIMIT]
    context = context_of(request)
    sections = context.search_sections
    results = search(sections, query, context.crisis_words) if query else []
    return render(
        request,
        "search.html",
        available=bool(sections),
        # Not the query: a tab's title shows on a shared screen and stays in the history.
        title="Search results" if query else "Search the handbook",
        query=query,
        results=[
            {
                "url": result.section.location,
                "title": marked(result.section.title, query),
                "page": result.section.page_title
                if result.section.page_title != result.section.title
                else "",
                "snippet": marked(result.snippet, query),
            }
            for result in results
        ],
    )


async def development_mail(request: Request) -> Response:
    """Development only: what the facilitators would have received."""
    catcher = getattr(request.app.state, "catcher", None)
    if catcher is None:
        raise HTTPException(404)
    from forms_server.mail.catcher import caught_messages  # development only: not loaded otherwise

    messages = await anyio.to_thread.run_sync(caught_messages, catcher.maildir)
    return render(
        request,
        "dev_mail.html",
        title="Email the facilitators would receive",
        messages=messages,
        maildir=str(catcher.maildir),
    )
