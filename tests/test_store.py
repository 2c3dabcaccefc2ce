"""The store on a real disk: two processes, a killed writer, a corrupt file, and retention."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.storage.records import SubmissionStore
from forms_server.storage.store_file import StoreCorruptError
from tests.test_views import valid_answers

DATA_KEY = bytes(range(32))

# A writer in its own process: adds `count` delivered records (forever if count is 0).
WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.storage.records import SubmissionStore
from tests.test_views import valid_answers
store = SubmissionStore(Path(sys.argv[1]), bytes(range(32)))
count = int(sys.argv[2])
written = 0
while count == 0 or written < count:
    now = datetime.now(UTC)
    store.add_delivered(Submission(new_reference(), "leave-missing",
        valid_answers(FORMS["leave-missing"]), now, False, None), now)
    written += 1
    print(written, flush=True)
"""


def delivered(kind: str, received_at: datetime | None = None) -> Submission:
    answers: Answers = {**valid_answers(FORMS[kind])}
    return Submission(
        reference=new_reference(),
        form_kind=kind,
        answers=answers,
        received_at=received_at or datetime.now(UTC),
        urgent=False,
        guidelines_version=None,
    )


def writer(data_dir: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_two_processes_writing_one_store_lose_nothing(tmp_path: Path) -> None:
    SubmissionStore(tmp_path, DATA_KEY)
    first, second = writer(tmp_path, 60), writer(tmp_path, 60)
    first.communicate(timeout=120)
    second.communicate(timeout=120)
    assert (first.returncode, second.returncode) == (0, 0)
    assert SubmissionStore(tmp_path, DATA_KEY).count() == 120
    json.loads((tmp_path / "submissions.json").read_text("utf-8"))


def test_a_killed_writer_leaves_a_valid_file_with_every_acknowledged_record(
    tmp_path: Path,
) -> None:
    """Killed at once after it said a record was written, and again a moment later (mid-write,
    as often as not): every record it acknowledged is there, and the file opens."""
    before = SubmissionStore(tmp_path, DATA_KEY).count()
    for wanted, extra_delay in ((3, 0.0), (5, 0.01), (8, 0.003)):
        process = writer(tmp_path, 0)
        assert process.stdout is not None
        acknowledged = 0
        while acknowledged < wanted:  # block until the writer has really written
            acknowledged = int(process.stdout.readline())
        time.sleep(extra_delay)
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=10)
        acknowledged = max([acknowledged, *(int(line) for line in rest.split())])
        after = SubmissionStore(tmp_path, DATA_KEY).count()  # opens: the file is whole
        assert after - before >= acknowledged > 0
        before = after
    assert list(tmp_path.glob(".*.tmp")) == []


def test_a_corrupt_file_stops_start_up_and_is_kept(tmp_path: Path) -> None:
    broken = b'{"_default": {"1": {"reference": "half'
    (tmp_path / "submissions.json").write_bytes(broken)
    with pytest.raises(StoreCorruptError, match="left exactly as it is"):
        SubmissionStore(tmp_path, DATA_KEY)
    assert (tmp_path / "submissions.json").read_bytes() == broken


def test_stray_temporary_files_are_cleaned_at_start(tmp_path: Path) -> None:
    stray = tmp_path / ".submissions.json.12345.tmp"
    stray.write_text("{half", encoding="utf-8")
    SubmissionStore(tmp_path, DATA_KEY)
    assert not stray.exists()


def test_the_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "data", DATA_KEY)
    store.add_delivered(delivered("consent"), datetime.now(UTC))
    assert (tmp_path / "data" / "submissions.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_expired_records_leave_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    store = SubmissionStore(tmp_path, DATA_KEY)
    old = delivered("leave-missing", datetime.now(UTC) - timedelta(days=200))
    recent = delivered("leave-missing")
    consent = delivered("consent", datetime.now(UTC) - timedelta(days=200))
    for item in (old, recent, consent):
        store.add_delivered(item, item.received_at)
    assert len(store.purge_expired()) == 1
    raw = (tmp_path / "submissions.json").read_text("utf-8")
    assert old.reference not in raw
    assert recent.reference in raw
    assert consent.reference in raw  # kept for 12 months
    assert "Purged 1 expired records" in caplog.text
    assert old.reference not in caplog.text


def test_a_record_is_added_once(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path, DATA_KEY)
    item = delivered("consent")
    assert store.add_delivered(item, datetime.now(UTC))
    assert not store.add_delivered(item, datetime.now(UTC))
    assert store.count() == 1
    assert (tmp_path / "submissions.json").stat().st_size > 0
