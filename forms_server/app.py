"""Wiring only: routes, middleware, error handlers and start-up. The pieces live in their own
modules."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from forms_server import views
from forms_server.forms import CONSENT, FieldKind
from forms_server.handbook import guidelines_version, inline_script_hashes, theme_stylesheets
from forms_server.limits import PostLimits
from forms_server.middleware import IncidentPages, StandardHeaders
from forms_server.settings import PROJECT_ROOT, Settings, load_settings
from forms_server.signing import Signer, TokenError
from forms_server.store import SubmissionStore

FORMS_STATIC = PROJECT_ROOT / "forms_server" / "static"


def routes(site_dir_app: StaticFiles) -> list[Route | Mount]:
    return [
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
        Mount("/", app=site_dir_app, name="handbook"),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    site_dir = settings.site_dir
    app = Starlette(
        routes=routes(StaticFiles(directory=site_dir, html=True)),
        middleware=[
            Middleware(IncidentPages),
            Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
            Middleware(StandardHeaders, script_hashes=inline_script_hashes(site_dir)),
            # A cheap phone on a slow connection: the theme's CSS and JS shrink to a quarter.
            Middleware(GZipMiddleware, minimum_size=1000),
        ],
        exception_handlers={HTTPException: views.http_error, TokenError: views.token_problem},
    )
    app.state.forms = views.FormsContext(
        settings=settings,
        templates=views.make_templates(settings, theme_stylesheets(site_dir)),
        signer=Signer([str(key) for key in settings.secret_keys], settings.token_max_age_seconds),
        guidelines_version=guidelines_version(
            settings.handbook_config.parent / "docs",
            [spec.label for spec in CONSENT.fields if spec.kind is FieldKind.AGREE],
        ),
        receiver=SubmissionStore(settings.data_dir, settings.data_key_bytes),
        limits=PostLimits(
            per_client_burst=settings.client_post_burst,
            per_client_per_minute=settings.client_posts_per_minute,
        ),
    )
    return app
