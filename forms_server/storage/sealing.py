"""Personal values at rest, sealed with AES-GCM. (Mail encrypted to a recipient's own key is
message_crypto.py's.)

A value is sealed with the newest data key and bound to its reference (the associated data), so
a sealed answer moved onto another record no longer opens. Each sealed value starts with a short
id of the key that sealed it, so every configured key can open what it sealed and a new key can
be added at any time (rotation). Encrypting email to its recipients is a different job and lives
beside the mailer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from forms_server.errors import FormsServerError

NONCE_BYTES = 12
KEY_ID_BYTES = 4
KEY_BYTES = 32


class SealingError(FormsServerError):
    """A sealed value cannot be opened: a missing data key, or an altered value."""


def key_id(key: bytes) -> bytes:
    """Which key sealed a value, without saying anything about the key."""
    return hashlib.sha256(b"peer-support-data-key" + key).digest()[:KEY_ID_BYTES]


class Sealer:
    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        keys = [keys] if isinstance(keys, bytes) else list(keys)
        if not keys or any(len(key) != KEY_BYTES for key in keys):
            raise SealingError(f"Each data key must be {KEY_BYTES} bytes.")
        self.aeads = {key_id(key): AESGCM(key) for key in keys}
        self.sealing_id = key_id(keys[-1])

    def seal(self, reference: str, value: object) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
        cipher = self.aeads[self.sealing_id].encrypt(nonce, plain, reference.encode("ascii"))
        return base64.b64encode(self.sealing_id + nonce + cipher).decode("ascii")

    def open(self, reference: str, sealed: str) -> dict[str, Any]:
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError) as error:
            raise SealingError(f"Record {reference} holds no sealed value.") from error
        identity, nonce = raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
        aead = self.aeads.get(identity)
        if aead is None:
            raise SealingError(
                f"Record {reference} was sealed with a data key that is no longer configured."
            )
        try:
            plain = aead.decrypt(nonce, raw[KEY_ID_BYTES + NONCE_BYTES :], reference.encode())
        except InvalidTag as error:
            raise SealingError(f"Record {reference} cannot be opened with the data key.") from error
        opened = json.loads(plain)
        if not isinstance(opened, dict):
            raise SealingError(f"Record {reference} does not hold a form's answers.")
        return opened
