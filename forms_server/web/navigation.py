"""The ways into and out of the forms: "Exit this page", the leave notice's first question
(which kind of notice), and a form's address typed without its closing slash."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from forms_server.forms.definitions import LEAVE_KINDS
from forms_server.web.drafts import browser_key_of, forget_key
from forms_server.web.guards import read_form
from forms_server.web.pages import NO_STORE, context_of, form_for, render

logger = logging.getLogger(__name__)


async def quick_exit(request: Request) -> Response:
    """ "Exit this page": this browser's drafts and receipts go, its cookie and cache too, and
    the member leaves for the ordinary site. Never refused, never limited, never fails."""
    context = context_of(request)
    key = browser_key_of(request)
    if key is not None:
        try:
            context.drafts.end_all(key)
        except Exception as error:  # noqa: BLE001 - the member must leave whatever happens
            logger.error("Exit could not delete a draft (%s)", type(error).__name__)
    response = RedirectResponse(
        str(context.settings.group["exit_url"]),
        status_code=303,
        # The browser's own copies of our pages and its cookie go too (Chromium honours this
        # on loopback and HTTPS); Back then has to ask the server, which answers "expired".
        headers={**NO_STORE, "Clear-Site-Data": '"cache", "cookies"'},
    )
    forget_key(response, context.settings.is_production)
    return response


async def add_slash(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind != "leave":
        form_for(kind)  # 404 for anything that is not a form
    return RedirectResponse(f"/forms/{kind}/", status_code=301)


async def leave_start(request: Request) -> Response:
    return render(request, "leave.html", title="Send a leave notice", kinds=LEAVE_KINDS, errors={})


async def leave_choice(request: Request) -> Response:
    submitted = await read_form(request)
    kind = submitted.get("kind")
    if not isinstance(kind, str) or kind not in {choice.value for choice in LEAVE_KINDS}:
        return render(
            request,
            "leave.html",
            status_code=400,
            title="Send a leave notice",
            kinds=LEAVE_KINDS,
            errors={"kind": "Select what you want to tell us"},
        )
    return RedirectResponse(str(request.url_for("form_page", kind=kind)), status_code=303)
