"""The record of processing (UK GDPR Article 30), in Markdown, from the form definitions, the
settings and the group's decisions: `forms-server records`, and a handbook page that holds
`{{ processing.record }}`. What is held, and for how long, is processing.py's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forms_server.config.decisions import ConcernRoute, Decisions
from forms_server.forms.definitions import PRIVACY_GROUPS
from forms_server.forms.fields import FormDefinition
from forms_server.forms.wording import privacy_collected
from forms_server.handbook.delivery_wording import delivery_in_words
from forms_server.handbook.processing import holdings_table, names_of, period

PURPOSES: Mapping[str, tuple[str, ...]] = {
    "consent": (
        "to add members to the group and send them the meeting link",
        "to know who has attended, by the name they use in meetings",
        "to keep a record that each member agreed to the guidelines that keep the group safe",
    ),
    "leave": (
        "to plan meetings and offer places to others",
        "to follow the three missed meetings rule fairly",
        "to check that a member who left a session early is safe",
    ),
    "concern": ("to look into concerns and to keep people safe",),
}

PEOPLE: Mapping[str, str] = {
    "consent": "people who join the group",
    "leave": "members of the group",
    "concern": "anyone who raises a concern, and the people a concern is about",
}

SECURITY_MEASURES = (
    "Answers are sealed with AES-256-GCM before they are written to disk; the key is kept "
    "outside the data folder in production and can be rotated (`forms-server keys rotate`).",
    "Data files and folders are readable by the server's own user only (0600 and 0700).",
    "Mail goes to the relay over TLS (STARTTLS or TLS); plain text is refused to any relay "
    "on another machine.",
    "Every link in an email is signed and expires; a link for one form never opens another.",
    "The server's logs hold no IP address, no name, no address and no answer.",
    "The handbook and the forms make no request to any other website.",
    "Each use of members' rights leaves a content-free audit line.",
)


def receivers(decisions: Decisions, group: str) -> str:
    if group != "concern":
        return "the facilitators, by email"
    lead = decisions.concern_route is ConcernRoute.SAFEGUARDING_LEAD
    first = "the safeguarding lead and deputy" if lead else "the facilitators"
    other = decisions.facilitator_concern_email or "a contact who is not a facilitator"
    return f"{first}, by email; a concern about a facilitator goes to {other} instead"


def special_category(forms: tuple[FormDefinition, ...]) -> bool:
    return any(form.binds_guidelines or form.shows_crisis_contacts for form in forms)


def record_of_processing(
    group: Mapping[str, Any], decisions: Decisions, undelivered_kept_days: int
) -> str:
    """The record of processing activities, in Markdown."""
    lines = [
        "# Record of processing",
        "",
        f"Controller: {group['organisation']}, for {group['name']}. "
        f"Contact: {group['privacy_email']}.",
        "",
    ]
    for name, forms in PRIVACY_GROUPS.items():
        lines += [
            f"## {names_of(name).capitalize()}",
            "",
            "- Purposes: " + "; ".join(PURPOSES[name]) + ".",
            f"- People: {PEOPLE[name]}.",
            "- Data: " + "; ".join(privacy_collected(name)) + ".",
        ]
        if special_category(forms):
            lines.append(
                "- Special category data: health (coming to a mental health group, "
                "or what a member says about their safety)."
            )
        basis = decisions.lawful_basis.get(name)
        lines += [
            f"- Lawful basis: {basis or 'not decided yet.'}",
            f"- Recipients: {receivers(decisions, name)}.",
            f"- Kept on the forms server: {period(decisions.retention_months[name])} "
            "(minimal record, see below).",
            "",
        ]
    where = decisions.email_stored_where or "not decided yet."
    mailboxes = decisions.mailbox_retention or "how long emails are kept is not decided yet."
    lines += [
        "## How each route's email carries the answers",
        "",
        delivery_in_words(decisions),
        "",
        "## Where the data is",
        "",
        f"- Email: {where}",
        f"- Mailboxes: {mailboxes}",
        "- Forms server: the data folder of the server that runs it.",
        "",
        "## What the server holds, and for how long",
        "",
        holdings_table(decisions, undelivered_kept_days),
        "",
        "## Security measures",
        "",
        *[f"- {measure}" for measure in SECURITY_MEASURES],
        "",
    ]
    return "\n".join(lines)
