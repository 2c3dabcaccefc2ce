"""The command line tool for whoever hosts the group.

forms-server serve           build the handbook and serve it with the forms
forms-server check [--send-test]
                             check the configuration and talk to the mail relay
forms-server outbox [--retry] [--dismiss NAME ...] [--all [--yes]]
                             list forms not yet delivered (no personal data), retry failed
                             ones, stop reporting one the host has dealt with (NAME exactly as
                             the listing shows it), or every one of them
forms-server purge           the server's hourly housekeeping, now
forms-server find (--email ADDRESS | --reference REF | --name NAME)
forms-server find --expiring [DAYS]
                             what is held about a person (kinds and dates only), or the
                             consents that lapse within DAYS (default 30)
forms-server export (--email | --reference | --name) [--csv] [--output FILE]
                             everything held about a person, opened (a subject access request)
forms-server correct REF FIELD VALUE
                             fix a kept value, checked as the form checks it
forms-server erase (--email | --reference | --name) [--yes]
                             erase what is held about a person; says what is held back and why
forms-server keys new | rotate
                             make new keys; seal everything again with the newest data key
forms-server records         print the record of processing (UK GDPR Article 30), in Markdown,
                             from the form definitions, the settings and the group's decisions

Every error the tool expects is one clear line and exit 2; `outbox` exits 1 when a form may not
reach anyone (the same conditions as /healthz); `find`, `export` and `erase` exit 1 when nothing
matched. Each use of a member's rights writes a content-free line to the audit log (ledger.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from forms_server.cli.backup import backup, restore
from forms_server.cli.check import check
from forms_server.cli.init import init
from forms_server.cli.outbox import outbox, purge
from forms_server.cli.rights import correct, erase, export, find, keys
from forms_server.cli.serve import serve
from forms_server.cli.words import say
from forms_server.config.env import Settings, load_settings
from forms_server.errors import FormsServerError
from forms_server.forms.reference import EXAMPLE_REFERENCE
from forms_server.handbook.build import build_handbook
from forms_server.handbook.record_of_processing import record_of_processing

logger = logging.getLogger("forms_server")


def add_person_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    who = parser.add_mutually_exclusive_group(required=required)
    who.add_argument("--email", help="an email address the person gave, in any case")
    who.add_argument("--reference", help=f"a form's reference, like {EXAMPLE_REFERENCE}")
    who.add_argument("--name", help="a name exactly as the person typed it, in any case")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forms-server", description="The peer support group's forms server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init_parser = commands.add_parser(
        "init", help="make a deployment folder: mkdocs.yml, .env with fresh keys, service files"
    )
    init_parser.add_argument("folder", type=Path, help="the folder to make (or add to)")
    init_parser.add_argument(
        "--page",
        action="append",
        default=[],
        metavar="PATH",
        help="copy a handbook page to change, named from docs/ (guidelines/taking-part.md)",
    )
    commands.add_parser("serve", help="build the handbook and serve it with the forms")
    commands.add_parser(
        "build", help="build the handbook into FORMS_SITE_DIR (then serve with no build)"
    )
    check_parser = commands.add_parser("check", help="check configuration and the mail relay")
    check_parser.add_argument(
        "--send-test", action="store_true", help="also send a test message to the facilitators"
    )
    outbox_parser = commands.add_parser(
        "outbox", help="list forms not yet delivered, and anything that needs you"
    )
    outbox_parser.add_argument("--retry", action="store_true", help="send failed mail again")
    outbox_parser.add_argument(
        "--dismiss",
        action="append",
        default=[],
        metavar="REF",
        help="stop reporting a failed form or an unreadable file you have dealt with, named "
        "exactly as the listing shows it",
    )
    outbox_parser.add_argument(
        "--all",
        action="store_true",
        dest="dismiss_all",
        help="stop reporting every failed form and unreadable file (asks first)",
    )
    outbox_parser.add_argument(
        "--yes", action="store_true", help="with --all: dismiss them without asking"
    )
    commands.add_parser(
        "purge", help="the server's hourly housekeeping now: records past their retention, ..."
    )
    find_parser = commands.add_parser(
        "find", help="what is held about a person (kinds and dates), or consents that lapse"
    )
    add_person_options(find_parser, required=False)
    find_parser.add_argument(
        "--expiring",
        type=int,
        nargs="?",
        const=30,
        metavar="DAYS",
        help="list consents that lapse within DAYS (default 30)",
    )
    export_parser = commands.add_parser(
        "export", help="everything held about a person, opened, as JSON (or CSV)"
    )
    add_person_options(export_parser)
    export_parser.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    export_parser.add_argument("--output", metavar="FILE", help="a new file to write it to")
    correct_parser = commands.add_parser("correct", help="fix a kept value")
    correct_parser.add_argument("reference", help="the form's reference")
    correct_parser.add_argument("field", help="which value, for example name")
    correct_parser.add_argument("value", help="the corrected value")
    erase_parser = commands.add_parser("erase", help="erase what is held about a person")
    add_person_options(erase_parser)
    erase_parser.add_argument("--yes", action="store_true", help="erase (otherwise: show what)")
    commands.add_parser(
        "backup", help="an encrypted snapshot of the data folder into FORMS_BACKUP_DIR"
    )
    restore_parser = commands.add_parser(
        "restore", help="a backup into an empty folder, with every erasure made since"
    )
    restore_parser.add_argument("backup", type=Path, help="the backup file (.tar.age)")
    restore_parser.add_argument(
        "--identity", type=Path, required=True, help="the age secret key file it was made for"
    )
    restore_parser.add_argument(
        "--into", type=Path, required=True, help="an empty folder to restore into"
    )
    restore_parser.add_argument(
        "--erasures",
        type=Path,
        metavar="LEDGER_COPY",
        help="the erasure ledger's copy (FORMS_ERASURE_LEDGER_COPY): erasures made after the "
        "backup are applied again",
    )
    keys_parser = commands.add_parser("keys", help="make new keys, or rotate the data key")
    keys_parser.add_argument("action", choices=("new", "rotate"))
    commands.add_parser(
        "records", help="print the record of processing (UK GDPR Article 30), in Markdown"
    )
    return parser


# Commands that read or change what the server stored: run anywhere else, they must not answer
# "nothing held" from an empty folder, nor make one.
ON_STORED_DATA = {"find", "export", "correct", "erase", "outbox", "purge", "backup"}


def works_on_stored_data(arguments: argparse.Namespace) -> bool:
    return arguments.command in ON_STORED_DATA or (
        arguments.command == "keys" and arguments.action == "rotate"
    )


def say_what_it_works_on(command: str, settings: Settings) -> None:
    """The first line, on standard error (an export on standard output stays clean)."""
    sys.stderr.write(
        f"forms-server {command}: {settings.environment}, folder {Path.cwd()}, "
        f"{settings.handbook_config}, data {settings.data_dir}\n"
    )


def refuse_a_folder_without_data(settings: Settings) -> None:
    if not settings.data_dir.is_dir():
        raise FormsServerError(
            f"No data at {settings.data_dir}: the server has never run there. Run "
            "this in the folder the server runs in (where its .env is), or set FORMS_DATA_DIR "
            "to the server's data folder."
        )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.command == "init":
            # Before any settings: it makes them.
            return init(arguments.folder, arguments.page)
        # Only the server makes development keys: a command run in the wrong folder, or a
        # first check before FORMS_ENV=production, leaves nothing behind.
        settings = load_settings(make_development_keys=arguments.command == "serve")
        say_what_it_works_on(arguments.command, settings)
        if works_on_stored_data(arguments):
            refuse_a_folder_without_data(settings)
            if not (settings.secret_keys and settings.data_keys):
                # The server's own folder, whose development keys are not made yet.
                settings = load_settings()
        if arguments.command == "serve":
            return serve(settings)
        if arguments.command == "build":
            build_handbook(settings.handbook_config, settings.site_dir, settings.site_url)
            say(f"Built the handbook into {settings.site_dir}, published at {settings.site_url}")
            return 0
        if arguments.command == "check":
            return check(settings, arguments.send_test)
        if arguments.command == "outbox":
            return outbox(
                settings, arguments.retry, arguments.dismiss, arguments.dismiss_all, arguments.yes
            )
        if arguments.command == "purge":
            return purge(settings)
        if arguments.command == "records":
            sys.stdout.write(
                record_of_processing(
                    settings.group, settings.decisions, settings.undelivered_kept_days
                )
            )
            return 0
        commands = {
            "backup": backup,
            "restore": restore,
            "find": find,
            "export": export,
            "correct": correct,
            "erase": erase,
            "keys": keys,
        }
        return commands[arguments.command](settings, arguments)
    except FormsServerError as error:
        logger.error("%s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
