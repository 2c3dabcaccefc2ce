"""`forms-server serve`: build the handbook and serve it with the forms."""

from __future__ import annotations

import logging
import socket

import uvicorn

from forms_server.config.env import Settings
from forms_server.errors import FormsServerError
from forms_server.handbook.build import build_handbook
from forms_server.web.app import create_app

logger = logging.getLogger("forms_server")


class PortInUseError(FormsServerError):
    """The port the server should listen on is taken; the message names FORMS_PORT."""


def refuse_a_taken_port(host: str, port: int) -> None:
    """Before anything starts: uvicorn's own "address already in use" names no setting."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(
                f"Port {port} on {host} is already in use ({error.strerror}): another server, "
                "perhaps an earlier `make run`, is listening there. Stop it, or set FORMS_PORT "
                f"to a free port, for example FORMS_PORT={port + 1}."
            ) from error


def serve(settings: Settings) -> int:
    refuse_a_taken_port(settings.host, settings.port)
    if settings.build_handbook_on_start:
        build_handbook(settings.handbook_config, settings.site_dir, settings.site_url)
    app = create_app(settings)
    logger.info("Serving at http://%s:%d", settings.host, settings.port)
    # No access log: it would record members' addresses and the pages they read.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        server_header=False,
        log_level="info",
    )
    return 0
