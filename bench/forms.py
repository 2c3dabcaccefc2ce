"""Form throughput, as ratios against a bare Starlette endpoint measured in the same run.

    .venv/bin/python bench/forms.py [--requests 400] [--concurrency 16]

Starts two servers under uvicorn on loopback (one worker each, in their own processes):
the real forms server, and a bare Starlette app whose endpoint parses the same form body and
answers 303. Then it measures, for the same number of requests at the same concurrency:

- bare: POST the answers to the bare endpoint (the baseline);
- answers: POST the answers to the real form (validate, sign, render check-your-answers);
- confirm: POST confirm with a distinct token each time (verify, seal, durable write, 303),
  at 0 and at --stored records already in the store.

Absolute times are noisy here; the ratios are what to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2

from forms_server.handbook import build_handbook
from forms_server.settings import PROJECT_ROOT

KIND = "leave-missing"
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


async def fill_store(client: httpx2.AsyncClient, url: str, count: int, concurrency: int) -> None:
    tokens = await tokens_for(client, url, count)
    await rate(
        count,
        concurrency,
        lambda i: client.post(f"{url}/forms/{KIND}/confirm", data={"token": tokens[i]}),
        303,
    )


async def measure(
    url: str, bare_url: str, requests: int, concurrency: int, stored: int
) -> dict[str, float]:
    limits = httpx2.Limits(max_connections=concurrency)
    async with httpx2.AsyncClient(
        limits=limits, timeout=30, headers={"host": "127.0.0.1"}
    ) as client:
        results: dict[str, float] = {}
        results["bare"] = statistics.median(
            [
                await rate(
                    requests,
                    concurrency,
                    lambda i: client.post(f"{bare_url}/answers", data=ANSWERS),
                    303,
                )
                for _ in range(3)
            ]
        )
        results["answers"] = statistics.median(
            [
                await rate(
                    requests,
                    concurrency,
                    lambda i: client.post(f"{url}/forms/{KIND}/", data=ANSWERS),
                    200,
                )
                for _ in range(3)
            ]
        )
        tokens = await tokens_for(client, url, requests)
        results["confirm_at_0"] = await rate(
            requests,
            concurrency,
            lambda i: client.post(f"{url}/forms/{KIND}/confirm", data={"token": tokens[i]}),
            303,
        )
        if stored:
            await fill_store(client, url, stored - requests, concurrency)
            tokens = await tokens_for(client, url, requests)
            results[f"confirm_at_{stored}"] = await rate(
                requests,
                concurrency,
                lambda i: client.post(f"{url}/forms/{KIND}/confirm", data={"token": tokens[i]}),
                303,
            )
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--stored", type=int, default=2000, help="records in the store for the second confirm run"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        environment = {
            "FORMS_DATA_DIR": str(Path(folder) / "data"),
            "FORMS_SITE_DIR": str(site),
            "FORMS_BUILD_HANDBOOK": "false",
        }
        server, url = start_server("forms_server.app:create_app", environment, factory=True)
        bare, bare_url = start_server("bench.bare_app:app", {}, factory=False)
        try:
            results = asyncio.run(
                measure(url, bare_url, arguments.requests, arguments.concurrency, arguments.stored)
            )
        finally:
            server.terminate()
            bare.terminate()
            server.wait()
            bare.wait()
    baseline = results["bare"]
    print(
        f"{arguments.requests} requests, concurrency {arguments.concurrency}, "
        "one uvicorn worker each"
    )
    for name, value in results.items():
        print(f"  {name:>16}: {value:8.0f} req/s  ({value / baseline:.2f}x the bare endpoint)")


if __name__ == "__main__":
    main()
