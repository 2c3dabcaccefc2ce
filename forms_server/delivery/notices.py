"""The notices job: each due notice to each of its addresses that does not have it yet.

A timeout waits and is tried again with backoff; a refusal for good fails that address alone
(it is reported, and the others still get it); a notice that keeps waiting past the health
limit is reported too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.config.mail import MailSettings
from forms_server.delivery.composer import Composer, recipient_addresses
from forms_server.delivery.runner import backoff_seconds, in_words
from forms_server.forms.fields import Recipients
from forms_server.mail.messages import PermanentDeliveryError
from forms_server.mail.relay import Relay
from forms_server.storage.notices import Notice, Notices

logger = logging.getLogger(__name__)


def addresses_of(notice: Notice, mail: MailSettings) -> tuple[str, ...]:
    if notice.addresses:
        return notice.addresses
    try:
        return recipient_addresses(mail, Recipients(notice.route))
    except ValueError:
        return ()


class NoticesJob:
    name = "notices"

    def __init__(self, notices: Notices, composer: Composer, relay: Relay) -> None:
        self.notices = notices
        self.composer = composer
        self.relay = relay
        self.waiting: list[Notice] = []

    async def run(self, now: datetime) -> None:
        waiting = []
        for notice in await anyio.to_thread.run_sync(self.notices.pending):
            due = notice.next_attempt_at is None or notice.next_attempt_at <= now
            left = await self.send(notice, now) if self.relay.ready and due else notice
            if left is not None:
                waiting.append(left)
        self.waiting = waiting

    async def look(self) -> None:
        self.waiting = await anyio.to_thread.run_sync(self.notices.pending)

    async def send(self, notice: Notice, now: datetime) -> Notice | None:
        """None once every address has it or refused it for good."""
        for address in addresses_of(notice, self.composer.mail):
            if address in notice.sent_to or address in notice.failed_to:
                continue
            try:
                message = self.composer.notice(notice.subject, notice.text, address)
                await self.relay.send(message, address)
            except Exception as error:  # noqa: BLE001 - this notice's fault alone
                logger.error("Could not send a notice (%s)", in_words(error))
                if isinstance(error, PermanentDeliveryError):
                    notice = replace(
                        notice, failed_to=(*notice.failed_to, address), last_error=in_words(error)
                    )
                    await anyio.to_thread.run_sync(self.notices.save, notice)
                    continue
                attempts = notice.attempts + 1
                delay = timedelta(seconds=backoff_seconds(attempts))
                notice = replace(
                    notice,
                    attempts=attempts,
                    next_attempt_at=now + delay,
                    last_error=in_words(error),
                )
                try:
                    await anyio.to_thread.run_sync(self.notices.save, notice)
                except OSError as write_error:
                    logger.error("Could not write a notice's state (%s)", write_error.strerror)
                return notice
            notice = await anyio.to_thread.run_sync(self.notices.sent, notice, address)
        if notice.failed_to:
            return notice  # reported until the host deals with it (outbox --retry)
        await anyio.to_thread.run_sync(self.notices.done, notice)
        return None

    def next_due_at(self) -> datetime | None:
        return min(
            (n.next_attempt_at for n in self.waiting if n.next_attempt_at and not n.failed_to),
            default=None,
        )

    def problems(self, now: datetime, waiting_limit: float) -> list[str]:
        problems = []
        oldest = min((n.created_at for n in self.waiting if not n.failed_to), default=None)
        if oldest is not None and (now - oldest).total_seconds() > waiting_limit:
            minutes = int((now - oldest).total_seconds() // 60)
            problems.append(f"A notice to the facilitators has waited {minutes} minute(s).")
        refused = [n for n in self.waiting if n.failed_to]
        if refused:
            problems.append(
                f"{len(refused)} notice(s) were refused by the relay for some of their "
                f"addresses: {refused[0].last_error}"
            )
        return problems
