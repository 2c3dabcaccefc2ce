"""Each version of the guidelines a member agrees to, kept whole, so a consent can always be
read against the exact words it agreed to.

The version is a short hash of the guidelines' pages and the consent form's statements (see
handbook.guidelines_version); records keep the hash. A member is shown a date instead, the day
this version was first served: "the guidelines as they were on 25 November 2026". The archive is
one file per version in the data folder, written once and never changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from forms_server.handbook.build import guidelines_version
from forms_server.storage.files import create_exclusively, private_folder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuidelinesVersion:
    version: str  # the hash records keep
    since: date  # the day this version was first served

    @property
    def in_words(self) -> str:
        return f"{self.since.day} {self.since:%B %Y}"


def archive_guidelines(
    data_dir: Path, pages: list[Path], statements: list[str], today: date | None = None
) -> GuidelinesVersion:
    """This version, archived if it is new: its pages' text, its statements and its date."""
    version = guidelines_version(pages, statements)
    path = data_dir / "guidelines" / f"{version}.json"
    first_seen = today or datetime.now(UTC).date()
    # Written once: a later start with the same version reads the first date, and writes
    # nothing. A data folder that cannot be written must not stop the forms (/healthz reports
    # the folder itself).
    try:
        if not path.exists():
            private_folder(path.parent)
            archived = {
                "version": version,
                "since": first_seen.isoformat(),
                "pages": {page.name: page.read_text(encoding="utf-8") for page in pages},
                "statements": statements,
            }
            create_exclusively(path, json.dumps(archived, ensure_ascii=False, indent=1).encode())
        kept = json.loads(path.read_text(encoding="utf-8"))
        return GuidelinesVersion(version, date.fromisoformat(kept["since"]))
    except (OSError, ValueError, KeyError) as error:
        logger.error("Could not archive guidelines version %s: %s", version, error)
        return GuidelinesVersion(version, first_seen)


def archived_version(data_dir: Path, version: str) -> GuidelinesVersion | None:
    """A version a member agreed to, from the archive; None if it was never archived here."""
    if not version.isalnum():
        return None
    try:
        kept = json.loads((data_dir / "guidelines" / f"{version}.json").read_text("utf-8"))
        return GuidelinesVersion(version, date.fromisoformat(kept["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
