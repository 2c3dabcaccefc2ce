"""Encrypted messages open with clients we did not write: `openssl smime -decrypt` (S/MIME) and
`gpg --decrypt` (OpenPGP), and yield exactly the answers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from forms_server.mail.crypto import (
    KeyKind,
    RecipientKeyError,
    encrypt_for,
    load_recipient_key,
)
from forms_server.mail.messages import WIRE_POLICY
from tests.test_delivery import submission
from tests.test_mailer import RECIPIENT, built

PLANTED = "Planted answer: the blue heron flies at dawn"


def smime_certificate(
    folder: Path, days: int = 365, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
) -> tuple[Path, Path]:
    private = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, RECIPIENT)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(private, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def openpgp_key(folder: Path, expires: str = "1y") -> tuple[Path, dict[str, str]]:
    """A key made by gpg itself, as a facilitator would make one: its public certificate on
    disk, and the environment that holds its secret key."""
    home = folder / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            f"Facilitator <{RECIPIENT}>",
            "future-default",
            "default",
            expires,
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    public = folder / "key.asc"
    exported = subprocess.run(
        ["gpg", "--armor", "--export", RECIPIENT], env=env, capture_output=True, check=True
    )
    public.write_bytes(exported.stdout)
    return public, env


def openssl_decrypt(folder: Path, raw: bytes, cert: Path, key: Path) -> bytes:
    """What `openssl smime -decrypt`, a client we did not write, makes of a message."""
    (folder / "message.eml").write_bytes(raw)
    return subprocess.run(
        [
            "openssl",
            "smime",
            "-decrypt",
            "-in",
            str(folder / "message.eml"),
            "-recip",
            str(cert),
            "-inkey",
            str(key),
        ],
        capture_output=True,
        check=True,
    ).stdout


def the_message() -> EmailMessage:
    return built(submission("concern", about="member", what_happened=PLANTED))


def plain_of(entity: bytes) -> str:
    parsed = message_from_bytes(entity, policy=default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_an_smime_message_opens_with_openssl_and_holds_exactly_the_answers(
    tmp_path: Path,
) -> None:
    cert, key = smime_certificate(tmp_path)
    original = the_message()
    encrypted = encrypt_for(original, load_recipient_key(RECIPIENT, cert))
    raw = encrypted.as_bytes(policy=WIRE_POLICY)
    assert PLANTED.encode() not in raw
    assert b"application/pkcs7-mime" in raw
    assert b"Subject: Harbour: Concern" in raw
    opened = openssl_decrypt(tmp_path, raw, cert, key)
    assert plain_of(opened) == plain_of(original.as_bytes(policy=WIRE_POLICY))
    # AES-256: openssl names the cipher it used.
    cms = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-in", str(tmp_path / "message.eml")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "aes-256-cbc" in cms


def test_an_openpgp_message_opens_with_gpg_and_holds_exactly_the_answers(
    tmp_path: Path,
) -> None:
    public, env = openpgp_key(tmp_path)
    original = the_message()
    encrypted = encrypt_for(original, load_recipient_key(RECIPIENT, public))
    raw = encrypted.as_bytes(policy=WIRE_POLICY)
    assert PLANTED.encode() not in raw
    assert b"multipart/encrypted" in raw
    armored = message_from_bytes(raw, policy=default).get_payload()[1].get_payload()  # type: ignore[index, union-attr]
    (tmp_path / "part.asc").write_text(str(armored))
    opened = subprocess.run(
        ["gpg", "--batch", "--decrypt", str(tmp_path / "part.asc")],
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    assert plain_of(opened) == plain_of(original.as_bytes(policy=WIRE_POLICY))


def test_keys_say_what_they_are_and_when_they_expire(tmp_path: Path) -> None:
    cert, _ = smime_certificate(tmp_path, days=20)
    smime = load_recipient_key(RECIPIENT, cert)
    assert smime.kind is KeyKind.SMIME
    assert smime.expires_at is not None
    assert (
        dt.timedelta(days=19) < smime.expires_at - dt.datetime.now(dt.UTC) < dt.timedelta(days=21)
    )
    public, _ = openpgp_key(tmp_path, expires="10d")
    openpgp = load_recipient_key(RECIPIENT, public)
    assert openpgp.kind is KeyKind.OPENPGP
    assert len(openpgp.describe) == 40
    assert openpgp.expires_at is not None
    assert openpgp.expires_at - dt.datetime.now(dt.UTC) < dt.timedelta(days=11)


def test_a_certificate_that_is_not_rsa_is_refused_clearly(tmp_path: Path) -> None:
    cert, _ = smime_certificate(tmp_path, key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(RecipientKeyError, match="RSA certificates only"):
        load_recipient_key(RECIPIENT, cert)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(RecipientKeyError, match=r"neither an X\.509 certificate"):
        load_recipient_key(RECIPIENT, junk)
