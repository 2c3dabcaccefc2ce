"""Escalation, on a controlled clock against a real SMTP server: a concern nobody picks up
goes to the escalation contact once, at the configured time, also across a restart; one picked
up in time never does; an urgent notice that reached nobody escalates at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.config.decisions import default_retention_days
from forms_server.delivery.worker import Delivery
from forms_server.storage.acknowledgements import Acknowledgements
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
        acknowledgements=Acknowledgements(data_dir, default_retention_days()),
        watch=Watch(data_dir),
        escalate_after={"urgent": timedelta(minutes=30), "other": timedelta(days=2)},
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
    concern = type(concern)(**{**concern.__dict__, "urgent": True})
    await delivery.receive(concern)
    await delivery.deliver_due()
    assert escalations(server) == []
    clock.advance(minutes=29, seconds=59)
    await delivery.deliver_due()
    assert escalations(server) == []
    assert delivery.health(clock()).ok
    # A restart: a new process on the same folder keeps the timer.
    restarted = watching_delivery(tmp_path / "data", server, clock)
    clock.advance(seconds=2)
    await restarted.deliver_due()
    assert len(escalations(server)) == 1
    assert escalations(server)[0].startswith("NOBODY HAS PICKED THIS UP - ")
    assert concern.reference in escalations(server)[0]
    # Never twice, and overdue until someone picks it up.
    clock.advance(hours=3)
    await restarted.deliver_due()
    assert len(escalations(server)) == 1
    health = restarted.health(clock())
    assert not health.ok
    assert any("escalated" in problem for problem in health.problems)
    assert restarted.acknowledgements is not None
    restarted.acknowledgements.record(concern.reference, "concern", ESCALATION, clock())
    await restarted.deliver_due()
    assert restarted.health(clock()).ok


@in_own_loop
async def test_a_concern_picked_up_in_time_never_escalates(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    concern = submission("concern", about="member")
    await delivery.receive(concern)
    await delivery.deliver_due()
    assert delivery.acknowledgements is not None
    delivery.acknowledgements.record(concern.reference, "concern", "lead@example.org", clock())
    clock.advance(days=3)
    await delivery.deliver_due()
    assert escalations(server) == []
    assert delivery.watch is not None
    assert delivery.watch.all() == []


@in_own_loop
async def test_an_ordinary_form_is_never_watched(server: SmtpServer, tmp_path: Path) -> None:
    clock = Clock()
    delivery = watching_delivery(tmp_path / "data", server, clock)
    await delivery.receive(submission("leave-missing"))
    await delivery.deliver_due()
    assert delivery.watch is not None
    assert delivery.watch.all() == []


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
    await delivery.receive(notice)
    await delivery.deliver_due()
    await delivery.deliver_due()
    assert len(escalations(server)) == 1
    assert notice.reference in escalations(server)[0]


def test_the_outbox_command_lists_an_overdue_form_and_exits_1(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    data = tmp_path / "data"
    watch = Watch(data)
    watched = Watched("7CX-J7G-6TW", "concern", True, now, now, "")
    watch.start(watched)
    watch.escalated(watched, now)
    result = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert "Overdue: 7CX-J7G-6TW (concern, urgent) was escalated" in result.stdout
    assert result.returncode == 1
