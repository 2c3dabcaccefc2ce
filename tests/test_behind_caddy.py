"""The coordinator's path, end to end: `forms-server init`, the group's decisions in its
mkdocs.yml, the relay and the public address in .env, `build`, `serve`, and Debian's Caddy in
front with the Caddyfile init wrote, over TLS from Caddy's internal CA. A member's concern goes
through Caddy, and the links in the email use the public address.

The client runs from 127.0.0.2 (loopback, but not the server's address), so a client address
in Caddy's output can be told apart from Caddy's own connections to the server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forms_server.forms.definitions import FORMS
from tests.conftest import required_tool
from tests.smtp_server import SmtpServer, free_port, smtp_server
from tests.test_init import init, settle
from tests.test_views import valid_answers

pytestmark = pytest.mark.slow

CLIENT = "127.0.0.2"
LINK = re.compile(r"https?://[^\s\"<>]+/forms/[^\s\"<>]+")
NAME = "forms.test"


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} stopped: {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not start")


def with_env(folder: Path, **values: str) -> None:
    env = folder / ".env"
    lines = env.read_text("utf-8").splitlines()
    kept = [line for line in lines if line.split("=", 1)[0] not in values]
    env.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n")


class Site:
    def __init__(self, https_port: int, root_certificate: Path, cookies: Path) -> None:
        self.url = f"https://{NAME}:{https_port}"
        self.https_port = https_port
        self.root_certificate = root_certificate
        self.cookies = cookies

    def curl(self, path: str, *options: str) -> tuple[dict[str, str], str, int]:
        """Headers, body and status, as a browser at 127.0.0.2 gets them through Caddy."""
        done = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--include",
                "--interface", CLIENT,
                "--resolve", f"{NAME}:{self.https_port}:127.0.0.1",
                "--cacert", str(self.root_certificate),
                "--cookie", str(self.cookies), "--cookie-jar", str(self.cookies),
                *options, self.url + path,
            ],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip
        # A compressed body is bytes; the pages checked here are read as text.
        head, _, body = done.stdout.decode("utf-8", "replace").partition("\r\n\r\n")
        status_line, *header_lines = head.split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        return headers, body, int(status_line.split()[1])


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("relay")) as running:
        yield running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, relay: SmtpServer) -> Iterator[Site]:
    caddy = required_tool("caddy", "caddy")
    required_tool("curl", "curl")
    tmp_path = tmp_path_factory.mktemp("live")
    folder, made = init(tmp_path)
    assert made.returncode == 0, made.stderr
    settle(folder)
    server_port, https_port, http_port = free_port(), free_port(), free_port()
    with_env(
        folder,
        FORMS_PUBLIC_URL=f"https://{NAME}:{https_port}",
        FORMS_SMTP_HOST=relay.host,
        FORMS_SMTP_PORT=str(relay.port),
        FORMS_SMTP_CA_FILE=str(relay.ca_file),
        FORMS_PORT=str(server_port),
        FORMS_MIN_CONFIRM_SECONDS="0",
    )
    forms_server = [sys.executable, "-m", "forms_server.cli.main"]
    environment = {"PATH": os.environ["PATH"]}
    built = subprocess.run(
        [*forms_server, "build"], cwd=folder, env=environment, capture_output=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    with (tmp_path / "server.log").open("wb") as server_log:
        server = subprocess.Popen(
            [*forms_server, "serve"], cwd=folder, env=environment, stderr=server_log
        )
    # The Caddyfile init wrote, with the test's name and ports, and a certificate from Caddy's
    # own CA instead of one from Let's Encrypt (nothing here reaches the internet).
    caddyfile = (folder / "Caddyfile").read_text("utf-8")
    caddyfile = caddyfile.replace("forms.your-group.org.uk", f"{NAME}:{https_port}")
    caddyfile = caddyfile.replace("127.0.0.1:8000", f"127.0.0.1:{server_port}")
    test_options = (
        f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
    )
    (tmp_path / "Caddyfile").write_text(caddyfile.replace("{\n", test_options, 1), "utf-8")
    caddy_home = tmp_path / "caddy"
    caddy_log = tmp_path / "caddy.log"
    with caddy_log.open("wb") as log:
        proxy = subprocess.Popen(
            [str(caddy), "run", "--config", "Caddyfile", "--adapter", "caddyfile"],
            cwd=tmp_path,
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(caddy_home),
                "XDG_DATA_HOME": str(caddy_home / "data"),
                "XDG_CONFIG_HOME": str(caddy_home / "config"),
            },
            stdout=log,
            stderr=log,
        )
    try:
        wait_for_port(server_port, server, "the forms server")
        wait_for_port(https_port, proxy, "Caddy")
        root = caddy_home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 30
        while not root.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        running = Site(https_port, root, tmp_path / "cookies.txt")
        running.folder = folder  # type: ignore[attr-defined]
        running.server = server  # type: ignore[attr-defined]
        running.server_port = server_port  # type: ignore[attr-defined]
        running.caddy_log = caddy_log  # type: ignore[attr-defined]
        yield running
    finally:
        for process in (proxy, server):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def test_a_page_comes_through_caddy_with_the_servers_own_headers_and_files(site: Site) -> None:
    headers, _, status = site.curl("/", "--header", "Accept-Encoding: br")
    assert status == 200
    assert "script-src 'self' 'sha256-" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-encoding"] == "br"  # the build's file, not Caddy's compression
    # X-Forwarded-Proto: the server knows it is reached over HTTPS, so the addresses it makes
    # (here a folder's redirect, built from the request) stay on https:// and the public name.
    headers, _, status = site.curl("/guidelines")
    assert status in {301, 307, 308}
    assert headers["location"] == f"{site.url}/guidelines/"


def test_the_server_answers_only_to_its_public_name(site: Site) -> None:
    port = site.server_port  # type: ignore[attr-defined]
    direct = subprocess.run(
        ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
         "--header", "Host: elsewhere.test", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert direct.stdout == "400"


def test_a_concern_sent_through_caddy_reaches_the_relay_with_links_to_the_public_address(
    site: Site, relay: SmtpServer
) -> None:
    answers = valid_answers(FORMS["concern"])
    form = [
        item for name, value in answers.items() for item in ("--data-urlencode", f"{name}={value}")
    ]
    headers, _, status = site.curl("/forms/concern/", *form)
    assert status == 303, headers
    check_page = headers["location"].removeprefix(site.url)
    assert check_page.startswith("/forms/check/")
    headers, _, status = site.curl(check_page, "--data", "")
    assert status == 303
    _, receipt, status = site.curl(headers["location"].removeprefix(site.url))
    assert status == 200
    reference = re.search(r'class="reference">([0-9A-Z-]+)<', receipt)
    assert reference is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        reference.group(1) in str(got.message["Subject"]) for got in relay.handler.received
    ):
        time.sleep(0.1)
    messages = [got.raw.decode() for got in relay.handler.received]
    assert any(reference.group(1) in message for message in messages)
    links = {
        link
        for message in messages
        for link in re.findall(r"https?://[^\s\"<>]+/forms/[^\s\"<>]+", message)
    }
    assert links
    assert {link.split("/forms/")[0] for link in links} == {site.url}


def test_caddys_output_holds_no_client_address_nor_page(site: Site) -> None:
    """Its errors carry the request that failed: the filter in the Caddyfile removes who asked
    for what. Made to fail here: a TLS handshake for a name Caddy has no certificate for, and
    every request while the forms server is down (502)."""
    subprocess.run(
        ["curl", "--silent", "--insecure", "--interface", CLIENT,
         "--resolve", f"other.test:{site.https_port}:127.0.0.1",
         f"https://other.test:{site.https_port}/"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    server: subprocess.Popen[bytes] = site.server  # type: ignore[attr-defined]
    server.terminate()
    server.wait(timeout=30)
    _, _, status = site.curl("/forms/concern/")
    assert status == 502
    time.sleep(0.5)
    said = site.caddy_log.read_text("utf-8")  # type: ignore[attr-defined]
    assert '"status":502' in said  # the error was logged...
    assert CLIENT not in said  # ...without who asked
    assert "/forms/concern/" not in said  # ...or for what
    assert "curl/" not in said
