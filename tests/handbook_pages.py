"""The handbook's pages as its navigation lists them, with the address each is served at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class HandbookPage:
    title: str
    source: str  # path under docs/
    url_path: str  # path under the site root, with a trailing slash

    def built_file(self, site_dir: Path) -> Path:
        return site_dir / self.url_path / "index.html"


def url_path_for(source: str) -> str:
    stem = source.removesuffix(".md")
    if stem == "index":
        return ""
    return stem.removesuffix("/index") + "/"


def flatten(nav: list[Any], section: str = "") -> list[HandbookPage]:
    pages = []
    for item in nav:
        if isinstance(item, str):  # a section's own index page, listed without a title
            pages.append(HandbookPage(section, item, url_path_for(item)))
            continue
        ((title, target),) = item.items()
        if isinstance(target, list):
            pages.extend(flatten(target, title))
        else:
            pages.append(HandbookPage(title, target, url_path_for(target)))
    return pages


def handbook_pages(config_file: Path) -> list[HandbookPage]:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    return flatten(config["nav"])
