"""The delivery job: each recipient gets their own message, urgent forms first, always.

The order of steps is what keeps a crash or a fault from repeating or losing mail:

1. send one recipient's message;
2. at once, mark that recipient accepted in the item's file. If that write fails (a full
   disk), the acceptance goes into the journal's reserved space (storage/journal.py), so not
   even a restart sends it again; if even that fails (a read-only folder), it is kept in memory
   and the health check fails;
3. once any recipient has it, keep the minimal record in the store (one write per pass);
4. once every recipient has it, the lifecycle decides what follows (a watch for a concern) and
   the item becomes an empty delivered marker.

Between any two sends, the job looks for forms that arrived meanwhile (from this process, or a
file another process wrote): an urgent one goes next, never after the rest of the pass.
Anything that goes wrong with one item is that item's failure alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.digests import Digests, SendLog
from forms_server.delivery.runner import backoff_seconds, in_words, recipient_failed
from forms_server.errors import FormsServerError
from forms_server.forms.fields import Submission
from forms_server.lifecycle import Batch, FloodLimits, SendState, how_to_send, priority
from forms_server.mail.messages import DeliveryError, new_message_id
from forms_server.mail.relay import Relay
from forms_server.storage.form_files import FormFiles
from forms_server.storage.journal import Accepted, Journal
from forms_server.storage.outbox import (
    MEMBER_COPY,
    ItemStatus,
    Outbox,
    OutboxItem,
    RecipientState,
    RecipientStatus,
)
from forms_server.storage.records import SubmissionStore

logger = logging.getLogger(__name__)


class Sending:
    name = "delivery"

    def __init__(
        self,
        files: FormFiles,
        store: SubmissionStore,
        composer: Composer,
        relay: Relay,
        digests: Digests,
        send_log: SendLog,
        limits: FloodLimits,
        windows: tuple[timedelta, timedelta],
    ) -> None:
        self.files = files
        self.outbox: Outbox = files.outbox
        self.store = store
        self.composer = composer
        self.relay = relay
        self.digests = digests
        self.send_log = send_log
        self.limits = limits
        # How long failing sends are retried, and how long an undelivered form's content stays.
        self.retry_window, self.undelivered_kept = windows
        self.journal = Journal(self.outbox.folder / "accepted.journal")
        # Accepted by the relay, not yet written into the item (see step 2 above).
        self.unsaved: dict[tuple[str, str], datetime] = {
            (entry.reference, entry.address): entry.at for entry in self.journal.entries()
        }
        self.memory_only = False
        # What is waiting, as last read or changed: the health check reads it, so a form
        # received between passes counts at once.
        self.index: dict[str, OutboxItem] = {}
        self.quarantined = 0
        self.known: set[str] = set()
        self.deferred: set[tuple[str, str]] = set()
        self.stopping = False
        self.pass_now: datetime | None = None

    # -- What is waiting -------------------------------------------------------------------

    def note_received(self, item: OutboxItem) -> None:
        self.index[item.reference] = item

    def with_unsaved_accepts(self, item: OutboxItem) -> OutboxItem:
        for recipient in item.recipients:
            accepted_at = self.unsaved.get((item.reference, recipient.address))
            if accepted_at is not None and recipient.status is not RecipientStatus.ACCEPTED:
                item = item.with_recipient(
                    replace(
                        recipient,
                        status=RecipientStatus.ACCEPTED,
                        accepted_at=accepted_at,
                        last_error=None,
                    )
                )
        return item

    async def read_waiting(self) -> None:
        read = await anyio.to_thread.run_sync(self.outbox.pending)
        self.index = {item.reference: self.with_unsaved_accepts(item) for item in read.items}
        self.known = set(self.index)
        for found in read.quarantined:
            rule = await anyio.to_thread.run_sync(self.files.found_unreadable, found)
            if rule is not None and rule.then:
                logger.error("A damaged outbox file said it was urgent: %s", rule.name)
        self.quarantined = len(await anyio.to_thread.run_sync(self.outbox.quarantined))

    async def look_for_arrivals(self) -> None:
        """New files since the last look (another process may have received a form): a
        listing, O(waiting), and a read of each new file only."""
        names = await anyio.to_thread.run_sync(self.outbox.waiting_names)
        for name in names - self.known - set(self.index):
            item = await anyio.to_thread.run_sync(self.outbox.read, name)
            if item is not None:
                self.index[name] = self.with_unsaved_accepts(item)
        self.known = names | set(self.index)

    def next_send(self, now: datetime) -> tuple[OutboxItem, RecipientState | None] | None:
        """The most pressing message: urgent first, then oldest first."""
        waiting = sorted(
            (item for item in self.index.values() if item.status is ItemStatus.PENDING),
            key=lambda item: priority(item.urgent, item.received_at),
        )
        for item in waiting:
            if not item.recipients:
                return item, None
            for recipient in item.recipients:
                if recipient.due(now) and (item.reference, recipient.address) not in self.deferred:
                    return item, recipient
        return None

    # -- A pass ----------------------------------------------------------------------------

    async def run(self, now: datetime) -> None:
        self.pass_now = now
        self.deferred = set()
        await self.read_waiting()
        if self.relay.ready:
            while not self.stopping and (chosen := self.next_send(now)) is not None:
                await self.send(*chosen, now)
                await self.look_for_arrivals()

    async def finish(self, now: datetime) -> None:
        """After the pass's sends and digests: keep the records of what reached someone, in
        one store write, and settle what failed."""
        to_record = [
            item
            for item in self.index.values()
            if not item.recorded
            and item.status is ItemStatus.PENDING
            and item.reached_someone
            and (item.next_record_at or now) <= now
        ]
        if to_record:
            await anyio.to_thread.run_sync(self.record, to_record, now)
        for item in list(self.index.values()):
            await anyio.to_thread.run_sync(self.settle, item, now)
        self.index = {
            reference: item
            for reference, item in self.index.items()
            if item.status is not ItemStatus.DELIVERED
        }

    def next_due_at(self) -> datetime | None:
        return min(
            (due for item in self.index.values() if (due := item.next_due_at())), default=None
        )

    # -- One message -----------------------------------------------------------------------

    async def send(self, item: OutboxItem, recipient: RecipientState | None, now: datetime) -> None:
        try:
            if recipient is None:  # migrated from the first version: address it now
                item = await self.addressed(item)
            else:
                item = await self.send_to(item, recipient, now)
        except Exception as error:  # noqa: BLE001 - one item's fault is that item's alone
            logger.error(
                "Delivery of %s %s hit %s", item.form_kind, item.reference, type(error).__name__
            )
            item = self.item_failed(item, error, now)
            await anyio.to_thread.run_sync(self.save, item)
        self.index[item.reference] = item

    async def addressed(self, item: OutboxItem) -> OutboxItem:
        route, addresses = self.composer.addressed(self.composer.submission_of(item))
        recipients = tuple(
            RecipientState(address, new_message_id(self.composer.mail.sender))
            for address in addresses
        )
        item = replace(item, route=route, recipients=recipients)
        await anyio.to_thread.run_sync(self.save, item)
        return item

    def batch_for(self, item: OutboxItem, address: str, now: datetime) -> Batch:
        if address == MEMBER_COPY:
            return Batch.ALONE
        mode = self.composer.mode_for(item.route.split("+"), address)
        sent, urgent_alone = self.send_log.counts(address, now)
        return how_to_send(SendState(item.urgent, mode, sent, urgent_alone), self.limits).batch

    async def send_to(
        self, item: OutboxItem, recipient: RecipientState, now: datetime
    ) -> OutboxItem:
        batch = self.batch_for(item, recipient.address, now)
        if batch is not Batch.ALONE:
            self.digests.add(recipient.address, batch, False, item.reference)
            self.deferred.add((item.reference, recipient.address))
            return item
        submission = self.composer.submission_of(item)
        try:
            address, message = self.composer.for_recipient(
                submission, recipient.address, recipient.message_id, item.route, item.sealed
            )
            await self.relay.send(message, address)
        except DeliveryError as error:
            item = item.with_recipient(self.failed(item, recipient, error, now))
            await anyio.to_thread.run_sync(self.save, item)
            return item
        item = await anyio.to_thread.run_sync(
            self.accepted, item, recipient.address, self.composer.clock()
        )
        self.send_log.note(recipient.address, now, urgent_alone=item.urgent)
        position = [r.address for r in item.recipients].index(recipient.address) + 1
        logger.info(
            "Delivered %s %s to recipient %d of %d",
            item.form_kind,
            item.reference,
            position,
            len(item.recipients),
        )
        return item

    def failed(
        self, item: OutboxItem, recipient: RecipientState, error: Exception, now: datetime
    ) -> RecipientState:
        window_over = now - item.retry_from > self.retry_window
        failed = recipient_failed(recipient, error, now, window_over)
        position = [r.address for r in item.recipients].index(recipient.address) + 1
        if recipient.address == MEMBER_COPY and failed.status is RecipientStatus.FAILED:
            # A courtesy: it never holds the form back, and nothing about it is kept to retry.
            logger.warning(
                "The member's own copy of %s %s could not be delivered (%s); the form itself "
                "is delivered as usual, and the copy is not tried again.",
                item.form_kind,
                item.reference,
                failed.last_error,
            )
        elif failed.status is RecipientStatus.FAILED:
            logger.error(
                "Could not deliver %s %s to recipient %d of %d after %d attempt(s): %s. It is "
                "kept; see `forms-server outbox`.",
                item.form_kind,
                item.reference,
                position,
                len(item.recipients),
                failed.attempts,
                failed.last_error,
            )
        else:
            logger.warning(
                "Delivery of %s %s to recipient %d of %d failed (%s); trying again later",
                item.form_kind,
                item.reference,
                position,
                len(item.recipients),
                failed.last_error,
            )
        return failed

    def item_failed(self, item: OutboxItem, error: Exception, now: datetime) -> OutboxItem:
        """A fault of the item as a whole (its content cannot be opened, or something
        unexpected): every recipient still pending backs off, or fails if it cannot improve."""
        if isinstance(error, FormsServerError) and not isinstance(error, DeliveryError):
            item = replace(item, problem=str(error))
            logger.error("Cannot deliver %s %s: %s", item.form_kind, item.reference, error)
        for recipient in item.recipients:
            if recipient.status is RecipientStatus.PENDING:
                item = item.with_recipient(self.failed(item, recipient, error, now))
        if not item.recipients and item.problem is None:
            item = replace(item, problem=in_words(error))
        return item

    # -- Writing it down -------------------------------------------------------------------

    def save(self, item: OutboxItem) -> None:
        """Best effort: if the state cannot be written, the file keeps its older state, which
        at worst tries something again sooner (never an accepted send: see `accepted`)."""
        try:
            self.outbox.save(item)
        except OSError as error:
            logger.error("Could not write the state of %s: %s", item.reference, error)
            return
        if any(key[0] == item.reference for key in self.unsaved):
            self.journal.clear(item.reference)
            for recipient in item.recipients:
                if recipient.status is RecipientStatus.ACCEPTED:
                    self.unsaved.pop((item.reference, recipient.address), None)

    def accepted(self, item: OutboxItem, address: str, now: datetime) -> OutboxItem:
        """Written down at once, before anything else can fail."""
        recipient = next(r for r in item.recipients if r.address == address)
        item = item.with_recipient(
            replace(recipient, status=RecipientStatus.ACCEPTED, accepted_at=now, last_error=None)
        )
        try:
            self.outbox.save(item)
        except OSError as error:
            self.unsaved[(item.reference, address)] = now
            kept = self.journal.record(Accepted(item.reference, address, now))
            self.memory_only = self.memory_only or not kept
            logger.error(
                "%s was accepted by the relay but could not be written down (%s); it will not "
                "be sent again%s",
                item.reference,
                error.strerror,
                ""
                if kept
                else " while this process runs (the journal could not be written either)",
            )
        else:
            self.save(item)  # clears any journal entry the item now holds itself
        return item

    def record(self, items: list[OutboxItem], now: datetime) -> None:
        """The minimal records, in one store write; one by one if that fails, so a bad item
        never holds back the others. Then each item is finished or saved."""
        opened: dict[str, tuple[OutboxItem, Submission]] = {}
        for item in items:
            try:
                opened[item.reference] = (item, self.composer.submission_of(item))
            except FormsServerError as error:
                self.record_failed(item, error, now)
        recorded: list[OutboxItem] = []
        try:
            self.store.add_delivered_many([submission for _, submission in opened.values()], now)
            recorded = [item for item, _ in opened.values()]
        except Exception:  # noqa: BLE001 - find the one item at fault, below
            for item, submission in opened.values():
                try:
                    self.store.add_delivered_many([submission], now)
                    recorded.append(item)
                except Exception as error:  # noqa: BLE001 - that item's fault alone
                    self.record_failed(item, error, now)
        for item in recorded:
            done = replace(item, recorded=True, next_record_at=None)
            self.index[item.reference] = done
            try:
                if done.status is ItemStatus.DELIVERED:
                    self.files.delivered(done)
                else:
                    self.outbox.save(done)
            except OSError as error:
                # The record is in the store (which keeps one per reference), so doing this
                # again next pass is harmless.
                logger.error("Could not finish %s: %s", done.reference, error)

    def record_failed(self, item: OutboxItem, error: Exception, now: datetime) -> None:
        attempts = item.record_attempts + 1
        logger.error(
            "Could not keep the record of %s %s (%s); trying again later",
            item.form_kind,
            item.reference,
            in_words(error),
        )
        failed = replace(
            item,
            record_attempts=attempts,
            next_record_at=now + timedelta(seconds=backoff_seconds(attempts)),
        )
        self.index[item.reference] = failed
        self.save(failed)

    def settle(self, item: OutboxItem, now: datetime) -> None:
        """Failed items say since when; one that reached nobody goes to the lifecycle (urgent:
        escalate at once); their content goes once the group's time is up, and a content-free
        failure record stays until the host dismisses it."""
        if item.status is not ItemStatus.FAILED:
            return
        settled = item
        if item.failed_at is None:
            settled = replace(item, failed_at=now)
            if not item.reached_someone and item.sealed:
                try:
                    self.files.reached_nobody(item)
                except OSError as error:
                    logger.error("Could not start the escalation of %s: %s", item.reference, error)
        elif item.sealed and now - item.failed_at > self.undelivered_kept:
            settled = replace(item, sealed="", content_erased_at=now)
            logger.info("Erased the content of undelivered %s %s", item.form_kind, item.reference)
        if settled is not item:
            self.index[item.reference] = settled
            self.save(settled)

    # -- Digests carry some of its forms (digests.py) ----------------------------------------

    def digest_forms(self, references: list[str]) -> list[Submission]:
        return [self.composer.submission_of(self.index[reference]) for reference in references]

    async def digest_sent(self, references: list[str], address: str, now: datetime) -> None:
        for reference in references:
            self.index[reference] = await anyio.to_thread.run_sync(
                self.accepted, self.index[reference], address, now
            )

    async def digest_failed(
        self, references: list[str], address: str, error: Exception, now: datetime
    ) -> None:
        for reference in references:
            item = self.index[reference]
            recipient = next(r for r in item.recipients if r.address == address)
            item = item.with_recipient(self.failed(item, recipient, error, now))
            self.index[reference] = item
            await anyio.to_thread.run_sync(self.save, item)

    async def digest_waits(self, references: list[str], address: str, until: datetime) -> None:
        """Not its time yet: no attempt counted, and the worker wakes for it."""
        for reference in references:
            item = self.index[reference]
            recipient = next(r for r in item.recipients if r.address == address)
            item = item.with_recipient(replace(recipient, next_attempt_at=until))
            self.index[reference] = item
            await anyio.to_thread.run_sync(self.save, item)


class Recording:
    """The records step of delivery, run after the digests so a form a digest carried is
    recorded in the same pass."""

    name = "records"

    def __init__(self, sending: Sending) -> None:
        self.sending = sending

    async def run(self, now: datetime) -> None:
        await self.sending.finish(now)

    def next_due_at(self) -> datetime | None:
        return None  # due whenever delivery is
