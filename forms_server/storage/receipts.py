"""The receipt a member is shown once, beside the reference, when they send a concern or a
left-early notice: 16 random digits in four groups. Digits rather than words: a cheap phone's
keypad types them, they need no word list in any language, and they read aloud without spelling
(10^16 is 53 bits). The server keeps only a slow hash of it (scrypt, from the standard library).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets

RECEIPT_DIGITS = 16
RECEIPT_BITS = RECEIPT_DIGITS * math.log2(10)
SALT_BYTES = 16
# scrypt's cost: 2^14 rounds of 8 blocks (16 MiB, tens of milliseconds here), one at a time.
# bench/conversation_receipt.py measures it against a bare POST.
COST: dict[str, int] = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
NOT_DIGITS = re.compile(r"[\s-]+")


def new_receipt() -> str:
    digits = f"{secrets.randbelow(10**RECEIPT_DIGITS):0{RECEIPT_DIGITS}d}"
    return " ".join(digits[start : start + 4] for start in range(0, RECEIPT_DIGITS, 4))


def normalise_receipt(typed: str) -> str | None:
    """The digits of a receipt as typed (spaces and dashes anywhere), or None if it is not one."""
    digits = NOT_DIGITS.sub("", typed)
    if len(digits) != RECEIPT_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def slow_hash(digits: str, salt: bytes) -> bytes:
    return hashlib.scrypt(digits.encode("ascii"), salt=salt, **COST)


def decoy_for(key: bytes, reference: str) -> tuple[bytes, bytes]:
    """For a reference with no conversation, a salt and hash that match nothing, so that it
    costs the same key derivation as a wrong receipt and says nothing by taking less."""
    decoy = hmac.new(key, reference.encode(), "sha256").digest()
    return decoy[:SALT_BYTES], decoy
