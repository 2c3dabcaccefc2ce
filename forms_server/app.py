"""Wiring only: routes, middleware and start-up. The pieces live in their own modules."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from forms_server.handbook import inline_script_hashes
from forms_server.middleware import CachePolicy, SecurityHeaders
from forms_server.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    site_dir = settings.site_dir
    return Starlette(
        routes=[
            # Last, so the forms' routes (added before it) win: the handbook is everything else.
            Mount("/", app=StaticFiles(directory=site_dir, html=True), name="handbook"),
        ],
        middleware=[
            Middleware(SecurityHeaders, script_hashes=inline_script_hashes(site_dir)),
            Middleware(CachePolicy),
            # A cheap phone on a slow connection: the theme's CSS and JS shrink to a quarter.
            Middleware(GZipMiddleware, minimum_size=1000),
        ],
    )
