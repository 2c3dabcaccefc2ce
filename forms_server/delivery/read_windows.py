"""The read-windows job: link-only content whose window has ended goes, unless the lifecycle
keeps it (someone may be at risk and nobody has picked the form up: everyone it went to can
still read it). Who read it stays, with no content, until the form's record goes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.runner import Every
from forms_server.lifecycle import Do, Event
from forms_server.storage.form_files import FormFiles

logger = logging.getLogger(__name__)

# More often than housekeeping's hour: a window ends within ten minutes of its time.
CHECK_EVERY = timedelta(minutes=10)


def end_read_windows(files: FormFiles, now: datetime) -> int:
    """Each readable form past its window, as the lifecycle decides; returns how many went.
    One file that cannot be changed never stops the others."""
    erased = 0
    for readable in files.reading.all():
        if not readable.sealed or now < readable.until:
            continue
        try:
            outcome = files.happen(readable.reference, Event.READ_WINDOW_ENDED)
        except OSError as error:
            logger.error("Could not end the read window of %s: %s", readable.reference, error)
            continue
        if outcome is not None and Do.ERASE_READABLE in outcome.rule.then:
            erased += 1
    return erased


class ReadWindows:
    name = "read windows"

    def __init__(self, files: FormFiles) -> None:
        self.files = files
        self.every = Every(CHECK_EVERY)

    async def run(self, now: datetime) -> None:
        if self.every.due(now):
            await anyio.to_thread.run_sync(end_read_windows, self.files, now)

    def next_due_at(self) -> datetime | None:
        return self.every.next_due_at()
