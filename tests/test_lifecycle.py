"""One test for each rule of the lifecycle (forms_server/lifecycle.py): a rule is a promise
made where two parts of a form's life meet. Most rules are tested where their failure was
found (the table below says where); the rest are tested here, through real files and a real
relay. The first test holds the table to the rules, so a new rule cannot go untested."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.config.decisions import DeliveryMode
from forms_server.delivery.housekeeping import keep_house
from forms_server.delivery.read_windows import end_read_windows
from forms_server.lifecycle import (
    RULES,
    SENDING_RULES,
    Batch,
    Event,
    FloodLimits,
    SendState,
    how_to_send,
)
from forms_server.services import Services
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.outbox_items import ItemStatus
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import CONCERNS, FACILITATORS, mail_settings, make_delivery, submission
from tests.test_delivery_faults import Clock

TESTS = Path(__file__).resolve().parent

# Each rule, by its name, and the test that holds it ("file::test").
RULE_TESTS = {
    "a concern or urgent notice waits to be picked up": (
        "test_lifecycle.py::test_a_delivered_concern_waits_to_be_picked_up_and_nothing_else_does"
    ),
    "anything else is done once delivered": (
        "test_escalation.py::test_an_ordinary_form_is_never_watched"
    ),
    "an urgent form that reached nobody escalates at once": (
        "test_escalation.py::test_an_urgent_notice_that_reached_nobody_escalates_at_once"
    ),
    "another form that reached nobody waits for the host": (
        "test_lifecycle.py::test_an_ordinary_form_that_reached_nobody_waits_for_the_host"
    ),
    "a damaged file that says urgent escalates at once": (
        "test_issue19_storage.py::test_a_truncated_urgent_concern_is_quarantined_and_escalated_at_once"
    ),
    "another damaged file waits for the host": (
        "test_lifecycle.py::test_a_damaged_ordinary_file_waits_for_the_host"
    ),
    "a form picked up in time never escalates": (
        "test_escalation.py::test_a_concern_picked_up_in_time_never_escalates"
    ),
    "a form nobody picked up in time goes to the escalation contact": (
        "test_escalation.py::"
        "test_an_urgent_concern_nobody_picks_up_escalates_once_on_time_even_after_a_restart"
    ),
    "a pick-up ends a held erasure": (
        "test_lifecycle.py::test_a_pick_up_ends_a_held_erasure_and_those_it_reached_are_told"
    ),
    "a pick-up tells everyone it reached, the escalation contact included": (
        "test_issue19_lifecycle.py::test_a_pick_up_after_an_escalation_tells_the_escalation_contact"
    ),
    "a pick-up made elsewhere ends a held erasure too": (
        "test_issue19_lifecycle.py::test_a_held_back_erasure_completes_when_the_concern_is_picked_up"
    ),
    "a pick-up made elsewhere stops the timer": (
        "test_escalation.py::"
        "test_an_urgent_concern_nobody_picks_up_escalates_once_on_time_even_after_a_restart"
    ),
    "hold-back beats erasure": (
        "test_issue19_lifecycle.py::test_a_held_back_link_only_concern_stays_readable_after_erase"
    ),
    "a form on its way is erased once delivered, when asked again": (
        "test_lifecycle.py::test_a_form_still_on_its_way_waits_for_its_delivery_to_be_erased"
    ),
    "anything else is erased when the host asks": (
        "test_rights.py::test_erase_removes_one_person_and_leaves_everyone_else"
    ),
    "a member's delete of a form nobody has picked up happens at pick-up": (
        "test_issue19_lifecycle.py::test_a_members_delete_of_a_held_back_notice_happens_at_pick_up"
    ),
    "a member's delete is done at once": (
        "test_member_copy.py::test_the_link_deletes_a_leave_notice"
    ),
    "a hold-back keeps the form readable by everyone it went to": (
        "test_lifecycle.py::test_a_concern_nobody_has_picked_up_stays_readable_past_its_window"
    ),
    "link-only content goes when its window ends": (
        "test_link_only.py::test_the_content_goes_when_the_window_ends_and_the_reads_stay"
    ),
    "a held erasure completes when retention ends, at the latest": (
        "test_lifecycle.py::test_a_held_erasure_completes_when_retention_ends_at_the_latest"
    ),
    "nothing outlives its retention, escalated or not": (
        "test_issue19_lifecycle.py::"
        "test_an_escalated_note_nobody_picks_up_goes_with_the_forms_retention"
    ),
    # How a message goes.
    "link-only and encrypted mail is never put in a digest": (
        "test_lifecycle.py::test_link_only_mail_is_never_put_in_a_digest"
    ),
    "urgent never waits for a digest": (
        "test_issue19_worker.py::test_an_urgent_concern_after_a_flood_goes_alone_in_the_next_pass"
    ),
    "a flood of urgent forms cannot bury the real one: urgent-only digests, every minute": (
        "test_lifecycle.py::test_past_its_own_rate_urgent_forms_come_in_urgent_only_digests"
    ),
    "a flood cannot bury an inbox: past the hourly rate, ordinary forms come together": (
        "test_delivery_faults.py::test_past_the_hourly_rate_forms_come_together_in_one_digest"
    ),
    "anything else goes on its own": (
        "test_delivery.py::test_the_envelope_is_exactly_the_configured_recipients"
    ),
    "asking is not picking it up; the member hears of it only if they asked": (
        "test_conversation.py::"
        "test_a_member_who_chose_to_be_told_gets_only_there_is_a_message_for_you"
    ),
    "a member's delete of a conversation nobody has picked up keeps it for the group": (
        "test_conversation.py::"
        "test_a_delete_before_anyone_picked_the_concern_up_keeps_the_answer_for_the_group"
    ),
    "a member's delete of a conversation is done at once": (
        "test_conversation.py::test_the_member_can_delete_the_conversation"
    ),
    "a hold-back keeps the conversation too": (
        "test_conversations.py::"
        "test_a_quiet_conversation_about_a_concern_nobody_picked_up_waits_for_the_pick_up"
    ),
    "a quiet conversation ends": (
        "test_conversations.py::"
        "test_a_quiet_conversation_about_a_concern_nobody_picked_up_waits_for_the_pick_up"
    ),
    "an answer changes nothing else": (
        "test_conversation.py::"
        "test_an_anonymous_member_reads_a_question_and_answers_every_recipient_by_their_route"
    ),
}


def test_every_rule_has_its_test_and_every_test_named_exists() -> None:
    rules = [rule.name for rule in RULES] + [rule.name for rule in SENDING_RULES]
    assert len(rules) == len(set(rules)), "two rules share a name"
    assert set(rules) == set(RULE_TESTS)
    for where in RULE_TESTS.values():
        file, name = where.split("::")
        tree = ast.parse((TESTS / file).read_text(encoding="utf-8"))
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert name in defined, where


# -- The rules tested here ----------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


def watching(data_dir: Path, server: SmtpServer, clock: Clock, **modes: DeliveryMode) -> Services:
    mail = mail_settings(
        server,
        escalation=("escalation@example.org",),
        modes={
            "facilitators": DeliveryMode.FULL,
            "concerns": DeliveryMode.FULL,
            "escalation": DeliveryMode.FULL,
        }
        | modes,
    )
    return make_delivery(data_dir, mail, clock=clock, public_url="https://forms.example")


def subjects_to(server: SmtpServer, address: str) -> list[str]:
    return [str(r.message["Subject"]) for r in server.handler.received if r.rcpt_tos == [address]]


@in_own_loop
async def test_a_delivered_concern_waits_to_be_picked_up_and_nothing_else_does(
    server: SmtpServer, tmp_path: Path
) -> None:
    services = watching(tmp_path, server, Clock())
    concern, leave = submission("concern", about="member"), submission("leave-missing")
    for form in (concern, leave):
        await services.worker.receive(form)
    await services.worker.run_pass()
    watched = services.files.watch.get(concern.reference)
    assert watched is not None
    # It knows who it reached, so a pick-up can tell them.
    assert set(watched.reached) == set(CONCERNS)
    assert services.files.watch.get(leave.reference) is None


@in_own_loop
async def test_an_ordinary_form_that_reached_nobody_waits_for_the_host(
    server: SmtpServer, tmp_path: Path
) -> None:
    server.handler.refused_recipients.update(dict.fromkeys(FACILITATORS, "550 5.1.1 No such user"))
    services = watching(tmp_path, server, Clock())
    leave = submission("leave-missing")
    await services.worker.receive(leave)
    await services.worker.run_pass()
    await services.worker.run_pass()
    failed = services.outbox.read(leave.reference)
    assert failed is not None
    assert failed.status is ItemStatus.FAILED
    assert services.files.watch.all() == []
    assert subjects_to(server, "escalation@example.org") == []
    assert "1 form(s) could not be delivered." in services.worker.health(datetime.now(UTC)).problems


@in_own_loop
async def test_a_damaged_ordinary_file_waits_for_the_host(
    server: SmtpServer, tmp_path: Path
) -> None:
    services = watching(tmp_path, server, Clock())
    leave = submission("leave-missing")
    assert services.worker.intake.add(leave)
    path = services.outbox.pending_path(leave.reference)
    path.write_bytes(path.read_bytes()[:120])
    await services.worker.run_pass()
    assert [name.split(".json")[0] for name in services.outbox.quarantined()] == [leave.reference]
    assert services.files.watch.all() == []
    assert server.handler.received == []


@in_own_loop
async def test_a_pick_up_ends_a_held_erasure_and_those_it_reached_are_told(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    services = watching(tmp_path, server, clock)
    concern = replace(submission("concern", about="member", immediate_risk="yes"), urgent=True)
    await services.worker.receive(concern)
    await services.worker.run_pass()
    held = services.files.happen(concern.reference, Event.ERASE_ASKED, ErasureReason.ERASED)
    assert held is not None
    assert held.held is not None
    assert held.held.until == concern.received_at + timedelta(days=6 * 30 + 3)  # 6 months
    assert services.store.ledger.erasure_of(concern.reference) is None
    services.files.pick_up(concern.reference, "concern", CONCERNS[0])
    assert services.files.held.get(concern.reference) is None
    assert services.store.get(concern.reference) is None
    assert services.store.ledger.erasure_of(concern.reference) is not None
    await services.worker.run_pass()
    # The other recipient is told it is in hand, then that it is erased; nobody is told twice.
    assert subjects_to(server, CONCERNS[1])[1:] == [
        f"Harbour: In hand: ref {concern.reference}",
        f"Harbour: Erased: ref {concern.reference}",
    ]
    assert subjects_to(server, CONCERNS[0])[1:] == [f"Harbour: Erased: ref {concern.reference}"]


@in_own_loop
async def test_a_form_still_on_its_way_waits_for_its_delivery_to_be_erased(
    tmp_path: Path,
) -> None:
    services = make_delivery(tmp_path, mail_settings(None))  # nothing listens: it waits
    consent = submission("consent")
    await services.worker.receive(consent)
    report = services.rights.erase(services.rights.find(reference=consent.reference))
    assert report.erased == []
    ((_, why),) = report.held_back
    assert "still being delivered" in why
    item = services.outbox.read(consent.reference)
    assert item is not None
    assert item.sealed  # still there, to be delivered


@in_own_loop
async def test_a_concern_nobody_has_picked_up_stays_readable_past_its_window(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    services = watching(tmp_path, server, clock, concerns=DeliveryMode.LINK_ONLY)
    concern = submission("concern", about="member")
    await services.worker.receive(concern)
    await services.worker.run_pass()
    readable = services.files.reading.get(concern.reference)
    assert readable is not None
    after_the_window = readable.until + timedelta(minutes=1)
    end_read_windows(services.files, after_the_window)
    kept = services.files.reading.get(concern.reference)
    assert kept is not None
    assert kept.sealed, "nobody has picked it up: everyone it went to can still read it"
    assert services.files.readable_now(kept, after_the_window)
    services.files.pick_up(concern.reference, "concern", CONCERNS[0])
    end_read_windows(services.files, after_the_window)
    gone = services.files.reading.get(concern.reference)
    assert gone is not None
    assert gone.sealed == ""


@in_own_loop
async def test_a_held_erasure_completes_when_retention_ends_at_the_latest(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    services = watching(tmp_path, server, clock)
    notice = replace(
        submission("leave-left-early", safe_now="no", reach_unsafe="07700 900982"), urgent=True
    )
    await services.worker.receive(notice)
    await services.worker.run_pass()
    outcome = services.files.happen(notice.reference, Event.MEMBER_DELETE, ErasureReason.ERASED)
    assert outcome is not None
    assert outcome.held is not None
    keep_house(services.files, outcome.held.until - timedelta(days=1), timedelta(hours=4))
    assert services.files.held.get(notice.reference) is not None
    assert services.store.get(notice.reference) is not None
    keep_house(services.files, outcome.held.until + timedelta(minutes=1), timedelta(hours=4))
    assert services.files.held.get(notice.reference) is None
    assert services.store.get(notice.reference) is None
    assert services.files.watch.get(notice.reference) is None
    erasure = services.store.ledger.erasure_of(notice.reference)
    assert erasure is not None
    assert erasure.reason == ErasureReason.ERASED


def test_link_only_mail_is_never_put_in_a_digest() -> None:
    limits = FloodLimits(alone_per_hour=3, urgent_alone_per_hour=2)
    for mode in (DeliveryMode.LINK_ONLY, DeliveryMode.ENCRYPTED):
        for urgent in (False, True):
            flooded = SendState(urgent, mode, sent_last_hour=100, urgent_alone_last_hour=100)
            assert how_to_send(flooded, limits).batch is Batch.ALONE
    full = SendState(False, DeliveryMode.FULL, sent_last_hour=100, urgent_alone_last_hour=0)
    assert how_to_send(full, limits).batch is Batch.DIGEST


@in_own_loop
async def test_past_its_own_rate_urgent_forms_come_in_urgent_only_digests(
    server: SmtpServer, tmp_path: Path
) -> None:
    """A flood of forms marked urgent: each address gets them alone up to its urgent rate,
    then in urgent-only digests every minute; the ordinary forms never join those."""
    clock = Clock()
    services = make_delivery(tmp_path, mail_settings(server), clock=clock, urgent_alone_per_hour=2)
    flood = [
        replace(submission("concern", about="member", immediate_risk="yes"), urgent=True)
        for _ in range(5)
    ]
    ordinary = submission("concern", about="member")
    for form in [*flood, ordinary]:
        await services.worker.receive(form)
    await services.worker.run_pass()
    subjects = subjects_to(server, CONCERNS[0])
    # Two urgent ones alone, one urgent-only digest of the other three, the ordinary alone.
    assert len(subjects) == 4, subjects
    assert sum("URGENT - ref" in subject for subject in subjects) == 2
    assert "Harbour: 3 forms in one email - 3 URGENT" in subjects
    assert any(ordinary.reference in subject for subject in subjects)
    # The next urgent one within the minute waits for the next urgent digest, not longer.
    real = replace(submission("concern", about="member", immediate_risk="yes"), urgent=True)
    await services.worker.receive(real)
    await services.worker.run_pass()
    assert len(subjects_to(server, CONCERNS[0])) == 4
    # The operator is told of the flood (by /healthz's details and `forms-server outbox`).
    health = services.worker.health(clock())
    assert health.in_digests == 1
    assert any(problem.startswith("A flood: 1 form(s)") for problem in health.problems)
    clock.advance(minutes=1)
    await services.worker.run_pass()
    latest = subjects_to(server, CONCERNS[0])[-1]
    assert latest == "Harbour: 1 forms in one email - 1 URGENT"
    assert services.outbox.is_delivered(real.reference)
