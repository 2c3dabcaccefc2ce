"""Who a form goes to and how: its route (with the answers that change it), whether it is
urgent, and whether the member asked for a copy."""

from __future__ import annotations

from forms_server.forms.fields import Answers, FormDefinition, Recipients, is_shown

# "Email me a copy": discreet by default (see delivery/member_copy.py). "No" comes first and is
# what an unanswered question means.
COPY_NONE, COPY_LINK, COPY_FULL = "no", "link", "full"


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
