"""MkDocs hook: what only an MkDocs build needs, around the pages themselves.

The pages' content (the group's facts and decisions, the printable guidelines, safe external
links) comes from the Markdown extension `forms_server.handbook.markdown_ext`, which Zensical runs
too. This hook only tells that extension where mkdocs.yml is, takes the published address from
FORMS_SITE_URL, and after the build writes the decisions' fingerprint and the search index,
serves our own script and stylesheet without comments, and repairs Material's invalid markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.pages import Page
from mkdocs.utils.meta import get_data

from forms_server.config.decisions import DECISIONS_FINGERPRINT_FILE, fingerprint
from forms_server.handbook.markdown_ext import EXTENSION_NAME, published_url, read_handbook_source
from forms_server.handbook.search import page_locations, source_location, write_index

BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# The handbook's own script and stylesheet (the theme's come minified already).
OWN_SCRIPTS = (
    "assets/quick-exit.js",
    "assets/no-single-key-shortcuts.js",
    "assets/search.js",
    "assets/handbook.css",
    "assets/search.css",
)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The extension finds mkdocs.yml wherever the build runs; the address comes from
    FORMS_SITE_URL when set, so one mkdocs.yml serves development and production."""
    config.mdx_configs.setdefault(EXTENSION_NAME, {})["config_file"] = config.config_file_path
    # Snippets are found from the folder the build runs in; make them the handbook's own, so an
    # installed server can build its handbook from any folder.
    snippets = config.mdx_configs.get("pymdownx.snippets", {})
    folder = Path(config.config_file_path).parent
    snippets["base_path"] = [str(folder / path) for path in snippets.get("base_path", ["."])]
    config.site_url = published_url(config.site_url or "")
    return config


def without_comments(script: str) -> str:
    """Our own script and stylesheet as served: comments and indentation are for people
    reading the source, not for a cheap phone's first download. Block comments and whole-line
    `//` comments only, so nothing inside a string is touched."""
    script = BLOCK_COMMENT.sub("", script)
    lines = (line.strip() for line in script.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


def on_post_build(config: MkDocsConfig) -> None:
    """The decisions this handbook was built from: the server refuses a handbook built from
    other decisions, so the pages and the forms can never contradict each other."""
    site_dir = Path(config.site_dir)
    fingerprint_file = site_dir / DECISIONS_FINGERPRINT_FILE
    facts = read_handbook_source(Path(config.config_file_path)).facts
    fingerprint_file.write_text(fingerprint(facts) + "\n", encoding="utf-8")
    for script in OWN_SCRIPTS:
        path = site_dir / script
        path.write_text(without_comments(path.read_text(encoding="utf-8")), encoding="utf-8")
    # What the search page and POST /search read (Zensical writes its own, in the same shape).
    write_index(site_dir, page_locations(config.nav), excluded_from_search(Path(config.docs_dir)))


def excluded_from_search(docs_dir: Path) -> set[str]:
    """Pages whose front matter says `search: exclude: true`, as Material and Zensical read it
    (the search page itself, and the printable page that repeats every guideline)."""
    excluded = set()
    for source in docs_dir.rglob("*.md"):
        _, meta = get_data(source.read_text(encoding="utf-8"))
        search = meta.get("search")
        if isinstance(search, Mapping) and search.get("exclude") is True:
            excluded.add(source_location(source.relative_to(docs_dir).as_posix()))
    return excluded


# Material 9.x writes three kinds of invalid HTML into its layout (the W3C validator counts them
# on every page): an empty tabindex on section labels, `autocomplete` on its hidden checkbox
# toggles, and a "Table of contents" label pointing at a toggle that a section's index page does
# not have. Zensical's templates differ, so this repairs the output rather than copying the theme.
EMPTY_TABINDEX = re.compile(r'(<label\b[^>]*?)\s+tabindex=""')
TOGGLE_AUTOCOMPLETE = re.compile(r'(<input\b[^>]*\btype="checkbox"[^>]*?)\s+autocomplete="off"')
LABEL_FOR = re.compile(r'(<label\b[^>]*?)\s+for="([^"]*)"')


def valid_layout(html: str) -> str:
    html = EMPTY_TABINDEX.sub(r"\1", html)
    html = TOGGLE_AUTOCOMPLETE.sub(r"\1", html)
    ids = set(re.findall(r'\bid="([^"]*)"', html))

    def unless_dangling(match: re.Match[str]) -> str:
        return match.group(0) if match.group(2) in ids else match.group(1)

    return LABEL_FOR.sub(unless_dangling, html)


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    return valid_layout(output)


def on_post_template(output_content: str, template_name: str, config: MkDocsConfig) -> str:
    """The theme's pages without a Markdown source, such as 404.html."""
    return valid_layout(output_content) if template_name.endswith(".html") else output_content
