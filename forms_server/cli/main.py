"""The command line tool for whoever hosts the group.

forms-server serve           build the handbook and serve it with the forms
forms-server check [--send-test]
                             check the configuration and talk to the mail relay
forms-server outbox [--retry] [--dismiss REF ...]
                             list forms not yet delivered (no personal data), retry failed
                             ones, stop reporting one the host has dealt with
forms-server purge           delete records past their retention now
forms-server find (--email ADDRESS | --reference REF | --name NAME)
forms-server find --expiring [DAYS]
                             what is held about a person (kinds and dates only), or the
                             consents that lapse within DAYS (default 30)
forms-server export (--email | --reference | --name) [--csv] [--output FILE]
                             everything held about a person, opened (a subject access request)
forms-server correct REF FIELD VALUE
                             fix a kept value, checked as the form checks it
forms-server erase (--email | --reference | --name) [--yes]
                             erase what is held about a person; says what is held back and why
forms-server keys new | rotate
                             make new keys; seal everything again with the newest data key
forms-server records         print the record of processing (UK GDPR Article 30), in Markdown,
                             from the form definitions, the settings and the group's decisions

Every error the tool expects is one clear line and exit 2; `outbox` exits 1 when a form may not
reach anyone (the same conditions as /healthz); `find`, `export` and `erase` exit 1 when nothing
matched. Each use of a member's rights writes a content-free line to the audit log (ledger.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import uvicorn

from forms_server.config.decisions import DeliveryMode, unsettled
from forms_server.config.env import Settings, load_settings, new_data_key, new_secret_key
from forms_server.delivery.worker import assess, summarise
from forms_server.errors import FormsServerError
from forms_server.handbook.build import build_handbook
from forms_server.handbook.processing import record_of_processing
from forms_server.mail.crypto import load_recipient_keys
from forms_server.mail.messages import DeliveryError, check_relay
from forms_server.rights import Held, Rights, RightsError
from forms_server.storage.acknowledgements import Acknowledgements
from forms_server.storage.files import write_problem
from forms_server.storage.outbox import RecipientStatus
from forms_server.storage.records import SubmissionStore
from forms_server.storage.watch import Watch
from forms_server.web.app import create_app, open_delivery, signer_for

logger = logging.getLogger("forms_server")


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


class PortInUseError(FormsServerError):
    """The port the server should listen on is taken; the message names FORMS_PORT."""


def refuse_a_taken_port(host: str, port: int) -> None:
    """Before anything starts: uvicorn's own "address already in use" names no setting."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(
                f"Port {port} on {host} is already in use ({error.strerror}): another server, "
                "perhaps an earlier `make run`, is listening there. Stop it, or set FORMS_PORT "
                f"to a free port, for example FORMS_PORT={port + 1}."
            ) from error


def serve(settings: Settings) -> int:
    refuse_a_taken_port(settings.host, settings.port)
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
    report_delivery_modes(settings, datetime.now(UTC))
    report_unsettled_decisions(settings)
    try:
        asyncio.run(check_relay(mail, send_test, say))
    except DeliveryError as error:
        say(f"Mail relay: FAILED ({error}).")
        return 1
    return 0


KEY_WARNING = timedelta(days=30)


def report_delivery_modes(settings: Settings, now: datetime) -> None:
    """Each route's mode, and each recipient's key: what it is, when it expires, and a warning
    a month before. A recipient without a key on an encrypted route gets link-only."""
    mail = settings.mail
    keys = load_recipient_keys(dict(mail.recipient_key_files))
    window = settings.decisions.read_window_days
    routes = {
        "facilitators": mail.facilitators,
        "concerns": tuple(dict.fromkeys((*mail.concerns, *mail.facilitator_concerns))),
        "escalation": mail.escalation,
    }
    for route, addresses in routes.items():
        mode = mail.modes.get(route, DeliveryMode.FULL)
        meaning = {
            DeliveryMode.FULL: "the answers are in the email",
            DeliveryMode.LINK_ONLY: f"a private link; the answers stay here {window} day(s)",
            DeliveryMode.ENCRYPTED: "encrypted to each recipient's key; link-only without one",
        }[mode]
        say(f"Delivery to {route}: {mode.value} ({meaning}).")
        if mode is not DeliveryMode.ENCRYPTED:
            continue
        for address in addresses:
            key = keys.get(address.lower())
            if key is None:
                say(f"  {address}: no key, so link-only.")
                continue
            expiry = f"expires {key.expires_at:%Y-%m-%d}" if key.expires_at else "no expiry"
            warning = ""
            if key.expires_at is not None and key.expires_at <= now:
                warning = " EXPIRED: they get link-only until it is renewed."
            elif key.expires_at is not None and key.expires_at - now <= KEY_WARNING:
                warning = " Expires within a month: ask them for a new one."
            say(f"  {address}: {key.kind.value} {key.describe}, {expiry}.{warning}")


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


def open_rights(settings: Settings) -> Rights:
    store = SubmissionStore(
        settings.data_dir, settings.data_keys_bytes, settings.decisions.retention_days
    )
    return Rights(store, settings.data_dir)


def found_for(
    settings: Settings, arguments: argparse.Namespace, action: str
) -> tuple[Rights, list[Held]]:
    """What the arguments match, audited as `action`; says so when nothing does."""
    rights = open_rights(settings)
    found = rights.find(
        email=arguments.email, reference=arguments.reference, name=arguments.name, audit_as=action
    )
    if not found:
        say("Nothing held matches. (Names must match exactly as typed, in any case.)")
    return rights, found


def describe(held: Held) -> str:
    how = ", ".join(held.matched_by)
    return (
        f"{held.reference}  {held.form_kind:<17} received {held.received_at:%Y-%m-%d}  "
        f"{held.where}  (matched by {how})"
    )


def find(settings: Settings, arguments: argparse.Namespace) -> int:
    if arguments.expiring is not None:
        return expiring(settings, open_rights(settings), arguments.expiring)
    _, found = found_for(settings, arguments, "find")
    if not found:
        return 1
    say(f"{len(found)} held:")
    for held in found:
        say(f"  {describe(held)}")
    return 0


def expiring(settings: Settings, rights: Rights, days: int) -> int:
    renewal = settings.decisions.consent_renewal_months
    due = rights.consents_expiring(timedelta(days=days), renewal)
    rights.ledger.audit("find expiring", rights.clock(), len(due))
    what = (
        f"is due for renewal ({renewal} months) or deleted"
        if renewal
        else "is deleted (no renewal period is decided)"
    )
    if not due:
        say(f"No consent {what} within {days} days.")
        return 0
    say(f"{len(due)} consent(s) whose record {what} within {days} days:")
    for record, lapses in due:
        reminded = f", reminded {record.reminded_at:%Y-%m-%d}" if record.reminded_at else ""
        say(
            f"  {record.reference}  signed {record.received_at:%Y-%m-%d}  "
            f"lapses {lapses:%Y-%m-%d}{reminded}"
        )
    say("Search your inbox for a reference to find the member's consent email.")
    return 0


def export(settings: Settings, arguments: argparse.Namespace) -> int:
    rights, found = found_for(settings, arguments, "export")
    if not found:
        return 1
    text = rights.export_csv(found) if arguments.csv else rights.export_json(found)
    if arguments.output is None:
        sys.stdout.write(text)
        return 0
    try:
        descriptor = os.open(arguments.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise RightsError(f"{arguments.output} already exists: choose a new file.") from error
    except OSError as error:
        raise RightsError(f"{arguments.output} cannot be written ({error.strerror}).") from error
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    say(
        f"Exported {len(found)} record(s) to {arguments.output} (readable by you only). It "
        "holds personal data: send it to the member securely, then delete it."
    )
    return 0


def correct(settings: Settings, arguments: argparse.Namespace) -> int:
    record = open_rights(settings).correct(arguments.reference, arguments.field, arguments.value)
    say(f"Corrected {arguments.field} on {record.reference}.")
    return 0


def erase(settings: Settings, arguments: argparse.Namespace) -> int:
    rights, found = found_for(settings, arguments, "erase (asked)")
    if not found:
        return 1
    if not arguments.yes:
        say(f"This would erase {len(found)} held item(s):")
        for held in found:
            say(f"  {describe(held)}")
        say("Run it again with --yes to erase them.")
        return 1
    report = rights.erase(found)
    say(f"Erased {len(report.erased)}:")
    for held in report.erased:
        say(f"  {held.reference}  {held.form_kind}  ({held.where})")
    for held, why in report.held_back:
        say(f"Held back {held.reference} ({held.form_kind}): {why}.")
    if report.erased:
        say(
            "The facilitators still have the emails: ask them to delete those with these "
            "references from their mailboxes."
        )
    return 0


def keys(settings: Settings, arguments: argparse.Namespace) -> int:
    if arguments.action == "new":
        say(f"A new data key:    {new_data_key()}")
        say(f"A new signing key: {new_secret_key()}")
        say(
            "Add the data key LAST in FORMS_DATA_KEY (comma separated) and restart, then run "
            "`forms-server keys rotate`. Add the signing key last in FORMS_SECRET_KEYS."
        )
        return 0
    if len(settings.data_keys) < 2:
        raise RightsError(
            "Only one data key is configured, so there is nothing to rotate from. Make one with "
            "`forms-server keys new` and add it last in FORMS_DATA_KEY first."
        )
    count = open_rights(settings).reseal()
    say(
        f"Sealed {count} value(s) again with the newest data key (the last in FORMS_DATA_KEY). "
        f"You can now remove the other {len(settings.data_keys) - 1} key(s) from FORMS_DATA_KEY."
    )
    return 0


def add_person_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    who = parser.add_mutually_exclusive_group(required=required)
    who.add_argument("--email", help="an email address the person gave, in any case")
    who.add_argument("--reference", help="a form's reference, like 4KX-7QD-M2P")
    who.add_argument("--name", help="a name exactly as the person typed it, in any case")


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
    find_parser = commands.add_parser(
        "find", help="what is held about a person (kinds and dates), or consents that lapse"
    )
    add_person_options(find_parser, required=False)
    find_parser.add_argument(
        "--expiring",
        type=int,
        nargs="?",
        const=30,
        metavar="DAYS",
        help="list consents that lapse within DAYS (default 30)",
    )
    export_parser = commands.add_parser(
        "export", help="everything held about a person, opened, as JSON (or CSV)"
    )
    add_person_options(export_parser)
    export_parser.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    export_parser.add_argument("--output", metavar="FILE", help="a new file to write it to")
    correct_parser = commands.add_parser("correct", help="fix a kept value")
    correct_parser.add_argument("reference", help="the form's reference")
    correct_parser.add_argument("field", help="which value, for example name")
    correct_parser.add_argument("value", help="the corrected value")
    erase_parser = commands.add_parser("erase", help="erase what is held about a person")
    add_person_options(erase_parser)
    erase_parser.add_argument("--yes", action="store_true", help="erase (otherwise: show what)")
    keys_parser = commands.add_parser("keys", help="make new keys, or rotate the data key")
    keys_parser.add_argument("action", choices=("new", "rotate"))
    commands.add_parser(
        "records", help="print the record of processing (UK GDPR Article 30), in Markdown"
    )
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
        if arguments.command == "records":
            sys.stdout.write(
                record_of_processing(
                    settings.group, settings.decisions, settings.undelivered_kept_days
                )
            )
            return 0
        commands = {
            "find": find,
            "export": export,
            "correct": correct,
            "erase": erase,
            "keys": keys,
        }
        return commands[arguments.command](settings, arguments)
    except FormsServerError as error:
        logger.error("%s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
