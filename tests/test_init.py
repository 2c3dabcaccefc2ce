"""`forms-server init FOLDER`: a deployment folder holding only what the group owns (its
mkdocs.yml, the pages it chose to change, .env with fresh keys, the data folder and the
deployment files); every other page comes from the installed package."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from forms_server.config.env import load_settings
from forms_server.config.group import PROJECT_ROOT, SettingsError
from forms_server.handbook.build import build_handbook
from forms_server.handbook.sources import guidelines_pages
from tests.decided import DECIDED
from tests.test_cli import forms_server

# Nothing but the folder's own .env: no FORMS_* from the machine running the tests.
ONLY_PATH = {"PATH": os.environ["PATH"]}


def init(tmp_path: Path, *arguments: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path / "our-group"
    return folder, forms_server(tmp_path, ONLY_PATH, "init", str(folder), *arguments)


def settle(folder: Path) -> None:
    """What the coordinator does next: the group's decisions in mkdocs.yml, the relay and the
    public address in .env."""
    config = folder / "mkdocs.yml"
    text = config.read_text("utf-8")
    start, end = text.index("    decisions:\n"), text.index("    regulator_name:")
    block = yaml.safe_dump({"decisions": DECIDED}, sort_keys=False, allow_unicode=True)
    decided = "".join(f"    {line}\n" for line in block.splitlines())
    config.write_text(text[:start] + decided + text[end:], "utf-8")
    env = (folder / ".env").read_text("utf-8")
    for name, value in {
        "FORMS_PUBLIC_URL": "https://forms.example.org",
        "FORMS_SMTP_HOST": "smtp.example.org",
        "FORMS_MAIL_FROM": "forms@example.org",
        "FORMS_SAFEGUARDING": "lead@example.org,deputy@example.org",
    }.items():
        env = env.replace(f"{name}=\n", f"{name}={value}\n")
    (folder / ".env").write_text(env, "utf-8")


def test_init_makes_a_folder_of_what_the_group_owns_and_says_what_next(tmp_path: Path) -> None:
    folder, done = init(tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [
            ".env",
            "mkdocs.yml",
            "data",
            "forms-server.service",
            "forms-server-build.service",
            "Caddyfile",
        ]
    )
    assert stat.S_IMODE((folder / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "data").stat().st_mode) == 0o700
    assert not (folder / "docs").exists()  # every page comes from the package
    # The next steps, numbered, each one thing to do.
    steps = [line for line in done.stdout.splitlines() if line[:2].strip().rstrip(".").isdigit()]
    assert 4 <= len(steps) <= 8, done.stdout
    # The fresh keys load; what is left is what only the coordinator knows, all in one run.
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file=folder / ".env", environ={})
    problems = "\n".join(refused.value.problems)
    assert "FORMS_SECRET_KEYS" not in problems
    assert "FORMS_DATA_KEY" not in problems
    assert "FORMS_PUBLIC_URL is not set" in problems
    assert "FORMS_SMTP_HOST is not set" in problems


def test_init_never_overwrites_anything(tmp_path: Path) -> None:
    folder, _ = init(tmp_path)
    (folder / "mkdocs.yml").write_text(
        (folder / "mkdocs.yml").read_text("utf-8") + "# ours\n", "utf-8"
    )
    keys = (folder / ".env").read_text("utf-8")
    _, again = init(tmp_path)
    assert again.returncode == 0, again.stderr
    assert (folder / "mkdocs.yml").read_text("utf-8").endswith("# ours\n")
    assert (folder / ".env").read_text("utf-8") == keys
    assert "kept" in again.stdout


def test_init_page_copies_one_page_to_change_and_refuses_one_that_does_not_exist(
    tmp_path: Path,
) -> None:
    folder, _ = init(tmp_path)
    _, copied = init(tmp_path, "--page", "guidelines/taking-part.md")
    assert copied.returncode == 0, copied.stderr
    own = folder / "docs" / "guidelines" / "taking-part.md"
    assert own.read_bytes() == (PROJECT_ROOT / "docs/guidelines/taking-part.md").read_bytes()
    _, refused = init(tmp_path, "--page", "guidelines/taking-parts.md")
    assert refused.returncode == 2
    assert "guidelines/taking-part.md" in refused.stderr  # the page it may have meant


def test_the_handbook_builds_from_the_groups_folder_with_its_own_page(tmp_path: Path) -> None:
    folder, _ = init(tmp_path, "--page", "guidelines/taking-part.md")
    settle(folder)
    own = folder / "docs" / "guidelines" / "taking-part.md"
    own.write_text(own.read_text("utf-8") + "\nOur own sentence, wording Z9.\n", "utf-8")
    settings = load_settings(env_file=folder / ".env", environ={})
    assert settings.handbook_config == folder / "mkdocs.yml"
    build_handbook(settings.handbook_config, settings.site_dir, settings.site_url)
    built = (settings.site_dir / "guidelines" / "taking-part" / "index.html").read_text("utf-8")
    assert "Our own sentence, wording Z9." in built
    assert (settings.site_dir / "help" / "get-help-now" / "index.html").is_file()  # packaged
    # The version a member agrees to is the group's own page, not the packaged one.
    pages = guidelines_pages(settings.handbook_config)
    assert own in pages
    assert PROJECT_ROOT / "docs" / "guidelines" / "taking-part.md" not in pages


def test_check_lists_decisions_an_upgrade_added(tmp_path: Path) -> None:
    folder, _ = init(tmp_path)
    settle(folder)
    config = folder / "mkdocs.yml"
    lines = config.read_text("utf-8").splitlines(keepends=True)
    config.write_text("".join(line for line in lines if "draft_idle_minutes" not in line), "utf-8")
    done = forms_server(folder, ONLY_PATH, "check")
    assert "draft_idle_minutes" in done.stdout
    assert "new since your mkdocs.yml was written: 1" in done.stdout
