"""The confirmation page: the reference, what happens next and who reads the form.

Its address is the draft's opaque id, and it shows only with the browser key that sealed the
receipt (web/drafts.py): the history names neither the form nor the reference, and after Exit
the page says only "This page has expired". An address from before (the form and reference
in it) still works for a receipt this server can vouch for, so a guessed reference learns
nothing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from forms_server.config.decisions import ConcernRoute
from forms_server.config.env import Settings
from forms_server.delivery.member_copy import (
    COPY_REFUSED_ROUTE,
    COPY_ROUTE,
    MEMBER_COPY_SENDER,
    MEMBER_COPY_SUBJECT,
)
from forms_server.forms.fields import FormDefinition, Recipients
from forms_server.forms.reference import normalise_reference
from forms_server.forms.wording import what_happens_next
from forms_server.web.drafts import browser_key_of
from forms_server.web.pages import context_of, expired_page, form_for, render


async def received(request: Request) -> Response:
    context = context_of(request)
    key = browser_key_of(request)
    kind = context.drafts.kind_of(key, request.path_params["draft"]) if key else None
    sent = context.drafts.receipt(key, kind) if key and kind else None
    if sent is None:
        return expired_page(request)
    return receipt_page(
        request,
        form_for(sent.kind),
        sent.reference,
        sent.routes,
        urgent=sent.urgent,
        conversation_receipt=sent.conversation_receipt,
    )


async def received_by_reference(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    reference = normalise_reference(request.path_params["reference"])
    if reference is None:
        raise HTTPException(404)
    return receipt_page(request, form, reference, routes_of_receipt(request, form, reference))


def receipt_page(
    request: Request,
    form: FormDefinition,
    reference: str,
    routes: tuple[str, ...],
    urgent: bool = False,
    conversation_receipt: str | None = None,
) -> Response:
    context = context_of(request)
    decisions = context.settings.decisions
    return render(
        request,
        "received.html",
        form=form,
        title=f"{form.email_name} received",
        reference=reference,
        what_happens_next=what_happens_next(
            form, decisions.reply_within_days, decisions.how_joining_works
        ),
        readers=readers_of(context.settings, routes),
        about_a_facilitator=Recipients.FACILITATOR_CONCERNS.value in routes,
        facilitator_concern_email=decisions.facilitator_concern_email,
        copy_sent=COPY_ROUTE in routes,
        copy_refused=COPY_REFUSED_ROUTE in routes,
        copies_per_day=context.settings.member_copies_per_day,
        copy_sender=MEMBER_COPY_SENDER,
        copy_subject=MEMBER_COPY_SUBJECT,
        urgent=urgent,
        conversation_receipt=conversation_receipt,
    )


def routes_of_receipt(request: Request, form: FormDefinition, reference: str) -> tuple[str, ...]:
    """Who the form went to, for a receipt this server can vouch for; 404 for any other, so a
    guessed reference learns nothing: from the outbox, its item while pending, its marker
    after."""
    outbox = context_of(request).forms.outbox
    item = outbox.read(reference)
    if item is not None:
        if item.form_kind != form.kind:
            raise HTTPException(404)
        return tuple(item.route.split("+"))
    if outbox.is_delivered(reference):
        return ()  # delivered: who it went to is no longer kept
    raise HTTPException(404)


def readers_of(settings: Settings, routes: tuple[str, ...]) -> str:
    """Who reads the form, in words, for the confirmation page."""
    names = {
        Recipients.FACILITATORS.value: "the facilitators",
        Recipients.CONCERNS.value: (
            "our safeguarding lead and their deputy"
            if settings.decisions.concern_route is ConcernRoute.SAFEGUARDING_LEAD
            else "the facilitators"
        ),
        Recipients.FACILITATOR_CONCERNS.value: (
            settings.decisions.facilitator_concern_email
            or "the contact for concerns about facilitators"
        ),
    }
    readers = list(dict.fromkeys(names[route] for route in routes if route in names))
    return " and ".join(readers)
