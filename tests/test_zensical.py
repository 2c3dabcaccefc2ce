"""The handbook outlives its generator: the same mkdocs.yml builds the same pages with MkDocs
(and Material, which reaches its end of life on 5 May 2027) and with Zensical, its successor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from playwright.sync_api import Browser, expect

from forms_server.handbook.search import SEARCH_INDEX, read_index
from tests.browser import visit
from tests.handbook_pages import HandbookPage
from tests.test_browser_pages import axe_violations
from tests.test_browser_quick_exit import EXIT_URL

UNFILLED = re.compile(r"\{\{|\{%|%\}|\}\}")


def built_pages(site: Path) -> set[str]:
    return {path.relative_to(site).as_posix() for path in site.rglob("*.html")}


def article_text(page: Path) -> str:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    article = soup.select_one("article.md-content__inner")
    assert article is not None, page
    return " ".join(article.get_text(" ").split())


def title(page: Path) -> str:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    assert soup.title is not None, page
    return soup.title.get_text()


def test_both_generators_build_the_same_pages_with_the_same_text(
    site_dir: Path, zensical_site: Path
) -> None:
    pages = built_pages(site_dir)
    assert pages == built_pages(zensical_site)
    different = {
        page: (article_text(site_dir / page)[:200], article_text(zensical_site / page)[:200])
        for page in pages
        if page != "404.html"
        and article_text(site_dir / page) != article_text(zensical_site / page)
    }
    assert different == {}


def test_both_generators_give_each_page_the_same_title(site_dir: Path, zensical_site: Path) -> None:
    # The home page alone differs: Material titles it with the site's name only, Zensical adds
    # "Home - " in front. Both name the group.
    for page in built_pages(site_dir) - {"index.html"}:
        assert title(site_dir / page) == title(zensical_site / page), page
    assert title(zensical_site / "index.html").endswith(title(site_dir / "index.html"))


def test_zensical_leaves_nothing_unfilled(zensical_site: Path) -> None:
    unfilled = {
        page: UNFILLED.findall(article_text(zensical_site / page))
        for page in built_pages(zensical_site)
        if page != "404.html" and UNFILLED.search(article_text(zensical_site / page))
    }
    assert unfilled == {}
    for page in zensical_site.rglob("*.html"):
        assert "{{ group" not in page.read_text(encoding="utf-8"), page


def test_zensicals_own_search_index_serves_our_search(zensical_site: Path) -> None:
    sections = read_index(zensical_site)
    assert (zensical_site / SEARCH_INDEX).is_file()
    assert any("camera" in section.title.lower() for section in sections)
    text = " ".join(section.text for section in sections)
    assert "{{" not in text
    assert "Harbour Peer Support" in text


@pytest.mark.browser
def test_zensicals_pages_pass_axe_and_ask_no_other_host(
    browser: Browser, zensical_url: str, pages: list[HandbookPage]
) -> None:
    found = {}
    with visit(browser, zensical_url, EXIT_URL) as record:
        for handbook_page in pages:
            record.page.goto(f"{zensical_url}/{handbook_page.url_path}")
            record.page.wait_for_load_state("networkidle")
            violations = axe_violations(record.page)
            if violations:
                found[handbook_page.source] = violations
        assert record.requests_elsewhere == []
    assert found == {}


@pytest.mark.browser
def test_our_search_works_on_zensicals_build_from_a_static_host(
    browser: Browser, zensical_url: str
) -> None:
    with visit(browser, zensical_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{zensical_url}/search/")
        expect(page.locator("[data-handbook-search][data-search-ready]")).to_have_count(1)
        page.get_by_label("Search the handbook").fill("camera")
        # Zensical's index is cut and ordered its own way; a heading with the word comes first.
        first = page.locator("[data-search-results] a").first
        expect(first.locator("mark")).to_have_text("camera")
        first.click()
        expect(page.locator("article h1")).to_be_visible()
        assert axe_violations(page) == []
        # Zensical copies the crisis words too: a search for help finds it first.
        page.goto(f"{zensical_url}/search/")
        page.get_by_label("Search the handbook").fill("suicidal")
        expect(page.locator("[data-search-results] a").first).to_have_attribute(
            "href", f"{zensical_url}/help/get-help-now/"
        )
        assert record.requests_elsewhere == []
        assert record.console_errors == []
