"""The privacy notice and the record of processing say what the code does: checked against the
files the server really writes, the form definitions and the group's decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.config.decisions import decisions_from
from forms_server.forms.definitions import FORMS, PRIVACY_GROUPS
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.forms.wording import privacy_collected
from forms_server.handbook.processing import (
    HELD_IN_THE_CLEAR,
    OUTBOX_IN_THE_CLEAR,
    READABLE_IN_THE_CLEAR,
    RECORD_IN_THE_CLEAR,
    WATCH_IN_THE_CLEAR,
    holdings,
    parts_of,
)
from forms_server.services import Services as Delivery
from forms_server.storage.held_erasures import HeldErasure, HeldErasures
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.watch import Watch, Watched
from tests import test_link_only
from tests.data_files import modes
from tests.decided import DECIDED, write_group_config
from tests.test_cli import environment, forms_server
from tests.test_decisions import text_of
from tests.test_delivery import mail_settings, make_delivery
from tests.test_link_only import links_from_catcher, send_concern
from tests.test_views import valid_answers

# The app of the link-only tests: concerns go link-only, with the group's decisions set.
decided_settings = test_link_only.decided_settings
app = test_link_only.app
client = test_link_only.client

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
MEMBER = "robin.member@example.net"


def every_form(copy_to: str = MEMBER) -> list[Submission]:
    submissions = []
    for kind, form in FORMS.items():
        answers: dict[str, str | list[str]] = dict(valid_answers(form))
        if any(spec.name == "copy_email_link" for spec in form.fields):
            answers |= {"copy": "link", "copy_email_link": copy_to}
        submissions.append(
            Submission(
                new_reference(), kind, answers, NOW, False, "v1" if kind == "consent" else None
            )
        )
    return submissions


def delivery_without_relay(data_dir: Path) -> Delivery:
    return make_delivery(data_dir, mail_settings(None))


def test_a_kept_record_holds_in_the_clear_exactly_what_the_notice_says(tmp_path: Path) -> None:
    delivery = delivery_without_relay(tmp_path)
    delivery.store.add_delivered_many(every_form(), NOW)
    raw = json.loads((tmp_path / "submissions.json").read_text())
    records = list(raw["_default"].values())
    assert len(records) == len(FORMS)
    for record in records:
        assert set(record) - {"sealed"} == set(RECORD_IN_THE_CLEAR)
        kept = {spec.name for spec in FORMS[record["form_kind"]].fields if spec.kept}
        if record["sealed"] is None:  # a concern keeps nothing sealed
            assert kept == set()
            continue
        opened = delivery.store.sealer.open(record["reference"], record["sealed"])
        assert set(opened["kept"]) == kept, record["form_kind"]


def test_a_form_on_its_way_holds_in_the_clear_exactly_what_the_notice_says(
    tmp_path: Path,
) -> None:
    delivery = delivery_without_relay(tmp_path)
    for submission in every_form():
        delivery.worker.intake.add(submission)
    files = list((tmp_path / "outbox" / "pending").glob("*.json"))
    assert len(files) == len(FORMS)
    for path in files:
        text = path.read_text()
        assert set(json.loads(text)) - {"sealed"} == set(OUTBOX_IN_THE_CLEAR)
        assert MEMBER not in text  # the copy's address is sealed with the answers
        assert "Sam Example" not in text


def test_a_watched_form_holds_in_the_clear_exactly_what_the_notice_says(tmp_path: Path) -> None:
    watch = Watch(tmp_path)
    reference = new_reference()
    watch.start(
        Watched(
            reference=reference,
            form_kind="concern",
            received_at=NOW,
            urgent=True,
            sealed="sealed",
            escalate_at=NOW + timedelta(minutes=30),
        )
    )
    stored = json.loads(watch.path(reference).read_text())
    assert set(stored) - {"sealed"} == set(WATCH_IN_THE_CLEAR)


def test_a_link_only_form_holds_in_the_clear_exactly_what_the_notice_says(
    tmp_path: Path,
) -> None:
    room = ReadingRoom(tmp_path, timedelta(days=4))
    reference = new_reference()
    room.keep(reference, "concern", False, NOW, "sealed")
    room.read(reference, "lead@example.org", NOW)
    stored = json.loads(room.path(reference).read_text())
    assert set(stored) - {"sealed"} == set(READABLE_IN_THE_CLEAR)


def test_the_privacy_notice_states_every_holding_from_the_code(site_dir: Path) -> None:
    text = text_of(site_dir, "about/privacy.md")
    decisions = decisions_from({})
    for holding in holdings(decisions, 7):
        for phrase in (holding.what, *parts_of(holding.kept_for), *holding.sealed, *holding.clear):
            assert phrase in text, phrase
    for group in PRIVACY_GROUPS:
        for phrase in privacy_collected(group):
            assert phrase in text, phrase


def test_the_record_of_processing_comes_from_the_same_sources(tmp_path: Path) -> None:
    config = write_group_config(tmp_path / "config", DECIDED)
    env = environment(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
    result = forms_server(tmp_path, env, "records")
    assert result.returncode == 0, result.stderr
    record = result.stdout
    assert "# Record of processing" in record
    for basis in DECIDED["lawful_basis"].values():
        assert basis in record
    assert DECIDED["email_stored_where"] in record
    assert DECIDED["mailbox_retention"] in record
    assert "the safeguarding lead and deputy" in record
    decisions = decisions_from({"decisions": DECIDED})
    for holding in holdings(decisions, 7):
        assert holding.what in record
        assert holding.kept_for in record
    assert "24 months from when you send it" in record
    for group in PRIVACY_GROUPS:
        for phrase in privacy_collected(group):
            assert phrase in record, phrase


def test_a_held_erasure_holds_in_the_clear_exactly_what_the_notice_says(tmp_path: Path) -> None:
    held = HeldErasures(tmp_path)
    reference = new_reference()
    held.hold(HeldErasure(reference, "concern", ErasureReason.ERASED, NOW, NOW))
    stored = json.loads(held.files.path(reference).read_text())
    assert set(stored) == set(HELD_IN_THE_CLEAR)


def test_every_folder_and_file_the_server_writes_is_its_own_users_alone(
    app: Starlette, client: TestClient, tmp_path: Path
) -> None:
    """The record of processing says data files and folders are 0600 and 0700: every one the
    server makes while a form goes through, folders made on the way included."""
    reference = send_concern(client)
    links_from_catcher(app, reference, 2)
    folders, files = modes(tmp_path / "data")
    assert len(folders) > 3, "the form went through"
    assert files
    assert folders == dict.fromkeys(folders, "0o700")
    assert files == dict.fromkeys(files, "0o600")
