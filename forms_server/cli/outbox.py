"""`forms-server outbox` and `forms-server purge`: what the host must know and can do about
forms on their way, and the same housekeeping the server does every hour.

`outbox` lists every form not yet delivered, urgent first (nothing a member typed), unreadable
files moved aside, escalations refused or overdue, members' answers refused, erasures held
back and each problem in
words, from the same health assessment as `/healthz`: it exits 1 when a form may not reach
anyone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from forms_server.cli.words import age_in_words, say
from forms_server.config.env import Settings
from forms_server.delivery.housekeeping import keep_house
from forms_server.lifecycle import priority
from forms_server.services import Services, open_services
from forms_server.storage.folder_store import safe_name
from forms_server.storage.outbox_items import (
    MEMBER_COPY,
    ItemStatus,
    RecipientState,
    RecipientStatus,
)

# A quarantined file's name, as `forms-server outbox` lists it.
QUARANTINED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}\.json\.[0-9]{8}T[0-9]{6,12}$")


def refused_in_words(reference: str, recipient: RecipientState) -> str:
    """A refused message of a conversation: a member's answer to a recipient, by address, or
    "There is a message for you" to the member (never their address)."""
    if recipient.address == MEMBER_COPY:
        return (
            f"Message alert refused: {reference}, to the member's own address: "
            f"{recipient.last_error}"
        )
    return f"Answer refused: {reference} to {recipient.address}: {recipient.last_error}"


def checked_names(dismiss: Sequence[str]) -> list[str]:
    """Every name, before anything is done: a path or a pattern stops the command (exit 2)."""
    return [name if QUARANTINED_NAME.match(name) else safe_name(name) for name in dismiss]


def dismiss_names(services: Services, names: Sequence[str], every: bool, yes: bool) -> int | None:
    box = services.outbox
    if every:
        names = box.dismissable() + [
            conversation.reference
            for conversation in services.files.conversations.waiting()
            if conversation.failed
        ]
        if not names:
            say("Nothing to dismiss: no failed form and no unreadable file.")
        elif not yes:
            say(f"This would stop reporting {len(names)} failed form(s) or unreadable file(s):")
            for name in names:
                say(f"  {name}")
            say("Run it again with --all --yes to dismiss them all.")
            return 1
    for name in names:
        if box.dismiss(name) or services.files.conversations.dismiss(name):
            say(f"Dismissed {name}: it is no longer reported.")
        else:
            say(f"Nothing to dismiss for {name}: no failed form or unreadable file has it.")
    return None


def retry_failed(services: Services) -> tuple[int, int]:
    """After fixing the relay: failed recipients of forms, escalations and notices are tried
    again from now (those who have it are never sent it again). Returns how many were queued
    again, and how many could not be (their content is erased)."""
    now = services.files.clock()
    retried = erased = 0
    for item in services.outbox.pending().items:
        if item.status is not ItemStatus.FAILED:
            continue
        if not item.sealed:
            erased += 1
            continue
        recipients = tuple(r.tried_again() for r in item.recipients)
        services.outbox.save(
            replace(item, recipients=recipients, retry_from=now, problem=None, failed_at=None)
        )
        retried += 1
    for watched in services.files.watch.all():
        if watched.refused:
            again = tuple(r.tried_again(from_scratch=True) for r in watched.recipients)
            services.files.watch.replace(
                replace(watched, recipients=again, escalated_at=None, escalate_at=now)
            )
            retried += 1
    for notice in services.files.notices.pending():
        if notice.failed_to:
            services.files.notices.save(replace(notice, failed_to=(), next_attempt_at=None))
            retried += 1
    retried += services.files.conversations.retry_failed(now)
    return retried, erased


def outbox(
    settings: Settings, retry: bool, dismiss: Sequence[str], every: bool = False, yes: bool = False
) -> int:
    names = checked_names(dismiss)
    services = open_services(settings)
    if (names or every) and (stop := dismiss_names(services, names, every, yes)) is not None:
        return stop
    if retry:
        retried, erased = retry_failed(services)
        say(f"Failed messages queued again: {retried}. `serve` sends them.")
        if erased:
            say(
                f"{erased} failed form(s) cannot be sent again: their content was erased. "
                "Ask the members to send them again, then dismiss them."
            )
    worker = services.worker
    asyncio.run(worker.inspect())
    now = datetime.now(UTC)
    items = sorted(worker.sending.index.values(), key=lambda i: priority(i.urgent, i.received_at))
    quarantined = services.outbox.quarantined()
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
        say(f"Unreadable file moved aside: {services.outbox.quarantine_folder / name}")
    if not items and not quarantined:
        say("The outbox is empty: every form received has been delivered.")
    for watched in worker.escalation.watched.values():
        for refused in watched.refused:
            say(
                f"Escalation refused: {watched.reference} ({watched.form_kind}) to "
                f"{refused.address}: {refused.last_error}"
            )
    for watched in worker.escalation.overdue:
        since = now - (watched.escalated_at or now)
        say(
            f"Overdue: {watched.reference} ({watched.form_kind}"
            f"{', urgent' if watched.urgent else ''}) was escalated "
            f"{age_in_words(since.total_seconds())} ago and nobody has marked it as being "
            "dealt with."
        )
    for conversation in worker.answers.waiting:
        for failed in conversation.failed:
            say(refused_in_words(conversation.reference, failed.recipient))
    for held in services.files.held.all():
        say(
            f"Erasure held back: {held.reference} ({held.form_kind}), asked "
            f"{held.asked_at:%Y-%m-%d}; done when someone picks it up, or on "
            f"{held.until:%Y-%m-%d} at the latest."
        )
    health = worker.health(now)
    for problem in health.problems:
        say(f"Problem: {problem}")
    return 0 if health.ok else 1


def purge(settings: Settings) -> int:
    """The server's own hourly housekeeping, now."""
    services = open_services(settings)
    swept = keep_house(services.files, datetime.now(UTC), services.housekeeping.replay_window)
    say(
        f"Deleted {swept.records} record(s) past their retention period, and what was left of "
        f"{swept.notes} form(s) past theirs; ended {swept.read_windows} read window(s); forgot "
        f"{swept.markers} delivered marker(s)."
    )
    return 0
