"""The deployment files `forms-server init` writes: a hardened systemd service with its own
build step, and a Caddyfile.

What these tests cannot show here: PID 1 in this sandbox is not systemd, so the units are
checked statically (`systemd-analyze verify` parses every key and finds every program), never
started; the sandbox that `ProtectSystem=strict` and the rest build is systemd's to enforce.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import required_tool

UNITS = ("forms-server.service", "forms-server-build.service")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deployment") / "our-group"
    subprocess.run(
        [sys.executable, "-m", "forms_server.cli.main", "init", str(folder)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


def verify(folder: Path, *units: str) -> subprocess.CompletedProcess[str]:
    analyze = required_tool("systemd-analyze", "systemd")
    return subprocess.run(
        [str(analyze), "verify", *(f"./{unit}" for unit in units)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_service_units_are_valid_to_systemd(deployment: Path) -> None:
    checked = verify(deployment, *UNITS)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout + checked.stderr == ""
    # The check can fail: a misspelt key is named.
    unit = (deployment / "forms-server.service").read_text("utf-8")
    (deployment / "misspelt.service").write_text(
        unit.replace("ProtectSystem=", "ProtectSystm="), "utf-8"
    )
    misspelt = verify(deployment, "misspelt.service", "forms-server-build.service")
    assert "Unknown key 'ProtectSystm'" in misspelt.stderr


def settings_of(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text("utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_server_runs_unprivileged_and_may_write_only_its_data_folder(
    deployment: Path,
) -> None:
    server = settings_of(deployment / "forms-server.service")
    build = settings_of(deployment / "forms-server-build.service")
    for unit in (server, build):
        assert unit["User"] == ["forms-server"]
        assert unit["EnvironmentFile"] == [f"{deployment}/.env"]
        assert unit["WorkingDirectory"] == [str(deployment)]
        assert unit["ProtectSystem"] == ["strict"]
        assert unit["NoNewPrivileges"] == ["yes"]
        assert unit["CapabilityBoundingSet"] == [""]
    assert server["ReadWritePaths"] == [f"{deployment}/data"]
    assert server["ExecStart"][0].endswith("forms-server serve")
    assert server["Environment"] == ["FORMS_BUILD_HANDBOOK=false"]
    # The build is its own step, writing only the site, with no network at all.
    assert build["ReadWritePaths"] == [f"{deployment}/site"]
    assert build["ExecStart"][0].endswith("forms-server build")
    assert build["PrivateNetwork"] == ["yes"]
    assert server["Requires"] == server["After"][0].split()[1:] == ["forms-server-build.service"]
