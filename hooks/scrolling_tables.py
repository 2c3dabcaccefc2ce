"""MkDocs hook: a wide table scrolls sideways in a box that the keyboard can reach.

On a small phone a table wider than the screen scrolls inside its own box; a box that cannot
take focus cannot be scrolled without a mouse or a touch screen (WCAG 2.1.1). Each table is
put in a box that is a tab stop (tabindex="0"), a region named after the heading above the
table (or its caption), so a screen reader says what the stop is. Done when the page is built,
so it works without JavaScript; handbook.css makes this box, not the theme's, the one that
scrolls.
"""

from __future__ import annotations

import html
import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.pages import Page

TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S)
HEADING = re.compile(r"<h([1-6])\b[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)
CAPTION = re.compile(r"<caption\b[^>]*>(.*?)</caption>", re.S)
TAG = re.compile(r"<[^>]+>")


def text_of(markup: str) -> str:
    return " ".join(html.unescape(TAG.sub("", markup)).split())


def scrolling_box(table: str, heading_id: str | None) -> str:
    caption = CAPTION.search(table)
    if caption and text_of(caption.group(1)):
        name = f'aria-label="{html.escape(text_of(caption.group(1)))}"'
    elif heading_id:
        name = f'aria-labelledby="{html.escape(heading_id)}"'
    else:
        name = 'aria-label="Table"'
    return f'<div class="handbook-table" tabindex="0" role="region" {name}>{table}</div>'


def with_scrolling_tables(content: str) -> str:
    """Each table in its own named, focusable box; the rest of the page as it was."""
    parts: list[str] = []
    position = 0
    for table in TABLE.finditer(content):
        before = content[position : table.start()]
        headings = list(HEADING.finditer(content, 0, table.start()))
        heading_id = headings[-1].group(2) if headings else None
        parts.extend([before, scrolling_box(table.group(0), heading_id)])
        position = table.end()
    parts.append(content[position:])
    return "".join(parts)


def on_page_content(html: str, page: Page, config: MkDocsConfig, **kwargs: Any) -> str:
    return with_scrolling_tables(html)
