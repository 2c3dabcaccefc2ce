"""Short references: three groups of three Crockford base32 characters, the last a Luhn mod 32
check character that catches a mistyped character and (with one exception) a swapped pair."""

from __future__ import annotations

import re
import string
import subprocess
import tempfile
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.reference import (
    ALPHABET,
    format_reference,
    luhn_check_character,
    new_reference,
    normalise_reference,
)
from tests.test_cli import environment, forms_server
from tests.test_views import BASE_URL, make_app

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
GROUP = f"[{CROCKFORD}]{{3}}"
REFERENCE_FORMAT = re.compile(f"{GROUP}-{GROUP}-{GROUP}")
LENGTH = 9
CHECK_POSITION = LENGTH - 1
# Luhn mod 32 cannot see "0" and "Z" swapped, as Luhn mod 10 cannot see "0" and "9" swapped
# (see the transposition test).
UNDETECTABLE_SWAP = {"0", "Z"}


def compact_with(fixed: dict[int, str]) -> str:
    """A valid reference, without dashes, with the given characters at the given positions.

    Free body positions hold "0". When the check character itself is fixed, one free body
    position is chosen so that the check comes out as asked: changing one body character runs
    the check character through every value, so there always is one.
    """
    body = ["0"] * (LENGTH - 1)
    for position, character in fixed.items():
        if position < CHECK_POSITION:
            body[position] = character
    if CHECK_POSITION not in fixed:
        joined = "".join(body)
        return joined + luhn_check_character(joined)
    free = next(position for position in range(LENGTH - 1) if position not in fixed)
    for character in ALPHABET:
        body[free] = character
        joined = "".join(body)
        if luhn_check_character(joined) == fixed[CHECK_POSITION]:
            return joined + fixed[CHECK_POSITION]
    raise AssertionError(f"no reference has {fixed}")


def some_references() -> list[str]:
    """Fresh random references, plus ones holding every character of the alphabet."""
    made = [new_reference() for _ in range(100)]
    made += [format_reference(compact_with(dict.fromkeys(range(8), c))) for c in ALPHABET]
    return made


# -- Format -------------------------------------------------------------------------------------


def test_the_alphabet_is_crockfords() -> None:
    assert ALPHABET == CROCKFORD
    assert not set("ILOU") & set(ALPHABET)


def test_a_new_reference_is_three_groups_of_three_crockford_characters() -> None:
    for _ in range(1000):
        reference = new_reference()
        assert REFERENCE_FORMAT.fullmatch(reference), reference


def test_ten_thousand_new_references_are_all_valid_and_unique() -> None:
    references = [new_reference() for _ in range(10_000)]
    for reference in references:
        assert normalise_reference(reference) == reference
    # 40 random bits: the chance of even one repeat among 10,000 is about 1 in 22,000, and of
    # two repeats about 1 in a billion, so more than one repeat means the randomness is broken.
    assert len(set(references)) >= 9_999


def test_new_references_use_every_character_of_the_alphabet() -> None:
    seen = set("".join(new_reference() for _ in range(2000)).replace("-", ""))
    assert seen == set(ALPHABET)


# -- Mistakes the check character catches -------------------------------------------------------


def test_every_single_character_substitution_is_rejected() -> None:
    # Exhaustive: at every position, every character replaced by every other, in references
    # built to hold each original character there, and in fresh random ones.
    references = [
        compact_with({position: original}) for position in range(LENGTH) for original in ALPHABET
    ]
    references += [reference.replace("-", "") for reference in some_references()]
    checked = 0
    for compact in references:
        assert normalise_reference(compact) is not None
        for position in range(LENGTH):
            for replacement in ALPHABET:
                if replacement == compact[position]:
                    continue
                typed = compact[:position] + replacement + compact[position + 1 :]
                assert normalise_reference(typed) is None, (compact, typed)
                checked += 1
    assert checked >= LENGTH * len(ALPHABET) * (len(ALPHABET) - 1)


def test_every_adjacent_transposition_is_rejected_except_zero_and_z() -> None:
    # Luhn mod 32 weighs characters alternately by 1 and 2 (digit sum of the double in base 32).
    # Swapping neighbours a and b goes unnoticed exactly when a - 2a' = b - 2b' (mod 32), where
    # 2a' is the weighted value; that holds for value 0 ("0") and value 31 ("Z") alone, as for
    # 0 and 9 in decimal Luhn. So "0Z" <-> "Z0" at any neighbouring positions is the one swap
    # the check cannot catch; every other swap of two different characters is.
    missed: set[tuple[int, str, str]] = set()
    for position in range(LENGTH - 1):
        for first in ALPHABET:
            for second in ALPHABET:
                if first == second:
                    continue
                compact = compact_with({position: first, position + 1: second})
                assert normalise_reference(compact) == format_reference(compact)
                swapped = compact[:position] + second + first + compact[position + 2 :]
                if normalise_reference(swapped) is not None:
                    missed.add((position, first, second))
    assert missed == {
        (position, first, second)
        for position in range(LENGTH - 1)
        for first, second in (("0", "Z"), ("Z", "0"))
    }


def test_random_references_reject_every_swap_of_neighbours_but_zero_and_z() -> None:
    for reference in some_references():
        compact = reference.replace("-", "")
        for position in range(LENGTH - 1):
            first, second = compact[position], compact[position + 1]
            if first == second:
                continue
            swapped = compact[:position] + second + first + compact[position + 2 :]
            if {first, second} == UNDETECTABLE_SWAP:
                assert normalise_reference(swapped) == format_reference(swapped)
            else:
                assert normalise_reference(swapped) is None, (reference, swapped)


# -- What a person may type ---------------------------------------------------------------------


def test_lowercase_is_accepted() -> None:
    for reference in some_references():
        assert normalise_reference(reference.lower()) == reference


@pytest.mark.parametrize(
    "layout",
    ["{0}{1}{2}", "{0} {1} {2}", " {0}-{1}-{2} ", "{0} - {1} - {2}", "{0}-{1}{2}", "{0}  {1}{2}"],
)
def test_spaces_and_dashes_anywhere_are_accepted(layout: str) -> None:
    reference = new_reference()
    typed = layout.format(*reference.split("-"))
    assert normalise_reference(typed) == reference


@pytest.mark.parametrize(
    ("lookalike", "character"),
    [("O", "0"), ("o", "0"), ("I", "1"), ("i", "1"), ("L", "1"), ("l", "1"), ("U", "V")],
)
def test_lookalike_letters_are_read_as_the_characters_they_look_like(
    lookalike: str, character: str
) -> None:
    # The module also reads U as V (Crockford's own decoding refuses U); kept as it is.
    for position in range(LENGTH - 1):
        reference = format_reference(compact_with({position: character}))
        compact = reference.replace("-", "")
        typed = compact[:position] + lookalike + compact[position + 1 :]
        assert normalise_reference(typed) == reference


@pytest.mark.parametrize(
    "typed",
    ["", "-", "--", "  ", "4KX-7QD-M2", "4KX7QDM", "4KX-7QD-M2P-0", "4KX7QDM2P00"],
    ids=repr,
)
def test_the_wrong_length_gives_none(typed: str) -> None:
    assert normalise_reference(typed) is None


def test_a_valid_reference_with_a_character_added_or_removed_gives_none() -> None:
    compact = new_reference().replace("-", "")
    for position in range(LENGTH):
        assert normalise_reference(compact[:position] + compact[position + 1 :]) is None
        for extra in "0Z":
            assert normalise_reference(compact[:position] + extra + compact[position:]) is None


OUTSIDE_ASCII = sorted(
    set(string.printable) - set(ALPHABET) - set(ALPHABET.lower()) - set("IiLlOoUu -")
)
OUTSIDE_OTHER = [
    "\u00e9",  # é
    "\uff21",  # fullwidth A
    "\u0663",  # Arabic-Indic digit three
    "\U0001d7ce",  # mathematical bold digit zero
    "\u0417",  # Cyrillic capital Ze, which looks like 3
    "\u0410",  # Cyrillic capital A
    "\u200b",  # zero width space
    "\u00a0",  # no-break space
]


@pytest.mark.parametrize("outsider", OUTSIDE_ASCII + OUTSIDE_OTHER, ids=repr)
def test_a_character_outside_the_alphabet_gives_none(outsider: str) -> None:
    compact = new_reference().replace("-", "")
    for position in range(LENGTH):
        assert normalise_reference(compact[:position] + outsider + compact[position + 1 :]) is None
        assert normalise_reference(compact[:position] + outsider + compact[position:]) is None


# Letters outside the alphabet whose uppercase is made of alphabet letters (str.upper() turns
# "ß" into "SS" and the "fi" ligature into "FI"). They are not lookalikes of what they turn
# into ("ß" reads as B), so a reference typed with one must not be accepted.
UPPERCASE_INTO_THE_ALPHABET = [
    "\u00df",  # ß -> SS
    "\u017f",  # long s -> S
    "\u0131",  # dotless i -> I -> 1
    "\ufb00",  # ff ligature -> FF
    "\ufb01",  # fi ligature -> FI -> F1
    "\ufb02",  # fl ligature -> FL -> F1
    "\ufb03",  # ffi ligature -> FFI -> FF1
    "\ufb04",  # ffl ligature -> FFL -> FF1
    "\ufb05",  # long s t ligature -> ST
    "\ufb06",  # st ligature -> ST
]


def test_no_letter_outside_the_alphabet_is_read_as_the_letters_it_uppercases_to() -> None:
    accepted: dict[str, str] = {}
    for outsider in UPPERCASE_INTO_THE_ALPHABET:
        expansion = outsider.upper().replace("I", "1").replace("L", "1")
        assert set(expansion) <= set(ALPHABET), outsider
        compact = compact_with(dict(enumerate(expansion, start=2)))
        typed = compact[:2] + outsider + compact[2 + len(expansion) :]
        read = normalise_reference(typed)
        if read is not None:
            accepted[typed] = read
    assert accepted == {}


# Anything shaped like a reference (three groups of three from the alphabet, or its lookalikes).
SHAPED_LIKE_A_REFERENCE = re.compile(r"\b[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3}\b")
NAMES_SHAPED_LIKE_A_REFERENCE = {"AES-256-GCM", "AES-256-CBC"}


def examples_in(text: str) -> list[str]:
    found = SHAPED_LIKE_A_REFERENCE.findall(text)
    return [example for example in found if example not in NAMES_SHAPED_LIKE_A_REFERENCE]


def test_every_example_reference_shown_to_anyone_passes_its_own_check(
    site_dir: Path, tmp_path: Path
) -> None:
    """A member who copies the example to see what a reference looks like, or a host who
    tries it on the command line, must not be told it is not a reference: the status page's
    hint, its error, `--help`, the command line's error and the README alike."""
    with TestClient(make_app(site_dir, tmp_path / "data"), base_url=BASE_URL) as client:
        status_page = client.get("/forms/status/").text
        status_error = client.post("/forms/status/", data={"reference": "4KX"}).text
    shown = {
        "status page": status_page,
        "status page error": status_error,
        "--help": run_forms_server("find", "--help").stdout,
        "command line error": run_forms_server("find", "--reference", "4KX").stderr,
        "README": (PROJECT_ROOT / "README.md").read_text("utf-8"),
    }
    examples = {where: examples_in(text) for where, text in shown.items()}
    assert all(examples.values()), examples
    failing = {
        where: [e for e in found if not is_reference(e)] for where, found in examples.items()
    }
    assert {where: found for where, found in failing.items() if found} == {}


def run_forms_server(*arguments: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "data").mkdir()  # where the server runs: the commands refuse elsewhere
        return forms_server(Path(folder), environment(Path(folder)), *arguments)


def is_reference(example: str) -> bool:
    return normalise_reference(example) == example
