"""Issue 19, the worker's failures (items 3, 4, 5, 11a and 11d), each reproduced against a real
relay (aiosmtpd with STARTTLS, tests/smtp_server.py) and real files, and each asserting what the
rebuilt worker must do. Each failed on the code before the rebuild."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forms_server.delivery.intake import OutboxWriteError
from forms_server.forms.fields import Submission
from forms_server.services import Services as Delivery
from forms_server.storage.outbox_items import ItemStatus
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import (
    CONCERNS,
    FACILITATORS,
    mail_settings,
    make_delivery,
    status,
    submission,
)
from tests.test_delivery_faults import (
    Clock,
    fill,
    make_everything_due,
    sent_to,
    small_disk,
)

# The real 4 MiB tmpfs fixture of test_delivery_faults, imported so pytest finds it here.
__all__ = ["small_disk"]

# -- Building things: the only places that construct a worker or a form -------------------------


def worker(
    data_dir: Path,
    server: SmtpServer,
    timeout_seconds: int = 5,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    **changes: object,
) -> Delivery:
    """Every part of the server on `data_dir`, sending to `server` with this SMTP timeout; the
    changes replace settings (the flood limit ...)."""
    return make_delivery(
        data_dir, mail_settings(server, timeout_seconds=timeout_seconds), clock, **changes
    )


def ordinary_concern() -> Submission:
    """A concern about a member with no immediate risk: it goes to CONCERNS, not urgent."""
    return submission("concern", about="member")


def urgent_concern() -> Submission:
    """A concern whose member said someone is at immediate risk: urgent, to CONCERNS."""
    return replace(submission("concern", about="member", immediate_risk="yes"), urgent=True)


def leave_notice() -> Submission:
    """An ordinary leave notice: to the two FACILITATORS."""
    return submission("leave-missing")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


# -- Small helpers ------------------------------------------------------------------------------


def subjects_to(server: SmtpServer, address: str) -> list[str]:
    return [str(r.message["Subject"]) for r in server.handler.received if r.rcpt_tos == [address]]


async def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Polls `condition` until it holds or `seconds` have passed (a generous bound, not a
    threshold: the tests never assert how long anything took)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- Item 3: a flood buries an urgent concern -----------------------------------------------------


@in_own_loop
async def test_an_urgent_concern_after_a_flood_goes_alone_in_the_next_pass(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 3. Ordinary concerns flood the concerns recipients past their hourly rate, so the
    next ones wait for a digest; then an urgent concern arrives. Right: it reaches each concerns
    recipient in the very next pass, as its own message (its reference and URGENT in the
    subject), never in a digest and never at the digest's time. Today it waits for the next
    digest (five minutes later) and arrives as "1 forms in one email - 1 URGENT"."""
    clock = Clock()
    delivery = worker(
        tmp_path / "data",
        server,
        clock=clock,
        digest_after_per_hour=3,
        digest_every_minutes=5.0,
    )
    flood = [ordinary_concern() for _ in range(5)]
    for item in flood:
        await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    for address in CONCERNS:
        # The flood as today's worker handles it: three alone, then a digest of the other two.
        subjects = subjects_to(server, address)
        assert len(subjects) == 4, subjects
        assert subjects[-1] == "Harbour: 2 forms in one email"
    assert all(status(delivery, item.reference) is ItemStatus.DELIVERED for item in flood)

    urgent = urgent_concern()
    clock.advance(seconds=30)
    await delivery.worker.receive(urgent)
    await delivery.worker.run_pass()  # the very next pass, well before the next digest is due
    for address in CONCERNS:
        subjects = subjects_to(server, address)
        alone = [s for s in subjects if urgent.reference in s and "URGENT" in s]
        assert len(alone) == 1, (address, subjects)
        assert "in one email" not in alone[0]

    # And no digest carries it later: it went alone, once.
    clock.advance(minutes=5)
    await delivery.worker.run_pass()
    for address in CONCERNS:
        later = subjects_to(server, address)[4:]
        assert len(later) == 1, (address, later)
        assert urgent.reference in later[0]
    assert status(delivery, urgent.reference) is ItemStatus.DELIVERED


# -- Item 4: urgent waits behind a pass -----------------------------------------------------------


ORDINARY = 6  # leave notices waiting when the pass starts: twelve messages


async def start_a_long_pass(delivery: Delivery, server: SmtpServer) -> asyncio.Task[None]:
    """The worker has passed once with nothing to send (so health has a summary); then ORDINARY
    leave notices wait, the worker loop starts, and its first pass sends them to a slow relay.
    Returns the loop's task once the relay has the pass's first message."""
    await delivery.worker.run_pass()
    for _ in range(ORDINARY):
        await delivery.worker.receive(leave_notice())
    running = asyncio.create_task(delivery.worker.run())
    assert await wait_until(lambda: len(server.handler.received) >= 1, seconds=60)
    return running


async def receive_urgent_mid_pass(delivery: Delivery, server: SmtpServer) -> Submission:
    urgent = urgent_concern()
    await delivery.worker.receive(urgent)
    # The pass is still running: most of its messages have not reached the relay yet.
    assert len(server.handler.received) < ORDINARY * len(FACILITATORS) - 2
    return urgent


@in_own_loop
async def test_an_urgent_concern_received_mid_pass_overtakes_the_waiting_messages(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 4. A slow relay (half a second per message) and the worker loop sending six leave
    notices (twelve messages); an urgent concern arrives once the first message is in. Right:
    the worker looks for new urgent forms between sends, so both urgent messages are among the
    first four the relay accepts. Today they come after every message of the pass (13th, 14th)."""
    server.handler.data_delay = 0.5
    delivery = worker(tmp_path / "data", server)
    total = ORDINARY * len(FACILITATORS) + len(CONCERNS)
    running = await start_a_long_pass(delivery, server)
    try:
        urgent = await receive_urgent_mid_pass(delivery, server)
        assert await wait_until(lambda: len(server.handler.received) >= total, seconds=120)
    finally:
        await delivery.worker.stop()
        await running
    order = [
        (received.rcpt_tos[0], urgent.reference in str(received.message["Subject"]))
        for received in server.handler.received
    ]
    urgent_positions = [position for position, (_, is_urgent) in enumerate(order, 1) if is_urgent]
    assert sorted(address for address, is_urgent in order if is_urgent) == sorted(CONCERNS)
    assert max(urgent_positions) <= 4, order


@in_own_loop
async def test_health_counts_an_urgent_form_received_mid_pass_at_once(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 4, health. While a pass is sending to a slow relay, an urgent concern is received.
    Right: at once, with no pass in between, health counts it as waiting (urgent_pending 1, in
    the summary and in the JSON `/healthz` gives). Today the summary is rebuilt only at the end
    of a pass, so it says 0 until then (240 s in the issue)."""
    server.handler.data_delay = 0.5
    delivery = worker(tmp_path / "data", server)
    running = await start_a_long_pass(delivery, server)
    try:
        await receive_urgent_mid_pass(delivery, server)
        health = delivery.worker.health(datetime.now(UTC))
    finally:
        await delivery.worker.stop()
        await running
    assert health.summary.urgent_pending >= 1, health.summary
    assert health.to_json()["outbox"]["urgent_pending"] >= 1


# -- Item 5: a slow relay gets the same message again and again ------------------------------------


@in_own_loop
async def test_a_relay_slow_to_answer_the_data_gets_each_message_once(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 5. The connect and command timeout is 1 s; the relay answers the end of the data
    after 3 s (and keeps the message, as a real relay does). Right: the reply after the data has
    a long timeout of its own (RFC 5321 4.5.3.2.6: 10 minutes), so each recipient receives the
    form exactly once however many passes run. Today every pass gives up after 1 s, counts a
    failure and sends the whole message again: one more copy per recipient per pass."""
    server.handler.data_delay = 3.0
    server.handler.keep_when_client_leaves = True
    delivery = worker(tmp_path / "data", server, timeout_seconds=1)
    item = leave_notice()
    await delivery.worker.receive(item)
    for _ in range(4):
        await delivery.worker.run_pass()
        if status(delivery, item.reference) is ItemStatus.DELIVERED:
            break
        make_everything_due(delivery)
    # Let the relay finish the answers it is still working out (it keeps what it was given).
    assert await wait_until(lambda: not server.handler.answering, seconds=60)
    counts = sent_to(server)
    assert sorted(address for _, address in counts) == sorted(FACILITATORS)
    assert set(counts.values()) == {1}, counts
    assert status(delivery, item.reference) is ItemStatus.DELIVERED


# -- Item 11a: a full disk makes a restart repeat accepted sends ---------------------------------


@in_own_loop
async def test_a_restart_on_a_full_disk_never_repeats_a_send_the_relay_accepted(
    server: SmtpServer, small_disk: Path
) -> None:
    """Item 11a. A form is received while there is room; then the disk fills, and a pass sends
    it: the relay accepts, but the acceptance cannot be written. The server restarts (a new
    worker on the same data folder; the old one's memory is gone) and passes while the disk is
    still full, then after space is freed. Right: each recipient receives the form exactly once
    (the accepts are kept somewhere a restart reads, e.g. a journal with space reserved at
    start). Today the restarted worker sends it to every recipient again."""
    data_dir = small_disk / "data"
    before = worker(data_dir, server)
    item = leave_notice()
    await before.worker.receive(item)
    filler = fill(small_disk, leave_bytes=0)
    await before.worker.run_pass()
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(FACILITATORS)
    on_disk = before.outbox.read(item.reference)
    assert on_disk is not None  # the acceptance really was not written: the disk is full
    assert all(recipient.accepted_at is None for recipient in on_disk.recipients)
    del before

    after = worker(data_dir, server)  # the restart
    await after.worker.run_pass()  # while the disk is still full
    filler.unlink()
    for _ in range(3):
        await after.worker.run_pass()
        if status(after, item.reference) is ItemStatus.DELIVERED:
            break
        make_everything_due(after)
    counts = sent_to(server)
    assert sorted(address for _, address in counts) == sorted(FACILITATORS)
    assert set(counts.values()) == {1}, counts
    assert status(after, item.reference) is ItemStatus.DELIVERED


# -- Item 11d: a full disk shows on health only at the next pass ----------------------------------


@in_own_loop
async def test_a_form_that_cannot_be_written_fails_health_at_once(
    server: SmtpServer, small_disk: Path
) -> None:
    """Item 11d. The worker has passed and health is ok; the disk fills, and a member's form
    cannot be written (OutboxWriteError: the member is told it was not received). Right: at
    once, with no pass in between, health fails and names the data folder. Today it stays ok
    until the next pass tries its heartbeat (and that at most every 10 seconds)."""
    clock = Clock()
    delivery = worker(small_disk / "data", server, clock=clock)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok
    fill(small_disk, leave_bytes=0)
    with pytest.raises(OutboxWriteError):
        await delivery.worker.receive(leave_notice())
    health = delivery.worker.health(clock())
    assert not health.ok
    assert any("data folder" in problem for problem in health.problems), health.problems
