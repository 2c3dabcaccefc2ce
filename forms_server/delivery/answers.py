"""The answers job: a member's answer to the group's question reaches everyone who received
their form, each in the way their route delivers (in full, as a fresh link only, or encrypted
to their own key), with a fresh link to the conversation so the group can go on asking.

Each recipient of each answer is one state, like any delivery: accepted is never sent again, a
refusal fails that address alone, a timeout is tried again with backoff. A failed one shows on
the health check and `forms-server outbox` (which can try it again, or dismiss it), and an
answer waiting too long shows too. A pass reads only the conversations marked as sending
(conversations.py), never every conversation kept.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.runner import recipient_failed
from forms_server.mail.relay import Relay
from forms_server.storage.conversation_items import Conversation, Message, Outgoing
from forms_server.storage.conversations import Conversations
from forms_server.storage.outbox_items import MEMBER_COPY, RecipientStatus

logger = logging.getLogger(__name__)


class AnswersJob:
    name = "answers"

    def __init__(
        self,
        conversations: Conversations,
        composer: Composer,
        relay: Relay,
        retry_window: timedelta,
        link_days: int,
    ) -> None:
        self.conversations = conversations
        self.composer = composer
        self.relay = relay
        self.retry_window = retry_window
        self.link_days = link_days
        self.waiting: list[Conversation] = []
        # Every conversation is looked at once, at the first pass (conversations.mark_unmarked).
        self.scanned = False
        # Accepted, but the acceptance could not be written: never sent again while we run.
        self.unsaved: set[tuple[str, int, str]] = set()

    async def look(self) -> None:
        """What is on its way or failed, sending nothing (for the command line)."""
        if not self.scanned:
            await anyio.to_thread.run_sync(self.conversations.mark_unmarked)
            self.scanned = True
        self.waiting = await anyio.to_thread.run_sync(self.conversations.waiting)

    async def run(self, now: datetime) -> None:
        await self.look()
        if not self.relay.ready:
            return
        for place, conversation in enumerate(self.waiting):
            self.waiting[place] = await self.send_due(conversation, now)

    async def send_due(self, conversation: Conversation, now: datetime) -> Conversation:
        """Each recipient whose message is due, in turn; the conversation as last written."""
        try:
            messages, told = await anyio.to_thread.run_sync(
                self.conversations.contents, conversation
            )
        except Exception as error:  # noqa: BLE001 - this conversation's fault alone
            logger.error(
                "Could not open the answers of %s (%s)",
                conversation.reference,
                type(error).__name__,
            )
            return conversation
        for outgoing in conversation.sending:
            recipient = outgoing.recipient
            unsaved = (conversation.reference, outgoing.message, recipient.address)
            if (
                not recipient.due(now)
                or outgoing.message >= len(messages)
                or unsaved in self.unsaved
            ):
                continue
            try:
                address, message = self.message_for(conversation, outgoing, messages, told)
                if message is not None:
                    await self.relay.send(message, address)
            except Exception as error:  # noqa: BLE001 - this address's fault alone
                # Tried for as long as any form is, from when it was queued.
                queued_at = outgoing.queued_at or messages[outgoing.message].at
                window_over = now - queued_at > self.retry_window
                changed = recipient_failed(recipient, error, now, window_over)
                logger.error(
                    "Could not send an answer about %s (%s)%s",
                    conversation.reference,
                    changed.last_error,
                    "" if changed.status is RecipientStatus.PENDING else "; it has failed",
                )
            else:
                changed = recipient.accepted(now)
            saved = await self.save(conversation, replace(outgoing, recipient=changed))
            if saved is None and changed.status is RecipientStatus.ACCEPTED:
                self.unsaved.add(unsaved)  # accepted: never sent again while we run
            conversation = saved or conversation.with_outgoing(replace(outgoing, recipient=changed))
        return conversation

    def message_for(
        self,
        conversation: Conversation,
        outgoing: Outgoing,
        messages: list[Message],
        told: str | None,
    ) -> tuple[str, EmailMessage | None]:
        """The address and message for one outgoing: a member's answer for a recipient, or
        "There is a message for you" to `told`, the member's address (None: they no longer
        want it)."""
        recipient = outgoing.recipient
        if recipient.address == MEMBER_COPY:
            if told is None:
                return MEMBER_COPY, None
            return told, self.composer.message_alert(told, recipient.message_id)
        answer = messages[outgoing.message].text
        return recipient.address, self.composer.answer(
            conversation, answer, recipient.address, recipient.message_id, self.link_days
        )

    async def save(self, conversation: Conversation, changed: Outgoing) -> Conversation | None:
        """The conversation as written, or None if it could not be (or has gone)."""
        try:
            return await anyio.to_thread.run_sync(
                self.conversations.delivered, conversation.reference, changed
            )
        except OSError as error:
            logger.error(
                "Could not write the delivery of an answer about %s (%s)",
                conversation.reference,
                error.strerror,
            )
            return None

    def next_due_at(self) -> datetime | None:
        return min(
            (
                o.recipient.next_attempt_at or conversation.created_at
                for conversation in self.waiting
                for o in conversation.sending
            ),
            default=None,
        )

    def problems(self, now: datetime, waiting_limit: float) -> list[str]:
        """Counts and our own words: never a reference, an address or a member's words."""
        problems = []
        queued = [
            o.queued_at
            for conversation in self.waiting
            for o in conversation.sending
            if o.queued_at is not None
        ]
        waited = (now - min(queued)).total_seconds() if queued else 0.0
        if waited > waiting_limit:
            minutes = int(waited // 60)
            problems.append(
                f"A message in a conversation with a member has waited {minutes} minute(s) "
                "to be sent."
            )
        failed = [o for conversation in self.waiting for o in conversation.failed]
        if failed:
            problems.append(
                f"{len(failed)} message(s) in conversations with members could not be "
                f"delivered: {failed[0].recipient.last_error}"
            )
        return problems
