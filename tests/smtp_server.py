"""A real SMTP server for the tests: aiosmtpd on loopback, with STARTTLS from trustme certs.

It records every envelope and can be told to answer the next messages with a failure code.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    # Replies for the next DATA commands, in order; empty means "250".
    data_replies: list[str] = field(default_factory=list)
    # Recipients this relay refuses, with the reply it gives at RCPT TO.
    refused_recipients: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering DATA: a slow relay, so a test can interrupt a send.
    data_delay: float = 0.0
    # Whether a message is kept when its client stops waiting for the reply to the data, as a
    # real relay keeps what it was given (aiosmtpd itself cancels the handler when the client
    # goes). Answers still being worked out are in `answering` until they are done.
    keep_when_client_leaves: bool = False
    answering: set[asyncio.Task[str]] = field(default_factory=set)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.refused_recipients.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        if not self.keep_when_client_leaves:
            return await self.answer_data(envelope)
        answer = asyncio.ensure_future(self.answer_data(envelope))
        self.answering.add(answer)
        answer.add_done_callback(self.answering.discard)
        return await asyncio.shield(answer)

    async def answer_data(self, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.pop(0)
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw)
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    ca_file: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accept_only(username: str, password: str) -> Any:
    """An aiosmtpd authenticator that knows one login."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == username.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


@contextmanager
def smtp_server(
    tmp_path: Path, starttls: bool = True, login: tuple[str, str] | None = None
) -> Iterator[SmtpServer]:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    handler = RecordingHandler()
    options: dict[str, Any] = {"tls_context": server_context, "require_starttls": True}
    if login is not None:
        options |= {"authenticator": accept_only(*login), "auth_required": True}
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        ready_timeout=10,
        **(options if starttls else {}),
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, handler, ca_file)
    finally:
        controller.stop()
