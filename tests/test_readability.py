"""Every page is plain English: Flesch reading ease of at least 60."""

from __future__ import annotations

from pathlib import Path

import pytest

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
