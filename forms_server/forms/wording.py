"""What the privacy notice and the confirmation page say about each form, from the
definitions: what is collected, what happens next, and amounts of time in words. How long each
form is kept depends on how it is delivered: see handbook/delivery_wording.py."""

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


def amount(count: int, unit: str) -> str:
    """ "1 minute", "2 minutes": never "1 minutes" or "minute(s)"."""
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_in_words(minutes: int) -> str:
    """A decided number of minutes as a member reads it: "30 minutes", "2 days", "36 hours",
    never "0 hours" (2 minutes divided by 60)."""
    if minutes % 1440 == 0:
        return amount(minutes // 1440, "day")
    if minutes % 60 == 0:
        return amount(minutes // 60, "hour")
    return amount(minutes, "minute")


def reply_phrase(days: int | None) -> str:
    """ " within 3 days" when the group decided it; nothing when it did not."""
    if days is None:
        return ""
    return " within 1 day" if days == 1 else f" within {days} days"


def what_happens_next(
    form: FormDefinition, reply_days: Mapping[str, int | None], joining: str | None = None
) -> str:
    """The confirmation page's promise: only what the group decided (see decisions.py): the
    reply time, and for the consent form, what happens after it (how_joining_works)."""
    return form.what_happens_next.format(
        reply=reply_phrase(reply_days.get(form.decision_group)),
        joining=f"{joining} " if joining else "",
    )
