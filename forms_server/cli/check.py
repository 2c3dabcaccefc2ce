"""`forms-server check`: the configuration, the group's decisions, each route's delivery mode
and keys, and a conversation with the mail relay."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.cli.words import age_in_words, say
from forms_server.config.decisions import (
    DECISIONS,
    NOT_DECIDED,
    DecisionSpec,
    DeliveryMode,
    is_decided,
    raw_decisions,
)
from forms_server.config.env import Settings
from forms_server.forms.wording import amount
from forms_server.mail.crypto import load_recipient_keys
from forms_server.mail.messages import DeliveryError
from forms_server.mail.relay import check_relay
from forms_server.services import link_lifetimes
from forms_server.storage.backup import newest_backup
from forms_server.storage.ledger import latest_erasure_in


def check(settings: Settings, send_test: bool) -> int:
    mail = settings.mail
    say(f"Configuration: valid ({settings.environment}).")
    keys = len(settings.secret_keys) or "none yet (the server makes them at its first start)"
    say(f"Signing keys: {keys}. Data folder: {settings.data_dir}.")
    report_link_lifetimes(settings)
    route = settings.decisions.concern_route or "facilitators (not decided)"
    say(
        f"Recipients: {len(mail.facilitators)} facilitator(s); concerns go to {route} "
        f"({len(mail.concerns)} address(es)); concerns about a facilitator to "
        f"{len(mail.facilitator_concerns)} other address(es)."
    )
    report_delivery_modes(settings, datetime.now(UTC))
    report_unsettled_decisions(settings)
    report_decisions_not_written(settings)
    report_backups(settings)
    folder_problem = data_folder_problem(settings.data_dir)
    say(
        f"Data folder: FAILED ({folder_problem})."
        if folder_problem
        else "Data folder: can be written."
    )
    try:
        asyncio.run(check_relay(mail, send_test, say))
    except DeliveryError as error:
        say(f"Mail relay: FAILED ({error}).")
        return 1
    return 1 if folder_problem else 0


def data_folder_problem(data_dir: Path) -> str | None:
    """Why the server could not keep forms in `data_dir`, trying as it would (a file written
    and removed); a folder not made yet is tried through the nearest one that exists."""
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder: set FORMS_DATA_DIR to a folder this user can write"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return (
            f"{existing} cannot be written by this user ({error.strerror}): give the server's "
            "user the folder, for example with chown"
        )
    return None


def report_link_lifetimes(settings: Settings) -> None:
    ages = link_lifetimes(settings)
    lifetimes = ", ".join(
        f"{purpose.value} {age_in_words(seconds)}" for purpose, seconds in ages.items()
    )
    say(f"Links and pages live at most: {lifetimes}.")
    say(
        "Key rotation: add the new signing key last; remove an old one no sooner than "
        f"{age_in_words(max(ages.values()))} later (the longest lifetime above), "
        "or links still in people's inboxes stop working."
    )


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
            DeliveryMode.LINK_ONLY: "a private link; the answers stay here "
            + amount(window, "day"),
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


@dataclass(frozen=True)
class Unsettled:
    spec: DecisionSpec
    # "not decided", or "at its default" (a value the group has not changed).
    state: str
    parts: tuple[str, ...]  # for a decision per form: which ones


def unsettled(group: Mapping[str, Any]) -> list[Unsettled]:
    """Every decision still "not decided" or at its default, for `forms-server check`."""
    raw = raw_decisions(group)
    found = []
    for spec in DECISIONS:
        value = raw[spec.key]
        if isinstance(spec.default, Mapping):
            open_parts = tuple(part for part, given in value.items() if not is_decided(given))
            default_parts = tuple(
                part
                for part, given in value.items()
                if is_decided(given) and given == spec.default[part]
            )
            if open_parts:
                found.append(Unsettled(spec, NOT_DECIDED, open_parts))
            if default_parts:
                found.append(Unsettled(spec, "at its default", default_parts))
        elif not is_decided(value):
            found.append(Unsettled(spec, NOT_DECIDED, ()))
        elif value == spec.default:
            found.append(Unsettled(spec, "at its default", ()))
    return found


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


def report_decisions_not_written(settings: Settings) -> None:
    """Decisions this version knows that the group's mkdocs.yml does not mention: added by an
    upgrade since it was written, so they stand at their default until the group decides."""
    written = settings.group.get("decisions")
    written = written if isinstance(written, Mapping) else {}
    missing = [spec for spec in DECISIONS if spec.key not in written]
    if not missing:
        return
    say(f"Decisions new since your mkdocs.yml was written: {len(missing)}")
    for spec in missing:
        say(f"  - {spec.key}: decides {spec.meaning.rstrip('.')}.")
    say("  Add them under extra.group.decisions in mkdocs.yml; the README lists each one.")


def report_backups(settings: Settings) -> None:
    """Whether a backup would bring back something erased since, and where the erasures are
    kept apart from the disk."""
    latest_erasure = latest_erasure_in(settings.data_dir / "erasures.jsonl")
    if settings.backup_dir is None:
        say("Backups: FORMS_BACKUP_DIR is not set (`forms-server backup` writes there).")
        newest = None
    else:
        newest = newest_backup(settings.backup_dir)
        when = f"the newest made {newest:%Y-%m-%d %H:%M} UTC" if newest else "none yet"
        say(f"Backups in {settings.backup_dir}: {when}.")
    if latest_erasure is not None and newest is not None and newest < latest_erasure:
        erased = f"{latest_erasure:%Y-%m-%d %H:%M} UTC"
        say(
            f"!! The newest backup is older than the latest erasure ({erased}): restored "
            "alone, it would bring back what was erased. Make a new one with `forms-server "
            "backup`, and keep FORMS_ERASURE_LEDGER_COPY for `restore`. !!"
        )
    if settings.erasure_ledger_copy is None:
        say(
            "Erasures: FORMS_ERASURE_LEDGER_COPY is not set. Set it to a file on other storage, "
            "so an erasure survives the loss of this disk."
        )
