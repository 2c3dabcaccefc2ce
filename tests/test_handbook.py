"""The handbook builds strictly, every page is in the navigation, and group facts reach pages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup, Tag

from forms_server.config.decisions import decisions_from
from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.definitions import FORMS, LEAVE_KINDS
from forms_server.handbook.build import HandbookBuildError, build_handbook
from tests.handbook_pages import HandbookPage

DOCS = PROJECT_ROOT / "docs"


def group_facts() -> dict[str, object]:
    config = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    facts: dict[str, object] = config["extra"]["group"]
    return facts


def test_every_page_is_in_the_navigation(pages: list[HandbookPage]) -> None:
    written = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    listed = {page.source for page in pages}
    assert written == listed


def test_every_navigation_page_is_built(pages: list[HandbookPage], site_dir: Path) -> None:
    missing = [page.source for page in pages if not page.built_file(site_dir).is_file()]
    assert missing == []


def test_no_placeholder_is_left_unfilled(pages: list[HandbookPage], site_dir: Path) -> None:
    unfilled = [
        page.source for page in pages if "{{" in page.built_file(site_dir).read_text("utf-8")
    ]
    assert unfilled == []


def test_group_facts_reach_the_pages(site_dir: Path) -> None:
    facts = group_facts()
    help_html = (site_dir / "help/get-help-now/index.html").read_text("utf-8")
    help_page = " ".join(BeautifulSoup(help_html, "html.parser").get_text(" ").split())
    for contact in facts["crisis_contacts"]:  # type: ignore[attr-defined]
        assert contact["name"] in help_page, contact
    everything = "".join(path.read_text("utf-8") for path in site_dir.rglob("*.html"))
    for key in ("facilitators_email", "privacy_email", "regulator_phone"):
        assert str(facts[key]) in everything, key


def test_the_site_title_is_the_group_name(site_dir: Path) -> None:
    soup = BeautifulSoup((site_dir / "index.html").read_text("utf-8"), "html.parser")
    assert soup.title is not None
    assert f"{group_facts()['name']} handbook" in soup.title.get_text()


def test_every_page_has_one_h1_and_a_description(pages: list[HandbookPage], site_dir: Path) -> None:
    for page in pages:
        soup = BeautifulSoup(page.built_file(site_dir).read_text("utf-8"), "html.parser")
        assert len(soup.select("article h1")) == 1, page.source
        description = soup.select_one('meta[name="description"]')
        assert description is not None, page.source
        assert description.get("content"), page.source


def test_external_content_links_do_not_leak_the_referrer(site_dir: Path) -> None:
    external: list[Tag] = []
    for path in site_dir.rglob("*.html"):
        soup = BeautifulSoup(path.read_text("utf-8"), "html.parser")
        external += soup.select('article a[href^="http://"], article a[href^="https://"]')
    assert external, "expected at least one external link (crisis services, the ICO)"
    for link in external:
        rel = link.get_attribute_list("rel")
        assert "noopener" in rel, link
        assert "noreferrer" in rel, link


def copy_project(tmp_path: Path) -> Path:
    for name in ("docs", "overrides", "hooks", "includes"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name)
    shutil.copy(PROJECT_ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def test_an_unknown_group_fact_stops_the_build(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    with (project / "docs/index.md").open("a", encoding="utf-8") as page:
        page.write("\nCall {{ group.phone_number_that_does_not_exist }}.\n")
    with pytest.raises(HandbookBuildError, match="phone_number_that_does_not_exist"):
        build_handbook(project / "mkdocs.yml", tmp_path / "site")


def test_a_broken_link_stops_the_build(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    with (project / "docs/index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [a page that is not there](not-there.md).\n")
    with pytest.raises(HandbookBuildError, match=r"not-there\.md"):
        build_handbook(project / "mkdocs.yml", tmp_path / "site")


def test_the_privacy_notice_describes_every_field_of_every_form(site_dir: Path) -> None:
    html = (site_dir / "about/privacy/index.html").read_text("utf-8")
    text = " ".join(BeautifulSoup(html, "html.parser").get_text(" ").split())
    for form in FORMS.values():
        for spec in form.fields:
            assert spec.privacy, f"{form.kind}.{spec.name} has no privacy phrase"
            assert spec.privacy in text, f"{form.kind}.{spec.name}"
        months = decisions_from(group_facts()).retention_months[form.decision_group]
        assert f"for {months} months" in text, form.kind


def test_the_leave_choices_the_handbook_names_exist() -> None:
    labels = {choice.label for choice in LEAVE_KINDS}
    named = set()
    for page in DOCS.rglob("*.md"):
        named |= set(re.findall(r'choose "([^"]+)"', page.read_text("utf-8")))
    assert named, "the handbook tells members which leave notice to choose"
    assert named <= labels


# A number someone may need to ring in a hurry: emergency services, NHS 111, Samaritans, Shout,
# or a UK landline or mobile number (the regulator's, for example).
PHONE_NUMBER = re.compile(r"(?<!NHS )\b(999|111|116 123|85258|0\d{3} \d{3} \d{4})\b")


def test_every_phone_number_can_be_tapped_to_call(site_dir: Path) -> None:
    untappable = []
    for path in sorted(site_dir.rglob("*.html")):
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        main = soup.select_one("article") or soup.body
        assert main is not None
        for text in main.find_all(string=PHONE_NUMBER):
            if text.parent is not None and not PHONE_NUMBER.search(text.parent.get_text()):
                continue  # a service's name, like <abbr>NHS</abbr> 111, beside its own link
            link = text.find_parent("a")
            href = str(link.get("href", "")) if isinstance(link, Tag) else ""
            if not href.startswith(("tel:", "sms:")):
                untappable.append(f"{path.relative_to(site_dir)}: {text.strip()[:60]}")
    assert untappable == []


def test_the_page_not_found_says_so_in_its_title(site_dir: Path) -> None:
    soup = BeautifulSoup((site_dir / "404.html").read_text(encoding="utf-8"), "html.parser")
    title = soup.title
    assert title is not None
    assert title.get_text() == "Page not found - Harbour Peer Support handbook"
    heading = soup.select_one("article h1")
    assert heading is not None
    assert heading.get_text() == "Page not found"


def test_the_build_is_quiet(tmp_path: Path) -> None:
    """Only MkDocs' own three progress lines: anything else would bury a real problem."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "-f",
            str(PROJECT_ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    progress = ("Cleaning site directory", "Building documentation to", "Documentation built in")
    said = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if re.match(r"(INFO|WARNING|ERROR)\b", line) and not any(p in line for p in progress)
    ]
    assert said == []


def test_each_menu_label_is_its_pages_heading(pages: list[HandbookPage], site_dir: Path) -> None:
    """The menu and the page say the same thing (the home page is "Home" everywhere)."""
    text = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = yaml.safe_load("nav:" + text.split("\nnav:", 1)[1])
    differ = []

    def walk(items: list[object]) -> None:
        for item in items:
            if not isinstance(item, dict):
                continue
            for label, target in item.items():
                if isinstance(target, list):
                    walk(target)
                elif target != "index.md":
                    html = (site_dir / str(target).replace(".md", "") / "index.html").read_text(
                        encoding="utf-8"
                    )
                    heading = BeautifulSoup(html, "html.parser").select_one("article h1")
                    assert heading is not None
                    if heading.get_text(strip=True) != label:
                        differ.append(f"{label!r} != {heading.get_text(strip=True)!r}")

    walk(config["nav"])
    assert differ == []


def test_one_printable_page_holds_every_guidelines_page_whole(site_dir: Path) -> None:
    def words(source: str) -> str:
        html = (site_dir / source / "index.html").read_text(encoding="utf-8")
        article = BeautifulSoup(html, "html.parser").select_one("article")
        assert article is not None
        for anchor in article.select("a.headerlink"):
            anchor.decompose()
        return " ".join(article.get_text(" ").split())

    printable = words("guidelines/print")
    pages = sorted(
        path.parent.name
        for path in (site_dir / "guidelines").glob("*/index.html")
        if path.parent.name != "print"
    )
    assert len(pages) == 7
    for name in pages:
        assert words(f"guidelines/{name}") in printable, name
    html = (site_dir / "guidelines/print/index.html").read_text(encoding="utf-8")
    assert html.count("<h1") == 1


def build_with_site_url(site_url: str, destination: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "-q",
            "-f",
            str(PROJECT_ROOT / "mkdocs.yml"),
            "-d",
            str(destination),
        ],
        env={**os.environ, "FORMS_SITE_URL": site_url},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_published_address_comes_from_the_environment(tmp_path: Path) -> None:
    built = build_with_site_url("https://handbook.example.org", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert '<link rel="canonical" href="https://handbook.example.org/">' in home
    refused = build_with_site_url("handbook.example.org", tmp_path / "other")
    assert refused.returncode != 0
    assert "FORMS_SITE_URL must be a full address" in refused.stderr
