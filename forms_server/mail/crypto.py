"""Messages encrypted to their one recipient: S/MIME or OpenPGP. (`sealing.py` is data at rest.)

A recipient's key is a file named in FORMS_RECIPIENT_KEYS: a PEM or DER X.509 certificate for
S/MIME, an OpenPGP certificate (armored or binary) otherwise. The whole message body, both its
plain and its HTML part, is encrypted; the envelope headers (From, To, Subject, Date) stay, as
they must for the mail to be delivered, and they hold no answer.

- S/MIME: `cryptography`'s PKCS#7 envelope builder, AES-256-CBC content encryption (it supports
  RSA recipient certificates only: any other is refused, clearly, when the key is loaded).
- OpenPGP: `pysequoia` (Sequoia PGP), as PGP/MIME (RFC 3156).
"""

from __future__ import annotations

import copy
import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path

import pysequoia
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from forms_server.errors import FormsServerError

# Headers that stay outside the encryption: what the mail system needs, and nothing else (never
# a Reply-To: it would put the member's address beside the subject, in the clear).
OUTER_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "Importance",
)
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class RecipientKeyError(FormsServerError):
    """A key or certificate that cannot be used; the message says which file and why."""


class KeyKind(StrEnum):
    SMIME = "S/MIME"
    OPENPGP = "OpenPGP"


@dataclass(frozen=True)
class RecipientKey:
    address: str
    kind: KeyKind
    path: Path
    expires_at: datetime | None
    describe: str  # a fingerprint or a certificate's subject, for `forms-server check`
    smime: x509.Certificate | None = None
    openpgp: pysequoia.Cert | None = None


def load_recipient_key(address: str, path: Path) -> RecipientKey:
    data = path.read_bytes()
    certificate = None
    for load in (x509.load_pem_x509_certificate, x509.load_der_x509_certificate):
        try:
            certificate = load(data)
            break
        except ValueError:
            continue
    if certificate is not None:
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise RecipientKeyError(
                f"{path}: S/MIME here supports RSA certificates only (the library's envelope "
                "builder encrypts to RSA keys alone). Ask for an RSA certificate, or use an "
                "OpenPGP key."
            )
        return RecipientKey(
            address,
            KeyKind.SMIME,
            path,
            certificate.not_valid_after_utc,
            certificate.subject.rfc4514_string(),
            smime=certificate,
        )
    try:
        cert = pysequoia.Cert.from_bytes(data)
    except Exception as error:
        raise RecipientKeyError(
            f"{path}: neither an X.509 certificate (PEM or DER) nor an OpenPGP certificate."
        ) from error
    expires = cert.expiration
    return RecipientKey(
        address,
        KeyKind.OPENPGP,
        path,
        expires.astimezone(UTC) if expires else None,
        cert.fingerprint.upper(),
        openpgp=cert,
    )


def load_recipient_keys(files: dict[str, Path]) -> dict[str, RecipientKey]:
    return {address: load_recipient_key(address, path) for address, path in files.items()}


def inner_entity(message: EmailMessage) -> bytes:
    """The body as a MIME entity of its own: what gets encrypted."""
    inner = copy.deepcopy(message)
    for header in (*OUTER_HEADERS, "MIME-Version"):
        del inner[header]
    return inner.as_bytes(policy=WIRE_POLICY)


def with_outer_headers(message: EmailMessage, body: EmailMessage) -> EmailMessage:
    for header in OUTER_HEADERS:
        if message[header] is not None:
            body[header] = str(message[header])
    return body


def encrypt_smime(message: EmailMessage, certificate: x509.Certificate) -> EmailMessage:
    enveloped = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(inner_entity(message))
        .add_recipient(certificate)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.SMIME, [])
    )
    body = email.message_from_bytes(enveloped, policy=email.policy.default)
    if not isinstance(body, EmailMessage):  # the default policy always makes one
        raise RecipientKeyError("The encrypted message could not be read back.")
    return with_outer_headers(message, body)


def encrypt_openpgp(message: EmailMessage, cert: pysequoia.Cert) -> EmailMessage:
    armored = pysequoia.encrypt(inner_entity(message), recipients=[cert])
    text = armored.decode("ascii") if isinstance(armored, bytes) else str(armored)
    body = EmailMessage()
    body["MIME-Version"] = "1.0"
    body["Content-Type"] = 'multipart/encrypted; protocol="application/pgp-encrypted"'
    control = EmailMessage()
    control["Content-Type"] = "application/pgp-encrypted"
    control["Content-Description"] = "PGP/MIME version identification"
    control.set_payload("Version: 1\r\n")
    payload = EmailMessage()
    payload["Content-Type"] = 'application/octet-stream; name="encrypted.asc"'
    payload["Content-Disposition"] = 'inline; filename="encrypted.asc"'
    payload.set_payload(text)
    body.attach(control)
    body.attach(payload)
    return with_outer_headers(message, body)


def encrypt_for(message: EmailMessage, key: RecipientKey) -> EmailMessage:
    """The message, its body encrypted to this one recipient's key."""
    if key.smime is not None:
        return encrypt_smime(message, key.smime)
    if key.openpgp is not None:
        return encrypt_openpgp(message, key.openpgp)
    raise RecipientKeyError(f"{key.path}: no key loaded.")
