"""The single definition of each form.

Each form is a `FormDefinition`: its fields (label, hint, why we ask, kind, limits, choices,
whether optional), who receives it, what is kept once it is delivered and for how long. The page,
validation, the check-answers page, the email, storage, retention and the privacy notice are all
driven from here, so adding a field is one edit in this file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    hint: str = ""
    # What the email tells the reader to do when this is the answer; {field} is that answer:
    # "They asked for a reply by email: write to {email}."
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
    # The browser's autofill hint (WCAG 1.3.5).
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


# -- The forms --------------------------------------------------------------------------------

YES_NO_CONTACT = (
    Choice("yes", "Yes", next_step="They said they are safe now."),
    Choice(
        "contact",
        "I'd like a facilitator to contact me",
        next_step="They asked a facilitator to contact them: reach them now at {reach_contact}.",
    ),
    Choice(
        "no",
        "No",
        next_step="They said they are NOT safe now: contact them now at {reach_unsafe}. If you "
        "cannot reach them and think they are in danger, call 999.",
    ),
)

# A phone number: digits with the usual separators, 7 to 15 digits (the international maximum).
PHONE = re.compile(r"^\+?[0-9 ()\-]{7,24}$")


def is_phone_or_email(text: str) -> bool:
    digits = sum(character.isdigit() for character in text)
    return is_usable_email_address(text) or (bool(PHONE.match(text)) and 7 <= digits <= 15)


def reach_now(name: str, answer: str) -> Field:
    """How to reach a member who asked for contact, or is not safe, right now."""
    return Field(
        name=name,
        privacy="a phone number or email address to reach you, if you are not safe or asked us "
        "to contact you",
        label="How can we reach you now?",
        kind=FieldKind.PHONE_OR_EMAIL,
        short_name="How to reach you",
        required_message="Enter a phone number or email address we can reach you on now",
        hint="A phone number or an email address.",
        max_length=MAX_EMAIL_LENGTH,
        autocomplete="tel",
        shown_when=("safe_now", answer),
    )


# The leave notices all start by asking who is telling us.
MEMBER_NAME = Field(
    name="name",
    privacy="your name",
    label="Your name",
    short_name="Name",
    required_message="Enter your name",
    hint="The name we know you by.",
    autocomplete="name",
    kept=True,
)

# ...and may end with anything else the member wants to say.
ANYTHING_ELSE = Field(
    name="message",
    privacy="anything else you tell us",
    label="Anything else you want to tell us?",
    kind=FieldKind.TEXTAREA,
    short_name="Message",
    required_message="",
    optional=True,
    max_length=1000,
)

# "Email me a copy": discreet by default (see member_copy.py). "No" comes first and is what an
# unanswered question means.
COPY_NONE, COPY_LINK, COPY_FULL = "no", "link", "full"
COPY_CHOICES = (
    Choice(COPY_NONE, "No"),
    Choice(
        COPY_LINK,
        "Yes, a short email with a private link",
        hint="It does not name the group or say what you wrote. The link shows what we keep "
        "and lets you delete it.",
    ),
    Choice(
        COPY_FULL,
        "Yes, with my answers",
        hint="Anyone who can read your email will be able to read your answers.",
    ),
)


def copy_question(address_asked: bool) -> tuple[Field, ...]:
    """The copy question; a form that asks for no address of the member's own reveals one under
    each "yes", as GOV.UK's conditional reveal does."""
    question = Field(
        name="copy",
        privacy="whether you want a copy by email",
        label="Do you want us to email you a copy?",
        kind=FieldKind.RADIOS,
        short_name="Copy by email",
        required_message="Select whether you want us to email you a copy",
        optional=True,
        choices=COPY_CHOICES,
        for_facilitators=False,
    )
    if address_asked:
        return (question,)
    return (
        question,
        *(
            Field(
                name=f"copy_email_{answer}",
                privacy="the email address for your copy, if you ask for one",
                label="Email address for your copy",
                kind=FieldKind.EMAIL,
                short_name="Email address for your copy",
                required_message="Enter the email address to send your copy to",
                max_length=MAX_EMAIL_LENGTH,
                autocomplete="email",
                shown_when=("copy", answer),
                copy_address=True,
                for_facilitators=False,
            )
            for answer in (COPY_LINK, COPY_FULL)
        ),
    )


CONSENT = FormDefinition(
    kind="consent",
    title="Join the group: consent form",
    email_name="Consent form",
    intro=(
        "Fill in this form to join the group. It takes about 5 minutes. "
        "You agree to our guidelines and tell us how to reach you."
    ),
    recipients=Recipients.FACILITATORS,
    decision_group="consent",
    binds_guidelines=True,
    next_steps=(
        "Add this member to the group and send them the meeting link. If they gave a meeting "
        "name other than their own, note it so you can mark them as attending."
    ),
    what_happens_next=(
        "A facilitator will email you{reply} with the meeting link. "
        "If you do not hear from us, email the facilitators."
    ),
    fields=(
        Field(
            name="name",
            privacy="the name we should use for you",
            label="What name should we use for you?",
            short_name="Name",
            required_message="Enter the name we should use",
            hint="This can be your first name or a name you prefer.",
            autocomplete="given-name",
            kept=True,
        ),
        Field(
            name="email",
            privacy="your email address",
            label="Email address",
            kind=FieldKind.EMAIL,
            short_name="Email address",
            required_message="Enter your email address",
            max_length=MAX_EMAIL_LENGTH,
            why="We use it to send you the meeting link and to contact you.",
            autocomplete="email",
            kept=True,
            reply_to=True,
            copy_address=True,
        ),
        Field(
            name="meeting_name",
            privacy="the name you use in meetings, if it is not your own",
            label="If you will use a different name in meetings, what is it? (optional)",
            short_name="Meeting name",
            required_message="",
            optional=True,
            hint=(
                "Leave this empty if you will use your own name. You can choose an anonymous name."
            ),
            why="So we know you have attended the group.",
            kept=True,
        ),
        Field(
            name="agree_guidelines",
            privacy="your agreement to the group guidelines",
            label="I agree to the group guidelines",
            kind=FieldKind.AGREE,
            short_name="Group guidelines",
            required_message="Confirm that you agree to the group guidelines",
            handbook_link=("guidelines/taking-part/", "Read the group guidelines"),
            kept=True,
        ),
        Field(
            name="agree_confidentiality",
            privacy="your agreement to keep the group confidential",
            label="I agree to keep the group confidential",
            kind=FieldKind.AGREE,
            short_name="Confidentiality",
            required_message="Confirm that you agree to keep the group confidential",
            handbook_link=("guidelines/confidentiality/", "Read about confidentiality"),
            kept=True,
        ),
        Field(
            name="agree_online_safety",
            privacy="your agreement to the online safety steps",
            label="I agree to follow the online safety steps",
            kind=FieldKind.AGREE,
            short_name="Online safety",
            required_message="Confirm that you agree to follow the online safety steps",
            handbook_link=("guidelines/online-safety/", "Read the online safety steps"),
            kept=True,
        ),
        Field(
            name="agree_removal",
            privacy="that you understand when you may be asked to leave",
            label="I understand when I may be asked to leave the group",
            kind=FieldKind.AGREE,
            short_name="Removal",
            required_message="Confirm that you understand when you may be asked to leave",
            handbook_link=("guidelines/removal/", "Read when we may ask someone to leave"),
            kept=True,
        ),
        Field(
            name="consent_health_data",
            privacy=(
                "your separate, explicit consent for us to hold information that shows you "
                "come to a mental health peer support group"
            ),
            label=(
                "I give my explicit consent for you to hold information that shows I attend "
                "a mental health peer support group"
            ),
            kind=FieldKind.AGREE,
            short_name="Consent",
            required_message=(
                "Give your consent for us to hold information that shows you attend the group"
            ),
            hint=(
                "This is health information, which the law protects more. "
                "We cannot run the group for you without it. You can withdraw it at any time."
            ),
            handbook_link=("about/privacy/", "Read how we use your information"),
            kept=True,
        ),
        Field(
            name="signature",
            privacy="your full name, typed as your signature",
            label="Type your full name to sign",
            short_name="Signature",
            required_message="Type your full name to sign",
            hint="Typing your name here counts as your signature.",
            autocomplete="name",
            kept=True,
            signs=True,
        ),
        *copy_question(address_asked=True),
    ),
)

LEAVE_LEAVING = FormDefinition(
    kind="leave-leaving",
    chooser_label="Leaving the group",
    title="Tell us you are leaving the group",
    email_name="Leave notice: leaving the group",
    intro="Thank you for telling us. It means we can offer your place to someone else.",
    recipients=Recipients.FACILITATORS,
    decision_group="leave",
    next_steps=(
        "Remove this member after their last session. If they agreed, offer their place "
        "to someone waiting."
    ),
    what_happens_next=(
        "A facilitator will read your notice{reply}. Thank you for letting us know, so we can "
        "offer your place to someone else."
    ),
    fields=(
        MEMBER_NAME,
        Field(
            name="last_session",
            privacy="when your last session will be",
            label="When will your last session be?",
            short_name="Last session",
            required_message="Enter when your last session will be",
            hint="For example, 'next Tuesday' or '2 December'.",
            max_length=60,
            kept=True,
        ),
        Field(
            name="offer_place",
            privacy="whether we can offer your place to someone else",
            label="Can we offer your place to someone else?",
            kind=FieldKind.RADIOS,
            short_name="Offer your place",
            required_message="Select whether we can offer your place to someone else",
            choices=(Choice("yes", "Yes"), Choice("no", "No, not yet")),
        ),
        Field(
            name="reason",
            privacy="your reason for leaving, if you give one",
            label="Would you like to tell us why you are leaving?",
            kind=FieldKind.TEXTAREA,
            short_name="Reason",
            required_message="",
            optional=True,
            max_length=1000,
            hint="You do not have to. It helps us improve the group.",
        ),
        *copy_question(address_asked=False),
    ),
)

LEAVE_MISSING = FormDefinition(
    kind="leave-missing",
    chooser_label="Missing sessions",
    chooser_hint=(
        "If you do not come to three meetings in a row without telling us, you may be "
        "removed from the group."
    ),
    title="Tell us you will miss sessions",
    email_name="Leave notice: missing sessions",
    intro=(
        "If you miss three meetings in a row without telling us, you may be removed from "
        "the group. Sending this counts as telling us."
    ),
    recipients=Recipients.FACILITATORS,
    decision_group="leave",
    next_steps=(
        "Record these sessions as missed with notice. This counts as the member telling us: "
        "do not count them towards the three-missed-meetings rule."
    ),
    what_happens_next="A facilitator will read your notice{reply}. Thank you for letting us know.",
    fields=(
        MEMBER_NAME,
        Field(
            name="dates",
            privacy="which sessions you will miss",
            label="Which sessions will you miss?",
            kind=FieldKind.TEXT,
            short_name="Sessions",
            required_message="Enter which sessions you will miss",
            hint="For example, '2 and 9 December' or 'the next 3 weeks'.",
            max_length=200,
            kept=True,
        ),
        ANYTHING_ELSE,
        *copy_question(address_asked=False),
    ),
)

LEAVE_LEFT_EARLY = FormDefinition(
    kind="leave-left-early",
    chooser_label="I left a session early",
    chooser_hint="Or you stepped out of one.",
    title="Tell us you left a session early",
    email_name="Leave notice: left a session early",
    intro=(
        "Our guidelines ask you to message us if you step out or leave a session, "
        "so we can make sure you are safe."
    ),
    recipients=Recipients.FACILITATORS,
    # A member who is not safe: whoever receives concerns hears of it too.
    also_to_when=("safe_now", "no", Recipients.CONCERNS),
    decision_group="leave",
    shows_crisis_contacts=True,
    next_steps="A member left a session early.",
    what_happens_next=(
        "A facilitator will read this{reply}. Nobody watches the forms all the time, so if "
        "you need help now, use the contacts below."
    ),
    fields=(
        MEMBER_NAME,
        Field(
            name="session",
            privacy="which session you left early",
            label="Which session did you leave?",
            short_name="Session",
            required_message="Enter which session you left",
            hint="For example, 'tonight' or 'Tuesday 2 December'.",
            max_length=60,
            kept=True,
        ),
        Field(
            name="safe_now",
            privacy="whether you are safe now, or would like us to contact you",
            label="Are you safe now?",
            kind=FieldKind.RADIOS,
            short_name="Are you safe now",
            required_message="Select whether you are safe now",
            choices=YES_NO_CONTACT,
            crisis_answers=("no", "contact"),
        ),
        reach_now("reach_contact", "contact"),
        reach_now("reach_unsafe", "no"),
        ANYTHING_ELSE,
        *copy_question(address_asked=False),
    ),
)

CONCERN = FormDefinition(
    kind="concern",
    title="Raise a concern",
    email_name="Concern",
    intro=(
        "Tell us if you are worried about something raised in a meeting, another member, "
        "a facilitator or yourself. You can stay anonymous: every question about you is "
        "optional. If you leave them empty, we cannot tell who sent this, and we cannot "
        "reply to you."
    ),
    recipients=Recipients.CONCERNS,
    rerouted_when=("about", "facilitator", Recipients.FACILITATOR_CONCERNS),
    decision_group="concern",
    shows_crisis_contacts=True,
    next_steps=(
        "Follow the safeguarding policy. If someone is at immediate risk, act on it now. "
        "If the member asked for contact, reply the way they asked."
    ),
    what_happens_next=(
        "We will read your concern{reply}. Nobody watches the forms all the time, so "
        "if you need help now, use the contacts below."
    ),
    fields=(
        Field(
            name="about",
            privacy="what your concern is about",
            label="What is your concern about?",
            kind=FieldKind.RADIOS,
            short_name="What your concern is about",
            required_message="Select what your concern is about",
            choices=(
                Choice("meeting", "Something raised in a meeting"),
                Choice("member", "Another member"),
                Choice(
                    "facilitator",
                    "A facilitator",
                    hint="This does not go to the facilitators.",
                ),
                Choice("myself", "Myself"),
                Choice("other", "Something else"),
            ),
        ),
        Field(
            name="immediate_risk",
            privacy="whether anyone is at immediate risk of harm",
            label="Is anyone at immediate risk of harm?",
            kind=FieldKind.RADIOS,
            short_name="Immediate risk",
            required_message="Select whether anyone is at immediate risk of harm",
            choices=(Choice("yes", "Yes"), Choice("no", "No"), Choice("unsure", "I'm not sure")),
            crisis_answers=("yes", "unsure"),
        ),
        Field(
            name="what_happened",
            privacy="what happened",
            label="What happened?",
            kind=FieldKind.TEXTAREA,
            short_name="What happened",
            required_message="Enter what happened",
            hint="Say what happened, when and where. Only include what you need to.",
            max_length=3000,
        ),
        Field(
            name="why_concerned",
            privacy="why you are concerned",
            label="Why are you concerned?",
            kind=FieldKind.TEXTAREA,
            short_name="Why you are concerned",
            required_message="Enter why you are concerned",
            max_length=3000,
        ),
        Field(
            name="name",
            privacy="your name, if you give it",
            label="Your name",
            short_name="Name",
            required_message="",
            optional=True,
            hint="Leave this empty to stay anonymous.",
            autocomplete="name",
        ),
        Field(
            name="contact_preference",
            privacy="whether and how you want us to contact you",
            label="Do you want us to contact you about this?",
            kind=FieldKind.RADIOS,
            short_name="Contact",
            required_message="",
            optional=True,
            choices=(
                Choice("no", "No", next_step="They did not ask to be contacted."),
                Choice(
                    "email",
                    "Yes, by email",
                    next_step="They asked for a reply by email: write to {email}.",
                ),
                Choice(
                    "meeting",
                    "Yes, after a meeting",
                    next_step="They asked to talk after a meeting: in meetings they use the name "
                    "{meeting_name}.",
                ),
            ),
        ),
        Field(
            name="email",
            privacy="your email address, if you want a reply by email",
            label="Email address",
            kind=FieldKind.EMAIL,
            short_name="Email address",
            required_message="Enter the email address we should reply to",
            max_length=MAX_EMAIL_LENGTH,
            autocomplete="email",
            shown_when=("contact_preference", "email"),
            reply_to=True,
        ),
        Field(
            name="meeting_name",
            privacy="the name you use in meetings, if you want to talk after a meeting",
            label="What name do you use in meetings?",
            short_name="Meeting name",
            required_message="Enter the name you use in meetings, so we know who to talk to",
            shown_when=("contact_preference", "meeting"),
        ),
    ),
)

# Every form, once. The tables below are derived from the definitions, so a new form is one
# definition added here.
ALL_FORMS = (CONSENT, LEAVE_LEAVING, LEAVE_MISSING, LEAVE_LEFT_EARLY, CONCERN)

FORMS: Mapping[str, FormDefinition] = {form.kind: form for form in ALL_FORMS}

# The leave notice starts by asking which kind, then asks only what that kind needs. The
# handbook tells members to choose these labels by name.
LEAVE_KINDS: Sequence[Choice] = tuple(
    Choice(form.kind, form.chooser_label, hint=form.chooser_hint)
    for form in ALL_FORMS
    if form.chooser_label
)

# The privacy notice and the group's decisions describe the forms in these groups (the three
# leave notices as one).
PRIVACY_GROUPS: Mapping[str, tuple[FormDefinition, ...]] = {
    group: tuple(form for form in ALL_FORMS if form.decision_group == group)
    for group in dict.fromkeys(form.decision_group for form in ALL_FORMS)
}


def is_urgent(form: FormDefinition, answers: Answers) -> bool:
    """Someone may be at risk now: the form is marked urgent and sent first."""
    return any(answers.get(spec.name) in spec.crisis_answers for spec in form.fields)


def recipients_for(form: FormDefinition, answers: Answers) -> tuple[Recipients, ...]:
    """Who receives this form, given its answers: one route, or two (an unsafe member's notice
    goes to the facilitators and to whoever the group set to receive concerns)."""
    routes = [form.recipients]
    if form.rerouted_when is not None:
        field_name, answer, recipients = form.rerouted_when
        if answers.get(field_name) == answer:
            routes = [recipients]
    if form.also_to_when is not None:
        field_name, answer, recipients = form.also_to_when
        if answers.get(field_name) == answer and recipients not in routes:
            routes.append(recipients)
    return tuple(routes)


def shown_answer(form: FormDefinition, answers: Answers, flag: str) -> str | None:
    """The first non-empty answer of a field asked with this flag set ("reply_to", ...)."""
    for spec in form.fields:
        if getattr(spec, flag) and is_shown(spec, answers):
            value = answers.get(spec.name)
            if isinstance(value, str) and value:
                return value
    return None


def member_copy_wanted(form: FormDefinition, answers: Answers) -> tuple[str, str] | None:
    """(kind of copy, address) when the member asked for a copy and gave somewhere to send it."""
    if not any(spec.copy_address for spec in form.fields):
        return None
    kind = answers.get("copy")
    address = shown_answer(form, answers, "copy_address")
    if kind not in (COPY_LINK, COPY_FULL) or address is None:
        return None
    return str(kind), address


# -- What the privacy notice says about each form, from the definitions above ------------------


def unique(phrases: list[str]) -> list[str]:
    return list(dict.fromkeys(phrases))


def privacy_collected(group: str) -> list[str]:
    forms = PRIVACY_GROUPS[group]
    phrases = [spec.privacy for form in forms for spec in form.fields]
    if any(form.binds_guidelines for form in forms):
        phrases += ["the date and time you signed", "which version of the guidelines you agreed to"]
    else:
        phrases.append("the date and time you sent it")
    return unique(phrases)


def privacy_retention(group: str, retention_months: Mapping[str, int]) -> str:
    """What the forms server keeps of this group of forms, and for how long; with the wait for
    someone to pick up a concern or an urgent form (see delivery's escalation)."""
    kept = privacy_retention_after_delivery(group, retention_months)
    forms = PRIVACY_GROUPS[group]
    if group == "concern":
        return (
            f"{kept} Until someone has marked your concern as being dealt with, or it has been "
            "sent on because nobody did in time, our server also keeps what you wrote, "
            "encrypted. Then it deletes it."
        )
    if any(form.can_be_urgent for form in forms):
        return (
            f"{kept} If you said you are not safe, or asked us to contact you, our server also "
            "keeps what you wrote, encrypted, until someone has marked it as being dealt with, "
            "or it has been sent on because nobody did in time. Then it deletes it."
        )
    return kept


def privacy_retention_after_delivery(group: str, retention_months: Mapping[str, int]) -> str:
    forms = PRIVACY_GROUPS[group]
    months = retention_months[group]
    period = "1 month" if months == 1 else f"{months} months"
    kept = unique([spec.privacy for form in forms for spec in form.fields if spec.kept])
    every = unique([spec.privacy for form in forms for spec in form.fields])
    if kept == every:
        return (
            f"We keep it on our forms server, encrypted, for {period} from when you send it. "
            "Then we delete it."
        )
    if kept:
        listed = "; ".join(kept)
        return (
            f"Once the email has been delivered, our forms server keeps only this, encrypted, "
            f"for {period}: {listed}. With it, not encrypted, it keeps the reference number, "
            "which form it was, and when it was sent and delivered. Everything else is "
            "deleted from our server as soon as the email has been delivered."
        )
    return (
        "Our forms server deletes what you wrote as soon as the email has been delivered. "
        "It keeps only the reference number, which form it was, and when it was sent and "
        f"delivered, not encrypted, for {period}."
    )


def reply_phrase(days: int | None) -> str:
    """ " within 3 days" when the group decided it; nothing when it did not."""
    if days is None:
        return ""
    return " within 1 day" if days == 1 else f" within {days} days"


def what_happens_next(form: FormDefinition, reply_days: Mapping[str, int | None]) -> str:
    """The confirmation page's promise: only what the group decided (see decisions.py)."""
    return form.what_happens_next.format(reply=reply_phrase(reply_days.get(form.decision_group)))
