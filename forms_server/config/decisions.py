"""The group's decisions: every commitment the handbook and the forms make beyond the guidelines.

They live once, under `extra.group.decisions` in mkdocs.yml, next to the group's facts; the
handbook build and the server both read them from there. Each decision has a default. For most
the default is "not decided", and then the pages say what the guidelines say and no more: no
response time, no legal basis, no renewal rule that nobody chose. Retention periods default to
numbers, because the server must delete records at some point; `forms-server check` lists every
decision still at its default so a group sees what it has not chosen yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from forms_server.errors import FormsServerError

NOT_DECIDED = "not decided"
# Written into the built handbook: the fingerprint of the decisions it was built from.
DECISIONS_FINGERPRINT_FILE = "group-decisions.txt"


class DecisionsError(FormsServerError):
    """A decision has a value the handbook and the server cannot use; the message says which."""


class ConcernRoute(StrEnum):
    # The guidelines: "you can message the facilitators at any time to discuss your concerns".
    FACILITATORS = "facilitators"
    # A safeguarding lead and deputy (their addresses are FORMS_SAFEGUARDING).
    SAFEGUARDING_LEAD = "safeguarding lead"


class DeliveryMode(StrEnum):
    """How a form reaches a mailbox (see delivery.py and message_crypto.py)."""

    FULL = "full"  # the answers in the email
    LINK_ONLY = "link-only"  # what arrived and a private link; the answers stay on the server
    ENCRYPTED = "encrypted"  # the answers encrypted to the recipient's own key (else link-only)


# Who receives forms, for the delivery mode: the facilitators (consent and leave notices), whoever
# receives concerns (and concerns about a facilitator), and the escalation contact.
DELIVERY_ROUTES = ("facilitators", "concerns", "escalation")

# The forms, in the groups the privacy notice and these decisions describe them by.
FORM_GROUPS = ("consent", "leave", "concern")
# Replies the group may promise: to each group of forms, and to a request about your data.
REPLY_SUBJECTS = (*FORM_GROUPS, "rights")


@dataclass(frozen=True)
class DecisionSpec:
    key: str
    default: Any
    meaning: str  # what the group decides
    shows: str  # where the answer shows


DECISIONS: tuple[DecisionSpec, ...] = (
    DecisionSpec(
        "concern_route",
        NOT_DECIDED,
        "who receives the concern form: `facilitators` (as the guidelines say) or "
        "`safeguarding lead` (a lead and deputy, FORMS_SAFEGUARDING). Production needs one.",
        "the concern form's confirmation; Safeguarding and raising a concern; the email route",
    ),
    DecisionSpec(
        "facilitator_concern_email",
        NOT_DECIDED,
        "where a concern about a facilitator goes instead: an address that is not a "
        "facilitator's. Production needs one.",
        "the concern form's 'A facilitator' choice; Safeguarding; Questions people ask",
    ),
    DecisionSpec(
        "escalation_email",
        NOT_DECIDED,
        "who receives a concern or urgent notice nobody has marked as being dealt with in "
        "time (the deputy, or the organisation's contact); never a facilitator's address. "
        "Production needs one.",
        "the escalation email",
    ),
    DecisionSpec(
        "escalate_after_minutes",
        {"urgent": 30, "other": 2880},
        "how long a concern or urgent notice may wait for someone to mark it as being dealt "
        "with before it escalates: urgent ones, and the others",
        "when the escalation email goes; /healthz and forms-server outbox after it",
    ),
    DecisionSpec(
        "delivery_mode",
        dict.fromkeys(DELIVERY_ROUTES, DeliveryMode.FULL.value),
        "how forms reach each route's mailboxes: `full` (the answers in the email), "
        "`link-only` (what arrived and a private link; the answers stay on the server until "
        "the read window ends) or `encrypted` (to each recipient's own S/MIME or OpenPGP key, "
        "FORMS_RECIPIENT_KEYS; link-only for anyone without one)",
        "the privacy notice; the record of processing; forms-server check",
    ),
    DecisionSpec(
        "read_window_days",
        5,
        "how many days a link-only form can be read before the server deletes what it said",
        "the privacy notice; the link-only email and page",
    ),
    DecisionSpec(
        "draft_idle_minutes",
        20,
        "how many minutes a form filled in but not sent is kept after the member's last step "
        "(Exit this page deletes it at once)",
        "every form page; the privacy notice; the server deletes drafts after it",
    ),
    DecisionSpec(
        "conversation_kept_days",
        30,
        "how many days the messages between the group and a member about a concern or a "
        "left-early notice are kept after the last one (never longer than the form's record)",
        "the privacy notice; the record of processing; the server deletes them after it",
    ),
    DecisionSpec(
        "backup_kept_days",
        30,
        "how many days a backup of the forms server's data is kept (`forms-server backup` "
        "deletes older ones each time it makes a new one)",
        "the privacy notice; the record of processing; forms-server backup",
    ),
    DecisionSpec(
        "reply_within_days",
        dict.fromkeys(REPLY_SUBJECTS, NOT_DECIDED),
        "how many days the facilitators take to reply to each form (consent, leave, concern) "
        "and to a request about your data (rights), or not decided",
        "each form's confirmation page; the privacy notice (rights)",
    ),
    DecisionSpec(
        "retention_months",
        {"consent": 12, "leave": 6, "concern": 6},
        "how many months the forms server keeps each form's minimal record",
        "the privacy notice; the server deletes records after it",
    ),
    DecisionSpec(
        "lawful_basis",
        dict.fromkeys(FORM_GROUPS, NOT_DECIDED),
        "the UK GDPR lawful basis for each form, in words (for example: your consent, UK "
        "GDPR Article 6(1)(a))",
        "the privacy notice",
    ),
    DecisionSpec(
        "consent_renewal_months",
        NOT_DECIDED,
        "whether members sign the consent form again, and after how many months",
        "the privacy notice; Forms",
    ),
    DecisionSpec(
        "expiring_consents_email_days",
        NOT_DECIDED,
        "whether the facilitators get a short weekly email listing the consents that lapse "
        "within this many days (references and dates only), or not decided (no email)",
        "the weekly email; forms-server find --expiring works either way",
    ),
    DecisionSpec(
        "withdrawing_consent",
        NOT_DECIDED,
        "what withdrawing consent means for coming to meetings, in one or two sentences",
        "the privacy notice",
    ),
    DecisionSpec(
        "removal_procedure",
        NOT_DECIDED,
        "what happens when the group asks someone to leave, in one or two sentences",
        "If we ask someone to leave",
    ),
    DecisionSpec(
        "email_stored_where",
        NOT_DECIDED,
        "where the facilitators' email is stored (the provider and country)",
        "the privacy notice",
    ),
    DecisionSpec(
        "mailbox_retention",
        NOT_DECIDED,
        "how long the people who receive forms keep the emails in their mailboxes, in a sentence",
        "the privacy notice",
    ),
    DecisionSpec(
        "safeguarding_policy_url",
        NOT_DECIDED,
        "where members can read the safeguarding policy (an address), if it is published",
        "Safeguarding and raising a concern; the privacy notice",
    ),
    DecisionSpec("cost", NOT_DECIDED, "what joining costs, in a sentence", "Questions people ask"),
    DecisionSpec(
        "who_facilitates",
        NOT_DECIDED,
        "who the facilitators are, in a sentence (for example: Our facilitators are volunteers "
        "who have been through hard times themselves.)",
        "the home page; Words we use",
    ),
    DecisionSpec(
        "how_joining_works",
        NOT_DECIDED,
        "what happens after someone signs the consent form, in a sentence (for example: A "
        "facilitator emails you the link to the meeting.)",
        "the home page's How to join; the consent form's confirmation",
    ),
    DecisionSpec(
        "consent_form_and_joining",
        NOT_DECIDED,
        "whether members must sign the consent form before they can come to meetings, in the "
        "group's own legal wording. If they must, consent is a condition of joining, and UK "
        "GDPR Article 7(4) means it may not count as freely given: say which lawful basis the "
        "group relies on instead. The form always asks for the separate explicit consent to "
        "hold health information, and cannot be sent without it",
        "the consent form; Which form to use",
    ),
    DecisionSpec(
        "reasons_for_leaving",
        NOT_DECIDED,
        "whether members give a reason when they leave or miss meetings, in a sentence (for "
        "example: You do not need to give a reason.)",
        "Coming to meetings and leaving; Questions people ask",
    ),
    DecisionSpec(
        "accessibility_commitment",
        NOT_DECIDED,
        "what the group does when someone reports that a page does not work for them, in a "
        "sentence (for example: We will try to fix it, or send you the information in another "
        "way.)",
        "Accessibility",
    ),
    DecisionSpec(
        "places",
        NOT_DECIDED,
        "how many places the group has, or how joining works when it is full, in a sentence",
        "Questions people ask",
    ),
)


def default_retention_days() -> dict[str, int]:
    (spec,) = (spec for spec in DECISIONS if spec.key == "retention_months")
    return retention_days_of(spec.default)


def is_decided(value: object) -> bool:
    return bool(value != NOT_DECIDED)


@dataclass(frozen=True)
class Decisions:
    """The group's decisions, checked. None means "not decided"."""

    concern_route: ConcernRoute | None
    facilitator_concern_email: str | None
    escalation_email: str | None
    escalate_after_minutes: Mapping[str, int]
    delivery_mode: Mapping[str, DeliveryMode]
    read_window_days: int
    draft_idle_minutes: int
    conversation_kept_days: int
    backup_kept_days: int
    reply_within_days: Mapping[str, int | None]
    retention_months: Mapping[str, int]
    lawful_basis: Mapping[str, str | None]
    consent_renewal_months: int | None
    expiring_consents_email_days: int | None
    withdrawing_consent: str | None
    removal_procedure: str | None
    email_stored_where: str | None
    mailbox_retention: str | None
    safeguarding_policy_url: str | None
    cost: str | None
    places: str | None
    who_facilitates: str | None
    how_joining_works: str | None
    consent_form_and_joining: str | None
    reasons_for_leaving: str | None
    accessibility_commitment: str | None

    @property
    def retention_days(self) -> dict[str, int]:
        return retention_days_of(self.retention_months)


def retention_days_of(retention_months: Mapping[str, int]) -> dict[str, int]:
    """Months as the store counts them (an average month, so 12 months is 365 days)."""
    return {group: days_in_months(months) for group, months in retention_months.items()}


def days_in_months(months: int) -> int:
    return round(months * 30.44)


def raw_decisions(group: Mapping[str, Any]) -> dict[str, Any]:
    """`extra.group.decisions` with every missing decision at its default."""
    given = group.get("decisions") or {}
    if not isinstance(given, Mapping):
        raise DecisionsError("extra.group.decisions must be a mapping of decisions.")
    known = {spec.key for spec in DECISIONS}
    unknown = sorted(set(given) - known)
    if unknown:
        raise DecisionsError(
            f"extra.group.decisions has unknown decision(s): {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(known))}."
        )
    merged: dict[str, Any] = {}
    for spec in DECISIONS:
        value = given.get(spec.key, spec.default)
        if isinstance(spec.default, Mapping):
            if not isinstance(value, Mapping):
                raise DecisionsError(f"extra.group.decisions.{spec.key} must be a mapping.")
            extra = sorted(set(value) - set(spec.default))
            if extra:
                raise DecisionsError(
                    f"extra.group.decisions.{spec.key}: unknown {', '.join(extra)}; it takes "
                    f"{', '.join(spec.default)}."
                )
            value = {**spec.default, **value}
        merged[spec.key] = value
    return merged


def whole_number(
    where: str, key: str, raw: Mapping[str, Any], unit: str, low: int, high: int
) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DecisionsError(f"{where}{key} must be a whole number of {unit}, {low} to {high}.")
    return value


def days_or_none(where: str, value: object) -> int | None:
    if not is_decided(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 366:
        raise DecisionsError(f"{where} must be a whole number from 1 to 366, or {NOT_DECIDED}.")
    return value


def text_or_none(where: str, value: object) -> str | None:
    if not is_decided(value):
        return None
    if not isinstance(value, str) or not value.strip():
        raise DecisionsError(f"{where} must be some text, or {NOT_DECIDED}.")
    return value.strip()


def decisions_from(group: Mapping[str, Any]) -> Decisions:
    raw = raw_decisions(group)
    where = "extra.group.decisions."
    route = raw["concern_route"]
    try:
        concern_route = ConcernRoute(route) if is_decided(route) else None
    except ValueError as error:
        choices = ", ".join(repr(str(choice)) for choice in ConcernRoute)
        raise DecisionsError(
            f"{where}concern_route must be {choices} or {NOT_DECIDED!r}, not {route!r}."
        ) from error
    facilitator_concern_email = text_or_none(
        f"{where}facilitator_concern_email", raw["facilitator_concern_email"]
    )
    if facilitator_concern_email is not None:
        from forms_server.forms.fields import is_usable_email_address  # one rule for an address

        if not is_usable_email_address(facilitator_concern_email):
            raise DecisionsError(
                f"{where}facilitator_concern_email: {facilitator_concern_email!r} is not an "
                "email address."
            )
    escalation_email = text_or_none(f"{where}escalation_email", raw["escalation_email"])
    if escalation_email is not None:
        from forms_server.forms.fields import is_usable_email_address  # one rule for an address

        if not is_usable_email_address(escalation_email):
            raise DecisionsError(
                f"{where}escalation_email: {escalation_email!r} is not an email address."
            )
    escalate_after: dict[str, int] = {}
    for kind, minutes in raw["escalate_after_minutes"].items():
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 43200:
            raise DecisionsError(
                f"{where}escalate_after_minutes.{kind} must be a whole number of minutes from "
                "1 to 43200 (30 days)."
            )
        escalate_after[kind] = minutes
    retention: dict[str, int] = {}
    for form_group, months in raw["retention_months"].items():
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120:
            raise DecisionsError(
                f"{where}retention_months.{form_group} must be a whole number of months from "
                "1 to 120: the server deletes records after it, so it cannot be left undecided."
            )
        retention[form_group] = months
    renewal = raw["consent_renewal_months"]
    if is_decided(renewal) and (
        isinstance(renewal, bool) or not isinstance(renewal, int) or not 1 <= renewal <= 120
    ):
        raise DecisionsError(
            f"{where}consent_renewal_months must be a whole number of months, or {NOT_DECIDED}."
        )
    expiring_days = raw["expiring_consents_email_days"]
    if is_decided(expiring_days) and (
        isinstance(expiring_days, bool)
        or not isinstance(expiring_days, int)
        or not 1 <= expiring_days <= 120
    ):
        raise DecisionsError(
            f"{where}expiring_consents_email_days must be a whole number of days from 1 to 120, "
            f"or {NOT_DECIDED}."
        )
    modes: dict[str, DeliveryMode] = {}
    for route, mode in raw["delivery_mode"].items():
        try:
            modes[route] = DeliveryMode(mode)
        except ValueError as error:
            choices = ", ".join(repr(str(choice)) for choice in DeliveryMode)
            raise DecisionsError(
                f"{where}delivery_mode.{route} must be one of {choices}, not {mode!r}."
            ) from error
    window = whole_number(where, "read_window_days", raw, "days", 1, 30)
    idle = whole_number(where, "draft_idle_minutes", raw, "minutes", 5, 120)
    kept = whole_number(where, "backup_kept_days", raw, "days", 1, 366)
    conversation_days = whole_number(where, "conversation_kept_days", raw, "days", 1, 366)
    return Decisions(
        concern_route=concern_route,
        facilitator_concern_email=facilitator_concern_email,
        escalation_email=escalation_email,
        escalate_after_minutes=escalate_after,
        delivery_mode=modes,
        read_window_days=window,
        draft_idle_minutes=idle,
        conversation_kept_days=conversation_days,
        backup_kept_days=kept,
        reply_within_days={
            subject: days_or_none(f"{where}reply_within_days.{subject}", value)
            for subject, value in raw["reply_within_days"].items()
        },
        retention_months=retention,
        lawful_basis={
            form_group: text_or_none(f"{where}lawful_basis.{form_group}", value)
            for form_group, value in raw["lawful_basis"].items()
        },
        consent_renewal_months=renewal if is_decided(renewal) else None,
        expiring_consents_email_days=expiring_days if is_decided(expiring_days) else None,
        withdrawing_consent=text_or_none(f"{where}withdrawing_consent", raw["withdrawing_consent"]),
        removal_procedure=text_or_none(f"{where}removal_procedure", raw["removal_procedure"]),
        email_stored_where=text_or_none(f"{where}email_stored_where", raw["email_stored_where"]),
        mailbox_retention=text_or_none(f"{where}mailbox_retention", raw["mailbox_retention"]),
        safeguarding_policy_url=text_or_none(
            f"{where}safeguarding_policy_url", raw["safeguarding_policy_url"]
        ),
        cost=text_or_none(f"{where}cost", raw["cost"]),
        places=text_or_none(f"{where}places", raw["places"]),
        **{
            key: text_or_none(f"{where}{key}", raw[key])
            for key in (
                "who_facilitates",
                "how_joining_works",
                "consent_form_and_joining",
                "reasons_for_leaving",
                "accessibility_commitment",
            )
        },
    )


def fingerprint(group: Mapping[str, Any]) -> str:
    """A short digest of the group's facts and decisions, as the handbook was built from them:
    the server compares it with its own, so a handbook built elsewhere cannot contradict it."""
    canonical = json.dumps(group, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
