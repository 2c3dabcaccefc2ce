"""Drafts: sealed under the member's browser key on a real disk, gone once idle or past a cap,
and unreadable with anything the host holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from forms_server.forms.definitions import FORMS
from forms_server.storage.draft_files import DraftFiles
from forms_server.web.drafts import (
    SENT,
    Draft,
    Drafts,
    Receipt,
    name_for,
    new_browser_key,
    seal,
    unseal,
)
from tests.test_delivery_faults import remount, small_disk
from tests.test_views import BASE_URL, make_app, post, send, send_url_in, valid_answers


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


small_disk = small_disk


def names(count: int, prefix: str = "n") -> list[str]:
    return [f"{prefix}{index:020d}" for index in range(count)]


def test_a_file_is_read_back_until_it_is_idle_too_long(tmp_path: Path) -> None:
    clock = Clock()
    files = DraftFiles(tmp_path, idle_seconds=60, clock=clock)
    [first, second] = names(2)
    files.write(first, b"one", "net")
    clock.now += 50
    files.write(second, b"two", "net")
    assert files.read(first) == b"one"  # used again: its idle time starts again
    clock.now += 50
    assert files.read(first) == b"one"
    assert files.read(second) == b"two"
    clock.now += 61
    assert files.read(first) is None
    # Gone from the disk, not only from memory.
    assert list(tmp_path.iterdir()) == []


def test_past_its_networks_cap_the_networks_least_used_draft_goes(tmp_path: Path) -> None:
    clock = Clock()
    files = DraftFiles(tmp_path, idle_seconds=600, most_per_network=3, clock=clock)
    ours, theirs = names(4), names(1, "t")
    files.write(theirs[0], b"other network", "elsewhere")
    for name in ours[:3]:
        clock.now += 1
        files.write(name, name.encode(), "busy")
    assert files.read(ours[0]) is not None  # now the most recently used of the three
    files.write(ours[3], b"fourth", "busy")
    assert files.read(ours[1]) is None  # the least recently used of that network
    assert [files.read(name) is not None for name in (ours[0], ours[2], ours[3])] == [True] * 3
    assert files.read(theirs[0]) == b"other network"  # a flood costs only its own network


def test_past_the_total_cap_the_least_used_draft_goes(tmp_path: Path) -> None:
    clock = Clock()
    files = DraftFiles(tmp_path, idle_seconds=600, most_in_total=5, clock=clock)
    for index, name in enumerate(names(8)):
        clock.now += 1
        files.write(name, b"x", f"net{index}")
    assert files.count() == 5
    assert len(list(tmp_path.iterdir())) == 5
    assert [files.read(name) is not None for name in names(8)] == [False] * 3 + [True] * 5


def test_after_a_restart_fresh_drafts_stay_and_idle_ones_and_debris_go(tmp_path: Path) -> None:
    files = DraftFiles(tmp_path, idle_seconds=60)
    [fresh, idle] = names(2)
    files.write(fresh, b"fresh", "net")
    files.write(idle, b"idle", "net")
    old = time.time() - 120
    os.utime(tmp_path / idle, (old, old))
    (tmp_path / ".1234abcd.tmp").write_bytes(b"half")
    again = DraftFiles(tmp_path, idle_seconds=60)
    assert again.read(fresh) == b"fresh"
    assert again.read(idle) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == [fresh]


def test_only_a_derived_name_is_ever_a_path(tmp_path: Path) -> None:
    files = DraftFiles(tmp_path / "drafts", idle_seconds=60)
    for name in ["../escape-0000000000000", "short", "a/b" * 8]:
        with pytest.raises(ValueError, match="not a draft's name"):
            files.write(name, b"x", "net")
    assert not (tmp_path / "escape-0000000000000").exists()


def test_a_draft_is_sealed_under_the_browser_key_and_its_own_name() -> None:
    key = new_browser_key()
    name = name_for(key, "concern")
    sealed = seal(key, name, {"answers": {"what_happened": "Sam said something unkind"}})
    assert b"Sam" not in sealed
    assert unseal(key, name, sealed) == {"answers": {"what_happened": "Sam said something unkind"}}
    # Another browser, or the same file under another draft's name, opens nothing.
    assert unseal(new_browser_key(), name, sealed) is None
    assert unseal(key, name_for(key, "consent"), sealed) is None
    assert unseal(key, name, sealed[:-1] + bytes([sealed[-1] ^ 1])) is None


def test_names_are_opaque_and_tell_the_browser_which_form(tmp_path: Path) -> None:
    drafts = Drafts(DraftFiles(tmp_path, 60), FORMS, max_age_seconds=3600)
    key, other = new_browser_key(), new_browser_key()
    made = {kind: name_for(key, kind) for kind in FORMS}
    assert len(set(made.values())) == len(FORMS)
    assert all(kind not in name for kind, name in made.items())
    assert {drafts.kind_of(key, name) for name in made.values()} == set(FORMS)
    assert {drafts.kind_of(other, name) for name in made.values()} == {None}


def draft(kind: str = "concern", created_at: float | None = None) -> Draft:
    return Draft(
        kind=kind,
        reference="HPS-ABCD-2345",
        answers={"what_happened": "It happened"},
        created_at=time.time() if created_at is None else created_at,
        checked_at=time.time(),
    )


def test_a_draft_ends_when_sent_leaving_only_its_receipt(tmp_path: Path) -> None:
    drafts = Drafts(DraftFiles(tmp_path, 60), FORMS, max_age_seconds=3600)
    key = new_browser_key()
    drafts.save(key, draft(), "net")
    loaded = drafts.load(key, "concern")
    assert loaded is not None
    assert (loaded.reference, loaded.answers) == ("HPS-ABCD-2345", {"what_happened": "It happened"})
    drafts.sent(key, Receipt("concern", "HPS-ABCD-2345", ("concerns",)), "net")
    assert drafts.load(key, "concern") is None
    assert drafts.receipt(key, "concern") == Receipt("concern", "HPS-ABCD-2345", ("concerns",))
    assert [path.name for path in tmp_path.iterdir()] == [name_for(key, "concern") + SENT]
    drafts.end_all(key)
    assert drafts.receipt(key, "concern") is None
    assert [path.name for path in tmp_path.iterdir()] == []


def test_a_draft_older_than_its_max_age_is_gone_however_often_it_was_used(
    tmp_path: Path,
) -> None:
    drafts = Drafts(DraftFiles(tmp_path, 60), FORMS, max_age_seconds=3600)
    key = new_browser_key()
    drafts.save(key, draft(created_at=time.time() - 3601), "net")
    assert drafts.load(key, "concern") is None
    assert [path.name for path in tmp_path.iterdir()] == []


def test_a_draft_stays_when_the_data_folder_turns_read_only(
    site_dir: Path, small_disk: Path
) -> None:
    """Reading a draft also touches it (its idle time counts from a restart too). On a folder
    that cannot be written, that touch failed and the draft was forgotten: the member's check
    page said "expired" and what they typed was lost. Now the page still shows it, Send says it
    cannot be sent yet, and once the folder is back it is sent."""
    app = make_app(site_dir, small_disk / "data")
    with TestClient(app, base_url=BASE_URL) as client:
        form = FORMS["leave-missing"]
        check_page = post(client, "/forms/leave-missing/", valid_answers(form))
        check_url = str(client.get(send_url_in(check_page)).url)
        remount(small_disk, "ro")
        try:
            again = client.get(check_url)
            refused = send(client, check_page)
        finally:
            remount(small_disk, "rw")
        assert again.status_code == 200, again.text
        assert "Check your answers" in again.text
        assert refused.status_code == 503, refused.text
        sent = send(client, check_page)
        assert sent.status_code == 303, sent.text
