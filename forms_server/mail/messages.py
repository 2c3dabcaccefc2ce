"""The email a recipient receives, built from templates (mail/relay.py sends it).

One message per recipient: each has its own Message-ID and its own envelope holding exactly that
one address, so a refusal, a retry or a duplicate concerns one person. The subject carries only
the group name, the form, an urgency marker and the reference: it is what shows on a lock screen
or in a shared inbox.
"""

from __future__ import annotations

import contextlib
import email.policy
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from jinja2 import Environment, FileSystemLoader, select_autoescape

from forms_server.config.group import PACKAGE_DIR
from forms_server.config.mail import MailSettings
from forms_server.delivery.member_copy import (
    MEMBER_COPY_SENDER,
    MEMBER_COPY_SUBJECT,
    MESSAGE_ALERT_SUBJECT,
)
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import (
    FormDefinition,
    Submission,
    answer_rows,
    is_usable_email_address,
    next_steps_for,
)
from forms_server.forms.routing import shown_answer
from forms_server.storage.records import StoredRecord

TEMPLATES = PACKAGE_DIR / "templates" / "email"
# Headers are never folded: RFC 5322 allows lines of up to 998 characters, and folding at 78 can
# start a subject on an empty line (a group name with an unbalanced bracket does it), which some
# mail clients then show as having no subject.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class DeliveryError(FormsServerError):
    """The message did not reach the relay. The message never holds a member's answers."""


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: a timeout, a dropped connection, a 4xx reply."""


class PermanentDeliveryError(DeliveryError):
    """Trying again will not help: a 5xx reply, refused credentials, no safe way to send."""


class MessageBuildError(PermanentDeliveryError):
    """The message itself could not be made (only a damaged or hand-made outbox item can do
    this: the forms accept only what the mailer can carry)."""


def form_of(submission: Submission) -> FormDefinition:
    """The submission's form; MessageBuildError for a kind no form has (a damaged item)."""
    form = FORMS.get(submission.form_kind)
    if form is None:
        raise MessageBuildError(f"No form is called {submission.form_kind!r}.")
    return form


@contextlib.contextmanager
def message_building(what: str) -> Iterator[None]:
    """A header or part the email library refuses (its defects are ValueErrors) becomes a
    MessageBuildError naming what could not be made: that one recipient's failure."""
    try:
        yield
    except (ValueError, TypeError, IndexError) as error:
        raise MessageBuildError(
            f"The {what} could not be made ({type(error).__name__})."
        ) from error


def new_message_id(sender: str) -> str:
    """Random, so it says nothing about the form or the member; kept with the recipient's
    delivery state, so a retried send is recognisably the same message."""
    domain = sender.rsplit("@", 1)[1]
    return f"<{secrets.token_hex(16)}@{domain}>"


def subject_for(group_name: str, form: FormDefinition, submission: Submission) -> str:
    urgent = " - URGENT" if submission.urgent else ""
    automated = " - may be automated" if submission.suspected_automated else ""
    return f"{group_name}: {form.email_name}{urgent}{automated} - ref {submission.reference}"


def reply_address(form: FormDefinition, submission: Submission) -> str | None:
    """The address the member asked us to reply to, when they asked for a reply and gave one:
    never an address given for anything else (their own copy, for example)."""
    return shown_answer(form, submission.answers, "reply_to")


templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def bodies(
    form: FormDefinition, submission: Submission, acknowledge_url: str | None = None
) -> tuple[str, str]:
    """The plain-text and HTML parts, from the same rows the check page shows."""
    values = {
        "form": form,
        "submission": submission,
        "acknowledge_url": acknowledge_url,
        "rows": [row for row in answer_rows(form, submission.answers) if row[0].for_facilitators],
        "next_steps": next_steps_for(form, submission.answers),
        "reply_to": reply_address(form, submission),
    }
    return (
        templates.get_template("form.txt").render(values),
        templates.get_template("form.html").render(values),
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every message from the service has: one recipient, its own identity, the relay's
    settings (the sender), the group it speaks for and when it was made."""

    recipient: str
    message_id: str
    mail: MailSettings
    group_name: str
    sent_at: datetime


def addressed_message(
    envelope: Envelope, subject: str, sender_name: str | None = None
) -> EmailMessage:
    """The headers every message from the service has: from the service, to one person."""
    message = EmailMessage()
    message["From"] = Address(
        display_name=sender_name or f"{envelope.group_name} forms",
        addr_spec=envelope.mail.sender,
    )
    message["To"] = Address(addr_spec=envelope.recipient)
    message["Subject"] = subject
    message["Date"] = format_datetime(envelope.sent_at)
    message["Message-ID"] = envelope.message_id
    # Out-of-office replies and autoresponders must not answer the service's address.
    message["Auto-Submitted"] = "auto-generated"
    return message


def form_message_headers(
    form: FormDefinition, submission: Submission, envelope: Envelope
) -> EmailMessage:
    """A form's message to one recipient, before its body: its subject, and High importance
    when someone may be at risk."""
    message = addressed_message(envelope, subject_for(envelope.group_name, form, submission))
    if submission.urgent:
        message["Importance"] = "High"
    return message


def build_message(
    submission: Submission,
    envelope: Envelope,
    acknowledge_url: str | None = None,
    reply_header: bool = True,
) -> EmailMessage:
    """The message for one recipient; MessageBuildError if it cannot be made. A concern or an
    urgent notice carries the recipient's own link to mark it as being dealt with. The member's
    reply address is always in the body; it is a Reply-To header only when `reply_header`: a
    message to be encrypted has none, because the header would stay outside the encryption,
    beside the subject, and many mail programs ignore headers inside an encrypted part."""
    form = form_of(submission)
    reply_to = reply_address(form, submission)
    if reply_to is not None and not is_usable_email_address(reply_to):
        raise MessageBuildError("The member's address cannot be used as a reply address.")
    with message_building("message"):
        message = form_message_headers(form, submission, envelope)
        if reply_to is not None and reply_header:
            message["Reply-To"] = Address(addr_spec=reply_to)
        plain, html = bodies(form, submission, acknowledge_url)
        message.set_content(plain)
        message.add_alternative(html, subtype="html")
    return message


def build_link_only(
    submission: Submission,
    envelope: Envelope,
    read_url: str,
    until: datetime,
    acknowledge_url: str | None = None,
) -> EmailMessage:
    """What arrived, how urgent, its reference, what to do first and the recipient's own link:
    never an answer, never a name, never a Reply-To (the address is on the page)."""
    form = form_of(submission)
    plain = templates.get_template("link_only.txt").render(
        form=form,
        submission=submission,
        read_url=read_url,
        until=until,
        acknowledge_url=acknowledge_url,
    )
    with message_building("message"):
        message = form_message_headers(form, submission, envelope)
        message.set_content(plain)
    return message


def build_digest(
    submissions: list[Submission],
    envelope: Envelope,
    sent_alone_per_hour: int,
    nobody_picked_up: bool = False,
) -> EmailMessage:
    """Many forms in one message, for a recipient receiving more than `sent_alone_per_hour`:
    a flood cannot bury the inbox, and nothing in it is lost. Urgent forms come first. An
    escalation digest says so in its subject."""
    ordered = sorted(submissions, key=lambda submission: not submission.urgent)
    urgent = sum(1 for submission in ordered if submission.urgent)
    parts = []
    for submission in ordered:
        form = form_of(submission)
        parts.append(bodies(form, submission))
    what = "forms nobody has picked up" if nobody_picked_up else "forms"
    intro = (
        f"More than {sent_alone_per_hour} {what} reached you within an hour, so the next ones "
        "come together in emails like this one until the flow slows down. Each form below is "
        "complete. Urgent ones come first."
    )
    divider = "\n" + "=" * 70 + "\n\n"
    plain = intro + "\n\n" + divider.join(text for text, _ in parts)
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Forms</title>'
        f"</head><body><p>{intro}</p><hr>"
        + "<hr>".join(
            html_part.split("<body>", 1)[-1].rsplit("</body>", 1)[0] for _, html_part in parts
        )
        + "</body></html>"
    )
    urgent_words = f" - {urgent} URGENT" if urgent else ""
    prefix = "NOBODY HAS PICKED THESE UP - " if nobody_picked_up else ""
    with message_building("digest"):
        message = addressed_message(
            envelope,
            f"{prefix}{envelope.group_name}: {len(ordered)} forms in one email{urgent_words}",
        )
        if urgent:
            message["Importance"] = "High"
        message.set_content(plain)
        message.add_alternative(html, subtype="html")
    return message


def build_unreadable_escalation(
    reference: str, form_kind: str, received_at: datetime | None, envelope: Envelope
) -> EmailMessage:
    """An urgent form whose file on the server was damaged: what is known, and what to do."""
    form = FORMS.get(form_kind)
    name = form.email_name if form else "A form"
    when = f" It was sent on {received_at:%-d %B %Y at %H:%M} (UTC)." if received_at else ""
    text = (
        f"{name} with reference {reference} says someone may be at risk, and its file on the "
        f"forms server was damaged, so its answers could not be sent.{when}\n\n"
        "Ask whoever runs the forms server to look at it now (`forms-server outbox` lists it). "
        "If you know who sent it, contact them another way.\n"
    )
    with message_building("message"):
        message = addressed_message(
            envelope,
            f"NOBODY HAS PICKED THIS UP - {envelope.group_name}: {name} - URGENT - "
            f"could not be read - ref {reference}",
        )
        message["Importance"] = "High"
        message.set_content(text)
    return message


def build_answer(
    envelope: Envelope,
    reference: str,
    form_name: str,
    answer: str | None,
    ask_url: str,
    link_days: int,
) -> EmailMessage:
    """The member's answer to a question, for one recipient: the answer itself (`None` for a
    link-only recipient: then only the link), and their own fresh link to the conversation.
    Never anyone else's address."""
    if answer is None:
        what = (
            "What they wrote is not in this email. Read it here (your own link: do not "
            f"forward it):\n{ask_url}\n"
        )
    else:
        what = (
            f"What they wrote:\n\n{answer}\n\nTo read the whole conversation or ask another "
            f"question (your own link: do not forward it):\n{ask_url}\n"
        )
    text = (
        f"{form_name} {reference}: the member who sent it has answered.\n\n{what}\n"
        f"The link works for {link_days} days. Each answer from the member comes with a new "
        "one. Answering is not the same as marking the form as being dealt with.\n"
    )
    with message_building("message"):
        message = addressed_message(
            envelope, f"{envelope.group_name}: {form_name}: the member answered - ref {reference}"
        )
        message.set_content(text)
    return message


def build_notice(subject: str, text: str, envelope: Envelope) -> EmailMessage:
    """A short message with no member's content: "in hand", for example."""
    with message_building("notice"):
        message = addressed_message(envelope, f"{envelope.group_name}: {subject}")
        message.set_content(text)
    return message


def discreet_message(envelope: Envelope, subject: str, plain: str) -> EmailMessage:
    """A message to a member: a neutral sender name, no group name, no Reply-To."""
    with message_building("message"):
        message = addressed_message(envelope, subject, sender_name=MEMBER_COPY_SENDER)
        message.set_content(plain)
    return message


def build_member_copy(
    submission: Submission,
    envelope: Envelope,
    link: str,
    link_until: datetime,
    with_answers: bool,
) -> EmailMessage:
    """The member's own copy: discreet (a private link and nothing else), or with their answers
    when they chose that. Never the group's name; never a Reply-To."""
    form = form_of(submission)
    rows = [
        (spec, shown)
        for spec, shown in answer_rows(form, submission.answers)
        if spec.for_facilitators
    ]
    plain = templates.get_template("member_copy.txt").render(
        submission=submission,
        link=link,
        link_until=link_until,
        rows=rows if with_answers else [],
        title=form.title if with_answers else None,
    )
    return discreet_message(envelope, MEMBER_COPY_SUBJECT, plain)


RENEWAL_SUBJECT = "Time to renew your form"
# A member who asked to be told of the group's messages: nothing about the group, the form or
# the message, and no link (a lock screen or a shared inbox shows it all).
MESSAGE_ALERT_TEXT = (
    "There is a new message for you.\n\n"
    "To read it, go back to the page where you check on what you sent, and enter your "
    "reference and receipt.\n\n"
    "You get this email because you asked for it. To stop these emails, remove your email "
    "address on that page.\n"
)


def build_message_alert(envelope: Envelope) -> EmailMessage:
    return discreet_message(envelope, MESSAGE_ALERT_SUBJECT, MESSAGE_ALERT_TEXT)


def build_renewal_reminder(
    record: StoredRecord, lapses: datetime, envelope: Envelope, link: str
) -> EmailMessage:
    """A member's reminder to sign their consent again: as discreet as their copy."""
    plain = templates.get_template("renewal.txt").render(record=record, lapses=lapses, link=link)
    return discreet_message(envelope, RENEWAL_SUBJECT, plain)
