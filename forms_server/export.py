"""Everything held about a member, opened, as they can read it: JSON, or CSV safe to open in a
spreadsheet (a subject access request, `forms-server export`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import display_value
from forms_server.handbook.guidelines import archived_version
from forms_server.rights import Held

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def rows(held: Held) -> list[tuple[str, str]]:
    """(question, answer) in the form's order, as the member saw them."""
    form = FORMS.get(held.form_kind)
    if form is None:
        return [(name, str(value)) for name, value in held.answers.items()]
    return [
        (spec.short_name, display_value(spec, held.answers[spec.name]))
        for spec in form.fields
        if spec.name in held.answers and held.answers[spec.name] not in ("", [])
    ]


def guidelines_in_words(data_dir: Path, version: str | None) -> str | None:
    if version is None:
        return None
    archived = archived_version(data_dir, version)
    when = f"as they were on {archived.in_words}" if archived else "version not archived"
    return f"{when} (version {version}, kept in guidelines/{version}.json)"


def as_json(found: Iterable[Held], data_dir: Path, now: datetime) -> str:
    records = [
        {
            "reference": held.reference,
            "form": FORMS[held.form_kind].email_name if held.form_kind in FORMS else held.form_kind,
            "received": held.received_at.isoformat(),
            "where": held.where,
            "deleted_by": held.expires_at.isoformat() if held.expires_at else None,
            "guidelines_agreed": guidelines_in_words(data_dir, held.guidelines_version),
            "answers": dict(rows(held)),
            "matched_by": list(held.matched_by),
        }
        for held in found
    ]
    return json.dumps(
        {"exported_at": now.isoformat(), "records": records},
        indent=2,
        ensure_ascii=False,
    )


def as_csv(found: Iterable[Held], data_dir: Path) -> str:
    """One row per answer; every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["reference", "form", "received", "where", "question", "answer"])
    for held in found:
        form_name = FORMS[held.form_kind].email_name if held.form_kind in FORMS else ""
        answered = rows(held)
        agreed = guidelines_in_words(data_dir, held.guidelines_version)
        if agreed:
            answered.append(("Guidelines agreed", agreed))
        for question, answer in answered:
            writer.writerow(
                [
                    formula_safe(cell)
                    for cell in (
                        held.reference,
                        form_name,
                        held.received_at.isoformat(),
                        held.where,
                        question,
                        answer,
                    )
                ]
            )
    return out.getvalue()
