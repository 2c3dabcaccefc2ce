"""The handbook's own Markdown extension: it puts the group's facts and decisions into every page,
gathers the printable guidelines, makes links to other sites safe and wide tables reachable.

Both generators run Markdown extensions (MkDocs and Zensical read `markdown_extensions` in
mkdocs.yml), so the same pages come out of either; neither runs the other's plugins or hooks.

The facts and decisions live once, in `extra.group` in mkdocs.yml. A page writes
`{{ group.facilitators_email }}` and gets the configured value, so changing an address is one
edit; it writes `{% if decisions.cost %}...{% endif %}` so a commitment shows only once the group
has made it. An unknown name stops the build instead of publishing a blank.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, UndefinedError
from markdown import Extension, Markdown
from markdown.postprocessors import Postprocessor
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError

from forms_server.config.decisions import DecisionsError, decisions_from
from forms_server.config.group import (
    SITE_URL_VARIABLE,
    SettingsError,
    refuse_a_site_name_without_the_group,
    undelivered_kept_days,
)
from forms_server.delivery.member_copy import (
    MEMBER_COPY_SENDER,
    MEMBER_COPY_SUBJECT,
    MESSAGE_ALERT_SUBJECT,
)
from forms_server.forms.definitions import PRIVACY_GROUPS
from forms_server.forms.wording import amount, privacy_collected
from forms_server.handbook.delivery_wording import (
    delivery_in_words,
    escalation_in_words,
    privacy_retention,
    reply_in_words,
)
from forms_server.handbook.processing import cookie_in_words, holdings_html
from forms_server.handbook.record_of_processing import record_of_processing

# How mkdocs.yml names this extension under `markdown_extensions`.
EXTENSION_NAME = "forms_server.handbook.markdown_ext"
# Where the handbook is published, when it is not the development default in mkdocs.yml.
# Where a page gathers every guidelines page (the printable page).
ALL_GUIDELINES_MARKER = "<!-- every guidelines page -->"
LINK_TAG = re.compile(r"<a\s[^>]*>", re.IGNORECASE)
HREF = re.compile(r'\bhref="([^"]*)"', re.IGNORECASE)
REL = re.compile(r'\srel="[^"]*"', re.IGNORECASE)
HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


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
# autoescape: the output is Markdown, not HTML (escaping would garble it), the generator renders
# it, and every value comes from the group's own mkdocs.yml, never from a visitor.
PAGES = Environment(
    undefined=NamingUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701
)


@dataclass(frozen=True)
class HandbookSource:
    """What the pages need from mkdocs.yml: the facts, the menu, the docs folder, the address."""

    facts: Mapping[str, Any]
    nav: object
    docs_dir: Path
    site_host: str


def published_url(configured: str) -> str:
    """FORMS_SITE_URL when set (so one mkdocs.yml serves development and production), else
    mkdocs.yml's site_url."""
    published = os.environ.get(SITE_URL_VARIABLE, "").strip()
    if not published:
        return configured
    parts = urlsplit(published)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise PluginError(
            f"{SITE_URL_VARIABLE} must be a full address like https://handbook.example.org/, "
            f"not {published!r}."
        )
    return published if published.endswith("/") else published + "/"


@functools.cache
def handbook_source(config_file: Path, modified: float) -> HandbookSource:
    """mkdocs.yml, read once per build (the modification time keys the cache)."""
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PluginError(f"Could not read {config_file}: {error}") from error
    facts = (config.get("extra") or {}).get("group") if isinstance(config, Mapping) else None
    if not isinstance(facts, Mapping):
        raise PluginError(f"{config_file} needs an `extra.group` section with the group's facts.")
    try:
        refuse_a_site_name_without_the_group(config_file, config, facts)
    except SettingsError as error:
        raise PluginError(str(error)) from error
    return HandbookSource(
        facts=facts,
        nav=config.get("nav"),
        docs_dir=config_file.parent / str(config.get("docs_dir", "docs")),
        site_host=urlsplit(published_url(str(config.get("site_url") or ""))).hostname or "",
    )


def read_handbook_source(config_file: Path) -> HandbookSource:
    resolved = config_file.resolve()
    try:
        modified = resolved.stat().st_mtime
    except OSError as error:
        raise PluginError(f"The handbook's configuration {config_file} is missing.") from error
    return handbook_source(resolved, modified)


def render_crisis_contacts(contacts: object) -> str:
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
                {name: privacy_retention(decisions, name) for name in PRIVACY_GROUPS},
            ),
        },
        # What the server holds, and the record of processing: written from the code.
        "processing": Named(
            "processing",
            {
                "table": holdings_html(decisions, undelivered_days),
                "cookie": cookie_in_words(decisions),
                "delivery": delivery_in_words(decisions),
                "escalation": escalation_in_words(decisions),
                "conversation_kept": amount(decisions.conversation_kept_days, "day"),
                "reply": {name: reply_in_words(decisions, name) for name in ("consent", "concern")},
                # The member's copy, named as the mailer names it.
                "copy_sender": MEMBER_COPY_SENDER,
                "copy_subject": MEMBER_COPY_SUBJECT,
                "message_alert_subject": MESSAGE_ALERT_SUBJECT,
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


TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S)
HTML_HEADING = re.compile(r"<h([1-6])\b[^>]*\bid=\"([^\"]+)\"[^>]*>.*?</h\1>", re.S)
CAPTION = re.compile(r"<caption\b[^>]*>(.*?)</caption>", re.S)
TAG = re.compile(r"<[^>]+>")


def scrolling_tables(html: str) -> str:
    """WCAG 2.1.1: on a small phone a wide table scrolls sideways in its own box, which must
    take focus for a keyboard to scroll it. Each table goes in a box that is a tab stop, a
    region named by its caption or else the heading above it (handbook.css makes this box the
    one that scrolls). In the page as built, so it works without JavaScript."""
    parts: list[str] = []
    position = 0
    for table in TABLE.finditer(html):
        caption = CAPTION.search(table.group(0))
        caption_text = " ".join(TAG.sub("", caption.group(1)).split()) if caption else ""
        caption_text = caption_text.replace('"', "&quot;")
        headings = list(HTML_HEADING.finditer(html, 0, table.start()))
        if caption_text:
            name = f'aria-label="{caption_text}"'
        elif headings:
            name = f'aria-labelledby="{headings[-1].group(2)}"'
        else:
            name = 'aria-label="Table"'
        box = f'<div class="handbook-table" tabindex="0" role="region" {name}>'
        parts.extend([html[position : table.start()], box, table.group(0), "</div>"])
        position = table.end()
    parts.append(html[position:])
    return "".join(parts)


# The guidelines' own pages, in the menu's order, as the printable page gathers them.
GUIDELINES_SECTION = "Our guidelines"
PRINTABLE_GUIDELINES = "guidelines/print.md"
FENCE = re.compile(r"^\s*(```|~~~)")


def guideline_pages(nav: object) -> list[str]:
    for item in nav if isinstance(nav, list) else []:
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


def all_guidelines(handbook: HandbookSource) -> str:
    """Every guidelines page, filled in, one after the other: the printable page's body."""
    parts = []
    for source in guideline_pages(handbook.nav):
        page = (handbook.docs_dir / source).read_text(encoding="utf-8")
        parts.append(one_level_down(fill_placeholders(page, handbook.facts, source)))
    if not parts:
        raise PluginError(f"The menu has no '{GUIDELINES_SECTION}' pages to gather.")
    return "\n\n".join(parts)


def page_name(markdown: str) -> str:
    """A page as a reader knows it, for error messages: its first heading."""
    heading = HEADING.search(markdown)
    return f"the page '{heading.group(1).strip()}'" if heading else "a page"


class FillFacts(Preprocessor):
    """First of all, before any other extension reads the page."""

    def __init__(self, md: Markdown, config_file: Path) -> None:
        super().__init__(md)
        self.config_file = config_file

    def run(self, lines: list[str]) -> list[str]:
        handbook = read_handbook_source(self.config_file)
        markdown = "\n".join(lines)
        filled = fill_placeholders(markdown, handbook.facts, page_name(markdown))
        if ALL_GUIDELINES_MARKER in filled:
            filled = filled.replace(ALL_GUIDELINES_MARKER, all_guidelines(handbook))
        return filled.split("\n")


class SafeExternalLinks(Postprocessor):
    def __init__(self, md: Markdown, config_file: Path) -> None:
        super().__init__(md)
        self.config_file = config_file

    def run(self, text: str) -> str:
        return mark_external_links(text, read_handbook_source(self.config_file).site_host)


class ScrollingTables(Postprocessor):
    def run(self, text: str) -> str:
        return scrolling_tables(text)


class GroupFactsExtension(Extension):
    def __init__(self, **kwargs: str) -> None:
        self.config = {
            "config_file": [
                "mkdocs.yml",
                "The handbook's mkdocs.yml (relative to the folder the build runs in), which "
                "holds extra.group. The MkDocs hook sets the full path.",
            ]
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        # mkdocs.yml is read when a page is converted, not here: MkDocs loads every extension
        # once while it checks its configuration, before its hook has said where the file is.
        config_file = Path(self.getConfig("config_file"))
        # Above every built-in preprocessor (the highest is 30), so each sees the filled page.
        md.preprocessors.register(FillFacts(md, config_file), "group_facts", 100)
        md.postprocessors.register(SafeExternalLinks(md, config_file), "safe_links", 0)
        md.postprocessors.register(ScrollingTables(md), "scrolling_tables", 0)


def makeExtension(**kwargs: str) -> GroupFactsExtension:  # noqa: N802 (the name Markdown calls)
    return GroupFactsExtension(**kwargs)
