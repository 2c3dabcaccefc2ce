"""The member's side of a conversation (storage/conversations.py).

A concern or a left-early notice gives its member a receipt when it is sent. With the reference
and the receipt, "Is my form being dealt with?" opens the conversation in this browser only, as
a draft is: a strictly necessary cookie holds the key, the page's address is opaque, and the
receipt is never echoed back, put in an address or logged. The page shows whether someone is
dealing with the form, every message from the group, and a box to answer. It ends with "Exit
this page", after the draft idle time, or when the member deletes the conversation.

A wrong receipt and an unknown reference get the same page from the same code path (one key
derivation each, conversations.verify). Failed attempts wait longer and longer, per reference
and per network (attempts.py); the people who received the form are told when its reference
sees repeated failures.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from forms_server.delivery.composer import addresses_by_route
from forms_server.forms.fields import (
    MAX_EMAIL_LENGTH,
    Field,
    FieldKind,
    FormDefinition,
    as_text,
    first_control_character,
    validate_field,
)
from forms_server.forms.reference import EXAMPLE_REFERENCE, normalise_reference
from forms_server.lifecycle import Do, Event
from forms_server.mail.messages import new_message_id
from forms_server.storage.acknowledgements import Acknowledgement
from forms_server.storage.conversation_items import Conversation
from forms_server.storage.outbox_items import RecipientState
from forms_server.storage.receipts import new_receipt
from forms_server.web.attempts import TELL_AFTER, wait_after
from forms_server.web.drafts import browser_key_of, new_browser_key, remember_key
from forms_server.web.guards import client_address, duration_in_words, read_form
from forms_server.web.limits import network_of
from forms_server.web.pages import NO_STORE, FormsContext, context_of, expired_page, render

logger = logging.getLogger(__name__)

# A message, from either side: long enough to say what matters, short enough to read on a phone.
MESSAGE_LIMIT = 2000
NO_MATCH = "The reference and receipt do not match. Check both, then try again"


async def open_conversation(
    context: FormsContext, form: FormDefinition, reference: str, routes: tuple[str, ...]
) -> str | None:
    """At Send: the receipt to show the member once, with its slow hash kept; None for a form
    that has none, or when it cannot be kept (the form is sent either way)."""
    if not form.converses or context.services is None:
        return None
    receipt = new_receipt()
    try:
        await anyio.to_thread.run_sync(
            context.services.files.conversations.open_for,
            reference,
            form.kind,
            routes,
            receipt,
            datetime.now(UTC),
        )
    except OSError as error:
        logger.error("A conversation could not be opened (%s)", type(error).__name__)
        return None
    return receipt


def message_problem(text: str) -> str | None:
    """What is wrong with a message, in the words the page shows; None if nothing."""
    if not text.strip():
        return "Enter your message"
    if len(text) > MESSAGE_LIMIT:
        return f"Your message must be {MESSAGE_LIMIT} characters or fewer"
    character = first_control_character(text, allow_newlines=True)
    if character is not None:
        return "Your message has a character that cannot be sent: delete it and try again"
    return None


def status_page(
    request: Request,
    error: str | None = None,
    field: str = "reference",
    status_code: int = 400,
    retry_after: int | None = None,
    found: tuple[str, Acknowledgement | None] | None = None,
) -> Response:
    """ "Is my form being dealt with?": empty, in error, or with `found` (a reference, and
    whether someone has picked it up)."""
    reference, acknowledgement = found or (None, None)
    response = render(
        request,
        "status.html",
        status_code=status_code,
        title="Is my form being dealt with?",
        reference=reference,
        error=error,
        error_field=field,
        errors={field: error} if error else {},
        acknowledgement=acknowledgement,
        example_reference=EXAMPLE_REFERENCE,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def sign_in(request: Request, typed_reference: str, typed_receipt: str) -> Response:
    """Reference and receipt: the conversation, in this browser; or the one page that says
    they do not match, whatever was wrong."""
    context = context_of(request)
    files = context.forms.files
    network = network_of(client_address(request))
    reference = normalise_reference(typed_reference)
    keys = [f"network:{network}", *([f"reference:{reference}"] if reference else [])]
    wait = context.attempts.wait_seconds(keys)
    if wait is not None:
        return status_page(
            request,
            f"There have been too many tries. Wait {duration_in_words(wait)}, then try again",
            "receipt",
            429,
            wait,
        )
    conversation = await anyio.to_thread.run_sync(
        files.conversations.verify, reference or typed_reference, typed_receipt
    )
    if conversation is None:
        counts = context.attempts.failed(keys)
        tries = max(counts.values())
        if reference is not None and counts.get(f"reference:{reference}") == TELL_AFTER:
            try:
                await anyio.to_thread.run_sync(tell_of_failures, context, reference)
                context.forms.worker.wake.set()
            except OSError as error:
                # The try is still answered; the data folder's fault shows on the health check.
                logger.error("The wrong receipts could not be told (%s)", type(error).__name__)
        after = wait_after(tries)
        waits = f". You now need to wait {duration_in_words(round(after))}" if after else ""
        return status_page(request, NO_MATCH + waits, "receipt", 429 if after else 400)
    context.attempts.succeeded(f"reference:{conversation.reference}")
    key = browser_key_of(request) or new_browser_key()
    try:
        name = context.drafts.open_conversation(key, conversation.reference, network)
    except OSError:
        return status_page(
            request,
            "We cannot open your messages right now. Try again in a few minutes",
            "receipt",
            503,
        )
    response = RedirectResponse(
        str(request.url_for("conversation", name=name)), status_code=303, headers=NO_STORE
    )
    remember_key(response, key, context.settings.is_production)
    return response


def tell_of_failures(context: FormsContext, reference: str) -> None:
    """The people who received the form hear that someone keeps trying its reference with a
    wrong receipt: the member may need to be told another way, or the reference has leaked."""
    files = context.forms.files
    conversation = files.conversations.get(reference)
    if conversation is None:
        return
    addresses = addresses_by_route(context.settings.mail, conversation.routes)
    files.tell(
        reference,
        "",
        f"Wrong receipts: ref {reference}",
        f"Someone has tried {TELL_AFTER} times to open the conversation about form "
        f"{reference} with a receipt that does not match. Each try now waits longer. If the "
        "member told you they cannot open it, they may have lost their receipt.\n",
        addresses,
    )


# The member's own address, for "There is a message for you" and nothing else.
TELL_ADDRESS = Field(
    name="email",
    privacy="your email address, if you ask us to tell you of a new message",
    label="Email address",
    kind=FieldKind.EMAIL,
    short_name="Email address",
    required_message="Enter the email address to tell you at",
    max_length=MAX_EMAIL_LENGTH,
    autocomplete="email",
)


async def conversation(request: Request) -> Response:
    """GET shows the conversation; POST answers it, asks to be told of (or stops being told
    of) new messages, or deletes it."""
    context = context_of(request)
    key = browser_key_of(request)
    name = request.path_params["name"]
    reference = context.drafts.conversation_of(key, name) if key else None
    if key is None or reference is None:
        return expired_page(request)
    files = context.forms.files
    found = await anyio.to_thread.run_sync(files.conversations.get, reference)
    if found is None or found.closed_at is not None:
        context.drafts.close_conversation(key)
        return render(
            request,
            "problem.html",
            status_code=410,
            title="This conversation has been deleted",
            paragraphs=[
                "There are no messages to show. If you still need to tell us something, "
                "use a form or email the facilitators."
            ],
        )
    errors: dict[str, str] = {}
    typed: dict[str, str] = {}
    status_code = 200
    if request.method == "POST":
        submitted = await read_form(request)
        action = as_text(submitted.get("action"))
        try:
            done = await act(request, key, found, action, submitted, typed, errors)
        except OSError as error:
            # Nothing was changed; what the member typed stays in its box.
            logger.error("A conversation could not be changed (%s)", type(error).__name__)
            errors[NOT_SAVED_FIELDS.get(action, "answer")] = NOT_SAVED
            status_code = 503
        else:
            if done is not None:
                return done
    messages, told = await anyio.to_thread.run_sync(files.conversations.contents, found)
    acknowledgement = await anyio.to_thread.run_sync(files.acknowledgements.get, reference)
    return render(
        request,
        "conversation.html",
        status_code=400 if errors and status_code == 200 else status_code,
        title="Messages about your form",
        reference=reference,
        messages=messages,
        acknowledgement=acknowledgement,
        typed=typed,
        errors=errors,
        told=told is not None,
        sent=request.query_params.get("sent") == "1" and not errors,
        name=name,
        message_limit=MESSAGE_LIMIT,
    )


# When the data folder cannot be written: which field the error summary points to.
NOT_SAVED = "We could not save this just now. Nothing was changed. Try again in a few minutes"
NOT_SAVED_FIELDS = {
    "answer": "answer",
    "tell": "email",
    "stop_telling": "email",
    "delete": "delete",
}


async def act(
    request: Request,
    key: bytes,
    found: Conversation,
    action: str,
    submitted: Mapping[str, str | list[str]],
    typed: dict[str, str],
    errors: dict[str, str],
) -> Response | None:
    """The member's action: the page to go to, or None to show the conversation again (with
    `errors`, and what they `typed`). OSError if the data folder cannot be written."""
    context = context_of(request)
    files = context.forms.files
    reference, name = found.reference, request.path_params["name"]
    if action == "answer":
        typed["answer"] = as_text(submitted.get("answer"))
        problem = message_problem(typed["answer"])
        if problem is not None:
            errors["answer"] = problem
            return None
        await send_answer(context, found, typed["answer"])
        return back_to(request, name, "?sent=1")
    if action in {"tell", "stop_telling"}:
        address, problem = validate_field(TELL_ADDRESS, submitted.get("email"))
        typed["email"] = str(address)
        if action == "tell" and problem is not None:
            errors["email"] = problem
            return None
        told = str(address) if action == "tell" else None
        await anyio.to_thread.run_sync(files.conversations.tell, reference, told)
        return back_to(request, name, "")
    if action == "delete":
        outcome = await anyio.to_thread.run_sync(
            files.happen, reference, Event.CONVERSATION_DELETED
        )
        context.drafts.close_conversation(key)
        kept = outcome is not None and Do.CLOSE_CONVERSATION in outcome.rule.then
        return deleted_page(request, kept)
    return None


def deleted_page(request: Request, kept_for_the_group: bool) -> Response:
    """What the member's delete did, as the lifecycle decided it: at once, or, while nobody
    has picked the form up, closed to them and kept for the people who received it."""
    if kept_for_the_group:
        said = [
            "You can no longer open these messages, here or with your receipt. If you gave us "
            "an email address to tell you of them, we have deleted it.",
            "Nobody has marked your form as being dealt with yet. So the people who received "
            "it can still read the messages, until one of them marks it as being dealt with. "
            "Then we delete them.",
        ]
    else:
        said = ["We have deleted every message about this form, yours and ours."]
    return render(
        request,
        "problem.html",
        title="Your conversation has been deleted",
        paragraphs=[*said, "Your form itself is kept as our privacy notice says."],
    )


async def send_answer(context: FormsContext, found: Conversation, answer: str) -> None:
    """The member's answer, on its way to everyone who received the form."""
    sender = context.settings.mail.sender
    to = tuple(
        RecipientState(address, new_message_id(sender))
        for address in addresses_by_route(context.settings.mail, found.routes)
    )
    files = context.forms.files
    await anyio.to_thread.run_sync(files.answered, found.reference, answer, datetime.now(UTC), to)
    context.forms.worker.wake.set()


def back_to(request: Request, name: str, query: str) -> Response:
    return RedirectResponse(
        str(request.url_for("conversation", name=name)) + query, status_code=303, headers=NO_STORE
    )
