"""A package that deploys: the wheel, installed into a fresh virtual environment away from any
checkout, builds and serves the handbook and the forms from what it carries."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from forms_server.config.group import PROJECT_ROOT
from tests.conftest import free_port

pytestmark = pytest.mark.slow

PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]


def get(url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    """Status and text, as a member's browser would get them (an error status is an answer);
    with `form`, posted as the page's form would post it."""
    body = None if form is None else urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, body, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, str(PROJECT_ROOT), "--wheel-dir", str(folder)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [built] = folder.glob("*.whl")
    return built


def test_the_wheel_carries_the_handbook_the_templates_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "forms_server/templates/form.html",
        "forms_server/static/forms.css",
        "forms_server/handbook_sources/mkdocs.yml",
        "forms_server/handbook_sources/docs/index.md",
        "forms_server/handbook_sources/overrides/partials/quick-exit.html",
        "forms_server/handbook_sources/includes/abbreviations.md",
        "forms_server/handbook_sources/hooks/group_facts.py",
    ]:
        assert needed in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert not [name for name in names if "__pycache__" in name]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; its dependencies come from this test run's
    environment through a .pth file (the installing is what is tested, not PyPI)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Only site folders run .pth files, so this checkout's editable install stays invisible.
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    environ = {name: value for name, value in os.environ.items() if not name.startswith("FORMS_")}
    log = folder / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(installed / "bin" / "forms-server"), "serve"],
            cwd=folder,
            env={**environ, "FORMS_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get(url + "/healthz")[0] < 500:
                    break
            except OSError:
                pass  # not listening yet
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait(timeout=30)
                pytest.fail(f"the installed server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, folder
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_installed_server_serves_the_handbook_and_a_form(served: tuple[str, Path]) -> None:
    url, folder = served
    status, home = get(url + "/")
    assert status == 200
    assert "Harbour Peer Support" in home
    status, form = get(url + "/forms/consent/")
    assert status == 200
    assert '<form method="post"' in form
    assert 'name="agree_guidelines"' in form
    assert get(url + "/forms/static/forms.css")[0] == 200
    assert 'href="/joining/faq/#do-i-need-my-camera-on"' in get(url + "/search", {"q": "camera"})[1]
    # It built the handbook and keeps its data where it was started, not in this checkout.
    assert (folder / "site" / "index.html").is_file()
    assert (folder / "data").is_dir()


def test_the_coordinators_path_from_the_installed_wheel(
    installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """From an empty folder with only the wheel: init, the group's decisions and the addresses,
    check (every problem in one run, then none), build. The pages come from the package."""
    from tests.test_init import settle  # the coordinator's edits

    where = tmp_path_factory.mktemp("empty")
    forms_server = str(installed / "bin" / "forms-server")
    environ = {"PATH": os.environ["PATH"]}

    def run(*arguments: str, cwd: Path = where) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [forms_server, *arguments],
            cwd=cwd,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    made = run("init", "our-group")
    assert made.returncode == 0, made.stderr
    folder = where / "our-group"
    first = run("check", cwd=folder)
    assert first.returncode == 2
    assert "problems with the settings" in first.stderr  # all of them, in one run
    settle(folder)
    second = run("check", cwd=folder)
    assert "Configuration: valid (production)" in second.stdout, second.stderr
    assert f"{folder / 'mkdocs.yml'}" in second.stderr.splitlines()[0]  # the group's own
    built = run("build", cwd=folder)
    assert built.returncode == 0, built.stderr
    assert (folder / "site" / "guidelines" / "taking-part" / "index.html").is_file()
    assert (folder / "site" / "index.html.br").is_file()
    assert not (folder / "docs").exists()
