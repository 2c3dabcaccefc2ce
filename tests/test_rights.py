"""A member's rights, answered the way the host answers them: `forms-server find / export /
correct / erase / keys` as real processes, against a real store of many members on disk."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.storage.ledger import Ledger
from forms_server.storage.records import SubmissionStore
from forms_server.storage.sealing import Sealer, SealingError
from forms_server.storage.store_file import STORE_FORMAT, StoreError
from tests.test_cli import DATA_KEY, environment, forms_server
from tests.test_views import valid_answers

KEY = base64.urlsafe_b64decode(DATA_KEY)
PLANTED = {"name": "Ada Quillfeather", "email": "Ada.Quill@Example.ORG"}


def consent(received_at: datetime, **answers: str) -> Submission:
    return Submission(
        reference=new_reference(),
        form_kind="consent",
        answers={**valid_answers(FORMS["consent"]), **answers},
        received_at=received_at,
        urgent=False,
        guidelines_version="abc123",
    )


def leave(received_at: datetime, name: str) -> Submission:
    return Submission(
        reference=new_reference(),
        form_kind="leave-missing",
        answers={**valid_answers(FORMS["leave-missing"]), "name": name},
        received_at=received_at,
        urgent=False,
        guidelines_version=None,
    )


def many_members(data_dir: Path, keys: list[bytes] | None = None) -> list[Submission]:
    """Forty members and the planted one: her consent and a leave notice under her name."""
    store = SubmissionStore(data_dir, keys or KEY)
    now = datetime.now(UTC)
    others = [
        consent(now - timedelta(days=n), name=f"Member {n}", email=f"member{n}@example.org")
        for n in range(40)
    ]
    planted = [
        consent(now - timedelta(days=3), name=PLANTED["name"], email=PLANTED["email"]),
        leave(now - timedelta(days=1), name=PLANTED["name"].upper()),
    ]
    store.add_delivered_many(others + planted, now)
    return planted


def cli(tmp_path: Path, *arguments: str, **env: str) -> tuple[int, str]:
    done = forms_server(tmp_path, environment(tmp_path, None, **env), *arguments)
    return done.returncode, done.stdout + done.stderr


def raw_store(tmp_path: Path) -> str:
    return (tmp_path / "data" / "submissions.json").read_text(encoding="utf-8")


def test_find_says_what_matched_and_how_and_nothing_else(tmp_path: Path) -> None:
    planted = many_members(tmp_path / "data")
    code, out = cli(tmp_path, "find", "--email", "ada.quill@example.org")
    assert code == 0, out
    assert planted[0].reference in out
    assert "email address (Email address)" in out
    assert planted[1].reference not in out  # the leave notice holds no address
    code, out = cli(tmp_path, "find", "--name", "ada quillfeather")
    assert code == 0, out
    assert planted[0].reference in out
    assert planted[1].reference in out
    assert "name (Name)" in out
    assert "name (Signature)" not in out
    for value in PLANTED.values():
        assert value.casefold() not in out.casefold()
    code, out = cli(tmp_path, "find", "--reference", planted[1].reference.lower())
    assert code == 0
    assert planted[1].reference in out
    assert "matched by reference" in out
    code, out = cli(tmp_path, "find", "--name", "Ada")  # exact names only
    assert code == 1
    assert "Nothing held matches" in out
    code, out = cli(tmp_path, "find", "--reference", "not-a-ref")
    assert code == 2
    assert "references look like" in out


def test_export_opens_everything_held_as_json_and_formula_safe_csv(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    store = SubmissionStore(tmp_path / "data", KEY)
    hostile = consent(now, name='=HYPERLINK("http://x")', email="ada@example.org")
    store.add_delivered(hostile, now)
    done = forms_server(
        tmp_path, environment(tmp_path, None), "export", "--email", "ADA@example.org"
    )
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    (record,) = exported["records"]
    assert record["reference"] == hostile.reference
    assert record["answers"]["Name"] == '=HYPERLINK("http://x")'
    assert record["answers"]["Email address"] == "ada@example.org"
    assert "version abc123" in record["guidelines_agreed"]
    target = tmp_path / "export.csv"
    code, out = cli(
        tmp_path, "export", "--email", "ada@example.org", "--csv", "--output", str(target)
    )
    assert code == 0, out
    assert target.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    name_row = next(row for row in rows if row[4] == "Name")
    assert name_row[5] == '\'=HYPERLINK("http://x")'
    code, out = cli(tmp_path, "export", "--email", "ada@example.org", "--output", str(target))
    assert code == 2
    assert "already exists" in out


def test_correct_fixes_a_kept_value_checked_as_the_form_checks_it(tmp_path: Path) -> None:
    planted = many_members(tmp_path / "data")
    reference = planted[0].reference
    code, out = cli(tmp_path, "correct", reference, "name", "Ada Quillfeather-Smith")
    assert code == 0, out
    record = SubmissionStore(tmp_path / "data", KEY).get(reference)
    assert record is not None
    assert record.kept["name"] == "Ada Quillfeather-Smith"
    code, out = cli(tmp_path, "correct", reference, "name", "x" * 101)
    assert code == 2
    assert "100 characters or fewer" in out
    code, out = cli(tmp_path, "correct", reference, "reason", "anything")
    assert code == 2
    assert "keeps no value called 'reason'" in out
    code, out = cli(tmp_path, "correct", reference, "agree_removal", "no")
    assert code == 2
    assert "cannot be corrected" in out


def test_erase_removes_one_person_and_leaves_everyone_else(tmp_path: Path) -> None:
    planted = many_members(tmp_path / "data")
    before = SubmissionStore(tmp_path / "data", KEY).count()
    code, out = cli(tmp_path, "erase", "--name", PLANTED["name"])
    assert code == 1
    assert "Run it again with --yes" in out
    assert SubmissionStore(tmp_path / "data", KEY).count() == before
    code, out = cli(tmp_path, "erase", "--name", PLANTED["name"], "--yes")
    assert code == 0, out
    assert "Erased 2" in out
    raw = raw_store(tmp_path)
    for item in planted:
        assert item.reference not in raw
    store = SubmissionStore(tmp_path / "data", KEY)
    assert store.count() == before - 2
    remaining = json.dumps([record.kept for record in store.all()])
    assert PLANTED["name"].casefold() not in remaining.casefold()
    assert "member39@example.org" in remaining
    # Content-free audit: no name, no address, no reference in the clear.
    audit = (tmp_path / "data" / "audit.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["action"] for line in audit.splitlines()][-1] == "erase"
    for secret_value in (PLANTED["name"], planted[0].reference, planted[1].reference):
        assert secret_value.casefold() not in audit.casefold()


def test_an_erasure_survives_restoring_an_old_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    planted = many_members(tmp_path / "data")
    backup = raw_store(tmp_path)
    code, out = cli(tmp_path, "erase", "--reference", planted[0].reference, "--yes")
    assert code == 0, out
    (tmp_path / "data" / "submissions.json").write_text(backup, encoding="utf-8")
    caplog.set_level("WARNING")
    store = SubmissionStore(tmp_path / "data", KEY)
    assert store.get(planted[0].reference) is None
    assert store.get(planted[1].reference) is not None
    assert planted[0].reference not in raw_store(tmp_path)
    assert "Erased 1 record(s) again: they were restored from a backup" in caplog.text
    # Delivered again from a restored outbox: not recorded again either.
    assert not store.add_delivered(planted[0], datetime.now(UTC))


def test_rotating_the_data_key_lets_the_old_key_go(tmp_path: Path) -> None:
    new_key = secrets.token_bytes(32)
    planted = many_members(tmp_path / "data")
    both = f"{DATA_KEY},{base64.urlsafe_b64encode(new_key).decode()}"
    code, out = cli(tmp_path, "keys", "rotate")
    assert code == 2
    assert "Only one data key" in out
    code, out = cli(tmp_path, "keys", "rotate", FORMS_DATA_KEY=both)
    assert code == 0, out
    assert "Sealed 42 value(s) again" in out
    new_only = SubmissionStore(tmp_path / "data", new_key)
    record = new_only.get(planted[0].reference)
    assert record is not None
    assert record.kept["name"] == PLANTED["name"]
    with pytest.raises(SealingError, match="no longer configured"):
        SubmissionStore(tmp_path / "data", KEY).get(planted[0].reference)
    code, out = cli(tmp_path, "keys", "new")
    assert code == 0
    assert "A new data key:" in out


def test_consents_that_lapse_are_listed(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "data", KEY)
    now = datetime.now(UTC)
    old = consent(now - timedelta(days=350))
    recent = consent(now - timedelta(days=10))
    store.add_delivered_many([old, recent], now)
    code, out = cli(tmp_path, "find", "--expiring")
    assert code == 0, out
    assert old.reference in out
    assert recent.reference not in out
    assert "no renewal period is decided" in out
    code, out = cli(tmp_path, "find", "--expiring", "400")
    assert old.reference in out
    assert recent.reference in out


# -- The store's own format -------------------------------------------------------------------


def first_format_file(data_dir: Path, sealer: Sealer) -> tuple[str, bytes]:
    """A store exactly as the first version wrote it: the guidelines version in the clear."""
    reference = new_reference()
    now = datetime.now(UTC)
    record = {
        "reference": reference,
        "form_kind": "consent",
        "received_at": now.isoformat(),
        "delivered_at": now.isoformat(),
        "expires_at": (now + timedelta(days=365)).isoformat(),
        "guidelines_version": "0f1e2d3c4b5a",
        "kept": sealer.seal(reference, {"name": "Grace"}),
    }
    raw = json.dumps({"_default": {"1": record}}).encode()
    data_dir.mkdir(parents=True)
    (data_dir / "submissions.json").write_bytes(raw)
    return reference, raw


def test_a_first_format_store_is_upgraded_in_place(tmp_path: Path) -> None:
    reference, _ = first_format_file(tmp_path / "data", Sealer(KEY))
    store = SubmissionStore(tmp_path / "data", KEY)
    raw = json.loads(raw_store(tmp_path))
    assert raw["meta"]["1"]["format"] == STORE_FORMAT
    assert "0f1e2d3c4b5a" not in raw_store(tmp_path)  # now sealed
    record = store.get(reference)
    assert record is not None
    assert record.kept == {"name": "Grace"}
    assert record.guidelines_version == "0f1e2d3c4b5a"


def test_an_upgrade_that_cannot_finish_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    _, raw = first_format_file(tmp_path / "data", Sealer(secrets.token_bytes(32)))
    with pytest.raises(SealingError):
        SubmissionStore(tmp_path / "data", KEY)
    assert (tmp_path / "data" / "submissions.json").read_bytes() == raw


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    raw = json.dumps({"meta": {"1": {"format": STORE_FORMAT + 1}}, "_default": {}}).encode()
    (tmp_path / "data" / "submissions.json").write_bytes(raw)
    with pytest.raises(StoreError, match="run the newer version"):
        SubmissionStore(tmp_path / "data", KEY)
    assert (tmp_path / "data" / "submissions.json").read_bytes() == raw


def test_the_ledger_skips_a_torn_line_and_keeps_the_rest(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    now = datetime.now(UTC)
    ledger.erased("AAA-BBB-CCC", "consent", now, "erased on request", now + timedelta(days=1))
    with (tmp_path / "erasures.jsonl").open("a", encoding="utf-8") as file:
        file.write('{"reference": "torn')
    ledger.erased("DDD-EEE-FFF", "consent", now, "erased on request", now + timedelta(days=1))
    assert ledger.erasure_of("AAA-BBB-CCC") is not None
    assert ledger.erasure_of("ddd-eee-fff") is not None  # the hash ignores case
    assert ledger.purge(now + timedelta(days=2), timedelta(days=365)) == 2


def test_the_audit_log_and_erasure_lines_go_once_nobody_needs_them(tmp_path: Path) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    store = SubmissionStore(tmp_path, KEY)
    old = consent(now - timedelta(days=400))  # its record would have gone 35 days ago
    recent = consent(now - timedelta(days=10))
    store.add_delivered_many([old, recent], now - timedelta(days=9))
    store.erase([old.reference, recent.reference], "erased on request")
    store.ledger.audit("find", now - timedelta(days=400), 1, person=PLANTED["email"])
    store.ledger.audit("find", now - timedelta(days=1), 1, person=PLANTED["email"])
    store.purge_expired(now)
    needed = [erasure.form_kind for erasure in store.ledger.erasures()]
    assert len(needed) == 1  # the recent record's: a backup may still hold it
    assert store.ledger.erasure_of(recent.reference) is not None
    assert store.ledger.erasure_of(old.reference) is None
    finds = [entry for entry in store.ledger.audit_entries() if entry["action"] == "find"]
    assert [entry["at"] for entry in finds] == [(now - timedelta(days=1)).isoformat()]


# -- Every command says what it works on, and never answers from the wrong folder -------------


@pytest.mark.parametrize(
    "arguments",
    [
        ("find", "--email", "ada.quill@example.org"),
        ("export", "--email", "ada.quill@example.org"),
        ("erase", "--email", "ada.quill@example.org"),
        ("correct", "4KX-7QD-M21", "name", "Ada"),
        ("outbox",),
        ("purge",),
        ("keys", "rotate"),
    ],
)
def test_a_command_run_where_there_is_no_data_refuses_and_makes_nothing(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    """Run one folder up, `find --email` made a new empty store and answered "Nothing held
    matches": a member's request answered from the wrong place."""
    env = environment(tmp_path, None)
    del env["FORMS_DATA_KEY"]  # development: keys would be made in the data folder
    done = forms_server(tmp_path, env, *arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Nothing held matches" not in done.stdout
    assert f"No data at {tmp_path / 'data'}" in done.stderr
    assert "FORMS_DATA_DIR" in done.stderr  # and how to point at the right one
    assert not (tmp_path / "data").exists()


def test_check_in_development_leaves_no_keys_behind(tmp_path: Path) -> None:
    """A first `check` before FORMS_ENV=production left development keys in what became the
    production data folder."""
    env = environment(tmp_path, None, FORMS_SMTP_HOST="127.0.0.1", FORMS_SMTP_PORT="1")
    del env["FORMS_DATA_KEY"]
    forms_server(tmp_path, env, "check")
    assert not (tmp_path / "data").exists()


def test_every_command_first_says_what_it_works_on_and_export_stays_clean(
    tmp_path: Path,
) -> None:
    many_members(tmp_path / "data")
    done = forms_server(
        tmp_path, environment(tmp_path, None), "export", "--email", "ada.quill@example.org"
    )
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # nothing but the export on standard output
    first_line = done.stderr.splitlines()[0]
    for what in ("development", f"folder {tmp_path}", "mkdocs.yml", f"data {tmp_path / 'data'}"):
        assert what in first_line, first_line
