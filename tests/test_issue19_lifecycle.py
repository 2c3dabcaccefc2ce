"""Issue 19: failures where two promises about one form's life meet (items 1, 2, 9 and 12).

Each test asserts the right behaviour, and each failed on the code before the lifecycle
rebuild. Everything is real: the test relay (aiosmtpd with STARTTLS, refusing some
addresses at RCPT), files on disk, the command line tool as a subprocess, and the app through
Starlette's TestClient. Objects are built only in the helpers at the top.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.config.decisions import DeliveryMode, default_retention_days
from forms_server.config.env import Settings, load_settings
from forms_server.delivery.housekeeping import keep_house
from forms_server.forms.fields import Submission
from forms_server.services import Services as Delivery
from forms_server.services import open_services
from forms_server.storage.acknowledgements import Acknowledgements
from forms_server.storage.reading import ReadingRoom
from forms_server.web.app import create_app
from tests.own_loop import in_own_loop
from tests.smtp_server import RecordingHandler, SmtpServer, free_port, smtp_server
from tests.test_cli import environment, forms_server
from tests.test_delivery import CONCERNS, mail_settings, make_delivery, submission
from tests.test_delivery_faults import Clock
from tests.test_escalation import ESCALATION
from tests.test_views import BASE_URL

REFUSED = "550 5.1.1 No such user"
SECOND_ESCALATION = "second-escalation@example.net"
SAM = "sam@example.org"
MEMBER = "robin.member@example.net"
ESCALATE_AFTER = {"urgent": 30, "other": 2 * 24 * 60}
ACKNOWLEDGE_PATH = re.compile(r"(/forms/acknowledge/[A-Za-z0-9_.~\-]+)")
YOURS_PATH = re.compile(r"(/forms/yours/[A-Za-z0-9_.~\-]+)")
ESCALATED_SUBJECT = "NOBODY HAS PICKED THIS UP - "


# -- The relay --------------------------------------------------------------------------------


@dataclass
class CountingHandler(RecordingHandler):
    """The test relay, counting every RCPT TO it is asked, refused or not."""

    rcpt_attempts: Counter[str] = field(default_factory=Counter)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpt_attempts[address] += 1
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@contextmanager
def counting_relay(tmp_path: Path) -> Iterator[tuple[SmtpServer, CountingHandler]]:
    """As tests/smtp_server.py's `smtp_server` (STARTTLS required), with a counting handler."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_file = tmp_path / "counting-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    handler = CountingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        ready_timeout=10,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, handler, ca_file), handler
    finally:
        controller.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[SmtpServer, CountingHandler]]:
    with counting_relay(tmp_path) as running:
        yield running


# -- Building things (the only places that construct them) ------------------------------------


def watching(
    data_dir: Path,
    server: SmtpServer,
    clock: Clock,
    escalation: tuple[str, ...] = (ESCALATION,),
    link_only_concerns: bool = False,
) -> Delivery:
    """A worker that watches concerns and urgent notices and escalates them after 30 minutes;
    with `link_only_concerns`, concerns go as a link and their content waits in readable/."""
    modes = {
        "facilitators": DeliveryMode.FULL,
        "concerns": DeliveryMode.LINK_ONLY if link_only_concerns else DeliveryMode.FULL,
        "escalation": DeliveryMode.FULL,
    }
    return make_delivery(
        data_dir,
        mail_settings(server, escalation=escalation, modes=modes),
        clock=clock,
        public_url="https://forms.example",
        decisions={"escalate_after_minutes": ESCALATE_AFTER, "read_window_days": 4},
    )


def with_member_copies(data_dir: Path, server: SmtpServer) -> Delivery:
    """A worker that sends members the copy they ask for (as test_member_copy builds it)."""
    return make_delivery(data_dir, mail_settings(server), public_url="https://forms.example")


def web_settings(data_dir: Path, site_dir: Path, server: SmtpServer) -> Settings:
    """The server's settings in development, sending through the test relay."""
    return load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(data_dir),
            "FORMS_SITE_DIR": str(site_dir),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_MIN_CONFIRM_SECONDS": "0",
            "FORMS_FACILITATORS": "f1@example.org,f2@example.org",
            "FORMS_SMTP_HOST": server.host,
            "FORMS_SMTP_PORT": str(server.port),
            "FORMS_SMTP_CA_FILE": str(server.ca_file),
        },
    )


def web_app(settings: Settings) -> Starlette:
    return create_app(settings)


def worker_beside(settings: Settings, clock: Clock) -> Delivery:
    """The server's own worker, built as `serve` builds it, on a clock the test moves: another
    process on the same data folder as the app."""
    return open_services(settings, clock)


def urgent_concern(**answers: str) -> Submission:
    concern = submission("concern", about="member", immediate_risk="yes", **answers)
    return replace(concern, urgent=True)


# -- Reading what happened ----------------------------------------------------------------------


def escalations_to(server: SmtpServer, address: str) -> list[str]:
    return [
        str(received.message["Subject"])
        for received in server.handler.received
        if received.rcpt_tos == [address]
        and str(received.message["Subject"]).startswith(ESCALATED_SUBJECT)
    ]


def subjects_to(server: SmtpServer, address: str) -> list[str]:
    return [
        str(received.message["Subject"])
        for received in server.handler.received
        if received.rcpt_tos == [address]
    ]


def path_in_mail_to(server: SmtpServer, address: str, pattern: re.Pattern[str]) -> str:
    """The path of the first link matching `pattern` in a message the relay took for
    `address`."""
    for received in server.handler.received:
        if received.rcpt_tos != [address]:
            continue
        body = received.message.get_body(preferencelist=("plain",))
        match = pattern.search(body.get_content()) if body is not None else None
        if match:
            return match.group(1)
    raise AssertionError(f"no link like {pattern.pattern} in mail to {address}")


def wait_for_subject(server: SmtpServer, address: str, subject: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(subject in each for each in subjects_to(server, address)):
            return True
        time.sleep(0.05)
    return False


# -- 1. A refused escalation is invisible -------------------------------------------------------


async def escalation_refused(
    data_dir: Path, server: SmtpServer, clock: Clock
) -> tuple[Delivery, str]:
    """An urgent concern delivered to the concerns route, picked up by nobody, whose
    escalation the relay refuses (550 at RCPT) when it falls due."""
    server.handler.refused_recipients[ESCALATION] = REFUSED
    delivery = watching(data_dir, server, clock)
    concern = urgent_concern()
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    assert [r.rcpt_tos for r in server.handler.received] == [[a] for a in CONCERNS]
    clock.advance(minutes=31)
    await delivery.worker.run_pass()
    return delivery, concern.reference


@in_own_loop
async def test_a_refused_escalation_fails_health(server: SmtpServer, tmp_path: Path) -> None:
    """Item 1: the relay refuses the escalation address for good (550). Today /healthz stays
    ok. Right: health fails, naming the escalation."""
    clock = Clock()
    delivery, _ = await escalation_refused(tmp_path / "data", server, clock)
    health = delivery.worker.health(clock())
    assert not health.ok, "health is ok although the escalation was refused"
    assert any("escalat" in problem.lower() for problem in health.problems), health.problems


@in_own_loop
async def test_a_refused_escalation_is_listed_by_the_outbox_command(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 1: after the refused escalation, `forms-server outbox` says the outbox is empty
    and exits 0. Right: it exits 1 and names the form by its reference."""
    _, reference = await escalation_refused(tmp_path / "data", server, Clock())
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert any(reference in line for line in listing.stdout.splitlines()), listing.stdout
    assert listing.returncode == 1, listing.stdout


@in_own_loop
async def test_a_refused_escalation_address_is_not_tried_again(
    counted: tuple[SmtpServer, CountingHandler], tmp_path: Path
) -> None:
    """Item 1: a 5xx at RCPT is permanent, yet today the escalation is tried again at every
    pass (once a minute for ever). Right: over ten more passes a minute apart, the refused
    address is asked for once, in all."""
    server, handler = counted
    clock = Clock()
    delivery, _ = await escalation_refused(tmp_path / "data", server, clock)
    assert handler.rcpt_attempts[ESCALATION] == 1
    for _ in range(10):
        clock.advance(minutes=1)
        await delivery.worker.run_pass()
    assert handler.rcpt_attempts[ESCALATION] == 1, handler.rcpt_attempts


@in_own_loop
async def test_one_refused_escalation_address_does_not_resend_to_the_other(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 1: two escalation addresses, the second refused (550). Today the whole escalation
    is retried each pass, so the first address gets it again every minute. Right: it gets
    exactly one escalation."""
    server.handler.refused_recipients[SECOND_ESCALATION] = REFUSED
    clock = Clock()
    delivery = watching(
        tmp_path / "data", server, clock, escalation=(ESCALATION, SECOND_ESCALATION)
    )
    concern = urgent_concern()
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    clock.advance(minutes=31)
    await delivery.worker.run_pass()
    for _ in range(10):
        clock.advance(minutes=1)
        await delivery.worker.run_pass()
    received = escalations_to(server, ESCALATION)
    assert received, "the escalation never reached the first address"
    assert all(concern.reference in subject for subject in received)
    assert len(received) == 1, f"{len(received)} escalations to {ESCALATION}"


# -- 2. Erasure beats "held back" ---------------------------------------------------------------


async def link_only_concern_from_sam(data_dir: Path, server: SmtpServer, clock: Clock) -> str:
    """An urgent concern from a member who gave sam@example.org, sent link-only to the
    concerns route; nobody has picked it up. Returns its reference."""
    delivery = watching(data_dir, server, clock, link_only_concerns=True)
    concern = urgent_concern(contact_preference="email", email=SAM)
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    assert [r.rcpt_tos for r in server.handler.received] == [[a] for a in CONCERNS]
    readable = ReadingRoom(data_dir).get(concern.reference)
    assert readable is not None
    assert readable.sealed
    return concern.reference


@in_own_loop
async def test_the_erase_dry_run_says_the_urgent_concern_would_be_held_back(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 2: `forms-server erase --email` without --yes lists what it would erase and says
    nothing of the hold-back. Right: it says the urgent concern nobody has picked up would be
    held back, next to its reference."""
    reference = await link_only_concern_from_sam(tmp_path / "data", server, Clock())
    dry_run = forms_server(tmp_path, environment(tmp_path), "erase", "--email", SAM)
    lines = dry_run.stdout.splitlines()
    near_held_back = [
        " ".join(lines[max(number - 1, 0) : number + 2])
        for number, line in enumerate(lines)
        if "held back" in line.lower()
    ]
    assert near_held_back, dry_run.stdout
    assert any(reference in text for text in near_held_back), dry_run.stdout


@in_own_loop
async def test_a_held_back_link_only_concern_stays_readable_after_erase(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 2: `erase --yes` says the concern is held back until someone picks it up, yet
    deletes its link-only readable copy, so the lead, the deputy and the escalation contact
    all find "has been deleted". Right: it stays readable while held back."""
    data_dir = tmp_path / "data"
    reference = await link_only_concern_from_sam(data_dir, server, Clock())
    erased = forms_server(tmp_path, environment(tmp_path), "erase", "--email", SAM, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert f"Held back {reference}" in erased.stdout
    readable = ReadingRoom(data_dir).get(reference)
    assert readable is not None
    assert readable.sealed, "the held-back concern's readable copy was erased"


@in_own_loop
async def test_erasing_a_link_only_concern_does_not_say_the_facilitators_have_the_emails(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 2: after `erase --yes` the tool says "The facilitators still have the emails",
    although the concern went link-only and no mailbox holds its answers. Right: it does not
    say so."""
    await link_only_concern_from_sam(tmp_path / "data", server, Clock())
    erased = forms_server(tmp_path, environment(tmp_path), "erase", "--email", SAM, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "The facilitators still have the emails" not in erased.stdout


@in_own_loop
async def test_a_held_back_erasure_completes_when_the_concern_is_picked_up(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 2: an erasure held back because nobody picked up the urgent concern must complete
    at pick-up. Today nothing of it is carried out later: no erasure is ever recorded for the
    concern (its readable copy went at once, see the test above). Right: once someone has
    picked it up and the worker has run (an hour later, so hourly work runs too), the readable
    content is gone and the erasure ledger has a line for the form."""
    data_dir = tmp_path / "data"
    clock = Clock()
    reference = await link_only_concern_from_sam(data_dir, server, clock)
    erased = forms_server(tmp_path, environment(tmp_path), "erase", "--email", SAM, "--yes")
    assert erased.returncode == 0, erased.stderr
    # Picked up by another process (the web app): the worker finds it on disk.
    Acknowledgements(data_dir).record(reference, "concern", CONCERNS[0], clock())
    worker = watching(data_dir, server, clock, link_only_concerns=True)
    clock.advance(hours=1, minutes=1)
    await worker.worker.run_pass()
    keep_house(worker.files, clock(), worker.housekeeping.replay_window)
    readable = ReadingRoom(data_dir).get(reference)
    assert readable is None or readable.sealed == ""
    assert worker.store.ledger.erasure_of(reference) is not None, "no erasure recorded"


# -- 9. The loop after a concern ----------------------------------------------------------------


@in_own_loop
async def test_a_pick_up_after_an_escalation_tells_the_escalation_contact(
    server: SmtpServer, tmp_path: Path, site_dir: Path
) -> None:
    """Item 9: an urgent concern escalates; then a recipient presses "mark as being dealt
    with" in the web app. Today only the route's other addresses get "In hand". Right: the
    escalation contact, who was asked to act, is told too."""
    settings = web_settings(tmp_path / "data", site_dir, server)
    (escalation,) = settings.mail.escalation
    clock = Clock()
    worker = worker_beside(settings, clock)
    concern = urgent_concern()
    await worker.worker.receive(concern)
    await worker.worker.run_pass()
    clock.advance(minutes=31)
    await worker.worker.run_pass()
    assert len(escalations_to(server, escalation)) == 1
    recipient = settings.mail.concerns[0]
    link = path_in_mail_to(server, recipient, ACKNOWLEDGE_PATH)
    in_hand = f"In hand: ref {concern.reference}"
    others = [address for address in settings.mail.concerns if address != recipient]
    with TestClient(web_app(settings), base_url=BASE_URL, follow_redirects=False) as client:
        marked = client.post(link, data={"token": link.rsplit("/", 1)[1]})
        assert marked.status_code == 200
        # The notices wait on disk until the app's worker (woken by the pick-up) sends them.
        assert all(wait_for_subject(server, address, in_hand) for address in others)
        assert wait_for_subject(server, escalation, in_hand), subjects_to(server, escalation)
    assert recipient not in [
        r.rcpt_tos[0] for r in server.handler.received if in_hand in str(r.message["Subject"])
    ]


@in_own_loop
async def test_a_members_delete_of_a_held_back_notice_happens_at_pick_up(
    server: SmtpServer, tmp_path: Path, site_dir: Path
) -> None:
    """Item 9: a member who left early and is not safe asks, from their copy's link, to delete
    the notice before anyone has picked it up. The page says it is deleted once someone has
    marked it; today nothing ever deletes it. Right: once a recipient picks it up (their
    acknowledgement link) and the worker has run, the kept record is gone and the erasure
    ledger has it."""
    settings = web_settings(tmp_path / "data", site_dir, server)
    clock = Clock()
    worker = worker_beside(settings, clock)
    notice = submission(
        "leave-left-early",
        safe_now="no",
        reach_unsafe="07700 900982",
        copy="link",
        copy_email_link=MEMBER,
    )
    notice = replace(notice, urgent=True)
    await worker.worker.receive(notice)
    await worker.worker.run_pass()
    assert worker.store.get(notice.reference) is not None
    own_link = path_in_mail_to(server, MEMBER, YOURS_PATH)
    recipient = settings.mail.facilitators[0]
    acknowledge = path_in_mail_to(server, recipient, ACKNOWLEDGE_PATH)
    with TestClient(web_app(settings), base_url=BASE_URL, follow_redirects=False) as client:
        asked = client.post(
            own_link, data={"token": own_link.rsplit("/", 1)[1], "action": "delete"}
        )
        assert asked.status_code == 200
        assert "We cannot delete it yet" in asked.text
        marked = client.post(acknowledge, data={"token": acknowledge.rsplit("/", 1)[1]})
        assert marked.status_code == 200
    await worker.worker.run_pass()
    clock.advance(hours=1, minutes=1)
    await worker.worker.run_pass()
    keep_house(worker.files, clock(), worker.housekeeping.replay_window)
    assert worker.store.get(notice.reference) is None, "the member's delete was never done"
    assert worker.store.ledger.erasure_of(notice.reference) is not None


@in_own_loop
async def test_an_escalated_note_nobody_picks_up_goes_with_the_forms_retention(
    server: SmtpServer, tmp_path: Path
) -> None:
    """Item 9: an urgent concern escalates and nobody ever picks it up. Today its watch note
    (data/watch/<REF>.json) stays for ever. Right: once the concern's retention has passed,
    the hourly housekeeping and a pass remove it."""
    data_dir = tmp_path / "data"
    clock = Clock()
    delivery = watching(data_dir, server, clock)
    concern = urgent_concern()
    await delivery.worker.receive(concern)
    await delivery.worker.run_pass()
    clock.advance(minutes=31)
    await delivery.worker.run_pass()
    assert len(escalations_to(server, ESCALATION)) == 1
    note = data_dir / "watch" / f"{concern.reference}.json"
    assert note.exists()
    clock.advance(days=default_retention_days()["concern"] + 1)
    keep_house(delivery.files, clock(), delivery.housekeeping.replay_window)
    await delivery.worker.run_pass()
    assert not note.exists(), "the escalated note outlived the concern's retention"


# -- 12. A refused member's copy and `forms-server outbox` ----------------------------------------


@in_own_loop
async def test_a_refused_members_copy_is_not_logged_as_in_the_outbox(
    server: SmtpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 12: the relay refuses the member's copy address (550). Today the log says "It is
    kept; see `forms-server outbox`", and `forms-server outbox` then says every form was
    delivered. Right: the log sends the host to `forms-server outbox` only if it lists the
    form."""
    caplog.set_level(logging.INFO, logger="forms_server")
    server.handler.refused_recipients[MEMBER] = "550 No such user"
    delivery = with_member_copies(tmp_path / "data", server)
    item = submission("leave-missing", copy="link", copy_email_link=MEMBER)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    assert delivery.outbox.is_delivered(item.reference)
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    pointing = [
        record.getMessage()
        for record in caplog.records
        if "forms-server outbox" in record.getMessage()
    ]
    listed = item.reference in listing.stdout
    assert listed or not pointing, f"log: {pointing}; outbox: {listing.stdout!r}"
