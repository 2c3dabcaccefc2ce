"""The model every form is made of, and how answers are checked: fields, choices, forms, a
submission, the rules for what an address is, and validation that never lets a control
character, an unknown choice or an over-long answer through.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import Enum

# Answers as they come from a form post: one string per field, or a list for checkboxes.
Answers = dict[str, str | list[str]]


class FieldKind(Enum):
    TEXT = "text"  # one line
    EMAIL = "email"  # exactly one address
    TEXTAREA = "textarea"  # several lines
    RADIOS = "radios"  # one of the choices
    AGREE = "agree"  # a single box the member must tick to go on
    PHONE_OR_EMAIL = "phone_or_email"  # how to reach someone now: one or the other


class Recipients(Enum):
    """Who receives a form: the addresses themselves are configuration (settings)."""

    FACILITATORS = "facilitators"
    # Whoever the group decided receives concerns (decisions.concern_route): the facilitators,
    # or a safeguarding lead and deputy.
    CONCERNS = "concerns"
    # A concern about a facilitator: never a facilitator (decisions.facilitator_concern_email).
    FACILITATOR_CONCERNS = "facilitator_concerns"


# The delivery route (decisions.delivery_mode) each kind of recipient is reached by.
DELIVERY_ROUTE_OF = {
    Recipients.FACILITATORS.value: "facilitators",
    Recipients.CONCERNS.value: "concerns",
    Recipients.FACILITATOR_CONCERNS.value: "concerns",
}


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    hint: str = ""
    # What the email tells the reader to do when this is the answer; {field} is that answer:
    # "They asked to talk after a meeting: in meetings they use the name {meeting_name}."
    next_step: str = ""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    # The name used in error messages: "Name must be 100 characters or fewer".
    short_name: str
    # "Enter the name we should use": said when a required field is empty.
    required_message: str
    kind: FieldKind = FieldKind.TEXT
    max_length: int = 100
    hint: str = ""
    why: str = ""  # why we ask, shown under the label
    optional: bool = False
    choices: tuple[Choice, ...] = ()
    # A handbook page the member should read first (agreements link to their guidelines).
    handbook_link: tuple[str, str] | None = None
    # Kept on our server after delivery (encrypted). Everything else is gone once delivered.
    kept: bool = False
    # What the field holds, as an autofill token ("name", "tel"). The page never sends it: every
    # field says autocomplete="off", so the browser keeps nothing typed (being a member of this
    # group is itself health information), at the cost of WCAG 1.3.5's purpose hints. The
    # command line uses it to recognise a name (rights.py).
    autocomplete: str = ""
    # What the privacy notice says we collect, as a phrase: "the name we should use for you".
    privacy: str = ""
    # These answers show the crisis contacts at once and mark the form urgent (see below).
    crisis_answers: tuple[str, ...] = ()
    # (field, answer): this field is revealed under that answer (GOV.UK conditional reveal),
    # asked and kept only when that answer is chosen, and required then unless optional.
    shown_when: tuple[str, str] | None = None
    # The address the member asked us to reply to: the facilitators' email gets it as Reply-To.
    # Only a field whose answer means "contact me" has it, never an address given for
    # anything else (the member's own copy, for example).
    reply_to: bool = False
    # Where the member's own copy goes, when they ask for one (see member_copy.py).
    copy_address: bool = False
    # Shown to the member and used by the server, but not part of what the facilitators
    # receive (the choice of a copy, the address it goes to).
    for_facilitators: bool = True
    # A signature: typed afresh each time, never filled in for the member (see renewals.py).
    signs: bool = False

    @property
    def is_single_line(self) -> bool:
        return self.kind in {FieldKind.TEXT, FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}

    def choice_label(self, value: str) -> str:
        for choice in self.choices:
            if choice.value == value:
                return choice.label
        return value


@dataclass(frozen=True)
class FormDefinition:
    kind: str  # the URL segment and the token salt: "consent", "leave-leaving", ...
    title: str  # the page's heading: the task in the member's words
    email_name: str  # how facilitators see it named: "Consent form"
    intro: str
    fields: tuple[Field, ...]
    recipients: Recipients
    # The group of forms the group's decisions (retention, replies, lawful basis) and the
    # privacy notice describe it with: "consent", "leave" or "concern".
    decision_group: str
    # What the facilitators should do when it arrives.
    next_steps: str
    # What the member is told will happen, on the confirmation page. `{reply}` becomes
    # " within N days" when the group decided a reply time for these forms, else nothing.
    what_happens_next: str
    # Binds the record to the exact guidelines shown (the consent form).
    binds_guidelines: bool = False
    # A leave notice: its choice on the leave notice page, and that choice's hint.
    chooser_label: str = ""
    chooser_hint: str = ""
    # Crisis contacts are shown on the page when the form is about risk.
    shows_crisis_contacts: bool = False
    # (field, answer, recipients): an answer that sends the form to someone else instead.
    rerouted_when: tuple[str, str, Recipients] | None = None
    # (field, answer, recipients): an answer that sends the form to someone as well.
    also_to_when: tuple[str, str, Recipients] | None = None
    # The member gets a receipt, and with it the group can ask them a question and they can
    # answer, even if they gave no name or address (storage/conversations.py).
    converses: bool = False

    @property
    def can_be_urgent(self) -> bool:
        """Some answer says someone may be at risk now (see is_urgent)."""
        return any(spec.crisis_answers for spec in self.fields)

    @property
    def top_level_fields(self) -> tuple[Field, ...]:
        return tuple(spec for spec in self.fields if spec.shown_when is None)

    def revealed_by(self, field_name: str, answer: str) -> tuple[Field, ...]:
        return tuple(spec for spec in self.fields if spec.shown_when == (field_name, answer))

    def field_named(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


@dataclass(frozen=True)
class Submission:
    """A confirmed form: what the member sent, as the store and the email need it."""

    reference: str
    form_kind: str
    answers: Answers
    received_at: datetime
    urgent: bool
    guidelines_version: str | None
    # The hidden trap field was filled in: maybe a program, maybe a person's tool. Delivered
    # all the same (a real concern must never be dropped), with a mark saying so.
    suspected_automated: bool = False
    # A consent signed again from a renewal reminder: the reference of the record it replaces.
    replaces: str | None = None


# -- Validation -------------------------------------------------------------------------------

# One address: no spaces, commas, angle brackets or quotes, so it can never become two.
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
MAX_EMAIL_LENGTH = 254


def is_usable_email_address(text: str) -> bool:
    """One address that the email can carry, decided by the very parser that builds the email
    (the standard library's `Address`), so the form never accepts an address the mailer then
    refuses: `john.@gmail.com`, `.a..b@example.com` and encoded words all look like addresses
    to a pattern but are not ones an email header can hold."""
    if len(text) > MAX_EMAIL_LENGTH or not EMAIL.match(text):
        return False
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError):
        return False
    return parsed.addr_spec == text


# Zero-width (non-)joiners are format characters, but real writing needs them: Persian and Indic
# names (U+200C) and emoji sequences (U+200D). They cannot reorder text, so they are allowed.
JOINERS = {"\u200c", "\u200d"}
UNWANTED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def first_control_character(text: str, allow_newlines: bool) -> str | None:
    """Cc holds CR, LF, NUL, NEL, VT and FF; Zl and Zp are U+2028 and U+2029; Cf holds invisible
    format characters (right-to-left overrides, for example) that can make a name in an email
    read differently from what was typed."""
    allowed = JOINERS | ({"\n", "\r", "\t"} if allow_newlines else set())
    for character in text:
        if character not in allowed and unicodedata.category(character) in UNWANTED_CATEGORIES:
            return character
    return None


# Characters people meet, named as people name them.
CHARACTER_NAMES = {"\n": "a line break", "\r": "a line break", "\t": "a tab"}
LINE_BREAKS = {"\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"}


def control_character_message(spec: Field, character: str) -> str:
    """Which character, and why it cannot stay: "Name must be on one line: remove the line
    break", "Name cannot contain the invisible character U+202E (right-to-left override)"."""
    if spec.is_single_line and character in LINE_BREAKS:
        return f"{spec.short_name} must be on one line: remove the line break"
    if character in CHARACTER_NAMES:
        return f"{spec.short_name} cannot contain {CHARACTER_NAMES[character]}: remove it"
    name = unicodedata.name(character, "").lower() or "a control character"
    return (
        f"{spec.short_name} cannot contain the invisible character U+{ord(character):04X} "
        f"({name}): remove it, or type the answer again"
    )


def as_text(value: str | list[str] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return value[0] if value else ""
    return value


def not_a_choice_message(spec: Field) -> str:
    """A choice that is not on the page only comes from an altered post: ask again, as for an
    empty answer ("Select whether you are safe now"), in the same words."""
    return spec.required_message or f"Select one of the options for {spec.short_name.lower()}"


def validate_field(spec: Field, raw: str | list[str] | None) -> tuple[str | list[str], str | None]:
    """The cleaned value and, when it is not acceptable, the message to show beside it."""
    text = as_text(raw)
    # Browsers send CRLF; a lone CR is a line break too.
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()

    if not text:
        return text, None if spec.optional else spec.required_message

    if spec.kind is FieldKind.RADIOS:
        if text not in {choice.value for choice in spec.choices}:
            return text, not_a_choice_message(spec)
        return text, None
    if spec.kind is FieldKind.AGREE:
        return (text, None) if text == "yes" else (text, spec.required_message)

    unwanted = first_control_character(text, allow_newlines=spec.kind is FieldKind.TEXTAREA)
    if unwanted is not None:
        return text, control_character_message(spec, unwanted)
    if len(text) > spec.max_length:
        return text, f"{spec.short_name} must be {spec.max_length} characters or fewer"
    if spec.kind is FieldKind.EMAIL and not is_usable_email_address(text):
        return text, "Enter an email address in the correct format, like name@example.com"
    if spec.kind is FieldKind.PHONE_OR_EMAIL and not is_phone_or_email(text):
        return text, (
            "Enter a phone number, like 07700 900 982, or an email address, like name@example.com"
        )
    return text, None


@dataclass(frozen=True)
class Validated:
    answers: Answers
    errors: dict[str, str]  # field name -> message, in the order of the form

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(form: FormDefinition, submitted: Mapping[str, str | list[str]]) -> Validated:
    """Checks every field of the form; fields the form does not have are ignored."""
    answers: Answers = {}
    errors: dict[str, str] = {}
    for spec in form.fields:
        if spec.shown_when is not None and not is_shown(spec, answers):
            # Not asked: whatever came with the post is not kept.
            answers[spec.name] = ""
            continue
        value, error = validate_field(spec, submitted.get(spec.name))
        answers[spec.name] = value
        if error is not None:
            errors[spec.name] = error
    return Validated(answers, errors)


def is_shown(spec: Field, answers: Mapping[str, str | list[str]]) -> bool:
    """Whether a conditional question was asked (its choice was chosen): always, for others."""
    if spec.shown_when is None:
        return True
    field_name, answer = spec.shown_when
    chosen = answers.get(field_name)
    return chosen == answer or (isinstance(chosen, list) and answer in chosen)


def display_value(spec: Field, value: str | list[str]) -> str:
    """An answer as the member and the facilitators read it back."""
    text = as_text(value)
    if spec.kind is FieldKind.RADIOS:
        return spec.choice_label(text) if text else "Not answered"
    if spec.kind is FieldKind.AGREE:
        return "Yes, I agree" if text == "yes" else "No"
    return text or "Not given"


def answer_rows(form: FormDefinition, answers: Answers) -> list[tuple[Field, str]]:
    """Each question with its answer as read back: the check page and the email show these."""
    return [
        (spec, display_value(spec, answers.get(spec.name, "")))
        for spec in form.fields
        if is_shown(spec, answers)
    ]


# The most bytes one character can take on the way in: 4 UTF-8 bytes each sent as %XX (12), or,
# inside the check page's token, a JSON escape pair (\ud83d\ude00, 12) grown by base64 to 16.
WORST_BYTES_PER_CHARACTER = 16
# Field names, the draft and the token's signature and timestamp: a few hundred bytes, rounded up.
FIXED_BODY_BYTES = 8 * 1024


def body_limit(form: FormDefinition) -> int:
    """The largest post a member can make with this form, from its own limits: every answer at
    its maximum, in the costliest characters, twice over (so an answer pasted far past its
    limit still reaches validation and gets its own message, with everything else kept)."""
    characters = sum(
        max((len(choice.value) for choice in spec.choices), default=spec.max_length)
        for spec in form.fields
    )
    return 2 * WORST_BYTES_PER_CHARACTER * characters + FIXED_BODY_BYTES


class AnswersForText(dict[str, object]):
    """Answers to put into a sentence; one that is missing reads as such, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return "(not given)"


def next_steps_for(form: FormDefinition, answers: Answers) -> str:
    """What to do, first in the email: the form's steps, then what the answers ask for, with
    the contact details to do it with."""
    steps = [form.next_steps]
    for spec in form.fields:
        if spec.kind is not FieldKind.RADIOS:
            continue
        for choice in spec.choices:
            if choice.next_step and answers.get(spec.name) == choice.value:
                steps.append(choice.next_step.format_map(AnswersForText(answers)))
    return " ".join(steps)


# A phone number: digits with the usual separators, 7 to 15 digits (the international maximum).
PHONE = re.compile(r"^\+?[0-9 ()\-]{7,24}$")


def is_phone_or_email(text: str) -> bool:
    digits = sum(character.isdigit() for character in text)
    return is_usable_email_address(text) or (bool(PHONE.match(text)) and 7 <= digits <= 15)
