"""Handing messages to the mail relay: the only module that imports aiosmtplib.

Two kinds of wait: connecting, the greeting, STARTTLS, AUTH and each short command wait
`timeout_seconds` (a relay that is down is found out quickly); the DATA command and the reply
after the whole message wait `data_timeout_seconds` (RFC 5321, 4.5.3.2.6, suggests 10 minutes:
a busy relay may scan the message before it answers). Giving up on that reply early is what
made a slow relay receive the same message again and again: it had accepted each one.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage

import aiosmtplib

from forms_server.config.mail import MailSettings, SmtpSecurity
from forms_server.mail.messages import (
    WIRE_POLICY,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = [
    "DeliveryError",
    "PermanentDeliveryError",
    "Relay",
    "TransientDeliveryError",
    "check_relay",
]


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


def refusal(code: int, what: str) -> DeliveryError:
    kind = TransientDeliveryError if 400 <= code < 500 else PermanentDeliveryError
    return kind(f"{what} ({code}).")


class Relay:
    """Where mail goes: the configured relay, or the embedded catcher once it listens."""

    def __init__(self, mail: MailSettings) -> None:
        self.mail = mail
        self.address: tuple[str, int] | None = (mail.host, mail.port) if mail.host else None

    def use(self, host: str, port: int, mail: MailSettings) -> None:
        self.address = (host, port)
        self.mail = mail

    @property
    def ready(self) -> bool:
        return self.address is not None

    async def send(self, message: EmailMessage, recipient: str) -> None:
        """Hands the message to the relay for its one recipient, or raises a DeliveryError
        saying whether to retry. The envelope is exactly `recipient`, never anything in the
        headers."""
        if self.address is None:
            raise TransientDeliveryError("No mail relay yet.")
        mail = self.mail
        host, port = self.address
        refuse_plaintext_to_another_machine(mail, host)
        raw = message.as_bytes(policy=WIRE_POLICY)
        try:
            async with client_for(mail, host, port, step_by_step=False) as client:
                await client.mail(mail.sender, timeout=mail.timeout_seconds)
                await client.rcpt(recipient, timeout=mail.timeout_seconds)
                await client.data(raw, timeout=mail.data_timeout_seconds)
        except aiosmtplib.SMTPAuthenticationError as error:
            raise PermanentDeliveryError(
                f"The relay refused our credentials ({error.code})."
            ) from error
        except aiosmtplib.SMTPRecipientRefused as error:
            raise refusal(error.code, "The relay refused the recipient") from error
        except aiosmtplib.SMTPResponseException as error:
            raise refusal(error.code, "The relay answered") from error
        except aiosmtplib.SMTPException as error:
            if "STARTTLS" in str(error):  # a relay without STARTTLS will not grow it by retrying
                raise PermanentDeliveryError(
                    "The relay does not offer STARTTLS, so nothing was sent in plain text."
                ) from error
            raise TransientDeliveryError(
                f"Could not reach the relay at {host}:{port} ({type(error).__name__})."
            ) from error
        except (OSError, TimeoutError) as error:
            raise TransientDeliveryError(
                f"Could not reach the relay at {host}:{port} ({type(error).__name__})."
            ) from error


async def check_relay(mail: MailSettings, send_test: bool, say: Callable[[str], None]) -> None:
    """Talks to the relay step by step, saying how far it got (for `forms-server check`).
    Raises DeliveryError with the step that failed."""
    if mail.host is None:
        say("Mail relay: none configured; development uses the embedded catcher (/dev/mail/).")
        return
    refuse_plaintext_to_another_machine(mail, mail.host)
    relay = f"{mail.host}:{mail.port}"
    client = client_for(mail, mail.host, mail.port, step_by_step=True)
    try:
        try:
            await client.connect()
        except (aiosmtplib.SMTPConnectError, OSError, TimeoutError) as error:
            raise DeliveryError(
                f"Could not connect to the relay at {relay} ({type(error).__name__}: {error}). "
                "Check FORMS_SMTP_HOST and FORMS_SMTP_PORT: 587 for STARTTLS, 465 with "
                "FORMS_SMTP_SECURITY=tls"
            ) from error
        say(f"Connected to {relay}.")
        await client.ehlo()
        say("EHLO: accepted.")
        if mail.security is SmtpSecurity.STARTTLS:
            if not client.supports_extension("starttls"):
                raise DeliveryError(
                    f"The relay at {relay} does not offer STARTTLS, so nothing was sent. If it "
                    "takes TLS from the start (usually port 465), set FORMS_SMTP_SECURITY=tls; "
                    "a relay on this machine may use FORMS_SMTP_SECURITY=none"
                )
            try:
                await client.starttls()
            except ssl.SSLError as error:
                raise DeliveryError(
                    f"STARTTLS with {relay} failed: {error}. If the relay's certificate is "
                    "signed by your own authority, set FORMS_SMTP_CA_FILE to its CA file"
                ) from error
            say("STARTTLS: the connection is encrypted and the certificate is valid.")
        if mail.username:
            try:
                await client.login(mail.username, str(mail.password or ""))
            except aiosmtplib.SMTPAuthenticationError as error:
                raise DeliveryError(
                    f"The relay at {relay} refused our credentials ({error.code}): check "
                    "FORMS_SMTP_USERNAME and FORMS_SMTP_PASSWORD"
                ) from error
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
        raise DeliveryError(f"{relay}: {type(error).__name__}: {error}") from error
