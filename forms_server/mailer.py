"""The email facilitators receive: built with the standard library, sent with aiosmtplib.

The subject carries only the group name, the form, an urgency marker and the reference: it is
what shows on a lock screen or in a shared inbox. The envelope goes to exactly the configured
recipients for the form, never to anything found in the message's headers.
"""

from __future__ import annotations

import html
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from forms_server.forms import (
    FORMS,
    Field,
    FieldKind,
    FormDefinition,
    Recipients,
    Submission,
    display_value,
    recipients_for,
)
from forms_server.settings import MailSettings


class DeliveryError(Exception):
    """The relay did not take the message. The message never holds a member's answers."""


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: a timeout, a dropped connection, a 4xx reply."""


class PermanentDeliveryError(DeliveryError):
    """Trying again will not help: a 5xx reply, refused credentials, no safe way to send."""


def recipient_addresses(mail: MailSettings, route: Recipients) -> tuple[str, ...]:
    return {
        Recipients.FACILITATORS: mail.facilitators,
        Recipients.SAFEGUARDING: mail.safeguarding,
        Recipients.ORGANISATION_LEAD: mail.organisation_lead,
    }[route]


def subject_for(group_name: str, form: FormDefinition, submission: Submission) -> str:
    urgent = " - URGENT" if submission.urgent else ""
    return f"{group_name}: {form.email_name}{urgent} - ref {submission.reference}"


def message_id(submission: Submission, sender: str) -> str:
    """Stable per submission, so a retried send is recognisably the same message."""
    domain = sender.rsplit("@", 1)[1]
    return f"<{submission.reference}.{submission.form_kind}@{domain}>"


def reply_address(form: FormDefinition, submission: Submission) -> str | None:
    """The member's one validated address, when the form asked for one and they gave it."""
    for spec in form.fields:
        if spec.kind is FieldKind.EMAIL:
            value = submission.answers.get(spec.name)
            if isinstance(value, str) and value:
                return value
    return None


def answer_lines(form: FormDefinition, submission: Submission) -> list[tuple[Field, str]]:
    return [
        (spec, display_value(spec, submission.answers.get(spec.name, ""))) for spec in form.fields
    ]


def plain_body(form: FormDefinition, submission: Submission) -> str:
    lines = [form.email_name, f"Reference: {submission.reference}"]
    lines.append(f"Received: {submission.received_at:%d %B %Y, %H:%M} UTC")
    if submission.urgent:
        lines += ["", "URGENT: the member's answers say someone may be at risk now."]
    if submission.guidelines_version:
        lines.append(f"Guidelines version agreed to: {submission.guidelines_version}")
    for spec, shown in answer_lines(form, submission):
        lines += ["", spec.label, shown]
    lines += ["", "What to do next", form.next_steps, ""]
    return "\n".join(lines)


def html_body(form: FormDefinition, submission: Submission) -> str:
    escape = html.escape
    rows = "".join(
        f"<dt><strong>{escape(spec.label)}</strong></dt>"
        f"<dd>{escape(shown).replace(chr(10), '<br>')}</dd>"
        for spec, shown in answer_lines(form, submission)
    )
    urgent = (
        "<p><strong>URGENT: the member's answers say someone may be at risk now.</strong></p>"
        if submission.urgent
        else ""
    )
    return (
        '<!doctype html><html lang="en"><body>'
        f"<h1>{escape(form.email_name)}</h1>"
        f"<p>Reference: <strong>{escape(submission.reference)}</strong><br>"
        f"Received: {submission.received_at:%d %B %Y, %H:%M} UTC</p>"
        f"{urgent}<dl>{rows}</dl>"
        f"<h2>What to do next</h2><p>{escape(form.next_steps)}</p>"
        "</body></html>"
    )


def build_message(
    submission: Submission, mail: MailSettings, group_name: str
) -> tuple[EmailMessage, tuple[str, ...]]:
    """The message and its envelope recipients (exactly the configured ones for its route)."""
    form = FORMS[submission.form_kind]
    recipients = recipient_addresses(mail, recipients_for(form, submission.answers))
    message = EmailMessage()
    message["From"] = Address(display_name=f"{group_name} forms", addr_spec=mail.sender)
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject_for(group_name, form, submission)
    message["Date"] = format_datetime(submission.received_at)
    message["Message-ID"] = message_id(submission, mail.sender)
    reply_to = reply_address(form, submission)
    if reply_to is not None:
        message["Reply-To"] = Address(addr_spec=reply_to)
    if submission.urgent:
        message["Importance"] = "High"
        message["X-Priority"] = "1 (Highest)"
    message.set_content(plain_body(form, submission))
    message.add_alternative(html_body(form, submission), subtype="html")
    return message, recipients


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


async def send(
    message: EmailMessage, recipients: Sequence[str], mail: MailSettings, host: str, port: int
) -> None:
    """Hands the message to the relay, or raises a DeliveryError saying whether to retry."""
    plaintext = mail.security == "none"
    if plaintext and not (mail.allow_plaintext or is_loopback(host)):
        raise PermanentDeliveryError(
            "Refusing to send in plain text to a relay on another machine: set "
            "FORMS_SMTP_SECURITY to starttls or tls, or FORMS_SMTP_ALLOW_PLAINTEXT=true."
        )
    try:
        refused, _ = await aiosmtplib.send(
            message,
            sender=mail.sender,
            recipients=list(recipients),
            hostname=host,
            port=port,
            username=mail.username,
            password=str(mail.password) if mail.password else None,
            use_tls=mail.security == "tls",
            # True means STARTTLS is required: a relay that does not offer it is refused.
            start_tls=mail.security == "starttls",
            tls_context=None if plaintext else tls_context(mail),
            timeout=mail.timeout_seconds,
        )
    except aiosmtplib.SMTPAuthenticationError as error:
        raise PermanentDeliveryError(
            f"The relay refused our credentials ({error.code})."
        ) from error
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = sorted({refusal.code for refusal in error.recipients})
        kind = (
            TransientDeliveryError if all(400 <= c < 500 for c in codes) else PermanentDeliveryError
        )
        raise kind(f"The relay refused every recipient ({codes}).") from error
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
    if refused:
        codes = sorted({response.code for response in refused.values()})
        raise PermanentDeliveryError(f"The relay refused {len(refused)} recipient(s) ({codes}).")
