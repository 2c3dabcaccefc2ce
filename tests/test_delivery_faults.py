"""Delivery at its edges, each against real files and a real SMTP server (aiosmtpd, STARTTLS):
a poison address, a full disk, unreadable files, a relay that refuses one recipient, a killed
process, a long history, and a health check that must tell the truth about all of them."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.cli.outbox import retry_failed
from forms_server.config.group import PROJECT_ROOT
from forms_server.services import Services as Delivery
from forms_server.storage.outbox_items import FORMAT, ItemStatus, RecipientStatus
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def sent_to(server: SmtpServer) -> Counter[tuple[str, str]]:
    """How many times each (subject, recipient) pair arrived."""
    return Counter(
        (str(received.message["Subject"]), received.rcpt_tos[0])
        for received in server.handler.received
    )


def make_everything_due(delivery: Delivery) -> None:
    """Time passes: every backed-off recipient and record is due again."""
    for item in delivery.outbox.pending().items:
        recipients = tuple(replace(r, next_attempt_at=None) for r in item.recipients)
        delivery.outbox.save(replace(item, recipients=recipients, next_record_at=None))


# -- 1. An address the mailer cannot use never stalls or repeats anything -----------------------


@in_own_loop
async def test_an_item_whose_message_cannot_be_built_fails_alone(
    server: SmtpServer, tmp_path: Path
) -> None:
    """A poison item planted in the outbox (the form now refuses such addresses, see
    test_views): it fails on its own, and nothing else waits or is sent twice."""
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    sent_before = submission("leave-missing")
    await delivery.worker.receive(sent_before)
    await delivery.worker.run_pass()
    poison = submission(
        "concern", about="member", contact_preference="email", email="john.@gmail.com"
    )
    assert delivery.worker.intake.add(
        poison
    )  # as an older version, or a hand-made file, would have it
    after = [submission("leave-leaving") for _ in range(3)]
    for item in after:
        await delivery.worker.receive(item)
    for _ in range(4):
        await delivery.worker.run_pass()
        make_everything_due(delivery)
    counts = sent_to(delivery_server := server)
    assert all(count == 1 for count in counts.values()), counts
    assert len(counts) == len(FACILITATORS) * 4
    for item in [sent_before, *after]:
        assert status(delivery, item.reference) is ItemStatus.DELIVERED
    failed = delivery.outbox.read(poison.reference)
    assert failed is not None
    assert failed.status is ItemStatus.FAILED
    assert failed.last_error is not None
    assert "reply address" in failed.last_error
    assert all(poison.reference not in subject for subject, _ in sent_to(delivery_server))
    assert delivery.worker.health(datetime.now(UTC)).summary.failed == 1


# -- 2. A write that fails after the relay accepted never repeats the send ----------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs), so a full disk is a real ENOSPC."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must mount a tmpfs: {mounted.stderr!r}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fills the filesystem until about `leave_bytes` are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler"
    with filler.open("wb") as file:
        file.write(b"\0" * max(free - leave_bytes, 0))
    return filler


@in_own_loop
async def test_a_full_disk_at_the_store_write_sends_each_message_exactly_once(
    server: SmtpServer, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    delivery = make_delivery(data_dir, mail_settings(server))
    # A store big enough that rewriting it needs more room than the disk will have left,
    # while an item's own small writes still fit.
    earlier = [submission("consent") for _ in range(500)]
    delivery.store.add_delivered_many(earlier, datetime.now(UTC))
    store_size = (data_dir / "submissions.json").stat().st_size
    assert store_size > 200 * 1024
    item = submission("leave-missing")
    await delivery.worker.receive(item)
    filler = fill(small_disk, leave_bytes=64 * 1024)
    assert os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < store_size

    for _ in range(3):  # passes while the disk stays full
        await delivery.worker.run_pass()
        make_everything_due(delivery)
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(FACILITATORS)
    waiting = delivery.outbox.read(item.reference)
    assert waiting is not None
    assert {r.status for r in waiting.recipients} == {RecipientStatus.ACCEPTED}
    assert not waiting.recorded
    # The failed store write left no temporary file behind to fill the disk further.
    assert [path.name for path in data_dir.glob(".*.tmp")] == []
    assert [path.name for path in delivery.outbox.pending_folder.glob(".*.tmp")] == []

    filler.unlink()
    await delivery.worker.run_pass()
    assert status(delivery, item.reference) is ItemStatus.DELIVERED
    assert delivery.store.get(item.reference) is not None
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(FACILITATORS)


@in_own_loop
async def test_when_even_the_acceptance_cannot_be_written_the_message_is_not_sent_again(
    server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    item = submission("leave-missing")
    await delivery.worker.receive(item)
    real_save = delivery.outbox.save

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(delivery.outbox, "save", disk_full)
    monkeypatch.setattr(delivery.store, "add_delivered_many", disk_full)
    for _ in range(3):
        await delivery.worker.run_pass()
        monkeypatch.setattr(delivery.outbox, "save", real_save)
        make_everything_due(delivery)
        monkeypatch.setattr(delivery.outbox, "save", disk_full)
    assert len(server.handler.received) == len(FACILITATORS)
    monkeypatch.undo()
    await delivery.worker.run_pass()
    assert status(delivery, item.reference) is ItemStatus.DELIVERED
    assert len(server.handler.received) == len(FACILITATORS)


# -- 3. An unreadable file is moved aside; nothing else stops -----------------------------------


@in_own_loop
async def test_unreadable_outbox_files_are_quarantined_and_the_rest_is_delivered(
    server: SmtpServer, tmp_path: Path
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    pending = delivery.outbox.pending_folder
    (pending / "AAA-AAA-AAA.json").write_bytes(os.urandom(300))
    (pending / "BBB-BBB-BBB.json").write_text('{"format": 2, "reference": 7}', "utf-8")
    (pending / "CCC-CCC-CCC.json").mkdir()
    good = submission("leave-missing")
    await delivery.worker.receive(good)
    await delivery.worker.run_pass()
    assert status(delivery, good.reference) is ItemStatus.DELIVERED
    quarantined = delivery.outbox.quarantined()
    assert [name.split(".json")[0] for name in quarantined] == [
        "AAA-AAA-AAA",
        "BBB-BBB-BBB",
        "CCC-CCC-CCC",
    ]
    health = delivery.worker.health(datetime.now(UTC))
    assert not health.ok
    assert health.summary.quarantined == 3
    assert "3 outbox file(s) could not be read." in health.problems
    # Dismissed by its name exactly as `forms-server outbox` lists it.
    assert delivery.outbox.dismiss(quarantined[0])
    await delivery.worker.run_pass()
    assert delivery.worker.health(datetime.now(UTC)).summary.quarantined == 2


@in_own_loop
async def test_the_worker_outlives_a_pass_that_fails(
    server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    real_pending = delivery.outbox.pending
    calls = 0

    def fails_once() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_pending()

    monkeypatch.setattr(delivery.outbox, "pending", fails_once)
    worker = asyncio.create_task(delivery.worker.run())
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.01)
    item = submission("leave-missing")
    await delivery.worker.receive(item)
    for _ in range(300):
        if status(delivery, item.reference) is ItemStatus.DELIVERED:
            break
        await asyncio.sleep(0.02)
    await delivery.worker.stop()
    await asyncio.wait_for(worker, timeout=10)
    assert status(delivery, item.reference) is ItemStatus.DELIVERED


# -- 4. A relay that refuses some recipients --------------------------------------------------


@in_own_loop
async def test_a_refused_recipient_fails_alone_and_the_others_are_never_sent_again(
    server: SmtpServer, tmp_path: Path
) -> None:
    server.handler.refused_recipients[FACILITATORS[1]] = "550 5.1.1 No such user"
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    consent = submission("consent")
    await delivery.worker.receive(consent)
    await delivery.worker.run_pass()
    assert [r.rcpt_tos for r in server.handler.received] == [[FACILITATORS[0]]]
    # The form reached someone: its record is kept at once.
    record = delivery.store.get(consent.reference)
    assert record is not None
    assert record.kept["email"] == "sam@example.org"
    item = delivery.outbox.read(consent.reference)
    assert item is not None
    assert item.status is ItemStatus.FAILED
    assert [r.status for r in item.recipients] == [RecipientStatus.ACCEPTED, RecipientStatus.FAILED]
    assert not delivery.worker.health(datetime.now(UTC)).ok

    del server.handler.refused_recipients[FACILITATORS[1]]
    assert retry_failed(delivery) == (1, 0)
    await delivery.worker.run_pass()
    assert [r.rcpt_tos for r in server.handler.received] == [[FACILITATORS[0]], [FACILITATORS[1]]]
    assert status(delivery, consent.reference) is ItemStatus.DELIVERED
    assert delivery.worker.health(datetime.now(UTC)).ok


# -- 5. A crash repeats at most the message in flight ---------------------------------------------

# A server process's worker, delivering until everything is sent (or it is killed).
WORKER = """
import asyncio, sys
from pathlib import Path
from tests.test_delivery import make_delivery, mail_settings
from tests.smtp_server import SmtpServer, RecordingHandler
server = SmtpServer("127.0.0.1", int(sys.argv[2]), RecordingHandler(), Path(sys.argv[3]))
delivery = make_delivery(Path(sys.argv[1]), mail_settings(server))
async def main():
    while delivery.outbox.pending().items:
        await delivery.worker.run_pass()
asyncio.run(main())
"""


def test_killing_the_worker_repeats_at_most_the_message_in_flight(
    server: SmtpServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server.handler.data_delay = 0.02  # a relay slow enough to be killed mid-send

    async def receive_all() -> list[str]:
        delivery = make_delivery(data_dir, mail_settings(None))
        items = [submission("leave-missing") for _ in range(30)]
        for item in items:
            await delivery.worker.receive(item)
        return [item.reference for item in items]

    references: list[str] = []

    @in_own_loop
    async def setup() -> None:
        references.extend(await receive_all())

    setup()
    command = [sys.executable, "-c", WORKER, str(data_dir), str(server.port), str(server.ca_file)]
    kills = 0
    for delay in (0.4, 0.7, 0.5, 0.9):
        worker = subprocess.Popen(command, cwd=PROJECT_ROOT)
        time.sleep(delay)
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(timeout=10)
    finished = subprocess.run(command, cwd=PROJECT_ROOT, timeout=120, check=False)
    assert finished.returncode == 0
    counts = sent_to(server)
    assert len(counts) == len(references) * len(FACILITATORS)  # nothing lost
    duplicates = sum(count - 1 for count in counts.values())
    assert kills >= 2
    assert duplicates <= kills, (duplicates, kills)


# -- 6. Cost grows with what is pending, not with history -----------------------------------------


@in_own_loop
async def test_delivered_markers_are_never_read_again(server: SmtpServer, tmp_path: Path) -> None:
    results = {}
    for markers in (0, 20_000):
        delivery = make_delivery(tmp_path / f"data-{markers}", mail_settings(server))
        for number in range(markers):
            (delivery.outbox.delivered_folder / f"M{number:08d}").touch()
        for _ in range(3):
            await delivery.worker.receive(submission("leave-missing"))
        before = delivery.outbox.files_read
        await delivery.worker.run_pass()
        during_pass = delivery.outbox.files_read - before
        before = delivery.outbox.files_read
        for _ in range(100):
            delivery.worker.health(datetime.now(UTC))
        during_health = delivery.outbox.files_read - before
        results[markers] = (during_pass, during_health)
    assert results[0] == results[20_000] == (3, 0)


# -- 7. Health that tells the truth -----------------------------------------------------------


@in_own_loop
async def test_health_reports_every_condition_that_can_lose_a_form(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = make_delivery(tmp_path / "data", mail_settings(server), clock=clock)
    assert "The delivery worker is not running." in delivery.worker.health(clock()).problems
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok
    clock.advance(minutes=6)
    assert delivery.worker.health(clock()).problems == ("The delivery worker is not running.",)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok

    # The relay goes away: an urgent form past its few minutes, then any form past an hour.
    delivery.relay.use("127.0.0.1", 9, delivery.relay.mail)
    urgent = replace(submission("concern", immediate_risk="yes"), urgent=True)
    await delivery.worker.receive(replace(urgent, received_at=clock()))
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok
    clock.advance(minutes=6)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).problems == ("An urgent form has waited 6 minute(s).",)
    clock.advance(minutes=55)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).problems == (
        "An urgent form has waited 61 minute(s).",
        "A form has waited 61 minute(s).",
    )
    assert delivery.worker.health(clock()).to_json()["outbox"]["urgent_pending"] == 1


@in_own_loop
async def test_health_says_when_the_data_folder_cannot_be_written(
    server: SmtpServer, small_disk: Path
) -> None:
    """The worker tries a small write at most every 10 seconds (a busy worker passes once per
    form received), and at every pass while the folder cannot be written."""
    clock = Clock()
    delivery = make_delivery(small_disk / "data", mail_settings(server), clock=clock)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok
    remount(small_disk, "ro")
    try:
        clock.advance(seconds=11)
        await delivery.worker.run_pass()
        problems = delivery.worker.health(clock()).problems
    finally:
        remount(small_disk, "rw")
    assert problems == ("The data folder cannot be written (Read-only file system).",)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok


# -- 8. What stays of a form that could not be delivered ----------------------------------------


@in_own_loop
async def test_a_failed_form_loses_its_content_in_time_but_stays_reported_until_dismissed(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = make_delivery(tmp_path / "data", mail_settings(server), clock=clock)
    server.handler.data_replies += ["554 5.7.1 Rejected"] * len(CONCERNS)
    concern = submission("concern", about="member", what_happened="Planted words 7Q")
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    path = delivery.outbox.pending_path(concern.reference)
    failed = delivery.outbox.read(concern.reference)
    assert failed is not None
    assert failed.status is ItemStatus.FAILED
    assert failed.sealed

    clock.advance(days=6)
    await delivery.worker.run_pass()
    still = delivery.outbox.read(concern.reference)
    assert still is not None
    assert still.sealed  # within the group's 7 days: kept for a retry
    clock.advance(days=2)
    await delivery.worker.run_pass()
    erased = delivery.outbox.read(concern.reference)
    assert erased is not None
    assert erased.sealed == ""
    assert erased.content_erased_at == clock()
    record = json.loads(path.read_text("utf-8"))
    assert record["route"] == "concerns"
    assert record["form_kind"] == "concern"
    assert all(r["last_error"] for r in record["recipients"])
    assert not delivery.worker.health(clock()).ok
    assert retry_failed(delivery) == (0, 1)

    assert delivery.outbox.dismiss(concern.reference)
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok
    await delivery.worker.receive(concern)  # a replay cannot bring it back
    assert delivery.outbox.read(concern.reference) is None


# -- Upgrades -----------------------------------------------------------------------------------


@in_own_loop
async def test_files_from_the_first_version_are_migrated_not_quarantined(
    server: SmtpServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = make_delivery(data_dir, mail_settings(server))  # only for its sealer
    waiting, delivered = submission("leave-missing"), submission("consent")
    now = datetime.now(UTC).isoformat()
    for item, state in ((waiting, "pending"), (delivered, "delivered")):
        sealed = first.store.sealer.seal(
            item.reference, {"answers": item.answers, "guidelines_version": None}
        )
        (first.outbox.folder / f"{item.reference}.json").write_text(
            json.dumps(
                {
                    "reference": item.reference,
                    "form_kind": item.form_kind,
                    "received_at": now,
                    "urgent": False,
                    "status": state,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": None,
                    "sealed": sealed if state == "pending" else "",
                    "retry_from": now,
                }
            ),
            "utf-8",
        )
    upgraded = make_delivery(data_dir, mail_settings(server))
    assert upgraded.outbox.quarantined() == []
    assert list(upgraded.outbox.folder.glob("*.json")) == []
    await upgraded.worker.run_pass()
    assert status(upgraded, waiting.reference) is ItemStatus.DELIVERED
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(FACILITATORS)
    await upgraded.worker.receive(delivered)  # still refused as a replay
    assert upgraded.outbox.read(delivered.reference) is None


def test_an_item_with_fields_from_a_later_version_is_still_read(tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(None))
    item = submission("leave-missing")
    assert delivery.worker.intake.add(item)
    path = delivery.outbox.pending_path(item.reference)
    data = json.loads(path.read_text("utf-8"))
    assert data["format"] == FORMAT
    data["a_field_added_later"] = {"anything": [1, 2]}
    path.write_text(json.dumps(data), "utf-8")
    again = delivery.outbox.read(item.reference)
    assert again is not None
    assert again.reference == item.reference
    assert delivery.outbox.quarantined() == []


# -- A flood cannot bury an inbox ---------------------------------------------------------------


def to_facilitators(server: SmtpServer) -> int:
    return sum(1 for r in server.handler.received if r.rcpt_tos[0] in FACILITATORS)


@in_own_loop
async def test_past_the_hourly_rate_forms_come_together_in_one_digest(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = make_delivery(
        tmp_path / "data",
        mail_settings(server),
        clock=clock,
        digest_after_per_hour=3,
        digest_every_minutes=5.0,
    )
    flood = [submission("leave-missing") for _ in range(10)]
    urgent = submission("leave-left-early", safe_now="no", reach_unsafe="07700 900982")
    # Not safe: urgent, and it goes to whoever receives concerns as well (once each, alone).
    urgent = replace(urgent, urgent=True)
    for item in [*flood, urgent]:
        await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    for facilitator in FACILITATORS:
        subjects = [
            str(received.message["Subject"])
            for received in server.handler.received
            if received.rcpt_tos == [facilitator]
        ]
        # The urgent one and two more alone (the hourly rate is 3), then one digest of 8.
        assert len(subjects) == 4, subjects
        assert "URGENT" in subjects[0]
        assert subjects[-1] == "Harbour: 8 forms in one email"
    digest = next(r for r in server.handler.received if "in one email" in str(r.message["Subject"]))
    text = digest.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n").count("Leave notice: missing sessions\nReference:") == 8
    # Every form reached everyone once, and is recorded and finished.
    for item in [*flood, urgent]:
        assert status(delivery, item.reference) is ItemStatus.DELIVERED
    # More in the next minutes wait for the next digest, with no attempt counted...
    later = [submission("leave-missing") for _ in range(2)]
    for item in later:
        await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    assert to_facilitators(server) == 4 * len(FACILITATORS)
    waiting = delivery.outbox.read(later[0].reference)
    assert waiting is not None
    assert all(r.attempts == 0 for r in waiting.recipients)
    # ...and go together when it comes.
    clock.advance(minutes=5)
    await delivery.worker.run_pass()
    assert to_facilitators(server) == 5 * len(FACILITATORS)
    assert all(status(delivery, item.reference) is ItemStatus.DELIVERED for item in later)


@in_own_loop
async def test_a_form_recorded_before_its_last_recipient_had_it_is_still_finished_and_watched(
    server: SmtpServer, tmp_path: Path
) -> None:
    """The first recipient's send is put off (451) while the second gets it: the record is kept
    at once. Once the first gets it too, the form must be finished (its content leaves the
    outbox) and, as a concern, watched so it escalates if nobody picks it up. Found by the
    bench: such an item stayed in the outbox for ever, never watched."""
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    server.handler.data_replies.append("451 4.3.0 Try again later")
    concern = submission("concern", about="member")
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    waiting = delivery.outbox.read(concern.reference)
    assert waiting is not None
    assert waiting.recorded
    assert [r.status for r in waiting.recipients] == [
        RecipientStatus.PENDING,
        RecipientStatus.ACCEPTED,
    ]
    make_everything_due(delivery)
    await delivery.worker.run_pass()
    assert delivery.outbox.read(concern.reference) is None
    assert delivery.outbox.is_delivered(concern.reference)
    assert delivery.files.watch.get(concern.reference) is not None
