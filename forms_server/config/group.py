"""The group's facts, set once under `extra.group` in the handbook's mkdocs.yml, and where that
file and the package's own files are."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from starlette.config import Config

from forms_server.errors import FormsServerError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# In a checkout (and an editable install) the handbook's sources sit beside the package.
PROJECT_ROOT = PACKAGE_DIR.parent
# A wheel carries a copy of them inside the package instead (setup.py puts it there).
PACKAGED_HANDBOOK = PACKAGE_DIR / "handbook_sources"
# Where the handbook is published, read by its build (hooks/group_facts.py) from the environment.
SITE_URL_VARIABLE = "FORMS_SITE_URL"


def is_checkout() -> bool:
    return (PROJECT_ROOT / "mkdocs.yml").is_file() and (PROJECT_ROOT / "docs").is_dir()


def default_handbook_config() -> Path:
    """The group's own mkdocs.yml in the folder the server starts in; else the checkout's,
    or the copy in the installed package (which holds only the embedded example group)."""
    own = Path.cwd() / "mkdocs.yml"
    if own.is_file():
        return own
    return (PROJECT_ROOT if is_checkout() else PACKAGED_HANDBOOK) / "mkdocs.yml"


def default_work_folder() -> Path:
    """Where the built site and the data go unless configured: the checkout, or, for an
    installed package (whose folder may not be writable), the folder the server starts in."""
    return PROJECT_ROOT if is_checkout() else Path.cwd()


class SettingsError(FormsServerError):
    """Settings missing or wrong; each problem says which and how to fix it, so one run of
    `forms-server check` lists them all."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        if len(problems) > 1:
            super().__init__(
                f"{len(problems)} problems with the settings:\n"
                + "\n".join(f"  - {problem}" for problem in problems)
            )
        else:
            super().__init__(*problems)


T = TypeVar("T")
N = TypeVar("N", int, float)


class Problems:
    """Every problem found while reading settings, so one run names them all: each part is
    read on, with a stand-in value, after its problem is noted."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def note(self, problem: str) -> None:
        self.found.append(problem)

    def attempt(self, make: Callable[[], T], fallback: T) -> T:
        try:
            return make()
        except SettingsError as error:
            self.found.extend(error.problems)
            return fallback

    def number(self, config: Config, name: str, cast: Callable[[str], N], default: N) -> N:
        try:
            value: N = config(name, cast=cast, default=default)
        except ValueError:
            self.note(f"{name} must be a number, not {config(name)!r}.")
            return default
        return value

    def raise_any(self) -> None:
        if self.found:
            raise SettingsError(*self.found)


REQUIRED_GROUP_FACTS = ("name", "organisation", "facilitators_email", "crisis_contacts", "exit_url")


class NoDuplicateKeysLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key written twice in one mapping is an error: otherwise the
    last silently wins, and the group decided one thing while the handbook says another."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key!r} is set twice in one section, on line {first_seen[key]} and "
                    f"line {line} (the last would win without a word): keep one",
                    key_node.start_mark,
                )
            first_seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file of settings such as mkdocs.yml, refusing keys written twice."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=NoDuplicateKeysLoader)  # noqa: S506
    if not isinstance(loaded, dict):
        raise yaml.YAMLError(f"{path} does not hold named settings")
    return loaded


def refuse_a_site_name_without_the_group(
    handbook_config: Path, config: Mapping[str, Any], facts: Mapping[str, Any]
) -> None:
    """Every page's title names the group: site_name is its name followed by 'handbook'."""
    expected_title = f"{facts.get('name')} handbook"
    if config.get("site_name") != expected_title:
        raise SettingsError(
            f"{handbook_config}: site_name must be {expected_title!r}, the group's name "
            "(extra.group.name) followed by 'handbook', so every page's title names the group."
        )


def group_facts_from(handbook_config: Path) -> Mapping[str, Any]:
    """The group's facts from the handbook's configuration: one place for both."""
    try:
        config = read_yaml(handbook_config)
        facts = config["extra"]["group"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise SettingsError(
            f"Could not read the group's facts (extra.group) from {handbook_config}: {error}"
        ) from error
    if not isinstance(facts, Mapping):
        raise SettingsError(
            f"{handbook_config}: extra.group must be the group's named facts (name: ..., "
            "organisation: ...), as in the example mkdocs.yml."
        )
    refuse_a_site_name_without_the_group(handbook_config, config, facts)
    missing = [name for name in REQUIRED_GROUP_FACTS if not facts.get(name)]
    if missing:
        raise SettingsError(f"{handbook_config}: extra.group needs {', '.join(missing)}.")
    return dict(facts)


def undelivered_kept_days(group: Mapping[str, Any], handbook_config: Path) -> int:
    value = group.get("undelivered_kept_days", 7)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 90:
        raise SettingsError(
            f"{handbook_config}: extra.group.undelivered_kept_days must be a whole number of "
            "days from 1 to 90."
        )
    return value
