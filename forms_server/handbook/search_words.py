"""The words of a search: how the handbook's text and a query are cut into words, stemmed,
stripped of words that say little, and matched despite a typo. assets/search.js does exactly
the same in the browser (a browser test compares their results).
"""

from __future__ import annotations

import re
from collections.abc import Collection

# A word: letters and digits, and apostrophes inside a word ("don't", "member's").
WORD = re.compile(r"[0-9a-z]+(?:'[0-9a-z]+)*")

# The commonest English endings, longest first; a stem keeps at least three letters.
SUFFIXES = (
    "ingly",
    "edly",
    "ings",
    "ing",
    "ies",
    "ied",
    "ness",
    "ment",
    "ally",
    "ful",
    "al",
    "ly",
    "es",
    "ed",
    "s",
    "e",
)
MIN_STEM = 3
# Words that say little about what someone looks for ("delete my data": "delete", "data").
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "can",
        "do",
        "does",
        "for",
        "from",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "this",
        "to",
        "us",
        "we",
        "what",
        "when",
        "where",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
# A word of this many letters may have one typo; of the longer, two.
SHORT_WORD = 5
LONG_WORD = 8


def words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("\u2019", "'"))


def stem(word: str) -> str:
    """The word without the commonest English endings, so "cameras" finds "camera" and
    "suicidal" finds "suicide". Light on purpose: the browser's script does exactly the same."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
    return word


def stems(text: str) -> list[str]:
    return [stem(word) for word in words(text)]


def query_terms(query: str) -> list[str]:
    """The query's words, stemmed, once each; words like "my" and "the" only if nothing else
    is left."""
    every = list(dict.fromkeys(stems(query)))
    meaningful = [term for term in every if term not in STOP_WORDS]
    return meaningful or every


def within(limit: int, first: str, second: str) -> bool:
    """Whether two words are at most `limit` edits apart (a letter added, dropped, changed, or
    two neighbours swapped: "confidentail")."""
    if abs(len(first) - len(second)) > limit:
        return False
    previous2: list[int] = []
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, start=1):
        current = [i] + [0] * len(second)
        for j, b in enumerate(second, start=1):
            cost = 0 if a == b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a == second[j - 2] and first[i - 2] == b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def typo_allowance(term: str) -> int:
    return 2 if len(term) >= LONG_WORD else 1 if len(term) >= SHORT_WORD else 0


def spellings(term: str, vocabulary: Collection[str]) -> list[str]:
    """The term itself if some word starts with it; else the words a typo away from it."""
    if any(word.startswith(term) for word in vocabulary):
        return [term]
    allowance = typo_allowance(term)
    return sorted(word for word in vocabulary if allowance and within(allowance, term, word))
