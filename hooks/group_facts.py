"""MkDocs hook: puts the group's facts into every page and makes external links safe.

The facts live once, in `extra.group` in mkdocs.yml. A page writes `{{ group.facilitators_email }}`
and gets the configured value, so changing a phone number or an address is one edit. An unknown
name stops the build instead of publishing a blank.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from forms_server.forms import PRIVACY_GROUPS, privacy_collected, privacy_retention

PLACEHOLDER = re.compile(r"\{\{\s*group\.(\w+)\s*\}\}")
# {{ forms.collected.consent }} and {{ forms.kept.leave }}: the privacy notice, from forms.py.
FORMS_PLACEHOLDER = re.compile(r"\{\{\s*forms\.(collected|kept)\.(\w+)\s*\}\}")
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
            lines.append(f"- **{contact['name']}**: {contact['how']}, {contact['when']}.")
        except (KeyError, TypeError) as error:
            raise PluginError(
                "Each crisis contact needs `name`, `how` and `when` in mkdocs.yml."
            ) from error
    return "\n".join(lines)


def fill_placeholders(markdown: str, facts: Mapping[str, Any], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in facts:
            raise PluginError(
                f"{where}: `group.{key}` is not set under `extra.group` in mkdocs.yml."
            )
        if key == "crisis_contacts":
            return render_crisis_contacts(facts[key])
        return str(facts[key])

    return FORMS_PLACEHOLDER.sub(describe_forms, PLACEHOLDER.sub(replace, markdown))


def describe_forms(match: re.Match[str]) -> str:
    """What a form collects and what is kept, written from its one definition."""
    what, group = match.groups()
    if group not in PRIVACY_GROUPS:
        raise PluginError(f"`forms.{what}.{group}`: no such group of forms in forms.py.")
    if what == "collected":
        return "\n".join(f"- {phrase}" for phrase in privacy_collected(group))
    return privacy_retention(group)


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


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The site's title comes from the group's name, so the name is set in one place only."""
    config.site_name = f"{group_facts(config)['name']} handbook"
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return fill_placeholders(markdown, group_facts(config), page.file.src_path)


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    site_host = urlsplit(config.site_url or "").hostname or ""
    return mark_external_links(html, site_host)
