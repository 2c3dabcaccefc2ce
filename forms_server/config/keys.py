"""The keys in the settings: signing keys, data keys (made in the data folder in development,
only by `serve`), and the age public keys backups are encrypted to."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from forms_server.config.group import SettingsError
from forms_server.storage.files import private_folder

MINIMUM_SECRET_BYTES = 32


def development_secret(
    data_dir: Path, name: str, make: Callable[[], str], create: bool = True
) -> Secret | None:
    """A key made on first run and kept in the data folder, readable by its owner only; without
    `create`, only one already there (None if there is none)."""
    key_file = data_dir / name
    if not key_file.exists():
        if not create:
            return None
        private_folder(data_dir)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(make())
    return Secret(key_file.read_text(encoding="ascii").strip())


def new_data_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def data_keys_from(
    config: Config, environment: str, data_dir: Path, make: bool
) -> tuple[Secret, ...]:
    """The data keys; in development, none configured: the one kept in the data folder, made
    on first run when `make` (else only one already there)."""
    configured = [
        key.strip()
        for key in config("FORMS_DATA_KEY", cast=CommaSeparatedStrings, default="")
        if key.strip()
    ]
    if not configured:
        if environment == "production":
            raise SettingsError(
                "FORMS_DATA_KEY is not set. In production, set it to 32 random bytes in "
                'URL-safe base64. Make one with: python3 -c "import base64, secrets; '
                'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"'
            )
        made = development_secret(data_dir, "development-data-key", new_data_key, make)
        return (made,) if made else ()
    for position, value in enumerate(configured, start=1):
        try:
            key = base64.urlsafe_b64decode(value.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as error:
            raise SettingsError(
                f"FORMS_DATA_KEY: key {position} must be URL-safe base64."
            ) from error
        if len(key) != 32:
            raise SettingsError(
                f"FORMS_DATA_KEY: key {position} must decode to 32 bytes, not {len(key)}."
            )
    return tuple(Secret(value) for value in configured)


def secret_keys_from(
    config: Config, environment: str, data_dir: Path, make: bool
) -> tuple[Secret, ...]:
    """The signing keys; in development, none configured: as `data_keys_from`."""
    configured = config("FORMS_SECRET_KEYS", cast=CommaSeparatedStrings, default="")
    keys = tuple(Secret(key.strip()) for key in configured if key.strip())
    if not keys:
        if environment == "production":
            raise SettingsError(
                "FORMS_SECRET_KEYS is not set. In production, set it to one or more random "
                "keys of at least 32 characters, separated by commas (newest last). "
                'Make one with: python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        made = development_secret(data_dir, "development-secret-key", new_secret_key, make)
        return (made,) if made else ()
    for position, key in enumerate(keys, start=1):
        if len(str(key).encode("utf-8")) < MINIMUM_SECRET_BYTES:
            raise SettingsError(
                f"FORMS_SECRET_KEYS: key {position} is shorter than {MINIMUM_SECRET_BYTES} "
                "bytes. Use a longer random key."
            )
    return keys


def backup_recipients_from(config: Config) -> tuple[str, ...]:
    """FORMS_BACKUP_RECIPIENT: age public keys (age1...), comma-separated."""
    from pyrage import x25519  # type: ignore[import-untyped]

    keys = tuple(
        key.strip()
        for key in config("FORMS_BACKUP_RECIPIENT", cast=CommaSeparatedStrings, default="")
        if key.strip()
    )
    for key in keys:
        try:
            x25519.Recipient.from_str(key)
        except Exception as error:  # pyrage raises its own error types, not exported
            raise SettingsError(
                f"FORMS_BACKUP_RECIPIENT: {key[:12]!r}... is not an age public key (age1...). "
                "Make a key pair with `age-keygen -o backup-key.txt` on another machine, and "
                "put the public key it prints here."
            ) from error
    return keys
