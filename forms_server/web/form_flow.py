"""The member's form: the form, its answers, check your answers, confirm, and the receipt.

The pattern is GOV.UK's and hostedapi's: GET the form; POST the answers, which either come back
with status 400 and every error explained, or show the check-answers page holding the answers in
a signed token; POST confirm, which verifies the token, hands the submission over once, and
redirects (303) to the confirmation page with the reference. When the data folder cannot be
written, each step says so (503) and keeps what was typed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from forms_server.delivery.intake import OutboxWriteError
from forms_server.forms.definitions import LEAVE_KINDS
from forms_server.forms.fields import (
    Answers,
    FormDefinition,
    Submission,
    answer_rows,
    validate,
)
from forms_server.forms.reference import normalise_reference
from forms_server.forms.routing import is_urgent, recipients_for
from forms_server.signing import (
    ExpiredTokenError,
    FutureTokenError,
    Purpose,
    TokenError,
)
from forms_server.web.guards import limited, read_form
from forms_server.web.pages import (
    NO_STORE,
    FormsContext,
    FormsUnavailableError,
    context_of,
    expired_page,
    form_for,
    render,
)

# A field people never see: no browser's autofill targets this name (unlike "website" or "url").
HONEYPOT_FIELD = "leave_this_blank_7f3"


def sign_answers(
    context: FormsContext,
    form: FormDefinition,
    answers: Answers,
    looks_automated: bool,
    reference: str,
    replaces: str | None = None,
) -> str:
    payload: dict[str, Any] = {"reference": reference, "answers": answers}
    if replaces is not None:
        payload["replaces"] = replaces
    if form.binds_guidelines:
        payload["guidelines"] = context.guidelines.version
    if looks_automated:
        payload["automated"] = True
    return context.signer.sign(form.kind, Purpose.CHECK_ANSWERS, payload)


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


def verified_answers(
    context: FormsContext, form: FormDefinition, submitted: Mapping[str, str | list[str]]
) -> tuple[dict[str, Any], float]:
    """The answers the check page held, and how many seconds ago that page was made."""
    token = submitted.get("token")
    if not isinstance(token, str) or not token:
        raise HTTPException(400, "The page you sent from was incomplete. Fill in the form again.")
    payload, signed_at = context.signer.verify_with_time(form.kind, Purpose.CHECK_ANSWERS, token)
    # The payload was signed by us, but check its shape anyway: never trust, always verify.
    reference = normalise_reference(str(payload.get("reference", "")))
    answers = payload.get("answers")
    if reference is None or not isinstance(answers, dict):
        raise HTTPException(400, "The page you sent from was incomplete. Fill in the form again.")
    checked = validate(form, answers)
    if not checked.ok:
        raise HTTPException(400, "The page you sent from was incomplete. Fill in the form again.")
    age = time.time() - signed_at.timestamp()
    return {**payload, "reference": reference, "answers": checked.answers}, age


def draft_of(context: FormsContext, submitted: Mapping[str, str | list[str]]) -> tuple[str, str]:
    """The draft a post belongs to (its reference and token); a post from no page gets a new
    one, since only our own pages can take a draft back."""
    token = submitted.get("draft")
    if isinstance(token, str) and token:
        return context.drafts.reference_of(token), token
    return context.drafts.new()


def form_with_answers(
    request: Request,
    form: FormDefinition,
    answers: Answers,
    errors: Mapping[str, str],
    draft: str,
    status_code: int = 200,
    replaces: str | None = None,
    held: tuple[int, list[str]] | None = None,
) -> Response:
    """The form; signing again from a renewal reminder, it carries which record it replaces;
    `held`: the wait and what to say, when a limit holds the post back (answers kept)."""
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
        draft=draft,
        renews=renews,
    )
    if held is not None:
        response.headers["Retry-After"] = str(held[0])
    return response


async def form_page(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    _, draft = context_of(request).drafts.new()
    return form_with_answers(request, form, {}, {}, draft)


async def form_answers(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    submitted = await read_form(request, form)
    reference, draft = draft_of(context, submitted)
    if context.drafts.is_cancelled(reference):
        return expired_page(request)
    checked = validate(form, submitted)
    replaces = context.links.open_renew(submitted.get("renews")) if form.binds_guidelines else None
    held = limited(request, form, checked.answers, "Continue")
    if held is not None:
        return form_with_answers(
            request, form, checked.answers, {}, draft, replaces=replaces, held=held
        )
    if not checked.ok:
        return form_with_answers(
            request, form, checked.answers, checked.errors, draft, 400, replaces
        )
    if context.cannot_save is not None:
        return form_with_answers(request, form, checked.answers, {}, draft, replaces=replaces)
    looks_automated = bool(submitted.get(HONEYPOT_FIELD))
    return check_answers_page(
        request, form, checked.answers, looks_automated, reference, replaces=replaces
    )


def check_answers_page(
    request: Request,
    form: FormDefinition,
    answers: Answers,
    looks_automated: bool,
    reference: str,
    notice: str | None = None,
    replaces: str | None = None,
    cannot_save: bool = False,
) -> Response:
    context = context_of(request)
    token = sign_answers(context, form, answers, looks_automated, reference, replaces)
    rows = answer_rows(form, answers)
    return render(
        request,
        "check.html",
        status_code=503 if cannot_save else 200,
        cannot_save=cannot_save,
        form=form,
        title="Check your answers before sending",
        rows=rows,
        token=token,
        urgent=is_urgent(form, answers),
        guidelines=context.guidelines,
        notice=notice,
        draft=context.drafts.token_for(reference),
    )


async def form_change(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    payload, _ = verified_answers(context, form, await read_form(request, form))
    reference: str = payload["reference"]
    if context.drafts.is_cancelled(reference):
        return expired_page(request)
    draft = context.drafts.token_for(reference)
    return form_with_answers(
        request,
        form,
        payload["answers"],
        {},
        draft,
        replaces=payload.get("replaces"),
        held=limited(request, form, payload["answers"], "Continue"),
    )


async def form_confirm(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    payload, age = verified_answers(context, form, await read_form(request, form))
    reference: str = payload["reference"]
    if context.drafts.is_cancelled(reference):
        return expired_page(request)
    held = limited(request, form, payload["answers"], "Send")
    if held is not None:
        response = check_answers_page(
            request,
            form,
            payload["answers"],
            looks_automated=bool(payload.get("automated")),
            reference=reference,
            notice=" ".join(held[1]),
            replaces=payload.get("replaces"),
        )
        response.status_code = 429
        response.headers["Retry-After"] = str(held[0])
        return response
    if age < context.settings.min_confirm_seconds:
        # Faster than anyone can read the page: a script, or a slip. Nothing is sent; a person
        # sees their answers again and sends them with one more click.
        return check_answers_page(
            request,
            form,
            payload["answers"],
            looks_automated=bool(payload.get("automated")),
            reference=reference,
            notice=(
                "Your form has not been sent yet: Send was pressed very soon after this page "
                "opened, which can happen by mistake. Check your answers, then press Send again."
            ),
            replaces=payload.get("replaces"),
        )
    if form.binds_guidelines and payload.get("guidelines") != context.guidelines.version:
        # The guidelines changed between reading and signing: the member must see the new ones.
        return render(
            request,
            "problem.html",
            status_code=409,
            title="Our guidelines changed while you were filling in the form",
            paragraphs=[
                "Your form was not sent, because you would be agreeing to guidelines you "
                "have not seen.",
                "Read the guidelines again, then fill in the form again.",
            ],
            start_again_url=str(request.url_for("form_page", kind=form.kind)),
        )
    answers: Answers = payload["answers"]
    # Never dropped: a suspected program's form is delivered, with a mark saying so.
    try:
        if context.services is None:
            raise FormsUnavailableError(context.unavailable or "")
        # Tried even while the folder was last found unwritable: it may be writable again.
        route = await context.services.worker.receive(
            Submission(
                reference=reference,
                form_kind=form.kind,
                answers=answers,
                received_at=datetime.now(UTC),
                urgent=is_urgent(form, answers),
                guidelines_version=payload.get("guidelines"),
                suspected_automated=bool(payload.get("automated")),
                replaces=normalise_reference(str(payload["replaces"]))
                if payload.get("replaces")
                else None,
            )
        )
    except (OutboxWriteError, FormsUnavailableError):
        # Nothing was kept, but the answers are still in the page's token: the member
        # can send them again in a moment without typing anything.
        return check_answers_page(
            request,
            form,
            answers,
            looks_automated=False,
            reference=reference,
            replaces=payload.get("replaces"),
            cannot_save=True,
        )
    context.drafts.record_sent(
        reference,
        form.kind,
        tuple(route.split("+"))
        if route
        else tuple(each.value for each in recipients_for(form, payload["answers"])),
    )
    received_url = request.url_for("received", kind=form.kind, reference=reference)
    return RedirectResponse(str(received_url), status_code=303, headers=NO_STORE)


async def quick_exit(request: Request) -> Response:
    """ "Exit this page" on a form: take back the draft, then leave for the ordinary site.
    Never fails: whatever the draft token says, the member leaves at once."""
    context = context_of(request)
    token = request.query_params.get("draft", "")
    # An old or altered link still leaves at once; there is nothing of it to take back.
    with contextlib.suppress(TokenError):
        if token:
            context.drafts.cancel(context.drafts.reference_of(token))
    return RedirectResponse(
        str(context.settings.group["exit_url"]),
        status_code=303,
        # The browser's own copies of our pages go too (Chromium honours this on loopback and
        # HTTPS); Back then has to ask the server, which answers "expired".
        headers={**NO_STORE, "Clear-Site-Data": '"cache"'},
    )


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
