"""`forms-server backup` and `restore`: a consistent, encrypted snapshot of the data folder, and
a restore that never brings back what was erased after it."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from pyrage import x25519  # type: ignore[import-untyped]

from forms_server.storage.records import SubmissionStore
from tests.conftest import required_tool
from tests.test_cli import environment, forms_server
from tests.test_rights import KEY, PLANTED, many_members


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Path, str]:
    """The backup's key pair: the secret half kept apart (here a file), the public half in .env."""
    key = x25519.Identity.generate()
    secret = tmp_path / "backup-key.txt"
    secret.write_text(str(key) + "\n", "utf-8")
    return secret, str(key.to_public())


def backup_env(tmp_path: Path, recipient: str) -> dict[str, str]:
    return environment(
        tmp_path,
        FORMS_BACKUP_RECIPIENT=recipient,
        FORMS_BACKUP_DIR=str(tmp_path / "backups"),
        FORMS_ERASURE_LEDGER_COPY=str(tmp_path / "elsewhere" / "erasures.jsonl"),
    )


def make_backup(tmp_path: Path, env: dict[str, str]) -> Path:
    before = set((tmp_path / "backups").glob("*")) if (tmp_path / "backups").is_dir() else set()
    done = forms_server(tmp_path, env, "backup")
    assert done.returncode == 0, done.stderr
    (made,) = set((tmp_path / "backups").iterdir()) - before
    return made


def test_a_backup_is_encrypted_whole_and_leaves_drafts_out(
    tmp_path: Path, identity: tuple[Path, str]
) -> None:
    many_members(tmp_path / "data")
    (tmp_path / "data" / "drafts").mkdir()
    (tmp_path / "data" / "drafts" / "a-draft").write_bytes(b"d1 sealed")
    made = make_backup(tmp_path, backup_env(tmp_path, identity[1]))
    sealed = made.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1")
    assert made.stat().st_mode & 0o777 == 0o600
    for value in PLANTED.values():
        assert value.encode() not in sealed
    # Debian's age command opens it with the key kept apart: a backup outlives this software.
    age = required_tool("age", "age")
    opened = subprocess.run(
        [str(age), "--decrypt", "-i", str(identity[0]), str(made)],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(opened)) as archive:
        names = archive.getnames()
    assert "submissions.json" in names
    assert "ledger-key" in names
    assert not any(name.startswith("drafts") for name in names)
    assert not any(name.endswith(".lock") for name in names)


def test_a_restore_goes_into_an_empty_folder_and_opens_with_the_data_key(
    tmp_path: Path, identity: tuple[Path, str]
) -> None:
    planted = many_members(tmp_path / "data")
    env = backup_env(tmp_path, identity[1])
    made = make_backup(tmp_path, env)
    into = tmp_path / "restored"
    done = forms_server(
        tmp_path, env, "restore", str(made), "--identity", str(identity[0]), "--into", str(into)
    )
    assert done.returncode == 0, done.stderr
    restored = SubmissionStore(into, KEY)
    assert restored.get(planted[0].reference) is not None
    assert len(restored.all()) == 42
    # Never over anything: a folder with something in it is refused, and left as it was.
    again = forms_server(
        tmp_path, env, "restore", str(made), "--identity", str(identity[0]), "--into", str(into)
    )
    assert again.returncode == 2
    assert "not empty" in again.stderr


def test_an_erasure_after_the_backup_is_applied_again_on_restore(
    tmp_path: Path, identity: tuple[Path, str]
) -> None:
    """The disk is lost, with its erasure ledger: the copy kept elsewhere erases again what the
    backup still holds."""
    planted = many_members(tmp_path / "data")
    env = backup_env(tmp_path, identity[1])
    made = make_backup(tmp_path, env)
    erased = forms_server(tmp_path, env, "erase", "--reference", planted[0].reference, "--yes")
    assert erased.returncode == 0, erased.stderr
    copy = tmp_path / "elsewhere" / "erasures.jsonl"
    assert copy.is_file()
    assert planted[0].reference not in copy.read_text("utf-8")  # keyed hashes only
    # `check` says the newest backup is older than the latest erasure.
    checked = forms_server(tmp_path, env, "check")
    assert "older than the latest erasure" in checked.stdout
    restore = ["restore", str(made), "--identity", str(identity[0])]
    without = forms_server(tmp_path, env, *restore, "--into", str(tmp_path / "bare"))
    assert without.returncode == 0, without.stderr
    assert SubmissionStore(tmp_path / "bare", KEY).get(planted[0].reference) is not None
    done = forms_server(
        tmp_path, env, *restore, "--into", str(tmp_path / "whole"), "--erasures", str(copy)
    )
    assert done.returncode == 0, done.stderr
    assert "1 record(s) erased again" in done.stdout
    restored = SubmissionStore(tmp_path / "whole", KEY)
    assert restored.get(planted[0].reference) is None
    assert restored.get(planted[1].reference) is not None


def test_a_backup_deletes_the_backups_past_the_groups_decided_time(
    tmp_path: Path, identity: tuple[Path, str]
) -> None:
    """The privacy notice says how long a backup is kept (backup_kept_days): the next backup
    deletes the older ones, so the promise holds without anyone remembering it."""
    many_members(tmp_path / "data")
    env = backup_env(tmp_path, identity[1])
    first = make_backup(tmp_path, env)
    days = 30  # the example mkdocs.yml's backup_kept_days
    old = time.time() - (days + 1) * 86400
    os.utime(first, (old, old))
    recent = first.with_name("forms-data-20261201T000000Z.tar.age")
    recent.write_bytes(first.read_bytes())
    os.utime(recent, (time.time() - (days - 1) * 86400,) * 2)
    done = forms_server(tmp_path, env, "backup")
    assert done.returncode == 0, done.stderr
    assert not first.exists()
    assert recent.exists()
    assert f"Deleted 1 backup(s) older than {days} days" in done.stdout
    assert len(list((tmp_path / "backups").iterdir())) == 2
