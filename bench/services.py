"""Every part of the server over a bench's own data folder, as `serve` makes them
(forms_server/services.py), with the relay and the changes a bench asks for."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from forms_server.config.env import load_settings
from forms_server.config.mail import MailSettings, SmtpSecurity
from forms_server.services import Services, open_services

KEY = bytes(range(32))


def bench_mail(port: int, **changes: object) -> MailSettings:
    mail = MailSettings(
        host="127.0.0.1",
        port=port,
        security=SmtpSecurity.NONE,
        username=None,
        password=None,
        timeout_seconds=5,
        ca_file=None,
        allow_plaintext=False,
        sender="forms@bench.example",
        facilitators=("f1@bench.example", "f2@bench.example"),
        concerns=("lead@bench.example",),
        facilitator_concerns=("org@bench.example",),
        retry_hours=48,
        escalation=("escalation@bench.example",),
    )
    return replace(mail, **changes)  # type: ignore[arg-type]


def bench_services(
    data_dir: Path,
    mail: MailSettings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    **changes: object,
) -> Services:
    settings = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(data_dir),
            "FORMS_DATA_KEY": base64.urlsafe_b64encode(KEY).decode("ascii"),
            "FORMS_BUILD_HANDBOOK": "false",
        },
    )
    decided = changes.pop("decisions", {})
    if not isinstance(decided, dict):
        raise TypeError("decisions: a dict of the decisions to change")
    settings = replace(settings, mail=mail, decisions=replace(settings.decisions, **decided))
    return open_services(replace(settings, **changes), clock)  # type: ignore[arg-type]
