"""Wiring only: routes, middleware, error handlers and the lifespan. The parts come from the
composition root (services.py); the pages live in their own modules, grouped by who uses them.

The handbook never goes dark: if the data folder cannot be used (unreadable, read-only, a
damaged store), the app still serves every handbook page and the help pages; the forms say they
cannot save right now (503, keeping what was typed) and the health check fails, naming why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from forms_server.config.env import Settings, load_settings
from forms_server.config.group import PACKAGE_DIR
from forms_server.config.mail import SmtpSecurity
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import CONSENT, FORMS
from forms_server.forms.fields import FieldKind
from forms_server.handbook.build import check_built_from, inline_script_hashes, theme_stylesheets
from forms_server.handbook.guidelines import archive_guidelines
from forms_server.handbook.search import read_crisis_words, read_index
from forms_server.handbook.sources import guidelines_pages
from forms_server.links import Links
from forms_server.services import Services, open_services, signer_for
from forms_server.signing import TokenError
from forms_server.storage.draft_files import DRAFTS_FOLDER, DraftFiles
from forms_server.storage.files import write_problem
from forms_server.web import (
    conversation,
    errors,
    form_flow,
    member_links,
    navigation,
    operations,
    receipt,
    recipient_links,
)
from forms_server.web.drafts import Drafts
from forms_server.web.handbook_files import PrecompressedFiles
from forms_server.web.limits import PostLimits, ReadLimit
from forms_server.web.middleware import IncidentPages, LoggedTrustedHosts, StandardHeaders
from forms_server.web.pages import FormsContext, FormsUnavailableError, make_templates

logger = logging.getLogger(__name__)

FORMS_STATIC = PACKAGE_DIR / "static"


def routes(settings: Settings) -> list[Route | Mount]:
    development = (
        []
        if settings.is_production
        else [
            Route(
                "/dev/mail/", operations.development_mail, methods=["GET"], name="development_mail"
            ),
        ]
    )
    return [
        Route("/healthz", operations.healthz, methods=["GET"]),
        *development,
        Route("/search", operations.search_page, methods=["GET", "POST"], name="search"),
        Route("/forms/exit", navigation.quick_exit, methods=["GET"], name="quick_exit"),
        Route("/forms/status/", member_links.status, methods=["GET", "POST"], name="status"),
        Route(
            "/forms/conversation/{name}",
            conversation.conversation,
            methods=["GET", "POST"],
            name="conversation",
        ),
        Route("/forms/ask/{token}", recipient_links.ask, methods=["GET", "POST"], name="ask"),
        Route("/forms/yours/{token}", member_links.yours, methods=["GET", "POST"], name="yours"),
        Route("/forms/renew/{token}", member_links.renew, methods=["GET"], name="renew"),
        Route("/forms/read/{token}", recipient_links.read, methods=["GET", "POST"], name="read"),
        Route(
            "/forms/acknowledge/{token}",
            recipient_links.acknowledge,
            methods=["GET", "POST"],
            name="acknowledge",
        ),
        # A draft's pages: the address names neither the form nor the reference.
        Route("/forms/check/{draft}", form_flow.check_page, methods=["GET"], name="check_page"),
        Route("/forms/check/{draft}", form_flow.form_send, methods=["POST"], name="form_send"),
        Route("/forms/received/{draft}", receipt.received, methods=["GET"], name="received"),
        # /forms/consent goes to /forms/consent/, as the handbook's own pages do.
        Route("/forms/{kind}", navigation.add_slash, methods=["GET"]),
        Route("/forms/leave/", navigation.leave_start, methods=["GET"], name="leave_start"),
        Route("/forms/leave/", navigation.leave_choice, methods=["POST"], name="leave_choice"),
        Route("/forms/{kind}/", form_flow.form_page, methods=["GET"], name="form_page"),
        Route("/forms/{kind}/", form_flow.form_answers, methods=["POST"], name="form_answers"),
        # A check page made before drafts were sealed (an upgrade while someone was on it).
        Route("/forms/{kind}/change", form_flow.from_old_check_page, methods=["POST"]),
        Route("/forms/{kind}/confirm", form_flow.from_old_check_page, methods=["POST"]),
        # A receipt's address from before: it names the form and the reference.
        Route("/forms/{kind}/received/{reference}", receipt.received_by_reference),
        Mount("/forms/static", app=StaticFiles(directory=FORMS_STATIC), name="static"),
        # Last, so the forms win: the handbook is everything else, /forms/ (its forms page)
        # included.
        Mount("/", app=PrecompressedFiles(directory=settings.site_dir, html=True), name="handbook"),
    ]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Starts the worker (and, with no relay configured, the embedded mail catcher)."""
    context: FormsContext = app.state.forms
    services = context.services
    if services is None:
        yield  # the handbook alone: nothing to deliver from a folder that cannot be used
        return
    settings = services.settings
    catcher = None
    if settings.mail.host is None:
        from forms_server.mail.catcher import MailCatcher

        catcher = MailCatcher(settings.data_dir / "maildir")
        try:
            await asyncio.to_thread(catcher.start)
        except OSError as error:
            logger.error("The embedded mail catcher could not start (%s)", error.strerror)
            catcher = None
        else:
            app.state.catcher = catcher
            host, port = catcher.address
            services.relay.use(host, port, replace(settings.mail, security=SmtpSecurity.NONE))
            logger.info("No relay configured: email is caught at /dev/mail/ (development only)")
    worker = asyncio.create_task(services.worker.run(), name="worker")
    try:
        yield
    finally:
        await services.worker.stop()
        try:
            await asyncio.wait_for(worker, timeout=settings.mail.timeout_seconds + 5)
        except TimeoutError:
            logger.warning("The worker did not stop in time; what is waiting is sent at start")
        if catcher is not None:
            await asyncio.to_thread(catcher.stop)


def services_or_why(settings: Settings) -> tuple[Services | None, str | None]:
    """The services, or why the data folder cannot be used (then only the handbook serves)."""
    try:
        services = open_services(settings)
    except FormsServerError as error:
        logger.error("The forms cannot be saved: %s", error)
        return None, str(error)
    # Before the worker's first pass: a folder that cannot be written says so at once.
    services.worker.folder_problem = write_problem(services.outbox.folder)
    return services, None


def draft_files_or_none(settings: Settings) -> DraftFiles | None:
    """The drafts folder (never backed up: see storage/draft_files.py), or None if it cannot
    be used; then each form says it cannot be saved and keeps what was typed."""
    try:
        return DraftFiles(
            settings.data_dir / DRAFTS_FOLDER, settings.decisions.draft_idle_minutes * 60
        )
    except OSError as error:
        logger.error("Drafts cannot be kept: the drafts folder (%s)", type(error).__name__)
        return None


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
            Middleware(LoggedTrustedHosts, allowed_hosts=settings.allowed_hosts),
            # A cheap phone on a slow connection: the theme's CSS and JS shrink to a quarter.
            Middleware(GZipMiddleware, minimum_size=1000),
        ],
        exception_handlers={
            HTTPException: errors.http_error,
            TokenError: form_flow.token_problem,
            FormsUnavailableError: errors.forms_unavailable,
        },
        lifespan=lifespan,
    )
    services, why = services_or_why(settings)
    signer = signer_for(settings)
    app.state.services = services
    app.state.forms = FormsContext(
        settings=settings,
        templates=make_templates(settings, theme_stylesheets(site_dir)),
        signer=signer,
        links=Links(signer, settings.public_url),
        guidelines=archive_guidelines(
            settings.data_dir,
            guidelines_pages(settings.handbook_config),
            [spec.label for spec in CONSENT.fields if spec.kind is FieldKind.AGREE],
        ),
        limits=PostLimits(
            per_client_burst=settings.client_post_burst,
            per_client_per_minute=settings.client_posts_per_minute,
            global_burst=settings.global_post_burst,
            global_per_minute=settings.global_posts_per_minute,
        ),
        drafts=Drafts(
            draft_files_or_none(settings),
            FORMS,
            max_age_seconds=settings.token_max_age_seconds,
        ),
        read_limit=ReadLimit(),
        services=services,
        unavailable=why,
        search_sections=read_index(site_dir),
        crisis_words=read_crisis_words(site_dir),
    )
    return app
