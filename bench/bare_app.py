"""The baseline: a bare Starlette endpoint that parses the same form body and answers 303."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route


async def answers(request: Request) -> Response:
    fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    return RedirectResponse(f"/done?fields={len(fields)}", status_code=303)


app = Starlette(routes=[Route("/answers", answers, methods=["POST"])])
