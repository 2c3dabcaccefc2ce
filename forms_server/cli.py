"""The command line tool for whoever hosts the group.

forms-server serve           build the handbook and serve it with the forms
forms-server check [--send-test]
                             check the configuration and talk to the mail relay
forms-server outbox [--retry]
                             list mail waiting or failed (no personal data); retry failed
forms-server purge           delete records past their retention now
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import uvicorn

from forms_server.app import create_app, open_outbox
from forms_server.handbook import HandbookBuildError, build_handbook
from forms_server.mailer import is_loopback, tls_context
from forms_server.outbox import DELIVERED
from forms_server.settings import MailSettings, Settings, SettingsError, load_settings
from forms_server.store import StoreError, SubmissionStore

logger = logging.getLogger("forms_server")


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def serve(settings: Settings) -> int:
    if settings.build_handbook_on_start:
        build_handbook(settings.handbook_config, settings.site_dir)
    app = create_app(settings)
    logger.info("Serving at http://%s:%d", settings.host, settings.port)
    # No access log: it would record members' addresses and the pages they read.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        server_header=False,
        log_level="info",
    )
    return 0


async def talk_to_relay(mail: MailSettings, send_test: bool) -> None:
    if mail.host is None:
        say("Mail relay: none configured; development uses the embedded catcher (/dev/mail/).")
        return
    if mail.security == "none" and not (mail.allow_plaintext or is_loopback(mail.host)):
        raise SettingsError("FORMS_SMTP_SECURITY=none to a relay on another machine is refused.")
    client = aiosmtplib.SMTP(
        hostname=mail.host,
        port=mail.port,
        use_tls=mail.security == "tls",
        start_tls=False,
        tls_context=None if mail.security == "none" else tls_context(mail),
        timeout=mail.timeout_seconds,
    )
    await client.connect()
    say(f"Connected to {mail.host}:{mail.port}.")
    await client.ehlo()
    say("EHLO: accepted.")
    if mail.security == "starttls":
        await client.starttls()
        say("STARTTLS: the connection is encrypted and the certificate is valid.")
    if mail.username:
        await client.login(mail.username, str(mail.password or ""))
        say("AUTH: the relay accepted our credentials.")
    if send_test:
        message = EmailMessage()
        message["From"] = mail.sender
        message["To"] = ", ".join(mail.facilitators)
        message["Subject"] = "Test message from the forms server"
        message.set_content("This is a test. The forms server can send you email.\n")
        await client.send_message(message, recipients=list(mail.facilitators))
        say(f"Test message accepted for {len(mail.facilitators)} facilitator address(es).")
    await client.quit()


def check(settings: Settings, send_test: bool) -> int:
    mail = settings.mail
    say(f"Configuration: valid ({settings.environment}).")
    say(f"Signing keys: {len(settings.secret_keys)}. Data folder: {settings.data_dir}.")
    say(
        f"Recipients: {len(mail.facilitators)} facilitator(s), {len(mail.safeguarding)} "
        f"safeguarding, {len(mail.organisation_lead)} organisation lead."
    )
    try:
        asyncio.run(talk_to_relay(mail, send_test))
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as error:
        say(f"Mail relay: FAILED ({type(error).__name__}: {error}).")
        return 1
    return 0


def outbox(settings: Settings, retry: bool) -> int:
    box = open_outbox(settings)
    if retry:
        say(f"Failed messages queued again: {box.retry_failed()}. `serve` sends them.")
    now = datetime.now(UTC)
    items = sorted(
        (item for item in box.items() if item.status != DELIVERED),
        key=lambda item: item.received_at,
    )
    if not items:
        say("The outbox is empty: every form received has been delivered.")
        return 0
    say(f"{'reference':<12} {'form':<17} {'status':<8} {'tries':>5} {'age':>8}  last error")
    for item in items:
        age = now - item.received_at
        hours = f"{age.total_seconds() / 3600:.1f}h"
        say(
            f"{item.reference:<12} {item.form_kind:<17} {item.status:<8} {item.attempts:>5} "
            f"{hours:>8}  {item.last_error or ''}"
        )
    health = box.health(now)
    return 1 if health.failed else 0


def purge(settings: Settings) -> int:
    removed = SubmissionStore(settings.data_dir, settings.data_keys_bytes).purge_expired()
    say(f"Deleted {removed} record(s) past their retention period.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forms-server", description="The peer support group's forms server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="build the handbook and serve it with the forms")
    check_parser = commands.add_parser("check", help="check configuration and the mail relay")
    check_parser.add_argument(
        "--send-test", action="store_true", help="also send a test message to the facilitators"
    )
    outbox_parser = commands.add_parser("outbox", help="list mail waiting or failed")
    outbox_parser.add_argument("--retry", action="store_true", help="send failed mail again")
    commands.add_parser("purge", help="delete records past their retention period now")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if arguments.command == "serve":
            return serve(settings)
        if arguments.command == "check":
            return check(settings, arguments.send_test)
        if arguments.command == "outbox":
            return outbox(settings, arguments.retry)
        if arguments.command == "purge":
            return purge(settings)
    except (SettingsError, HandbookBuildError, StoreError) as error:
        logger.error("%s", error)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
