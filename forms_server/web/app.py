"""Wiring only: routes, middleware, error handlers and the lifespan. The pieces live in their
own modules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from forms_server.config.env import PACKAGE_DIR, Settings, SmtpSecurity, load_settings
from forms_server.delivery.member_copy import CopyLimit, member_links
from forms_server.delivery.renewals import RENEW_LINK_DAYS, Renewals, renew_links
from forms_server.delivery.worker import Delivery
from forms_server.forms.definitions import CONSENT, FieldKind
from forms_server.handbook.build import (
    check_built_from,
    inline_script_hashes,
    theme_stylesheets,
)
from forms_server.handbook.guidelines import archive_guidelines
from forms_server.handbook.search import read_index
from forms_server.mail.crypto import load_recipient_keys
from forms_server.rights import Rights
from forms_server.signing import Purpose, Signer, TokenError
from forms_server.storage.acknowledgements import Acknowledgements, acknowledge_links
from forms_server.storage.outbox import Outbox
from forms_server.storage.reading import ReadingRoom, ReadLimit, read_links
from forms_server.storage.records import SubmissionStore
from forms_server.storage.watch import Watch
from forms_server.web import views
from forms_server.web.drafts import Drafts
from forms_server.web.limits import PostLimits
from forms_server.web.middleware import IncidentPages, StandardHeaders

logger = logging.getLogger(__name__)

FORMS_STATIC = PACKAGE_DIR / "static"


def routes(settings: Settings) -> list[Route | Mount]:
    development = (
        []
        if settings.is_production
        else [
            Route("/dev/mail/", views.development_mail, methods=["GET"], name="development_mail"),
        ]
    )
    return [
        Route("/healthz", views.healthz, methods=["GET"]),
        *development,
        Route("/search", views.search_page, methods=["GET"], name="search"),
        Route("/forms/exit", views.quick_exit, methods=["GET"], name="quick_exit"),
        Route("/forms/status/", views.status, methods=["GET", "POST"], name="status"),
        Route("/forms/yours/{token}", views.yours, methods=["GET", "POST"], name="yours"),
        Route("/forms/renew/{token}", views.renew, methods=["GET"], name="renew"),
        Route("/forms/read/{token}", views.read, methods=["GET", "POST"], name="read"),
        Route(
            "/forms/acknowledge/{token}",
            views.acknowledge,
            methods=["GET", "POST"],
            name="acknowledge",
        ),
        # /forms/consent goes to /forms/consent/, as the handbook's own pages do.
        Route("/forms/{kind}", views.add_slash, methods=["GET"]),
        Route("/forms/leave/", views.leave_start, methods=["GET"], name="leave_start"),
        Route("/forms/leave/", views.leave_choice, methods=["POST"], name="leave_choice"),
        Route("/forms/{kind}/", views.form_page, methods=["GET"], name="form_page"),
        Route("/forms/{kind}/", views.form_answers, methods=["POST"], name="form_answers"),
        Route("/forms/{kind}/change", views.form_change, methods=["POST"], name="form_change"),
        Route("/forms/{kind}/confirm", views.form_confirm, methods=["POST"], name="form_confirm"),
        Route(
            "/forms/{kind}/received/{reference}",
            views.received,
            methods=["GET"],
            name="received",
        ),
        Mount("/forms/static", app=StaticFiles(directory=FORMS_STATIC), name="static"),
        # Last, so the forms win: the handbook is everything else, /forms/ (its forms page)
        # included.
        Mount("/", app=StaticFiles(directory=settings.site_dir, html=True), name="handbook"),
    ]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Starts the delivery worker (and, with no relay configured, the embedded mail catcher)."""
    delivery: Delivery = app.state.delivery
    settings: Settings = app.state.forms.settings
    catcher = None
    if settings.mail.host is None:
        from forms_server.mail.catcher import MailCatcher

        catcher = MailCatcher(settings.data_dir / "maildir")
        await asyncio.to_thread(catcher.start)
        app.state.catcher = catcher
        host, port = catcher.address
        delivery.use_relay(host, port, replace(settings.mail, security=SmtpSecurity.NONE))
        logger.info("No relay configured: email is caught at /dev/mail/ (development only)")
    worker = asyncio.create_task(delivery.run(), name="delivery")
    try:
        yield
    finally:
        await delivery.stop()
        try:
            await asyncio.wait_for(worker, timeout=settings.mail.timeout_seconds + 5)
        except TimeoutError:
            logger.warning("The outbox worker did not stop in time; pending mail waits")
        if catcher is not None:
            await asyncio.to_thread(catcher.stop)


def signer_for(settings: Settings) -> Signer:
    """One lifetime per purpose: a check page's hours, an acknowledgement link's days."""
    return Signer(
        [str(key) for key in settings.secret_keys],
        settings.token_max_age_seconds,
        {
            Purpose.ACKNOWLEDGE: settings.acknowledge_link_days * 24 * 60 * 60,
            Purpose.MEMBER_COPY: settings.member_link_days * 24 * 60 * 60,
            Purpose.RENEW: RENEW_LINK_DAYS * 24 * 60 * 60,
            # A read link lives as long as what it shows can (an escalation restarts it).
            Purpose.READ: 2 * settings.decisions.read_window_days * 24 * 60 * 60,
        },
    )


def open_delivery(settings: Settings) -> Delivery:
    """The store, the outbox and delivery over them, as the server and the command line tool
    use them."""
    store = SubmissionStore(
        settings.data_dir, settings.data_keys_bytes, settings.decisions.retention_days
    )
    return Delivery(
        Outbox(settings.data_dir),
        store,
        settings.mail,
        str(settings.group["name"]),
        # A delivered marker refuses replays for as long as any token for its form can live.
        replay_window=timedelta(seconds=settings.token_max_age_seconds * 2),
        limits=settings.health,
        undelivered_kept=timedelta(days=settings.undelivered_kept_days),
        sent_alone_per_hour=settings.digest_after_per_hour,
        digest_every=timedelta(minutes=settings.digest_every_minutes),
        acknowledge_link=acknowledge_links(signer_for(settings), settings.public_url),
        acknowledgements=Acknowledgements(settings.data_dir, settings.decisions.retention_days),
        watch=Watch(settings.data_dir),
        escalate_after={
            kind: timedelta(minutes=minutes)
            for kind, minutes in settings.decisions.escalate_after_minutes.items()
        },
        member_link=member_links(signer_for(settings), settings.public_url),
        copy_limit=CopyLimit(settings.data_dir, store.ledger, settings.member_copies_per_day),
        renewals=Renewals(
            store,
            settings.data_dir,
            settings.decisions.consent_renewal_months,
            settings.decisions.expiring_consents_email_days,
        ),
        renew_link=renew_links(signer_for(settings), settings.public_url),
        reading=ReadingRoom(settings.data_dir, timedelta(days=settings.decisions.read_window_days)),
        read_link=read_links(signer_for(settings), settings.public_url),
        recipient_keys=load_recipient_keys(dict(settings.mail.recipient_key_files)),
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    site_dir = settings.site_dir
    check_built_from(site_dir, settings.group, settings.handbook_config)
    app = Starlette(
        routes=routes(settings),
        middleware=[
            # Outermost, so the incident page and the bad-Host refusal carry them too.
            Middleware(StandardHeaders, script_hashes=inline_script_hashes(site_dir)),
            Middleware(IncidentPages),
            Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
            # A cheap phone on a slow connection: the theme's CSS and JS shrink to a quarter.
            Middleware(GZipMiddleware, minimum_size=1000),
        ],
        exception_handlers={HTTPException: views.http_error, TokenError: views.token_problem},
        lifespan=lifespan,
    )
    delivery = open_delivery(settings)
    app.state.store = delivery.store
    app.state.outbox = delivery.outbox
    app.state.delivery = delivery
    signer = signer_for(settings)
    app.state.forms = views.FormsContext(
        settings=settings,
        templates=views.make_templates(settings, theme_stylesheets(site_dir)),
        signer=signer,
        guidelines=archive_guidelines(
            settings.data_dir,
            settings.handbook_config.parent / "docs",
            [spec.label for spec in CONSENT.fields if spec.kind is FieldKind.AGREE],
        ),
        receiver=delivery,
        limits=PostLimits(
            per_client_burst=settings.client_post_burst,
            per_client_per_minute=settings.client_posts_per_minute,
            global_burst=settings.global_post_burst,
            global_per_minute=settings.global_posts_per_minute,
        ),
        drafts=Drafts(signer),
        acknowledgements=delivery.acknowledgements
        or Acknowledgements(settings.data_dir, settings.decisions.retention_days),
        rights=Rights(delivery.store, settings.data_dir),
        reading=delivery.reading or ReadingRoom(settings.data_dir),
        read_limit=ReadLimit(),
        search_sections=read_index(site_dir),
    )
    return app
