"""Writing delivery down: each acceptance at once (into the item, else into the journal's
reserved space, else in memory, and the health check says so), the minimal records in one
store write per pass, and what failed settled (reached nobody: the lifecycle decides; its
content goes after the group's time).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.health import WaitingIndex
from forms_server.delivery.runner import backoff_seconds, in_words, recipient_failed
from forms_server.errors import FormsServerError
from forms_server.forms.fields import Submission
from forms_server.mail.messages import DeliveryError
from forms_server.storage.form_files import FormFiles
from forms_server.storage.journal import Accepted, Journal
from forms_server.storage.outbox_items import (
    MEMBER_COPY,
    ItemStatus,
    OutboxItem,
    RecipientState,
    RecipientStatus,
)
from forms_server.storage.records import SubmissionStore

logger = logging.getLogger(__name__)


def failed(
    item: OutboxItem,
    recipient: RecipientState,
    error: Exception,
    now: datetime,
    retry_window: timedelta,
) -> RecipientState:
    """One recipient's send failed: its new state, and the log says what happens next."""
    window_over = now - item.retry_from > retry_window
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


def item_failed(
    item: OutboxItem, error: Exception, now: datetime, retry_window: timedelta
) -> OutboxItem:
    """A fault of the item as a whole (its content cannot be opened, or something
    unexpected): every recipient still pending backs off, or fails if it cannot improve."""
    if isinstance(error, FormsServerError) and not isinstance(error, DeliveryError):
        item = replace(item, problem=str(error))
        logger.error("Cannot deliver %s %s: %s", item.form_kind, item.reference, error)
    for recipient in item.recipients:
        if recipient.status is RecipientStatus.PENDING:
            item = item.with_recipient(failed(item, recipient, error, now, retry_window))
    if not item.recipients and item.problem is None:
        item = replace(item, problem=in_words(error))
    return item


class Records:
    def __init__(
        self,
        files: FormFiles,
        store: SubmissionStore,
        composer: Composer,
        index: WaitingIndex,
        windows: tuple[timedelta, timedelta],
    ) -> None:
        self.files = files
        self.outbox = files.outbox
        self.store = store
        self.composer = composer
        # The delivery job's own view of what is waiting (shared, changed in place).
        self.index = index
        # How long failing sends are retried, and how long an undelivered form's content stays.
        self.retry_window, self.undelivered_kept = windows
        self.journal = Journal(self.outbox.folder / "accepted.journal")
        # Accepted by the relay, not yet written into the item.
        self.unsaved: dict[tuple[str, str], datetime] = {
            (entry.reference, entry.address): entry.at for entry in self.journal.entries()
        }
        self.memory_only = False

    def with_unsaved_accepts(self, item: OutboxItem) -> OutboxItem:
        for recipient in item.recipients:
            accepted_at = self.unsaved.get((item.reference, recipient.address))
            if accepted_at is not None and recipient.status is not RecipientStatus.ACCEPTED:
                item = item.with_recipient(recipient.accepted(accepted_at))
        return item

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
            if item.status is ItemStatus.DELIVERED:
                # Recorded when its first recipient had it; every recipient has it now.
                await anyio.to_thread.run_sync(self.delivered, item)
            await anyio.to_thread.run_sync(self.settle, item, now)
        for reference in [
            r for r, item in self.index.items() if item.status is ItemStatus.DELIVERED
        ]:
            del self.index[reference]

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
        item = item.with_recipient(recipient.accepted(now))
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
            if done.status is not ItemStatus.DELIVERED:
                self.save(done)  # the rest once every recipient has it (see `finish`)

    def delivered(self, item: OutboxItem) -> None:
        """Every recipient has it and its record is kept: the lifecycle's turn. If this fails,
        the next pass does it again, harmlessly (the store keeps one record per reference)."""
        try:
            self.files.delivered(item)
        except OSError as error:
            logger.error("Could not finish %s: %s", item.reference, error)

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


class Recording:
    """The records step of delivery, run after the digests so a form a digest carried is
    recorded in the same pass."""

    name = "records"

    def __init__(self, records: Records) -> None:
        self.records = records

    async def run(self, now: datetime) -> None:
        await self.records.finish(now)

    def next_due_at(self) -> datetime | None:
        return None  # due whenever delivery is
