"""The command line tool, run as the host runs it: a real process, real files, a real relay."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forms_server.forms import FORMS, Answers, Submission
from forms_server.outbox import FAILED, Outbox
from forms_server.reference import new_reference
from forms_server.store import Sealer, SubmissionStore
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import mail_settings
from tests.test_views import valid_answers

DATA_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode("ascii")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


def environment(tmp_path: Path, server: SmtpServer | None = None, **values: str) -> dict[str, str]:
    relay = (
        {
            "FORMS_SMTP_HOST": server.host,
            "FORMS_SMTP_PORT": str(server.port),
            "FORMS_SMTP_CA_FILE": str(server.ca_file),
        }
        if server
        else {}
    )
    return {
        "PATH": os.environ["PATH"],
        "FORMS_DATA_DIR": str(tmp_path / "data"),
        "FORMS_DATA_KEY": DATA_KEY,
        "FORMS_BUILD_HANDBOOK": "false",
        "FORMS_FACILITATORS": "f1@example.org,f2@example.org",
        **relay,
        **values,
    }


def forms_server(
    tmp_path: Path, env: dict[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forms_server.cli", *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_talks_to_the_relay_and_sends_a_test(server: SmtpServer, tmp_path: Path) -> None:
    result = forms_server(tmp_path, environment(tmp_path, server), "check", "--send-test")
    assert result.returncode == 0, result.stderr
    assert "STARTTLS: the connection is encrypted" in result.stdout
    assert "Test message accepted for 2 facilitator address(es)" in result.stdout
    (received,) = server.handler.received
    assert received.rcpt_tos == ["f1@example.org", "f2@example.org"]


def test_check_fails_clearly_without_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, starttls=False) as plain:
        result = forms_server(tmp_path, environment(tmp_path, plain), "check")
    assert result.returncode == 1
    assert "Mail relay: FAILED" in result.stdout


def test_a_bad_setting_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path, FORMS_ENV="production")
    result = forms_server(tmp_path, env, "check")
    assert result.returncode == 2
    assert "FORMS_SECRET_KEYS is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_outbox_lists_failures_without_personal_data_and_retries(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = bytes(range(32))
    box = Outbox(
        data_dir,
        Sealer(key),
        SubmissionStore(data_dir, key),
        mail_settings(None),
        "Harbour",
        timedelta(hours=4),
    )
    answers: Answers = {**valid_answers(FORMS["consent"])}
    item = Submission(new_reference(), "consent", answers, datetime.now(UTC), False, "v1")
    box.add(item)
    stored = box.read(item.reference)
    assert stored is not None
    box.rewrite(replace(stored, status=FAILED, last_error="The relay answered 554."))

    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert listing.returncode == 1
    assert item.reference in listing.stdout
    assert "failed" in listing.stdout
    for answer in answers.values():
        if isinstance(answer, str) and len(answer) > 3:
            assert answer not in listing.stdout

    retried = forms_server(tmp_path, environment(tmp_path), "outbox", "--retry")
    assert "Failed messages queued again: 1" in retried.stdout
    assert box.status(item.reference) == "pending"


def test_purge_says_how_many(tmp_path: Path) -> None:
    result = forms_server(tmp_path, environment(tmp_path), "purge")
    assert result.returncode == 0
    assert "Deleted 0 record(s)" in result.stdout
