"""The one composition root: every part of the server, made from the settings, once.

`forms-server serve` (through web/app.py) and every command build the same parts here, so the
server and the command line can never disagree about where a file is, what a link holds or how
a form is delivered. Nothing here decides anything; it only connects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forms_server.config.env import Settings
from forms_server.delivery.answers import AnswersJob
from forms_server.delivery.composer import Composer
from forms_server.delivery.digests import Digests, SendLog
from forms_server.delivery.escalation import Escalation
from forms_server.delivery.housekeeping import Housekeeping
from forms_server.delivery.intake import Intake
from forms_server.delivery.member_copy import CopyLimit
from forms_server.delivery.notices import NoticesJob
from forms_server.delivery.read_windows import ReadWindows
from forms_server.delivery.renewals import Renewals, RenewalsJob
from forms_server.delivery.runner import Runner
from forms_server.delivery.sending import Sending
from forms_server.delivery.worker import Jobs, Worker
from forms_server.errors import FormsServerError
from forms_server.lifecycle import FloodLimits
from forms_server.links import RENEW_LINK_DAYS, Links
from forms_server.mail.crypto import load_recipient_keys
from forms_server.mail.relay import Relay
from forms_server.rights import Rights
from forms_server.signing import Purpose, Signer
from forms_server.storage.form_files import FormFiles
from forms_server.storage.outbox import Outbox
from forms_server.storage.records import SubmissionStore

Clock = Callable[[], datetime]
DAY = 24 * 60 * 60


class DataFolderError(FormsServerError):
    """The data folder cannot be used at all; the message says what is wrong with it."""


def signer_for(settings: Settings) -> Signer:
    return Signer(
        [str(key) for key in settings.secret_keys],
        settings.token_max_age_seconds,
        link_lifetimes(settings),
    )


def link_lifetimes(settings: Settings) -> dict[Purpose, int]:
    """One lifetime per purpose: a check page's hours, an acknowledgement link's days."""
    return dict.fromkeys(Purpose, settings.token_max_age_seconds) | {
        Purpose.ACKNOWLEDGE: settings.acknowledge_link_days * DAY,
        Purpose.MEMBER_COPY: settings.member_link_days * DAY,
        Purpose.RENEW: RENEW_LINK_DAYS * DAY,
        # A read link lives as long as what it shows can (an escalation restarts it).
        Purpose.READ: 2 * settings.decisions.read_window_days * DAY,
        # Each message from the member comes with fresh ones, so the group can go on asking.
        Purpose.ASK: settings.acknowledge_link_days * DAY,
    }


@dataclass(frozen=True)
class Services:
    settings: Settings
    signer: Signer
    links: Links
    store: SubmissionStore
    files: FormFiles
    relay: Relay
    composer: Composer
    worker: Worker
    housekeeping: Housekeeping
    rights: Rights

    @property
    def outbox(self) -> Outbox:
        return self.files.outbox


def open_services(settings: Settings, clock: Clock = lambda: datetime.now(UTC)) -> Services:
    """Every part, over the data folder. A folder that cannot be used raises a
    FormsServerError saying why (the web app then serves the handbook without the forms)."""
    try:
        return assemble(settings, clock)
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise DataFolderError(
            f"The data folder {settings.data_dir} cannot be used: {error.strerror or error}"
            f"{where}. Check that it is a folder this user can write, as the README describes."
        ) from error


def assemble(settings: Settings, clock: Clock) -> Services:
    decisions = settings.decisions
    data_dir = settings.data_dir
    store = SubmissionStore(
        data_dir,
        settings.data_keys_bytes,
        decisions.retention_days,
        clock,
        erasures_copy=settings.erasure_ledger_copy,
    )
    outbox = Outbox(data_dir)
    escalate_after = {
        kind: timedelta(minutes=minutes)
        for kind, minutes in decisions.escalate_after_minutes.items()
    }
    read_window = timedelta(days=decisions.read_window_days)
    files = FormFiles(data_dir, store, outbox, escalate_after, read_window, clock)
    files.conversation_kept = timedelta(days=decisions.conversation_kept_days)
    signer = signer_for(settings)
    links = Links(signer, settings.public_url)
    relay = Relay(settings.mail)
    composer = Composer(
        relay,
        str(settings.group["name"]),
        links,
        files.reading,
        store.sealer,
        load_recipient_keys(dict(settings.mail.recipient_key_files)),
        clock,
    )
    limits = FloodLimits(settings.digest_after_per_hour, settings.urgent_alone_per_hour)
    send_log = SendLog()
    digests = Digests(
        relay, limits, timedelta(minutes=settings.digest_every_minutes), send_log, composer.digest
    )
    retry_window = timedelta(hours=settings.mail.retry_hours)
    sending = Sending(
        files,
        store,
        composer,
        relay,
        digests,
        send_log,
        limits,
        (retry_window, timedelta(days=settings.undelivered_kept_days)),
    )
    escalation = Escalation(files, composer, relay, digests, send_log, limits, retry_window)
    digests.carriers = {False: sending, True: escalation}
    # A delivered marker refuses replays for as long as any token for its form can live.
    housekeeping = Housekeeping(files, timedelta(seconds=settings.token_max_age_seconds * 2))
    renewals = Renewals(
        store, data_dir, decisions.consent_renewal_months, decisions.expiring_consents_email_days
    )
    # Not in outbox/, whose own *.json files are the first version's forms.
    runner = Runner(data_dir / "jobs.json", clock)
    jobs = Jobs(
        sending,
        escalation,
        digests,
        AnswersJob(
            files.conversations, composer, relay, retry_window, settings.acknowledge_link_days
        ),
        NoticesJob(files.notices, composer, relay),
        (
            RenewalsJob(renewals, files.notices, composer, relay),
            ReadWindows(files),
            housekeeping,
        ),
    )
    copy_limit = CopyLimit(data_dir, store.ledger, settings.member_copies_per_day)
    intake = Intake(outbox, store.sealer, composer, copy_limit, sending, lambda _: None)
    worker = Worker(files, runner, intake, jobs, settings.health)
    intake.woken = worker.woken
    return Services(
        settings=settings,
        signer=signer,
        links=links,
        store=store,
        files=files,
        relay=relay,
        composer=composer,
        worker=worker,
        housekeeping=housekeeping,
        rights=Rights(files, data_dir),
    )
