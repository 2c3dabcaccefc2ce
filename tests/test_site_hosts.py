"""No request from the handbook to any other host: checked in the built files.

The browser tests check the same thing where it matters most, on the wire, page by page.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

from forms_server.config.group import PROJECT_ROOT

CONFIG = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
SITE_HOST = urlsplit(CONFIG["site_url"]).hostname
EXIT_URL = CONFIG["extra"]["group"]["exit_url"]

# Attributes whose URL the browser fetches by itself, without the reader choosing to follow it.
FETCHED_ATTRIBUTES = ("src", "srcset", "data", "poster", "action", "formaction", "background")
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)")
# URLs in JavaScript string literals (licence comments name URLs without quotes around them).
JS_STRING_URL = re.compile(r"[\"'`](https?://[^\"'`\s]*)")

# Every other-host URL in the theme's JavaScript, and why none of them is ever requested here.
INERT_JS_URLS = {
    "http://www.w3.org/2000/svg": "an XML namespace name, never fetched",
    "https://unpkg.com/mermaid@11/dist/mermaid.min.js": "only for Mermaid diagrams: none here",
    "https://unpkg.com/resize-observer-polyfill": (
        "only where ResizeObserver is missing; every browser that runs the ES2020 bundle has it"
    ),
    "https://api.github.com/repos/${e}/${t}": "only with repo_url set: it is not",
    "https://api.github.com/users/${e}": "only with repo_url set: it is not",
    "https://${e}/api/v4/projects/${encodeURIComponent(t)}": "only with repo_url set: it is not",
    # Zensical's bundle names a few more, each for a feature the handbook does not use.
    "http://www.w3.org/1998/Math/MathML": "an XML namespace name, never fetched",
    "http://www.w3.org/1999/xhtml": "an XML namespace name, never fetched",
    "https://unpkg.com/mermaid@12/dist/mermaid.min.js": "only for Mermaid diagrams: none here",
    "https://unpkg.com/glightbox@3/dist/js/glightbox.min.js": "only for .glightbox images: none",
    "https://unpkg.com/glightbox@3/dist/css/glightbox.min.css": "only for .glightbox images: none",
    "https://unpkg.com/pyodide@314.0.2/pyodide.js": (
        "only for runnable code blocks, which need pymdownx.superfences: not enabled"
    ),
    "https://cdn.jsdelivr.net/pyodide/v314.0.2/full/": "as above",
    "https://unpkg.com/ace-builds@1.44.0/src-noconflict/ace.js": "as above",
}


@pytest.fixture(params=["mkdocs", "zensical"])
def built_site(request: pytest.FixtureRequest) -> Path:
    """Each check holds for the MkDocs build and for the Zensical one."""
    built: Path = request.getfixturevalue(
        "site_dir" if request.param == "mkdocs" else "zensical_site"
    )
    return built


def is_other_host(url: str) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme in {"data", "mailto", "tel", "blob"}:
        return False
    return bool(parts.netloc) and parts.hostname != SITE_HOST


def urls_in_css(text: str) -> list[str]:
    return [first or second for first, second in CSS_URL.findall(text)]


def test_pages_fetch_nothing_from_another_host(built_site: Path) -> None:
    found = []
    for path in built_site.rglob("*.html"):
        soup = BeautifulSoup(path.read_text("utf-8"), "html.parser")
        for element in soup.find_all(True):
            for attribute in FETCHED_ATTRIBUTES:
                value = element.get(attribute)
                if isinstance(value, str):
                    urls = [part.split()[0] for part in value.split(",") if part.strip()]
                    found += [(path.name, url) for url in urls if is_other_host(url)]
            # rel=canonical names this site's own address; any other <link> would be fetched.
            if (
                element.name == "link"
                and is_other_host(str(element.get("href", "")))
                and "canonical" not in (element.get("rel") or [])
            ):
                found.append((path.name, str(element["href"])))
            style = element.get("style")
            if isinstance(style, str):
                found += [(path.name, url) for url in urls_in_css(style) if is_other_host(url)]
        for style_block in soup.find_all("style"):
            text = style_block.get_text()
            found += [(path.name, url) for url in urls_in_css(text) if is_other_host(url)]
    assert found == []


def test_only_content_links_and_the_quick_exit_point_elsewhere(built_site: Path) -> None:
    found = []
    for path in built_site.rglob("*.html"):
        soup = BeautifulSoup(path.read_text("utf-8"), "html.parser")
        for article in soup.find_all("article"):
            article.decompose()
        for link in soup.find_all("a", href=True):
            href = str(link["href"])
            if is_other_host(href) and href != EXIT_URL:
                found.append((str(path.relative_to(built_site)), href))
    assert found == []


def test_stylesheets_load_nothing_from_another_host(built_site: Path) -> None:
    found = []
    for path in built_site.rglob("*.css"):
        text = path.read_text("utf-8")
        found += [(path.name, url) for url in urls_in_css(text) if is_other_host(url)]
    assert found == []


def test_scripts_name_no_other_host_but_the_known_inert_ones(built_site: Path) -> None:
    named = set()
    for path in built_site.rglob("*.js"):
        named |= set(JS_STRING_URL.findall(path.read_text("utf-8")))
    assert named - set(INERT_JS_URLS) == set()


def test_the_conditions_that_keep_those_urls_inert_hold(built_site: Path) -> None:
    assert "repo_url" not in CONFIG
    pages = "".join(path.read_text("utf-8") for path in built_site.rglob("*.html"))
    assert 'class="mermaid"' not in pages
    assert "glightbox" not in pages
    assert not any("superfences" in str(extension) for extension in CONFIG["markdown_extensions"])
    assert "fonts.googleapis.com" not in pages
    assert CONFIG["theme"]["font"] is False
