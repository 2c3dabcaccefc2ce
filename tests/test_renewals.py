"""Consent that never lapses unnoticed: the facilitators' weekly list (when the group wants it),
and members' reminders only when the group renews consent; signing again from the reminder
replaces the old record. Against a real SMTP server, with a controlled clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.delivery.member_copy import MEMBER_COPY_SENDER
from forms_server.delivery.renewals import REMIND_DAYS_BEFORE
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.links import Links
from forms_server.mail.messages import RENEWAL_SUBJECT
from forms_server.services import Services as Delivery
from forms_server.storage.ledger import ErasureReason
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import FACILITATORS, mail_settings, make_delivery
from tests.test_views import (
    BASE_URL,
    make_app,
    post,
    reference_from,
    send,
    soup_of,
    store_of,
    valid_answers,
    wait_until_delivered,
)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
MEMBER = "robin.member@example.net"
DAYS_IN_18_MONTHS = 548  # decisions.days_in_months(18)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def consent_signed(days_ago: int, email: str = MEMBER, name: str = "Robin Quill") -> Submission:
    return Submission(
        reference=new_reference(),
        form_kind="consent",
        answers={**valid_answers(FORMS["consent"]), "email": email, "name": name},
        received_at=NOW - timedelta(days=days_ago),
        urgent=False,
        guidelines_version="abc123",
    )


def delivery_for(
    data_dir: Path,
    server: SmtpServer,
    clock: Clock,
    renewal_months: int | None,
    expiring_email_days: int | None,
) -> Delivery:
    # Consent kept 24 months, so an 18-month renewal comes first.
    return make_delivery(
        data_dir,
        mail_settings(server),
        clock=clock,
        public_url="https://forms.example",
        decisions={
            "retention_months": {"consent": 24, "leave": 6, "concern": 6},
            "consent_renewal_months": renewal_months,
            "expiring_consents_email_days": expiring_email_days,
        },
    )


async def check_renewals(delivery: Delivery, now: datetime) -> None:
    """The renewals job alone, as the worker runs it each hour."""
    (job,) = [job for job in delivery.worker.jobs if job.name == "renewals"]
    await job.run(now)


def to(server: SmtpServer, address: str) -> list[bytes]:
    return [r.raw for r in server.handler.received if r.rcpt_tos == [address]]


@in_own_loop
async def test_a_member_is_reminded_once_a_month_before_renewal_discreetly(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_for(tmp_path, server, clock, renewal_months=18, expiring_email_days=None)
    due = consent_signed(days_ago=DAYS_IN_18_MONTHS - 10)
    later = consent_signed(days_ago=DAYS_IN_18_MONTHS - REMIND_DAYS_BEFORE - 5, email="x@e.org")
    delivery.store.add_delivered_many([due, later], NOW)
    await check_renewals(delivery, NOW)
    (raw,) = to(server, MEMBER)
    text = raw.decode()
    assert f"Subject: {RENEWAL_SUBJECT}" in text
    assert f"From: {MEMBER_COPY_SENDER}" in text
    assert "Harbour" not in text
    assert "Robin" not in text
    assert re.search(r"https://forms\.example/forms/renew/\S+", text)
    assert to(server, "x@e.org") == []  # not yet due
    record = delivery.store.get(due.reference)
    assert record is not None
    assert record.reminded_at == NOW
    # An hour later, nothing is sent twice.
    clock.now = NOW + timedelta(hours=2)
    await check_renewals(delivery, clock.now)
    assert len(to(server, MEMBER)) == 1


@in_own_loop
async def test_without_a_renewal_period_members_get_nothing(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_for(tmp_path, server, clock, renewal_months=None, expiring_email_days=None)
    delivery.store.add_delivered_many([consent_signed(days_ago=725)], NOW)  # deleted in 5 days
    await check_renewals(delivery, NOW)
    assert server.handler.received == []


@in_own_loop
async def test_the_facilitators_weekly_list_has_references_and_dates_only(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_for(tmp_path, server, clock, renewal_months=None, expiring_email_days=21)
    soon = consent_signed(days_ago=720)  # its record goes in 10 days
    not_soon = consent_signed(days_ago=30, email="other@example.net", name="Other Person")
    delivery.store.add_delivered_many([soon, not_soon], NOW)
    await delivery.worker.run_pass()  # the check, then the notice it wrote, in one pass
    for facilitator in FACILITATORS:
        (raw,) = to(server, facilitator)
        text = raw.decode()
        assert "Consents that lapse soon" in text
        assert soon.reference in text
        assert not_soon.reference not in text
        assert "Robin" not in text
        assert MEMBER not in text
    # A week has not passed: no second list.
    clock.now = NOW + timedelta(days=3)
    await delivery.worker.run_pass()
    assert len(to(server, FACILITATORS[0])) == 1
    clock.now = NOW + timedelta(days=7, hours=1)
    await delivery.worker.run_pass()
    assert len(to(server, FACILITATORS[0])) == 2


# -- Signing again from the reminder's link ---------------------------------------------------


@pytest.fixture
def app(site_dir: Path, tmp_path: Path) -> Starlette:
    return make_app(site_dir, tmp_path / "data")


def test_signing_again_from_the_link_replaces_the_old_record(app: Starlette) -> None:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        form = FORMS["consent"]
        answers = {**valid_answers(form), "name": "Robin Quill", "email": MEMBER}
        check_page = post(client, "/forms/consent/", answers)
        sent = send(client, check_page)
        old = reference_from(client, sent.headers["location"])
        wait_until_delivered(app, old)
        link = Links(app.state.forms.signer, "").renew(old)

        page = soup_of(client.get(link).text)
        assert page.select_one("#name")["value"] == "Robin Quill"  # type: ignore[index]
        assert page.select_one("#email")["value"] == MEMBER  # type: ignore[index]
        assert page.select_one("#signature")["value"] == ""  # type: ignore[index]
        assert page.select("input[type=checkbox][checked]") == []
        renews = page.select_one('input[name="renews"]')
        assert renews is not None

        again = {**answers, "signature": "Robin Quill", "renews": str(renews["value"])}
        check_again = post(client, "/forms/consent/", again)
        signed = send(client, check_again)
        new = reference_from(client, signed.headers["location"])
        wait_until_delivered(app, new)
        store = store_of(app)
        assert store.get(old) is None
        renewed = store.get(new)
        assert renewed is not None
        assert renewed.kept["name"] == "Robin Quill"
        erasure = store.ledger.erasure_of(old)
        assert erasure is not None
        assert erasure.reason == ErasureReason.REPLACED


def test_a_renewal_link_for_a_record_no_longer_kept_is_refused(app: Starlette) -> None:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        link = Links(app.state.forms.signer, "").renew(new_reference())
        page = client.get(link)
        assert page.status_code == 400
        assert "This link no longer works" in page.text
        # An altered `renews` field replaces nothing: the form is sent as a new one.
        answers = {**valid_answers(FORMS["consent"]), "renews": "not-a-token"}
        check_page = post(client, "/forms/consent/", answers)
        signed = send(client, check_page)
        assert signed.status_code == 303
