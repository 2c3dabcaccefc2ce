"""Every refusal as a plain page that says what happened and what to do: never a traceback."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from forms_server.web.pages import render

ERROR_TITLES = {
    400: "Your form could not be read",
    403: "This form can only be sent from our own pages",
    404: "Page not found",
    405: "This page cannot do that",
    413: "What you sent is too long",
    415: "Send the form from its page",
    429: "You have sent a lot in a short time",
}


async def http_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, HTTPException):  # Starlette only sends these here
        raise error
    status = error.status_code
    detail = error.detail if error.detail and error.detail != str(status) else ""
    paragraphs = [detail] if detail and detail != ERROR_TITLES.get(status) else []
    if status == 404:
        paragraphs = ["If you typed the web address, check it is correct."]
    paragraphs.append("Nothing was kept or sent.")
    response = render(
        request,
        "problem.html",
        status_code=status,
        title=ERROR_TITLES.get(status, "Something went wrong"),
        paragraphs=paragraphs,
        start_again_url=None,
    )
    if error.headers:
        response.headers.update(error.headers)
    return response


async def forms_unavailable(request: Request, error: Exception) -> Response:
    """A page that needs the data folder, while it cannot be used: say so, change nothing."""
    return render(
        request,
        "problem.html",
        status_code=503,
        title="This page is not available right now",
        paragraphs=[
            "We cannot reach what the forms server keeps just now, so nothing was changed.",
            "Try again in a few minutes.",
        ],
        start_again_url=None,
    )
