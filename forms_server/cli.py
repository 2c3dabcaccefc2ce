"""The command line tool for whoever hosts the group: `forms-server serve`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn

from forms_server.app import create_app
from forms_server.handbook import HandbookBuildError, build_handbook
from forms_server.settings import SettingsError, load_settings

logger = logging.getLogger("forms_server")


def serve() -> int:
    settings = load_settings()
    if settings.build_handbook_on_start:
        build_handbook(settings.handbook_config, settings.site_dir)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forms-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="build the handbook and serve it with the forms")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.command == "serve":
            return serve()
    except (SettingsError, HandbookBuildError) as error:
        logger.error("%s", error)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
