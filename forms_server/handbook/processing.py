"""What the forms server holds, where, for how long, and in what form: one description, from the
form definitions, the stores' own field lists and the group's decisions.

The privacy notice's tables (through the handbook's hook) and the record of processing
(`forms-server records`, UK GDPR Article 30) are both written from here, and a test compares
this description with the keys of the files the server really writes, so none of them can drift
from what the code does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from forms_server.config.decisions import Decisions, DeliveryMode
from forms_server.forms.definitions import PRIVACY_GROUPS
from forms_server.forms.wording import amount, unique
from forms_server.storage.draft_files import DRAFTS_FOLDER
from forms_server.web.drafts import COOKIE

# Each key of a kept record's file (store.py) that is not sealed, in words. The test checks
# that these are exactly the keys the store writes beside `sealed`.
RECORD_IN_THE_CLEAR: Mapping[str, str] = {
    "reference": "the reference number",
    "form_kind": "which form it was",
    "received_at": "when it was sent",
    "delivered_at": "when its email was delivered",
    "expires_at": "when it will be deleted",
    "reminded_at": "when we reminded you to sign again, if we did",
}

# The same for a form on its way (outbox.py): everything you wrote is in `sealed`.
OUTBOX_IN_THE_CLEAR: Mapping[str, str] = {
    "format": "",
    "reference": "the reference number",
    "form_kind": "which form it was",
    "received_at": "when it was sent",
    "urgent": "whether it says someone may be at risk",
    "retry_from": "",
    "route": "who it goes to, by role (for example: the facilitators, a copy to you)",
    "recipients": "each recipient's delivery state (a copy to you is written as 'member-copy', "
    "never your address)",
    "recorded": "",
    "record_attempts": "",
    "next_record_at": "",
    "problem": "why it could not be delivered, if it could not",
    "failed_at": "when it failed, if it did",
    "content_erased_at": "when its content was deleted, if it failed",
}

# A concern or urgent notice waiting for someone to pick it up (escalation.py).
WATCH_IN_THE_CLEAR: Mapping[str, str] = {
    "reference": "the reference number",
    "form_kind": "which form it was",
    "urgent": "whether it says someone may be at risk",
    "received_at": "when it was sent",
    "escalate_at": "when it is sent on if nobody picks it up",
    "escalated_at": "when it was sent on, if it was",
    "reached": "the addresses of the recipients it reached (never yours)",
    "recipients": "each escalation recipient's delivery state",
    "unreadable": "whether its file on the server was damaged",
}


# An erasure held back until the form is picked up (held_erasures.py); the file's name is the
# reference.
HELD_IN_THE_CLEAR: Mapping[str, str] = {
    "form_kind": "which form it was",
    "reason": "who asked, and why",
    "asked_at": "when",
    "until": "the day it is deleted at the latest",
}


@dataclass(frozen=True)
class Holding:
    """One kind of thing the server holds."""

    what: str
    sealed: tuple[str, ...]  # encrypted with the server's data key
    clear: tuple[str, ...]  # not encrypted
    kept_for: str
    file: str


def period(months: int) -> str:
    return "1 month" if months == 1 else f"{months} months"


def in_words(mapping: Mapping[str, str], exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(
        unique([phrase for key, phrase in mapping.items() if phrase and key not in exclude])
    )


def kept_sealed(group: str) -> tuple[str, ...]:
    forms = PRIVACY_GROUPS[group]
    phrases = [spec.privacy for form in forms for spec in form.fields if spec.kept]
    if any(form.binds_guidelines for form in forms):
        phrases.append("which version of the guidelines you agreed to")
    return tuple(unique(phrases))


NAMES: Mapping[str, str] = {
    "consent": "consent forms",
    "leave": "leave notices",
    "concern": "concerns",
}


def names_of(group: str) -> str:
    return NAMES.get(group, group)


# A link-only form waiting to be read (reading.py): everything you wrote is in `sealed`.
READABLE_IN_THE_CLEAR: Mapping[str, str] = {
    "reference": "the reference number",
    "form_kind": "which form it was",
    "urgent": "whether it says someone may be at risk",
    "received_at": "when its email was sent",
    "until": "when it will be deleted",
    "erased_at": "when it was deleted, if early",
    "reads": "who read it (the address of the person it was for, never yours) and when",
}


# A conversation with a member (conversations.py): every message is in `sealed`.
CONVERSATION_IN_THE_CLEAR: Mapping[str, str] = {
    "reference": "the reference number",
    "form_kind": "which form it was",
    "created_at": "when you sent the form",
    "routes": "who received the form, by role (for example: the facilitators)",
    "receipt": "a slow hash of your receipt, which cannot be turned back into it",
    "last_message_at": "when the last message was written",
    "closed_at": "when you deleted it, if nobody had yet marked your form as being dealt with",
    "outgoing": "whether each message on its way to someone has been delivered, with the "
    "address of each person who received the form (never yours)",
}


def conversation_holdings(decisions: Decisions) -> list[Holding]:
    days = amount(decisions.conversation_kept_days, "day")
    return [
        Holding(
            what="Messages between us and you about a concern or a left-early notice",
            sealed=(
                "every message, ours and yours",
                "your email address, if you asked us to email you when there is a new message",
            ),
            clear=in_words(CONVERSATION_IN_THE_CLEAR),
            kept_for=f"{days} after the last message, and never longer than the form's record; "
            "you can delete it yourself at any time; until someone has marked your form as being "
            "dealt with, the people who received it can still read it",
            file="conversations/",
        )
    ]


def link_only_holdings(decisions: Decisions) -> list[Holding]:
    """Only when some route is link-only, or encrypted (link-only for anyone without a key)."""
    if all(mode is DeliveryMode.FULL for mode in decisions.delivery_mode.values()):
        return []
    days = amount(decisions.read_window_days, "day")
    return [
        Holding(
            what="A form sent as a private link, so the people who receive it can read it",
            sealed=("everything you wrote",),
            clear=in_words(READABLE_IN_THE_CLEAR),
            kept_for=f"what you wrote: {days} from when its email was sent, whether or not "
            f"anyone has read it (if it is sent on because nobody picked it up, {days} from "
            "then); a concern, or a form that says someone may be at risk, also until someone "
            "marks it as being dealt with; who read it: as long as the form's record",
            file="readable/",
        )
    ]


def cookie_in_words(decisions: Decisions) -> str:
    """The privacy notice's paragraph on the one cookie, from what the server sets and does."""
    minutes = amount(decisions.draft_idle_minutes, "minute")
    return (
        f'When you continue from a form, our forms server sets one cookie, named "{COOKIE}". '
        "It holds a random key that locks what you typed, so only your browser can open it. "
        "We never keep that key, so we cannot read a form you have not sent. "
        "The cookie is strictly necessary for the forms, so we do not ask before setting it. "
        "It is not used to track you and has no expiry date. "
        "Your browser deletes it when you close it, unless it is set to reopen your tabs. "
        "Exit this page deletes it at once, with what you typed. Otherwise, what you typed is "
        f"deleted when you send it, or {minutes} after your last step."
    )


def holdings(decisions: Decisions, undelivered_kept_days: int) -> list[Holding]:
    """Everything the server holds about people, in the order a member meets it."""
    held = [
        Holding(
            what="A form you have filled in but not sent yet",
            sealed=(
                "everything you wrote, locked with a key only your browser holds (in the "
                "cookie below), not ours",
            ),
            clear=("when you last used it",),
            kept_for=f"until you send it or use Exit this page, or "
            f"{decisions.draft_idle_minutes} minutes after your last step",
            file=f"{DRAFTS_FOLDER}/",
        ),
        Holding(
            what="Any form, on its way to the people who receive it",
            sealed=("everything you wrote", "the address for your copy, if you asked for one"),
            clear=in_words(OUTBOX_IN_THE_CLEAR),
            kept_for="until its email is delivered, usually seconds",
            file="outbox/pending/",
        ),
    ]
    for group in PRIVACY_GROUPS:
        # Only a consent is ever reminded, and only when the group renews consent.
        renewed = group == "consent" and decisions.consent_renewal_months is not None
        held.append(
            Holding(
                what=f"The record of {names_of(group)}, once delivered",
                sealed=kept_sealed(group),
                clear=in_words(RECORD_IN_THE_CLEAR, () if renewed else ("reminded_at",)),
                kept_for=f"{period(decisions.retention_months[group])} from when you send it",
                file="submissions.json",
            )
        )
    longest = max(decisions.retention_months.values())
    held += [
        Holding(
            what="A form whose email could not be delivered",
            sealed=("everything you wrote",),
            clear=in_words(OUTBOX_IN_THE_CLEAR),
            kept_for=f"what you wrote: up to {undelivered_kept_days} days, so it can be sent "
            "once the problem is fixed; the rest: until someone has dealt with it",
            file="outbox/pending/",
        ),
        Holding(
            what="A concern, or a form that says someone may be at risk, until someone picks it up",
            sealed=("everything you wrote",),
            clear=in_words(WATCH_IN_THE_CLEAR),
            kept_for="what you wrote: until someone marks it as being dealt with, or it has "
            "been sent on because nobody did in time; the rest: until someone marks it, at "
            "the latest as long as the form's record",
            file="watch/",
        ),
        Holding(
            what="A request to delete a form that says someone may be at risk, made before "
            "anyone picked it up",
            sealed=(),
            clear=("the reference number", *in_words(HELD_IN_THE_CLEAR)),
            kept_for="until someone marks the form as being dealt with, or its record's time "
            "ends, whichever comes first; then the form is deleted",
            file="held-erasures/",
        ),
        *link_only_holdings(decisions),
        *conversation_holdings(decisions),
        Holding(
            what="Who marked a form as being dealt with",
            sealed=(),
            clear=(
                "the reference number",
                "which form it was",
                "the address of the person who marked it (never yours)",
                "when",
            ),
            kept_for="as long as the form's record",
            file="acknowledged/",
        ),
        Holding(
            what="A form's reference, once delivered, so it cannot be sent twice",
            sealed=(),
            clear=("the reference number",),
            kept_for="a few hours",
            file="outbox/delivered/",
        ),
        Holding(
            what="How many copies an email address has had today",
            sealed=(),
            clear=("a keyed hash of the address (not the address)", "when each copy was sent"),
            kept_for="1 day",
            file="member-copies.json",
        ),
        Holding(
            what="A log of each use of members' rights (find, export, correct, delete, withdraw)",
            sealed=(),
            clear=(
                "what was done",
                "when",
                "how many records",
                "a keyed hash instead of an address, name or reference",
            ),
            kept_for=f"{period(longest)}, our longest retention period",
            file="audit.jsonl",
        ),
        Holding(
            what="A backup of everything above (except forms not sent yet), in case a fault "
            "loses the server's disk",
            sealed=(
                "all of it, encrypted again with a key kept apart from the server; what you "
                "wrote stays sealed inside it as above",
            ),
            clear=(),
            kept_for=f"{decisions.backup_kept_days} days from when it was made, then deleted; "
            "if one is ever restored, every form deleted since it was made is deleted again",
            file="backups (FORMS_BACKUP_DIR)",
        ),
        Holding(
            what="A note of each form deleted early (withdrawn, deleted, replaced)",
            sealed=(),
            clear=("a keyed hash of its reference", "which form it was", "when", "why"),
            kept_for="until the form would have been deleted anyway, so it stays deleted if a "
            "backup is restored",
            file="erasures.jsonl",
        ),
        Holding(
            what="A message the people who received a form must get (for example: you "
            "withdrew your consent; someone is dealing with it; it has been deleted)",
            sealed=(),
            clear=(
                "the reference number",
                "what happened",
                "the addresses of the people it goes to (never yours)",
            ),
            kept_for="until it is delivered",
            file="outbox/notices/",
        ),
        Holding(
            what="A note that a message was delivered, if the disk was too full to write it "
            "anywhere else (so it is never sent twice)",
            sealed=(),
            clear=("the reference number", "the address it went to (never yours)", "when"),
            kept_for="until the form's own file can be written, usually seconds",
            file="outbox/accepted.journal",
        ),
    ]
    return held


def parts_of(kept_for: str) -> list[str]:
    """A "How long" cell's parts ("what you wrote: ...; the rest: ..."), one per list item."""
    return kept_for.split("; ")


def cell(phrases: list[str] | tuple[str, ...]) -> str:
    """One phrase as it is; more as a list, so a screen reader counts them and no cell is one
    sentence of seventy words joined by semicolons."""
    if not phrases:
        return "nothing"
    if len(phrases) == 1:
        return escape(phrases[0])
    return "<ul>" + "".join(f"<li>{escape(phrase)}</li>" for phrase in phrases) + "</ul>"


def holdings_html(decisions: Decisions, undelivered_kept_days: int) -> str:
    """The privacy notice's table, in HTML: its cells hold lists, which Markdown tables cannot."""
    rows = "".join(
        "<tr>"
        f"<td>{escape(holding.what)}</td>"
        f"<td>{cell(holding.sealed)}</td>"
        f"<td>{cell(holding.clear)}</td>"
        f"<td>{cell(parts_of(holding.kept_for))}</td>"
        "</tr>"
        for holding in holdings(decisions, undelivered_kept_days)
    )
    return (
        "<table>\n<thead><tr><th>What</th><th>Encrypted</th><th>Not encrypted</th>"
        f"<th>How long</th></tr></thead>\n<tbody>{rows}</tbody>\n</table>"
    )


def holdings_table(decisions: Decisions, undelivered_kept_days: int) -> str:
    """The same table in Markdown, for the record of processing (`forms-server records`)."""
    rows = [
        "| What | Encrypted | Not encrypted | How long |",
        "| --- | --- | --- | --- |",
    ]
    for holding in holdings(decisions, undelivered_kept_days):
        sealed = "; ".join(holding.sealed) or "nothing"
        rows.append(
            f"| {holding.what} | {sealed} | {'; '.join(holding.clear)} | {holding.kept_for} |"
        )
    return "\n".join(rows)


# -- The record of processing (UK GDPR Article 30) ---------------------------------------------
