"""HTTP endpoints: the form, its answers, check your answers, confirm, and the confirmation.

The pattern is GOV.UK's and hostedapi's: GET the form; POST the answers, which either come back
with status 400 and every error explained, or show the check-answers page holding the answers in a
signed token; POST confirm, which verifies the token, hands the submission over once, and
redirects (303) to the confirmation page with the reference.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from forms_server.config.decisions import ConcernRoute
from forms_server.config.env import PACKAGE_DIR, Settings
from forms_server.delivery.member_copy import (
    COPY_REFUSED_ROUTE,
    COPY_ROUTE,
    MEMBER_COPY_SENDER,
    MEMBER_COPY_SUBJECT,
)
from forms_server.delivery.member_copy import LINK_SALT_KIND as MEMBER_LINK_SALT_KIND
from forms_server.delivery.renewals import LINK_SALT_KIND as RENEW_SALT_KIND
from forms_server.delivery.renewals import RENEW_LINK_DAYS
from forms_server.delivery.worker import OutboxWriteError, open_submission, recipient_addresses
from forms_server.forms.definitions import (
    FORMS,
    LEAVE_KINDS,
    Answers,
    FieldKind,
    FormDefinition,
    Recipients,
    Submission,
    answer_rows,
    body_limit,
    is_urgent,
    next_steps_for,
    recipients_for,
    shown_answer,
    validate,
    what_happens_next,
)
from forms_server.forms.reference import normalise_reference
from forms_server.handbook.guidelines import GuidelinesVersion, archived_version
from forms_server.handbook.search import Section, marked, search
from forms_server.rights import KEPT, READABLE, UNDELIVERED, WATCHED, Held, Rights
from forms_server.signing import (
    ExpiredTokenError,
    FutureTokenError,
    Purpose,
    Signer,
    TokenError,
)
from forms_server.storage.acknowledgements import (
    LINK_SALT_KIND,
    Acknowledgements,
    acknowledge_links,
)
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.outbox import Outbox
from forms_server.storage.reading import LINK_SALT_KIND as READ_SALT_KIND
from forms_server.storage.reading import ReadingRoom, ReadLimit
from forms_server.web.drafts import Drafts
from forms_server.web.limits import PostLimits

logger = logging.getLogger(__name__)

# Posts that carry no answers (the leave notice chooser). A form's own limit is `body_limit`,
# derived from its fields' limits.
SMALL_BODY_BYTES = 8 * 1024
MAX_FIELDS = 40
# A field people never see: no browser's autofill targets this name (unlike "website" or "url").
HONEYPOT_FIELD = "leave_this_blank_7f3"
NO_STORE = {"Cache-Control": "no-store"}


class Receiver(Protocol):
    """Takes a confirmed submission and keeps it safe; a reference already taken is a no-op."""

    async def receive(self, submission: Submission) -> str | None: ...


@dataclass(frozen=True)
class FormsContext:
    settings: Settings
    templates: Jinja2Templates
    signer: Signer
    guidelines: GuidelinesVersion
    receiver: Receiver
    limits: PostLimits
    drafts: Drafts
    acknowledgements: Acknowledgements
    rights: Rights
    # Link-only forms, and how often one link may show its form (a leaked link is limited).
    reading: ReadingRoom
    read_limit: ReadLimit
    # Every section of every handbook page, from the built site's search.json.
    search_sections: Sequence[Section] = ()


def make_templates(settings: Settings, stylesheets: list[str]) -> Jinja2Templates:
    environment = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(PACKAGE_DIR / "templates"),
                # The handbook's own quick exit partial, so both use the very same markup.
                FileSystemLoader(settings.handbook_config.parent / "overrides"),
            ]
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        group=settings.group,
        handbook_url=settings.handbook_url,
        theme={"stylesheets": stylesheets},
        # The quick exit partial is written for MkDocs, which names the facts config.extra.group.
        config={"extra": {"group": settings.group}},
    )
    return Jinja2Templates(env=environment)


def context_of(request: Request) -> FormsContext:
    context: FormsContext = request.app.state.forms
    return context


def form_for(kind: str) -> FormDefinition:
    form = FORMS.get(kind)
    if form is None:
        raise HTTPException(404)
    return form


def render(request: Request, template: str, status_code: int = 200, **values: object) -> Response:
    return render_values(request, template, values, status_code)


def render_values(
    request: Request, template: str, values: Mapping[str, object], status_code: int = 200
) -> Response:
    return context_of(request).templates.TemplateResponse(
        request, template, dict(values), status_code=status_code, headers=NO_STORE
    )


# -- Reading a post safely ----------------------------------------------------------------------


def refuse_cross_site(request: Request) -> None:
    """Forms are only ever posted from our own pages."""
    if request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
        raise HTTPException(403, "This form can only be sent from our own pages.")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", ""):
            raise HTTPException(403, "This form can only be sent from our own pages.")


def refuse_floods(request: Request, form: FormDefinition | None) -> None:
    address = request.client.host if request.client else "unknown"
    protected = form is not None and form.can_be_urgent
    wait = context_of(request).limits.wait_seconds(address, protected)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            detail=" ".join(
                [f"Wait {duration_in_words(seconds)}, then try again.", *way_round(request, form)]
            ),
            headers={"Retry-After": str(seconds)},
        )


def duration_in_words(seconds: int) -> str:
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def way_round(request: Request, form: FormDefinition | None) -> list[str]:
    """What someone who was told to wait can do now instead, fitting their form."""
    settings = context_of(request).settings
    facilitators = str(settings.group["facilitators_email"])
    sentences = []
    if form is not None and form.can_be_urgent:
        sentences.append("If you or someone else is in danger now, call 999.")
    if form is not None and form.rerouted_when is not None:
        contact = settings.decisions.facilitator_concern_email
        sentences.append(
            f"You can also email the facilitators at {facilitators}"
            + (f", or, if it is about a facilitator, {contact}." if contact else ".")
        )
    else:
        sentences.append(f"You can also email the facilitators at {facilitators}.")
    return sentences


async def read_form(
    request: Request, form: FormDefinition | None = None
) -> dict[str, str | list[str]]:
    refuse_cross_site(request)
    refuse_floods(request, form)
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


# -- Tokens -------------------------------------------------------------------------------------


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


# -- Endpoints ----------------------------------------------------------------------------------


def expired_page(request: Request) -> Response:
    """What a step of a draft the member left with quick exit shows: nothing of theirs."""
    return render(
        request,
        "problem.html",
        status_code=410,
        title="This page has expired",
        paragraphs=["This page is no longer available."],
        start_again_url=context_of(request).settings.handbook_url,
        start_again_text="Go to the start",
    )


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
) -> Response:
    """The form; signing again from a renewal reminder, it carries which record it replaces."""
    renews = (
        context_of(request).signer.sign(RENEW_SALT_KIND, Purpose.RENEW, {"reference": replaces})
        if replaces
        else None
    )
    return render(
        request,
        "form.html",
        status_code=status_code,
        form=form,
        title=form.title,
        answers=answers,
        errors=errors,
        draft=draft,
        renews=renews,
    )


def renewed_reference(context: FormsContext, token: object) -> str | None:
    """The record a renewal link (or a form opened from one) replaces; None for any other."""
    if not isinstance(token, str) or not token:
        return None
    try:
        payload = context.signer.verify(RENEW_SALT_KIND, Purpose.RENEW, token)
        return normalise_reference(str(payload["reference"]))
    except (TokenError, KeyError, TypeError):
        return None


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
    replaces = (
        renewed_reference(context, submitted.get("renews")) if form.binds_guidelines else None
    )
    if not checked.ok:
        return form_with_answers(
            request, form, checked.answers, checked.errors, draft, 400, replaces
        )
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
) -> Response:
    context = context_of(request)
    token = sign_answers(context, form, answers, looks_automated, reference, replaces)
    rows = answer_rows(form, answers)
    return render(
        request,
        "check.html",
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
        request, form, payload["answers"], {}, draft, replaces=payload.get("replaces")
    )


async def form_confirm(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    context = context_of(request)
    payload, age = verified_answers(context, form, await read_form(request, form))
    reference: str = payload["reference"]
    if context.drafts.is_cancelled(reference):
        return expired_page(request)
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
        route = await context.receiver.receive(
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
    except OutboxWriteError:
        # Nothing was kept, but the answers are still in the page's token: the member
        # can send them again in a moment without typing anything.
        response = check_answers_page(
            request,
            form,
            answers,
            looks_automated=False,
            reference=reference,
            notice=(
                "Your form was not sent: we could not save it just now. Nothing was "
                "kept. Wait a few minutes, then send it again."
            ),
            replaces=payload.get("replaces"),
        )
        response.status_code = 503
        return response
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


async def received(request: Request) -> Response:
    form = form_for(request.path_params["kind"])
    reference = normalise_reference(request.path_params["reference"])
    if reference is None:
        raise HTTPException(404)
    context = context_of(request)
    routes = routes_of_receipt(request, form, reference)
    decisions = context.settings.decisions
    return render(
        request,
        "received.html",
        form=form,
        title=f"{form.email_name} received",
        reference=reference,
        what_happens_next=what_happens_next(form, decisions.reply_within_days),
        readers=readers_of(context.settings, routes),
        about_a_facilitator=Recipients.FACILITATOR_CONCERNS.value in routes,
        facilitator_concern_email=decisions.facilitator_concern_email,
        copy_sent=COPY_ROUTE in routes,
        copy_refused=COPY_REFUSED_ROUTE in routes,
        copies_per_day=context.settings.member_copies_per_day,
        copy_sender=MEMBER_COPY_SENDER,
        copy_subject=MEMBER_COPY_SUBJECT,
    )


def routes_of_receipt(request: Request, form: FormDefinition, reference: str) -> tuple[str, ...]:
    """Who the form went to, for a receipt this server can vouch for; 404 for any other, so a
    guessed reference learns nothing. Just sent: from memory (the address bar says nothing of
    who it went to). Otherwise, from the outbox: its item while pending, its marker after."""
    sent = context_of(request).drafts.sent_as(reference)
    if sent is not None:
        kind, routes = sent
        if kind != form.kind:
            raise HTTPException(404)
        return routes
    outbox: Outbox = request.app.state.outbox
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


async def link_token(request: Request) -> tuple[str, dict[str, str | list[str]]]:
    """A private link's token: from the address when it is opened, from the form when one of
    its buttons is pressed (with whatever else the form posted)."""
    if request.method != "POST":
        return request.path_params["token"], {}
    submitted = await read_form(request)
    posted = submitted.get("token")
    return (posted if isinstance(posted, str) else ""), submitted


async def acknowledge(request: Request) -> Response:
    """A recipient's private link. Opening it (GET) changes nothing: mail scanners open links
    as mail arrives. Only the button (POST) records who and when, then tells the others."""
    context = context_of(request)
    token, _ = await link_token(request)
    try:
        payload = context.signer.verify(LINK_SALT_KIND, Purpose.ACKNOWLEDGE, token)
        reference = normalise_reference(str(payload["reference"]))
        by = str(payload["to"])
        routes = [str(route) for route in payload.get("routes", [])]
    except (TokenError, KeyError, TypeError):
        reference = None
    if reference is None:
        days = context.settings.acknowledge_link_days
        return link_refused(
            request,
            f"Links to mark a form as being dealt with work for {days} days, and only as they "
            "were sent.",
            "The form is still in your inbox. Tell the others another way that you have "
            "picked it up.",
        )
    acknowledgement = context.acknowledgements.get(reference)
    response_task = None
    if request.method == "POST" and acknowledgement is None:
        acknowledgement, first = context.acknowledgements.record(
            reference, str(payload.get("kind", "")), by, datetime.now(UTC)
        )
        if first:
            others = [
                address
                for route in routes
                if route in {member.value for member in Recipients}
                for address in recipient_addresses(context.settings.mail, Recipients(route))
                if address.lower() != by.lower()
            ]
            response_task = BackgroundTask(
                request.app.state.delivery.tell,
                list(dict.fromkeys(others)),
                f"In hand: ref {reference}",
                f"{by} has marked form {reference} as being dealt with.",
            )
    response = render(
        request,
        "acknowledge.html",
        title="Mark as being dealt with",
        reference=reference,
        acknowledgement=acknowledgement,
        token=token,
    )
    response.background = response_task
    return response


# -- A member's own link, from their copy ---------------------------------------------------------


def link_refused(request: Request, *paragraphs: str) -> Response:
    """A private link that is altered, expired or for something else: say so, and what to do."""
    return render(
        request,
        "problem.html",
        status_code=400,
        title="This link no longer works",
        paragraphs=list(paragraphs),
        start_again_url=None,
    )


async def yours(request: Request) -> Response:
    """A member's private link. Opening it (GET) shows no answer and changes nothing: mail
    scanners open links as mail arrives. Buttons (POST) show what is kept, ask "are you sure",
    then withdraw or delete it, ending with a receipt the link shows from then on."""
    context = context_of(request)
    token, submitted = await link_token(request)
    asked = submitted.get("action", "open")
    action = asked if isinstance(asked, str) else ""
    try:
        payload = context.signer.verify(MEMBER_LINK_SALT_KIND, Purpose.MEMBER_COPY, token)
        reference = normalise_reference(str(payload["reference"]))
        form = FORMS.get(str(payload["kind"]))
    except (TokenError, KeyError, TypeError):
        reference, form = None, None
    if reference is None or form is None:
        settings = context.settings
        return link_refused(
            request,
            f"The link in your copy works for {settings.member_link_days} days, and only as it "
            "was sent.",
            "To ask what we keep, or to withdraw or delete it, email the facilitators at "
            f"{settings.group['facilitators_email']} and give your reference.",
        )
    rights = context.rights
    erasure = await anyio.to_thread.run_sync(rights.ledger.erasure_of, reference)
    held = [] if erasure else await anyio.to_thread.run_sync(rights.held_of, reference)
    values: dict[str, object] = {
        "form": form,
        "reference": reference,
        "token": token,
        "erasure": erasure,
        "withdraws": form.binds_guidelines,
        # What erasing it deletes, from the form's own definition.
        "kept_phrases": "; ".join(spec.privacy for spec in form.fields if spec.kept),
        "title": "Your consent form" if form.binds_guidelines else "Your leave notice",
    }
    kept = next((each for each in held if each.where == KEPT), None)
    if erasure is not None or kept is None:
        delivering = any(each.where == UNDELIVERED for each in held)
        return render_values(
            request, "yours.html", values | {"state": "gone", "delivering": delivering}
        )
    version = kept.guidelines_version
    guidelines = archived_version(rights.data_dir, version) if version else None
    values |= {"kept": kept, "state": "kept", "guidelines": guidelines}
    if action == "show":
        return render_values(
            request, "yours.html", values | {"rows": rights.rows(kept), "shown": True}
        )
    if action == "ask":
        decided = context.settings.decisions.withdrawing_consent
        return render_values(
            request, "yours.html", values | {"asking": True, "withdrawing_means": decided}
        )
    if action == "delete" and any(each.where == WATCHED for each in held):
        # Someone may be at risk and nobody has picked it up: nothing goes before they do.
        return render_values(request, "yours.html", values | {"held_back": True})
    if action == "delete":
        return await delete_yours(request, form, kept, held, values)
    return render_values(request, "yours.html", values)


def withdrawal_steps(settings: Settings, form: FormDefinition) -> str:
    """What a withdrawal means, as far as the group decided it; nothing it did not decide."""
    if not form.binds_guidelines:
        return ""
    decided = settings.decisions.withdrawing_consent
    meaning = f"The group decided: {decided}\n" if decided else ""
    return (
        "Their consent to hold information that shows they come to the group is withdrawn.\n"
        + meaning
    )


async def delete_yours(
    request: Request,
    form: FormDefinition,
    kept: Held,
    held: list[Held],
    values: dict[str, object],
) -> Response:
    context = context_of(request)
    rights = context.rights
    reason = ErasureReason.WITHDRAWN if form.binds_guidelines else ErasureReason.MEMBER_ERASED
    # The kept record, and a link-only copy still waiting to be read, if there is one.
    readable = [each for each in held if each.where == READABLE]
    report = await anyio.to_thread.run_sync(rights.erase, [kept, *readable], reason)
    if not report.erased:
        return render_values(request, "yours.html", values | {"held_back": True})
    what = "withdrew their consent" if form.binds_guidelines else "deleted their leave notice"
    told = True
    try:
        await anyio.to_thread.run_sync(
            request.app.state.delivery.notify,
            form.recipients,
            f"{form.email_name} {'withdrawn' if form.binds_guidelines else 'deleted'}: "
            f"ref {kept.reference}",
            f"The member who sent {form.email_name.lower()} {kept.reference} {what} from "
            "their own link. The forms server has deleted what it kept about it.\n\n"
            f"{withdrawal_steps(context.settings, form)}Delete the email with reference "
            f"{kept.reference} from your mailbox too.\n",
        )
    except OSError as error:
        told = False
        logger.error("Could not write the notice of a withdrawal: %s", error)
    erasure = await anyio.to_thread.run_sync(rights.ledger.erasure_of, kept.reference)
    values |= {"erasure": erasure, "state": "gone", "just_deleted": True, "told": told}
    return render_values(request, "yours.html", values)


async def renew(request: Request) -> Response:
    """A member's reminder link: the consent form again, filled in from what is kept, except
    what must be given afresh (the agreements and the signature). The link holds only the
    reference; signing again replaces the old record."""
    context = context_of(request)
    reference = renewed_reference(context, request.path_params["token"])
    record = (
        await anyio.to_thread.run_sync(context.rights.store.get, reference) if reference else None
    )
    form = FORMS.get(record.form_kind) if record else None
    if record is None or form is None or not form.binds_guidelines:
        return link_refused(
            request,
            f"The link in your reminder works for {RENEW_LINK_DAYS} days, and only while we "
            "still keep your form.",
            "You can fill in the consent form again from the start.",
        )
    answers: Answers = {
        spec.name: record.kept[spec.name]
        for spec in form.fields
        if spec.name in record.kept and spec.kind is not FieldKind.AGREE and not spec.signs
    }
    _, draft = context.drafts.new()
    return form_with_answers(request, form, answers, {}, draft, replaces=record.reference)


# -- A recipient's link to a link-only form ---------------------------------------------------


async def read(request: Request) -> Response:
    """Opening the link (GET) shows no answer and changes nothing: mail scanners open links.
    "Show the submission" (POST) shows the form as the full email would, and records who read
    it and when; reading deletes nothing, so a second recipient can read it too."""
    context = context_of(request)
    token, _ = await link_token(request)
    try:
        payload = context.signer.verify(READ_SALT_KIND, Purpose.READ, token)
        reference = normalise_reference(str(payload["reference"]))
        form = FORMS.get(str(payload["kind"]))
        by = str(payload["to"])
    except (TokenError, KeyError, TypeError):
        reference, form, by = None, None, ""
    readable = await anyio.to_thread.run_sync(context.reading.get, reference) if reference else None
    if reference is None or form is None or readable is None or readable.form_kind != form.kind:
        window = context.settings.decisions.read_window_days
        return link_refused(
            request,
            f"Links to read a form work for {window} days at most, and only as they were sent.",
            "If you need what it said, ask the others who received it.",
        )
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "form": form,
        "reference": reference,
        "token": token,
        "readable": readable,
        "title": f"{form.email_name}: ref {reference}",
    }
    if not readable.sealed or now >= readable.until:
        return render_values(request, "read.html", values | {"gone": True})
    if request.method != "POST":
        return render_values(request, "read.html", values)
    wait = context.read_limit.wait_seconds(f"{reference}/{by}", now)
    if wait is not None:
        raise HTTPException(
            429,
            detail=f"This link has shown the form many times. Wait {duration_in_words(wait)}.",
            headers={"Retry-After": str(wait)},
        )
    readable = await anyio.to_thread.run_sync(context.reading.read, reference, by, now)
    if readable is None or not readable.sealed:
        return render_values(request, "read.html", values | {"gone": True})
    submission = open_submission(context.rights.store.sealer, readable)
    answers = submission.answers
    settings = context.settings
    acknowledge_url = acknowledge_links(context.signer, "")(submission, by)
    return render_values(
        request,
        "read.html",
        values
        | {
            "readable": readable,
            "shown": True,
            "submission": submission,
            "rows": [row for row in answer_rows(form, answers) if row[0].for_facilitators],
            "next_steps": next_steps_for(form, answers),
            "reply_to": shown_answer(form, answers, "reply_to"),
            "acknowledge_token": acknowledge_url.rsplit("/", 1)[1] if acknowledge_url else None,
            "acknowledgement": context.acknowledgements.get(reference),
            "group_name": settings.group["name"],
        },
    )


async def status(request: Request) -> Response:
    """For the member: whether someone has picked up their form, from the reference alone.
    The same page for a reference that is not ours as for one nobody has picked up yet, so
    references cannot be probed; no content, no names."""
    context = context_of(request)
    reference = error = None
    acknowledgement = None
    if request.method == "POST":
        typed = (await read_form(request)).get("reference")
        reference = normalise_reference(typed if isinstance(typed, str) else "")
        if reference is None:
            error = "Enter your reference as it was shown, like 4KX-7QD-M2P"
        else:
            acknowledgement = context.acknowledgements.get(reference)
    return render(
        request,
        "status.html",
        status_code=400 if error else 200,
        title="Is my form being dealt with?",
        reference=reference,
        error=error,
        errors={"reference": error} if error else {},
        acknowledgement=acknowledgement,
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


# -- Errors -------------------------------------------------------------------------------------

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


# -- Searching the handbook without JavaScript ----------------------------------------------------

# Longer than any question a member types; a longer one is cut, not refused.
SEARCH_QUERY_LIMIT = 200


async def search_page(request: Request) -> Response:
    """The handbook's search form posts here when the browser runs no JavaScript: the same
    index and ranking as the handbook's own script. The query is never logged or kept."""
    query = " ".join(request.query_params.get("q", "").split())[:SEARCH_QUERY_LIMIT]
    sections = context_of(request).search_sections
    results = search(sections, query) if query else []
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


# -- Operations ---------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """For monitoring: 503 with the reasons as soon as a form may not reach anyone. JSON only,
    even on error, and nothing personal. It reads what the worker's last pass found and does
    no I/O of its own, so polling it costs nothing however long the history."""
    try:
        health = request.app.state.delivery.health(datetime.now(UTC))
        body, status = health.to_json(), 200 if health.ok else 503
    except Exception as error:  # noqa: BLE001 - monitoring must always get an answer
        logger.error("The health check hit %s", type(error).__name__)
        body = {"status": "failing", "problems": ["The health check itself failed."]}
        status = 503
    return JSONResponse(body, status_code=status, headers=NO_STORE)


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
