"""What the privacy notice and the confirmation page say about each form, from the
definitions: what is collected, how long it is kept, and what happens next."""

from __future__ import annotations

from collections.abc import Mapping

from forms_server.forms.definitions import PRIVACY_GROUPS
from forms_server.forms.fields import FormDefinition


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
