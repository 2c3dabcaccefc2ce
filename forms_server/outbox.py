"""The durable outbox: a confirmed form is on disk before the member sees "received", and its
email keeps being tried until the relay takes it or it can never be sent.

One small file per submission, `outbox/<reference>.json`, holds the sealed submission and its
delivery state. It is created complete or not at all (written to a temporary file, fsynced, then
linked into place, which fails if the reference is already there: a replay or a double click
finds it and adds nothing), and the folder is fsynced before the 303. A confirm therefore costs
one small write, however many records the store holds.

A worker started in the app's lifespan sends due items, urgent ones first and at once, with
exponential backoff for transient failures over a configurable window. When the relay takes a
message, the minimal record the form's definition allows goes into the store, and the item file
is atomically replaced by a marker with no content (status "delivered"). The marker keeps the
reference's name taken, so a replay can never create it again, until any token for it has
expired. The content is then gone from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread

from forms_server.forms import FORMS, Submission
from forms_server.mailer import (
    DeliveryError,
    PermanentDeliveryError,
    build_message,
    send,
)
from forms_server.settings import MailSettings
from forms_server.store import Sealer, SubmissionStore, fsync_folder

logger = logging.getLogger(__name__)

PENDING = "pending"
FAILED = "failed"
DELIVERED = "delivered"
FIRST_RETRY_SECONDS = 30.0
LONGEST_RETRY_SECONDS = 60 * 60.0
STALE_TEMPORARY_SECONDS = 60.0
PURGE_EVERY = timedelta(hours=1)
# Delivered records are written to the store together, up to this many at a time.
BATCH = 50


@dataclass(frozen=True)
class OutboxItem:
    reference: str
    form_kind: str
    received_at: datetime
    urgent: bool
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sealed: str
    # Retries go on until this plus the retry window; `outbox retry` starts it again.
    retry_from: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "form_kind": self.form_kind,
            "received_at": self.received_at.isoformat(),
            "urgent": self.urgent,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "sealed": self.sealed,
            "retry_from": self.retry_from.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        return cls(
            reference=data["reference"],
            form_kind=data["form_kind"],
            received_at=datetime.fromisoformat(data["received_at"]),
            urgent=bool(data["urgent"]),
            status=data["status"],
            attempts=int(data["attempts"]),
            next_attempt_at=datetime.fromisoformat(data["next_attempt_at"]),
            last_error=data.get("last_error"),
            sealed=data["sealed"],
            retry_from=datetime.fromisoformat(data["retry_from"]),
        )


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    oldest_pending_seconds: float | None
    failed: int


def backoff_seconds(attempts: int) -> float:
    """30 s, 1 min, 2 min ... up to an hour, with jitter so many items do not retry together."""
    base = min(FIRST_RETRY_SECONDS * 2.0 ** max(attempts - 1, 0), LONGEST_RETRY_SECONDS)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not secrecy


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock on an item, so two server processes never both send it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


class Outbox:
    def __init__(
        self,
        data_dir: Path,
        sealer: Sealer,
        store: SubmissionStore,
        mail: MailSettings,
        group_name: str,
        replay_window: timedelta,
    ) -> None:
        self.folder = data_dir / "outbox"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sealer = sealer
        self.store = store
        self.mail = mail
        self.group_name = group_name
        self.replay_window = replay_window
        # Where the relay is: the configured one, or the embedded catcher once it has started.
        self.relay: tuple[str, int] | None = (mail.host, mail.port) if mail.host else None
        self.wake = asyncio.Event()
        self.stopping = False
        self.last_purge: datetime | None = None
        self.remove_stale_temporary_files()

    def use_relay(self, host: str, port: int, mail: MailSettings) -> None:
        """Where to send from now on (the embedded catcher, once it is listening)."""
        self.relay = (host, port)
        self.mail = mail

    # -- Files -------------------------------------------------------------------------------

    def item_path(self, reference: str) -> Path:
        return self.folder / f"{reference}.json"

    def remove_stale_temporary_files(self) -> None:
        """Another server process may be writing one right now (for milliseconds), so only
        files older than a minute count as left behind by an interrupted write."""
        cutoff = time.time() - STALE_TEMPORARY_SECONDS
        for stale in self.folder.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime < cutoff:
                    stale.unlink()
                    logger.info("Removed a temporary outbox file left by an interrupted write")

    def write_temporary(self, item: OutboxItem) -> Path:
        temporary = self.folder / f".{item.reference}.{os.getpid()}.{random.getrandbits(32)}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(item.to_json(), file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        return temporary

    def create(self, item: OutboxItem) -> bool:
        """Writes a new item durably; False if its reference is already here (pending, failed
        or delivered: a delivered item's marker keeps the name taken)."""
        temporary = self.write_temporary(item)
        try:
            os.link(temporary, self.item_path(item.reference))
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        fsync_folder(self.folder)
        return True

    def rewrite(self, item: OutboxItem) -> None:
        temporary = self.write_temporary(item)
        temporary.replace(self.item_path(item.reference))
        fsync_folder(self.folder)

    def read(self, reference: str) -> OutboxItem | None:
        try:
            data = json.loads(self.item_path(reference).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return OutboxItem.from_json(data)

    def items(self) -> list[OutboxItem]:
        found = []
        for path in self.folder.glob("*.json"):
            item = self.read(path.stem)
            if item is not None:
                found.append(item)
        return found

    def status(self, reference: str) -> str | None:
        item = self.read(reference)
        return item.status if item else None

    # -- Receiving ---------------------------------------------------------------------------

    def add(self, submission: Submission) -> bool:
        sealed = self.sealer.seal(
            submission.reference,
            {"answers": submission.answers, "guidelines_version": submission.guidelines_version},
        )
        item = OutboxItem(
            reference=submission.reference,
            form_kind=submission.form_kind,
            received_at=submission.received_at,
            urgent=submission.urgent,
            status=PENDING,
            attempts=0,
            next_attempt_at=submission.received_at,
            last_error=None,
            sealed=sealed,
            retry_from=submission.received_at,
        )
        return self.create(item)

    async def receive(self, submission: Submission) -> None:
        """On disk, fsynced, before this returns (and so before the member's 303)."""
        added = await anyio.to_thread.run_sync(self.add, submission)
        logger.info(
            "Received a %s%s (%s)",
            submission.form_kind,
            ", urgent" if submission.urgent else "",
            "new" if added else "already received",
        )
        if added:
            self.wake.set()

    def submission_of(self, item: OutboxItem) -> Submission:
        opened = self.sealer.open(item.reference, item.sealed)
        return Submission(
            reference=item.reference,
            form_kind=item.form_kind,
            answers=opened["answers"],
            received_at=item.received_at,
            urgent=item.urgent,
            guidelines_version=opened.get("guidelines_version"),
        )

    # -- Delivering --------------------------------------------------------------------------

    def due(self, now: datetime) -> list[OutboxItem]:
        pending = [item for item in self.items() if item.status == PENDING]
        ready = [item for item in pending if item.next_attempt_at <= now]
        return sorted(ready, key=lambda item: (not item.urgent, item.next_attempt_at))

    def next_due_in(self, now: datetime) -> float | None:
        pending = [item for item in self.items() if item.status == PENDING]
        if not pending:
            return None
        soonest = min(item.next_attempt_at for item in pending)
        return max((soonest - now).total_seconds(), 0.0)

    def delivered(self, sent: list[tuple[OutboxItem, Submission]], now: datetime) -> None:
        """Keep what each form's definition allows, in one store write for the whole batch
        (group commit); then the content leaves the disk."""
        self.store.add_delivered_many([submission for _, submission in sent], now)
        for item, _ in sent:
            marker = replace(item, status=DELIVERED, sealed="", last_error=None)
            temporary = self.write_temporary(marker)
            temporary.replace(self.item_path(item.reference))
        fsync_folder(self.folder)

    def failed(self, item: OutboxItem, error: DeliveryError, now: datetime) -> OutboxItem:
        attempts = item.attempts + 1
        window_over = now - item.retry_from > timedelta(hours=self.mail.retry_hours)
        permanent = isinstance(error, PermanentDeliveryError) or window_over
        updated = replace(
            item,
            attempts=attempts,
            status=FAILED if permanent else PENDING,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
            last_error=str(error),
        )
        self.rewrite(updated)
        if permanent:
            logger.error(
                "Could not deliver %s %s after %d attempt(s): %s. It is kept; see "
                "`forms-server outbox`.",
                item.form_kind,
                item.reference,
                attempts,
                error,
            )
        else:
            logger.warning(
                "Delivery of %s %s failed (%s); trying again later",
                item.form_kind,
                item.reference,
                error,
            )
        return updated

    async def send_one(self, item: OutboxItem) -> Submission | None:
        """Sends one claimed item; the submission if the relay took it."""
        current = self.read(item.reference)
        if current is None or current.status != PENDING or self.relay is None:
            return None  # another process delivered it first
        submission = self.submission_of(current)
        message, recipients = build_message(submission, self.mail, self.group_name)
        host, port = self.relay
        try:
            await send(message, recipients, self.mail, host, port)
        except DeliveryError as error:
            await anyio.to_thread.run_sync(self.failed, current, error, datetime.now(UTC))
            return None
        logger.info("Delivered %s %s", item.form_kind, item.reference)
        return submission

    async def deliver_due(self) -> None:
        """Sends what is due, urgent first. Items stay claimed until their batch is recorded,
        so another server process never sends one twice."""
        due = await anyio.to_thread.run_sync(self.due, datetime.now(UTC))
        for start in range(0, len(due), BATCH):
            with contextlib.ExitStack() as claims:
                sent = []
                for item in due[start : start + BATCH]:
                    if self.stopping:
                        break
                    if not claims.enter_context(claimed(self.item_path(item.reference))):
                        continue
                    submission = await self.send_one(item)
                    if submission is not None:
                        sent.append((item, submission))
                if sent:
                    await anyio.to_thread.run_sync(self.delivered, sent, datetime.now(UTC))
            if self.stopping:
                return

    async def stop(self) -> None:
        """Finish the message being sent (a cancelled SMTP conversation helps nobody), then
        stop. Whatever is still pending is sent at the next start."""
        self.stopping = True
        self.wake.set()

    async def run(self) -> None:
        """The worker: deliver what is due, then sleep until the next item is due or a new
        one arrives, until `stop`."""
        while not self.stopping:
            self.wake.clear()
            try:
                await self.deliver_due()
                await anyio.to_thread.run_sync(self.housekeeping, datetime.now(UTC))
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one item
                logger.error("The outbox worker hit %s; trying again shortly", type(error).__name__)
            wait = await anyio.to_thread.run_sync(self.next_due_in, datetime.now(UTC))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(wait or 60.0, 60.0))

    def housekeeping(self, now: datetime) -> None:
        """Hourly: records past their retention leave the store; old delivered markers go."""
        if self.last_purge is not None and now - self.last_purge < PURGE_EVERY:
            return
        self.last_purge = now
        self.store.purge_expired(now)
        self.forget_old_markers(now)

    def forget_old_markers(self, now: datetime) -> None:
        """A delivered marker only has to outlive every token that could replay it."""
        cutoff = (now - self.replay_window).timestamp()
        for item in self.items():
            path = self.item_path(item.reference)
            if item.status == DELIVERED and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    # -- Operations --------------------------------------------------------------------------

    def health(self, now: datetime) -> OutboxHealth:
        items = self.items()
        pending = [item for item in items if item.status == PENDING]
        oldest = min((item.received_at for item in pending), default=None)
        return OutboxHealth(
            pending=len(pending),
            oldest_pending_seconds=(now - oldest).total_seconds() if oldest else None,
            failed=sum(1 for item in items if item.status == FAILED),
        )

    def retry_failed(self) -> int:
        """After fixing the relay: send failed items again from now."""
        now = datetime.now(UTC)
        retried = 0
        for item in self.items():
            if item.status == FAILED and item.form_kind in FORMS:
                self.rewrite(replace(item, status=PENDING, next_attempt_at=now, retry_from=now))
                retried += 1
        return retried
