"""Issue 19, storage and start-up faults reproduced on today's main (items 6, 7, 8, 10, 11b,
11c): each test asserts the right behaviour, against real files, a real relay, a real tmpfs and
the real command line."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from forms_server.config.env import Settings, load_settings
from forms_server.forms.reference import new_reference
from forms_server.rights import Rights
from forms_server.services import Services as Delivery
from forms_server.services import open_services
from forms_server.storage import store_file as store_module
from forms_server.storage.acknowledgements import Acknowledgements
from forms_server.storage.outbox import Outbox
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.records import SubmissionStore
from forms_server.storage.sealing import Sealer
from forms_server.storage.store_file import META_TABLE, AtomicJSONStorage, StoreError
from forms_server.web.app import create_app
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_cli import environment, forms_server
from tests.test_delivery import DATA_KEY, mail_settings, make_delivery, settings_for, submission
from tests.test_delivery_faults import Clock, remount
from tests.test_delivery_faults import small_disk as small_disk  # the fixture
from tests.test_escalation import escalations, watching_delivery

NEW_KEY = secrets.token_bytes(32)
GARBAGE = bytes(range(256)) * 4


# -- The few places that build things -----------------------------------------------------------


def open_store(data_dir: Path, keys: list[bytes] | None = None) -> SubmissionStore:
    return SubmissionStore(data_dir, keys or [DATA_KEY])


def open_rights(data_dir: Path, keys: list[bytes]) -> Rights:
    settings = settings_for(data_dir, mail_settings(None))
    keyed = replace(
        settings,
        data_keys=tuple(Secret(base64.urlsafe_b64encode(key).decode()) for key in keys),
    )
    return open_services(keyed).rights


def open_outbox(data_dir: Path) -> Outbox:
    return Outbox(data_dir)


def receiving_delivery(data_dir: Path) -> Delivery:
    """Delivery that takes forms into the outbox (no relay: nothing is sent)."""
    return make_delivery(data_dir, mail_settings(None))


def escalating_delivery(data_dir: Path, relay: SmtpServer) -> Delivery:
    """Delivery to a real relay, with the escalation contact (tests/test_escalation.py)."""
    return watching_delivery(data_dir, relay, Clock())


def app_settings(site_dir: Path, data_dir: Path, relay: SmtpServer) -> Settings:
    """As conftest's `settings`, on a data folder of the test's own, with a real relay."""
    environ = {
        "FORMS_DATA_DIR": str(data_dir),
        "FORMS_SITE_DIR": str(site_dir),
        "FORMS_BUILD_HANDBOOK": "false",
        "FORMS_SMTP_HOST": relay.host,
        "FORMS_SMTP_PORT": str(relay.port),
        "FORMS_SMTP_CA_FILE": str(relay.ca_file),
    }
    return load_settings(env_file=None, environ=environ)


def make_app(settings: Settings) -> Starlette:
    return create_app(settings)


def cli_settings(tmp_path: Path) -> Settings:
    """The settings the command line tool runs with in `cli` below."""
    return load_settings(env_file=None, environ=environment(tmp_path))


def cli(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return forms_server(tmp_path, environment(tmp_path), *arguments)


def kept_forms(data_dir: Path, count: int) -> list[str]:
    """`count` delivered forms' records in the store; their references."""
    forms = [submission("consent", name=f"Member {n}") for n in range(count)]
    open_store(data_dir).add_delivered_many(forms, datetime.now(UTC))
    return [form.reference for form in forms]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


# -- 6. Key rotation ----------------------------------------------------------------------------


def records_in(data: dict[str, dict[str, Any]]) -> int:
    return sum(len(table) for name, table in data.items() if name != META_TABLE)


def test_every_write_of_the_store_during_a_key_rotation_holds_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6a: `keys rotate` (Rights.reseal -> SubmissionStore.reseal) writes
    submissions.json twice, the first time with 0 records, so a crash between the two leaves a
    valid, empty store. Right: every write of the file during a rotation holds all the records
    (one atomic write)."""
    data = tmp_path / "data"
    kept_forms(data, 5)
    rights = open_rights(data, [DATA_KEY, NEW_KEY])
    written: list[int] = []
    original = AtomicJSONStorage.write

    def observed(storage: AtomicJSONStorage, data: dict[str, dict[str, Any]]) -> None:
        written.append(records_in(data))
        original(storage, data)  # the real write still happens

    monkeypatch.setattr(store_module.AtomicJSONStorage, "write", observed)
    rights.reseal()
    assert written, "the rotation wrote nothing to the store"
    assert all(count == 5 for count in written), f"records in each write: {written}"
    assert open_store(data, [NEW_KEY]).count() == 5


def test_re_sealing_the_outbox_waits_for_the_worker_s_turn(tmp_path: Path) -> None:
    """Item 6b: Rights.reseal rewrites data/outbox/pending/<REF>.json while the delivery
    worker holds its turn (outbox/worker.lock), so the worker's own save of that item can undo
    the re-seal or be undone by it. Right: re-sealing waits for the worker's turn, and rewrites
    the file only once the lock is released."""
    data = tmp_path / "data"
    form = submission("consent")
    assert receiving_delivery(data).worker.intake.add(form)
    pending = open_outbox(data).pending_path(form.reference)
    before = pending.read_bytes()
    rights = open_rights(data, [DATA_KEY, NEW_KEY])
    resealing = threading.Thread(target=rights.reseal, daemon=True)
    with open_outbox(data).worker_turn() as mine:
        assert mine
        resealing.start()
        # A bounded wait for the re-seal to finish (it must not, while the lock is held).
        resealing.join(timeout=3)
        assert pending.read_bytes() == before, (
            "the pending item was re-sealed while the worker held its turn"
        )
        assert resealing.is_alive()
    resealing.join(timeout=60)
    assert not resealing.is_alive()
    assert pending.read_bytes() != before
    item = open_outbox(data).read(form.reference)
    assert item is not None
    assert Sealer([NEW_KEY]).open(form.reference, item.sealed)["answers"] == form.answers


# -- 7. --dismiss takes a listed name, never a pattern or a path --------------------------------


@pytest.mark.parametrize("name", ["*", "../../submissions"])
def test_dismiss_refuses_a_pattern_or_a_path_and_touches_nothing(tmp_path: Path, name: str) -> None:
    """Item 7: `forms-server outbox --dismiss '*'` deleted every quarantined file, and
    `--dismiss ../../submissions` moved the whole store into quarantine. Right: --dismiss takes
    a name exactly as `forms-server outbox` lists it; a pattern or a path is refused with one
    clear line and exit 2, and nothing is deleted or moved."""
    data = tmp_path / "data"
    kept_forms(data, 1)
    store_file = data / "submissions.json"
    store_bytes = store_file.read_bytes()
    outbox = open_outbox(data)
    for reference in ("AAA-AAA-AAA", "BBB-BBB-BBB"):
        outbox.pending_path(reference).write_bytes(b"\x00\xff not json")
    listing = cli(tmp_path, "outbox")
    assert "Unreadable file moved aside:" in listing.stdout
    quarantined = outbox.quarantined()
    assert len(quarantined) == 2

    dismissed = cli(tmp_path, "outbox", "--dismiss", name)
    said = dismissed.stdout + dismissed.stderr
    assert outbox.quarantined() == quarantined, said
    assert store_file.is_file(), said
    assert store_file.read_bytes() == store_bytes
    assert dismissed.returncode == 2, said
    assert "Traceback" not in said
    # After the line that says what the command works on, the one line of the problem.
    assert len(dismissed.stderr.strip().splitlines()[1:]) == 1, said
    assert "Dismissed" not in dismissed.stdout


# -- 8. `forms-server purge` does what the hourly housekeeping does -----------------------------


def test_purge_erases_link_only_content_past_its_read_window(tmp_path: Path) -> None:
    """Item 8: `forms-server purge` keeps link-only content past its read window
    (data/readable/<REF>.json still sealed), which the server's hourly housekeeping
    (Delivery.housekeeping) erases. Right: after `forms-server purge` it is erased."""
    data = tmp_path / "data"
    window = timedelta(days=cli_settings(tmp_path).decisions.read_window_days)
    reference = new_reference()
    sealed = Sealer([DATA_KEY]).seal(reference, {"answers": {"what": "private words"}})
    kept_at = datetime.now(UTC) - window - timedelta(days=1)
    ReadingRoom(data, window).keep(reference, "concern", False, kept_at, sealed)
    # Picked up: a concern nobody has picked up stays readable (the lifecycle's hold-back),
    # in `purge` exactly as in the server's housekeeping.
    Acknowledgements(data).record(reference, "concern", "lead@example.org", kept_at)

    purged = cli(tmp_path, "purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    readable = ReadingRoom(data).get(reference)
    assert readable is None or readable.sealed == "", "link-only content past its window kept"


def test_purge_forgets_delivered_markers_past_the_replay_window(tmp_path: Path) -> None:
    """Item 8: `forms-server purge` keeps delivered markers (data/outbox/delivered/<REF>) past
    the replay window, which the server's hourly housekeeping removes. Right: after
    `forms-server purge` they are gone, and a recent one stays."""
    data = tmp_path / "data"
    settings = cli_settings(tmp_path)
    replay_window = timedelta(seconds=settings.token_max_age_seconds * 2)
    outbox = open_outbox(data)
    old, recent = new_reference(), new_reference()
    for marker in (old, recent):
        outbox.marker_path(marker).touch(mode=0o600)
    long_ago = (datetime.now(UTC) - replay_window - timedelta(days=1)).timestamp()
    os.utime(outbox.marker_path(old), (long_ago, long_ago))

    purged = cli(tmp_path, "purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not outbox.marker_path(old).exists(), "a delivered marker past the replay window kept"
    assert outbox.marker_path(recent).exists()


# -- 10. A data-folder fault never takes the handbook offline ----------------------------------


def first_crisis_number(settings: Settings) -> str:
    contact = settings.group["crisis_contacts"][0]
    return str(contact["link"]).removeprefix("tel:")


def assert_handbook_up_and_forms_say_why(settings: Settings) -> None:
    """The handbook serves; a form answers 503 with "cannot save forms right now" and the
    crisis contacts; health fails."""
    with TestClient(make_app(settings), base_url="http://127.0.0.1") as client:
        home = client.get("/")
        form = client.get("/forms/concern/")
        health = client.get("/healthz")
    assert home.status_code == 200
    assert form.status_code == 503
    assert "cannot save forms right now" in form.text.lower()
    assert first_crisis_number(settings) in form.text
    assert health.status_code == 503


def test_a_corrupt_store_leaves_the_handbook_up_and_the_forms_say_why(
    tmp_path: Path, site_dir: Path, relay: SmtpServer
) -> None:
    """Item 10a: a truncated or garbage data/submissions.json makes create_app raise, so
    nothing is served, "Get help now" included. Right: the handbook serves (200), the forms
    answer 503 saying they cannot save right now and showing the crisis contacts, /healthz
    answers 503, and the file is kept exactly as it is."""
    data = tmp_path / "data"
    settings = app_settings(site_dir, data, relay)  # the development keys now exist in `data`
    store_file = data / "submissions.json"
    store_file.write_bytes(GARBAGE)
    assert_handbook_up_and_forms_say_why(settings)
    assert store_file.read_bytes() == GARBAGE


def test_a_read_only_data_folder_leaves_the_handbook_up_and_the_forms_say_why(
    small_disk: Path,
    site_dir: Path,
    relay: SmtpServer,
) -> None:
    """Item 10b: a data folder on a filesystem remounted read-only makes create_app raise (a
    traceback from chmod), so nothing is served. Right: as for a corrupt store, the handbook
    serves, the forms answer 503 with the crisis contacts, and /healthz answers 503."""
    settings = app_settings(site_dir, small_disk / "data", relay)
    make_app(settings)  # a working folder: store, outbox, keys
    remount(small_disk, "ro")
    try:
        assert_handbook_up_and_forms_say_why(settings)
    finally:
        remount(small_disk, "rw")


def test_the_command_line_still_stops_on_a_corrupt_store_with_one_clear_line(
    tmp_path: Path,
) -> None:
    """Item 10c (a guard, passes today): whatever `serve` does, the commands stop on a corrupt
    store with one clear line and exit 2, and keep the file."""
    store_file = tmp_path / "data" / "submissions.json"
    store_file.parent.mkdir()
    store_file.write_bytes(GARBAGE)
    found = cli(tmp_path, "find", "--email", "a@b.c")
    assert found.returncode == 2
    assert "Traceback" not in found.stderr
    assert len(found.stderr.strip().splitlines()[1:]) == 1, found.stderr
    assert "is not valid JSON" in found.stderr
    assert store_file.read_bytes() == GARBAGE


# -- 11. Files that are not what they should be --------------------------------------------------


def test_the_store_never_follows_a_symlink_out_of_the_data_folder(tmp_path: Path) -> None:
    """Item 11c: with data/submissions.json a symlink to a file elsewhere, opening the store
    chmods that file to 0o600 and uses it. Right: the outside file's mode is unchanged, and the
    store refuses the link with a clear StoreError."""
    open_store(tmp_path / "first")
    outside = tmp_path / "elsewhere" / "store.json"
    outside.parent.mkdir()
    shutil.copyfile(tmp_path / "first" / "submissions.json", outside)
    outside.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "submissions.json").symlink_to(outside)
    refused: StoreError | None = None
    try:
        open_store(data)
    except StoreError as error:
        refused = error
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, "the file outside was chmodded"
    assert refused is not None, "the store used a symlink that leads out of the data folder"
    assert "link" in str(refused).lower()


@in_own_loop
async def test_a_truncated_urgent_concern_is_quarantined_and_escalated_at_once(
    relay: SmtpServer, tmp_path: Path
) -> None:
    """Item 11b: an urgent concern whose outbox file is truncated is moved to quarantine and
    nobody is told it was urgent. Right: it is quarantined, and the escalation contact gets a
    message at once whose subject names the reference and says URGENT."""
    data = tmp_path / "data"
    delivery = escalating_delivery(data, relay)
    concern = replace(submission("concern", about="member", immediate_risk="yes"), urgent=True)
    assert delivery.worker.intake.add(concern)
    pending = delivery.outbox.pending_path(concern.reference)
    whole = pending.read_bytes()
    truncated = whole[: len(whole) * 7 // 10]
    for readable in (concern.reference.encode(), b'"form_kind":"concern"', b'"urgent":true'):
        assert readable in truncated
    pending.write_bytes(truncated)
    await delivery.worker.run_pass()
    assert not pending.exists()
    assert any(name.startswith(pending.name) for name in delivery.outbox.quarantined())
    subjects = escalations(relay)
    assert len(subjects) == 1, f"to the escalation contact: {subjects}"
    assert concern.reference in subjects[0]
    assert "URGENT" in subjects[0].upper()
