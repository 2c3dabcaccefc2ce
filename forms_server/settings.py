"""Settings: the only place that reads the environment.

Values come from `FORMS_*` environment variables, then a `.env` file in the working folder, then
the embedded defaults below, which are enough to run everything on one machine with no setup.
Bad values stop start-up with a message that names the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    handbook_config: Path
    site_dir: Path
    build_handbook_on_start: bool


def load_settings(env_file: Path | None = Path(".env")) -> Settings:
    config = Config(env_file if env_file is not None and env_file.is_file() else None)
    try:
        port = config("FORMS_PORT", cast=int, default=8000)
        build = config("FORMS_BUILD_HANDBOOK", cast=bool, default=True)
    except ValueError as error:
        raise SettingsError(str(error)) from error
    if not 0 < port < 65536:
        raise SettingsError(f"FORMS_PORT must be between 1 and 65535, not {port}.")
    handbook_config = Path(
        config("FORMS_HANDBOOK_CONFIG", default=str(PROJECT_ROOT / "mkdocs.yml"))
    )
    if build and not handbook_config.is_file():
        raise SettingsError(
            f"FORMS_HANDBOOK_CONFIG points to {handbook_config}, which does not exist."
        )
    return Settings(
        host=config("FORMS_HOST", default="127.0.0.1"),
        port=port,
        handbook_config=handbook_config,
        site_dir=Path(config("FORMS_SITE_DIR", default=str(PROJECT_ROOT / "site"))),
        build_handbook_on_start=build,
    )
