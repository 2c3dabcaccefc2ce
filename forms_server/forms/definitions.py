"""The forms themselves: pure data. Each form is a `FormDefinition` (forms/fields.py): its
fields (label, hint, why we ask, kind, limits, choices, whether optional), who receives it, what
is kept once it is delivered and for how long. The page, validation, the check-answers page, the
email, storage, retention and the privacy notice are all driven from here, so adding a field is
one edit in this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from forms_server.forms.fields import (
    MAX_EMAIL_LENGTH,
    Choice,
    Field,
    FieldKind,
    FormDefinition,
    Recipients,
)
from forms_server.forms.routing import COPY_FULL, COPY_LINK, COPY_NONE

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
        "A facilitator will read your form{reply}. {joining}"
        "If you have a question, email the facilitators."
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
            label="If you will use a different name in meetings, what is it?",
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
                "This form cannot be sent without it. You can withdraw it at any time."
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
    converses=True,
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
    converses=True,
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
                    next_step="They asked for a reply by email.",
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
