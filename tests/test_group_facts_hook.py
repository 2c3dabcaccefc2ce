"""The Markdown extension that fills in group facts and marks external links, and the MkDocs
hook around it."""

from __future__ import annotations

from pathlib import Path

import markdown
import pytest
import yaml
from mkdocs.exceptions import PluginError

from forms_server.config.group import PROJECT_ROOT, group_facts_from
from forms_server.handbook.markdown_ext import (
    fill_placeholders,
    makeExtension,
    mark_external_links,
    read_handbook_source,
)
from hooks.group_facts import without_comments

FACTS = {
    "name": "Harbour",
    "crisis_contacts": [{"name": "Samaritans", "how": "call 116 123", "when": "any time"}],
}


def test_a_placeholder_becomes_its_value() -> None:
    assert fill_placeholders("Welcome to {{ group.name }}.", FACTS, "x.md") == "Welcome to Harbour."


def test_crisis_contacts_become_a_list() -> None:
    assert fill_placeholders("{{group.crisis_contacts}}", FACTS, "x.md") == (
        "- **Samaritans**: call 116 123, any time."
    )


def test_an_unknown_placeholder_names_the_page_and_the_key() -> None:
    with pytest.raises(PluginError, match=r"x\.md: `group\.nope`"):
        fill_placeholders("{{ group.nope }}", FACTS, "x.md")


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            '<a href="https://ico.org.uk/">ICO</a>',
            '<a href="https://ico.org.uk/" rel="noopener noreferrer">ICO</a>',
        ),
        (
            '<a rel="x" href="http://a.example/">A</a>',
            '<a href="http://a.example/" rel="noopener noreferrer">A</a>',
        ),
        ('<a href="../faq/">FAQ</a>', '<a href="../faq/">FAQ</a>'),
        ('<a href="http://127.0.0.1/x">Here</a>', '<a href="http://127.0.0.1/x">Here</a>'),
        ('<a href="mailto:a@example.org">a</a>', '<a href="mailto:a@example.org">a</a>'),
    ],
)
def test_only_links_to_other_hosts_are_marked(html: str, expected: str) -> None:
    assert mark_external_links(html, "127.0.0.1") == expected


def test_forms_placeholders_come_from_the_definitions() -> None:
    filled = fill_placeholders(
        "{{ forms.collected.concern }}\n{{ forms.kept.consent }}", FACTS, "x"
    )
    assert "- whether anyone is at immediate risk of harm" in filled
    assert "encrypted, for 12 months" in filled


def test_an_unknown_group_of_forms_stops_the_build() -> None:
    with pytest.raises(PluginError, match=r"x\.md: `forms\.kept\.surveys` is not set"):
        fill_placeholders("{{ forms.kept.surveys }}", FACTS, "x.md")


def test_our_scripts_are_served_without_comments_and_strings_are_untouched() -> None:
    source = (
        "/* A header\n * over lines. */\n(function () {\n  // a note\n"
        '  var url = "https://example.org/a//b"; // kept: not a whole line\n})();\n'
    )
    assert without_comments(source) == (
        '(function () {\nvar url = "https://example.org/a//b"; // kept: not a whole line\n})();\n'
    )


def test_a_page_can_publish_the_record_of_processing() -> None:
    facts = group_facts_from(PROJECT_ROOT / "mkdocs.yml")
    page = fill_placeholders("{{ processing.record }}", facts, "about/records.md")
    assert page.startswith("# Record of processing")
    assert "## What the server holds, and for how long" in page


def test_a_site_name_that_does_not_name_the_group_stops_the_build(tmp_path: Path) -> None:
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        "site_name: handbook\nextra:\n  group:\n    name: Harbour\n", encoding="utf-8"
    )
    with pytest.raises(PluginError, match=r"site_name must be 'Harbour handbook'"):
        read_handbook_source(config)


def test_the_extension_fills_a_page_as_either_generator_runs_it(tmp_path: Path) -> None:
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "site_name": "Harbour handbook",
                "site_url": "https://handbook.example.org/",
                "extra": {"group": FACTS},
            }
        ),
        encoding="utf-8",
    )
    html = markdown.markdown(
        "# Hi\n\nWelcome to {{ group.name }}. [Out](https://elsewhere.example/)",
        extensions=[makeExtension(config_file=str(config))],
    )
    assert html == (
        "<h1>Hi</h1>\n<p>Welcome to Harbour. "
        '<a href="https://elsewhere.example/" rel="noopener noreferrer">Out</a></p>'
    )
    with pytest.raises(PluginError, match=r"the page 'Hi': `group.nope` is not set"):
        markdown.markdown(
            "# Hi\n\n{{ group.nope }}", extensions=[makeExtension(config_file=str(config))]
        )
