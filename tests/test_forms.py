"""The form definitions and their validation, table-driven from `FORMS`.

Every case list below is generated from the definitions, so a field added to a form is checked by
every rule that applies to its kind without touching this file.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from typing import Any

import pytest

from forms_server.config.decisions import default_retention_days
from forms_server.forms import definitions as forms_module
from forms_server.forms.definitions import FORMS, LEAVE_KINDS
from forms_server.forms.fields import (
    Answers,
    Field,
    FieldKind,
    FormDefinition,
    Recipients,
    answer_rows,
    display_value,
    is_shown,
    next_steps_for,
    validate,
    validate_field,
)
from forms_server.forms.routing import is_urgent, recipients_for, shown_answer

TEXT_KINDS = {FieldKind.TEXT, FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL, FieldKind.TEXTAREA}
CHOICE_KINDS = {FieldKind.RADIOS}
EMAIL_FORMAT_MESSAGE = "Enter an email address in the correct format, like name@example.com"

# The characters the security checks name, and a few more of the same families.
LINE_BREAKERS = [
    "\r",
    "\n",
    "\x00",
    "\u2028",  # line separator
    "\u0085",  # next line
    "\x0b",  # vertical tab
    "\u202e",  # right-to-left override
    "\u2029",  # paragraph separator
    "\x0c",  # form feed
    "\t",
    "\x1b",  # escape
    "\u200b",  # zero width space
]


def fields_where(keep: Callable[[Field], bool]) -> list[Any]:
    """One pytest case per field of every form that `keep` selects, named form.field."""
    return [
        pytest.param(spec, id=f"{form.kind}.{spec.name}")
        for form in FORMS.values()
        for spec in form.fields
        if keep(spec)
    ]


ALL_FIELDS = fields_where(lambda spec: True)
REQUIRED_FIELDS = fields_where(lambda spec: not spec.optional)
OPTIONAL_FIELDS = fields_where(lambda spec: spec.optional)
TEXT_FIELDS = fields_where(lambda spec: spec.kind in TEXT_KINDS)
SINGLE_LINE_FIELDS = fields_where(lambda spec: spec.is_single_line)
TEXTAREA_FIELDS = fields_where(lambda spec: spec.kind is FieldKind.TEXTAREA)
EMAIL_FIELDS = fields_where(lambda spec: spec.kind is FieldKind.EMAIL)
CHOICE_FIELDS = fields_where(lambda spec: spec.kind in CHOICE_KINDS)
RADIO_FIELDS = fields_where(lambda spec: spec.kind is FieldKind.RADIOS)
AGREE_FIELDS = fields_where(lambda spec: spec.kind is FieldKind.AGREE)
ONE_VALUE_FIELDS = ALL_FIELDS
FORM_CASES = [pytest.param(form, id=form.kind) for form in FORMS.values()]


def valid_value(spec: Field) -> str | list[str]:
    """An answer the field accepts as it is."""
    if spec.kind is FieldKind.EMAIL:
        return "name@example.com"
    if spec.kind is FieldKind.PHONE_OR_EMAIL:
        return "07700 900982"
    if spec.kind is FieldKind.TEXTAREA:
        return "First line\nSecond line"
    if spec.kind is FieldKind.RADIOS:
        return spec.choices[0].value
    if spec.kind is FieldKind.AGREE:
        return "yes"
    return "Sam Smith"


def valid_text_of_length(spec: Field, length: int) -> str:
    """A value the field would accept, were it not for its length (an address, for email)."""
    if spec.kind in {FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}:
        domain = "@example.com"
        text = "a" * (length - len(domain)) + domain
    else:
        text = "a" * length
    assert len(text) == length
    return text


def valid_submission(form: FormDefinition) -> Answers:
    return {spec.name: valid_value(spec) for spec in form.fields}


def not_a_choice(spec: Field) -> str:
    """An answer not on the page is asked for again in the words used for a missing one."""
    return spec.required_message or f"Select one of the options for {spec.short_name.lower()}"


TEST_LINE_BREAKS = {"\r", "\n", "\u2028", "\u0085", "\x0b", "\u2029", "\x0c"}


def is_the_message_for(error: str | None, spec: Field, character: str) -> bool:
    """The message names what is wrong: the line break, the tab, or the invisible character
    by its code point, and says what to do."""
    if error is None:
        return False
    if spec.is_single_line and character in TEST_LINE_BREAKS:
        return error == f"{spec.short_name} must be on one line: remove the line break"
    if character == "\t":
        return error == f"{spec.short_name} cannot contain a tab: remove it"
    return error.startswith(
        f"{spec.short_name} cannot contain the invisible character U+{ord(character):04X} ("
    ) and error.endswith("): remove it, or type the answer again")


# -- Empty answers ------------------------------------------------------------------------------


def test_the_tables_cover_every_kind_of_field_the_forms_use() -> None:
    # The tables are generated, so an empty one would silently test nothing.
    used = {spec.kind for form in FORMS.values() for spec in form.fields}
    covered = {FieldKind.TEXT, FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}
    covered |= {FieldKind.TEXTAREA, FieldKind.AGREE}
    covered |= CHOICE_KINDS
    assert used <= covered
    for table in (REQUIRED_FIELDS, OPTIONAL_FIELDS, TEXT_FIELDS, SINGLE_LINE_FIELDS):
        assert table
    for table in (TEXTAREA_FIELDS, EMAIL_FIELDS, CHOICE_FIELDS, RADIO_FIELDS, AGREE_FIELDS):
        assert table


@pytest.mark.parametrize("empty", [None, "", "   ", " \t\r\n ", []], ids=repr)
@pytest.mark.parametrize("spec", REQUIRED_FIELDS)
def test_a_required_field_left_empty_gives_exactly_its_own_message(
    spec: Field, empty: str | list[str] | None
) -> None:
    _, error = validate_field(spec, empty)
    assert error == spec.required_message
    assert error


@pytest.mark.parametrize("form", FORM_CASES)
def test_an_empty_submission_lists_every_required_field_in_the_order_of_the_form(
    form: FormDefinition,
) -> None:
    checked = validate(form, {})
    assert not checked.ok
    # A question asked only under a choice is not asked when nothing is chosen.
    assert list(checked.errors.items()) == [
        (spec.name, spec.required_message)
        for spec in form.fields
        if not spec.optional and spec.shown_when is None
    ]


@pytest.mark.parametrize("empty", [None, "", "   ", []], ids=repr)
@pytest.mark.parametrize("spec", OPTIONAL_FIELDS)
def test_an_optional_field_left_empty_is_accepted(
    spec: Field, empty: str | list[str] | None
) -> None:
    value, error = validate_field(spec, empty)
    assert error is None
    assert value == ""


@pytest.mark.parametrize("form", FORM_CASES)
def test_a_form_with_only_its_required_fields_answered_is_accepted(form: FormDefinition) -> None:
    submitted = {spec.name: valid_value(spec) for spec in form.fields if not spec.optional}
    checked = validate(form, submitted)
    assert checked.errors == {}
    assert checked.ok


@pytest.mark.parametrize("form", FORM_CASES)
def test_a_form_with_every_field_answered_is_accepted_as_typed(form: FormDefinition) -> None:
    submitted = valid_submission(form)
    checked = validate(form, submitted)
    assert checked.ok
    # Questions asked only under another choice are not kept (the first choices are chosen).
    asked = {
        name: value
        for name, value in submitted.items()
        if is_shown(form.field_named(name), submitted)
    }
    assert checked.answers == {name: asked.get(name, "") for name in submitted}


# -- Length -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TEXT_FIELDS)
def test_exactly_the_maximum_length_is_accepted(spec: Field) -> None:
    at_limit = valid_text_of_length(spec, spec.max_length)
    assert validate_field(spec, at_limit) == (at_limit, None)


@pytest.mark.parametrize("spec", TEXT_FIELDS)
def test_one_character_over_the_maximum_length_is_refused_with_the_limit(spec: Field) -> None:
    over = valid_text_of_length(spec, spec.max_length + 1)
    _, error = validate_field(spec, over)
    assert error == f"{spec.short_name} must be {spec.max_length} characters or fewer"


@pytest.mark.parametrize("spec", TEXT_FIELDS)
def test_every_text_field_has_a_positive_maximum_length(spec: Field) -> None:
    assert spec.max_length > 0


@pytest.mark.parametrize("spec", TEXTAREA_FIELDS)
def test_a_browsers_crlf_line_breaks_count_once_towards_a_text_areas_limit(spec: Field) -> None:
    # Browsers send a text area's line breaks as CRLF; the limit is on what the member typed.
    typed = "".join(
        "\n" if index % 10 == 9 and index != spec.max_length - 1 else "a"
        for index in range(spec.max_length)
    )
    assert "\n" in typed
    assert validate_field(spec, typed.replace("\n", "\r\n")) == (typed, None)


# -- One line, no special characters -----------------------------------------------------------


@pytest.mark.parametrize("character", LINE_BREAKERS, ids=repr)
@pytest.mark.parametrize("spec", SINGLE_LINE_FIELDS)
def test_a_single_line_field_refuses_a_line_break_or_special_character_inside_it(
    spec: Field, character: str
) -> None:
    value = valid_value(spec)
    assert isinstance(value, str)
    _, error = validate_field(spec, value[:4] + character + value[4:])
    assert is_the_message_for(error, spec, character), error


@pytest.mark.parametrize("character", LINE_BREAKERS, ids=repr)
@pytest.mark.parametrize("spec", SINGLE_LINE_FIELDS)
def test_a_special_character_at_either_end_of_a_single_line_field_is_removed_or_refused(
    spec: Field, character: str
) -> None:
    # Characters Python counts as whitespace (CR, LF, U+2028, U+0085, VT...) are stripped with
    # the rest of the surrounding whitespace, so the answer kept has no line break; the others
    # (NUL, U+202E, ...) are refused wherever they are.
    value = valid_value(spec)
    assert isinstance(value, str)
    for typed in (character + value, value + character):
        if character.isspace():
            assert validate_field(spec, typed) == (value, None)
        else:
            assert is_the_message_for(validate_field(spec, typed)[1], spec, character)


@pytest.mark.parametrize("spec", TEXTAREA_FIELDS)
def test_a_text_area_accepts_several_lines(spec: Field) -> None:
    typed = "First line\nSecond line\n\nAfter a blank line"
    assert validate_field(spec, typed) == (typed, None)


@pytest.mark.parametrize("spec", TEXTAREA_FIELDS)
def test_a_text_area_normalises_crlf_to_lf(spec: Field) -> None:
    assert validate_field(spec, "First line\r\nSecond line\r\nThird") == (
        "First line\nSecond line\nThird",
        None,
    )


@pytest.mark.parametrize("character", ["\x00", "\u202e", "\u2028", "\x1b"], ids=repr)
@pytest.mark.parametrize("spec", TEXTAREA_FIELDS)
def test_a_text_area_refuses_nul_and_other_special_characters(spec: Field, character: str) -> None:
    _, error = validate_field(spec, f"First{character}line")
    assert is_the_message_for(error, spec, character), error


# -- Choices and agreements ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", CHOICE_FIELDS)
def test_every_listed_choice_is_accepted(spec: Field) -> None:
    for choice in spec.choices:
        assert validate_field(spec, choice.value) == (choice.value, None)


@pytest.mark.parametrize("spec", CHOICE_FIELDS)
def test_a_value_that_is_not_one_of_the_choices_is_refused(spec: Field) -> None:
    first = spec.choices[0]
    outsiders = ["not-a-choice", first.value.upper() + "X", first.label + "!", "yes please"]
    for outsider in outsiders:
        assert outsider not in {choice.value for choice in spec.choices}
        _, error = validate_field(spec, outsider)
        assert error == not_a_choice(spec)


@pytest.mark.parametrize("spec", RADIO_FIELDS)
def test_a_radio_choice_label_is_not_taken_for_its_value(spec: Field) -> None:
    for choice in spec.choices:
        if choice.label != choice.value:
            assert validate_field(spec, choice.label)[1] == not_a_choice(spec)


@pytest.mark.parametrize("spec", AGREE_FIELDS)
def test_an_agreement_accepts_yes(spec: Field) -> None:
    assert validate_field(spec, "yes") == ("yes", None)


@pytest.mark.parametrize(
    "answer", ["no", "Yes", "YES", "on", "true", "1", "y", "yes please", "yes\x00"], ids=repr
)
@pytest.mark.parametrize("spec", AGREE_FIELDS)
def test_an_agreement_refuses_anything_but_yes(spec: Field, answer: str) -> None:
    assert validate_field(spec, answer)[1] == spec.required_message


# -- Email --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", EMAIL_FIELDS)
def test_an_email_field_accepts_one_address(spec: Field) -> None:
    assert validate_field(spec, "name@example.com") == ("name@example.com", None)
    assert validate_field(spec, "first.last+tag@mail.example.co.uk") == (
        "first.last+tag@mail.example.co.uk",
        None,
    )


@pytest.mark.parametrize(
    "typed",
    [
        "a@x, b@y",
        "a@x.org,b@y.org",
        "a@x b@y",
        "Name <a@example.com>",
        "<a@example.com>",
        '"a"@example.com',
        "no-at-sign",
        "a@b",
        "a@@example.com",
        "@example.com",
        "a@",
        "a@example..com",
    ],
)
@pytest.mark.parametrize("spec", EMAIL_FIELDS)
def test_an_email_field_refuses_anything_but_one_plain_address(spec: Field, typed: str) -> None:
    _, error = validate_field(spec, typed)
    assert error == EMAIL_FORMAT_MESSAGE


@pytest.mark.parametrize("spec", EMAIL_FIELDS)
def test_an_email_address_with_an_added_header_is_refused_as_not_one_line(spec: Field) -> None:
    _, error = validate_field(spec, "a@example.com\r\nBcc: x@y.z")
    assert is_the_message_for(error, spec, "\r")


# -- What is kept -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORM_CASES)
def test_fields_the_form_does_not_have_are_ignored(form: FormDefinition) -> None:
    submitted = valid_submission(form)
    extras = {"admin": "1", "token": "x", "recipients": "someone@example.com", "__class__": "y"}
    assert not set(extras) & set(submitted)
    checked = validate(form, {**submitted, **extras})
    assert checked.ok
    assert list(checked.answers) == [spec.name for spec in form.fields]


@pytest.mark.parametrize("spec", ONE_VALUE_FIELDS)
def test_whitespace_around_an_answer_is_stripped(spec: Field) -> None:
    value = valid_value(spec)
    assert isinstance(value, str)
    assert validate_field(spec, f"  \t{value} \r\n ") == (value, None)


@pytest.mark.parametrize("spec", ONE_VALUE_FIELDS)
def test_a_list_submitted_for_a_one_value_field_uses_its_first_value(spec: Field) -> None:
    value = valid_value(spec)
    assert isinstance(value, str)
    assert validate_field(spec, [value, "something else\x00"]) == (value, None)
    # Only the first counts: a bad first value is refused whatever follows it.
    refused = validate_field(spec, ["bad\x00value", value])
    assert refused[1] is not None


# -- Messages -----------------------------------------------------------------------------------


def every_message() -> list[str]:
    """Every required message and every message validation generates for a bad answer."""
    messages: list[str] = []
    for form in FORMS.values():
        for spec in form.fields:
            messages.append(spec.required_message)
            bad: list[str | list[str] | None] = [None, "", "not-a-choice", "bad\x00value"]
            bad.append("two\nlines")
            if spec.kind in TEXT_KINDS:
                bad.append(valid_text_of_length(spec, spec.max_length + 1))
            if spec.kind is FieldKind.EMAIL:
                bad += ["a@b", "Name <a@example.com>"]
            for value in bad:
                error = validate_field(spec, value)[1]
                if error is not None:
                    messages.append(error)
    return messages


def test_no_message_anywhere_says_invalid() -> None:
    messages = every_message()
    # Enough kinds of message were produced for the check to mean something.
    assert any("characters or fewer" in message for message in messages)
    assert any(message.startswith("Select ") for message in messages)
    assert any("on one line" in message for message in messages)
    assert EMAIL_FORMAT_MESSAGE in messages
    assert [message for message in messages if "invalid" in message.lower()] == []


def test_every_message_names_what_to_fix() -> None:
    # A message is a sentence about that field: never empty, never a bare "required".
    for message in every_message():
        if message:
            assert len(message.split()) >= 3, message
            assert message.lower() not in {"required", "this field is required"}


# -- Urgency and routing ------------------------------------------------------------------------


def answered(form: FormDefinition, **answers: str) -> Answers:
    submission = valid_submission(form)
    submission.update(answers)
    checked = validate(form, submission)
    assert checked.ok, checked.errors
    return checked.answers


@pytest.mark.parametrize(("risk", "urgent"), [("yes", True), ("no", False), ("unsure", True)])
def test_a_concern_is_urgent_only_when_someone_is_at_immediate_risk(
    risk: str, urgent: bool
) -> None:
    concern = FORMS["concern"]
    assert is_urgent(concern, answered(concern, immediate_risk=risk)) is urgent


@pytest.mark.parametrize(("safe", "urgent"), [("no", True), ("yes", False), ("contact", True)])
def test_leaving_a_session_early_is_urgent_unless_safe_now(safe: str, urgent: bool) -> None:
    left_early = FORMS["leave-left-early"]
    reach = {"reach_contact": "07700 900982", "reach_unsafe": "sam@example.org"}
    assert is_urgent(left_early, answered(left_early, safe_now=safe, **reach)) is urgent


def test_a_consent_form_is_never_urgent() -> None:
    consent = FORMS["consent"]
    assert is_urgent(consent, answered(consent)) is False
    # Whatever it holds, even the answers that make other forms urgent.
    for value in ("yes", "no", "unsure", "contact", ""):
        assert is_urgent(consent, {spec.name: value for spec in consent.fields}) is False
    assert is_urgent(consent, {"immediate_risk": "yes", "safe_now": "no"}) is False


FORMS_WITH_CHOICES = [
    pytest.param(form, id=form.kind)
    for form in FORMS.values()
    if any(spec.choices for spec in form.fields)
]


@pytest.mark.parametrize("form", FORMS_WITH_CHOICES)
def test_a_form_is_urgent_exactly_when_a_choice_is_its_fields_crisis_answer(
    form: FormDefinition,
) -> None:
    for spec in form.fields:
        for choice in spec.choices:
            expected = choice.value in spec.crisis_answers
            assert is_urgent(form, {spec.name: choice.value}) is expected, (spec.name, choice)


def test_a_concern_about_a_facilitator_goes_to_the_facilitator_concern_contact() -> None:
    concern = FORMS["concern"]
    answers = answered(concern, about="facilitator")
    assert recipients_for(concern, answers) == (Recipients.FACILITATOR_CONCERNS,)


def test_every_other_concern_goes_to_the_safeguarding_leads() -> None:
    concern = FORMS["concern"]
    others = [choice.value for choice in concern.field_named("about").choices]
    others.remove("facilitator")
    assert others
    for about in others:
        assert recipients_for(concern, answered(concern, about=about)) == (Recipients.CONCERNS,)


@pytest.mark.parametrize("kind", ["consent", "leave-leaving", "leave-missing", "leave-left-early"])
def test_consent_and_leave_notices_go_to_the_facilitators(kind: str) -> None:
    form = FORMS[kind]
    assert recipients_for(form, answered(form)) == (Recipients.FACILITATORS,)
    # A rerouting answer smuggled into a form that does not ask it changes nothing.
    assert recipients_for(form, {"about": "facilitator"}) == (Recipients.FACILITATORS,)


# -- Reading answers back -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", TEXT_FIELDS)
def test_a_typed_answer_reads_back_as_typed_or_not_given(spec: Field) -> None:
    value = valid_value(spec)
    assert display_value(spec, value) == value
    assert display_value(spec, "") == "Not given"


@pytest.mark.parametrize("spec", RADIO_FIELDS)
def test_a_radio_answer_reads_back_as_its_label_or_not_answered(spec: Field) -> None:
    for choice in spec.choices:
        assert display_value(spec, choice.value) == choice.label
    assert display_value(spec, "") == "Not answered"
    assert display_value(spec, "unlisted") == "unlisted"


@pytest.mark.parametrize("spec", AGREE_FIELDS)
def test_an_agreement_reads_back_as_yes_i_agree_or_no(spec: Field) -> None:
    assert display_value(spec, "yes") == "Yes, I agree"
    assert display_value(spec, "") == "No"
    assert display_value(spec, "no") == "No"


# -- The definitions themselves -----------------------------------------------------------------


def test_every_form_kind_is_unique_and_url_safe() -> None:
    defined = [value for value in vars(forms_module).values() if isinstance(value, FormDefinition)]
    kinds = [form.kind for form in defined]
    # FORMS is keyed by kind, so two forms of one kind would silently lose one of them.
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(FORMS)
    for key, form in FORMS.items():
        assert key == form.kind
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", form.kind), form.kind


@pytest.mark.parametrize("form", FORM_CASES)
def test_field_names_are_unique_python_identifiers(form: FormDefinition) -> None:
    names = [spec.name for spec in form.fields]
    assert len(names) == len(set(names))
    for name in names:
        assert name.isidentifier(), name
        assert not keyword.iskeyword(name), name


@pytest.mark.parametrize("spec", ALL_FIELDS)
def test_every_field_has_a_label_and_a_short_name(spec: Field) -> None:
    assert spec.label.strip()
    assert spec.short_name.strip()


@pytest.mark.parametrize("spec", REQUIRED_FIELDS)
def test_every_required_field_has_a_required_message(spec: Field) -> None:
    assert spec.required_message.strip()


@pytest.mark.parametrize("spec", CHOICE_FIELDS)
def test_every_choice_field_has_distinct_choices(spec: Field) -> None:
    values = [choice.value for choice in spec.choices]
    assert values
    assert len(values) == len(set(values))


@pytest.mark.parametrize("spec", fields_where(lambda spec: bool(spec.crisis_answers)))
def test_a_crisis_answer_is_one_of_its_fields_choices(spec: Field) -> None:
    assert set(spec.crisis_answers) <= {choice.value for choice in spec.choices}


def test_the_consent_form_asks_for_health_data_consent_separately() -> None:
    consent = FORMS["consent"]
    health = consent.field_named("consent_health_data")
    assert health.kind is FieldKind.AGREE
    assert not health.optional
    assert "health" in health.label.lower()
    assert health.required_message
    # Its own box: no other agreement on the form mentions health.
    others = [spec for spec in consent.fields if spec.kind is FieldKind.AGREE and spec != health]
    assert others
    assert all("health" not in spec.label.lower() for spec in others)
    # Without it, the form is refused with its own message.
    submission = valid_submission(consent)
    submission["consent_health_data"] = ""
    assert validate(consent, submission).errors == {"consent_health_data": health.required_message}


def test_every_consent_agreement_but_health_data_links_to_its_guideline() -> None:
    consent = FORMS["consent"]
    agreements = [spec for spec in consent.fields if spec.kind is FieldKind.AGREE]
    for spec in agreements:
        if spec.name != "consent_health_data":
            assert spec.handbook_link is not None, spec.name
            path, words = spec.handbook_link
            assert path
            assert words


@pytest.mark.parametrize("name", ["name", "contact_preference"])
def test_every_concern_identity_question_is_optional(name: str) -> None:
    assert FORMS["concern"].field_named(name).optional


@pytest.mark.parametrize(
    ("kind", "choice", "needed", "message"),
    [
        ("concern", {"contact_preference": "email"}, "email", "Enter the email address we should"),
        ("concern", {"contact_preference": "meeting"}, "meeting_name", "Enter the name you use"),
        ("leave-left-early", {"safe_now": "contact"}, "reach_contact", "Enter a phone number or"),
        ("leave-left-early", {"safe_now": "no"}, "reach_unsafe", "Enter a phone number or"),
    ],
)
def test_a_request_for_contact_needs_the_details_to_make_it(
    kind: str, choice: dict[str, str], needed: str, message: str
) -> None:
    form = FORMS[kind]
    submitted = {**valid_submission(form), **choice, needed: ""}
    checked = validate(form, submitted)
    assert list(checked.errors) == [needed]
    assert checked.errors[needed].startswith(message)
    # Given, it is kept, and the email says what to do with it.
    detail = "sam@example.org" if needed != "meeting_name" else "Blue Heron"
    answers = validate(form, {**submitted, needed: detail}).answers
    assert answers[needed] == detail
    if needed == "email":
        # The email gives it on its own line, "Reply to this address" (test_link_only).
        assert "They asked for a reply by email." in next_steps_for(form, answers)
        assert shown_answer(form, answers, "reply_to") == detail
    else:
        assert detail in next_steps_for(form, answers)


def test_details_for_a_choice_not_chosen_are_not_kept() -> None:
    concern = FORMS["concern"]
    submitted = {**valid_submission(concern), "contact_preference": "no", "email": "a@b.org"}
    checked = validate(concern, submitted)
    assert checked.ok
    assert checked.answers["email"] == ""
    assert "email" not in [spec.name for spec, _ in answer_rows(concern, checked.answers)]


@pytest.mark.parametrize("text", ["07700 900982", "+44 (0)20 7946 0958", "sam@example.org"])
def test_a_way_to_reach_someone_is_a_phone_number_or_an_email_address(text: str) -> None:
    spec = FORMS["leave-left-early"].field_named("reach_unsafe")
    assert validate_field(spec, text) == (text, None)


@pytest.mark.parametrize("text", ["call me", "123", "sam@", "0770090098212345678"])
def test_anything_else_is_refused_with_examples_of_both(text: str) -> None:
    spec = FORMS["leave-left-early"].field_named("reach_unsafe")
    assert validate_field(spec, text)[1] == (
        "Enter a phone number, like 07700 900 982, or an email address, like name@example.com"
    )


def test_a_member_who_is_not_safe_reaches_the_concern_route_too() -> None:
    left_early = FORMS["leave-left-early"]
    reach = {"reach_unsafe": "07700 900982"}
    assert recipients_for(left_early, answered(left_early, safe_now="no", **reach)) == (
        Recipients.FACILITATORS,
        Recipients.CONCERNS,
    )
    assert recipients_for(left_early, answered(left_early)) == (Recipients.FACILITATORS,)


def test_an_anonymous_concern_is_accepted() -> None:
    concern = FORMS["concern"]
    submission = valid_submission(concern)
    for name in ("name", "email", "contact_preference"):
        del submission[name]
    assert validate(concern, submission).ok


@pytest.mark.parametrize("form", FORM_CASES)
def test_every_form_is_kept_for_a_positive_number_of_days(form: FormDefinition) -> None:
    assert default_retention_days()[form.decision_group] > 0


def test_the_leave_kinds_are_exactly_the_leave_forms() -> None:
    values = [choice.value for choice in LEAVE_KINDS]
    assert len(values) == len(set(values))
    assert set(values) == {kind for kind in FORMS if kind.startswith("leave-")}


@pytest.mark.parametrize("name", ["Mehr\u200cnaz", "Dr \U0001f469\u200d\u2695\ufe0f"])
def test_joiners_that_real_names_and_emoji_need_are_accepted(name: str) -> None:
    spec = FORMS["concern"].field_named("name")
    assert validate_field(spec, name) == (name, None)


def test_a_lone_carriage_return_in_a_text_area_is_a_line_break() -> None:
    spec = FORMS["concern"].field_named("what_happened")
    assert validate_field(spec, "a\rb") == ("a\nb", None)


def test_an_invisible_character_is_named_by_its_code_point_and_name() -> None:
    spec = FORMS["consent"].field_named("name")
    assert validate_field(spec, "Sam\u202eExample")[1] == (
        "Name cannot contain the invisible character U+202E (right-to-left override): remove "
        "it, or type the answer again"
    )


def test_the_tables_are_derived_from_the_definitions() -> None:
    """A new form is one definition: the form table, the leave chooser and the privacy
    notice's groups all follow from it."""
    assert list(FORMS) == [form.kind for form in forms_module.ALL_FORMS]
    assert [choice.value for choice in LEAVE_KINDS] == [
        form.kind for form in forms_module.ALL_FORMS if form.chooser_label
    ]
    grouped = [form for forms in forms_module.PRIVACY_GROUPS.values() for form in forms]
    assert sorted(form.kind for form in grouped) == sorted(FORMS)
    assert all(
        form.decision_group == group
        for group, forms in forms_module.PRIVACY_GROUPS.items()
        for form in forms
    )
