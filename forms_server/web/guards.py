"""Reading a post safely: from our own pages only, within the limits, as a form and nothing
else. Every refusal says what happened and what to do instead."""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from forms_server.forms.fields import Answers, FormDefinition, body_limit
from forms_server.web.pages import context_of

# Posts that carry no answers (the leave notice chooser). A form's own limit is `body_limit`,
# derived from its fields' limits.
SMALL_BODY_BYTES = 8 * 1024

MAX_FIELDS = 40


def refuse_cross_site(request: Request) -> None:
    """Forms are only ever posted from our own pages."""
    if request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
        raise HTTPException(403, "This form can only be sent from our own pages.")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", ""):
            raise HTTPException(403, "This form can only be sent from our own pages.")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def wait_seconds(request: Request, form: FormDefinition | None) -> int | None:
    """None if this post may go ahead (it is counted); else the real wait, in whole seconds.
    A form that can carry a risk to someone counts against a larger budget of its own."""
    address = client_address(request)
    protected = form is not None and form.can_be_urgent
    wait = context_of(request).limits.wait_seconds(address, protected)
    return None if wait is None else max(1, math.ceil(wait))


def refuse_floods(request: Request) -> None:
    """For posts that carry no answers (a chooser, a link's button): a plain page."""
    wait = wait_seconds(request, None)
    if wait is not None:
        raise HTTPException(
            429,
            detail=" ".join(
                [f"Wait {duration_in_words(wait)}, then try again.", *way_round(request)]
            ),
            headers={"Retry-After": str(wait)},
        )


def duration_in_words(seconds: int) -> str:
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def way_round(
    request: Request, form: FormDefinition | None = None, answers: Answers | None = None
) -> list[str]:
    """What someone who was told to wait can do now instead, fitting their form and answers:
    never the facilitators, for a concern about one of them."""
    settings = context_of(request).settings
    facilitators = str(settings.group["facilitators_email"])
    sentences = []
    if form is not None and form.can_be_urgent:
        sentences.append("If you or someone else is in danger now, call 999.")
    rerouted = form is not None and form.rerouted_when is not None
    if rerouted and answers is not None and form is not None:
        field_name, answer, _ = form.rerouted_when or ("", "", None)
        if answers.get(field_name) == answer:
            contact = settings.decisions.facilitator_concern_email
            if contact:
                sentences.append(f"You can also email {contact}.")
            return sentences
    if rerouted:
        contact = settings.decisions.facilitator_concern_email
        sentences.append(
            f"You can also email the facilitators at {facilitators}"
            + (f", or, if it is about a facilitator, {contact}." if contact else ".")
        )
    else:
        sentences.append(f"You can also email the facilitators at {facilitators}.")
    return sentences


def limited(
    request: Request, form: FormDefinition, answers: Answers, again: str
) -> tuple[int, list[str]] | None:
    """None if this form's post may go ahead; else the wait and what the page says, for a
    page that keeps every answer (nothing typed is ever lost to a limit)."""
    wait = wait_seconds(request, form)
    if wait is None:
        return None
    return wait, limit_notices(request, form, answers, wait, again)


def limit_notices(
    request: Request, form: FormDefinition, answers: Answers, wait: int, again: str
) -> list[str]:
    return [
        f"You have sent a lot in a short time. Wait {duration_in_words(wait)}, then press "
        f"{again} again. Everything you typed is still here.",
        *way_round(request, form, answers),
    ]


async def read_form(
    request: Request, form: FormDefinition | None = None, *, counted: bool = True
) -> dict[str, str | list[str]]:
    """The post's fields. `counted=False` for a search: reading the handbook is never
    limited, for someone searching again and again for help is the last to be told to wait."""
    refuse_cross_site(request)
    if form is None and counted:
        refuse_floods(request)  # a form's own posts are limited once their answers are read
    max_bytes = SMALL_BODY_BYTES if form is None else body_limit(form)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form from its page.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, "What you sent is too long.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise HTTPException(413, "What you sent is too long.")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as error:
        raise HTTPException(400, "Some characters could not be read.") from error
    except ValueError as error:  # more fields than any of our forms has
        raise HTTPException(400, "What you sent has too many parts.") from error
    submitted: dict[str, str | list[str]] = {}
    for name, value in pairs:
        existing = submitted.get(name)
        if existing is None:
            submitted[name] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            submitted[name] = [existing, value]
    return submitted
