"""The command line tool, run as the host runs it: a real process, real files, a real relay."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forms_server.forms.fields import Submission
from forms_server.storage.outbox_items import ItemStatus, RecipientStatus
from forms_server.storage.records import SubmissionStore
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import mail_settings, make_delivery, submission

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
        [sys.executable, "-m", "forms_server.cli.main", *arguments],
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
    # When an old signing key can go: after the longest link lifetime.
    assert "acknowledge 14d" in result.stdout
    assert "member-copy 90d" in result.stdout
    assert "remove an old one no sooner than 90d later" in result.stdout
    assert [r.rcpt_tos for r in server.handler.received] == [
        ["f1@example.org"],
        ["f2@example.org"],
    ]


def test_check_fails_clearly_without_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, starttls=False) as plain:
        result = forms_server(tmp_path, environment(tmp_path, plain), "check")
    assert result.returncode == 1
    assert "Mail relay: FAILED" in result.stdout
    # What to do about it: the setting, and the value that fits a relay that starts with TLS.
    assert f"{plain.host}:{plain.port} does not offer STARTTLS" in result.stdout
    assert "FORMS_SMTP_SECURITY=tls" in result.stdout


def test_check_names_the_relay_it_cannot_reach_and_what_to_set(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = environment(tmp_path, FORMS_SMTP_HOST="127.0.0.1", FORMS_SMTP_PORT=str(port))
    result = forms_server(tmp_path, env, "check")
    assert result.returncode == 1
    assert f"Could not connect to the relay at 127.0.0.1:{port}" in result.stdout
    assert "FORMS_SMTP_HOST and FORMS_SMTP_PORT" in result.stdout


def test_a_bad_setting_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path, FORMS_ENV="production")
    result = forms_server(tmp_path, env, "check")
    assert result.returncode == 2
    assert "FORMS_SECRET_KEYS is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_lists_every_problem_of_an_empty_production_configuration_in_one_run(
    tmp_path: Path,
) -> None:
    """It used to report one problem per run: a coordinator ran it 9 times."""
    env = {
        "PATH": os.environ["PATH"],
        "FORMS_ENV": "production",
        "FORMS_DATA_DIR": str(tmp_path / "data"),
        "FORMS_BUILD_HANDBOOK": "false",
        "FORMS_PORT": "eighty",
        "FORMS_CLIENT_POST_BURST": "0",
    }
    result = forms_server(tmp_path, env, "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    every_problem = [
        "FORMS_PORT",
        "FORMS_CLIENT_POST_BURST",
        "FORMS_SECRET_KEYS is not set",
        "FORMS_DATA_KEY is not set",
        "FORMS_PUBLIC_URL is not set",
        "FORMS_SMTP_HOST is not set",
        "concern_route is not decided",
        "facilitator_concern_email is not decided",
        "escalation_email is not decided",
        "FORMS_MAIL_FROM is not set",
    ]
    assert [problem for problem in every_problem if problem not in result.stderr] == []
    assert f"{len(every_problem)} problems" in result.stderr
    # Nothing was made on the way: no development keys in what will be the production folder.
    assert not (tmp_path / "data").exists()


def failed_item(tmp_path: Path, kind: str = "consent", **answers: str) -> Submission:
    """A form the relay refused for every recipient, as the worker leaves it."""
    delivery = make_delivery(tmp_path / "data", mail_settings(None))
    item = submission(kind, **answers)
    assert delivery.worker.intake.add(item)
    stored = delivery.outbox.read(item.reference)
    assert stored is not None
    refused = tuple(
        replace(r, status=RecipientStatus.FAILED, attempts=1, last_error="The relay answered 554.")
        for r in stored.recipients
    )
    delivery.outbox.save(replace(stored, recipients=refused, failed_at=datetime.now(UTC)))
    return item


def test_outbox_lists_failures_without_personal_data_and_retries(tmp_path: Path) -> None:
    item = failed_item(tmp_path)
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert listing.returncode == 1
    assert item.reference in listing.stdout
    assert "failed" in listing.stdout
    assert "The relay answered 554." in listing.stdout
    assert "Problem: 1 form(s) could not be delivered." in listing.stdout
    for answer in item.answers.values():
        if isinstance(answer, str) and len(answer) > 3:
            assert answer not in listing.stdout

    retried = forms_server(tmp_path, environment(tmp_path), "outbox", "--retry")
    assert "Failed messages queued again: 1" in retried.stdout
    again = make_delivery(tmp_path / "data", mail_settings(None)).outbox.read(item.reference)
    assert again is not None
    assert again.status is ItemStatus.PENDING


def test_outbox_shows_urgency_and_exits_1_when_the_worker_is_not_running(tmp_path: Path) -> None:
    delivery = make_delivery(tmp_path / "data", mail_settings(None))
    urgent = replace(submission("concern", immediate_risk="yes"), urgent=True)
    assert delivery.worker.intake.add(urgent)
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert listing.returncode == 1
    (row,) = [line for line in listing.stdout.splitlines() if urgent.reference in line]
    assert row.split()[1:4] == ["concern", "yes", "pending"]
    assert "Problem: The delivery worker is not running." in listing.stdout


def test_outbox_lists_unreadable_files_and_dismiss_clears_what_was_dealt_with(
    tmp_path: Path,
) -> None:
    item = failed_item(tmp_path, "leave-missing")
    outbox = make_delivery(tmp_path / "data", mail_settings(None)).outbox
    (outbox.pending_folder / "AAA-AAA-AAA.json").write_bytes(b"\x00\xff not json")
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert listing.returncode == 1
    assert "Traceback" not in listing.stdout + listing.stderr
    assert "Unreadable file moved aside:" in listing.stdout
    assert "AAA-AAA-AAA.json" in listing.stdout
    assert "Problem: 1 outbox file(s) could not be read." in listing.stdout
    # Dismissed by its name exactly as the listing shows it (a pattern is refused: see
    # test_issue19_storage).
    (moved,) = [
        line.rsplit("/", 1)[1]
        for line in listing.stdout.splitlines()
        if line.startswith("Unreadable file moved aside:")
    ]
    assert moved.startswith("AAA-AAA-AAA.json.")

    dismissed = forms_server(
        tmp_path,
        environment(tmp_path),
        "outbox",
        "--dismiss",
        item.reference,
        "--dismiss",
        moved,
    )
    assert f"Dismissed {item.reference}" in dismissed.stdout
    assert f"Dismissed {moved}" in dismissed.stdout
    assert "Problem: The delivery worker is not running." in dismissed.stdout
    assert "could not be delivered" not in dismissed.stdout
    assert "could not be read" not in dismissed.stdout


def test_dismiss_all_asks_first_then_dismisses_every_failed_form_and_unreadable_file(
    tmp_path: Path,
) -> None:
    first, second = failed_item(tmp_path), failed_item(tmp_path, "leave-missing")
    outbox = make_delivery(tmp_path / "data", mail_settings(None)).outbox
    (outbox.pending_folder / "AAA-AAA-AAA.json").write_bytes(b"\x00 not json")
    outbox.pending()  # moved aside
    (moved,) = outbox.quarantined()
    asked = forms_server(tmp_path, environment(tmp_path), "outbox", "--all")
    assert asked.returncode == 1
    assert "This would stop reporting 3 failed form(s) or unreadable file(s):" in asked.stdout
    for name in (first.reference, second.reference, moved):
        assert f"  {name}" in asked.stdout
    assert "Run it again with --all --yes" in asked.stdout
    assert outbox.quarantined() == [moved]  # nothing changed
    done = forms_server(tmp_path, environment(tmp_path), "outbox", "--all", "--yes")
    for name in (first.reference, second.reference, moved):
        assert f"Dismissed {name}" in done.stdout
    assert outbox.quarantined() == []
    assert "could not be delivered" not in done.stdout
    assert "could not be read" not in done.stdout


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is empty"),
        (bytes(range(256)) * 4, "is not valid JSON"),
        (b'["a list"]', "does not hold a TinyDB database"),
        (b'{"_default": {"1": {"reference": 5}}}', "holds a record that is not one of ours"),
        (None, "is a folder, not a file"),
    ],
)
def test_an_unreadable_store_is_one_clear_line_exit_2_and_kept(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    store = tmp_path / "data" / "submissions.json"
    store.parent.mkdir()
    if content is None:
        store.mkdir()
    else:
        store.write_bytes(content)
    result = forms_server(tmp_path, environment(tmp_path), "purge")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    # After the line that says what the command works on, the one line of the problem.
    assert len(result.stderr.strip().splitlines()[1:]) == 1
    if content is not None:
        assert store.read_bytes() == content


def test_purge_says_how_many(tmp_path: Path) -> None:
    SubmissionStore(tmp_path / "data", base64.urlsafe_b64decode(DATA_KEY))  # the server's
    result = forms_server(tmp_path, environment(tmp_path), "purge")
    assert result.returncode == 0
    assert "Deleted 0 record(s)" in result.stdout


def test_a_taken_port_is_named_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = environment(tmp_path, FORMS_PORT=str(port))
        result = forms_server(tmp_path, env, "serve")
    assert result.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"FORMS_PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_publishes_the_handbook_at_the_address_in_dotenv(tmp_path: Path) -> None:
    """FORMS_SITE_URL in .env never reached the build: only the process environment did."""
    (tmp_path / ".env").write_text("FORMS_SITE_URL=https://handbook.example.org/\n", "utf-8")
    env = environment(tmp_path, FORMS_SITE_DIR=str(tmp_path / "site"))
    result = forms_server(tmp_path, env, "build")
    assert result.returncode == 0, result.stderr
    assert "published at https://handbook.example.org/" in result.stdout
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert '<link rel="canonical" href="https://handbook.example.org/">' in index
    assert "https://handbook.example.org/" in (tmp_path / "site" / "sitemap.xml").read_text()


def test_check_says_when_the_data_folder_cannot_be_used(tmp_path: Path) -> None:
    """`serve` then answers every form with 503: check must say so before anyone relies on it.
    (As root every folder can be written, so the fault made here is a file in its place.)"""
    (tmp_path / "data").write_text("not a folder", "utf-8")
    result = forms_server(tmp_path, environment(tmp_path), "check")
    assert result.returncode == 1
    assert f"Data folder: FAILED ({tmp_path / 'data'} is not a folder" in result.stdout
    SubmissionStore((tmp_path / "elsewhere"), base64.urlsafe_b64decode(DATA_KEY))
    usable = forms_server(
        tmp_path, environment(tmp_path, FORMS_DATA_DIR=str(tmp_path / "elsewhere")), "check"
    )
    assert "Data folder: can be written" in usable.stdout
