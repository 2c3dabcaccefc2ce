"""The embedded mail catcher for development: a real SMTP server (aiosmtpd) on loopback that
keeps the facilitators' email in a Maildir, so a newcomer sees exactly what facilitators get.

The sending code does not know it is talking to a catcher: only the relay's address differs.
"""

from __future__ import annotations

import logging
import mailbox
import socket
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from forms_server.storage.files import private_folder

HOST = "127.0.0.1"


def free_loopback_port() -> int:
    # aiosmtpd's Controller cannot take port 0: its start-up check connects to the port it
    # was given. So ask the system for a free one first.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateMailbox(Mailbox):
    """aiosmtpd's Maildir handler, with each message readable by this user alone: a caught
    message holds a member's answers, and the Maildir writes with the default mode (0644)."""

    def handle_message(self, message: Message) -> None:
        key = self.mailbox.add(message)
        (Path(self.mail_dir) / "new" / key).chmod(0o600)


class MailCatcher:
    def __init__(self, maildir: Path) -> None:
        # aiosmtpd logs every line of every message at DEBUG: members' answers, never to log.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        private_folder(maildir.parent)
        self.maildir = maildir
        self.controller = Controller(
            PrivateMailbox(maildir), hostname=HOST, port=free_loopback_port(), ready_timeout=10
        )

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.controller.port

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@dataclass(frozen=True)
class CaughtMessage:
    key: str
    subject: str
    to: str
    reply_to: str
    date: datetime
    text: str


def caught_messages(maildir: Path) -> list[CaughtMessage]:
    """Newest first, as an inbox shows them."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    found = []
    for key in box.iterkeys():
        message = message_from_bytes(box.get_bytes(key), policy=default)
        body = message.get_body(preferencelist=("plain",))
        found.append(
            CaughtMessage(
                key=key,
                subject=str(message["Subject"]),
                to=str(message["To"]),
                reply_to=str(message["Reply-To"] or ""),
                date=parsedate_to_datetime(str(message["Date"])),
                text=body.get_content() if body is not None else "",
            )
        )
    return sorted(found, key=lambda caught: caught.date, reverse=True)
