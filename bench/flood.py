"""A flood, through the real server, and the one form in it that matters.

    .venv/bin/python -m bench.flood [--forms 500] [--minutes 1]

Starts the server (uvicorn, the app as `serve` makes it) with a relay on loopback, and posts
`--forms` concerns over `--minutes`, each from its own network (X-Forwarded-For, which the
server trusts from loopback as it would from a proxy there), through the form, check-your-
answers and confirm, as a browser would. In the middle comes the real one: an urgent concern.

1. The flood is of ordinary concerns: the real one is the only urgent form.
2. The flood is of concerns all marked urgent: the real one is one more of them.

For each, the time from the real one's confirm (its 303) to the relay accepting it for every
concerns recipient (alone, or inside a digest), against the same form sent with no flood in
the same run; and everything the operator was told meanwhile (/healthz's details, asked from
this machine every second). Targets: under 10 s, and under 90 s when the whole flood is urgent.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from forms_server.config.env import load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook
from forms_server.mail.catcher import free_loopback_port
from forms_server.web.app import create_app

CONCERNS = ("lead@bench.example", "deputy@bench.example")
REFERENCE = re.compile(r'class="reference">([0-9A-Z-]+)<')
ORDINARY = {
    "about": "member",
    "what_happened": "Benchmark flood.",
    "why_concerned": "Benchmark flood.",
    "immediate_risk": "no",
    "contact_preference": "no",
}


class ArrivalRelay:
    """When each reference first reached each recipient, alone or inside a digest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[float, str, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            self.messages.append(
                (time.monotonic(), envelope.rcpt_tos[0], envelope.original_content or b"")
            )
        return "250 OK"

    def arrived(self, reference: str) -> dict[str, float]:
        found: dict[str, float] = {}
        with self.lock:
            for at, to, content in self.messages:
                if reference.encode() in content and to not in found:
                    found[to] = at
        return found


@contextmanager
def server(site: Path, data: Path, relay_port: int) -> Iterator[str]:
    port = free_loopback_port()
    settings = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(data),
            "FORMS_SITE_DIR": str(site),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_MIN_CONFIRM_SECONDS": "0",
            "FORMS_SMTP_HOST": "127.0.0.1",
            "FORMS_SMTP_PORT": str(relay_port),
            "FORMS_SMTP_SECURITY": "none",
            "FORMS_FACILITATORS": ",".join(CONCERNS),
        },
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="error", access_log=False
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=30)


def request(
    base: str, method: str, path: str, form: dict[str, str] | None, headers: dict[str, str]
) -> tuple[int, str, str, str]:
    """One request, no redirect followed: status, Location, body, and the cookie it set."""
    host = urllib.parse.urlsplit(base).netloc
    connection = http.client.HTTPConnection(host, timeout=60)
    body = urllib.parse.urlencode(form) if form is not None else None
    sent = (
        {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        if form is not None
        else headers
    )
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
        location = response.getheader("Location") or ""
        return response.status, location, response.read().decode(), cookie
    finally:
        connection.close()


def send(base: str, answers: dict[str, str], network: int) -> tuple[str, float]:
    """One concern, as a browser sends it, from its own network: its reference, and when the
    member saw "received"."""
    headers = {"X-Forwarded-For": f"10.{network // 250}.{network % 250}.7"}
    status, check_page, _, cookie = request(base, "POST", "/forms/concern/", answers, headers)
    if "/forms/check/" not in check_page:
        raise RuntimeError(f"no check page ({status})")
    headers["Cookie"] = cookie
    path = urllib.parse.urlsplit(check_page).path
    status, location, _, _ = request(base, "POST", path, {}, headers)
    if "/forms/received/" not in location:
        raise RuntimeError(f"not received ({status})")
    seen = time.monotonic()
    receipt = request(base, "GET", urllib.parse.urlsplit(location).path, None, headers)[2]
    reference = REFERENCE.search(receipt)
    if reference is None:
        raise RuntimeError("no reference on the receipt")
    return reference.group(1), seen


def watch_health(base: str, told: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            body = json.loads(request(base, "GET", "/healthz", None, {})[2])
        except (OSError, ValueError):
            body = {"problems": ["(no answer)"]}
        for problem in body.get("problems", []):
            if problem not in told:
                told.append(problem)
        stop.wait(1.0)


def flood(
    site: Path, forms: int, minutes: float, all_urgent: bool
) -> tuple[float, list[str], float]:
    """Seconds from the real one's confirm to its last concerns recipient; what the operator
    was told; seconds to post the whole flood."""
    relay = ArrivalRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_loopback_port())
    controller.start()
    urgent = {**ORDINARY, "immediate_risk": "yes"}
    flood_answers = urgent if all_urgent else ORDINARY
    told: list[str] = []
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory() as folder,
        server(site, Path(folder), controller.port) as base,
    ):
        watcher = threading.Thread(target=watch_health, args=(base, told, stop), daemon=True)
        watcher.start()
        pace = minutes * 60 / forms
        started = time.monotonic()
        real: tuple[str, float] | None = None
        with ThreadPoolExecutor(max_workers=8) as pool:
            for number in range(forms):
                if number == forms // 2:
                    real = pool.submit(send, base, urgent, 9999).result()
                pool.submit(send, base, flood_answers, number)
                time.sleep(max(0.0, started + (number + 1) * pace - time.monotonic()))
        posted = time.monotonic() - started
        if real is None:
            raise RuntimeError("the real one was not sent")
        reference, confirmed_at = real
        deadline = time.monotonic() + 600
        while len(relay.arrived(reference)) < len(CONCERNS) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # what the operator is told after the flood
        stop.set()
        watcher.join()
    controller.stop()
    arrivals = relay.arrived(reference)
    if len(arrivals) < len(CONCERNS):
        return float("inf"), told, posted
    return max(arrivals.values()) - confirmed_at, told, posted


def alone(site: Path, runs: int) -> float:
    """The same urgent concern with no flood: the baseline, in the same run."""
    relay = ArrivalRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_loopback_port())
    controller.start()
    times = []
    with (
        tempfile.TemporaryDirectory() as folder,
        server(site, Path(folder), controller.port) as base,
    ):
        for run in range(runs):
            reference, confirmed_at = send(base, {**ORDINARY, "immediate_risk": "yes"}, run)
            while len(relay.arrived(reference)) < len(CONCERNS):
                time.sleep(0.01)
            times.append(max(relay.arrived(reference).values()) - confirmed_at)
    controller.stop()
    return statistics.median(times)


def said(told: list[str]) -> dict[str, list[int]]:
    """Each problem once, its changing count as N, and the counts it went through."""
    found: dict[str, list[int]] = {}
    for problem in told:
        number = re.search(r"\b(\d+) form\(s\)", problem)
        key = re.sub(r"\b\d+ form\(s\)", "N form(s)", problem)
        found.setdefault(key, [])
        if number:
            found[key].append(int(number.group(1)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forms", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=1.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        baseline = alone(site, 5)
        print(f"The urgent concern alone, no flood: {baseline:.2f} s from confirm to relay")
        for all_urgent, target in ((False, 10.0), (True, 90.0)):
            kind = "all marked urgent" if all_urgent else "ordinary"
            seconds, told, posted = flood(site, arguments.forms, arguments.minutes, all_urgent)
            print(
                f"\n{arguments.forms} {kind} concerns from {arguments.forms} networks in "
                f"{posted:.0f} s, the real urgent one in the middle: {seconds:.2f} s from its "
                f"confirm to the relay for both concerns recipients ({seconds / baseline:.1f}x "
                f"alone; target under {target:.0f} s)"
            )
            print("  the operator was told (/healthz from this machine, every second):")
            for problem, numbers in said(told).items():
                counts = f" (N from {min(numbers)} to {max(numbers)})" if numbers else ""
                print(f"    {problem}{counts}")


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))  # an event loop policy is in place before uvicorn's own
    main()
