"""Settings: the only place that reads `FORMS_*` and `.env`.

Values come from `FORMS_*` environment variables, then a `.env` file in the working folder, then
the embedded defaults below, which are enough to run everything on one machine with no setup.
Bad values stop start-up with a message that names the variable and says how to fix it. The
group's facts are config/group.py's; the relay and the routes, config/mail.py's and
config/recipients.py's.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.config import Config
from starlette.datastructures import Secret

from forms_server.config.addresses import (
    allowed_hosts_from,
    forms_url_reaches,
    handbook_url_reaches,
    public_url_from,
    site_url_from,
)
from forms_server.config.decisions import Decisions, DecisionsError, decisions_from
from forms_server.config.group import (
    N,
    Problems,
    SettingsError,
    default_handbook_config,
    default_work_folder,
    group_facts_from,
    undelivered_kept_days,
)
from forms_server.config.keys import backup_recipients_from, data_keys_from, secret_keys_from
from forms_server.config.mail import MailSettings, mail_settings_from

ENVIRONMENTS = ("development", "production")


@dataclass(frozen=True)
class HealthLimits:
    """When `/healthz` and `forms-server outbox` stop saying all is well."""

    # An urgent form (someone may be at risk) still unsent after this long.
    urgent_waiting_seconds: float
    # Any form still unsent after this long.
    waiting_seconds: float
    # The delivery worker has not finished a pass (or an item) for this long.
    worker_silent_seconds: float


@dataclass(frozen=True)
class Settings:
    environment: str
    host: str
    port: int
    handbook_config: Path
    site_dir: Path
    build_handbook_on_start: bool
    data_dir: Path
    # Oldest first: the last one signs, all of them verify (see signing.py).
    secret_keys: tuple[Secret, ...]
    token_max_age_seconds: int
    # A confirm sooner than this after the check page was made is shown the page again.
    min_confirm_seconds: float
    # Form posts one client may make at once, and how fast that allowance comes back.
    client_post_burst: int
    client_posts_per_minute: float
    # The same for everyone together: a ceiling on a flood from many addresses.
    global_post_burst: int
    global_posts_per_minute: float
    # 32 bytes each for AES-GCM, oldest first: the last seals, all open (rotation).
    data_keys: tuple[Secret, ...]
    # Where the handbook lives, for links from the forms' pages ("/" when served together).
    handbook_url: str
    # Host names this server answers to; any other Host header is refused.
    allowed_hosts: tuple[str, ...]
    mail: MailSettings
    health: HealthLimits
    # A form that could not be delivered keeps its content this long (for a retry once the
    # relay is fixed), then only a content-free failure record stays. A group decision: the
    # privacy notice says it, from `extra.group.undelivered_kept_days`.
    undelivered_kept_days: int
    # The group's facts, set once under `extra.group` in the handbook's mkdocs.yml.
    group: Mapping[str, Any]
    # The group's decisions, under `extra.group.decisions` (see decisions.py).
    decisions: Decisions
    # Past this many messages to one address in an hour, the next forms for it come together
    # in one digest email at most every `digest_every_minutes`: a flood cannot bury an inbox.
    digest_after_per_hour: int = 30
    digest_every_minutes: float = 5.0
    # Urgent forms go to each address on their own up to this many an hour; past it, in
    # urgent-only digests every minute, so a flood marked urgent cannot bury the real one.
    urgent_alone_per_hour: int = 20
    # With this token (Authorization: Bearer ...), /healthz gives its details to anyone;
    # without it, only to a request from this machine. Everyone else gets ok or failing.
    health_token: Secret | None = None
    # How long a recipient's "mark as being dealt with" link works.
    acknowledge_link_days: int = 14
    # How long a member's own link (from their copy) works, and how many copies one address
    # may get in a day (so the form cannot fill someone's inbox).
    member_link_days: int = 90
    member_copies_per_day: int = 3
    # Where members and recipients reach this server, for links in emails.
    public_url: str = "http://127.0.0.1:8000"
    # Where the handbook is published (its canonical links, the sitemap): FORMS_SITE_URL, from
    # .env too when the server builds it, else the public address.
    site_url: str = "http://127.0.0.1:8000/"
    # Backups: the age public keys they are encrypted to (the secret key is kept apart), where
    # they are written, and the erasure ledger's copy outside the data folder.
    backup_recipients: tuple[str, ...] = ()
    backup_dir: Path | None = None
    erasure_ledger_copy: Path | None = None

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def data_keys_bytes(self) -> list[bytes]:
        return [base64.urlsafe_b64decode(str(key).encode("ascii")) for key in self.data_keys]


WORKER_SILENT_SECONDS = 5 * 60.0


def optional_path(config: Config, name: str) -> Path | None:
    value = config(name, default="").strip()
    return Path(value) if value else None


def load_settings(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    make_development_keys: bool = True,
) -> Settings:
    """`environ` replaces the process environment (tests use it); None means os.environ.
    Without `make_development_keys`, development keys are read if there and never made: a
    command that only reads (check, find) leaves nothing behind in the wrong folder."""
    config = Config(
        env_file if env_file is not None and env_file.is_file() else None,
        environ=os.environ if environ is None else environ,
    )
    environment = config("FORMS_ENV", default="development")
    if environment not in ENVIRONMENTS:
        # Every other check depends on which environment this is: nothing more to say yet.
        raise SettingsError(
            f"FORMS_ENV must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}."
        )
    problems = Problems()

    def number(name: str, cast: Callable[[str], N], default: N) -> N:
        return problems.number(config, name, cast, default)

    port = number("FORMS_PORT", int, 8000)
    build = problems.attempt(lambda: config("FORMS_BUILD_HANDBOOK", cast=bool, default=True), True)
    token_max_age = number("FORMS_TOKEN_MAX_AGE_SECONDS", int, 2 * 60 * 60)
    min_confirm = number("FORMS_MIN_CONFIRM_SECONDS", float, 2.0)
    client_burst = number("FORMS_CLIENT_POST_BURST", int, 20)
    client_rate = number("FORMS_CLIENT_POSTS_PER_MINUTE", float, 6.0)
    global_burst = number("FORMS_GLOBAL_POST_BURST", int, 200)
    global_rate = number("FORMS_GLOBAL_POSTS_PER_MINUTE", float, 120.0)
    urgent_minutes = number("FORMS_ALERT_URGENT_AFTER_MINUTES", float, 5.0)
    waiting_minutes = number("FORMS_ALERT_WAITING_AFTER_MINUTES", float, 60.0)
    digest_after = number("FORMS_DIGEST_AFTER_PER_HOUR", int, 30)
    digest_every = number("FORMS_DIGEST_EVERY_MINUTES", float, 5.0)
    urgent_alone = number("FORMS_URGENT_ALONE_PER_HOUR", int, 20)
    acknowledge_days = number("FORMS_ACKNOWLEDGE_LINK_DAYS", int, 14)
    member_link_days = number("FORMS_MEMBER_LINK_DAYS", int, 90)
    copies_per_day = number("FORMS_MEMBER_COPIES_PER_DAY", int, 3)
    if not 0 < port < 65536:
        problems.note(f"FORMS_PORT must be between 1 and 65535, not {port}.")
    if min(client_burst, global_burst) < 1 or min(client_rate, global_rate) <= 0:
        problems.note(
            "FORMS_CLIENT_POST_BURST and FORMS_GLOBAL_POST_BURST must be at least 1, and the "
            "posts per minute above 0."
        )
    if not 0 <= min_confirm <= 60:
        problems.note("FORMS_MIN_CONFIRM_SECONDS must be between 0 and 60.")
    if not 0 < urgent_minutes <= waiting_minutes:
        problems.note(
            "FORMS_ALERT_URGENT_AFTER_MINUTES must be above 0 and no more than "
            "FORMS_ALERT_WAITING_AFTER_MINUTES."
        )
    if digest_after < 1 or not 0 < digest_every <= 60:
        problems.note(
            "FORMS_DIGEST_AFTER_PER_HOUR must be at least 1, and FORMS_DIGEST_EVERY_MINUTES "
            "above 0 and at most 60."
        )
    if not 1 <= urgent_alone <= 1000:
        problems.note("FORMS_URGENT_ALONE_PER_HOUR must be from 1 to 1000.")
    health_token = Secret(config("FORMS_HEALTH_TOKEN", default=""))
    if str(health_token) and len(str(health_token)) < 16:
        problems.note(
            "FORMS_HEALTH_TOKEN must be at least 16 characters (or unset: then only this "
            "machine sees the health check's details)."
        )
    if not 1 <= acknowledge_days <= 90:
        problems.note("FORMS_ACKNOWLEDGE_LINK_DAYS must be from 1 to 90.")
    if not 1 <= member_link_days <= 366:
        problems.note("FORMS_MEMBER_LINK_DAYS must be from 1 to 366.")
    if not 1 <= copies_per_day <= 20:
        problems.note("FORMS_MEMBER_COPIES_PER_DAY must be from 1 to 20.")
    if not 60 <= token_max_age <= 24 * 60 * 60:
        problems.note("FORMS_TOKEN_MAX_AGE_SECONDS must be between 60 and 86400.")
    data_dir = Path(config("FORMS_DATA_DIR", default=str(default_work_folder() / "data")))
    # Development keys are made in the data folder on first run: never while anything is
    # wrong, so a first check in the wrong mode leaves nothing behind.
    no_keys: tuple[Secret, ...] = ()
    no_hosts: tuple[str, ...] = ()
    secret_keys = problems.attempt(
        lambda: secret_keys_from(config, environment, data_dir, make=False), no_keys
    )
    data_keys = problems.attempt(
        lambda: data_keys_from(config, environment, data_dir, make=False), no_keys
    )
    public_url = problems.attempt(lambda: public_url_from(config, environment, port), "")
    allowed_hosts = problems.attempt(
        lambda: allowed_hosts_from(config, environment, public_url), no_hosts
    )
    handbook_config = Path(config("FORMS_HANDBOOK_CONFIG", default=str(default_handbook_config())))
    site_url = problems.attempt(lambda: site_url_from(config, public_url), "")
    handbook_url = config("FORMS_HANDBOOK_URL", default="/")
    if environment == "production":
        problems.attempt(lambda: handbook_url_reaches(handbook_url, site_url), None)
    no_recipients: tuple[str, ...] = ()
    backup_recipients = problems.attempt(lambda: backup_recipients_from(config), no_recipients)
    backup_dir = optional_path(config, "FORMS_BACKUP_DIR")
    erasure_copy = optional_path(config, "FORMS_ERASURE_LEDGER_COPY")
    if erasure_copy is not None and erasure_copy.resolve().is_relative_to(data_dir.resolve()):
        problems.note(
            f"FORMS_ERASURE_LEDGER_COPY ({erasure_copy}) is inside the data folder: it must be "
            "somewhere else, on other storage, so an erasure survives the loss of the disk."
        )
    group: Mapping[str, Any] = {}
    if not handbook_config.is_file():
        problems.note(f"FORMS_HANDBOOK_CONFIG points to {handbook_config}, which does not exist.")
    else:
        group = problems.attempt(lambda: group_facts_from(handbook_config), {})
    decisions = mail = kept_days = None
    if group:
        try:
            decisions = decisions_from(group)
        except DecisionsError as error:
            problems.note(f"{handbook_config}: {error}")
        kept_days = problems.attempt(lambda: undelivered_kept_days(group, handbook_config), None)
        if environment == "production" and public_url:
            problems.attempt(lambda: forms_url_reaches(group, public_url, handbook_config), None)
    if decisions is not None:
        mail = problems.attempt(
            lambda: mail_settings_from(config, environment, group, decisions), None
        )
    problems.raise_any()
    if decisions is None or mail is None or kept_days is None:
        raise SettingsError("The group's facts in mkdocs.yml could not be read.")
    if not secret_keys and make_development_keys:
        secret_keys = secret_keys_from(config, environment, data_dir, make=True)
    if not data_keys and make_development_keys:
        data_keys = data_keys_from(config, environment, data_dir, make=True)
    return Settings(
        environment=environment,
        host=config("FORMS_HOST", default="127.0.0.1"),
        port=port,
        handbook_config=handbook_config,
        site_dir=Path(config("FORMS_SITE_DIR", default=str(default_work_folder() / "site"))),
        build_handbook_on_start=build,
        data_dir=data_dir,
        secret_keys=secret_keys,
        token_max_age_seconds=token_max_age,
        min_confirm_seconds=min_confirm,
        client_post_burst=client_burst,
        client_posts_per_minute=client_rate,
        global_post_burst=global_burst,
        global_posts_per_minute=global_rate,
        data_keys=data_keys,
        handbook_url=handbook_url,
        allowed_hosts=allowed_hosts,
        group=group,
        decisions=decisions,
        mail=mail,
        health=HealthLimits(
            urgent_waiting_seconds=urgent_minutes * 60,
            waiting_seconds=waiting_minutes * 60,
            worker_silent_seconds=WORKER_SILENT_SECONDS,
        ),
        undelivered_kept_days=kept_days,
        digest_after_per_hour=digest_after,
        digest_every_minutes=digest_every,
        urgent_alone_per_hour=urgent_alone,
        health_token=health_token if str(health_token) else None,
        acknowledge_link_days=acknowledge_days,
        member_link_days=member_link_days,
        member_copies_per_day=copies_per_day,
        public_url=public_url,
        site_url=site_url,
        backup_recipients=backup_recipients,
        backup_dir=backup_dir,
        erasure_ledger_copy=erasure_copy,
    )
