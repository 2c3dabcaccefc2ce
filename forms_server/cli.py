"""The command line tool for whoever hosts the group.

forms-server serve           build the handbook and serve it with the forms
forms-server check [--send-test]
                             check the configuration and talk to the mail relay
forms-server outbox [--retry] [--dismiss REF ...]
                             list forms not yet delivered (no personal data), retry failed
                             ones, stop reporting one the host has dealt with
forms-server purge           delete records past their retention now

Every error the tool expects is one clear line and exit 2; `outbox` exits 1 when a form may not
reach anyone (the same conditions as /healthz).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import uvicorn

from forms_server.acknowledgements import Acknowledgements
from forms_server.app import create_app, open_delivery, signer_for
from forms_server.decisions import unsettled
from forms_server.delivery import assess, summarise
from forms_server.errors import FormsServerError
from forms_server.escalation import Watch
from forms_server.files import write_problem
from forms_server.handbook import build_handbook
from forms_server.mailer import DeliveryError, check_relay
from forms_server.outbox import RecipientStatus
from forms_server.settings import Settings, load_settings
from forms_server.store import SubmissionStore

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


def check(settings: Settings, send_test: bool) -> int:
    mail = settings.mail
    say(f"Configuration: valid ({settings.environment}).")
    say(f"Signing keys: {len(settings.secret_keys)}. Data folder: {settings.data_dir}.")
    signer = signer_for(settings)
    lifetimes = ", ".join(
        f"{purpose.value} {age_in_words(seconds)}"
        for purpose, seconds in signer.max_age_by_purpose.items()
    )
    say(f"Links and pages live at most: {lifetimes}.")
    say(
        "Key rotation: add the new signing key last; remove an old one no sooner than "
        f"{age_in_words(signer.longest_lifetime_seconds)} later (the longest lifetime above), "
        "or links still in people's inboxes stop working."
    )
    route = settings.decisions.concern_route or "facilitators (not decided)"
    say(
        f"Recipients: {len(mail.facilitators)} facilitator(s); concerns go to {route} "
        f"({len(mail.concerns)} address(es)); concerns about a facilitator to "
        f"{len(mail.facilitator_concerns)} other address(es)."
    )
    report_unsettled_decisions(settings)
    try:
        asyncio.run(check_relay(mail, send_test, say))
    except DeliveryError as error:
        say(f"Mail relay: FAILED ({error}).")
        return 1
    return 0


def report_unsettled_decisions(settings: Settings) -> None:
    """What the group has not decided is not published; in production a host should know."""
    open_decisions = unsettled(settings.group)
    if not open_decisions:
        say("Group decisions: all made (extra.group.decisions).")
        return
    heading = f"Group decisions not yet made, or at their default: {len(open_decisions)}"
    if settings.is_production:
        say("")
        say(f"!! {heading.upper()} !!")
        say("!! The handbook and the forms say nothing about a decision that is not made. !!")
    else:
        say(f"{heading}.")
    for entry in open_decisions:
        parts = f" ({', '.join(entry.parts)})" if entry.parts else ""
        say(
            f"  - {entry.spec.key}{parts}: {entry.state}. Decides {entry.spec.meaning.rstrip('.')}."
        )
    say("  Set them under extra.group.decisions in mkdocs.yml; the README lists each one.")


def age_in_words(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.0f}d"


def outbox(settings: Settings, retry: bool, dismiss: Sequence[str]) -> int:
    """Everything not yet delivered, urgent first, and what needs the host: exit 1 on any of
    the conditions that make /healthz fail."""
    delivery = open_delivery(settings)
    box = delivery.outbox
    for reference in dismiss:
        if box.dismiss(reference):
            say(f"Dismissed {reference}: it is no longer reported.")
        else:
            say(f"Nothing to dismiss for {reference}: no failed form or unreadable file has it.")
    if retry:
        retried, erased = delivery.retry_failed()
        say(f"Failed messages queued again: {retried}. `serve` sends them.")
        if erased:
            say(
                f"{erased} failed form(s) cannot be sent again: their content was erased. "
                "Ask the members to send them again, then dismiss them."
            )
    now = datetime.now(UTC)
    read = box.pending()
    items = sorted(read.items, key=lambda item: (not item.urgent, item.received_at))
    quarantined = box.quarantined()
    if items:
        say(
            f"{'reference':<12} {'form':<17} {'urgent':<6} {'status':<8} {'sent to':>7} "
            f"{'tries':>5} {'age':>5}  last error"
        )
    for item in items:
        accepted = sum(1 for r in item.recipients if r.status is RecipientStatus.ACCEPTED)
        status = item.status.value + (" (content erased)" if item.content_erased_at else "")
        say(
            f"{item.reference:<12} {item.form_kind:<17} {'yes' if item.urgent else 'no':<6} "
            f"{status:<8} {f'{accepted}/{len(item.recipients)}':>7} {item.attempts:>5} "
            f"{age_in_words((now - item.received_at).total_seconds()):>5}  "
            f"{item.last_error or ''}"
        )
    for name in quarantined:
        say(f"Unreadable file moved aside: {box.quarantine_folder / name}")
    health = assess(
        summarise(read.items, len(quarantined)),
        write_problem(box.folder),
        box.last_beat(),
        now,
        settings.health,
    )
    if not items and not quarantined:
        say("The outbox is empty: every form received has been delivered.")
    acknowledgements = Acknowledgements(settings.data_dir, settings.decisions.retention_days)
    overdue = [
        watched
        for watched in Watch(settings.data_dir).all()
        if watched.escalated_at is not None and acknowledgements.get(watched.reference) is None
    ]
    for watched in overdue:
        since = now - (watched.escalated_at or now)
        say(
            f"Overdue: {watched.reference} ({watched.form_kind}"
            f"{', urgent' if watched.urgent else ''}) was escalated "
            f"{age_in_words(since.total_seconds())} ago and nobody has marked it as being "
            "dealt with."
        )
    for problem in health.problems:
        say(f"Problem: {problem}")
    return 0 if health.ok and not overdue else 1


def purge(settings: Settings) -> int:
    removed = SubmissionStore(
        settings.data_dir, settings.data_keys_bytes, settings.decisions.retention_days
    ).purge_expired()
    acknowledged = Acknowledgements(
        settings.data_dir, settings.decisions.retention_days
    ).purge_expired(datetime.now(UTC))
    say(
        f"Deleted {removed} record(s) and {acknowledged} acknowledgement(s) past their "
        "retention period."
    )
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
    outbox_parser = commands.add_parser(
        "outbox", help="list forms not yet delivered, and anything that needs you"
    )
    outbox_parser.add_argument("--retry", action="store_true", help="send failed mail again")
    outbox_parser.add_argument(
        "--dismiss",
        action="append",
        default=[],
        metavar="REF",
        help="stop reporting a failed form (or an unreadable file) you have dealt with",
    )
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
            return outbox(settings, arguments.retry, arguments.dismiss)
        if arguments.command == "purge":
            return purge(settings)
    except FormsServerError as error:
        logger.error("%s", error)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
