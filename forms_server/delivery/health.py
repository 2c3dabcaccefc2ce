"""What the operator is told: everything that means a form may not reach anyone, in words.

`/healthz` is public, so it says only ok or failing (200 or 503). The details (what is waiting
now, how urgent and for how long, overdue escalations, failing jobs, a flood in progress, a data
folder that cannot be written) go to `forms-server outbox`, and to `/healthz` asked from this
machine or with the health token. Counts and times only: never a member's content, never a
reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forms_server.config.env import HealthLimits
from forms_server.delivery.runner import JobState
from forms_server.storage.outbox_items import ItemStatus, OutboxItem
from forms_server.storage.watch import Watched


@dataclass(frozen=True)
class OutboxSummary:
    pending: int = 0
    urgent_pending: int = 0
    oldest_pending_at: datetime | None = None
    oldest_urgent_at: datetime | None = None
    failed: int = 0
    quarantined: int = 0


class WaitingIndex(dict[str, OutboxItem]):
    """The delivery job's view of what is waiting, by reference. It counts its changes, so the
    health check works its summary out again only when something changed."""

    changes = 0

    def __setitem__(self, reference: str, item: OutboxItem) -> None:
        self.changes += 1
        super().__setitem__(reference, item)

    def __delitem__(self, reference: str) -> None:
        self.changes += 1
        super().__delitem__(reference)

    def replace_all(self, items: Iterable[OutboxItem]) -> None:
        self.changes += 1
        super().clear()
        super().update((item.reference, item) for item in items)


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
    # Forms waiting for a digest, and escalations nobody has picked up.
    in_digests: int = 0
    overdue: int = 0
    jobs: Mapping[str, JobState] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def public_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing"}

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        return {
            **self.public_json(),
            "problems": list(self.problems),
            "outbox": {
                "pending": summary.pending,
                "urgent_pending": summary.urgent_pending,
                "oldest_pending_seconds": seconds_since(summary.oldest_pending_at, self.now),
                "oldest_urgent_seconds": seconds_since(summary.oldest_urgent_at, self.now),
                "failed": summary.failed,
                "quarantined": summary.quarantined,
                "waiting_for_a_digest": self.in_digests,
            },
            "escalations_overdue": self.overdue,
            "worker": {"seconds_since_last_pass": self.worker_seconds_since_pass},
            "jobs": {name: state.to_json() for name, state in self.jobs.items()},
            # Delivered with a mark, never dropped; many at once may mean a flood of spam.
            "suspected_automated_since_start": self.suspected_automated,
        }


def assess(
    summary: OutboxSummary,
    folder_problem: str | None,
    last_pass_at: datetime | None,
    now: datetime,
    limits: HealthLimits,
    more: Iterable[str] = (),
) -> Health:
    """The outbox's own conditions, then whatever the jobs report (`more`)."""
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
    problems.extend(more)
    return Health(summary, tuple(problems), silent, now)


def escalation_problems(watched: Iterable[Watched], overdue: int) -> list[str]:
    """Escalations refused for good (a mistyped address, say), and those nobody picked up."""
    problems = [
        f"The escalation of {each.reference} was refused for {len(each.refused)} of "
        f"{len(each.recipients)} escalation address(es): {each.refused[0].last_error}"
        for each in watched
        if each.refused
    ]
    if overdue:
        problems.append(
            f"{overdue} concern(s) or urgent notice(s) escalated, and still nobody has marked "
            "them as being dealt with."
        )
    return problems
