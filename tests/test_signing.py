"""Signed, timestamped tokens: one salt per form kind and purpose, a maximum age always enforced,
tokens from the future refused, and keys that rotate.

Times are forged rather than waited for: itsdangerous reads the clock through `time.time` in
`itsdangerous.timed`, which is patched only around the call that signs or verifies.
"""

from __future__ import annotations

import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from itsdangerous import BadData, base64_decode

from forms_server.forms.definitions import FORMS
from forms_server.signing import (
    ExpiredTokenError,
    FutureTokenError,
    InvalidTokenError,
    Purpose,
    Signer,
    TokenError,
)
from tests.decoding import decoded as everything_decoded

KEY = "a-test-secret-key-that-is-32-bytes-or-more"
OLD_KEY = "the-old-secret-key-of-at-least-32-bytes"
NEW_KEY = "the-new-secret-key-of-at-least-32-bytes"
MAX_AGE = 3600
PURPOSE = Purpose.CHECK_ANSWERS
PAYLOAD: dict[str, Any] = {
    "reference": "4KX-7QD-M2P",
    "answers": {"name": "Zoë O'Brien", "message": "Line one\nLine two", "days": ["mon", "tue"]},
    "automated": False,
}
# Every character a token is made of: URL-safe base64 and the separator.
TOKEN_CHARACTERS = string.ascii_letters + string.digits + "-_."
# A fixed moment, so that ages are exact.
NOON = 1_750_000_000

SALTS = [(kind, purpose) for kind in FORMS for purpose in Purpose]
MISMATCHES = [
    pytest.param(signed_for, presented_to, id=f"{signed_for[0]}->{presented_to[0]}")
    for signed_for in SALTS
    for presented_to in SALTS
    if signed_for != presented_to
]


def decoded(segment: str) -> bytes | None:
    try:
        return base64_decode(segment)
    except BadData:
        return None


@contextmanager
def clock_at(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """The time itsdangerous reads, for the duration of the block only."""
    with monkeypatch.context() as patch:
        patch.setattr("itsdangerous.timed.time.time", lambda: seconds)
        yield


def signed_at(monkeypatch: pytest.MonkeyPatch, signer: Signer, kind: str, seconds: float) -> str:
    with clock_at(monkeypatch, seconds):
        return signer.serializer(kind, PURPOSE).dumps(PAYLOAD)


# -- Round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMS))
def test_a_token_gives_back_the_payload_it_was_signed_with(kind: str) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.sign(kind, PURPOSE, PAYLOAD)
    assert signer.verify(kind, PURPOSE, token) == PAYLOAD


def test_a_large_payload_survives_the_round_trip() -> None:
    # Long answers are compressed by itsdangerous; they must come back whole.
    signer = Signer([KEY], MAX_AGE)
    payload: dict[str, Any] = {"answers": {"what_happened": "x" * 3000, "why": "é" * 3000}}
    token = signer.sign("concern", PURPOSE, payload)
    assert signer.verify("concern", PURPOSE, token) == payload


def test_a_token_tells_when_it_was_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", NOON)
    with clock_at(monkeypatch, NOON + 10):
        payload, when = signer.verify_with_time("consent", PURPOSE, token)
    assert payload == PAYLOAD
    assert when == datetime.fromtimestamp(NOON, UTC)


# -- One salt per form kind and purpose ---------------------------------------------------------


@pytest.mark.parametrize(("signed_for", "presented_to"), MISMATCHES)
def test_a_token_for_one_form_kind_or_purpose_is_refused_by_every_other(
    signed_for: tuple[str, Purpose], presented_to: tuple[str, Purpose]
) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.sign(*signed_for, PAYLOAD)
    with pytest.raises(InvalidTokenError):
        signer.verify(*presented_to, token)


@pytest.mark.parametrize("kind", ["", "unknown", "consent ", "Consent", "consent/check-answers"])
def test_a_token_is_refused_for_a_kind_that_is_not_exactly_its_own(kind: str) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.sign("consent", PURPOSE, PAYLOAD)
    with pytest.raises(InvalidTokenError):
        signer.verify(kind, PURPOSE, token)


def test_every_form_kind_and_purpose_has_its_own_salt() -> None:
    salts = [Signer([KEY], MAX_AGE).serializer(kind, purpose).salt for kind, purpose in SALTS]
    assert len(salts) == len(set(salts)) == len(FORMS) * len(Purpose)


# -- Tampering ----------------------------------------------------------------------------------


def test_any_single_altered_character_is_refused() -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.sign("consent", PURPOSE, PAYLOAD)
    signature_start = token.rindex(".") + 1
    signature = decoded(token[signature_start:])
    assert signature is not None

    accepted: list[tuple[int, str]] = []
    harmless: list[tuple[int, str]] = []
    for position, original in enumerate(token):
        for replacement in TOKEN_CHARACTERS:
            if replacement == original:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            if position >= signature_start and decoded(altered[signature_start:]) == signature:
                harmless.append((position, replacement))
            try:
                payload = signer.verify("consent", PURPOSE, altered)
            except InvalidTokenError:
                continue
            assert payload == PAYLOAD
            accepted.append((position, replacement))

    # The one known exception, from base64 rather than from the signer: the signature is 20
    # bytes written in 27 characters, and the last character's 2 spare bits are ignored when it
    # is decoded. Changing only those bits gives back the very same signature bytes, so the
    # same payload and time: nothing a member sent can be changed this way. Every other
    # alteration, anywhere in the token, is refused.
    assert accepted == harmless
    assert {position for position, _ in harmless} <= {len(token) - 1}
    assert len(harmless) <= 3


@pytest.mark.parametrize(
    "token",
    ["", "x", ".", "..", "a.b.c", "not a token", "eyJhIjoiYiJ9.awac6Q.", "é.é.é", "\x00"],
    ids=repr,
)
def test_something_that_is_not_a_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        Signer([KEY], MAX_AGE).verify("consent", PURPOSE, token)


@pytest.mark.parametrize("payload", [["a", "list"], "text", 42, None, True], ids=repr)
def test_a_signed_payload_that_is_not_a_dict_is_refused(payload: object) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.serializer("consent", PURPOSE).dumps(payload)
    with pytest.raises(InvalidTokenError):
        signer.verify("consent", PURPOSE, token)


# -- Age ----------------------------------------------------------------------------------------


def test_a_token_older_than_its_maximum_age_is_refused_as_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", time.time() - MAX_AGE - 5)
    with pytest.raises(ExpiredTokenError) as refused:
        signer.verify("consent", PURPOSE, token)
    assert type(refused.value) is ExpiredTokenError


def test_a_one_second_token_is_expired_two_seconds_later(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer([KEY], max_age_seconds=1)
    token = signed_at(monkeypatch, signer, "consent", time.time() - 2)
    with pytest.raises(ExpiredTokenError):
        signer.verify("consent", PURPOSE, token)


def test_a_token_is_accepted_up_to_its_maximum_age_and_not_a_second_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", NOON)
    with clock_at(monkeypatch, NOON + MAX_AGE):
        assert signer.verify("consent", PURPOSE, token) == PAYLOAD
    with clock_at(monkeypatch, NOON + MAX_AGE + 1), pytest.raises(ExpiredTokenError):
        signer.verify("consent", PURPOSE, token)


def test_a_token_dated_in_the_future_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", time.time() + 120)
    with pytest.raises(FutureTokenError) as refused:
        signer.verify("consent", PURPOSE, token)
    assert type(refused.value) is FutureTokenError


def test_a_token_one_second_in_the_future_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", NOON + 1)
    with clock_at(monkeypatch, NOON), pytest.raises(FutureTokenError):
        signer.verify("consent", PURPOSE, token)
    with clock_at(monkeypatch, NOON + 1):
        assert signer.verify("consent", PURPOSE, token) == PAYLOAD


def test_an_altered_expired_token_is_refused_as_altered(monkeypatch: pytest.MonkeyPatch) -> None:
    # The page must not say "too much time passed" about a token we did not make.
    signer = Signer([KEY], MAX_AGE)
    token = signed_at(monkeypatch, signer, "consent", time.time() - MAX_AGE - 5)
    altered = token[:2] + ("A" if token[2] != "A" else "B") + token[3:]
    with pytest.raises(InvalidTokenError):
        signer.verify("consent", PURPOSE, altered)


def test_every_refusal_is_a_token_error() -> None:
    for error in (ExpiredTokenError, FutureTokenError, InvalidTokenError):
        assert issubclass(error, TokenError)
    # ...and the three are told apart, so the page can say what happened.
    assert not issubclass(ExpiredTokenError, InvalidTokenError)
    assert not issubclass(FutureTokenError, InvalidTokenError)
    assert not issubclass(FutureTokenError, ExpiredTokenError)


# -- Keys ---------------------------------------------------------------------------------------


def test_a_token_signed_with_the_old_key_verifies_once_a_new_key_is_added() -> None:
    token = Signer([OLD_KEY], MAX_AGE).sign("consent", PURPOSE, PAYLOAD)
    assert Signer([OLD_KEY, NEW_KEY], MAX_AGE).verify("consent", PURPOSE, token) == PAYLOAD


def test_with_two_keys_the_newer_one_signs() -> None:
    token = Signer([OLD_KEY, NEW_KEY], MAX_AGE).sign("consent", PURPOSE, PAYLOAD)
    assert Signer([NEW_KEY], MAX_AGE).verify("consent", PURPOSE, token) == PAYLOAD
    with pytest.raises(InvalidTokenError):
        Signer([OLD_KEY], MAX_AGE).verify("consent", PURPOSE, token)


def test_a_token_signed_with_a_removed_key_is_refused() -> None:
    token = Signer([OLD_KEY], MAX_AGE).sign("consent", PURPOSE, PAYLOAD)
    with pytest.raises(InvalidTokenError):
        Signer([NEW_KEY], MAX_AGE).verify("consent", PURPOSE, token)


@pytest.mark.parametrize("keys", [[], ()], ids=repr)
def test_a_signer_needs_at_least_one_key(keys: list[str] | tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="secret key"):
        Signer(keys, MAX_AGE)


@pytest.mark.parametrize("max_age", [0, -1, -MAX_AGE])
def test_a_signer_needs_a_positive_maximum_age(max_age: int) -> None:
    with pytest.raises(ValueError, match="maximum age"):
        Signer([KEY], max_age)


# -- A lifetime per purpose ---------------------------------------------------------------------


def test_each_purpose_has_its_own_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    fourteen_days = 14 * 24 * 3600
    signer = Signer([KEY], MAX_AGE, {Purpose.ACKNOWLEDGE: fourteen_days})
    with clock_at(monkeypatch, NOON):
        check = signer.sign("consent", Purpose.CHECK_ANSWERS, PAYLOAD)
        link = signer.sign("concern", Purpose.ACKNOWLEDGE, PAYLOAD)
    with clock_at(monkeypatch, NOON + MAX_AGE + 1), pytest.raises(ExpiredTokenError):
        signer.verify("consent", Purpose.CHECK_ANSWERS, check)
    with clock_at(monkeypatch, NOON + fourteen_days - 1):
        assert signer.verify("concern", Purpose.ACKNOWLEDGE, link) == PAYLOAD
    with clock_at(monkeypatch, NOON + fourteen_days + 1), pytest.raises(ExpiredTokenError):
        signer.verify("concern", Purpose.ACKNOWLEDGE, link)
    assert signer.longest_lifetime_seconds == fourteen_days


def test_a_link_signed_with_a_removed_key_is_refused() -> None:
    old, new = KEY, "another-secret-key-that-is-32-bytes-long!"
    link = Signer([old], MAX_AGE).sign("concern", Purpose.ACKNOWLEDGE, PAYLOAD)
    assert Signer([old, new], MAX_AGE).verify("concern", Purpose.ACKNOWLEDGE, link) == PAYLOAD
    with pytest.raises(InvalidTokenError):
        Signer([new], MAX_AGE).verify("concern", Purpose.ACKNOWLEDGE, link)


# -- Sealed links: nothing readable in them, the signing keys' rotation -------------------------

LINK_PAYLOAD = {"reference": "4KX-7QD-M2P", "kind": "leave-missing", "to": "f1@example.org"}


@pytest.mark.parametrize("purpose", [p for p in Purpose if p is not Purpose.CHECK_ANSWERS])
def test_a_sealed_link_says_nothing_to_whoever_sees_it(purpose: Purpose) -> None:
    """A mail scanner or a proxy's log decoded the old links to the reference, the form and
    the recipient's address."""
    signer = Signer([KEY], MAX_AGE)
    token = signer.seal("any", purpose, LINK_PAYLOAD)
    plain = signer.sign("any", purpose, LINK_PAYLOAD)
    assert b"leave-missing" in everything_decoded(plain.encode())  # the old format did
    seen = everything_decoded(token.encode())
    # Whole values only: a three-letter group turns up in random base64 now and then.
    for value in ("4KX-7QD-M2P", "4KX7QDM2P", "leave-missing", "f1@example.org", "reference"):
        assert value.encode() not in seen, value
    assert all(character in TOKEN_CHARACTERS + "~" for character in token)
    assert signer.verify("any", purpose, token) == LINK_PAYLOAD


def test_a_link_from_before_sealing_still_opens_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = Signer([KEY], MAX_AGE)
    with clock_at(monkeypatch, NOON):
        old = signer.sign("concern", Purpose.ACKNOWLEDGE, LINK_PAYLOAD)
    with clock_at(monkeypatch, NOON + MAX_AGE - 1):
        assert signer.verify("concern", Purpose.ACKNOWLEDGE, old) == LINK_PAYLOAD
    with clock_at(monkeypatch, NOON + MAX_AGE + 1), pytest.raises(ExpiredTokenError):
        signer.verify("concern", Purpose.ACKNOWLEDGE, old)


def test_a_sealed_link_expires_and_refuses_the_future(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer([KEY], MAX_AGE)
    with clock_at(monkeypatch, NOON):
        token = signer.seal("concern", Purpose.ACKNOWLEDGE, LINK_PAYLOAD)
    with clock_at(monkeypatch, NOON + MAX_AGE + 1), pytest.raises(ExpiredTokenError):
        signer.verify("concern", Purpose.ACKNOWLEDGE, token)
    with clock_at(monkeypatch, NOON - 60), pytest.raises(FutureTokenError):
        signer.verify("concern", Purpose.ACKNOWLEDGE, token)


def test_a_sealed_link_rotates_with_the_signing_keys() -> None:
    link = Signer([OLD_KEY], MAX_AGE).seal("concern", Purpose.ACKNOWLEDGE, LINK_PAYLOAD)
    both = Signer([OLD_KEY, NEW_KEY], MAX_AGE)
    assert both.verify("concern", Purpose.ACKNOWLEDGE, link) == LINK_PAYLOAD
    newer = both.seal("concern", Purpose.ACKNOWLEDGE, LINK_PAYLOAD)
    assert Signer([NEW_KEY], MAX_AGE).verify("concern", Purpose.ACKNOWLEDGE, newer) == LINK_PAYLOAD
    with pytest.raises(InvalidTokenError):
        Signer([NEW_KEY], MAX_AGE).verify("concern", Purpose.ACKNOWLEDGE, link)


def test_an_altered_or_misdirected_sealed_link_is_refused() -> None:
    signer = Signer([KEY], MAX_AGE)
    token = signer.seal("concern", Purpose.ACKNOWLEDGE, LINK_PAYLOAD)
    with pytest.raises(InvalidTokenError):
        signer.verify("concern", Purpose.READ, token)
    with pytest.raises(InvalidTokenError):
        signer.verify("consent", Purpose.ACKNOWLEDGE, token)
    signature_start = token.rindex(".") + 1
    for position in range(1, len(token)):
        swapped = "A" if token[position] != "A" else "B"
        altered = token[:position] + swapped + token[position + 1 :]
        if decoded(altered[signature_start:]) == decoded(token[signature_start:]):
            # The signature's spare bits, the one known exception (test above): the very same
            # signature bytes. Skipping it ends a failure in about 1 CI run in 18.
            continue
        with pytest.raises(TokenError):
            signer.verify("concern", Purpose.ACKNOWLEDGE, altered)
