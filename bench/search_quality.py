"""How often the handbook's search finds what a member meant, and what that costs per query.

    .venv/bin/python -m bench.search_quality [--runs 5]

Builds the handbook, reads its search.json and help/crisis-words.txt, and asks
forms_server/handbook/search.py (the browser's script ranks the same way; a browser test
compares them) three sets of queries, each against a bare baseline in the same run: every
word of the query must start a word of the section, as typed (search before stems, typos and
crisis words).

- Crisis: every phrase in the list, alone and inside a sentence ("I think about <phrase>"),
  and in capitals. Counted: how many put "Get help now" first.
- Typos: every word of five letters or more in the handbook's headings, each misspelt four
  ways (two middle letters swapped, one dropped, one doubled, the last changed). Counted: how
  many have, among their first three results, a section that holds the word as spelt.
- Plurals: each heading word that is not already plural or an ending ("meeting", not
  "meetings" or "early"), with "s" added. Counted as for typos.
- Time: the median of `--runs` passes over all those queries, per query, as a ratio of the
  baseline's time for the same queries (these machines are noisy; the ratio is what to compare).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook
from forms_server.handbook.search import (
    HELP_PAGE,
    Section,
    read_crisis_words,
    read_index,
    search,
)
from forms_server.handbook.search_words import SHORT_WORD

Search = Callable[[str], list[Section]]


def bare_search(sections: Sequence[Section]) -> Search:
    """The baseline: every word as typed must start a word of the section, heading first."""

    def found(query: str) -> list[Section]:
        terms = re.findall(r"[0-9a-z']+", query.lower())
        scored: list[tuple[int, int, Section]] = []
        for section in sections:
            title = re.findall(r"[0-9a-z']+", section.title.lower())
            text = re.findall(r"[0-9a-z']+", section.text.lower())
            counts = [
                10 * sum(w.startswith(t) for w in title) + sum(w.startswith(t) for w in text)
                for t in terms
            ]
            if terms and all(counts):
                scored.append((-sum(counts), len(scored), section))
        return [section for _, _, section in sorted(scored)]

    return found


def misspelt(word: str) -> list[str]:
    middle = len(word) // 2
    changed = "a" if word[-1] != "a" else "e"
    return [
        word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :],
        word[:middle] + word[middle + 1 :],
        word[:middle] + word[middle] + word[middle:],
        word[:-1] + changed,
    ]


def heading_words(sections: Sequence[Section]) -> list[str]:
    found = {
        word
        for section in sections
        for word in re.findall(r"[a-z]+", section.title.lower())
        if len(word) >= SHORT_WORD
    }
    return sorted(found)


def holds(section: Section, word: str) -> bool:
    return word in f"{section.title} {section.text}".lower()


def found_in_first_three(ask: Search, cases: Sequence[tuple[str, str]]) -> int:
    return sum(any(holds(s, word) for s in ask(query)[:3]) for query, word in cases)


def per_query_seconds(ask: Search, queries: Sequence[str], runs: int) -> float:
    passes = []
    for _ in range(runs):
        start = time.perf_counter()
        for query in queries:
            ask(query)
        passes.append((time.perf_counter() - start) / len(queries))
    return statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        sections = read_index(site)
        crisis = read_crisis_words(site)
        lines = (site / "help/crisis-words.txt").read_text(encoding="utf-8").splitlines()
    phrases = [line for line in lines if line.strip() and not line.startswith("#")]
    ours: Search = lambda query: [r.section for r in search(sections, query, crisis)]  # noqa: E731
    bare = bare_search(sections)

    crisis_queries = [
        query for phrase in phrases for query in (phrase, f"I think about {phrase}", phrase.upper())
    ]
    words = heading_words(sections)
    typos = [(typo, word) for word in words for typo in misspelt(word)]
    endings = [
        (word + "s", word)
        for word in words
        if not word.endswith(("s", "y", "ed", "ing", "ly", "ful", "ous"))
    ]

    print(f"{len(sections)} sections, {len(phrases)} crisis phrases, {len(words)} heading words")
    print(f"{'':<44} {'ours':>12} {'baseline':>12}")

    def help_first(ask: Search) -> int:
        return sum(bool(ask(q)) and ask(q)[0].location == HELP_PAGE for q in crisis_queries)

    for name, ask_count in [
        (f"crisis: help first (of {len(crisis_queries)})", help_first),
        (
            f"typos: found in first 3 (of {len(typos)})",
            lambda ask: found_in_first_three(ask, typos),
        ),
        (
            f"plurals: found in first 3 (of {len(endings)})",
            lambda ask: found_in_first_three(ask, endings),
        ),
    ]:
        print(f"{name:<44} {ask_count(ours):>12} {ask_count(bare):>12}")
    queries = crisis_queries + [typo for typo, _ in typos] + [ending for ending, _ in endings]
    ours_time = per_query_seconds(ours, queries, arguments.runs)
    bare_time = per_query_seconds(bare, queries, arguments.runs)
    print(
        f"time per query, median of {arguments.runs} passes over {len(queries)} queries: "
        f"{ours_time * 1e3:.2f} ms, {ours_time / bare_time:.2f}x the baseline "
        f"({bare_time * 1e3:.2f} ms)"
    )


if __name__ == "__main__":
    main()
