"""The delivery worker: sends each recipient their own message, records what the form keeps,
backs off, and tells the truth about all of it to `/healthz`.

The order of steps is what keeps a crash or a fault from repeating or losing mail:

1. send one recipient's message;
2. at once, mark that recipient accepted in the item's file (a small durable write of its own),
   so a crash repeats at most the one message in flight. If even that write fails (a full
   disk), the process remembers it and never sends it again while it runs;
3. once any recipient has it, keep the minimal record in the store (batched: one write per pass);
4. once every recipient has it and it is recorded, the item becomes an empty delivered marker.

Anything that goes wrong with one item (its content, its message, a send, a write) is that
item's failure: counted, backed off, logged with the reference and never the content, and no
other item waits for it or is sent again because of it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import anyio.to_thread

from forms_server.config.decisions import DeliveryMode
from forms_server.config.env import HealthLimits, MailSettings
from forms_server.delivery.member_copy import COPY_REFUSED_ROUTE, COPY_ROUTE, CopyLimit
from forms_server.delivery.renewals import Renewals, RenewLink, address_of
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import (
    COPY_FULL,
    FORMS,
    Recipients,
    Submission,
    member_copy_wanted,
    recipients_for,
)
from forms_server.mail.crypto import RecipientKey, RecipientKeyError, encrypt_for
from forms_server.mail.messages import (
    DeliveryError,
    Envelope,
    MessageBuildError,
    PermanentDeliveryError,
    TransientDeliveryError,
    build_digest,
    build_link_only,
    build_member_copy,
    build_message,
    build_notice,
    build_renewal_reminder,
    new_message_id,
    send,
)
from forms_server.sealing import Sealer
from forms_server.storage.acknowledgements import Acknowledgements
from forms_server.storage.files import write_problem
from forms_server.storage.notices import Notices
from forms_server.storage.outbox import (
    MEMBER_COPY,
    ItemStatus,
    Outbox,
    OutboxItem,
    RecipientState,
    RecipientStatus,
)
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.records import SubmissionStore
from forms_server.storage.watch import Watch, Watched

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30.0
LONGEST_RETRY_SECONDS = 60 * 60.0
LONGEST_SLEEP_SECONDS = 60.0
# However due an item looks, a pass that could not move it waits this long before the next.
SHORTEST_SLEEP_SECONDS = 1.0
PURGE_EVERY = timedelta(hours=1)
BEAT_EVERY = timedelta(seconds=10)

Clock = Callable[[], datetime]


class OutboxWriteError(FormsServerError):
    """A confirmed form could not be written to disk, so it was not received."""


def backoff_seconds(attempts: int) -> float:
    """30 s, 1 min, 2 min ... up to an hour, with jitter so many items do not retry together."""
    base = min(FIRST_RETRY_SECONDS * 2.0 ** max(attempts - 1, 0), LONGEST_RETRY_SECONDS)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not secrecy


# The routes forms take, as the group's delivery decision names them.
ESCALATION_ROUTE = "escalation"
DELIVERY_ROUTE_OF = {
    Recipients.FACILITATORS.value: "facilitators",
    Recipients.CONCERNS.value: "concerns",
    Recipients.FACILITATOR_CONCERNS.value: "concerns",
}


class SealedForm(Protocol):
    """Anything that holds a sealed submission: an outbox item, a watched form, a link-only one."""

    @property
    def reference(self) -> str: ...
    @property
    def form_kind(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def sealed(self) -> str: ...


def open_submission(sealer: Sealer, item: SealedForm) -> Submission:
    opened = sealer.open(item.reference, item.sealed)
    return Submission(
        reference=item.reference,
        form_kind=item.form_kind,
        answers=opened["answers"],
        received_at=item.received_at,
        urgent=item.urgent,
        guidelines_version=opened.get("guidelines_version"),
        suspected_automated=bool(opened.get("suspected_automated")),
        replaces=opened.get("replaces"),
    )


def recipient_at(item: OutboxItem, address: str) -> RecipientState:
    return next(recipient for recipient in item.recipients if recipient.address == address)


def recipient_addresses(mail: MailSettings, route: Recipients) -> tuple[str, ...]:
    return {
        Recipients.FACILITATORS: mail.facilitators,
        Recipients.CONCERNS: mail.concerns,
        Recipients.FACILITATOR_CONCERNS: mail.facilitator_concerns,
    }[route]


# -- What /healthz and `forms-server outbox` report ---------------------------------------------


@dataclass(frozen=True)
class OutboxSummary:
    """Counts and times only: nothing a member wrote, no reference."""

    pending: int = 0
    urgent_pending: int = 0
    oldest_pending_at: datetime | None = None
    oldest_urgent_at: datetime | None = None
    failed: int = 0
    quarantined: int = 0


def summarise(items: Iterable[OutboxItem], quarantined: int) -> OutboxSummary:
    items = list(items)
    pending = [item for item in items if item.status is ItemStatus.PENDING]
    urgent = [item for item in pending if item.urgent]
    return OutboxSummary(
        pending=len(pending),
        urgent_pending=len(urgent),
        oldest_pending_at=min((item.received_at for item in pending), default=None),
        oldest_urgent_at=min((item.received_at for item in urgent), default=None),
        failed=sum(1 for item in items if item.status is ItemStatus.FAILED),
        quarantined=quarantined,
    )


def seconds_since(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else max(round((now - moment).total_seconds()), 0)


@dataclass(frozen=True)
class Health:
    summary: OutboxSummary
    problems: tuple[str, ...]
    worker_seconds_since_pass: int | None
    now: datetime
    suspected_automated: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "status": "ok" if self.ok else "failing",
            "problems": list(self.problems),
            "outbox": {
                "pending": summary.pending,
                "urgent_pending": summary.urgent_pending,
                "oldest_pending_seconds": seconds_since(summary.oldest_pending_at, self.now),
                "oldest_urgent_seconds": seconds_since(summary.oldest_urgent_at, self.now),
                "failed": summary.failed,
                "quarantined": summary.quarantined,
            },
            "worker": {"seconds_since_last_pass": self.worker_seconds_since_pass},
            # Delivered with a mark, never dropped; many at once may mean a flood of spam.
            "suspected_automated_since_start": self.suspected_automated,
        }


def assess(
    summary: OutboxSummary,
    folder_problem: str | None,
    last_pass_at: datetime | None,
    now: datetime,
    limits: HealthLimits,
) -> Health:
    """Everything that means a form may not reach anyone, in plain words."""
    problems = []
    if folder_problem is not None:
        problems.append(f"The data folder cannot be written ({folder_problem}).")
    silent = seconds_since(last_pass_at, now)
    if silent is None or silent > limits.worker_silent_seconds:
        problems.append("The delivery worker is not running.")
    if summary.failed:
        problems.append(f"{summary.failed} form(s) could not be delivered.")
    if summary.quarantined:
        problems.append(f"{summary.quarantined} outbox file(s) could not be read.")
    urgent_wait = seconds_since(summary.oldest_urgent_at, now)
    if urgent_wait is not None and urgent_wait > limits.urgent_waiting_seconds:
        problems.append(f"An urgent form has waited {urgent_wait // 60} minute(s).")
    wait = seconds_since(summary.oldest_pending_at, now)
    if wait is not None and wait > limits.waiting_seconds:
        problems.append(f"A form has waited {wait // 60} minute(s).")
    return Health(summary, tuple(problems), silent, now)


# -- The worker ---------------------------------------------------------------------------------


class Delivery:
    """Receives confirmed forms into the outbox, and delivers them."""

    def __init__(
        self,
        outbox: Outbox,
        store: SubmissionStore,
        mail: MailSettings,
        group_name: str,
        replay_window: timedelta,
        limits: HealthLimits,
        undelivered_kept: timedelta,
        clock: Clock = lambda: datetime.now(UTC),
        sent_alone_per_hour: int = 30,
        digest_every: timedelta = timedelta(minutes=5),
        acknowledge_link: Callable[[Submission, str], str | None] | None = None,
        acknowledgements: Acknowledgements | None = None,
        watch: Watch | None = None,
        escalate_after: Mapping[str, timedelta] | None = None,
        member_link: Callable[[str, str, datetime], tuple[str, datetime]] | None = None,
        copy_limit: CopyLimit | None = None,
        renewals: Renewals | None = None,
        renew_link: RenewLink | None = None,
        reading: ReadingRoom | None = None,
        read_link: Callable[[str, str, str], str] | None = None,
        recipient_keys: Mapping[str, RecipientKey] | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.sealer: Sealer = store.sealer
        self.mail = mail
        self.group_name = group_name
        self.replay_window = replay_window
        self.limits = limits
        self.undelivered_kept = undelivered_kept
        self.clock = clock
        # Where the relay is: the configured one, or the embedded catcher once it has started.
        self.relay: tuple[str, int] | None = (mail.host, mail.port) if mail.host else None
        self.wake = asyncio.Event()
        self.stopping = False
        self.last_purge: datetime | None = None
        self.summary = OutboxSummary()
        self.folder_problem: str | None = None
        # Set by each pass and after each item; a worker that never started never sets it.
        self.last_pass_at: datetime | None = None
        self.next_due_at: datetime | None = None
        self.last_beat_at: datetime | None = None
        # Recipients the relay accepted whose acceptance could not be written down (a full
        # disk): never sent again while this process runs, written down when the disk allows.
        self.unsaved_accepts: dict[tuple[str, str], datetime] = {}
        # Forms received since start with the hidden trap field filled (delivered, marked).
        self.suspected_automated = 0
        # A flood cannot bury an inbox: past this many messages to one address in an hour,
        # the next forms for it go together, in one digest at most every `digest_every`.
        # Each recipient's own "mark as being dealt with" link, for concerns and urgent forms.
        self.acknowledge_link = acknowledge_link
        self.acknowledgements = acknowledgements
        # Concerns and urgent notices nobody picks up in time go to the escalation contact.
        self.watch = watch
        self.escalate_after = escalate_after or {
            "urgent": timedelta(minutes=30),
            "other": timedelta(days=2),
        }
        self.overdue = 0
        self.next_escalation_at: datetime | None = None
        # The member's own copy, when they ask for one: its private link, and how many one
        # address may have in a day. Without both, no copy is sent.
        self.member_link = member_link
        self.copy_limit = copy_limit
        # What the facilitators must be told (a withdrawal, say), kept until they have it.
        self.notices = Notices(outbox)
        self.oldest_notice_at: datetime | None = None
        # Consents that lapse: the weekly list for the facilitators, and members' reminders.
        self.renewals = renewals
        self.renew_link = renew_link
        self.last_renewal_check: datetime | None = None
        # Link-only and encrypted delivery (decisions.delivery_mode): where link-only content
        # waits to be read, each recipient's link to it, and recipients' own keys.
        self.reading = reading
        self.read_link = read_link
        self.recipient_keys = {
            address.lower(): key for address, key in (recipient_keys or {}).items()
        }
        self.sent_alone_per_hour = sent_alone_per_hour
        self.digest_every = digest_every
        self.sent_log: dict[str, collections.deque[datetime]] = {}
        self.next_digest_at: dict[str, datetime] = {}
        # This pass: address -> references of items whose message to it waits for a digest.
        self.digest_waiting: dict[str, list[str]] = {}

    def use_relay(self, host: str, port: int, mail: MailSettings) -> None:
        """Where to send from now on (the embedded catcher, once it is listening)."""
        self.relay = (host, port)
        self.mail = mail

    # -- Receiving ---------------------------------------------------------------------------

    def addressed(self, submission: Submission) -> tuple[str, tuple[RecipientState, ...]]:
        routes = recipients_for(FORMS[submission.form_kind], submission.answers)
        # One message per person, even when two routes name the same address.
        addresses = dict.fromkeys(
            address for route in routes for address in recipient_addresses(self.mail, route)
        )
        return "+".join(route.value for route in routes), tuple(
            RecipientState(address=address, message_id=new_message_id(self.mail.sender))
            for address in addresses
        )

    def with_member_copy(
        self, submission: Submission, route: str, recipients: tuple[RecipientState, ...]
    ) -> tuple[str, tuple[RecipientState, ...]]:
        """The member's copy as one more recipient, last, if they asked for one and their
        address has not had its copies for the day; the route says which it was."""
        wanted = member_copy_wanted(FORMS[submission.form_kind], submission.answers)
        if wanted is None or self.member_link is None or self.copy_limit is None:
            return route, recipients
        reference = submission.reference
        if self.outbox.read(reference) is not None or self.outbox.is_delivered(reference):
            return route, recipients  # a replay: its copy, if any, was counted the first time
        try:
            allowed = self.copy_limit.take(wanted[1], submission.received_at)
        except OSError as error:
            # The copy is a courtesy: a count that cannot be written never stops the form.
            logger.error("A member's copy was not sent: its count could not be written (%s)", error)
            return route, recipients
        if not allowed:
            logger.warning("A member's copy was not sent: its address had its copies today")
            return f"{route}+{COPY_REFUSED_ROUTE}", recipients
        copy = RecipientState(address=MEMBER_COPY, message_id=new_message_id(self.mail.sender))
        return f"{route}+{COPY_ROUTE}", (*recipients, copy)

    def add(self, submission: Submission) -> str | None:
        """The item's route ("facilitators+member-copy") once it is on disk; None when the
        reference was already taken (a replay)."""
        route, recipients = self.with_member_copy(submission, *self.addressed(submission))
        sealed = self.sealer.seal(
            submission.reference,
            {
                "answers": submission.answers,
                "guidelines_version": submission.guidelines_version,
                "suspected_automated": submission.suspected_automated,
                "replaces": submission.replaces,
            },
        )
        created = self.outbox.create(
            OutboxItem(
                reference=submission.reference,
                form_kind=submission.form_kind,
                received_at=submission.received_at,
                urgent=submission.urgent,
                sealed=sealed,
                retry_from=submission.received_at,
                route=route,
                recipients=recipients,
            )
        )
        return route if created else None

    async def receive(self, submission: Submission) -> str | None:
        """On disk, fsynced, before this returns (and so before the member's 303). Returns who
        it goes to, by role, or None when it had already been received."""
        try:
            route = await anyio.to_thread.run_sync(self.add, submission)
        except OSError as error:
            logger.error("Could not write a %s to the outbox: %s", submission.form_kind, error)
            raise OutboxWriteError("The form could not be written to disk.") from error
        added = route is not None
        logger.info(
            "Received a %s%s%s (%s)",
            submission.form_kind,
            ", urgent" if submission.urgent else "",
            ", maybe automated" if submission.suspected_automated else "",
            "new" if added else "already received",
        )
        if added and submission.suspected_automated:
            self.suspected_automated += 1
        if added:
            self.wake.set()
        return route

    def submission_of(self, item: SealedForm) -> Submission:
        """The submission a pending, watched or link-only item holds, unsealed."""
        return open_submission(self.sealer, item)

    # -- One item ----------------------------------------------------------------------------

    def save(self, item: OutboxItem) -> None:
        """Best effort: if the state cannot be written, the file keeps its older state, which
        at worst tries something again sooner (never an accepted send: see unsaved_accepts)."""
        try:
            self.outbox.save(item)
        except OSError as error:
            logger.error("Could not write the state of %s: %s", item.reference, error)

    def recipient_failed(
        self, item: OutboxItem, recipient: RecipientState, error: Exception, now: datetime
    ) -> OutboxItem:
        attempts = recipient.attempts + 1
        window_over = now - item.retry_from > timedelta(hours=self.mail.retry_hours)
        permanent = isinstance(error, PermanentDeliveryError) or window_over
        position = item.recipients.index(recipient) + 1
        if permanent:
            logger.error(
                "Could not deliver %s %s to recipient %d of %d after %d attempt(s): %s. It is "
                "kept; see `forms-server outbox`.",
                item.form_kind,
                item.reference,
                position,
                len(item.recipients),
                attempts,
                error,
            )
        else:
            logger.warning(
                "Delivery of %s %s to recipient %d of %d failed (%s); trying again later",
                item.form_kind,
                item.reference,
                position,
                len(item.recipients),
                error,
            )
        return item.with_recipient(
            replace(
                recipient,
                attempts=attempts,
                status=RecipientStatus.FAILED if permanent else RecipientStatus.PENDING,
                next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
                last_error=str(error)
                if isinstance(error, FormsServerError)
                else (f"Unexpected {type(error).__name__} while sending."),
            )
        )

    def with_unsaved_accepts(self, item: OutboxItem) -> OutboxItem:
        for recipient in item.recipients:
            accepted_at = self.unsaved_accepts.get((item.reference, recipient.address))
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

    def accepted(self, item: OutboxItem, recipient: RecipientState, now: datetime) -> OutboxItem:
        """Written down at once, before anything else can fail."""
        item = item.with_recipient(
            replace(recipient, status=RecipientStatus.ACCEPTED, accepted_at=now, last_error=None)
        )
        try:
            self.outbox.save(item)
        except OSError as error:
            self.unsaved_accepts[(item.reference, recipient.address)] = now
            logger.error(
                "%s was accepted by the relay but could not be written down (%s); it will "
                "not be sent again",
                item.reference,
                error,
            )
        else:
            self.unsaved_accepts.pop((item.reference, recipient.address), None)
        return item

    async def send_due_recipients(self, item: OutboxItem, now: datetime) -> OutboxItem:
        if self.relay is None:
            return item
        if not item.recipients:  # migrated from the first version: address it now
            route, recipients = self.addressed(self.submission_of(item))
            item = replace(item, route=route, recipients=recipients)
            await anyio.to_thread.run_sync(self.save, item)
        submission = self.submission_of(item)
        host, port = self.relay
        for position, recipient in enumerate(item.recipients, start=1):
            if not recipient.due(now) or self.stopping:
                continue
            # A flood becomes a digest of full forms; link-only and encrypted mail stays one
            # message each (a digest would put the answers back in the mailbox).
            if (
                recipient.address != MEMBER_COPY
                and self.mode_for(item.route.split("+"), recipient.address) is DeliveryMode.FULL
                and self.flooded(recipient.address, now)
            ):
                self.digest_waiting.setdefault(recipient.address, []).append(item.reference)
                continue
            try:
                address, message = self.message_for(submission, recipient, item.route, item.sealed)
                await send(message, address, self.mail, host, port)
            except DeliveryError as error:
                item = self.recipient_failed(item, recipient, error, now)
                await anyio.to_thread.run_sync(self.save, item)
                continue
            item = await anyio.to_thread.run_sync(self.accepted, item, recipient, self.clock())
            self.note_sent(recipient.address, now)
            logger.info(
                "Delivered %s %s to recipient %d of %d",
                item.form_kind,
                item.reference,
                position,
                len(item.recipients),
            )
        return item

    def route_addresses(self, route: str) -> tuple[str, ...]:
        if route == ESCALATION_ROUTE:
            return self.mail.escalation
        try:
            return recipient_addresses(self.mail, Recipients(route))
        except ValueError:
            return ()  # the member's copy, or a route this version does not know

    def mode_for(
        self, routes: Iterable[str], address: str, also: Iterable[str] = ()
    ) -> DeliveryMode:
        """The mode this address gets: the strictest of the routes it receives the form by (and
        of the routes in `also`, whoever they go to); encrypted, for someone without a key, is
        link-only (never plain text)."""
        modes = {
            self.mail.modes.get(DELIVERY_ROUTE_OF.get(route, route), DeliveryMode.FULL)
            for route in routes
            if address in self.route_addresses(route)
        } | {
            self.mail.modes.get(DELIVERY_ROUTE_OF.get(route, route), DeliveryMode.FULL)
            for route in also
        }
        if DeliveryMode.LINK_ONLY in modes:
            return DeliveryMode.LINK_ONLY
        if DeliveryMode.ENCRYPTED in modes:
            key = self.recipient_keys.get(address.lower())
            usable = key is not None and (key.expires_at is None or key.expires_at > self.clock())
            return DeliveryMode.ENCRYPTED if usable else DeliveryMode.LINK_ONLY
        return DeliveryMode.FULL

    def envelope(
        self, address: str, message_id: str | None = None, sent_at: datetime | None = None
    ) -> Envelope:
        """One message to `address` from this service: a new identity unless the outbox
        already gave it one (so a retry is the same message), made now unless said."""
        return Envelope(
            recipient=address,
            message_id=message_id or new_message_id(self.mail.sender),
            mail=self.mail,
            group_name=self.group_name,
            sent_at=sent_at or self.clock(),
        )

    def form_message(
        self, submission: Submission, address: str, message_id: str, mode: DeliveryMode, sealed: str
    ) -> EmailMessage:
        """The form for one recipient, in their route's mode."""
        now = self.clock()
        acknowledge_url = (
            self.acknowledge_link(submission, address) if self.acknowledge_link else None
        )
        if mode is DeliveryMode.LINK_ONLY:
            if self.reading is None or self.read_link is None:
                raise MessageBuildError("Link-only delivery is set, but nothing can keep the form.")
            try:
                readable = self.reading.keep(
                    submission.reference, submission.form_kind, submission.urgent, now, sealed
                )
            except OSError as error:
                # This recipient's message waits and is tried again; the others go now.
                raise TransientDeliveryError(
                    f"The form could not be kept for its link ({type(error).__name__})."
                ) from error
            return build_link_only(
                submission,
                self.envelope(address, message_id, now),
                self.read_link(submission.reference, submission.form_kind, address),
                readable.until,
                acknowledge_url,
            )
        message = build_message(
            submission, self.envelope(address, message_id, now), acknowledge_url
        )
        if mode is DeliveryMode.ENCRYPTED:
            try:
                return encrypt_for(message, self.recipient_keys[address.lower()])
            except RecipientKeyError as error:
                raise MessageBuildError(str(error)) from error
        return message

    def message_for(
        self, submission: Submission, recipient: RecipientState, route: str, sealed: str
    ) -> tuple[str, EmailMessage]:
        """The address and message for one recipient: the member's copy is built from the
        answers it stands for; everyone else gets the form, in their route's mode."""
        now = self.clock()
        if recipient.address == MEMBER_COPY:
            wanted = member_copy_wanted(FORMS[submission.form_kind], submission.answers)
            if wanted is None or self.member_link is None:
                raise MessageBuildError("The member's copy has no address or no link.")
            kind, address = wanted
            link, until = self.member_link(submission.reference, submission.form_kind, now)
            copy = build_member_copy(
                submission,
                self.envelope(address, recipient.message_id, now),
                link,
                until,
                with_answers=kind == COPY_FULL,
            )
            return address, copy
        mode = self.mode_for(route.split("+"), recipient.address)
        message = self.form_message(
            submission, recipient.address, recipient.message_id, mode, sealed
        )
        return recipient.address, message

    # -- Escalation ------------------------------------------------------------------------

    def needs_picking_up(self, item: OutboxItem) -> bool:
        form = FORMS.get(item.form_kind)
        return item.urgent or (form is not None and form.decision_group == "concern")

    def start_watch(self, item: OutboxItem, since: datetime) -> None:
        """From `since`, the group's time to pick it up; then it escalates (see escalation.py)."""
        if self.watch is None or not self.needs_picking_up(item):
            return
        after = self.escalate_after["urgent" if item.urgent else "other"]
        self.watch.start(
            Watched(
                reference=item.reference,
                form_kind=item.form_kind,
                urgent=item.urgent,
                received_at=item.received_at,
                escalate_at=since + after,
                sealed=item.sealed,
            )
        )

    async def escalate_due(self, now: datetime) -> None:
        """Each watched form: picked up, forget it; due, send it to the escalation contact
        (once: written down after the send); escalated and still waiting, count it overdue."""
        if self.watch is None:
            return
        overdue = 0
        self.next_escalation_at = None
        for watched in await anyio.to_thread.run_sync(self.watch.all):
            if self.acknowledgements and self.acknowledgements.get(watched.reference):
                await anyio.to_thread.run_sync(self.watch.forget, watched.reference)
                continue
            if watched.escalated_at is not None:
                overdue += 1
                continue
            if now < watched.escalate_at or self.relay is None or not self.mail.escalation:
                # The worker wakes for it, so it goes on time, not up to a minute late.
                self.next_escalation_at = min(
                    self.next_escalation_at or watched.escalate_at, watched.escalate_at
                )
                continue
            try:
                await self.send_escalation(watched)
            except Exception as error:  # noqa: BLE001 - this escalation's fault alone
                logger.error("Could not escalate %s (%s); trying again", watched.reference, error)
                continue
            await anyio.to_thread.run_sync(self.watch.escalated, watched, self.clock())
            logger.warning(
                "Escalated %s %s: nobody picked it up", watched.form_kind, watched.reference
            )
            overdue += 1
        self.overdue = overdue

    async def send_escalation(self, watched: Watched) -> None:
        if self.relay is None:
            raise DeliveryError("No mail relay yet.")
        host, port = self.relay
        submission = self.submission_of(watched)
        # Never less private than the route the form first took: a concern sent link-only is
        # escalated link-only (or encrypted) whatever the escalation route says.
        form_routes = [
            route.value for route in recipients_for(FORMS[submission.form_kind], submission.answers)
        ]
        for address in self.mail.escalation:
            mode = self.mode_for([ESCALATION_ROUTE], address, also=form_routes)
            message = self.form_message(
                submission, address, new_message_id(self.mail.sender), mode, watched.sealed
            )
            subject = str(message["Subject"])
            message.replace_header("Subject", f"NOBODY HAS PICKED THIS UP - {subject}")
            await send(message, address, self.mail, host, port)

    async def tell(self, addresses: list[str], subject: str, text: str) -> None:
        """A short notice with no member's content ("in hand"), best effort: a failure is
        logged, and the form itself is already in every inbox."""
        if self.relay is None:
            return
        host, port = self.relay
        for address in addresses:
            try:
                message = build_notice(subject, text, self.envelope(address))
                await send(message, address, self.mail, host, port)
            except DeliveryError as error:
                logger.error("Could not send a notice (%s): %s", subject, error)

    # -- Notices that must arrive ------------------------------------------------------------

    def notify(self, route: Recipients, subject: str, text: str) -> None:
        """On disk before this returns; sent by the worker, to every address of the route."""
        self.notices.add(route.value, subject, text, self.clock())
        self.wake.set()

    async def send_notices(self, now: datetime) -> None:
        """Each due notice to each of its addresses that does not have it yet; a failure waits
        and tries again, and never stops another notice."""
        if self.relay is None:
            return
        host, port = self.relay
        waiting = []
        for notice in await anyio.to_thread.run_sync(self.notices.pending):
            if notice.next_attempt_at is not None and now < notice.next_attempt_at:
                waiting.append(notice.created_at)
                continue
            addresses = recipient_addresses(self.mail, Recipients(notice.route))
            try:
                for address in addresses:
                    if address in notice.sent_to:
                        continue
                    message = build_notice(
                        notice.subject, notice.text, self.envelope(address, sent_at=now)
                    )
                    await send(message, address, self.mail, host, port)
                    notice = await anyio.to_thread.run_sync(self.notices.sent, notice, address)
                await anyio.to_thread.run_sync(self.notices.done, notice)
            except Exception as error:  # noqa: BLE001 - this notice's fault alone
                attempts = notice.attempts + 1
                logger.error("Could not send a notice (%s); trying again later", error)
                delay = timedelta(seconds=backoff_seconds(attempts))
                notice = replace(notice, attempts=attempts, next_attempt_at=now + delay)
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(self.notices.save, notice)
                waiting.append(notice.created_at)
        self.oldest_notice_at = min(waiting, default=None)

    # -- Consents that lapse --------------------------------------------------------------------

    async def check_renewals(self, now: datetime) -> None:
        """Hourly: the weekly list, if due, becomes a notice; each member due a reminder gets
        one, written down at once so it is never sent twice."""
        if self.renewals is None or self.relay is None:
            return
        if self.last_renewal_check is not None and now - self.last_renewal_check < PURGE_EVERY:
            return
        self.last_renewal_check = now
        renewals = self.renewals
        try:
            consents = await anyio.to_thread.run_sync(renewals.consents)
            weekly = await anyio.to_thread.run_sync(renewals.weekly_due, now, consents)
            if weekly:
                text = renewals.weekly_text(weekly)
                await anyio.to_thread.run_sync(
                    self.notify, Recipients.FACILITATORS, "Consents that lapse soon", text
                )
            if weekly is not None:
                await anyio.to_thread.run_sync(renewals.weekly_done, now)
            due = renewals.reminders_due(now, consents)
        except Exception as error:  # noqa: BLE001 - renewals never stop delivery
            logger.error("Could not check the consents that lapse (%s)", type(error).__name__)
            return
        host, port = self.relay
        for record, lapses in due:
            address = address_of(record)
            if address is None or self.renew_link is None:
                continue
            try:
                message = build_renewal_reminder(
                    record,
                    lapses,
                    self.envelope(address, sent_at=now),
                    self.renew_link(record.reference),
                )
                await send(message, address, self.mail, host, port)
                await anyio.to_thread.run_sync(self.store.mark_reminded, record.reference, now)
            except Exception as error:  # noqa: BLE001 - this reminder's fault alone
                logger.error("Could not remind %s (%s)", record.reference, error)
                continue
            logger.info("Reminded %s to sign again", record.reference)

    # -- Floods: one digest instead of one message each ------------------------------------------

    def flooded(self, address: str, now: datetime) -> bool:
        log = self.sent_log.get(address)
        if log is None:
            return False
        while log and now - log[0] > timedelta(hours=1):
            log.popleft()
        return len(log) >= self.sent_alone_per_hour

    def note_sent(self, address: str, now: datetime) -> None:
        self.sent_log.setdefault(address, collections.deque()).append(now)

    async def send_digests(
        self, items: dict[str, OutboxItem], now: datetime
    ) -> dict[str, OutboxItem]:
        """Each flooded address gets the forms waiting for it in one message, once its time
        comes; until then they wait, with no attempt counted. Returns the items changed."""
        changed: dict[str, OutboxItem] = {}
        if self.relay is None:
            return changed
        host, port = self.relay
        for address, references in self.digest_waiting.items():
            waiting = [changed.get(reference, items[reference]) for reference in references]
            due_at = self.next_digest_at.get(address)
            if due_at is not None and now < due_at:
                for item in waiting:
                    recipient = recipient_at(item, address)
                    item = item.with_recipient(replace(recipient, next_attempt_at=due_at))
                    await anyio.to_thread.run_sync(self.save, item)
                    changed[item.reference] = item
                continue
            try:
                message = build_digest(
                    [self.submission_of(item) for item in waiting],
                    self.envelope(address),
                    self.sent_alone_per_hour,
                )
                await send(message, address, self.mail, host, port)
            except Exception as error:  # noqa: BLE001 - this digest's fault alone
                for item in waiting:
                    item = self.recipient_failed(item, recipient_at(item, address), error, now)
                    await anyio.to_thread.run_sync(self.save, item)
                    changed[item.reference] = item
                continue
            for item in waiting:
                item = await anyio.to_thread.run_sync(
                    self.accepted, item, recipient_at(item, address), self.clock()
                )
                changed[item.reference] = item
            self.next_digest_at[address] = now + self.digest_every
            self.note_sent(address, now)
            logger.info("Delivered %d forms in one digest to one recipient", len(waiting))
        return changed

    def item_failed(self, item: OutboxItem, error: Exception, now: datetime) -> OutboxItem:
        """A fault of the item as a whole (its content cannot be opened, or something
        unexpected): every recipient still pending backs off, or fails if it cannot improve."""
        if isinstance(error, FormsServerError) and not isinstance(error, DeliveryError):
            item = replace(item, problem=str(error))
            logger.error("Cannot deliver %s %s: %s", item.form_kind, item.reference, error)
        for recipient in item.recipients:
            if recipient.status is RecipientStatus.PENDING:
                item = self.recipient_failed(item, recipient, error, now)
        if not item.recipients and item.problem is None:
            item = replace(item, problem=f"Unexpected {type(error).__name__}.")
        self.save(item)
        return item

    async def handle(self, item: OutboxItem, now: datetime) -> OutboxItem:
        item = self.with_unsaved_accepts(item)
        try:
            item = await self.send_due_recipients(item, now)
        except Exception as error:  # noqa: BLE001 - one item's fault is that item's alone
            logger.error(
                "Delivery of %s %s hit %s", item.form_kind, item.reference, type(error).__name__
            )
            item = await anyio.to_thread.run_sync(self.item_failed, item, error, now)
        return item

    # -- Recording ---------------------------------------------------------------------------

    def record(self, items: list[OutboxItem], now: datetime) -> dict[str, OutboxItem]:
        """The minimal records, in one store write; one by one if that fails, so a bad item
        never holds back the others. Then each item is finished or saved."""
        opened: dict[str, tuple[OutboxItem, Submission]] = {}
        updated: dict[str, OutboxItem] = {}
        for item in items:
            try:
                opened[item.reference] = (item, self.submission_of(item))
            except FormsServerError as error:
                updated[item.reference] = self.record_failed(item, error, now)
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
                    updated[item.reference] = self.record_failed(item, error, now)
        for item in recorded:
            done = replace(item, recorded=True, next_record_at=None)
            updated[item.reference] = done
            try:
                if done.status is ItemStatus.DELIVERED:
                    self.start_watch(done, done.received_at)
                    self.outbox.finish(done.reference)
                else:
                    self.outbox.save(done)
            except OSError as error:
                # The record is in the store (which keeps one per reference), so doing this
                # again next pass is harmless.
                logger.error("Could not finish %s: %s", done.reference, error)
        return updated

    def record_failed(self, item: OutboxItem, error: Exception, now: datetime) -> OutboxItem:
        attempts = item.record_attempts + 1
        logger.error(
            "Could not keep the record of %s %s (%s); trying again later",
            item.form_kind,
            item.reference,
            error if isinstance(error, FormsServerError) else type(error).__name__,
        )
        failed = replace(
            item,
            record_attempts=attempts,
            next_record_at=now + timedelta(seconds=backoff_seconds(attempts)),
        )
        self.save(failed)
        return failed

    def settle(self, item: OutboxItem, now: datetime) -> OutboxItem:
        """Failed items say since when; their content goes once the group's time is up, and a
        content-free failure record stays until the host dismisses it."""
        if item.status is not ItemStatus.FAILED:
            return item
        settled = item
        if item.failed_at is None:
            settled = replace(item, failed_at=now)
            if item.urgent and item.sealed:
                # Someone may be at risk and it reached nobody: escalate now, not later.
                try:
                    self.start_watch(item, now - self.escalate_after["urgent"])
                except OSError as error:
                    logger.error("Could not start the escalation of %s: %s", item.reference, error)
        elif item.sealed and now - item.failed_at > self.undelivered_kept:
            settled = replace(item, sealed="", content_erased_at=now)
            logger.info("Erased the content of undelivered %s %s", item.form_kind, item.reference)
        if settled is not item:
            self.save(settled)
        return settled

    # -- A pass ------------------------------------------------------------------------------

    def beat(self, now: datetime) -> str | None:
        """At most every few seconds (a busy worker passes once per form received): while the
        last one worked; at once while the folder cannot be written."""
        if (
            self.folder_problem is None
            and self.last_beat_at is not None
            and now - self.last_beat_at < BEAT_EVERY
        ):
            return None
        try:
            self.outbox.beat(now)
        except OSError:
            return write_problem(self.outbox.folder) or "the heartbeat could not be written"
        self.last_beat_at = now
        return None

    def due_items(self, items: list[OutboxItem], now: datetime) -> list[OutboxItem]:
        due = [item for item in items if (item.next_due_at() or now + PURGE_EVERY) <= now]
        return sorted(due, key=lambda item: (not item.urgent, item.received_at))

    async def deliver_due(self) -> None:
        """One pass: send what is due (urgent first), record it, and refresh the health."""
        now = self.clock()
        self.folder_problem = await anyio.to_thread.run_sync(self.beat, now)
        with self.outbox.worker_turn() as mine:
            read = await anyio.to_thread.run_sync(self.outbox.pending)
            items = {item.reference: item for item in read.items}
            if mine:
                self.digest_waiting = {}
                for item in self.due_items(read.items, now):
                    if self.stopping:
                        break
                    items[item.reference] = await self.handle(item, now)
                    self.last_pass_at = self.clock()  # alive, even in a long pass
                items |= await self.send_digests(items, now)
                to_record = [
                    item
                    for item in items.values()
                    if not item.recorded
                    and item.status is ItemStatus.PENDING
                    and item.reached_someone
                    and (item.next_record_at or now) <= now
                ]
                if to_record:
                    items |= await anyio.to_thread.run_sync(self.record, to_record, self.clock())
                for reference, item in list(items.items()):
                    items[reference] = self.settle(item, now)
                await self.escalate_due(now)
                await self.check_renewals(now)
                await self.send_notices(now)
            quarantined = await anyio.to_thread.run_sync(self.outbox.quarantined)
        left = [item for item in items.values() if item.status is not ItemStatus.DELIVERED]
        self.summary = summarise(left, len(quarantined))
        self.next_due_at = min(
            (due for item in left if (due := item.next_due_at()) is not None),
            default=None,
        )
        if self.next_escalation_at is not None:
            self.next_due_at = min(
                self.next_due_at or self.next_escalation_at, self.next_escalation_at
            )
        self.last_pass_at = self.clock()

    async def stop(self) -> None:
        """Finish the message being sent (a cancelled SMTP conversation helps nobody), then
        stop. Whatever is still pending is sent at the next start."""
        self.stopping = True
        self.wake.set()

    async def run(self) -> None:
        """The worker: a pass, then sleep until a new form arrives or a minute passes, until
        `stop`. Nothing that happens in a pass ends the loop."""
        while not self.stopping:
            self.wake.clear()
            try:
                await self.deliver_due()
                await anyio.to_thread.run_sync(self.housekeeping, self.clock())
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one pass
                logger.error("The outbox worker hit %s; trying again shortly", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.sleep_seconds())

    def sleep_seconds(self) -> float:
        """Until the next item is due, from what the last pass saw (no I/O), within bounds."""
        if self.next_due_at is None:
            return LONGEST_SLEEP_SECONDS
        wait = (self.next_due_at - self.clock()).total_seconds()
        return min(max(wait, SHORTEST_SLEEP_SECONDS), LONGEST_SLEEP_SECONDS)

    def housekeeping(self, now: datetime) -> None:
        """Hourly: records past their retention leave the store; old delivered markers go."""
        if self.last_purge is not None and now - self.last_purge < PURGE_EVERY:
            return
        self.last_purge = now
        self.store.purge_expired(now)
        if self.reading is not None:
            # Content past its read window goes; who read it stays as long as any record.
            longest = max(self.store.retention_days.values())
            self.reading.purge(now, timedelta(days=longest))
        if self.acknowledgements is not None:
            self.acknowledgements.purge_expired(now)
        self.outbox.forget_old_markers(now, self.replay_window)

    # -- Operations --------------------------------------------------------------------------

    def health(self, now: datetime) -> Health:
        """From what the last pass saw: no I/O here, so monitoring costs nothing."""
        health = assess(self.summary, self.folder_problem, self.last_pass_at, now, self.limits)
        notice_wait = seconds_since(self.oldest_notice_at, now)
        if notice_wait is not None and notice_wait > self.limits.waiting_seconds:
            problems = (
                *health.problems,
                f"A notice to the facilitators has waited {notice_wait // 60} minute(s).",
            )
            health = replace(health, problems=problems)
        if self.overdue:
            problems = (
                *health.problems,
                f"{self.overdue} concern(s) or urgent notice(s) escalated, and still nobody has "
                "marked them as being dealt with.",
            )
            health = replace(health, problems=problems)
        return replace(health, suspected_automated=self.suspected_automated)

    def retry_failed(self) -> tuple[int, int]:
        """After fixing the relay: failed recipients are tried again from now. Returns how
        many items were queued again, and how many could not be (their content is erased)."""
        now = self.clock()
        retried = erased = 0
        for item in self.outbox.pending().items:
            if item.status is not ItemStatus.FAILED:
                continue
            if not item.sealed:
                erased += 1
                continue
            recipients = tuple(
                replace(r, status=RecipientStatus.PENDING, next_attempt_at=None)
                if r.status is RecipientStatus.FAILED
                else r
                for r in item.recipients
            )
            self.outbox.save(
                replace(item, recipients=recipients, retry_from=now, problem=None, failed_at=None)
            )
            retried += 1
        return retried, erased
