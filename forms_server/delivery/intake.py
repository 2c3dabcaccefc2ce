"""Receiving a confirmed form: addressed, sealed and on disk, fsynced, before the member sees
"received"; then the worker is woken, and the health check counts it at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.member_copy import COPY_REFUSED_ROUTE, COPY_ROUTE, CopyLimit
from forms_server.delivery.sending import Sending
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.forms.routing import member_copy_wanted
from forms_server.mail.messages import new_message_id
from forms_server.storage.outbox import Outbox
from forms_server.storage.outbox_items import MEMBER_COPY, OutboxItem, RecipientState
from forms_server.storage.sealing import Sealer

logger = logging.getLogger(__name__)


class OutboxWriteError(FormsServerError):
    """A confirmed form could not be written to disk, so it was not received."""


class Intake:
    def __init__(
        self,
        outbox: Outbox,
        sealer: Sealer,
        composer: Composer,
        copy_limit: CopyLimit,
        sending: Sending,
        woken: Callable[[str | None], None],
    ) -> None:
        self.outbox = outbox
        self.sealer = sealer
        self.composer = composer
        self.copy_limit = copy_limit
        self.sending = sending
        # Called after each form with None, or with why the data folder cannot be written.
        self.woken = woken
        # Forms received since start with the hidden trap field filled (delivered, marked).
        self.suspected_automated = 0

    def with_member_copy(
        self, submission: Submission, route: str, recipients: tuple[RecipientState, ...]
    ) -> tuple[str, tuple[RecipientState, ...]]:
        """The member's copy as one more recipient, last, if they asked for one and their
        address has not had its copies for the day; the route says which it was."""
        wanted = member_copy_wanted(FORMS[submission.form_kind], submission.answers)
        if wanted is None:
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
        copy = RecipientState(
            address=MEMBER_COPY, message_id=new_message_id(self.composer.mail.sender)
        )
        return f"{route}+{COPY_ROUTE}", (*recipients, copy)

    def add(self, submission: Submission) -> OutboxItem | None:
        """The item once it is on disk; None when the reference was already taken (a replay)."""
        route, addresses = self.composer.addressed(submission)
        recipients = tuple(
            RecipientState(address, new_message_id(self.composer.mail.sender))
            for address in addresses
        )
        route, recipients = self.with_member_copy(submission, route, recipients)
        sealed = self.sealer.seal(
            submission.reference,
            {
                "answers": submission.answers,
                "guidelines_version": submission.guidelines_version,
                "suspected_automated": submission.suspected_automated,
                "replaces": submission.replaces,
            },
        )
        item = OutboxItem(
            reference=submission.reference,
            form_kind=submission.form_kind,
            received_at=submission.received_at,
            urgent=submission.urgent,
            sealed=sealed,
            retry_from=submission.received_at,
            route=route,
            recipients=recipients,
        )
        return item if self.outbox.create(item) else None

    async def receive(self, submission: Submission) -> str | None:
        """On disk, fsynced, before this returns (and so before the member's 303). Returns who
        it goes to, by role, or None when it had already been received."""
        try:
            item = await anyio.to_thread.run_sync(self.add, submission)
        except OSError as error:
            logger.error(
                "Could not write a %s to the outbox: %s", submission.form_kind, error.strerror
            )
            self.woken(os.strerror(error.errno) if error.errno else type(error).__name__)
            raise OutboxWriteError("The form could not be written to disk.") from error
        logger.info(
            "Received a %s%s%s (%s)",
            submission.form_kind,
            ", urgent" if submission.urgent else "",
            ", maybe automated" if submission.suspected_automated else "",
            "new" if item else "already received",
        )
        if item is None:
            return None
        if submission.suspected_automated:
            self.suspected_automated += 1
        self.sending.note_received(item)
        self.woken(None)
        return item.route
