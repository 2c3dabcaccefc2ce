"""The recipients' links: "mark as being dealt with", a link-only form's reading page, and the
conversation with the member who sent it.

Opening a link (GET) changes nothing: mail scanners open links as mail arrives. Only a button
(POST) does something, and what a pick-up does (tell everyone it reached, the escalation contact
included; complete an erasure held back for it; wake the worker) is the lifecycle's decision.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from forms_server.delivery.composer import addresses_by_route, open_submission
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import answer_rows, next_steps_for
from forms_server.forms.routing import shown_answer
from forms_server.mail.messages import new_message_id
from forms_server.storage.conversation_items import Conversation
from forms_server.storage.outbox_items import MEMBER_COPY, RecipientState
from forms_server.web.conversation import MESSAGE_LIMIT, NOT_SAVED, message_problem
from forms_server.web.guards import duration_in_words, read_form
from forms_server.web.pages import context_of, link_refused, render, render_values

logger = logging.getLogger(__name__)


async def link_token(request: Request) -> tuple[str, dict[str, str | list[str]]]:
    """A private link's token: from the address when it is opened, from the form when one of
    its buttons is pressed (with whatever else the form posted)."""
    if request.method != "POST":
        return request.path_params["token"], {}
    submitted = await read_form(request)
    posted = submitted.get("token")
    return (posted if isinstance(posted, str) else ""), submitted


async def acknowledge(request: Request) -> Response:
    """A recipient's private link: the button records who and when (the first stands)."""
    context = context_of(request)
    token, _ = await link_token(request)
    opened = context.links.open_acknowledge(token)
    if opened is None:
        days = context.settings.acknowledge_link_days
        return link_refused(
            request,
            f"Links to mark a form as being dealt with work for {days} days, and only as they "
            "were sent.",
            "The form is still in your inbox. Tell the others another way that you have "
            "picked it up.",
        )
    services = context.forms
    files = services.files
    acknowledgement = await anyio.to_thread.run_sync(files.acknowledgements.get, opened.reference)
    # Who the form went to, by its routes, for a form whose watch knows no one (an older
    # one): the pick-up tells them, and never the person who picked it up.
    by_route = addresses_by_route(context.settings.mail, opened.routes)
    # Only where there are others does the page say they are, or were, told.
    others = {address.lower() for address in by_route} - {opened.to.lower()}
    if request.method == "POST" and acknowledgement is None:
        acknowledgement, first = await anyio.to_thread.run_sync(
            files.pick_up, opened.reference, opened.form_kind, opened.to, by_route
        )
        if first:
            services.worker.wake.set()  # the notices go now, and the health check clears now
    return render(
        request,
        "acknowledge.html",
        title="Mark as being dealt with",
        reference=opened.reference,
        acknowledgement=acknowledgement,
        token=token,
        others=bool(others),
        ask_token=await ask_token_for(request, opened.reference, opened.form_kind, opened.to),
    )


async def ask_token_for(request: Request, reference: str, form_kind: str, to: str) -> str | None:
    """A recipient's own link to the conversation, when the member has a receipt for it."""
    context = context_of(request)
    conversations = context.forms.files.conversations
    found = await anyio.to_thread.run_sync(conversations.get, reference)
    return context.links.ask_token(reference, form_kind, to) if found else None


async def read(request: Request) -> Response:
    """Opening the link (GET) shows no answer and changes nothing. "Show the submission" (POST)
    shows the form as the full email would, and records who read it and when; reading deletes
    nothing, so a second recipient can read it too."""
    context = context_of(request)
    token, _ = await link_token(request)
    opened = context.links.open_read(token)
    form = FORMS.get(opened.form_kind) if opened else None
    files = context.forms.files
    readable = (
        await anyio.to_thread.run_sync(files.reading.get, opened.reference) if opened else None
    )
    if opened is None or form is None or readable is None or readable.form_kind != form.kind:
        window = context.settings.decisions.read_window_days
        return link_refused(
            request,
            f"Links to read a form work for {window} days at most, and only as they were sent.",
            "If you need what it said, ask the others who received it.",
        )
    reference, by = opened.reference, opened.to
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "form": form,
        "reference": reference,
        "token": token,
        "readable": readable,
        "title": f"{form.email_name}: ref {reference}",
    }
    if not await anyio.to_thread.run_sync(files.readable_now, readable, now):
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
    readable = await anyio.to_thread.run_sync(files.reading.read, reference, by, now)
    if readable is None or not readable.sealed:
        return render_values(request, "read.html", values | {"gone": True})
    submission = open_submission(context.forms.store.sealer, readable)
    answers = submission.answers
    acknowledge_url = context.links.acknowledge(submission, by)
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
            "ask_token": await ask_token_for(request, reference, form.kind, by),
            "acknowledgement": files.acknowledgements.get(reference),
            "group_name": context.settings.group["name"],
        },
    )


async def ask(request: Request) -> Response:
    """A recipient's conversation with the member. Opening the link (GET) shows nothing, as
    mail scanners open links; "Show the conversation" (POST) shows every message; a question
    (POST) is kept, sealed, for the member to read with their reference and receipt. Asking is
    not picking the form up: only "Mark as being dealt with" stops its escalation."""
    context = context_of(request)
    token, submitted = await link_token(request)
    opened = context.links.open_ask(token)
    files = context.forms.files
    found = (
        await anyio.to_thread.run_sync(files.conversations.get, opened.reference)
        if opened
        else None
    )
    if opened is None:
        days = context.settings.acknowledge_link_days
        return link_refused(
            request,
            f"Links to a conversation with a member work for {days} days, and only as they were "
            "sent. Each answer from the member comes with new ones.",
        )
    values: dict[str, object] = {
        "title": f"Ask the member a question: ref {opened.reference}",
        "reference": opened.reference,
        "token": token,
        "gone": found is None,
        "closed": found is not None and found.closed_at is not None,
        "message_limit": MESSAGE_LIMIT,
    }
    if found is None or request.method != "POST":
        return render_values(request, "ask.html", values)
    typed = submitted.get("question")
    question = typed if isinstance(typed, str) else None
    error = None if question is None else message_problem(question)
    if values["closed"]:
        question = error = None  # the member can no longer read it: nothing more is asked
    if question is not None and error is None:
        try:
            # The member's own address is only known, sealed, in the conversation: the alert
            # is offered here and kept there only if they asked to be told.
            alert = RecipientState(MEMBER_COPY, new_message_id(context.settings.mail.sender))
            await anyio.to_thread.run_sync(
                files.asked, opened.reference, opened.to, question, alert
            )
            context.forms.worker.wake.set()
        except LookupError:  # the member deleted it a moment ago
            return render_values(request, "ask.html", values | {"gone": True})
        except OSError as fault:
            # Nothing was saved; the question stays in its box.
            logger.error("A question could not be saved (%s)", type(fault).__name__)
            return await asked_page(request, values, found, question, NOT_SAVED, 503)
        values["asked"] = True
        question = ""
        found = await anyio.to_thread.run_sync(files.conversations.get, opened.reference)
    return await asked_page(request, values, found, question, error, 400 if error else 200)


async def asked_page(
    request: Request,
    values: dict[str, object],
    found: Conversation | None,
    question: str | None,
    error: str | None,
    status_code: int,
) -> Response:
    """The conversation as the group sees it, with the question box (and what is in it)."""
    conversations = context_of(request).forms.files.conversations
    messages = await anyio.to_thread.run_sync(conversations.messages, found) if found else []
    return render_values(
        request,
        "ask.html",
        values
        | {
            "shown": True,
            "messages": messages,
            "question": question or "",
            "error": error,
            "errors": {"question": error} if error else {},
        },
        status_code=status_code,
    )
