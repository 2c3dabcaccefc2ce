"""The email a recipient receives, built from templates, and sending it: the only module that
imports aiosmtplib.

One message per recipient: each has its own Message-ID and its own envelope holding exactly that
one address, so a refusal, a retry or a duplicate concerns one person. The subject carries only
the group name, the form, an urgency marker and the reference: it is what shows on a lock screen
or in a shared inbox.
"""

from __future__ import annotations

import contextlib
import email.policy
import ipaddress
import secrets
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, select_autoescape

from forms_server.config.env import PACKAGE_DIR, MailSettings, SmtpSecurity
from forms_server.delivery.member_copy import MEMBER_COPY_SENDER, MEMBER_COPY_SUBJECT
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import (
    FORMS,
    FormDefinition,
    Submission,
    answer_rows,
    is_usable_email_address,
    next_steps_for,
    shown_answer,
)
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
    submission: Submission, envelope: Envelope, acknowledge_url: str | None = None
) -> EmailMessage:
    """The message for one recipient; MessageBuildError if it cannot be made. A concern or an
    urgent notice carries the recipient's own link to mark it as being dealt with."""
    form = form_of(submission)
    reply_to = reply_address(form, submission)
    if reply_to is not None and not is_usable_email_address(reply_to):
        raise MessageBuildError("The member's address cannot be used as a reply address.")
    with message_building("message"):
        message = form_message_headers(form, submission, envelope)
        if reply_to is not None:
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
    submissions: list[Submission], envelope: Envelope, sent_alone_per_hour: int
) -> EmailMessage:
    """Many forms in one message, for a recipient receiving more than `sent_alone_per_hour`:
    a flood cannot bury the inbox, and nothing in it is lost. Urgent forms come first."""
    ordered = sorted(submissions, key=lambda submission: not submission.urgent)
    urgent = sum(1 for submission in ordered if submission.urgent)
    parts = []
    for submission in ordered:
        form = form_of(submission)
        parts.append(bodies(form, submission))
    intro = (
        f"More than {sent_alone_per_hour} forms reached you within an hour, so the next ones "
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
    with message_building("digest"):
        message = addressed_message(
            envelope, f"{envelope.group_name}: {len(ordered)} forms in one email{urgent_words}"
        )
        if urgent:
            message["Importance"] = "High"
        message.set_content(plain)
        message.add_alternative(html, subtype="html")
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


def build_renewal_reminder(
    record: StoredRecord, lapses: datetime, envelope: Envelope, link: str
) -> EmailMessage:
    """A member's reminder to sign their consent again: as discreet as their copy."""
    plain = templates.get_template("renewal.txt").render(record=record, lapses=lapses, link=link)
    return discreet_message(envelope, RENEWAL_SUBJECT, plain)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def tls_context(mail: MailSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(mail.ca_file) if mail.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def refuse_plaintext_to_another_machine(mail: MailSettings, host: str) -> None:
    if mail.security is SmtpSecurity.NONE and not (mail.allow_plaintext or is_loopback(host)):
        raise PermanentDeliveryError(
            "Refusing to send in plain text to a relay on another machine: set "
            "FORMS_SMTP_SECURITY to starttls or tls, or FORMS_SMTP_ALLOW_PLAINTEXT=true."
        )


def client_for(mail: MailSettings, host: str, port: int, step_by_step: bool) -> aiosmtplib.SMTP:
    """A client that, on connecting, requires STARTTLS (when set) and logs in; or, step by step,
    one that leaves each step to the caller."""
    plaintext = mail.security is SmtpSecurity.NONE
    return aiosmtplib.SMTP(
        hostname=host,
        port=port,
        username=None if step_by_step else mail.username,
        password=str(mail.password) if mail.password and not step_by_step else None,
        use_tls=mail.security is SmtpSecurity.TLS,
        # True means STARTTLS is required: a relay that does not offer it is refused.
        start_tls=not step_by_step and mail.security is SmtpSecurity.STARTTLS,
        tls_context=None if plaintext else tls_context(mail),
        timeout=mail.timeout_seconds,
    )


async def send(
    message: EmailMessage, recipient: str, mail: MailSettings, host: str, port: int
) -> None:
    """Hands the message to the relay for its one recipient, or raises a DeliveryError saying
    whether to retry. The envelope is exactly `recipient`, never anything in the headers."""
    refuse_plaintext_to_another_machine(mail, host)
    try:
        async with client_for(mail, host, port, step_by_step=False) as client:
            await client.sendmail(mail.sender, [recipient], message.as_bytes(policy=WIRE_POLICY))
    except aiosmtplib.SMTPAuthenticationError as error:
        raise PermanentDeliveryError(
            f"The relay refused our credentials ({error.code})."
        ) from error
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = sorted({refusal.code for refusal in error.recipients})
        kind = (
            TransientDeliveryError if all(400 <= c < 500 for c in codes) else PermanentDeliveryError
        )
        raise kind(f"The relay refused the recipient ({codes}).") from error
    except aiosmtplib.SMTPResponseException as error:
        kind = TransientDeliveryError if 400 <= error.code < 500 else PermanentDeliveryError
        raise kind(f"The relay answered {error.code}.") from error
    except aiosmtplib.SMTPException as error:
        if "STARTTLS" in str(error):  # a relay without STARTTLS will not grow it by retrying
            raise PermanentDeliveryError(
                "The relay does not offer STARTTLS, so nothing was sent in plain text."
            ) from error
        raise TransientDeliveryError(
            f"Could not reach the relay ({type(error).__name__})."
        ) from error
    except (OSError, TimeoutError) as error:
        raise TransientDeliveryError(
            f"Could not reach the relay ({type(error).__name__})."
        ) from error


async def check_relay(mail: MailSettings, send_test: bool, say: Callable[[str], None]) -> None:
    """Talks to the relay step by step, saying how far it got (for `forms-server check`).
    Raises DeliveryError with the step that failed."""
    if mail.host is None:
        say("Mail relay: none configured; development uses the embedded catcher (/dev/mail/).")
        return
    refuse_plaintext_to_another_machine(mail, mail.host)
    client = client_for(mail, mail.host, mail.port, step_by_step=True)
    try:
        await client.connect()
        say(f"Connected to {mail.host}:{mail.port}.")
        await client.ehlo()
        say("EHLO: accepted.")
        if mail.security is SmtpSecurity.STARTTLS:
            await client.starttls()
            say("STARTTLS: the connection is encrypted and the certificate is valid.")
        if mail.username:
            await client.login(mail.username, str(mail.password or ""))
            say("AUTH: the relay accepted our credentials.")
        if send_test:
            for recipient in mail.facilitators:
                message = EmailMessage()
                message["From"] = mail.sender
                message["To"] = recipient
                message["Subject"] = "Test message from the forms server"
                message["Auto-Submitted"] = "auto-generated"
                message.set_content("This is a test. The forms server can send you email.\n")
                await client.sendmail(
                    mail.sender, [recipient], message.as_bytes(policy=WIRE_POLICY)
                )
            say(f"Test message accepted for {len(mail.facilitators)} facilitator address(es).")
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as error:
        raise DeliveryError(f"{type(error).__name__}: {error}") from error
