"""The handbook: building it with MkDocs, and what the server must know of the built pages."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from forms_server.config.decisions import DECISIONS_FINGERPRINT_FILE, fingerprint
from forms_server.config.group import SITE_URL_VARIABLE
from forms_server.errors import FormsServerError
from forms_server.handbook.precompress import precompress
from forms_server.handbook.sources import assembled

logger = logging.getLogger(__name__)

# MkDocs 1.x prints a long banner about MkDocs 2 on every build; the README covers the plan.
os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")

# An inline script is one with no src; JSON data blocks are not run, so CSP does not cover them.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", re.S
)


class HandbookBuildError(FormsServerError):
    """The handbook did not build; the message is MkDocs' own reason."""


class ProblemCollector(logging.Handler):
    """Keeps MkDocs' warnings and errors: its exception alone only says that there were some."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.problems.append(record.getMessage().strip())


def build_handbook(config_file: Path, site_dir: Path, site_url: str | None = None) -> None:
    """Build strictly, as CI does: a warning is an error, so a broken link never goes live.
    `site_url` (the server's settings, .env included) replaces FORMS_SITE_URL for this build:
    the hook otherwise reads only the process environment, as a plain `mkdocs build` does."""
    if site_url is not None:
        with environment_variable(SITE_URL_VARIABLE, site_url):
            build_handbook(config_file, site_dir)
        return
    # MkDocs and its theme are imported only to build: the running server never needs them,
    # and they would double its memory.
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    collector = ProblemCollector()
    mkdocs_logger = logging.getLogger("mkdocs")
    mkdocs_logger.addHandler(collector)
    try:
        with assembled(config_file) as complete_config:
            config = load_config(str(complete_config), strict=True, site_dir=str(site_dir))
            build(config)
    except MkDocsException as error:
        reasons = "\n".join(["", *collector.problems]) if collector.problems else ""
        raise HandbookBuildError(f"The handbook did not build: {error}{reasons}") from error
    finally:
        mkdocs_logger.removeHandler(collector)
    compressed = precompress(site_dir)
    logger.info(
        "Built the handbook into %s (%d text files compressed: %d KiB, gzip %d KiB, brotli %d KiB)",
        site_dir,
        compressed.files,
        compressed.original_bytes // 1024,
        compressed.gzip_bytes // 1024,
        compressed.brotli_bytes // 1024,
    )


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def inline_script_hashes(site_dir: Path) -> frozenset[str]:
    """CSP sources for the theme's small inline scripts, so no 'unsafe-inline' is needed."""
    hashes = set()
    for page in site_dir.rglob("*.html"):
        for script in INLINE_SCRIPT.findall(page.read_text(encoding="utf-8")):
            digest = hashlib.sha256(script.encode("utf-8")).digest()
            hashes.add(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    return frozenset(hashes)


def guidelines_version(pages: Iterable[Path], consent_statements: Iterable[str]) -> str:
    """A short fingerprint of the guidelines' pages and the consent form's statements: a consent
    binds to it, so a later change to any rule or statement is detectable on every record."""
    digest = hashlib.sha256()
    for page in sorted(pages, key=lambda page: page.name):
        digest.update(page.name.encode("utf-8") + b"\0")
        digest.update(page.read_bytes() + b"\0")
    for statement in consent_statements:
        digest.update(statement.encode("utf-8") + b"\0")
    return digest.hexdigest()[:12]


def check_built_from(site_dir: Path, group: Mapping[str, Any], handbook_config: Path) -> None:
    """Refuses a handbook built from other facts or decisions than the server's: otherwise the
    pages could promise what the forms do not do, or name someone the forms do not send to."""
    try:
        built_from = (site_dir / DECISIONS_FINGERPRINT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        built_from = "unknown"
    if built_from != fingerprint(group):
        raise HandbookBuildError(
            f"The handbook in {site_dir} was built from other group facts or decisions than "
            f"{handbook_config} holds now (fingerprint {built_from}, expected "
            f"{fingerprint(group)}). Build it again from this file: run `forms-server serve` "
            "with FORMS_BUILD_HANDBOOK=true, or `mkdocs build`."
        )


def theme_stylesheets(site_dir: Path) -> list[str]:
    """The built theme's fingerprinted stylesheets, for the forms' pages to share."""
    found = []
    for pattern in ("assets/stylesheets/main.*.min.css", "assets/stylesheets/palette.*.min.css"):
        matches = sorted(site_dir.glob(pattern))
        if not matches:
            raise HandbookBuildError(f"{site_dir} has no {pattern}: build the handbook first.")
        found.append(str(matches[0].relative_to(site_dir)))
    found.append("assets/handbook.css")
    return found
