"""The member's own links: their copy's private link (see, withdraw or delete what is kept),
the renewal reminder's link, and "Is my form being dealt with?" by reference.

Opening a link (GET) shows no answer and changes nothing: mail scanners open links. Buttons
(POST) do the rest, and what a delete does is the lifecycle's decision (lifecycle.py).
"""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from forms_server.config.env import Settings
from forms_server.export import rows
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, FieldKind, FormDefinition, as_text
from forms_server.forms.reference import EXAMPLE_REFERENCE, normalise_reference
from forms_server.handbook.guidelines import archived_version
from forms_server.lifecycle import Event
from forms_server.links import RENEW_LINK_DAYS
from forms_server.rights import KEPT, UNDELIVERED, Held
from forms_server.storage.ledger import ErasureReason
from forms_server.web.conversation import sign_in, status_page
from forms_server.web.form_flow import form_with_answers
from forms_server.web.guards import read_form
from forms_server.web.pages import context_of, link_refused, render_values
from forms_server.web.recipient_links import link_token

logger = logging.getLogger(__name__)


async def yours(request: Request) -> Response:
    """A member's private link. Opening it (GET) shows no answer and changes nothing: mail
    scanners open links as mail arrives. Buttons (POST) show what is kept, ask "are you sure",
    then withdraw or delete it, ending with a receipt the link shows from then on."""
    context = context_of(request)
    token, submitted = await link_token(request)
    asked = submitted.get("action", "open")
    action = asked if isinstance(asked, str) else ""
    opened = context.links.open_yours(token)
    reference = opened.reference if opened else None
    form = FORMS.get(opened.form_kind) if opened else None
    if reference is None or form is None:
        settings = context.settings
        return link_refused(
            request,
            f"The link in your copy works for {settings.member_link_days} days, and only as it "
            "was sent.",
            "To ask what we keep, or to withdraw or delete it, email the facilitators at "
            f"{settings.group['facilitators_email']} and give your reference.",
        )
    services = context.forms
    rights = services.rights
    erasure = await anyio.to_thread.run_sync(rights.ledger.erasure_of, reference)
    held = [] if erasure else await anyio.to_thread.run_sync(rights.held_of, reference)
    values: dict[str, object] = {
        "form": form,
        "reference": reference,
        "token": token,
        "erasure": erasure,
        "withdraws": form.binds_guidelines,
        # What erasing it deletes, from the form's own definition.
        "kept_phrases": [spec.privacy for spec in form.fields if spec.kept],
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
    held_back = await anyio.to_thread.run_sync(services.files.held.get, reference)
    values |= {"kept": kept, "state": "kept", "guidelines": guidelines, "held_back": held_back}
    if action == "show":
        return render_values(request, "yours.html", values | {"rows": rows(kept), "shown": True})
    if action == "ask":
        decided = context.settings.decisions.withdrawing_consent
        return render_values(
            request, "yours.html", values | {"asking": True, "withdrawing_means": decided}
        )
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
    services = context.forms
    reason = ErasureReason.WITHDRAWN if form.binds_guidelines else ErasureReason.MEMBER_ERASED
    # Everything held under its reference, as the lifecycle decides: now, or, if someone may be
    # at risk and nobody has picked it up, once someone has (or its retention ends).
    report = await anyio.to_thread.run_sync(
        services.rights.erase, held, reason, Event.MEMBER_DELETE
    )
    if not report.erased:
        held_back = await anyio.to_thread.run_sync(services.files.held.get, kept.reference)
        return render_values(request, "yours.html", values | {"held_back": held_back})
    what = "withdrew their consent" if form.binds_guidelines else "deleted their leave notice"
    told = True
    try:
        await anyio.to_thread.run_sync(
            services.files.notices.add,
            form.recipients.value,
            f"{form.email_name} {'withdrawn' if form.binds_guidelines else 'deleted'}: "
            f"ref {kept.reference}",
            f"The member who sent {form.email_name.lower()} {kept.reference} {what} from "
            "their own link. The forms server has deleted what it kept about it.\n\n"
            f"{withdrawal_steps(context.settings, form)}Delete the email with reference "
            f"{kept.reference} from your mailbox too.\n",
            services.files.clock(),
        )
        services.worker.wake.set()
    except OSError as error:
        told = False
        logger.error("Could not write the notice of a withdrawal: %s", error)
    erasure = await anyio.to_thread.run_sync(services.rights.ledger.erasure_of, kept.reference)
    values |= {"erasure": erasure, "state": "gone", "just_deleted": True, "told": told}
    return render_values(request, "yours.html", values)


async def renew(request: Request) -> Response:
    """A member's reminder link: the consent form again, filled in from what is kept, except
    what must be given afresh (the agreements and the signature). The link holds only the
    reference; signing again replaces the old record."""
    context = context_of(request)
    reference = context.links.open_renew(request.path_params["token"])
    store = context.forms.store
    record = await anyio.to_thread.run_sync(store.get, reference) if reference else None
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
    return form_with_answers(request, form, answers, {}, replaces=record.reference)


async def status(request: Request) -> Response:
    """For the member: whether someone has picked up their form, from the reference alone.
    The same page for a reference that is not ours as for one nobody has picked up yet, so
    references cannot be probed; no content, no names."""
    context = context_of(request)
    if request.method != "POST":
        return status_page(request, status_code=200)
    submitted = await read_form(request)
    typed = as_text(submitted.get("reference"))
    typed_receipt = as_text(submitted.get("receipt"))
    if typed_receipt.strip():
        # With a receipt: the conversation, or one page for every kind of mismatch.
        return await sign_in(request, typed, typed_receipt)
    reference = normalise_reference(typed)
    if reference is None:
        return status_page(
            request, f"Enter your reference as it was shown, like {EXAMPLE_REFERENCE}"
        )
    acknowledgement = await anyio.to_thread.run_sync(
        context.forms.files.acknowledgements.get, reference
    )
    return status_page(request, status_code=200, found=(reference, acknowledgement))
