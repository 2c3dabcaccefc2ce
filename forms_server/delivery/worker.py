"""The worker: a loop that runs each job in turn through the runner, then sleeps until
something is due or a form arrives.

It holds the worker's lock for each pass, so two server processes on one data folder never
deliver at once. Nothing a job does ends the loop (runner.py). The health check reads what
the jobs last saw, and what was received since, with no I/O of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.config.env import HealthLimits
from forms_server.delivery.answers import AnswersJob
from forms_server.delivery.digests import Digests
from forms_server.delivery.escalation import Escalation
from forms_server.delivery.health import Health, assess, escalation_problems
from forms_server.delivery.intake import Intake
from forms_server.delivery.notices import NoticesJob
from forms_server.delivery.recording import Recording
from forms_server.delivery.runner import Job, Runner
from forms_server.delivery.sending import Sending
from forms_server.forms.fields import Submission
from forms_server.storage.files import write_problem
from forms_server.storage.form_files import FormFiles

logger = logging.getLogger(__name__)

LONGEST_SLEEP_SECONDS = 60.0
# However due something looks, a pass that could not move it waits this long before the next.
SHORTEST_SLEEP_SECONDS = 1.0
BEAT_EVERY = timedelta(seconds=10)


@dataclass(frozen=True)
class Jobs:
    """Every job, in the order a pass runs them: delivery first (urgent first within it), then
    escalations, the digests both may have filled, members' answers, the others, and last the
    notices, which any of them may have written."""

    sending: Sending
    escalation: Escalation
    digests: Digests
    answers: AnswersJob
    notices: NoticesJob
    others: tuple[Job, ...] = ()

    def in_order(self) -> tuple[Job, ...]:
        records = Recording(self.sending.records)
        return (
            self.sending,
            self.escalation,
            self.digests,
            records,
            self.answers,
            *self.others,
            self.notices,
        )


class Worker:
    def __init__(
        self, files: FormFiles, runner: Runner, intake: Intake, jobs: Jobs, limits: HealthLimits
    ) -> None:
        self.files = files
        self.outbox = files.outbox
        self.runner = runner
        self.intake = intake
        self.jobs = jobs.in_order()
        self.sending, self.escalation = jobs.sending, jobs.escalation
        self.digests, self.notices = jobs.digests, jobs.notices
        self.answers = jobs.answers
        self.limits = limits
        self.clock = runner.clock
        self.wake = asyncio.Event()
        self.stopping = False
        self.folder_problem: str | None = None
        self.last_pass_at: datetime | None = None
        self.last_beat_at: datetime | None = None
        self.next_due_at: datetime | None = None

    # -- Forms arriving --------------------------------------------------------------------

    async def receive(self, submission: Submission) -> str | None:
        return await self.intake.receive(submission)

    def woken(self, folder_problem: str | None) -> None:
        """A form arrived (wake now), or could not be written (the health check says so now,
        not at the next pass)."""
        # A form just written proves the folder can be written; one that could not be says so
        # now, and the next pass probes the folder again at once.
        self.folder_problem = folder_problem
        self.wake.set()

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

    async def run_pass(self) -> None:
        """Every job, in turn, if this process holds the worker's turn; otherwise only a
        look, so the health check stays true."""
        now = self.clock()
        self.folder_problem = await anyio.to_thread.run_sync(self.beat, now)
        with self.outbox.worker_turn() as mine:
            if mine:
                self.digests.start_pass()
                for job in self.jobs:
                    if self.stopping:
                        break
                    await self.runner.run(job, now)
                    self.last_pass_at = self.clock()  # alive, even in a long pass
            else:
                await self.sending.read_waiting()
        self.last_pass_at = self.clock()
        # A concern delivered in this pass starts its timer after the escalation job has run.
        dues = [job.next_due_at() for job in self.jobs] + [self.runner.next_due_at()]
        dues += self.files.take_timers()
        self.next_due_at = min((due for due in dues if due is not None), default=None)

    async def inspect(self) -> None:
        """What another process (the command line) needs to report: a look, and no send."""
        now = self.clock()
        await self.sending.read_waiting()
        await self.escalation.look(now)
        await self.notices.look()
        await self.answers.look()
        self.last_pass_at = await anyio.to_thread.run_sync(self.outbox.last_beat)
        self.folder_problem = await anyio.to_thread.run_sync(write_problem, self.outbox.folder)

    async def stop(self) -> None:
        """Finish the message being sent (a cancelled SMTP conversation helps nobody), then
        stop. Whatever is still waiting is sent at the next start."""
        self.stopping = True
        self.sending.stopping = True
        self.wake.set()

    async def run(self) -> None:
        """The worker: a pass, then sleep until a form arrives or something is due, until
        `stop`. Nothing that happens in a pass ends the loop."""
        while not self.stopping:
            self.wake.clear()
            try:
                await self.run_pass()
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one pass
                logger.error("The worker hit %s; trying again shortly", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.sleep_seconds())

    def sleep_seconds(self) -> float:
        """Until the next thing is due, from what the last pass saw (no I/O), within bounds."""
        if self.next_due_at is None:
            return LONGEST_SLEEP_SECONDS
        wait = (self.next_due_at - self.clock()).total_seconds()
        return min(max(wait, SHORTEST_SLEEP_SECONDS), LONGEST_SLEEP_SECONDS)

    # -- Telling the operator ------------------------------------------------------------------

    def health(self, now: datetime) -> Health:
        """From what the jobs last saw and what arrived since: no I/O here."""
        escalation = self.escalation
        more = escalation_problems(escalation.watched.values(), len(escalation.overdue))
        more += self.notices.problems(now, self.limits.waiting_seconds)
        more += self.answers.problems(now, self.limits.waiting_seconds)
        more += self.runner.problems()
        if self.escalation.waiting_for_contact:
            more.append("An escalation is due, but no escalation contact is configured.")
        if self.digests.last_waiting:
            more.append(
                f"A flood: {self.digests.last_waiting} form(s) wait for a digest, because one "
                "address has had more than its hourly number of messages."
            )
        if self.sending.records.memory_only:
            more.append(
                "Messages the relay accepted could not be written down, not even in the "
                "journal: a restart before the data folder is writable would send them again."
            )
        health = assess(
            self.sending.summary(),
            self.folder_problem,
            self.last_pass_at,
            now,
            self.limits,
            more,
        )
        return replace(
            health,
            suspected_automated=self.intake.suspected_automated,
            in_digests=self.digests.last_waiting,
            overdue=len(self.escalation.overdue),
            jobs=dict(self.runner.states),
        )
