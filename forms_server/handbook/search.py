"""Searching the handbook: one index of every section of every built page, read by the
handbook's own script in the browser and by the server's `POST /search` page without
JavaScript. Both rank the same way: assets/search.js mirrors this module, and a browser test
compares their results.

The index is `search.json` at the site's root, in the shape Zensical writes it
(`{"items": [{"location", "level", "title", "text"}]}`), so the same script works on a
handbook built by MkDocs (the hook calls `write_index`) or by Zensical (which writes its own).
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from forms_server.handbook.search_words import query_terms, spellings, stems

logger = logging.getLogger(__name__)

SEARCH_INDEX = "search.json"
# Pages without a source, so without front matter to say `search: exclude: true`.
NOT_INDEXED = {"404.html"}
SECTION_HEADINGS = {"h1", "h2", "h3"}
SKIPPED_ELEMENTS = {"script", "style", "template"}
TAG = re.compile(r"<[^>]+>")
MOST_RESULTS = 20
SNIPPET_WORDS = 24
CRISIS_WORDS = "help/crisis-words.txt"
HELP_PAGE = "help/get-help-now/"


@dataclass(frozen=True, slots=True)
class Section:
    """One heading of one page, and the text under it up to the next heading."""

    location: str  # relative to the site's root, e.g. "joining/faq/#how-do-i-join"
    level: int
    title: str
    text: str
    page_title: str


@dataclass(frozen=True, slots=True)
class Result:
    section: Section
    score: int
    snippet: str  # plain text; the caller escapes it and marks the words


class ArticleText(HTMLParser):
    """The text of a built page's article, cut at each h1, h2 and h3 with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.article_depth = 0
        self.skipped_depth = 0
        self.heading: tuple[str, str] | None = None  # (tag, id) while inside a heading
        self.heading_text: list[str] = []
        self.sections: list[tuple[str, int, str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self.article_depth:
            if tag == "article":
                self.article_depth += 1
            if tag in SKIPPED_ELEMENTS:
                self.skipped_depth += 1
            if tag in SECTION_HEADINGS:
                self.heading = (tag, attributes.get("id") or "")
                self.heading_text = []
            return
        if tag == "article" and "md-content__inner" in (attributes.get("class") or ""):
            self.article_depth = 1

    def handle_endtag(self, tag: str) -> None:
        if not self.article_depth:
            return
        if tag in SKIPPED_ELEMENTS and self.skipped_depth:
            self.skipped_depth -= 1
        elif tag == "article":
            self.article_depth -= 1
        elif self.heading is not None and tag == self.heading[0]:
            name, anchor = self.heading
            title = " ".join("".join(self.heading_text).split())
            self.sections.append((anchor, int(name[1]), title, []))
            self.heading = None

    def handle_data(self, data: str) -> None:
        if not self.article_depth or self.skipped_depth:
            return
        if self.heading is not None:
            self.heading_text.append(data)
        elif self.sections:
            self.sections[-1][3].append(data)


def page_location(site_dir: Path, page: Path) -> str:
    relative = page.relative_to(site_dir).as_posix()
    return relative.removesuffix("index.html")


def page_sections(site_dir: Path, page: Path) -> list[Section]:
    parser = ArticleText()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    location = page_location(site_dir, page)
    page_title = parser.sections[0][2] if parser.sections else location
    sections = []
    for number, (anchor, level, title, text) in enumerate(parser.sections):
        # The page's own heading is the page: its address has no anchor.
        where = location if number == 0 or not anchor else f"{location}#{anchor}"
        sections.append(Section(where, level, title, " ".join("".join(text).split()), page_title))
    return sections


def menu_order(site_dir: Path, page: Path, order: Sequence[str]) -> tuple[int, str]:
    location = page_location(site_dir, page)
    return (order.index(location) if location in order else len(order), location)


def site_sections(
    site_dir: Path, order: Sequence[str] = (), excluded: Collection[str] = ()
) -> list[Section]:
    """Every page's sections, pages in the menu's order (`order` lists their locations),
    then any page the menu does not list; none of the `excluded` locations."""
    pages = [
        page
        for page in site_dir.rglob("*.html")
        if page.relative_to(site_dir).as_posix() not in NOT_INDEXED
        and page_location(site_dir, page) not in excluded
    ]
    sections = []
    for page in sorted(pages, key=lambda page: menu_order(site_dir, page, order)):
        sections.extend(page_sections(site_dir, page))
    return sections


def source_location(source: str) -> str:
    """ "index.md" is "", "guidelines/index.md" is "guidelines/", "forms.md" is "forms/"."""
    stem = source.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        return stem.removesuffix("index")
    return stem + "/"


def page_locations(nav: object) -> list[str]:
    """The menu's pages (mkdocs.yml's `nav`), in order, as the addresses the site gives them."""
    found: list[str] = []
    if isinstance(nav, str) and nav.endswith(".md"):
        found.append(source_location(nav))
    elif isinstance(nav, dict):
        for value in nav.values():
            found.extend(page_locations(value))
    elif isinstance(nav, list):
        for item in nav:
            found.extend(page_locations(item))
    return found


def write_index(site_dir: Path, order: Sequence[str] = (), excluded: Collection[str] = ()) -> Path:
    """search.json for the browser: every section's address, level, heading and text."""
    # Escaped as Zensical's HTML is, so "<" in the text is never read as the start of a tag.
    items = [
        {
            "location": section.location,
            "level": section.level,
            "title": html.escape(section.title, quote=False),
            "text": html.escape(section.text, quote=False),
        }
        for section in site_sections(site_dir, order, excluded)
    ]
    path = site_dir / SEARCH_INDEX
    path.write_text(json.dumps({"items": items}, separators=(",", ":")), encoding="utf-8")
    return path


def plain_text(text: str) -> str:
    """Zensical's index keeps each section's HTML; ours is already plain text."""
    return " ".join(html.unescape(TAG.sub(" ", text)).split())


def read_index(site_dir: Path) -> list[Section]:
    """The sections in the site's search.json, each with its page's title. A missing or broken
    index leaves search empty (and says so in the log); it never stops the forms."""
    path = site_dir / SEARCH_INDEX
    try:
        items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["items"]
        sections, page_title = [], ""
        for item in items:
            location, title = str(item["location"]), plain_text(str(item["title"]))
            if "#" not in location:
                page_title = title
            text = plain_text(str(item["text"]))
            sections.append(Section(location, int(item["level"]), title, text, page_title))
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("Search is empty: %s cannot be read (%s)", path, type(error).__name__)
        return []
    return sections


@lru_cache(maxsize=4096)
def section_stems(section: Section) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(stems(section.title)), tuple(stems(section.text))


def matches(terms: Sequence[str], candidates: Iterable[str]) -> int:
    """How many of the words start with one of the terms (a term and its spellings)."""
    return sum(1 for word in candidates if any(word.startswith(term) for term in terms))


def snippet(text: str, terms: Sequence[str]) -> str:
    """About two dozen words of the section, starting a little before the first match."""
    tokens = text.split()
    first = next(
        (
            index
            for index, token in enumerate(tokens)
            if any(word.startswith(term) for word in stems(token) for term in terms)
        ),
        0,
    )
    start = max(0, first - 4)
    chosen = tokens[start : start + SNIPPET_WORDS]
    prefix = "… " if start else ""
    suffix = " …" if start + SNIPPET_WORDS < len(tokens) else ""
    return prefix + " ".join(chosen) + suffix


def read_crisis_words(site_dir: Path) -> tuple[tuple[str, ...], ...]:
    """The words and phrases that mean someone may need help now, kept beside the help page
    (help/crisis-words.txt), as stems; none if the file is missing (search still works)."""
    try:
        lines = (site_dir / CRISIS_WORDS).read_text(encoding="utf-8").splitlines()
    except OSError:
        logger.warning("Search has no crisis words: %s cannot be read", CRISIS_WORDS)
        return ()
    return tuple(tuple(stems(line)) for line in lines if line.strip() and not line.startswith("#"))


def says_crisis(query: str, crisis: Sequence[tuple[str, ...]]) -> bool:
    """Whether the query holds one of the crisis phrases, word for word (stemmed)."""
    said = stems(query)
    return any(
        phrase and said[start : start + len(phrase)] == list(phrase)
        for phrase in crisis
        for start in range(len(said) - len(phrase) + 1)
    )


def search(
    sections: Sequence[Section], query: str, crisis: Sequence[tuple[str, ...]] = ()
) -> list[Result]:
    """Sections that contain every meaningful word of the query (as the start of a word, each
    word stemmed; a word found nowhere is read as its spellings a typo away), best first: a
    match in the heading counts ten times a match in the text; ties keep the handbook's order.
    If no section has them all, those with the most. A query that says someone may need help
    now puts "Get help now" first."""
    terms = query_terms(query)
    if not terms:
        return []
    vocabulary = {word for section in sections for part in section_stems(section) for word in part}
    wanted = [spellings(term, vocabulary) for term in terms]
    scored = []
    for section in sections:
        title_stems, text_stems = section_stems(section)
        found = [10 * matches(ways, title_stems) + matches(ways, text_stems) for ways in wanted]
        if any(found):
            scored.append((sum(1 for count in found if count), sum(found), section))
    most = max((count for count, _, _ in scored), default=0)
    flat = [term for ways in wanted for term in ways]
    results = [
        Result(section, score, snippet(section.text, flat))
        for count, score, section in scored
        if count == most
    ]
    results.sort(key=lambda result: -result.score)
    if says_crisis(query, crisis):
        help_first = [s for s in sections if s.location == HELP_PAGE]
        results = [
            *(Result(s, 0, snippet(s.text, flat)) for s in help_first),
            *(r for r in results if r.section.location != HELP_PAGE),
        ]
    return results[:MOST_RESULTS]


def marked(text: str, query: str) -> str:
    """The text, escaped for HTML, with each word that starts with a query word in <mark>."""
    terms = query_terms(query)
    pieces = []
    for piece in re.split(r"([\w'\u2019]+)", text):
        escaped = html.escape(piece)
        if piece and any(word.startswith(term) for word in stems(piece) for term in terms):
            escaped = f"<mark>{escaped}</mark>"
        pieces.append(escaped)
    return "".join(pieces)
