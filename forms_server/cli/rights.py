"""Members' rights, one command each: find, export, correct, erase, and the data keys.

Every one writes a content-free line to the audit log (storage/ledger.py); an erasure is the
lifecycle's decision (lifecycle.py), so a form that says someone may be at risk and that nobody
has picked up is held back, and the command says until when.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from forms_server.cli.words import say
from forms_server.config.decisions import DeliveryMode
from forms_server.config.env import Settings
from forms_server.config.keys import new_data_key, new_secret_key
from forms_server.delivery.renewals import consents_expiring
from forms_server.export import as_csv, as_json
from forms_server.rights import FAILED, Held, Rights, RightsError
from forms_server.services import open_services


def open_rights(settings: Settings) -> Rights:
    return open_services(settings).rights


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
    due = consents_expiring(rights.store.all(), timedelta(days=days), renewal, rights.clock())
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
    text = (
        as_csv(found, rights.data_dir)
        if arguments.csv
        else as_json(found, rights.data_dir, rights.clock())
    )
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
    report = rights.erase(found, dry_run=not arguments.yes)
    if not arguments.yes:
        if report.erased:
            say(f"This would erase {len(report.erased)} held item(s):")
            for held in report.erased:
                say(f"  {describe(held)}")
        for held, why in report.held_back:
            say(f"{held.reference} ({held.form_kind}) would be held back: {why}.")
        say("Run it again with --yes to erase them.")
        return 1
    say(f"Erased {len(report.erased)}:")
    for held in report.erased:
        say(f"  {held.reference}  {held.form_kind}  ({held.where})")
    for held, why in report.held_back:
        say(f"Held back {held.reference} ({held.form_kind}): {why}.")
    for line in what_mailboxes_hold(settings, report.erased):
        say(line)
    return 0


def what_mailboxes_hold(settings: Settings, erased: list[Held]) -> list[str]:
    """Only what is true: whose mailbox holds the answers of each erased form."""
    lines = []
    for reference in dict.fromkeys(held.reference for held in erased):
        kinds = {held.form_kind for held in erased if held.reference == reference}
        places = {held.where for held in erased if held.reference == reference}
        if places == {FAILED}:
            lines.append(f"{reference} never reached anyone: no mailbox holds it.")
            continue
        route = "concerns" if any(kind == "concern" for kind in kinds) else "facilitators"
        mode = settings.mail.modes.get(route, DeliveryMode.FULL)
        if mode is DeliveryMode.LINK_ONLY:
            lines.append(
                f"{reference}: its emails held no answers (link-only); their links now say it "
                "has been deleted."
            )
        else:
            lines.append(
                f"{reference}: the emails to the {route} hold its answers: ask them to delete "
                "the emails with this reference from their mailboxes."
            )
    return lines


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
