"""Where the handbook's sources are: a complete tree (a checkout, or the copy inside the
installed package), or a group's deployment folder layered over the package's.

A deployment folder (`forms-server init`) holds only what the group owns: its mkdocs.yml and the
pages it chose to change under docs/. Every other page, the theme overrides, the includes and
the hook come from the installed package, so an upgrade brings the handbook's fixes.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from forms_server.config.group import PACKAGED_HANDBOOK, PROJECT_ROOT, is_checkout

SOURCE_FOLDERS = ("docs", "overrides", "includes", "hooks")
# Only a complete tree has the build's hook: a deployment folder never holds one.
COMPLETE_TREE_MARKER = Path("hooks") / "group_facts.py"


def packaged_sources() -> Path:
    return PROJECT_ROOT if is_checkout() else PACKAGED_HANDBOOK


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_TREE_MARKER).is_file()


def layers(handbook_config: Path) -> list[Path]:
    """The folders to look in, the group's own first."""
    own = handbook_config.parent
    packaged = packaged_sources()
    if is_complete(own) or own.resolve() == packaged.resolve():
        return [own]
    return [own, packaged]


def guidelines_pages(handbook_config: Path) -> list[Path]:
    """The guidelines' pages a member agrees to, each the group's own copy if it has one."""
    pages: dict[str, Path] = {}
    for layer in reversed(layers(handbook_config)):
        for page in (layer / "docs" / "guidelines").glob("*.md"):
            pages[page.name] = page
    return [pages[name] for name in sorted(pages)]


def packaged_pages() -> list[str]:
    docs = packaged_sources() / "docs"
    return sorted(str(page.relative_to(docs)) for page in docs.rglob("*.md"))


@contextlib.contextmanager
def assembled(handbook_config: Path) -> Iterator[Path]:
    """A mkdocs.yml with every source beside it, for MkDocs: the file itself when the tree is
    complete, else a temporary copy of the package's sources with the group's over them."""
    if len(layers(handbook_config)) == 1:
        yield handbook_config
        return
    own = handbook_config.parent
    with tempfile.TemporaryDirectory(prefix="handbook-sources-") as folder:
        tree = Path(folder)
        for name in SOURCE_FOLDERS:
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(packaged_sources() / name, tree / name, ignore=ignore)
            if (own / name).is_dir():
                shutil.copytree(own / name, tree / name, dirs_exist_ok=True, ignore=ignore)
        shutil.copy2(handbook_config, tree / "mkdocs.yml")
        yield tree / "mkdocs.yml"
