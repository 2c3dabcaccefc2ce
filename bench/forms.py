"""Form throughput, as ratios against a bare Starlette endpoint measured in the same run.

    .venv/bin/python bench/forms.py [--requests 400] [--concurrency 16]

Starts two servers under uvicorn on loopback (one worker each, in their own processes):
the real forms server, and a bare Starlette app whose endpoint parses the same form body and
answers 303. Then it measures, for the same number of requests at the same concurrency:

- bare: POST the answers to the bare endpoint (the baseline);
- answers: POST the answers to the real form (validate, sign, render check-your-answers);
- confirm: POST confirm with a distinct token each time (verify, seal, durable write, 303),
  with 0, 1,000 and 10,000 records already in the store, while the worker delivers;
- submit-to-accepted latency: from the confirm's 303 to the moment a loopback SMTP relay
  (aiosmtpd, in this process) has the message, p50 and p95;
- the server's peak memory (VmHWM).

Absolute times are noisy here; the ratios are what to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from forms_server.storage.records import SubmissionStore

KIND = "leave-missing"
REFERENCE_IN_SUBJECT = re.compile(r"ref ([0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3})")
ANSWERS = {"name": "Bench Member", "dates": "2 and 9 December", "message": "Benchmark."}
TOKEN = re.compile(
    r'action="[^"]*/confirm"[^>]*>\s*<input type="hidden" name="token" value="([^"]+)"'
)


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


async def tokens_for(client: httpx2.AsyncClient, url: str, count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        page = await client.post(f"{url}/forms/{KIND}/", data=ANSWERS)
        match = TOKEN.search(page.text)
        if match is None:
            raise RuntimeError("no token on the check answers page")
        tokens.append(match.group(1))
    return tokens


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


async def confirm_rate(url: str, requests: int, concurrency: int) -> float:
    async with httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=concurrency), timeout=30
    ) as client:
        tokens = await tokens_for(client, url, requests)
        return await rate(
            requests,
            concurrency,
            lambda i: client.post(f"{url}/forms/{KIND}/confirm", data={"token": tokens[i]}),
            303,
        )


async def answers_and_bare(
    url: str, bare_url: str, requests: int, concurrency: int
) -> dict[str, float]:
    """Median of three runs each: the bare endpoint and the real form's answers."""
    async with httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=concurrency), timeout=30
    ) as client:

        async def median_rate(target: str, expected: int) -> float:
            runs = [
                await rate(
                    requests, concurrency, lambda i: client.post(target, data=ANSWERS), expected
                )
                for _ in range(3)
            ]
            return statistics.median(runs)

        return {
            "bare": await median_rate(f"{bare_url}/answers", 303),
            "answers": await median_rate(f"{url}/forms/{KIND}/", 200),
        }


async def submit_to_smtp(url: str, clock: ArrivalClock, samples: int) -> list[float]:
    latencies = []
    async with httpx2.AsyncClient(timeout=30) as client:
        for token in await tokens_for(client, url, samples):
            started = time.perf_counter()
            response = await client.post(f"{url}/forms/{KIND}/confirm", data={"token": token})
            reference = response.headers["location"].rsplit("/", 1)[1]
            while reference not in clock.arrived:
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"{reference} never reached the relay")
                await asyncio.sleep(0.001)
            latencies.append(clock.arrived[reference] - started)
            await asyncio.sleep(0.05)  # one member at a time, as in real life
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--samples", type=int, default=100, help="latency samples")
    arguments = parser.parse_args()
    key = bytes(range(32))
    clock = ArrivalClock()
    relay = Controller(clock, hostname="127.0.0.1", port=free_port())
    relay.start()
    results: dict[str, float] = {}
    memory: list[float] = []
    latencies: list[float] = []
    bare, bare_url = start_server("bench.bare_app:app", {}, factory=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = Path(folder) / "site"
            build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
            for stored in (0, 1_000, 10_000):
                data_dir = Path(folder) / f"data-{stored}"
                prefill_store(data_dir, key, stored)
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
                    if stored == 0:
                        results |= asyncio.run(
                            answers_and_bare(
                                url, bare_url, arguments.requests, arguments.concurrency
                            )
                        )
                        latencies = asyncio.run(submit_to_smtp(url, clock, arguments.samples))
                    results[f"confirm, {stored:,} stored"] = asyncio.run(
                        confirm_rate(url, arguments.requests, arguments.concurrency)
                    )
                    memory.append(peak_memory_mb(server.pid))
                finally:
                    server.terminate()
                    server.wait()
    finally:
        bare.terminate()
        bare.wait()
        relay.stop()
    baseline = results["bare"]
    print(
        f"{arguments.requests} requests, concurrency {arguments.concurrency}, "
        "one uvicorn worker each"
    )
    for name, value in results.items():
        print(f"  {name:>22}: {value:8.0f} req/s  ({value / baseline:.2f}x the bare endpoint)")
    slowdown = results["confirm, 0 stored"] / results["confirm, 10,000 stored"]
    print(f"  time per confirm at 10,000 stored / at 0: {slowdown:.2f} (target: at most 2)")
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
