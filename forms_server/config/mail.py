"""The mail relay and the service's own address: how mail leaves, and to whom each route goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from forms_server.config.decisions import DELIVERY_ROUTES, Decisions, DeliveryMode
from forms_server.config.group import Problems, SettingsError
from forms_server.config.recipients import (
    addresses,
    concern_recipients,
    escalation_recipients,
    facilitator_concern_recipients,
)


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # required, never falls back to plain text
    TLS = "tls"  # implicit TLS from the first byte
    NONE = "none"  # loopback only, unless explicitly allowed


DEVELOPMENT_SENDER = "forms@localhost.localdomain"


@dataclass(frozen=True)
class MailSettings:
    """Where and how the facilitators' email goes. No host means the embedded catcher."""

    host: str | None
    port: int
    security: SmtpSecurity
    username: str | None
    password: Secret | None
    timeout_seconds: float
    # A custom CA for the relay's certificate (tests, private relays); None trusts the system.
    ca_file: Path | None
    # Plain text to a relay that is not on this machine is refused unless this is set.
    allow_plaintext: bool
    sender: str
    facilitators: tuple[str, ...]
    # Who receives concerns, as the group decided (decisions.concern_route): the facilitators,
    # or the safeguarding lead and deputy.
    concerns: tuple[str, ...]
    # Who receives a concern about a facilitator: never a facilitator.
    facilitator_concerns: tuple[str, ...]
    retry_hours: float
    # The DATA command and the reply after the whole message (RFC 5321 4.5.3.2.6: 10 minutes).
    data_timeout_seconds: float = 600.0
    # A concern or urgent notice nobody picked up in time: never a facilitator.
    escalation: tuple[str, ...] = ()
    # How each route's mail is delivered (decisions.delivery_mode): full, link-only, encrypted.
    modes: Mapping[str, DeliveryMode] = field(
        default_factory=lambda: dict.fromkeys(DELIVERY_ROUTES, DeliveryMode.FULL)
    )
    # Recipients' own S/MIME certificates or OpenPGP keys (FORMS_RECIPIENT_KEYS): address -> file.
    recipient_key_files: Mapping[str, Path] = field(default_factory=dict)


def mail_settings_from(
    config: Config, environment: str, group: Mapping[str, Any], decisions: Decisions
) -> MailSettings:
    problems = Problems()
    host = config("FORMS_SMTP_HOST", default="") or None
    security = SmtpSecurity.STARTTLS
    try:
        security = SmtpSecurity(config("FORMS_SMTP_SECURITY", default="starttls"))
    except ValueError:
        choices = ", ".join(mode.value for mode in SmtpSecurity)
        problems.note(f"FORMS_SMTP_SECURITY must be one of {choices}.")
    if host is None and environment == "production":
        problems.note(
            "FORMS_SMTP_HOST is not set. In production, set it to your mail relay (for example "
            "FORMS_SMTP_HOST=smtp.your-provider.net); the embedded mail catcher is for "
            "development only."
        )
    default_port = 465 if security is SmtpSecurity.TLS else 587
    port = problems.number(config, "FORMS_SMTP_PORT", int, default_port)
    timeout = problems.number(config, "FORMS_SMTP_TIMEOUT_SECONDS", float, 10.0)
    data_timeout = problems.number(config, "FORMS_SMTP_DATA_TIMEOUT_SECONDS", float, 600.0)
    retry_hours = problems.number(config, "FORMS_RETRY_HOURS", float, 48.0)
    allow_plaintext = problems.attempt(
        lambda: config("FORMS_SMTP_ALLOW_PLAINTEXT", cast=bool, default=False), False
    )
    if not 0 < timeout <= data_timeout <= 3600:
        problems.note(
            "FORMS_SMTP_TIMEOUT_SECONDS must be above 0, and FORMS_SMTP_DATA_TIMEOUT_SECONDS at "
            "least as long and at most 3600 (the relay's reply after a whole message can take "
            "minutes: 600 is the standard's suggestion)."
        )
    ca_file = config("FORMS_SMTP_CA_FILE", default="") or None
    if ca_file is not None and not Path(ca_file).is_file():
        problems.note(f"FORMS_SMTP_CA_FILE points to {ca_file}, which does not exist.")
    password = Secret(config("FORMS_SMTP_PASSWORD", default=""))
    nobody: tuple[str, ...] = ()
    facilitators = problems.attempt(
        lambda: addresses(config, "FORMS_FACILITATORS", str(group["facilitators_email"])),
        nobody,
    )
    concerns = problems.attempt(
        lambda: concern_recipients(config, environment, decisions, facilitators), nobody
    )
    # Never a facilitator: neither an address configured here nor the one the handbook
    # publishes for them (FORMS_FACILITATORS may name people, the handbook a shared inbox).
    every_facilitator = (*facilitators, str(group["facilitators_email"]))
    facilitator_concerns = problems.attempt(
        lambda: facilitator_concern_recipients(environment, decisions, every_facilitator),
        nobody,
    )
    escalation = problems.attempt(
        lambda: escalation_recipients(environment, decisions, every_facilitator), nobody
    )
    senders = problems.attempt(
        lambda: addresses(config, "FORMS_MAIL_FROM", DEVELOPMENT_SENDER), nobody
    )
    sender = senders[0] if senders else DEVELOPMENT_SENDER
    if environment == "production" and sender.lower().endswith("@localhost.localdomain"):
        problems.note(
            "FORMS_MAIL_FROM is not set. In production, set it to the service's own address "
            "on your domain (for example forms@your-group.org.uk): mail from "
            "localhost.localdomain is refused or marked as spam."
        )
    no_key_files: dict[str, Path] = {}
    key_files = problems.attempt(lambda: recipient_key_files_from(config), no_key_files)
    problems.raise_any()
    return MailSettings(
        host=host,
        port=port,
        security=security,
        username=config("FORMS_SMTP_USERNAME", default="") or None,
        password=password if str(password) else None,
        timeout_seconds=timeout,
        data_timeout_seconds=data_timeout,
        ca_file=Path(ca_file) if ca_file else None,
        allow_plaintext=allow_plaintext,
        sender=sender,
        facilitators=facilitators,
        concerns=concerns,
        facilitator_concerns=facilitator_concerns,
        escalation=escalation,
        retry_hours=retry_hours,
        modes=decisions.delivery_mode,
        recipient_key_files=key_files,
    )


def recipient_key_files_from(config: Config) -> dict[str, Path]:
    """FORMS_RECIPIENT_KEYS: `address=/path/to/cert.pem,address2=/path/to/key.asc`."""
    files: dict[str, Path] = {}
    for entry in config("FORMS_RECIPIENT_KEYS", cast=CommaSeparatedStrings, default=""):
        address, separator, path = entry.partition("=")
        if not separator or not address.strip() or not path.strip():
            raise SettingsError(
                f"FORMS_RECIPIENT_KEYS: {entry!r} is not address=/path/to/key-or-certificate."
            )
        if not Path(path.strip()).is_file():
            raise SettingsError(f"FORMS_RECIPIENT_KEYS: {path.strip()} does not exist.")
        files[address.strip().lower()] = Path(path.strip())
    return files


# The worker finishes a pass at least every minute, and reports after every item it sends, so
# five silent minutes means it has stopped or is stuck.
