"""Housekeeping, hourly in the server and on demand with `forms-server purge` (the same code):
records past their retention leave the store; whatever else is left of a form past its
retention (its watch note, even escalated and never picked up; who read it; who picked it up;
a held erasure, which is then carried out) goes as the lifecycle says; link-only content past
its window goes; delivered markers no token can replay any more go; the ledger forgets what no
backup needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.read_windows import end_read_windows
from forms_server.delivery.runner import Every
from forms_server.lifecycle import Event, decide
from forms_server.storage.form_files import FormFiles
from forms_server.storage.ledger import ErasureReason

logger = logging.getLogger(__name__)

EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Swept:
    records: int
    notes: int
    read_windows: int
    markers: int


def keep_house(files: FormFiles, now: datetime, replay_window: timedelta) -> Swept:
    """One sweep. One file that cannot be changed never stops the others."""
    expired = files.store.purge_expired(now)
    references = {
        *files.watch.files.names(),
        *files.reading.files.names(),
        *files.acknowledgements.files.names(),
        *files.held.files.names(),
        # A conversation never outlives its form's record.
        *files.conversations.files.names(),
    }
    notes = 0
    for reference in sorted(references):
        try:
            state = files.state_of(reference)
            if state is None or state.being_delivered:
                continue
            if state.erasure_held and state.picked_up:
                # Picked up by another process since the erasure was held: it completes now.
                files.carry_out(state, decide(state, Event.FOUND_PICKED_UP))
            elif state.kept_until and state.kept_until <= now:
                rule = decide(state, Event.RETENTION_ENDED)
                files.carry_out(state, rule, reason=ErasureReason.RETENTION_ENDED)
                notes += 1
        except OSError as error:
            logger.error("Could not clear what is left of %s: %s", reference, error)
    windows = end_read_windows(files, now)
    for reference in files.conversations.quiet(now, files.conversation_kept):
        try:
            files.happen(reference, Event.CONVERSATION_QUIET)
        except OSError as error:
            logger.error("Could not end the conversation of %s: %s", reference, error)
    markers = files.outbox.forget_old_markers(now, replay_window)
    logger.info(
        "Housekeeping: %d record(s) past retention, %d form(s)' notes, %d read window(s), %d "
        "delivered marker(s)",
        len(expired),
        notes,
        windows,
        markers,
    )
    return Swept(len(expired), notes, windows, markers)


class Housekeeping:
    name = "housekeeping"

    def __init__(self, files: FormFiles, replay_window: timedelta) -> None:
        self.files = files
        self.replay_window = replay_window
        self.every = Every(EVERY)

    async def run(self, now: datetime) -> None:
        if self.every.due(now):
            await anyio.to_thread.run_sync(keep_house, self.files, now, self.replay_window)

    def next_due_at(self) -> datetime | None:
        return self.every.next_due_at()
