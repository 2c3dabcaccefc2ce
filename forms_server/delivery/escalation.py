"""The escalation job: a concern or urgent notice nobody marks as being dealt with in time goes
to the group's escalation contact, once, and then shows as overdue until someone does.

Each escalation address is one recipient with its own state, like any delivery: accepted is
never sent again, a refusal (a mistyped address, say) fails that address alone and shows on the
health check and `forms-server outbox`, a timeout is tried again with backoff. The message is
never less private than the form's route, and a flood of escalations follows the same rules as a
flood of forms (lifecycle.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.digests import Digests, SendLog
from forms_server.delivery.runner import recipient_failed
from forms_server.forms.fields import Submission
from forms_server.lifecycle import Batch, Event, FloodLimits, SendState, how_to_send, priority
from forms_server.mail.messages import new_message_id
from forms_server.mail.relay import Relay
from forms_server.storage.form_files import FormFiles
from forms_server.storage.outbox_items import RecipientState, RecipientStatus
from forms_server.storage.watch import Watched

logger = logging.getLogger(__name__)


class Escalation:
    name = "escalation"

    def __init__(
        self,
        files: FormFiles,
        composer: Composer,
        relay: Relay,
        digests: Digests,
        send_log: SendLog,
        limits: FloodLimits,
        retry_window: timedelta,
    ) -> None:
        self.files = files
        self.watch = files.watch
        self.composer = composer
        self.relay = relay
        self.digests = digests
        self.send_log = send_log
        self.limits = limits
        self.retry_window = retry_window
        self.watched: dict[str, Watched] = {}
        # Accepted, but the acceptance could not be written: never sent again while we run.
        self.unsaved: set[tuple[str, str]] = set()
        self.overdue: list[Watched] = []
        self.waiting_for_contact = False

    async def look(self, now: datetime) -> None:
        """What is watched and what is overdue, sending nothing (for the command line)."""
        self.watched = {w.reference: w for w in await anyio.to_thread.run_sync(self.watch.all)}
        acknowledged = self.files.acknowledgements.get
        self.overdue = [
            w
            for w in self.watched.values()
            if w.escalated_at is not None and acknowledged(w.reference) is None
        ]

    async def run(self, now: datetime) -> None:
        self.watched = {w.reference: w for w in await anyio.to_thread.run_sync(self.watch.all)}
        self.overdue = []
        for watched in sorted(
            self.watched.values(), key=lambda w: priority(w.urgent, w.received_at)
        ):
            picked_up = await anyio.to_thread.run_sync(
                self.files.acknowledgements.get, watched.reference
            )
            if picked_up is not None:
                await anyio.to_thread.run_sync(
                    self.files.happen, watched.reference, Event.FOUND_PICKED_UP
                )
                self.watched.pop(watched.reference)
                continue
            if now < watched.escalate_at:
                continue
            if watched.sending:
                watched = await self.escalate(watched, now)
                self.watched[watched.reference] = watched
            if watched.escalated_at is not None:
                self.overdue.append(watched)

    async def escalate(self, watched: Watched, now: datetime) -> Watched:
        mail = self.composer.mail
        self.waiting_for_contact = not mail.escalation
        if not watched.recipients and mail.escalation:
            watched = replace(
                watched,
                recipients=tuple(
                    RecipientState(a, new_message_id(mail.sender)) for a in mail.escalation
                ),
            )
            await anyio.to_thread.run_sync(self.save, watched)
        if not self.relay.ready:
            return watched
        for recipient in watched.recipients:
            if (watched.reference, recipient.address) in self.unsaved or not recipient.due(now):
                continue
            mode = self.composer.escalation_mode(watched, recipient.address)
            sent, urgent_alone = self.send_log.counts(recipient.address, now)
            batch = how_to_send(
                SendState(watched.urgent, mode, sent, urgent_alone), self.limits
            ).batch
            if batch is not Batch.ALONE and not watched.unreadable:
                self.digests.add(recipient.address, batch, True, watched.reference)
                continue
            try:
                message = self.composer.escalation(
                    watched, recipient.address, recipient.message_id, watched.unreadable
                )
                await self.relay.send(message, recipient.address)
            except Exception as error:  # noqa: BLE001 - this address's fault alone
                watched = await self.failed(watched, recipient, error, now)
                continue
            watched = await self.accepted(watched, recipient.address, now)
            self.send_log.note(recipient.address, now, urgent_alone=watched.urgent)
        return await self.finish(watched, now)

    async def finish(self, watched: Watched, now: datetime) -> Watched:
        """Every escalation address has it, or refused it for good: escalated. The content
        goes once every address has it (a refused one keeps it for `outbox --retry`)."""
        waiting = any(r.status is RecipientStatus.PENDING for r in watched.recipients)
        if waiting or watched.escalated_at is not None or not watched.recipients:
            return watched
        done = replace(watched, escalated_at=now)
        if not done.refused:
            done = replace(done, sealed="")
        await anyio.to_thread.run_sync(self.save, done)
        logger.warning("Escalated %s %s: nobody picked it up", done.form_kind, done.reference)
        return done

    def save(self, watched: Watched) -> None:
        try:
            self.watch.replace(watched)
        except OSError as error:
            logger.error(
                "Could not write the escalation of %s: %s", watched.reference, error.strerror
            )

    async def accepted(self, watched: Watched, address: str, now: datetime) -> Watched:
        recipient = next(r for r in watched.recipients if r.address == address)
        watched = watched.with_recipient(recipient.accepted(now))
        try:
            await anyio.to_thread.run_sync(self.watch.replace, watched)
        except OSError:
            self.unsaved.add((watched.reference, address))
        return watched

    async def failed(
        self, watched: Watched, recipient: RecipientState, error: Exception, now: datetime
    ) -> Watched:
        window_over = now - watched.escalate_at > self.retry_window
        failed = recipient_failed(recipient, error, now, window_over)
        position = [r.address for r in watched.recipients].index(recipient.address) + 1
        logger.error(
            "Could not escalate %s to escalation address %d of %d (%s)%s",
            watched.reference,
            position,
            len(watched.recipients),
            failed.last_error,
            "; see `forms-server outbox`"
            if failed.status is RecipientStatus.FAILED
            else "; trying again later",
        )
        watched = watched.with_recipient(failed)
        await anyio.to_thread.run_sync(self.save, watched)
        return watched

    def next_due_at(self) -> datetime | None:
        moments = []
        for watched in self.watched.values():
            if watched.escalated_at is None and not watched.recipients:
                moments.append(watched.escalate_at)
            moments.extend(
                r.next_attempt_at or watched.escalate_at
                for r in watched.recipients
                if r.status is RecipientStatus.PENDING
            )
        return min(moments, default=None)

    # -- Digests carry a flood of escalations --------------------------------------------------

    def digest_forms(self, references: list[str]) -> list[Submission]:
        return [self.composer.submission_of(self.watched[reference]) for reference in references]

    async def digest_sent(self, references: list[str], address: str, now: datetime) -> None:
        for reference in references:
            watched = await self.accepted(self.watched[reference], address, now)
            self.watched[reference] = await self.finish(watched, now)

    async def digest_failed(
        self, references: list[str], address: str, error: Exception, now: datetime
    ) -> None:
        for reference in references:
            watched = self.watched[reference]
            recipient = next(r for r in watched.recipients if r.address == address)
            self.watched[reference] = await self.failed(watched, recipient, error, now)

    async def digest_waits(self, references: list[str], address: str, until: datetime) -> None:
        for reference in references:
            watched = self.watched[reference]
            recipient = next(r for r in watched.recipients if r.address == address)
            watched = watched.with_recipient(replace(recipient, next_attempt_at=until))
            self.watched[reference] = watched
            await anyio.to_thread.run_sync(self.save, watched)
