"""The email itself: headers, the two parts from templates, and the promise that every answer
set the forms accept can be carried by an email (property-based, over the form definitions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import FieldKind, FormDefinition, Submission, is_shown, validate
from forms_server.mail.messages import WIRE_POLICY, Envelope, build_message, new_message_id
from tests.test_delivery import mail_settings, submission

SENT_AT = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)
RECIPIENT = "f1@example.org"


def built(item: Submission, group_name: str = "Harbour") -> EmailMessage:
    message_id = new_message_id("forms@harbour.example")
    envelope = Envelope(RECIPIENT, message_id, mail_settings(None), group_name, SENT_AT)
    return build_message(item, envelope)


def on_the_wire(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=WIRE_POLICY)


def test_headers_say_when_it_was_sent_and_nothing_about_the_form_in_the_id() -> None:
    item = submission("concern", about="member", immediate_risk="yes")
    item = Submission(
        item.reference,
        item.form_kind,
        item.answers,
        SENT_AT - timedelta(hours=3),
        True,
        None,
    )
    message = built(item)
    assert message["Date"] == "Wed, 25 Nov 2026 18:30:00 +0000"  # sent, not received
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Importance"] == "High"
    assert message["X-Priority"] is None
    message_id = str(message["Message-ID"])
    assert item.reference not in message_id
    assert "concern" not in message_id
    assert message_id.endswith("@harbour.example>")
    assert [a.addr_spec for a in message["To"].addresses] == [RECIPIENT]


def test_both_parts_show_the_same_rows_and_the_guidelines_version() -> None:
    item = submission("consent")
    item = Submission(item.reference, item.form_kind, item.answers, SENT_AT, False, "a85ac2ab6aa4")
    message = built(item)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    for part in (plain.get_content(), html.get_content()):
        assert "Guidelines version agreed to: a85ac2ab6aa4" in part
        assert "Samuel Example" in part
        for spec in FORMS["consent"].fields:
            assert (spec.label in part) is spec.for_facilitators, spec.name


def test_what_a_member_types_is_escaped_in_the_html_part() -> None:
    item = submission("concern", about="member", what_happened="<script>alert(1)</script> & co")
    html = built(item).get_body(preferencelist=("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html.get_content()


@given(group_name=st.text(min_size=1, max_size=100).filter(lambda name: name.strip()))
@settings(max_examples=300, deadline=None)
def test_a_subject_never_starts_on_an_empty_line(group_name: str) -> None:
    """Folding at 78 characters put `Subject:` alone on its first line for a group name with
    an unbalanced bracket; some mail clients then show no subject at all."""
    name = " ".join(group_name.split())  # a configured name is one line
    item = submission("concern", about="member")
    raw = on_the_wire(built(item, name))
    header = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
    assert header.strip() != b"Subject:"
    parsed = message_from_bytes(raw, policy=default)
    assert str(parsed["Subject"]).endswith(f"Concern - ref {item.reference}")


def test_the_bracket_that_used_to_fold_onto_an_empty_line() -> None:
    raw = on_the_wire(built(submission("consent"), "FnFxMEpvlMWlV&LSCIjdGuHSiPWZ(nuNFEv"))
    assert b"Subject: FnFxMEpvlMWlV&LSCIjdGuHSiPWZ(nuNFEv: Consent form" in raw


# -- Every accepted answer set builds a message ----------------------------------------------------


# Local parts from the characters an address pattern allows, dots and "=?" often.
LOCAL_PARTS = st.text(alphabet=st.sampled_from(list("ab9.=?_-+'!#")), min_size=1, max_size=10)
DOMAINS = st.from_regex(r"[a-z0-9-]{1,8}(\.[a-z0-9-]{1,6}){1,2}", fullmatch=True)


def answers_for(form: FormDefinition) -> st.SearchStrategy[dict[str, str | list[str]]]:
    """Answers a browser could post, mostly the kind the form accepts (so the email's edge
    cases are reached), with any text, and anything shaped like an address."""
    fields: dict[str, st.SearchStrategy[str | list[str]]] = {}
    for spec in form.fields:
        choices = [choice.value for choice in spec.choices]
        if spec.kind is FieldKind.EMAIL:
            fields[spec.name] = st.one_of(
                st.emails(),
                st.builds(lambda local, domain: f"{local}@{domain}", LOCAL_PARTS, DOMAINS),
                st.text(max_size=40),
            )
        elif spec.kind is FieldKind.RADIOS:
            fields[spec.name] = st.sampled_from(choices)
        elif spec.kind is FieldKind.AGREE:
            fields[spec.name] = st.just("yes")
        else:
            fields[spec.name] = st.text(min_size=1, max_size=spec.max_length)
    return st.fixed_dictionaries(fields)


@given(data=st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_answer_set_the_forms_accept_builds_a_message(data: st.DataObject) -> None:
    form = data.draw(st.sampled_from(list(FORMS.values())))
    checked = validate(form, data.draw(answers_for(form)))
    if not checked.ok:
        return
    item = Submission("4KX-7QD-M2P", form.kind, checked.answers, SENT_AT, False, None)
    raw = on_the_wire(built(item))
    parsed = message_from_bytes(raw, policy=default)
    reply_to = parsed["Reply-To"]
    # Only an address given so that we reply to it; never one given for the member's copy.
    typed = next(
        (
            str(checked.answers[s.name])
            for s in form.fields
            if s.reply_to and is_shown(s, checked.answers) and checked.answers[s.name]
        ),
        "",
    )
    if typed:
        assert [address.addr_spec for address in reply_to.addresses] == [typed]
    else:
        assert reply_to is None
    assert [address.addr_spec for address in parsed["To"].addresses] == [RECIPIENT]
