"""Searching the handbook: the index of the built site, the ranking (stems, typos, words that
mean someone needs help now), and POST /search for a browser without JavaScript."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from forms_server.handbook.search import (
    SEARCH_INDEX,
    Section,
    marked,
    page_locations,
    read_crisis_words,
    read_index,
    search,
    source_location,
)
from tests.handbook_pages import HandbookPage
from tests.test_views import BASE_URL, make_app


@pytest.fixture(scope="module")
def sections(site_dir: Path) -> list[Section]:
    return read_index(site_dir)


def section(title: str, text: str, location: str = "page/") -> Section:
    return Section(location, 2, title, text, "Page")


def test_the_index_holds_every_page_in_the_menus_order_but_the_excluded_ones(
    site_dir: Path, sections: list[Section], pages: list[HandbookPage]
) -> None:
    page_order = list(dict.fromkeys(s.location.split("#")[0] for s in sections))
    # The search page and the printable page (every guideline again) say `search: exclude`.
    expected = [
        page.url_path for page in pages if page.url_path not in {"search/", "guidelines/print/"}
    ]
    assert page_order == expected
    # Every heading of a page is its own entry, and each anchor exists on its page.
    faq = [s for s in sections if s.location.startswith("joining/faq/#")]
    built = (site_dir / "joining/faq/index.html").read_text(encoding="utf-8")
    assert len(faq) >= 5
    for entry in faq:
        assert f'id="{entry.location.split("#")[1]}"' in built
        assert entry.page_title == "Questions people ask"


def test_the_index_has_the_filled_in_text_and_nothing_of_the_layout(
    site_dir: Path, sections: list[Section]
) -> None:
    text = " ".join(s.title + " " + s.text for s in sections)
    assert "{{" not in text
    assert "Harbour Peer Support" in text
    assert "Skip to content" not in text  # the layout, not the article
    assert "Table of contents" not in text
    raw = json.loads((site_dir / SEARCH_INDEX).read_text(encoding="utf-8"))
    assert {tuple(item) for item in raw["items"]} == {("location", "level", "title", "text")}


def test_a_word_finds_its_sections_heading_first(sections: list[Section]) -> None:
    results = search(sections, "camera")
    assert results, "camera is in the guidelines"
    assert "camera" in results[0].section.title.lower()
    for result in results:
        assert "camera" in (result.section.title + result.section.text).lower()


def test_a_word_is_found_as_it_is_typed(sections: list[Section]) -> None:
    # The first result for "cam" is already the one for "camera".
    assert search(sections, "cam")[0].section == search(sections, "camera")[0].section


def test_sections_with_every_word_come_and_else_those_with_the_most() -> None:
    found = section("Leaving", "You can leave the group at any time.")
    other = section("Cameras", "Your camera is up to you.", "other/")
    both = section("Notes", "Nothing here.", "notes/")
    assert [r.section for r in search([found, other, both], "leave group")] == [found]
    # No section has "leave" and "camera": each that has one of them is better than nothing,
    # for a member who typed a sentence should not be told there is nothing.
    assert [r.section for r in search([found, other, both], "leave camera")] == [found, other]
    assert [r.section for r in search([found, other, both], "leave group camera")] == [found]


@pytest.mark.parametrize(
    ("typed", "finds"),
    [
        ("cameras", "camera"),  # a plural finds the singular
        ("leaving", "leave"),  # and an ending, the word
        ("confidentail", "confidential"),  # one letter swapped
        ("safegaurding", "safeguarding"),
        ("atend", "attend"),  # one letter missing
        ("how do I leave the group", "leave"),  # the little words of a question do not count
    ],
)
def test_a_member_finds_the_section_with_the_words_they_would_type(
    sections: list[Section], typed: str, finds: str
) -> None:
    results = search(sections, typed)
    assert results, typed
    assert finds in (results[0].section.title + " " + results[0].section.text).lower()


def test_a_short_word_is_not_read_as_another(sections: list[Section]) -> None:
    # "cam" is the start of "camera", and a four-letter word gets no typo allowance: "rule"
    # never becomes "role" or "rude".
    assert all(
        "rule" in (r.section.title + r.section.text).lower() for r in search(sections, "rule")
    )


def test_the_list_of_crisis_words_is_substantial_and_each_puts_help_first(
    site_dir: Path, sections: list[Section]
) -> None:
    crisis = read_crisis_words(site_dir)
    assert len(crisis) >= 30
    lines = (site_dir / "help/crisis-words.txt").read_text(encoding="utf-8").splitlines()
    phrases = [line for line in lines if line.strip() and not line.startswith("#")]
    for phrase in phrases:
        for typed in [phrase, phrase.upper(), f"what if I {phrase}"]:
            first = [r.section.location for r in search(sections, typed, crisis)][:1]
            assert first == ["help/get-help-now/"], typed
    # Words that only look alike do not: "skills" is not "kill myself", "camera" not a crisis.
    for typed in ["camera", "skills", "leave the group"]:
        assert search(sections, typed, crisis)[0].section.location != "help/get-help-now/"


def test_without_the_crisis_list_search_still_works(tmp_path: Path, site_dir: Path) -> None:
    assert read_crisis_words(tmp_path) == ()
    assert search(read_index(site_dir), "camera", read_crisis_words(tmp_path))


def test_ranking_counts_the_heading_ten_times_and_ties_keep_the_handbooks_order() -> None:
    first = section("About", "camera camera", "first/")
    heading = section("Your camera", "", "heading/")
    second = section("More", "camera camera", "second/")
    assert [r.section.location for r in search([first, heading, second], "camera")] == [
        "heading/",
        "first/",
        "second/",
    ]


def test_nothing_typed_or_only_punctuation_finds_nothing(sections: list[Section]) -> None:
    assert search(sections, "") == []
    assert search(sections, " ?! ") == []
    assert search(sections, "zzqx") == []


def test_a_snippet_starts_near_the_match() -> None:
    words = " ".join(f"word{n}" for n in range(60))
    [result] = search([section("Title", words + " camera " + words)], "camera")
    assert result.snippet.startswith("… ")
    assert "camera" in result.snippet
    assert result.snippet.endswith(" …")


def test_marking_escapes_html_and_marks_whole_words() -> None:
    assert marked("<b>Cameras</b> & you", "cam") == (
        "&lt;b&gt;<mark>Cameras</mark>&lt;/b&gt; &amp; you"
    )


def test_an_index_written_by_zensical_reads_the_same(tmp_path: Path) -> None:
    (tmp_path / SEARCH_INDEX).write_text(
        json.dumps(
            {
                "config": {"lang": ["en"]},
                "items": [
                    {"location": "faq/", "level": 1, "title": "Questions", "text": "<p>Hi</p>"},
                    {
                        "location": "faq/#camera",
                        "level": 2,
                        "title": "Do I need my <code>camera</code>?",
                        "text": "<p>No &amp; never.</p> <ul><li>Really</li></ul>",
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    [_, camera] = read_index(tmp_path)
    assert camera == Section(
        "faq/#camera", 2, "Do I need my camera ?", "No & never. Really", "Questions"
    )


@pytest.mark.parametrize(
    "content", [None, "{not json", '{"items": [{"location": "a/"}]}', '{"items": 3}']
)
def test_a_missing_or_broken_index_leaves_search_empty_and_the_server_up(
    site_dir: Path, tmp_path: Path, content: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    copied = tmp_path / "site"
    shutil.copytree(site_dir, copied)
    (copied / SEARCH_INDEX).unlink()
    if content is not None:
        (copied / SEARCH_INDEX).write_text(content, encoding="utf-8")
    assert read_index(copied) == []
    assert "Search is empty" in caplog.text
    with TestClient(make_app(copied, tmp_path / "data"), base_url=BASE_URL) as client:
        response = client.post("/search", data={"q": "camera"})
        assert response.status_code == 200
        assert "Search is not working right now" in response.text
        assert client.get("/forms/consent/").status_code == 200


def test_the_menus_sources_become_the_sites_addresses() -> None:
    assert [source_location(s) for s in ["index.md", "guidelines/index.md", "forms.md"]] == [
        "",
        "guidelines/",
        "forms/",
    ]
    nav = [{"Home": "index.md"}, {"Part": ["part/index.md", {"A": "part/a.md"}]}]
    assert page_locations(nav) == ["", "part/", "part/a/"]


# -- POST /search without JavaScript ------------------------------------------------------------


@pytest.fixture
def client(site_dir: Path, tmp_path: Path) -> TestClient:
    return TestClient(make_app(site_dir, tmp_path / "data"), base_url=BASE_URL)


def test_the_server_page_lists_results_linking_into_the_handbook(client: TestClient) -> None:
    response = client.post("/search", data={"q": "camera"})
    assert response.status_code == 200
    # What was searched for stays out of the address: the history, a proxy's log.
    assert str(response.url) == f"{BASE_URL}/search"
    assert response.headers["cache-control"] == "no-store"
    soup = BeautifulSoup(response.text, "html.parser")
    links = [str(a["href"]) for a in soup.select("ol.search-results a")]
    assert links[0] == "/joining/faq/#do-i-need-my-camera-on"
    count = soup.select_one(".search-count")
    assert count is not None
    assert count.get_text(" ", strip=True) == f"{len(links)} results for camera"
    assert soup.select_one("input[name=q]")["value"] == "camera"  # type: ignore[index]
    # The query stays out of the tab's title (shown on a shared screen, kept in the history).
    assert "camera" not in soup.title.get_text()  # type: ignore[union-attr]
    for link in links:
        assert client.get(link.split("#")[0]).status_code == 200


def test_the_server_page_with_nothing_found_says_what_to_try(client: TestClient) -> None:
    response = client.post("/search", data={"q": "zzqx"})
    assert response.status_code == 200
    assert "0 results for" in response.text
    assert "Try a shorter word" in response.text
    assert 'href="/help/get-help-now/"' in response.text


def test_a_search_for_help_puts_help_first_without_javascript(client: TestClient) -> None:
    response = client.post("/search", data={"q": "I want to kill myself"})
    soup = BeautifulSoup(response.text, "html.parser")
    links = [str(a["href"]) for a in soup.select("ol.search-results a")]
    assert links[0] == "/help/get-help-now/"


def test_an_address_with_a_query_shows_the_empty_form(client: TestClient) -> None:
    # An old bookmark or a link someone sent: the page works, and searches nothing, so no
    # address ever holds what a member looked for.
    response = client.get("/search", params={"q": "camera"})
    assert response.status_code == 200
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select_one("ol.search-results") is None
    assert soup.select_one("input[name=q]")["value"] == ""  # type: ignore[index]


def test_a_search_from_another_site_is_refused_and_many_searches_are_not(
    client: TestClient,
) -> None:
    refused = client.post("/search", data={"q": "camera"}, headers={"sec-fetch-site": "cross-site"})
    assert refused.status_code == 403
    # Far past the forms' burst: someone searching again and again is never told to wait.
    for _ in range(40):
        assert client.post("/search", data={"q": "help"}).status_code == 200


def test_the_server_page_without_a_query_is_the_search_form(client: TestClient) -> None:
    response = client.get("/search")
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.h1.get_text() == "Search the handbook"  # type: ignore[union-attr]
    assert soup.select_one("form[role=search] input[type=search][name=q]") is not None
    assert soup.select_one("ol.search-results") is None


def test_a_hostile_or_huge_query_is_escaped_and_cut(client: TestClient) -> None:
    response = client.post("/search", data={"q": '<script>alert(1)</script>"' + "a" * 5000})
    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;" in response.text
    assert "a" * 201 not in response.text


def test_the_handbook_links_to_its_search_page_from_every_page(
    site_dir: Path, pages: list[HandbookPage]
) -> None:
    for page in pages:
        html = (site_dir / page.url_path.strip("/") / "index.html").read_text(encoding="utf-8")
        soup = BeautifulSoup(html, "html.parser")
        link = soup.select_one("header a[aria-label='Search']")
        assert link is not None, page.source
    search_page = BeautifulSoup(
        (site_dir / "search/index.html").read_text(encoding="utf-8"), "html.parser"
    )
    form = search_page.select_one("form[role=search]")
    assert form is not None
    assert form["action"] == "/search"
    assert form["method"] == "post"
