"""MkDocs hook: puts the group's facts and decisions into every page and makes external links safe.

The facts and decisions live once, in `extra.group` in mkdocs.yml. A page writes
`{{ group.facilitators_email }}` and gets the configured value, so changing an address is one
edit; it writes `{% if decisions.cost %}...{% endif %}` so a commitment shows only once the group
has made it. An unknown name stops the build instead of publishing a blank.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, UndefinedError
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from mkdocs.utils.meta import get_data

from forms_server.decisions import (
    DECISIONS_FINGERPRINT_FILE,
    DecisionsError,
    decisions_from,
    fingerprint,
)
from forms_server.forms import PRIVACY_GROUPS, privacy_collected, privacy_retention
from forms_server.member_copy import MEMBER_COPY_SENDER, MEMBER_COPY_SUBJECT
from forms_server.processing import delivery_in_words, holdings_table, record_of_processing
from forms_server.search import page_locations, source_location, write_index
from forms_server.settings import SettingsError, undelivered_kept_days


class Named(dict[str, Any]):
    """A mapping that knows its own name, so an unknown key is reported as `group.phone`."""

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


class Lazy:
    """Text made only when a page shows it."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


class NamingUndefined(StrictUndefined):
    @property
    def _undefined_message(self) -> str:
        label = getattr(self._undefined_obj, "label", None)
        if isinstance(label, str) and self._undefined_name is not None:
            return f"`{label}.{self._undefined_name}` is not set"
        return str(super()._undefined_message)


# Markdown pages keep their own whitespace; StrictUndefined makes an unknown name an error. No
# autoescape: the output is Markdown, not HTML (escaping would garble it), MkDocs renders it, and
# every value comes from the group's own mkdocs.yml, never from a visitor.
PAGES = Environment(
    undefined=NamingUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701
)

BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# The handbook's own script and stylesheet (the theme's come minified already).
OWN_SCRIPTS = (
    "assets/quick-exit.js",
    "assets/search.js",
    "assets/handbook.css",
    "assets/search.css",
)
LINK_TAG = re.compile(r"<a\s[^>]*>", re.IGNORECASE)
HREF = re.compile(r'\bhref="([^"]*)"', re.IGNORECASE)
REL = re.compile(r'\srel="[^"]*"', re.IGNORECASE)


def group_facts(config: MkDocsConfig) -> Mapping[str, Any]:
    facts = config.extra.get("group")
    if not isinstance(facts, Mapping):
        raise PluginError("mkdocs.yml needs an `extra.group` section with the group's facts.")
    return facts


def render_crisis_contacts(contacts: Any) -> str:
    """A Markdown list: bold name, how to reach them, then when to use them."""
    if not isinstance(contacts, list) or not contacts:
        raise PluginError("`extra.group.crisis_contacts` must list at least one contact.")
    lines = []
    for contact in contacts:
        try:
            how = contact["how"]
            if contact.get("link"):
                how = f"[{how}]({contact['link']})"
            lines.append(f"- **{contact['name']}**: {how}, {contact['when']}.")
        except (KeyError, TypeError) as error:
            raise PluginError(
                "Each crisis contact needs `name`, `how` and `when` in mkdocs.yml."
            ) from error
    return "\n".join(lines)


def fill_placeholders(markdown: str, facts: Mapping[str, Any], where: str) -> str:
    """Each page is a Jinja template over the group's facts (`{{ group.name }}`), decisions
    (`{% if decisions.cost %}`) and what each form collects and keeps (`{{ forms.kept.leave }}`).
    A name that does not exist stops the build instead of publishing a blank."""
    try:
        decisions = decisions_from(facts)
    except DecisionsError as error:
        raise PluginError(f"mkdocs.yml: {error}") from error
    try:
        undelivered_days = undelivered_kept_days(facts, Path("mkdocs.yml"))
    except SettingsError as error:
        raise PluginError(str(error)) from error
    context = {
        "group": Named(
            "group",
            {**facts, "crisis_contacts": render_crisis_contacts(facts.get("crisis_contacts"))},
        ),
        "decisions": decisions,
        "forms": {
            "collected": Named(
                "forms.collected",
                {
                    name: "\n".join(f"- {phrase}" for phrase in privacy_collected(name))
                    for name in PRIVACY_GROUPS
                },
            ),
            "kept": Named(
                "forms.kept",
                {
                    name: privacy_retention(name, decisions.retention_months)
                    for name in PRIVACY_GROUPS
                },
            ),
        },
        # What the server holds, and the record of processing: written from the code.
        "processing": Named(
            "processing",
            {
                "table": holdings_table(decisions, undelivered_days),
                "delivery": delivery_in_words(decisions),
                # The member's copy, named as the mailer names it.
                "copy_sender": MEMBER_COPY_SENDER,
                "copy_subject": MEMBER_COPY_SUBJECT,
                # Only a page that publishes it needs every fact it names.
                "record": Lazy(lambda: record_of_processing(facts, decisions, undelivered_days)),
            },
        ),
    }
    try:
        return PAGES.from_string(markdown).render(context)
    except UndefinedError as error:
        raise PluginError(f"{where}: {error.message} (see extra.group in mkdocs.yml)") from error
    except TemplateSyntaxError as error:
        raise PluginError(f"{where}, line {error.lineno}: {error.message}") from error


def is_other_host(href: str, site_host: str) -> bool:
    parts = urlsplit(href)
    return parts.scheme in {"http", "https"} and parts.hostname not in {None, site_host}


def mark_external_links(html: str, site_host: str) -> str:
    """External links must not tell the other site where the reader came from."""

    def mark(match: re.Match[str]) -> str:
        tag = match.group(0)
        href = HREF.search(tag)
        if href is None or not is_other_host(href.group(1), site_host):
            return tag
        tag = REL.sub("", tag)
        return tag[:-1] + ' rel="noopener noreferrer">'

    return LINK_TAG.sub(mark, html)


# Where the handbook is published, when it is not the development default in mkdocs.yml.
SITE_URL_VARIABLE = "FORMS_SITE_URL"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The site's title comes from the group's name, so the name is set in one place only; its
    address from FORMS_SITE_URL when set, so one mkdocs.yml serves development and production."""
    config.site_name = f"{group_facts(config)['name']} handbook"
    published = os.environ.get(SITE_URL_VARIABLE, "").strip()
    if published:
        parts = urlsplit(published)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise PluginError(
                f"{SITE_URL_VARIABLE} must be a full address like https://handbook.example.org/, "
                f"not {published!r}."
            )
        config.site_url = published if published.endswith("/") else published + "/"
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
    fingerprint_file.write_text(fingerprint(group_facts(config)) + "\n", encoding="utf-8")
    for script in OWN_SCRIPTS:
        path = site_dir / script
        path.write_text(without_comments(path.read_text(encoding="utf-8")), encoding="utf-8")
    # What the search page and GET /search read (Zensical writes its own, in the same shape).
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


# The guidelines' own pages, in the menu's order, as the printable page gathers them.
GUIDELINES_SECTION = "Our guidelines"
PRINTABLE_GUIDELINES = "guidelines/print.md"
FENCE = re.compile(r"^\s*(```|~~~)")


def guideline_pages(nav: Any) -> list[str]:
    for item in nav or []:
        if isinstance(item, Mapping) and GUIDELINES_SECTION in item:
            return [
                target
                for entry in item[GUIDELINES_SECTION]
                for target in (entry.values() if isinstance(entry, Mapping) else [entry])
                if isinstance(target, str)
                and target not in {"guidelines/index.md", PRINTABLE_GUIDELINES}
            ]
    return []


def one_level_down(markdown: str) -> str:
    """Each page's headings, one level down, so the gathered page keeps a single h1."""
    lines, in_code = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        lines.append("#" + line if line.startswith("#") and not in_code else line)
    return "\n".join(lines)


def all_guidelines(config: MkDocsConfig) -> str:
    """Every guidelines page, filled in, one after the other: the printable page's body."""
    docs = Path(config.docs_dir)
    parts = []
    for source in guideline_pages(config.nav):
        filled = fill_placeholders(
            (docs / source).read_text(encoding="utf-8"), group_facts(config), source
        )
        parts.append(one_level_down(filled))
    if not parts:
        raise PluginError(f"The menu has no '{GUIDELINES_SECTION}' pages to gather.")
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    filled = fill_placeholders(markdown, group_facts(config), page.file.src_path)
    if page.file.src_path == PRINTABLE_GUIDELINES:
        filled = filled.replace("<!-- every guidelines page -->", all_guidelines(config))
    return filled


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


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    site_host = urlsplit(config.site_url or "").hostname or ""
    return mark_external_links(html, site_host)
