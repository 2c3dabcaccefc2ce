"""The member's form: the form, its answers, check your answers, send, and the receipt.

The pattern is GOV.UK's, with nothing typed ever held by the browser: GET the form; POST the
answers, which are sealed into this browser's draft (web/drafts.py) and answered with a 303:
back to the form (status 400 there, every error explained and every value kept) or on to the
check-answers page at an opaque address. "Change" is a GET of the form, filled from the draft.
POST send reads the draft again, hands the submission over once, ends the draft and leads
(303) to the receipt, at the same opaque address. So the browser's history holds no post with
an answer in it, and every page of a draft needs the member's cookie: after Exit, or for
anyone else, each says only "This page has expired". When the data folder cannot be written,
each step says so (503) and keeps what was typed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from forms_server.delivery.intake import OutboxWriteError
from forms_server.forms.fields import (
    Answers,
    FormDefinition,
    Submission,
    answer_rows,
    validate,
)
from forms_server.forms.reference import new_reference, normalise_reference
from forms_server.forms.routing import is_urgent, recipients_for
from forms_server.signing import ExpiredTokenError, FutureTokenError, Purpose
from forms_server.web.conversation import open_conversation
from forms_server.web.drafts import (
    Draft,
    Receipt,
    browser_key_of,
    name_for,
    new_browser_key,
    remember_key,
)
from forms_server.web.guards import client_address, limit_notices, limited, read_form
from forms_server.web.limits import network_of
from forms_server.web.pages import (
    NO_STORE,
    FormsUnavailableError,
    context_of,
    expired_page,
    form_for,
    render,
)

logger = logging.getLogger(__name__)

# A field people never see: no browser's autofill targets this name (unlike "website" or "url").
HONEYPOT_FIELD = "leave_this_blank_7f3"


async def token_problem(request: Request, error: Exception) -> Response:
    """Every refused token, wherever it was refused: say what happened and what to do."""
    form = form_for(request.path_params["kind"])
    start_again = str(request.url_for("form_page", kind=form.kind))
    if isinstance(error, ExpiredTokenError):
        hours = context_of(request).settings.token_max_age_seconds // 3600
        limit = f"{hours} hours" if hours > 1 else "1 hour" if hours == 1 else "a short time"
        title = "Your answers were not sent because too much time passed"
        paragraphs = [
            f"To keep your answers private, we only hold them on the check page for {limit}.",
            "Nothing was kept or sent. Fill in the form again, then send it.",
        ]
    elif isinstance(error, FutureTokenError):
        title = "Your answers were not sent"
        paragraphs = [
            "The page you sent from had a time we could not accept.",
            "Nothing was kept or sent. Fill in the form again, then send it.",
        ]
    else:
        title = "Your answers were not sent"
        paragraphs = [
            "The page you sent from was changed, or was for a different form, "
            "so we could not read your answers.",
            "Nothing was kept or sent. Fill in the form again, then send it.",
        ]
    return render(
        request,
        "problem.html",
        status_code=400,
        title=title,
        paragraphs=paragraphs,
        start_again_url=start_again,
    )


def form_with_answers(
    request: Request,
    form: FormDefinition,
    answers: Answers,
    errors: Mapping[str, str],
    status_code: int = 200,
    replaces: str | None = None,
    held: tuple[int, list[str]] | None = None,
    from_draft: bool = False,
) -> Response:
    """The form; signing again from a renewal reminder, it carries which record it replaces;
    `held`: the wait and what to say, when a limit holds the post back (answers kept);
    `from_draft`: filled from this browser's draft, which the page keeps while it is open."""
    context = context_of(request)
    renews = context.links.renew_token(replaces) if replaces else None
    cannot_save = context.cannot_save is not None
    if held is not None:
        status_code = 429
    response = render(
        request,
        "form.html",
        # The answers stay on the page; the status says the service is unavailable.
        status_code=503 if cannot_save and status_code == 200 else status_code,
        cannot_save=cannot_save,
        notices=held[1] if held else [],
        form=form,
        title=form.title,
        answers=answers,
        errors=errors,
        renews=renews,
        idle_minutes=context.settings.decisions.draft_idle_minutes,
        keeps_draft=from_draft,
        # What signing means for joining, as the group worded it (on the form that joins).
        joining_note=(
            context.settings.decisions.consent_form_and_joining if form.binds_guidelines else None
        ),
    )
    if held is not None:
        response.headers["Retry-After"] = str(held[0])
    return response


async def form_page(request: Request) -> Response:
    """The form: empty, or this browser's draft of it (after Change, Back, or a visit to the
    privacy notice), with its errors and any wait a limit set."""
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    key = browser_key_of(request)
    draft = context.drafts.load(key, form.kind) if key else None
    if draft is None:
        return form_with_answers(request, form, {}, {})
    errors = validate(form, draft.answers).errors if draft.show_errors else {}
    wait = math.ceil((draft.held_until or 0) - time.time())
    held = None
    if wait > 0:
        held = wait, limit_notices(request, form, draft.answers, wait, "Continue")
    return form_with_answers(
        request, form, draft.answers, errors, 400 if errors else 200, draft.replaces, held, True
    )


async def form_answers(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    submitted = await read_form(request, form)
    checked = validate(form, submitted)
    replaces = context.links.open_renew(submitted.get("renews")) if form.binds_guidelines else None
    held = limited(request, form, checked.answers, "Continue")
    if context.cannot_save is not None or context.drafts.files is None:
        return form_with_answers(
            request, form, checked.answers, checked.errors, replaces=replaces, held=held
        )
    key = browser_key_of(request)
    existing = context.drafts.load(key, form.kind) if key else None
    now = time.time()
    draft = Draft(
        kind=form.kind,
        # One reference for the life of the draft: a double click, or Back and send again,
        # gives the same receipt and one email.
        reference=existing.reference if existing else new_reference(),
        answers=checked.answers,
        created_at=existing.created_at if existing else now,
        checked_at=now if checked.ok and held is None else None,
        show_errors=not checked.ok,
        held_until=now + held[0] if held else None,
        replaces=replaces,
        guidelines=context.guidelines.version if form.binds_guidelines else None,
        automated=bool(submitted.get(HONEYPOT_FIELD)),
    )
    return save_then_go(request, key, draft)


def save_then_go(request: Request, key: bytes | None, draft: Draft) -> Response:
    """Seals the draft under this browser's key (a new one if it has none), then leads to the
    form again or to the check page (303, so no post with answers stays in the history)."""
    context = context_of(request)
    form = form_for(draft.kind)
    new_key = key is None
    key = key or new_browser_key()
    try:
        context.drafts.save(key, draft, network_of(client_address(request)))
    except OSError as error:
        logger.error("A draft could not be saved (%s)", type(error).__name__)
        return form_with_answers(request, form, draft.answers, {}, 503, replaces=draft.replaces)
    if draft.checked_at is None:
        target = str(request.url_for("form_page", kind=form.kind))
    else:
        target = str(request.url_for("check_page", draft=name_for(key, form.kind)))
    response = RedirectResponse(target, status_code=303, headers=NO_STORE)
    if new_key:
        remember_key(response, key, context.settings.is_production)
    return response


def this_browsers_draft(request: Request) -> tuple[bytes, FormDefinition] | None:
    """The browser key and form of the draft in the address, if it is this browser's."""
    key = browser_key_of(request)
    kind = context_of(request).drafts.kind_of(key, request.path_params["draft"]) if key else None
    return (key, form_for(kind)) if key and kind else None


async def check_page(request: Request) -> Response:
    found = this_browsers_draft(request)
    draft = context_of(request).drafts.load(*found[:1], found[1].kind) if found else None
    if found is None or draft is None:
        return expired_page(request)
    if draft.checked_at is None:  # errors, or a limit held it back: the form says which
        return RedirectResponse(
            str(request.url_for("form_page", kind=draft.kind)), status_code=303, headers=NO_STORE
        )
    return check_answers_page(request, found[1], draft)


def check_answers_page(
    request: Request,
    form: FormDefinition,
    draft: Draft,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    return render(
        request,
        "check.html",
        status_code=status_code,
        cannot_save=status_code == 503,
        form=form,
        title="Check your answers before sending",
        rows=answer_rows(form, draft.answers),
        urgent=is_urgent(form, draft.answers),
        guidelines=context.guidelines,
        notice=notice,
        send_url=str(request.url),
        idle_minutes=context.settings.decisions.draft_idle_minutes,
        keeps_draft=status_code != 503,
    )


async def form_send(request: Request) -> Response:
    context = context_of(request)
    await read_form(request)
    found = this_browsers_draft(request)
    if found is None:
        return expired_page(request)
    key, form = found
    draft = context.drafts.load(key, form.kind)
    if draft is None:
        # Sent already (a double click, or a resend): the same receipt, and nothing sent again.
        if context.drafts.receipt(key, form.kind) is not None:
            return see_receipt(request)
        return expired_page(request)
    checked = validate(form, draft.answers)  # sealed by us, but never trust: check again
    if not checked.ok or draft.checked_at is None:
        return RedirectResponse(
            str(request.url_for("form_page", kind=form.kind)), status_code=303, headers=NO_STORE
        )
    held = limited(request, form, draft.answers, "Send")
    if held is not None:
        response = check_answers_page(request, form, draft, " ".join(held[1]), 429)
        response.headers["Retry-After"] = str(held[0])
        return response
    if time.time() - draft.checked_at < context.settings.min_confirm_seconds:
        # Faster than anyone can read the page: a script, or a slip. Nothing is sent; a person
        # sees their answers again and sends them with one more click.
        return check_answers_page(
            request,
            form,
            draft,
            "Your form has not been sent yet: Send was pressed very soon after this page "
            "opened, which can happen by mistake. Check your answers, then press Send again.",
        )
    if form.binds_guidelines and draft.guidelines != context.guidelines.version:
        # The guidelines changed between reading and signing: the member must see the new ones.
        return render(
            request,
            "problem.html",
            status_code=409,
            title="Our guidelines changed while you were filling in the form",
            paragraphs=[
                "Your form was not sent, because you would be agreeing to guidelines you "
                "have not seen.",
                "Read the guidelines again, then tick each box on the form and sign again. "
                "Your other answers are still there.",
            ],
            start_again_url=str(request.url_for("form_page", kind=form.kind)),
            start_again_text="Go back to the form",
        )
    # Never dropped: a suspected program's form is delivered, with a mark saying so.
    try:
        if context.services is None:
            raise FormsUnavailableError(context.unavailable or "")
        # Tried even while the folder was last found unwritable: it may be writable again.
        route = await context.services.worker.receive(
            Submission(
                reference=draft.reference,
                form_kind=form.kind,
                answers=checked.answers,
                received_at=datetime.now(UTC),
                urgent=is_urgent(form, checked.answers),
                guidelines_version=draft.guidelines,
                suspected_automated=draft.automated,
                replaces=normalise_reference(draft.replaces) if draft.replaces else None,
            )
        )
    except (OutboxWriteError, FormsUnavailableError):
        # Nothing was kept, but the draft still is: the member can send it again in a moment
        # without typing anything.
        return check_answers_page(request, form, draft, status_code=503)
    routes = (
        tuple(route.split("+"))
        if route
        else tuple(each.value for each in recipients_for(form, checked.answers))
    )
    receipt = Receipt(
        form.kind,
        draft.reference,
        routes,
        is_urgent(form, checked.answers),
        await open_conversation(context, form, draft.reference, routes),
    )
    context.drafts.sent(key, receipt, network_of(client_address(request)))
    return see_receipt(request)


def see_receipt(request: Request) -> Response:
    received_url = request.url_for("received", draft=request.path_params["draft"])
    return RedirectResponse(str(received_url), status_code=303, headers=NO_STORE)


async def from_old_check_page(request: Request) -> Response:
    """A check page made before drafts were sealed (a server upgraded while someone was on
    it): its signed answers become this browser's draft, with a new reference, and the member
    sees them to check and send. Nothing is sent from it directly."""
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    submitted = await read_form(request, form)
    token = submitted.get("token")
    if not isinstance(token, str) or not token:
        raise HTTPException(400, "The page you sent from was incomplete. Fill in the form again.")
    payload = context.signer.verify(form.kind, Purpose.CHECK_ANSWERS, token)
    answers = payload.get("answers")
    checked = validate(form, answers if isinstance(answers, dict) else {})
    if context.cannot_save is not None or context.drafts.files is None:
        return form_with_answers(request, form, checked.answers, checked.errors)
    now = time.time()
    replaces = payload.get("replaces")
    draft = Draft(
        kind=form.kind,
        reference=new_reference(),
        answers=checked.answers,
        created_at=now,
        checked_at=now if checked.ok else None,
        show_errors=not checked.ok,
        replaces=str(replaces) if replaces else None,
        guidelines=str(payload["guidelines"]) if payload.get("guidelines") else None,
        automated=bool(payload.get("automated")),
    )
    return save_then_go(request, browser_key_of(request), draft)
