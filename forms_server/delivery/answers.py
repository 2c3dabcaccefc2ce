"""The answers job: a member's answer to the group's question reaches everyone who received
their form, each in the way their route delivers (in full, as a fresh link only, or encrypted
to their own key), with a fresh link to the conversation so the group can go on asking.

Each recipient of each answer is one state, like any delivery: accepted is never sent again, a
refusal fails that address alone, a timeout is tried again with backoff.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.runner import recipient_failed
from forms_server.mail.relay import Relay
from forms_server.storage.conversations import Conversation, Conversations, Outgoing
from forms_server.storage.outbox_items import RecipientStatus

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

    async def run(self, now: datetime) -> None:
        self.waiting = await anyio.to_thread.run_sync(self.sending)
        if not self.relay.ready:
            return
        for conversation in self.waiting:
            try:
                messages = await anyio.to_thread.run_sync(self.conversations.messages, conversation)
            except Exception as error:  # noqa: BLE001 - this conversation's fault alone
                logger.error(
                    "Could not open the answers of %s (%s)",
                    conversation.reference,
                    type(error).__name__,
                )
                continue
            for outgoing in conversation.sending:
                recipient = outgoing.recipient
                if not recipient.due(now) or outgoing.message >= len(messages):
                    continue
                try:
                    message = self.composer.answer(
                        conversation,
                        messages[outgoing.message].text,
                        recipient.address,
                        recipient.message_id,
                        self.link_days,
                    )
                    await self.relay.send(message, recipient.address)
                except Exception as error:  # noqa: BLE001 - this address's fault alone
                    # Tried for as long as any form is, from the answer's own time.
                    sent_at = messages[outgoing.message].at
                    window_over = now - sent_at > self.retry_window
                    failed = recipient_failed(recipient, error, now, window_over)
                    logger.error(
                        "Could not send an answer about %s (%s)%s",
                        conversation.reference,
                        failed.last_error,
                        "" if failed.status is RecipientStatus.PENDING else "; it has failed",
                    )
                    await self.save(conversation, Outgoing(outgoing.message, failed))
                    continue
                accepted = replace(
                    recipient, status=RecipientStatus.ACCEPTED, accepted_at=now, last_error=None
                )
                await self.save(conversation, Outgoing(outgoing.message, accepted))

    def sending(self) -> list[Conversation]:
        return [conversation for conversation in self.conversations.each() if conversation.sending]

    async def save(self, conversation: Conversation, changed: Outgoing) -> None:
        try:
            await anyio.to_thread.run_sync(
                self.conversations.delivered, conversation.reference, changed
            )
        except OSError as error:
            logger.error(
                "Could not write the delivery of an answer about %s (%s)",
                conversation.reference,
                error.strerror,
            )

    def next_due_at(self) -> datetime | None:
        return min(
            (
                o.recipient.next_attempt_at or conversation.created_at
                for conversation in self.waiting
                for o in conversation.sending
            ),
            default=None,
        )
