"""Conversations: the group's questions to a member who sent a concern or a left-early notice,
and the member's answers, with no account and no email.

When such a form is sent, the member is shown a receipt once (receipts.py); the server keeps
only a slow hash of it. With the reference and the receipt the member can read the group's
questions and answer them.

One file per reference in `data/conversations/`: the hash and its salt, the routes the form
went to (by role, never an address), the messages sealed with the data key (sealing.py), and
each message's delivery to each recipient. Nothing here ever holds the receipt.

A conversation with a message on its way, or one that failed, also has an empty marker in
`data/conversations/sending/`: the answers job lists that folder and reads only those files,
not every conversation kept. The marker is made before the message is written and taken away
after its last delivery is written, so a crash between the two leaves a marker too many (found
empty and taken away), never a message nobody sends.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.forms.reference import normalise_reference
from forms_server.storage.conversation_items import Author, Conversation, Message, Outgoing
from forms_server.storage.files import exclusive_lock, private_folder
from forms_server.storage.folder_store import (
    SAFE_NAME,
    FolderStore,
    parse_time,
)
from forms_server.storage.outbox_items import MEMBER_COPY, RecipientState
from forms_server.storage.receipts import (
    SALT_BYTES,
    decoy_for,
    normalise_receipt,
    slow_hash,
)
from forms_server.storage.sealing import Sealer

CONVERSATIONS_FOLDER = "conversations"
SENDING_FOLDER = "sending"


class Conversations:
    def __init__(self, data_dir: Path, sealer: Sealer) -> None:
        self.files = FolderStore(
            data_dir / CONVERSATIONS_FOLDER,
            Conversation.to_json,
            lambda _, data: Conversation.from_json(data),
            lambda conversation: conversation.reference,
        )
        self.sealer = sealer
        self.sending_folder = self.files.folder / SENDING_FOLDER
        # The member, the group and the delivery job all change one file: one at a time.
        self.lock_path = self.files.folder / ".lock"
        # For a reference with no conversation, a salt and hash that match nothing, so that it
        # costs the same key derivation as a wrong receipt and says nothing by taking less.
        self.decoy_key = os.urandom(32)

    def open_for(
        self, reference: str, form_kind: str, routes: tuple[str, ...], receipt: str, now: datetime
    ) -> Conversation:
        digits = normalise_receipt(receipt)
        if digits is None:
            raise ValueError("not a receipt")
        salt = secrets.token_bytes(SALT_BYTES)
        conversation = Conversation(
            reference, form_kind, now, routes, salt, slow_hash(digits, salt)
        )
        self.files.create(conversation)
        return conversation

    def get(self, reference: str) -> Conversation | None:
        return self.files.get(reference)

    def verify(self, reference: str, typed_receipt: str) -> Conversation | None:
        """The conversation, if the receipt is this reference's; else None. Every attempt
        derives exactly one key at the same cost, whatever is wrong with it."""
        normalised = normalise_reference(reference)
        conversation = self.get(normalised) if normalised else None
        if conversation is not None:
            salt, expected = conversation.salt, conversation.receipt_hash
        else:
            salt, expected = decoy_for(self.decoy_key, normalised or "")
        digits = normalise_receipt(typed_receipt)
        derived = slow_hash(digits or "not a receipt", salt)
        matches = hmac.compare_digest(derived, expected) and digits is not None
        if conversation is None or conversation.closed_at is not None or not matches:
            return None
        return conversation

    def messages(self, conversation: Conversation) -> list[Message]:
        return self.contents(conversation)[0]

    def contents(self, conversation: Conversation) -> tuple[list[Message], str | None]:
        """Its messages, and the member's address if they gave one, from one unsealing."""
        opened = self.opened(conversation)
        messages = [
            Message(by=item["by"], at=parse_time(item["at"]), text=str(item["text"]))
            for item in opened["messages"]
        ]
        address = opened.get("tell")
        return messages, address if isinstance(address, str) else None

    def add(
        self,
        reference: str,
        by: Author,
        text: str,
        now: datetime,
        to: tuple[RecipientState, ...] = (),
    ) -> Conversation:
        """The message, sealed with the others, and on its way to `to` (a member's message
        goes to everyone who received the form). LookupError if there is no conversation."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is None:
                raise LookupError(reference)
            content = self.opened(conversation)
            content["messages"].append({"by": by, "at": now.isoformat(), "text": text})
            if to:
                self.mark_sending(reference)
            changed = replace(
                conversation,
                sealed=self.sealer.seal(reference, content),
                last_message_at=now,
                outgoing=(
                    *conversation.outgoing,
                    *(Outgoing(len(content["messages"]) - 1, recipient, now) for recipient in to),
                ),
            )
            self.files.save(changed)
            return changed

    def opened(self, conversation: Conversation) -> dict[str, Any]:
        """The sealed part: every message, and the member's address if they gave one."""
        if not conversation.sealed:
            return {"messages": []}
        return self.sealer.open(conversation.reference, conversation.sealed)

    def tell(self, reference: str, address: str | None) -> None:
        """The member's address for "There is a message for you", sealed with the messages;
        None takes it away, and any such email not yet sent with it."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is None:
                raise LookupError(reference)
            self.files.save(self.with_member_address(conversation, address))

    def with_member_address(self, conversation: Conversation, address: str | None) -> Conversation:
        content = self.opened(conversation)
        content.pop("tell", None)
        outgoing = conversation.outgoing
        if address is None:
            outgoing = tuple(o for o in outgoing if o.recipient.address != MEMBER_COPY)
        else:
            content["tell"] = address
        return replace(
            conversation,
            sealed=self.sealer.seal(conversation.reference, content),
            outgoing=outgoing,
        )

    def alert_member(self, reference: str, alert: RecipientState, now: datetime) -> bool:
        """ "There is a message for you" on its way, about the newest message, if the member
        gave an address for it (`alert` is to `MEMBER_COPY`: the address stays sealed)."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is None:
                return False
            content = self.opened(conversation)
            if not content.get("tell"):
                return False
            newest = len(content["messages"]) - 1
            self.mark_sending(reference)
            self.files.save(
                replace(
                    conversation,
                    outgoing=(*conversation.outgoing, Outgoing(newest, alert, now)),
                )
            )
            return True

    def close(self, reference: str, now: datetime) -> None:
        """The member deleted it, but those the form went to still need it: closed to the
        member (their receipt opens nothing), kept for the group until the lifecycle ends it."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is not None and conversation.closed_at is None:
                # The member's own address was for them alone: it goes now.
                closed = self.with_member_address(conversation, None)
                self.files.save(replace(closed, closed_at=now))

    def forget_if_closed(self, reference: str) -> None:
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is not None and conversation.closed_at is not None:
                self.files.remove(reference)
                self.unmark_sending(reference)

    def quiet(self, now: datetime, kept: timedelta) -> list[str]:
        """Every conversation with no message for `kept` (one with no message yet counts from
        when it was opened): the lifecycle decides what becomes of each."""
        return [
            conversation.reference
            for conversation in self.each()
            if (conversation.last_message_at or conversation.created_at) + kept <= now
        ]

    def delivered(self, reference: str, changed: Outgoing) -> Conversation | None:
        """One message's new state for one recipient, written into the file as it is now (the
        member may have written again meanwhile); None if the conversation has gone."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is None:
                return None
            conversation = conversation.with_outgoing(changed)
            self.files.save(conversation)
            if not conversation.unfinished:
                self.unmark_sending(reference)
            return conversation

    def forget(self, reference: str) -> None:
        with exclusive_lock(self.lock_path):
            self.files.remove(reference)
            self.unmark_sending(reference)

    # -- Messages on their way -----------------------------------------------------------------

    def mark_sending(self, reference: str) -> None:
        private_folder(self.sending_folder)
        (self.sending_folder / reference).touch(mode=0o600)

    def unmark_sending(self, reference: str) -> None:
        (self.sending_folder / reference).unlink(missing_ok=True)

    def mark_unmarked(self) -> int:
        """Once, on a data folder from before the markers (no `sending/` folder yet): every
        conversation with something on its way or failed gets its marker. Reads every file
        then, and nothing on any later start (a marker is made before its message is written,
        so none can be missing); how many were marked."""
        if self.sending_folder.exists():
            return 0
        private_folder(self.sending_folder)
        marked = set(self.marked())
        found = 0
        for conversation in self.each():
            if conversation.unfinished and conversation.reference not in marked:
                self.mark_sending(conversation.reference)
                found += 1
        return found

    def marked(self) -> list[str]:
        """The references with a marker (anything else in the folder is not ours: left)."""
        try:
            names = sorted(path.name for path in self.sending_folder.iterdir())
        except FileNotFoundError:
            return []
        return [name for name in names if SAFE_NAME.match(name)]

    def waiting(self) -> list[Conversation]:
        """The conversations with a message on its way or failed: a listing of the markers,
        and a read of each marked file only. A marker with nothing behind it goes."""
        found = []
        for name in self.marked():
            conversation = self.get(name)
            if conversation is not None and conversation.unfinished:
                found.append(conversation)
                continue
            with exclusive_lock(self.lock_path):
                again = self.get(name)
                if again is None or not again.unfinished:
                    self.unmark_sending(name)
        return found

    def retry_failed(self, now: datetime) -> int:
        """After the host mended a refused address: every failed delivery of a message is
        tried again from now (those who have it never get it again); how many conversations."""
        retried = 0
        with exclusive_lock(self.lock_path):
            for name in self.marked():
                conversation = self.get(name)
                if conversation is None or not conversation.failed:
                    continue
                outgoing = tuple(
                    replace(o, recipient=o.recipient.tried_again(from_scratch=True), queued_at=now)
                    if o in conversation.failed
                    else o
                    for o in conversation.outgoing
                )
                self.files.save(replace(conversation, outgoing=outgoing))
                retried += 1
        return retried

    def dismiss(self, reference: str) -> bool:
        """The host has dealt with a failed delivery another way: stop reporting it (the
        message itself stays in the conversation)."""
        with exclusive_lock(self.lock_path):
            conversation = self.get(reference)
            if conversation is None or not conversation.failed:
                return False
            kept = tuple(o for o in conversation.outgoing if o not in conversation.failed)
            conversation = replace(conversation, outgoing=kept)
            self.files.save(conversation)
            if not conversation.sending:
                self.unmark_sending(reference)
            return True

    def reseal(self, again: Callable[[str, str], str]) -> int:
        """Every conversation's messages sealed again (`again`: with the newest data key)."""
        count = 0
        with exclusive_lock(self.lock_path):
            for conversation in self.files.all():
                if conversation.sealed:
                    self.files.save(
                        replace(
                            conversation, sealed=again(conversation.reference, conversation.sealed)
                        )
                    )
                    count += 1
        return count

    def each(self) -> Iterator[Conversation]:
        return self.files.each()
