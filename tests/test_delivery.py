"""Delivery against a real SMTP server (aiosmtpd with STARTTLS): who receives what, retries,
restarts, and what is left on disk afterwards. Faults at the edges: test_delivery_faults.py."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.datastructures import Secret

from forms_server.cli.outbox import retry_failed
from forms_server.config.env import HealthLimits, Settings, load_settings
from forms_server.config.mail import MailSettings, SmtpSecurity
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.mail.messages import Envelope, PermanentDeliveryError, build_message
from forms_server.mail.relay import Relay
from forms_server.services import Services, open_services
from forms_server.storage.outbox_items import ItemStatus
from forms_server.storage.sealing import Sealer
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, free_port, smtp_server
from tests.test_views import valid_answers

DATA_KEY = bytes(range(32))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FACILITATORS = ("f1@example.org", "f2@example.org")
CONCERNS = ("lead@example.org", "deputy@example.org")
FACILITATOR_CONCERNS = ("facilitator-concerns@example.org",)
SENDER = "forms@harbour.example"


def mail_settings(server: SmtpServer | None, **changes: object) -> MailSettings:
    settings = MailSettings(
        host=server.host if server else "127.0.0.1",
        port=server.port if server else free_port(),
        security=SmtpSecurity.STARTTLS,
        username=None,
        password=None,
        timeout_seconds=5,
        ca_file=server.ca_file if server else None,
        allow_plaintext=False,
        sender=SENDER,
        facilitators=FACILITATORS,
        concerns=CONCERNS,
        facilitator_concerns=FACILITATOR_CONCERNS,
        retry_hours=48,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


LIMITS = HealthLimits(
    urgent_waiting_seconds=5 * 60, waiting_seconds=60 * 60, worker_silent_seconds=5 * 60
)


def settings_for(data_dir: Path, mail: MailSettings, **changes: object) -> Settings:
    """The group's own settings over `data_dir`, with this mail relay; `changes` replace
    settings by name, and `decisions` (a dict) replaces the group's decisions by name."""
    base = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(data_dir),
            "FORMS_DATA_KEY": base64.urlsafe_b64encode(DATA_KEY).decode("ascii"),
            "FORMS_BUILD_HANDBOOK": "false",
        },
    )
    decided = changes.pop("decisions", {})
    assert isinstance(decided, dict)
    base = replace(
        base,
        mail=mail,
        group={**base.group, "name": "Harbour"},
        health=LIMITS,
        decisions=replace(base.decisions, **decided),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def make_delivery(
    data_dir: Path,
    mail: MailSettings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    **changes: object,
) -> Services:
    """Every part of the server over `data_dir`, as `serve` makes them (services.py)."""
    return open_services(settings_for(data_dir, mail, **changes), clock)


def status(delivery: Services, reference: str) -> ItemStatus | None:
    if delivery.outbox.is_delivered(reference):
        return ItemStatus.DELIVERED
    item = delivery.outbox.read(reference)
    return item.status if item else None


def submission(kind: str, **answers: str) -> Submission:
    form = FORMS[kind]
    return Submission(
        reference=new_reference(),
        form_kind=kind,
        answers={**valid_answers(form), **answers},
        received_at=datetime.now(UTC),
        urgent=False,
        guidelines_version="abc123" if form.binds_guidelines else None,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


async def deliver(delivery: Services, item: Submission) -> None:
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()


# -- Who receives it ----------------------------------------------------------------------------


@in_own_loop
@pytest.mark.parametrize(
    ("kind", "answers", "expected"),
    [
        ("consent", {}, FACILITATORS),
        ("leave-leaving", {}, FACILITATORS),
        ("leave-missing", {}, FACILITATORS),
        ("leave-left-early", {}, FACILITATORS),
        ("concern", {"about": "member"}, CONCERNS),
        ("concern", {"about": "facilitator"}, FACILITATOR_CONCERNS),
    ],
)
async def test_the_envelope_is_exactly_the_configured_recipients(
    server: SmtpServer,
    tmp_path: Path,
    kind: str,
    answers: dict[str, str],
    expected: tuple[str, ...],
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    await deliver(delivery, submission(kind, **answers))
    # One message per recipient, each envelope holding exactly that one address.
    assert [received.rcpt_tos for received in server.handler.received] == [
        [address] for address in expected
    ]
    for received, address in zip(server.handler.received, expected, strict=True):
        assert received.mail_from == SENDER
        assert received.message["From"].addresses[0].addr_spec == SENDER
        assert [a.addr_spec for a in received.message["To"].addresses] == [address]
    message_ids = {received.message["Message-ID"] for received in server.handler.received}
    assert len(message_ids) == len(expected)


@in_own_loop
async def test_nothing_a_member_types_adds_a_recipient_or_a_header(
    server: SmtpServer, tmp_path: Path
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    hostile = submission(
        "concern",
        about="member",
        what_happened="Cc: evil@example.org\nBcc: evil2@example.org",
        why_concerned="To: evil3@example.org, evil4@example.org",
        name="Sam, Bcc: evil5@example.org",
        contact_preference="email",
        email="sam@example.org",
    )
    await deliver(delivery, hostile)
    assert [received.rcpt_tos for received in server.handler.received] == [
        [address] for address in CONCERNS
    ]
    for received in server.handler.received:
        assert received.message["Cc"] is None
        assert received.message["Bcc"] is None
        assert "evil" not in str(received.message["To"])
        assert received.message["Reply-To"] is not None
        assert [a.addr_spec for a in received.message["Reply-To"].addresses] == ["sam@example.org"]


@in_own_loop
async def test_the_subject_names_no_one(server: SmtpServer, tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    item = submission("consent")
    await deliver(delivery, item)
    received = server.handler.received[0]
    subject = str(received.message["Subject"])
    assert subject == f"Harbour: Consent form - ref {item.reference}"
    for answer in item.answers.values():
        if isinstance(answer, str) and len(answer) > 3:
            assert answer not in subject
    assert received.message["Importance"] is None
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Samuel Example" in body.get_content()
    assert received.message.get_body(preferencelist=("html",)) is not None


@in_own_loop
async def test_an_urgent_concern_is_marked_and_sent_first(
    server: SmtpServer, tmp_path: Path
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    ordinary = submission("leave-missing")
    urgent = replace(submission("concern", immediate_risk="yes"), urgent=True)
    await delivery.worker.receive(ordinary)
    await delivery.worker.receive(urgent)
    await delivery.worker.run_pass()
    subjects = [str(received.message["Subject"]) for received in server.handler.received]
    assert len(subjects) == len(CONCERNS) + len(FACILITATORS)
    assert all(urgent.reference in subject for subject in subjects[: len(CONCERNS)])
    assert all("URGENT" in subject for subject in subjects[: len(CONCERNS)])
    assert server.handler.received[0].message["Importance"] == "High"
    assert all(ordinary.reference in subject for subject in subjects[len(CONCERNS) :])


@in_own_loop
async def test_a_retried_send_is_recognisably_the_same_message(
    server: SmtpServer, tmp_path: Path
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    server.handler.data_replies.append("451 4.3.0 Try again later")
    item = submission("leave-leaving")
    await deliver(delivery, item)
    waiting = delivery.outbox.read(item.reference)
    assert waiting is not None
    first_id = waiting.recipients[0].message_id
    delivery.outbox.save(
        waiting.with_recipient(replace(waiting.recipients[0], next_attempt_at=None))
    )
    await delivery.worker.run_pass()
    assert server.handler.received[-1].message["Message-ID"] == first_id
    assert item.reference not in first_id
    assert "leave" not in first_id


# -- Failures and retries -----------------------------------------------------------------------


@in_own_loop
async def test_a_4xx_reply_is_retried(server: SmtpServer, tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    server.handler.data_replies.append("451 4.3.0 Try again later")
    item = submission("leave-missing")
    await deliver(delivery, item)
    pending = delivery.outbox.read(item.reference)
    assert pending is not None
    assert pending.status is ItemStatus.PENDING
    first, second = pending.recipients
    assert (first.attempts, second.attempts) == (1, 0)  # the second went through at once
    assert first.next_attempt_at is not None
    assert first.next_attempt_at > datetime.now(UTC)
    assert delivery.worker.health(datetime.now(UTC)).summary.pending == 1
    delivery.outbox.save(pending.with_recipient(replace(first, next_attempt_at=None)))
    await delivery.worker.run_pass()
    assert status(delivery, item.reference) is ItemStatus.DELIVERED
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(FACILITATORS)


@in_own_loop
async def test_a_5xx_reply_is_not_retried_and_shows_on_health(
    server: SmtpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    server.handler.data_replies += ["554 5.7.1 Rejected", "554 5.7.1 Rejected"]
    item = submission("consent")
    await deliver(delivery, item)
    failed = delivery.outbox.read(item.reference)
    assert failed is not None
    assert failed.status is ItemStatus.FAILED
    assert delivery.worker.health(datetime.now(UTC)).summary.failed == 1
    await delivery.worker.run_pass()
    assert server.handler.received == []
    assert item.reference in caplog.text
    assert "Samuel Example" not in caplog.text
    assert retry_failed(delivery) == (1, 0)
    await delivery.worker.run_pass()
    assert status(delivery, item.reference) is ItemStatus.DELIVERED


@in_own_loop
async def test_an_unreachable_relay_is_retried(tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(None))  # nothing listens there
    item = submission("leave-left-early")
    await deliver(delivery, item)
    assert status(delivery, item.reference) is ItemStatus.PENDING


@in_own_loop
async def test_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def hang_up() -> None:
        connection, _ = listener.accept()
        connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    delivery = make_delivery(tmp_path / "data", mail_settings(None, port=port))
    item = submission("leave-missing")
    await deliver(delivery, item)
    listener.close()
    assert status(delivery, item.reference) is ItemStatus.PENDING


@in_own_loop
async def test_without_starttls_nothing_is_sent_in_plain_text(tmp_path: Path) -> None:
    with smtp_server(tmp_path, starttls=False) as plain:
        delivery = make_delivery(tmp_path / "data", mail_settings(plain))
        item = submission("concern")
        await deliver(delivery, item)
        assert plain.handler.received == []
        assert status(delivery, item.reference) is ItemStatus.FAILED


@in_own_loop
async def test_plain_text_to_another_machine_is_refused_before_connecting() -> None:
    item = submission("consent")
    mail = mail_settings(None, security=SmtpSecurity.NONE)
    message = build_message(item, Envelope(FACILITATORS[0], "<1@x.example>", mail, "Harbour", NOW))
    relay = Relay(replace(mail, host="192.0.2.10", port=25))
    with pytest.raises(PermanentDeliveryError, match="plain text"):
        await relay.send(message, FACILITATORS[0])


@in_own_loop
async def test_after_a_restart_pending_mail_is_sent(server: SmtpServer, tmp_path: Path) -> None:
    before = make_delivery(tmp_path / "data", mail_settings(None))
    item = submission("leave-leaving")
    await before.worker.receive(item)  # the server stops before the worker runs
    after = make_delivery(tmp_path / "data", mail_settings(server))
    await after.worker.run_pass()
    assert status(after, item.reference) is ItemStatus.DELIVERED
    assert len(server.handler.received) == len(FACILITATORS)


@in_own_loop
async def test_the_worker_sends_new_mail_at_once(server: SmtpServer, tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    worker = asyncio.create_task(delivery.worker.run())
    item = replace(submission("concern", immediate_risk="yes"), urgent=True)
    await delivery.worker.receive(item)
    for _ in range(200):
        if len(server.handler.received) == len(CONCERNS):
            break
        await asyncio.sleep(0.02)
    await delivery.worker.stop()
    await asyncio.wait_for(worker, timeout=10)
    assert len(server.handler.received) == len(CONCERNS)


@in_own_loop
async def test_a_replayed_submission_is_received_once(server: SmtpServer, tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    item = submission("consent")
    await deliver(delivery, item)
    await deliver(delivery, item)
    assert len(server.handler.received) == len(FACILITATORS)


# -- What is left on disk -----------------------------------------------------------------------


def raw_files(data_dir: Path) -> str:
    return "".join(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in data_dir.rglob("*")
        if path.is_file()
    )


@in_own_loop
async def test_once_delivered_only_what_the_form_keeps_is_left(
    server: SmtpServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    delivery = make_delivery(data_dir, mail_settings(server))
    concern = submission("concern", about="member", name="Robin Reporter")
    consent = submission("consent")
    await deliver(delivery, concern)
    await deliver(delivery, consent)
    assert delivery.outbox.pending().items == []
    assert delivery.outbox.is_delivered(concern.reference)
    assert delivery.outbox.is_delivered(consent.reference)
    concern_record = delivery.store.get(concern.reference)
    assert concern_record is not None
    assert concern_record.kept == {}  # nothing about the reporter or the content
    consent_record = delivery.store.get(consent.reference)
    assert consent_record is not None
    assert consent_record.kept["email"] == "sam@example.org"
    raw = raw_files(data_dir)
    for planted in ("Robin Reporter", "Samuel Example", "sam@example.org", "pills"):
        assert planted not in raw
    assert (data_dir / "submissions.json").stat().st_mode & 0o777 == 0o600


def test_sealed_answers_do_not_open_on_another_record() -> None:
    sealer = Sealer(DATA_KEY)
    sealed = sealer.seal("AAA-AAA-AAA", {"name": "Sam"})
    assert sealer.open("AAA-AAA-AAA", sealed) == {"name": "Sam"}
    with pytest.raises(Exception, match="cannot be opened"):
        sealer.open("BBB-BBB-BBB", sealed)
    assert "Sam" not in base64.b64decode(sealed).decode("latin-1")


def test_only_old_temporary_outbox_files_count_as_stray(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "outbox"
    folder.mkdir(parents=True)
    old, fresh = folder / ".OLD.1.2.tmp", folder / ".NEW.1.2.tmp"
    old.write_text("{", encoding="utf-8")
    fresh.write_text("{", encoding="utf-8")
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    make_delivery(tmp_path / "data", mail_settings(None))
    assert not old.exists()
    assert fresh.exists()  # another process may be writing it right now


@in_own_loop
async def test_two_workers_on_one_outbox_send_each_message_once(
    server: SmtpServer, tmp_path: Path
) -> None:
    first = make_delivery(tmp_path / "data", mail_settings(server))
    second = make_delivery(tmp_path / "data", mail_settings(server))
    items = [submission("leave-missing") for _ in range(10)]
    for item in items:
        await first.worker.receive(item)
    await asyncio.gather(first.worker.run_pass(), second.worker.run_pass())
    await asyncio.gather(first.worker.run_pass(), second.worker.run_pass())
    sent = sorted(
        (str(received.message["Subject"]), received.rcpt_tos[0])
        for received in server.handler.received
    )
    assert len(sent) == 10 * len(FACILITATORS)
    assert len(set(sent)) == 10 * len(FACILITATORS)
    assert first.store.count() == 10


def test_a_new_data_key_seals_and_the_old_one_still_opens() -> None:
    old_key, new_key = bytes(range(32)), bytes(range(1, 33))
    sealed_before = Sealer(old_key).seal("AAA-AAA-AAA", {"name": "Sam"})
    rotated = Sealer([old_key, new_key])
    assert rotated.open("AAA-AAA-AAA", sealed_before) == {"name": "Sam"}
    sealed_after = rotated.seal("AAA-AAA-AAA", {"name": "Sam"})
    assert Sealer(new_key).open("AAA-AAA-AAA", sealed_after) == {"name": "Sam"}
    with pytest.raises(Exception, match="no longer configured"):
        Sealer(new_key).open("AAA-AAA-AAA", sealed_before)


@in_own_loop
async def test_auth_over_starttls_and_refused_credentials(tmp_path: Path) -> None:
    with smtp_server(tmp_path, login=("forms", "correct horse")) as relay:
        good = make_delivery(
            tmp_path / "good",
            mail_settings(relay, username="forms", password=Secret("correct horse")),
        )
        await deliver(good, submission("consent"))
        assert len(relay.handler.received) == len(FACILITATORS)

        bad = make_delivery(
            tmp_path / "bad", mail_settings(relay, username="forms", password=Secret("wrong"))
        )
        item = submission("consent")
        await deliver(bad, item)
        failed = bad.outbox.read(item.reference)
        assert failed is not None
        # Refused credentials will not improve by retrying.
        assert failed.status is ItemStatus.FAILED
        assert failed.last_error is not None
        assert "credentials" in failed.last_error
        assert len(relay.handler.received) == len(FACILITATORS)


@in_own_loop
async def test_a_replay_racing_the_delivery_is_still_received_once(
    server: SmtpServer, tmp_path: Path
) -> None:
    """CI once caught a replay landing between delivery's two file steps: creating a reference
    and finishing it take the same lock, so a replay at any moment finds the name taken."""
    delivery = make_delivery(tmp_path / "data", mail_settings(server))
    item = submission("leave-missing")
    await delivery.worker.receive(item)
    replays = [delivery.worker.receive(item) for _ in range(20)]
    await asyncio.gather(delivery.worker.run_pass(), *replays)
    await delivery.worker.receive(item)
    assert list(delivery.outbox.pending_folder.iterdir()) == []
    assert [path.name for path in delivery.outbox.delivered_folder.iterdir()] == [item.reference]
    assert len(server.handler.received) == len(FACILITATORS)
