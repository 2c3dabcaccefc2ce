"""`forms-server init FOLDER [--page PATH ...]`: a deployment folder holding only what the group
owns, so an upgrade of the package brings the handbook's fixes. Never overwrites anything."""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from pathlib import Path
from string import Template

from forms_server.cli.words import say
from forms_server.config.group import PACKAGE_DIR, group_facts_from
from forms_server.config.keys import new_data_key, new_secret_key
from forms_server.errors import FormsServerError
from forms_server.handbook.sources import packaged_pages, packaged_sources

DEPLOYMENT_TEMPLATES = PACKAGE_DIR / "templates" / "deploy"
DEPLOYMENT_FILES = ("forms-server.service", "forms-server-build.service", "Caddyfile")

ENV_FILE = """\
# The forms server's settings for this folder, written by `forms-server init` with fresh keys.
# Readable by its owner only: the keys open every stored answer. Keep a copy of FORMS_DATA_KEY
# somewhere else and safe: without it, the data folder (and any backup of it) cannot be read.
# `forms-server check` lists anything still missing, each with its fix. The README lists them all.
FORMS_ENV=production

# The one address members and recipients use, such as https://forms.your-group.org.uk: every
# link in an email starts with it (an https:// address with a host name, no path).
FORMS_PUBLIC_URL=

# The mail relay (your email provider's SMTP server), and the service's own address on your
# domain. Port 587 with STARTTLS; for port 465 set FORMS_SMTP_SECURITY=tls.
FORMS_SMTP_HOST=
FORMS_SMTP_PORT=587
FORMS_SMTP_USERNAME=
FORMS_SMTP_PASSWORD=
FORMS_MAIL_FROM=

# The safeguarding lead and deputy, when the group decides concerns go to them
# (decisions.concern_route in mkdocs.yml): their addresses, comma-separated.
FORMS_SAFEGUARDING=

# Signing keys (newest last) and the key that seals answers at rest: made for you, keep them.
FORMS_SECRET_KEYS=$secret_key
FORMS_DATA_KEY=$data_key

# Backups: the age public key they are encrypted to (make the pair with `age-keygen` on another
# machine and keep the secret half there), where they go, and a copy of the erasure ledger;
# both best on other storage.
FORMS_BACKUP_RECIPIENT=
FORMS_BACKUP_DIR=
FORMS_ERASURE_LEDGER_COPY=

# This folder's parts. The handbook is built by `forms-server build` before `serve` starts.
FORMS_HANDBOOK_CONFIG=$folder/mkdocs.yml
FORMS_DATA_DIR=$folder/data
FORMS_SITE_DIR=$folder/site
FORMS_BUILD_HANDBOOK=false
FORMS_HOST=127.0.0.1
FORMS_PORT=8000
"""

MKDOCS_HEADER = """\
# Your group's handbook: its facts under extra.group, its decisions under
# extra.group.decisions. Every page not in docs/ beside this file comes from the installed
# package; `forms-server init $folder --page PATH` copies one here to change it.
"""


def init(folder: Path, pages: list[str]) -> int:
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    kept: list[str] = []

    def write(name: str, text: str, mode: int = 0o644) -> None:
        path = folder / name
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            kept.append(name)
            return
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        created.append(name)

    sources = packaged_sources()
    example = (sources / "mkdocs.yml").read_text(encoding="utf-8")
    write("mkdocs.yml", Template(MKDOCS_HEADER).substitute(folder=folder) + example)
    write(
        ".env",
        Template(ENV_FILE).substitute(
            secret_key=new_secret_key(), data_key=new_data_key(), folder=folder
        ),
        0o600,
    )
    if (folder / "data").exists():
        kept.append("data/")
    else:
        (folder / "data").mkdir(mode=0o700)
        created.append("data/")
    group = group_facts_from(folder / "mkdocs.yml")
    values = {
        "group_name": str(group["name"]),
        "folder": str(folder),
        "forms_server": str(Path(sys.executable).with_name("forms-server")),
        "host": "forms.your-group.org.uk",
        "port": "8000",
    }
    for name in DEPLOYMENT_FILES:
        template = (DEPLOYMENT_TEMPLATES / name).read_text(encoding="utf-8")
        write(name, Template(template).substitute(values))
    for page in pages:
        copy_page(folder, page, created, kept)
    for name in created:
        say(f"Made {folder / name}")
    for name in kept:
        say(f"Already there, kept as it is: {folder / name}")
    say_next_steps(folder)
    return 0


def copy_page(folder: Path, page: str, created: list[str], kept: list[str]) -> None:
    known = packaged_pages()
    if page not in known:
        close = difflib.get_close_matches(page, known, n=3)
        meant = f" Did you mean {' or '.join(close)}?" if close else ""
        raise FormsServerError(
            f"The handbook has no page {page!r}.{meant} Pages are named from docs/, for "
            "example guidelines/taking-part.md."
        )
    target = folder / "docs" / page
    if target.exists():
        kept.append(f"docs/{page}")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(packaged_sources() / "docs" / page, target)
    created.append(f"docs/{page}")


def say_next_steps(folder: Path) -> None:
    say("")
    say("Next:")
    say(f"1. Edit {folder / 'mkdocs.yml'}: your group's facts under extra.group, and its")
    say("   decisions under extra.group.decisions (the README lists each one).")
    say(f"2. Edit {folder / '.env'}: FORMS_PUBLIC_URL, your mail relay and FORMS_MAIL_FROM.")
    say(f"3. cd {folder} && forms-server check --send-test   (lists everything still missing)")
    say("4. forms-server build   (the handbook, into site/)")
    say("5. Put the host name in Caddyfile, and install it and the two .service files as the")
    say("   README's 'Put it live' says; then systemctl enable --now forms-server.")
