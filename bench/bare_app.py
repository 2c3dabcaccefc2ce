"""The baselines: bare Starlette endpoints, one that parses the same form body and answers 303,
one that answers a GET with a small fixed page."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route


async def answers(request: Request) -> Response:
    fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    return RedirectResponse(f"/done?fields={len(fields)}", status_code=303)


PAGE = "<!doctype html><html lang='en'><title>Bare</title><h1>Bare</h1></html>"


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


app = Starlette(
    routes=[Route("/answers", answers, methods=["POST"]), Route("/page", page, methods=["GET"])]
)


def static() -> Starlette:
    """The baseline for the handbook's pages: Starlette's own StaticFiles over the same built
    site (BENCH_SITE_DIR), with no middleware: every page sent as it is, uncompressed."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    site = os.environ["BENCH_SITE_DIR"]
    return Starlette(routes=[Mount("/", app=StaticFiles(directory=site, html=True))])
