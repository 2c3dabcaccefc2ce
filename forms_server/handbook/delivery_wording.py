"""How each route delivers, in words: one description per route (`route_delivery`), and the
privacy notice's sentences on delivery, replies, retention and escalation, all worded from it.

A test (`tests/test_notice_drift.py`) runs a real concern through the real worker for every pair
of delivery modes and compares what arrived and what stayed on disk with this description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from forms_server.config.decisions import Decisions, DeliveryMode
from forms_server.forms.definitions import PRIVACY_GROUPS
from forms_server.forms.fields import DELIVERY_ROUTE_OF
from forms_server.forms.wording import amount, duration_in_words, unique
from forms_server.handbook.processing import period
from forms_server.lifecycle import needs_picking_up, strictest

ROUTE_NAMES: Mapping[str, str] = {
    "facilitators": "Consent forms and leave notices, to the facilitators",
    "concerns": "Concerns, to whoever receives them",
}


@dataclass(frozen=True)
class RouteDelivery:
    """How the forms of one route reach people, as the composer sends them (composer.py's
    `mode_for` and `escalation_mode`; the drift test runs both against these)."""

    route: str
    mode: DeliveryMode
    # A form of this route sent on because nobody picked it up: never less private.
    escalated_mode: DeliveryMode
    read_window_days: int

    @property
    def reply_header(self) -> bool:
        """Only a full email replies to the member's address; the others give it inside."""
        return self.mode is DeliveryMode.FULL

    def kept_for_link(self, mode: DeliveryMode) -> bool:
        """Whether what the member wrote waits on the server for a private link."""
        return mode is not DeliveryMode.FULL


def route_delivery(decisions: Decisions, route: str) -> RouteDelivery:
    mode = decisions.delivery_mode[route]
    return RouteDelivery(
        route,
        mode,
        strictest([mode, decisions.delivery_mode["escalation"]]),
        decisions.read_window_days,
    )


def route_of_group(group: str) -> str:
    (route,) = {DELIVERY_ROUTE_OF[form.recipients.value] for form in PRIVACY_GROUPS[group]}
    return route


def email_in_words(mode: DeliveryMode, window_days: int) -> str:
    days = amount(window_days, "day")
    return {
        DeliveryMode.FULL: "the email holds your answers.",
        DeliveryMode.LINK_ONLY: "the email holds no answers, only a private link. Your answers "
        f"stay on our forms server, encrypted, for {days}, then are deleted. We note who read "
        "them and when.",
        DeliveryMode.ENCRYPTED: "the email holds your answers encrypted, so only the person it "
        "is for can read them with their own key. Anyone without a key gets a private link "
        f"instead, and then your answers stay on our forms server, encrypted, for {days}.",
    }[mode]


def delivery_in_words(decisions: Decisions) -> str:
    """How each route's email carries what you wrote, and how a form sent on because nobody
    picked it up does (never less private than its route), in Markdown."""
    lines = []
    for route, name in ROUTE_NAMES.items():
        delivery = route_delivery(decisions, route)
        lines.append(f"- {name}: {email_in_words(delivery.mode, delivery.read_window_days)}")
    for route in ROUTE_NAMES:
        delivery = route_delivery(decisions, route)
        what = "A concern" if route == "concerns" else "An urgent leave notice"
        lines.append(
            f"- {what} sent on because nobody picked it up: "
            f"{email_in_words(delivery.escalated_mode, delivery.read_window_days)}"
        )
    return "\n".join(lines)


def reply_in_words(decisions: Decisions, group: str) -> str:
    """Where the people who receive a form find the address you asked them to reply to."""
    delivery = route_delivery(decisions, route_of_group(group))
    return {
        DeliveryMode.FULL: "Their email gives your address, and replying to it goes to you.",
        DeliveryMode.LINK_ONLY: "Their email does not hold your address. They see it with "
        "your answers, through their private link.",
        DeliveryMode.ENCRYPTED: "Your address is inside their encrypted email, with your "
        "answers, not on the outside of it.",
    }[delivery.mode]


def privacy_retention(decisions: Decisions, group: str) -> str:
    """How long the forms server keeps each group of forms: what you wrote, which depends on
    how its route delivers it (decisions.delivery_mode), and the record (retention_months)."""
    forms = PRIVACY_GROUPS[group]
    delivery = route_delivery(decisions, route_of_group(group))
    period_words = period(decisions.retention_months[group])
    kept = unique([spec.privacy for form in forms for spec in form.fields if spec.kept])
    every = unique([spec.privacy for form in forms for spec in form.fields])
    picked_up = group == "concern" or any(
        needs_picking_up(form.kind, form.can_be_urgent) for form in forms
    )
    paragraphs = []
    if kept == every:
        paragraphs.append(
            f"We keep it on our forms server, encrypted, for {period_words} from when you send "
            "it. Then we delete it."
        )
    else:
        in_the_clear = "the reference number, which form it was, and when it was sent and delivered"
        if kept:
            listed = "\n".join(f"- {phrase}" for phrase in kept)
            paragraphs += [
                f"Our forms server keeps only this, encrypted, for {period_words}:",
                listed,
                f"With it, it keeps {in_the_clear}. These are not encrypted.",
            ]
        else:
            paragraphs.append(
                f"Our forms server keeps {in_the_clear}, for {period_words}. These are not "
                "encrypted."
            )
        if delivery.kept_for_link(delivery.mode):
            days = amount(delivery.read_window_days, "day")
            paragraphs.append(
                f"It keeps what you wrote, encrypted, for {days} from when the email is sent. "
                "That lets the people who receive it read it through their private link. "
                "Then it deletes it, whether or not they have read it."
            )
        else:
            paragraphs.append(
                "It deletes everything else you wrote as soon as the email has been delivered."
            )
    if picked_up:
        who = "a concern" if group == "concern" else "a form that says someone is at risk"
        more = (
            f"For {who}, our server also keeps what you wrote, encrypted, until someone marks "
            "it as being dealt with. If nobody does in time, it keeps it until it has been "
            "sent on. Then it deletes it."
        )
        if delivery.kept_for_link(delivery.escalated_mode):
            days = amount(delivery.read_window_days, "day")
            more += (
                f" The email it sends on has a new private link, so what you wrote is kept for "
                f"{days} from then."
            )
        paragraphs.append(more)
    return "\n\n".join(paragraphs)


def escalation_in_words(decisions: Decisions) -> str:
    """When a concern or urgent form is sent on because nobody picked it up, from the decided
    minutes (never "0 hours"); the sentence ends with who it goes to."""
    urgent = duration_in_words(decisions.escalate_after_minutes["urgent"])
    other = duration_in_words(decisions.escalate_after_minutes["other"])
    return (
        f"In time means {urgent} from when you send it if someone may be at risk, and {other} "
        "otherwise. If nobody marks it in time, our server sends it again to"
    )
