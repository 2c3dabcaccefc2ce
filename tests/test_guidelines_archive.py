"""Each version of the guidelines is archived whole, once, with the day it was first served."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.definitions import CONSENT
from forms_server.forms.fields import FieldKind
from forms_server.handbook.guidelines import archive_guidelines

STATEMENTS = [spec.label for spec in CONSENT.fields if spec.kind is FieldKind.AGREE]


def pages_in(docs: Path) -> list[Path]:
    return sorted((docs / "guidelines").glob("*.md"))


def test_a_version_keeps_the_day_it_was_first_served(tmp_path: Path) -> None:
    docs = pages_in(PROJECT_ROOT / "docs")
    first = archive_guidelines(tmp_path, docs, STATEMENTS, today=date(2026, 11, 25))
    later = archive_guidelines(tmp_path, docs, STATEMENTS, today=date(2027, 3, 1))
    assert first == later
    assert first.in_words == "25 November 2026"
    archived = json.loads((tmp_path / "guidelines" / f"{first.version}.json").read_text())
    assert archived["since"] == "2026-11-25"


def test_a_changed_rule_is_a_new_version_with_its_own_text(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "guidelines").mkdir(parents=True)
    rule = docs / "guidelines" / "taking-part.md"
    rule.write_text("Please offer support rather than advice.\n", encoding="utf-8")
    before = archive_guidelines(
        tmp_path / "data", pages_in(docs), STATEMENTS, today=date(2026, 11, 25)
    )
    rule.write_text("Please offer support, not advice.\n", encoding="utf-8")
    after = archive_guidelines(
        tmp_path / "data", pages_in(docs), STATEMENTS, today=date(2026, 12, 2)
    )
    assert before.version != after.version
    archive = tmp_path / "data" / "guidelines"
    assert "rather than advice" in (archive / f"{before.version}.json").read_text("utf-8")
    assert "support, not advice" in (archive / f"{after.version}.json").read_text("utf-8")
    assert after.in_words == "2 December 2026"
