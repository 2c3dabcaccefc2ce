"""Every rule for every field of every form, generated from the definitions: a new field is
covered the moment it is added."""

from __future__ import annotations

import pytest

from forms_server.forms import (
    FORMS,
    LEAVE_KINDS,
    Field,
    FieldKind,
    FormDefinition,
    Recipients,
    display_value,
    is_urgent,
    recipients_for,
    validate,
    validate_field,
)

ALL_FIELDS = [(form, spec) for form in FORMS.values() for spec in form.fields]
TEXT_KINDS = {FieldKind.TEXT, FieldKind.EMAIL, FieldKind.TEXTAREA}
LINE_BREAKERS = ["\r", "\n", "\x00", "\u2028", "\u0085", "\x0b", "\u202e"]


def field_id(case: tuple[FormDefinition, Field]) -> str:
    return f"{case[0].kind}.{case[1].name}"


def valid_text(spec: Field, length: int) -> str:
    if spec.kind is FieldKind.EMAIL:
        domain = "@example.org"
        return "a" * (length - len(domain)) + domain
    return "a" * length


@pytest.mark.parametrize(("form", "spec"), ALL_FIELDS, ids=map(field_id, ALL_FIELDS))
def test_empty_is_refused_with_its_own_message_unless_optional(
    form: FormDefinition, spec: Field
) -> None:
    _, error = validate_field(spec, "   ")
    if spec.optional:
        assert error is None
    else:
        assert error == spec.required_message
        assert error


TEXT_FIELDS = [(form, spec) for form, spec in ALL_FIELDS if spec.kind in TEXT_KINDS]


@pytest.mark.parametrize(("form", "spec"), TEXT_FIELDS, ids=map(field_id, TEXT_FIELDS))
def test_the_maximum_length_is_allowed_and_one_more_is_not(
    form: FormDefinition, spec: Field
) -> None:
    at_limit = valid_text(spec, spec.max_length)
    assert validate_field(spec, at_limit) == (at_limit, None)
    over = valid_text(spec, spec.max_length + 1)
    _, error = validate_field(spec, over)
    assert error == f"{spec.short_name} must be {spec.max_length} characters or fewer"


SINGLE_LINE = [(form, spec) for form, spec in ALL_FIELDS if spec.is_single_line]


@pytest.mark.parametrize("character", LINE_BREAKERS, ids=repr)
@pytest.mark.parametrize(("form", "spec"), SINGLE_LINE, ids=map(field_id, SINGLE_LINE))
def test_single_line_fields_refuse_line_breaks_and_control_characters(
    form: FormDefinition, spec: Field, character: str
) -> None:
    value = valid_text(spec, 20)
    _, error = validate_field(spec, value[:5] + character + value[5:])
    assert error == f"{spec.short_name} must be on one line, with no special characters"


TEXTAREAS = [(form, spec) for form, spec in ALL_FIELDS if spec.kind is FieldKind.TEXTAREA]


@pytest.mark.parametrize(("form", "spec"), TEXTAREAS, ids=map(field_id, TEXTAREAS))
def test_several_lines_are_fine_in_a_text_area_but_nul_is_not(
    form: FormDefinition, spec: Field
) -> None:
    assert validate_field(spec, "First line\r\nSecond line") == ("First line\nSecond line", None)
    _, error = validate_field(spec, "First\x00line")
    assert error == f"{spec.short_name} must not contain special characters"


CHOICE_FIELDS = [
    (form, spec)
    for form, spec in ALL_FIELDS
    if spec.kind in {FieldKind.RADIOS, FieldKind.CHECKBOXES}
]


@pytest.mark.parametrize(("form", "spec"), CHOICE_FIELDS, ids=map(field_id, CHOICE_FIELDS))
def test_choices_outside_the_list_are_refused(form: FormDefinition, spec: Field) -> None:
    for choice in spec.choices:
        value = [choice.value] if spec.kind is FieldKind.CHECKBOXES else choice.value
        assert validate_field(spec, value)[1] is None
    _, error = validate_field(spec, "not-a-choice")
    assert error == f"Select {spec.short_name.lower()} from the list"  # noqa: S608 - words, not SQL


AGREEMENTS = [(form, spec) for form, spec in ALL_FIELDS if spec.kind is FieldKind.AGREE]


@pytest.mark.parametrize(("form", "spec"), AGREEMENTS, ids=map(field_id, AGREEMENTS))
def test_an_agreement_is_only_a_ticked_box(form: FormDefinition, spec: Field) -> None:
    assert validate_field(spec, "yes") == ("yes", None)
    for anything_else in ("no", "on", "true", "YES"):
        assert validate_field(spec, anything_else)[1] == spec.required_message


EMAIL_FIELDS = [(form, spec) for form, spec in ALL_FIELDS if spec.kind is FieldKind.EMAIL]


@pytest.mark.parametrize(
    "typed",
    ["a@x, b@y.org", "a@x.org b@y.org", "Name <a@example.org>", "no-at-sign", "a@b", "a@@b.org"],
)
@pytest.mark.parametrize(("form", "spec"), EMAIL_FIELDS, ids=map(field_id, EMAIL_FIELDS))
def test_an_email_field_takes_exactly_one_address(
    form: FormDefinition, spec: Field, typed: str
) -> None:
    assert validate_field(spec, "name@example.com") == ("name@example.com", None)
    _, error = validate_field(spec, typed)
    assert error == "Enter an email address in the correct format, like name@example.com"


def test_unknown_fields_are_ignored_and_whitespace_trimmed() -> None:
    checked = validate(FORMS["leave-missing"], {"name": "  Sam  ", "dates": "2 Dec", "admin": "1"})
    assert checked.ok
    assert checked.answers["name"] == "Sam"
    assert "admin" not in checked.answers


def test_a_list_for_a_text_field_uses_its_first_value() -> None:
    spec = FORMS["leave-missing"].field_named("name")
    assert validate_field(spec, ["Sam", "Alex"]) == ("Sam", None)


def test_no_message_says_invalid() -> None:
    messages = [spec.required_message for _, spec in ALL_FIELDS]
    for _, spec in TEXT_FIELDS:
        messages.append(validate_field(spec, valid_text(spec, spec.max_length + 1))[1] or "")
    assert not [message for message in messages if "invalid" in message.lower()]


# -- Routing, urgency and display ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "answers", "urgent"),
    [
        ("concern", {"immediate_risk": "yes"}, True),
        ("concern", {"immediate_risk": "no"}, False),
        ("concern", {"immediate_risk": "unsure"}, False),
        ("leave-left-early", {"safe_now": "no"}, True),
        ("leave-left-early", {"safe_now": "yes"}, False),
        ("consent", {}, False),
    ],
)
def test_urgency_comes_from_the_crisis_answer(
    kind: str, answers: dict[str, str], urgent: bool
) -> None:
    assert is_urgent(FORMS[kind], dict(answers)) is urgent


def test_a_concern_about_a_facilitator_goes_to_the_organisation_lead() -> None:
    concern = FORMS["concern"]
    assert recipients_for(concern, {"about": "facilitator"}) is Recipients.ORGANISATION_LEAD
    assert recipients_for(concern, {"about": "member"}) is Recipients.SAFEGUARDING
    for kind in ("consent", "leave-leaving", "leave-missing", "leave-left-early"):
        assert recipients_for(FORMS[kind], {}) is Recipients.FACILITATORS


def test_answers_read_back_in_words() -> None:
    consent, concern = FORMS["consent"], FORMS["concern"]
    assert display_value(consent.field_named("agree_removal"), "yes") == "Yes, I agree"
    assert display_value(concern.field_named("about"), "member") == "Another member"
    assert display_value(concern.field_named("name"), "") == "Not given"


# -- The definitions themselves -----------------------------------------------------------------


def test_the_definitions_are_complete() -> None:
    assert len(set(FORMS)) == len(FORMS)
    for form in FORMS.values():
        assert form.kind.replace("-", "").isalpha()
        assert form.retention_days > 0
        names = [spec.name for spec in form.fields]
        assert len(set(names)) == len(names)
        for spec in form.fields:
            assert spec.name.isidentifier()
            assert spec.label
            assert spec.short_name
            assert spec.privacy
            if not spec.optional:
                assert spec.required_message
            if spec.kind in {FieldKind.RADIOS, FieldKind.CHECKBOXES}:
                assert spec.choices
            if spec.crisis_answer is not None:
                assert spec.crisis_answer in {choice.value for choice in spec.choices}


def test_consent_has_a_separate_health_data_consent_and_links_each_agreement() -> None:
    consent = FORMS["consent"]
    health = consent.field_named("consent_health_data")
    assert health.kind is FieldKind.AGREE
    assert not health.optional
    for spec in consent.fields:
        if spec.kind is FieldKind.AGREE:
            assert spec.handbook_link is not None, spec.name
    assert consent.binds_guidelines


def test_every_identity_question_on_a_concern_is_optional() -> None:
    concern = FORMS["concern"]
    for name in ("name", "email", "contact_preference"):
        assert concern.field_named(name).optional
        assert not concern.field_named(name).kept


def test_the_leave_kinds_are_the_leave_forms() -> None:
    assert {choice.value for choice in LEAVE_KINDS} == {k for k in FORMS if k.startswith("leave-")}
