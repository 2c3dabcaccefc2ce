"""One failure policy for every job, and for every message a job sends.

A job (delivery, digests, escalation, notices, renewals, read windows, housekeeping) runs
through `Runner.run`, which times it and records what happened as state: how many times in a
row it failed, its last error (its type and our own words, never a member's content), when it
is tried next (backing off), and when it last worked. That state is written to
`data/jobs.json` whenever it changes, so `forms-server outbox`, another process, sees it
too; a job that keeps failing is a problem on the health check, never a silent retry loop.

One message to one recipient fails the same way (`recipient_failed`): counted, backed off,
and failed for good on a permanent refusal or at the end of the retry window.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from forms_server.errors import FormsServerError
from forms_server.mail.messages import PermanentDeliveryError
from forms_server.storage.files import replace_atomically
from forms_server.storage.folder_store import optional_time
from forms_server.storage.outbox_items import RecipientState, RecipientStatus

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30.0
LONGEST_RETRY_SECONDS = 60 * 60.0
# A whole job that failed is tried again soon (1 s, 2 s, 4 s ... a minute at most): delivery is
# one of them, and an urgent form must not wait long behind a fault that has passed.
FIRST_JOB_RETRY_SECONDS = 1.0
LONGEST_JOB_RETRY_SECONDS = 60.0
# A job that failed this many times in a row is a problem someone must see.
FAILING_AFTER = 3


def backoff_seconds(
    attempts: int, first: float = FIRST_RETRY_SECONDS, longest: float = LONGEST_RETRY_SECONDS
) -> float:
    """30 s, 1 min, 2 min ... up to an hour, with jitter so many items do not retry together."""
    base = min(first * 2.0 ** max(attempts - 1, 0), longest)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not secrecy


def in_words(error: BaseException) -> str:
    """Our own messages say what happened; anything else is named by its type only (its
    message could hold what a member typed)."""
    if isinstance(error, FormsServerError):
        return str(error)
    return f"Unexpected {type(error).__name__}."


def recipient_failed(
    recipient: RecipientState, error: BaseException, now: datetime, window_over: bool
) -> RecipientState:
    """One recipient's send failed: wait and try again, or, refused for good or out of time,
    failed (reported until the host deals with it)."""
    attempts = recipient.attempts + 1
    permanent = isinstance(error, PermanentDeliveryError) or window_over
    return replace(
        recipient,
        attempts=attempts,
        status=RecipientStatus.FAILED if permanent else RecipientStatus.PENDING,
        next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
        last_error=in_words(error),
    )


class Job(Protocol):
    name: str

    async def run(self, now: datetime) -> None: ...

    def next_due_at(self) -> datetime | None:
        """When this job next has something to do, from what it last saw (no I/O)."""
        ...


@dataclass
class Every:
    """The schedule of a job that works at most once per `interval` (hourly housekeeping)."""

    interval: timedelta
    last: datetime | None = None

    def due(self, now: datetime) -> bool:
        """True, and counted as run, if its time has come."""
        if self.last is not None and now - self.last < self.interval:
            return False
        self.last = now
        return True

    def next_due_at(self) -> datetime | None:
        return self.last + self.interval if self.last else None


@dataclass(frozen=True)
class JobState:
    failures: int = 0  # in a row
    last_error: str | None = None
    next_try_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "last_error": self.last_error,
            "next_try_at": self.next_try_at.isoformat() if self.next_try_at else None,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "last_seconds": round(self.last_seconds, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        error = data.get("last_error")
        return cls(
            failures=int(data.get("failures", 0)),
            last_error=None if error is None else str(error),
            next_try_at=optional_time(data.get("next_try_at")),
            last_ok_at=optional_time(data.get("last_ok_at")),
            last_seconds=float(data.get("last_seconds", 0.0)),
        )


def read_job_states(path: Path) -> dict[str, JobState]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): JobState.from_json(state) for name, state in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def job_problems(states: dict[str, JobState]) -> list[str]:
    return [
        f"The {name} job has failed {state.failures} times in a row: {state.last_error}"
        for name, state in sorted(states.items())
        if state.failures >= FAILING_AFTER
    ]


class Runner:
    def __init__(self, state_path: Path, clock: Callable[[], datetime]) -> None:
        self.state_path = state_path
        self.clock = clock
        self.states: dict[str, JobState] = read_job_states(state_path)

    def state(self, name: str) -> JobState:
        return self.states.get(name, JobState())

    async def run(self, job: Job, now: datetime) -> None:
        await self.run_step(job.name, job.run, now)

    async def run_step(
        self, name: str, step: Callable[[datetime], Awaitable[None]], now: datetime
    ) -> None:
        """Never raises: a failing job is recorded, backed off and reported."""
        state = self.state(name)
        if state.next_try_at is not None and now < state.next_try_at:
            return
        started = time.monotonic()
        try:
            await step(now)
        except Exception as error:  # noqa: BLE001 - one job's fault stays that job's
            failures = state.failures + 1
            logger.error("The %s job failed (%s); trying again later", name, in_words(error))
            new = replace(
                state,
                failures=failures,
                last_error=in_words(error),
                next_try_at=now
                + timedelta(
                    seconds=backoff_seconds(
                        failures, FIRST_JOB_RETRY_SECONDS, LONGEST_JOB_RETRY_SECONDS
                    )
                ),
                last_seconds=time.monotonic() - started,
            )
        else:
            new = replace(
                state,
                failures=0,
                last_error=None,
                next_try_at=None,
                last_ok_at=self.clock(),
                last_seconds=time.monotonic() - started,
            )
        changed = (new.failures, new.last_error) != (state.failures, state.last_error)
        self.states[name] = new
        if changed:
            self.save()

    def save(self) -> None:
        """Best effort: the health check reads this process's own state in any case."""
        data = {name: state.to_json() for name, state in self.states.items()}
        try:
            replace_atomically(self.state_path, json.dumps(data).encode("utf-8"))
        except OSError as error:
            logger.error("Could not write the jobs' state (%s)", error.strerror)

    def problems(self) -> list[str]:
        return job_problems(self.states)

    def next_due_at(self) -> datetime | None:
        """The earliest retry of a failed job."""
        return min((s.next_try_at for s in self.states.values() if s.next_try_at), default=None)
