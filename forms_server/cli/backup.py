"""`forms-server backup` and `forms-server restore`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from forms_server.cli.words import say
from forms_server.config.env import Settings
from forms_server.errors import FormsServerError
from forms_server.services import open_services
from forms_server.storage.backup import delete_backups_older_than, make_backup, restore_files
from forms_server.storage.records import SubmissionStore


def backup(settings: Settings, arguments: argparse.Namespace) -> int:
    if settings.backup_dir is None:
        raise FormsServerError(
            "FORMS_BACKUP_DIR is not set: name a folder for the backups, ideally on other "
            "storage (a backup on the same disk is lost with it)."
        )
    services = open_services(settings)
    store, outbox = services.store, services.outbox
    made = make_backup(
        settings.data_dir,
        [outbox.worker_lock_path, store.lock_path, store.ledger.lock_path],
        settings.backup_recipients,
        settings.backup_dir,
    )
    say(
        f"Backed up {made.files} file(s), {made.plain_bytes:,} bytes, to {made.path} "
        f"({made.sealed_bytes:,} bytes, encrypted to {len(settings.backup_recipients)} key(s))."
    )
    days = settings.decisions.backup_kept_days
    deleted = delete_backups_older_than(settings.backup_dir, days, datetime.now(UTC))
    say(f"Deleted {deleted} backup(s) older than {days} days (decisions.backup_kept_days).")
    say("It opens only with the age secret key and, for the answers in it, FORMS_DATA_KEY.")
    return 0


def restore(settings: Settings, arguments: argparse.Namespace) -> int:
    files = restore_files(arguments.backup, arguments.identity, arguments.into)
    say(f"Restored {files} file(s) into {arguments.into}.")
    store = SubmissionStore(arguments.into, settings.data_keys_bytes)
    added = store.ledger.apply_copy(arguments.erasures) if arguments.erasures else 0
    erased = store.reapply_erasures()
    if arguments.erasures:
        say(
            f"{added} erasure(s) made after the backup, from {arguments.erasures}: "
            f"{erased} record(s) erased again."
        )
    else:
        say(
            "No erasure ledger copy given (--erasures): anything erased after this backup was "
            "made is back. Give FORMS_ERASURE_LEDGER_COPY's file to erase it again."
        )
    say(f"Point FORMS_DATA_DIR at {arguments.into} to use it.")
    return 0
