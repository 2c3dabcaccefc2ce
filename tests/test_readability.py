"""Every page is plain English: Flesch reading ease of at least 60."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forms_server.config.group import PACKAGE_DIR
from tests.handbook_pages import HandbookPage
from tests.readability import article_blocks, flesch_reading_ease, syllables

MINIMUM_READING_EASE = 60


def test_every_page_reads_easily(pages: list[HandbookPage], site_dir: Path) -> None:
    scores = {
        page.source: round(
            flesch_reading_ease(article_blocks(page.built_file(site_dir).read_text("utf-8"))), 1
        )
        for page in pages
    }
    hard = {source: score for source, score in scores.items() if score < MINIMUM_READING_EASE}
    assert hard == {}, f"pages below {MINIMUM_READING_EASE}: {hard}"


@pytest.mark.parametrize(
    ("word", "count"), [("you", 1), ("meeting", 2), ("facilitator", 5), ("zoomable", 3)]
)
def test_syllables_are_counted(word: str, count: int) -> None:
    assert syllables(word) == count


def test_plain_text_scores_higher_than_dense_text() -> None:
    plain = ["You can come for as long as you need.", "There is no limit."]
    dense = [
        "Notwithstanding the aforementioned considerations, participants' "
        "confidentiality obligations remain indefinitely applicable."
    ]
    assert flesch_reading_ease(plain) > 80
    assert flesch_reading_ease(dense) < 20


def test_a_heading_or_list_item_counts_as_a_sentence() -> None:
    html = (
        "<article><h1>Get help now</h1>"
        "<ul><li>Call 999</li><li><p>Text SHOUT</p></li></ul></article>"
    )
    assert article_blocks(html) == ["Get help now", "Call 999", "Text SHOUT"]


def test_every_date_a_person_reads_is_written_one_way() -> None:
    """Pages and emails wrote "05 December" in some places and "5 December" in others (GOV.UK
    style: no leading zero). Every format that writes a day before a month name says %-d."""
    zero_padded = re.compile(r"%d %[Bb]")
    found = [
        f"{path.relative_to(PACKAGE_DIR)}:{number}"
        for path in sorted(PACKAGE_DIR.rglob("*"))
        if path.suffix in {".py", ".html", ".txt"} and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if zero_padded.search(line)
    ]
    assert found == []
