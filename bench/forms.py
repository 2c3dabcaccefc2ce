"""Form throughput, as ratios against bare Starlette endpoints measured in the same rounds.

    .venv/bin/python bench/forms.py [--requests 200] [--concurrency 16] [--rounds 5]

Starts two servers under uvicorn on loopback (one worker each, in their own processes): the
real forms server, and a bare Starlette app with a GET that answers a small fixed page and a
POST that parses the same form body and answers 303. Then, in `--rounds` interleaved rounds
(so a noisy neighbour slows every kind alike), each of `--requests` requests at the same
concurrency:

- bare GET, and the form's GET (render the form page);
- bare POST, and the answers' POST (validate, seal this browser's draft to disk, 303), each
  from a new browser, so each makes a new key, cookie and draft;
- the confirm: POST Send on a check page, each from its own browser with its own draft (open
  the draft, a durable write to the outbox, the receipt, 303), while the worker delivers.

Each is reported as the median of its rounds' ratios to its bare baseline, with the range. The
same again with 10,000 drafts waiting in the drafts folder (its cap: every new draft then
evicts the least recently used) and 10,000 records in the store. Then the submit-to-accepted
latency, from the confirm's 303 to a loopback SMTP relay (aiosmtpd, in this process) having
the message, p50 and p95, and the server's peak memory (VmHWM).

Absolute times are noisy here; the ratios are what to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.reference import new_reference
from forms_server.handbook.build import build_handbook
from forms_server.storage.draft_files import DRAFTS_FOLDER
from forms_server.storage.records import SubmissionStore

KIND = "leave-missing"
FORM_POST = {"content-type": "application/x-www-form-urlencoded"}
REFERENCE_IN_SUBJECT = re.compile(r"ref ([0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3})")
ANSWERS = {"name": "Bench Member", "dates": "2 and 9 December", "message": "Benchmark."}
RECEIPT_REFERENCE = re.compile(r'class="reference">([0-9A-Z-]+)<')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    target: str, environment: dict[str, str], factory: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    process = subprocess.Popen(command, env={**os.environ, **environment}, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} did not start")


async def rate(
    count: int,
    concurrency: int,
    make_request: Callable[[int], Awaitable[httpx2.Response]],
    expected: int,
) -> float:
    """Requests per second for `count` requests with `concurrency` in flight."""
    queue = iter(range(count))
    failures = []

    async def worker() -> None:
        for index in queue:
            response = await make_request(index)
            if response.status_code != expected:
                failures.append(response.status_code)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} unexpected statuses, e.g. {failures[:3]}")
    return count / elapsed


BROWSERS = itertools.count()


def new_browser() -> dict[str, str]:
    """A member on a network of their own (uvicorn takes X-Forwarded-For from loopback, as
    from a proxy in front), with no cookie yet: the drafts folder caps each network."""
    number = next(BROWSERS)
    return {"cookie": "", "x-forwarded-for": f"10.{number // 256 % 256}.{number % 256}.1"}


async def drafts_for(client: httpx2.AsyncClient, url: str, count: int) -> list[tuple[str, str]]:
    """`count` browsers, each with a draft on its check page: their cookie and check page."""
    made = []
    for _ in range(count):
        response = await client.post(f"{url}/forms/{KIND}/", data=ANSWERS, headers=new_browser())
        if response.status_code != 303 or "/forms/check/" not in response.headers["location"]:
            raise RuntimeError(f"no check page: {response.status_code}")
        cookie = response.headers["set-cookie"].split(";")[0]
        made.append((cookie, url + response.headers["location"].removeprefix(url)))
    return made


class ArrivalClock:
    """An aiosmtpd handler that notes when each reference's message arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        found = REFERENCE_IN_SUBJECT.search(
            (envelope.original_content or b"").decode("utf-8", "replace")
        )
        if found:
            self.arrived[found.group(1)] = time.perf_counter()
        return "250 OK"


def prefill_store(data_dir: Path, key: bytes, count: int) -> None:
    """`count` delivered records, written in one go (as many deliveries would leave them)."""
    store = SubmissionStore(data_dir, key)
    now = datetime.now(UTC)
    records = []
    for _ in range(count):
        reference = new_reference()
        records.append(
            {
                "reference": reference,
                "form_kind": KIND,
                "received_at": now.isoformat(),
                "delivered_at": now.isoformat(),
                "expires_at": (now + timedelta(days=183)).isoformat(),
                "guidelines_version": None,
                "kept": store.sealer.seal(reference, {"name": "Member", "dates": "Tuesdays"}),
            }
        )
    with store.locked() as database:
        database.insert_multiple(records)


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prefill_drafts(data_dir: Path, count: int) -> None:
    """`count` drafts waiting, as sealed files the server cannot open (as members' would be)."""
    folder = data_dir / DRAFTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
        name = base64.urlsafe_b64encode(os.urandom(16)).decode()[:22]
        (folder / name).write_bytes(b"d1" + os.urandom(400))


async def interleaved_rounds(
    url: str, bare_url: str, requests: int, concurrency: int, rounds: int
) -> dict[str, list[float]]:
    """Each round: every kind once, one after the other; the ratios to each kind's baseline."""
    ratios: dict[str, list[float]] = {"form GET": [], "answers POST": [], "confirm": []}
    async with httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=concurrency), timeout=30
    ) as client:
        for _ in range(rounds):
            drafts = await drafts_for(client, url, requests)

            def send(
                index: int, drafts: list[tuple[str, str]] = drafts
            ) -> Awaitable[httpx2.Response]:
                cookie, check_page = drafts[index]
                return client.post(check_page, headers={**FORM_POST, "cookie": cookie})

            bare_get = await rate(
                requests, concurrency, lambda i: client.get(bare_url + "/page"), 200
            )
            form_get = await rate(
                requests, concurrency, lambda i: client.get(f"{url}/forms/{KIND}/"), 200
            )
            bare_post = await rate(
                requests,
                concurrency,
                lambda i: client.post(bare_url + "/answers", data=ANSWERS),
                303,
            )
            answers = await rate(
                requests,
                concurrency,
                # No cookie: each is a new browser, which makes a new key and draft.
                lambda i: client.post(f"{url}/forms/{KIND}/", data=ANSWERS, headers=new_browser()),
                303,
            )
            confirm = await rate(requests, concurrency, send, 303)
            ratios["form GET"].append(form_get / bare_get)
            ratios["answers POST"].append(answers / bare_post)
            ratios["confirm"].append(confirm / bare_post)
    return ratios


async def submit_to_smtp(url: str, clock: ArrivalClock, samples: int) -> list[float]:
    latencies = []
    async with httpx2.AsyncClient(timeout=30) as client:
        for cookie, check_page in await drafts_for(client, url, samples):
            started = time.perf_counter()
            response = await client.post(check_page, headers={**FORM_POST, "cookie": cookie})
            receipt = await client.get(
                url + response.headers["location"].removeprefix(url), headers={"cookie": cookie}
            )
            found = RECEIPT_REFERENCE.search(receipt.text)
            if found is None:
                raise RuntimeError("no reference on the receipt")
            reference = found.group(1)
            while reference not in clock.arrived:
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"{reference} never reached the relay")
                await asyncio.sleep(0.001)
            latencies.append(clock.arrived[reference] - started)
            await asyncio.sleep(0.05)  # one member at a time, as in real life
    return latencies


def described(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}x to {max(ratios):.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=100, help="latency samples")
    arguments = parser.parse_args()
    key = bytes(range(32))
    clock = ArrivalClock()
    relay = Controller(clock, hostname="127.0.0.1", port=free_port())
    relay.start()
    results: dict[str, dict[str, list[float]]] = {}
    memory: list[float] = []
    latencies: list[float] = []
    bare, bare_url = start_server("bench.bare_app:app", {}, factory=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = Path(folder) / "site"
            build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
            for waiting in (0, 10_000):
                data_dir = Path(folder) / f"data-{waiting}"
                prefill_store(data_dir, key, waiting)
                prefill_drafts(data_dir, waiting)
                environment = {
                    "FORMS_DATA_DIR": str(data_dir),
                    "FORMS_DATA_KEY": base64.urlsafe_b64encode(key).decode(),
                    "FORMS_SITE_DIR": str(site),
                    "FORMS_BUILD_HANDBOOK": "false",
                    "FORMS_SMTP_HOST": "127.0.0.1",
                    "FORMS_SMTP_PORT": str(relay.port),
                    "FORMS_SMTP_SECURITY": "none",
                    "FORMS_MIN_CONFIRM_SECONDS": "0",
                    "FORMS_CLIENT_POST_BURST": "1000000",
                    "FORMS_GLOBAL_POST_BURST": "1000000",
                    # Throughput, not flood protection: every form in its own email.
                    "FORMS_DIGEST_AFTER_PER_HOUR": "1000000",
                }
                server, url = start_server(
                    "forms_server.web.app:create_app", environment, factory=True
                )
                try:
                    results[f"{waiting:,} drafts waiting"] = asyncio.run(
                        interleaved_rounds(
                            url,
                            bare_url,
                            arguments.requests,
                            arguments.concurrency,
                            arguments.rounds,
                        )
                    )
                    if waiting == 0:
                        latencies = asyncio.run(submit_to_smtp(url, clock, arguments.samples))
                    memory.append(peak_memory_mb(server.pid))
                finally:
                    server.terminate()
                    server.wait()
    finally:
        bare.terminate()
        bare.wait()
        relay.stop()
    print(
        f"{arguments.requests} requests a kind, concurrency {arguments.concurrency}, "
        f"{arguments.rounds} interleaved rounds, one uvicorn worker each; median (range) of "
        "each round's ratio to the bare endpoint"
    )
    for scenario, ratios in results.items():
        print(f"  {scenario} (and as many records stored):")
        print(f"    form GET / bare GET:         {described(ratios['form GET'])}")
        print(f"    answers POST / bare POST:    {described(ratios['answers POST'])}")
        print(f"    confirm / bare POST:         {described(ratios['confirm'])}")
    empty, full = results["0 drafts waiting"], results["10,000 drafts waiting"]
    for kind in ("form GET", "answers POST", "confirm"):
        slowdown = statistics.median(empty[kind]) / statistics.median(full[kind])
        print(f"  time per {kind} with 10,000 waiting / with none: {slowdown:.2f}")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(
        f"  submit to accepted by SMTP: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
        f"({len(latencies)} samples)"
    )
    print(f"  server peak memory (VmHWM): {max(memory):.0f} MB")


if __name__ == "__main__":
    main()
