"""Short references a person can read out on the phone: Crockford base32 with a check character.

Nine characters in three groups, like `4KX-7QD-M21`: eight random ones (40 bits) and a Luhn
mod 32 check character, so a mistyped or swapped character is caught before anyone goes looking
for a form that does not exist. Crockford's alphabet has no I, L, O or U, and reading accepts
those as the digits they look like.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE = len(ALPHABET)
RANDOM_CHARACTERS = 8
LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})


def luhn_check_character(body: str) -> str:
    total = 0
    factor = 2
    for character in reversed(body):
        addend = factor * ALPHABET.index(character)
        total += addend // BASE + addend % BASE
        factor = 1 if factor == 2 else 2
    return ALPHABET[(BASE - total % BASE) % BASE]


def format_reference(compact: str) -> str:
    return "-".join(compact[start : start + 3] for start in range(0, len(compact), 3))


def new_reference() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARACTERS))
    return format_reference(body + luhn_check_character(body))


def normalise_reference(typed: str) -> str | None:
    """The reference in its standard form, or None when it cannot be one of ours."""
    if not typed.isascii():
        # str.upper() turns some other letters into ASCII ones (ß into SS, the ligature fi
        # into FI): a reference is never typed with them, so refuse rather than guess.
        return None
    compact = typed.upper().translate(LOOKALIKES).replace("-", "").replace(" ", "")
    if len(compact) != RANDOM_CHARACTERS + 1 or any(c not in ALPHABET for c in compact):
        return None
    body, check = compact[:-1], compact[-1]
    if luhn_check_character(body) != check:
        return None
    return format_reference(compact)


# The example shown in hints, help and errors: it passes its own check, so a member or host who
# tries it is never told that what we showed them is not a reference.
EXAMPLE_REFERENCE = format_reference("4KX7QDM2" + luhn_check_character("4KX7QDM2"))
