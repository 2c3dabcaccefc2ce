"""Escalation, on a controlled clock against a real SMTP server: a concern nobody picks up
goes to the escalation contact once, at the configured time, also across a restart; one picked
up in time never does; an urgent notice that reached nobody escalates at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.services import Services as Delivery
from forms_server.storage.watch import Watch, Watched
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_cli import environment, forms_server
from tests.test_delivery import CONCERNS, FACILITATORS, mail_settings, make_delivery, submission
from tests.test_delivery_faults import Clock

ESCALATION = "deputy@example.net"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


def watching_delivery(data_dir: Path, server: SmtpServer, clock: Clock) -> Delivery:
    return make_delivery(
        data_dir,
        mail_settings(server, escalation=(ESCALATION,)),
        clock=clock,
        decisions={"escalate_after_minutes": {"urgent": 30, "other": 2 * 24 * 60}},
    )


def escalations(server: SmtpServer) -> list[str]:
    return [
        str(received.message["Subject"])
        for received in server.handler.received
        if received.rcpt_tos == [ESCALATION]
    ]


@in_own_loop
async def test_an_urgent_concern_nobody_picks_up_escalates_once_on_time_even_after_a_restart(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    concern = submission("concern", about="member", immediate_risk="yes")
    # Received on the test's clock: the timer starts then, not at the wall-clock moment the
    # submission was made (after the delivery was built, and later still under load).
    concern = replace(concern, urgent=True, received_at=clock())
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    assert escalations(server) == []
    clock.advance(minutes=29, seconds=59)
    await delivery.worker.run_pass()
    assert escalations(server) == []
    assert delivery.worker.health(clock()).ok
    # A restart: a new process on the same folder keeps the timer.
    restarted = watching_delivery(tmp_path / "data", server, clock)
    clock.advance(seconds=2)
    await restarted.worker.run_pass()
    assert len(escalations(server)) == 1
    assert escalations(server)[0].startswith("NOBODY HAS PICKED THIS UP - ")
    assert concern.reference in escalations(server)[0]
    # Never twice, and overdue until someone picks it up.
    clock.advance(hours=3)
    await restarted.worker.run_pass()
    assert len(escalations(server)) == 1
    health = restarted.worker.health(clock())
    assert not health.ok
    assert any("escalated" in problem for problem in health.problems)
    assert restarted.files.acknowledgements is not None
    restarted.files.acknowledgements.record(concern.reference, "concern", ESCALATION, clock())
    await restarted.worker.run_pass()
    assert restarted.worker.health(clock()).ok


@in_own_loop
async def test_a_concern_picked_up_in_time_never_escalates(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    concern = submission("concern", about="member")
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    assert delivery.files.acknowledgements is not None
    delivery.files.acknowledgements.record(
        concern.reference, "concern", "lead@example.org", clock()
    )
    clock.advance(days=3)
    await delivery.worker.run_pass()
    assert escalations(server) == []
    assert delivery.files.watch is not None
    assert delivery.files.watch.all() == []


@in_own_loop
async def test_an_ordinary_form_is_never_watched(server: SmtpServer, tmp_path: Path) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    await delivery.worker.receive(submission("leave-missing"))
    await delivery.worker.run_pass()
    assert delivery.files.watch is not None
    assert delivery.files.watch.all() == []


@in_own_loop
async def test_an_urgent_notice_that_reached_nobody_escalates_at_once(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    notice = submission("leave-left-early", safe_now="no", reach_unsafe="07700 900982")
    notice = type(notice)(**{**notice.__dict__, "urgent": True})
    # Every usual recipient is refused for good; the escalation contact still works.
    server.handler.refused_recipients.update(
        dict.fromkeys([*FACILITATORS, *CONCERNS], "550 5.1.1 No such mailbox")
    )
    await delivery.worker.receive(notice)
    await delivery.worker.run_pass()
    await delivery.worker.run_pass()
    assert len(escalations(server)) == 1
    assert notice.reference in escalations(server)[0]


def test_the_outbox_command_lists_an_overdue_form_and_exits_1(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    data = tmp_path / "data"
    watch = Watch(data)
    watched = Watched(
        reference="7CX-J7G-6TW",
        form_kind="concern",
        received_at=now,
        urgent=True,
        sealed="",
        escalate_at=now,
        escalated_at=now,
    )
    watch.start(watched)
    result = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert "Overdue: 7CX-J7G-6TW (concern, urgent) was escalated" in result.stdout
    assert result.returncode == 1


@in_own_loop
async def test_the_worker_wakes_when_a_concern_delivered_in_its_pass_falls_due(
    server: SmtpServer, tmp_path: Path
) -> None:
    """The timer starts when the concern is recorded, after the escalation job has looked:
    the worker still wakes for it then, not at its next idle minute."""
    clock = Clock()
    delivery = make_delivery(
        tmp_path / "data",
        mail_settings(server, escalation=(ESCALATION,)),
        clock=clock,
        # Sooner than any other job's next turn, so the timer is what the worker wakes for.
        decisions={"escalate_after_minutes": {"urgent": 1, "other": 2 * 24 * 60}},
    )
    concern = replace(submission("concern", immediate_risk="yes"), urgent=True, received_at=clock())
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    assert delivery.files.watch.get(concern.reference) is not None
    assert delivery.worker.next_due_at == clock() + timedelta(minutes=1)
