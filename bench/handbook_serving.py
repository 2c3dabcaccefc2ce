"""A handbook page through the forms server against a bare StaticFiles GET of the same file.

    .venv/bin/python -m bench.handbook_serving [--requests 400] [--concurrency 16] [--rounds 5]

Builds the handbook once (which writes each text file's gzip and brotli beside it), then starts
three servers under uvicorn on loopback, one worker each:

- the forms server, sending the page as the build compressed it (brotli, as a browser asks);
- the same server over a copy of the site without the compressed files, so its GZipMiddleware
  compresses the page on every request (how every page was sent before);
- a bare Starlette StaticFiles over the same site, no middleware, the page sent uncompressed.

In `--rounds` interleaved rounds, each serves `--requests` GETs of /guidelines/ at the same
concurrency; the client reads the bytes as sent (it decodes nothing, so its own work is the
same for all three). Reported: the median and range of each round's ratio to the bare server,
and the bytes each sends.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx2

from bench.forms import start_server
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook

PAGE = "/guidelines/"
BROWSER = {"accept-encoding": "gzip, deflate, br"}
UNCOMPRESSED = {"accept-encoding": "identity"}


async def requests_per_second(
    client: httpx2.AsyncClient, url: str, headers: dict[str, str], count: int, concurrency: int
) -> tuple[float, int]:
    """Requests per second, and the bytes of one response as sent."""
    queue = iter(range(count))
    sizes: list[int] = []

    async def worker() -> None:
        for _ in queue:
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code}")
                sizes.append(sum([len(chunk) async for chunk in response.aiter_raw()]))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), sizes[0]


async def rounds(
    servers: dict[str, tuple[str, dict[str, str]]], count: int, concurrency: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    ratios: dict[str, list[float]] = {name: [] for name in servers if name != "bare"}
    sizes: dict[str, int] = {}
    async with httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=concurrency), timeout=30
    ) as client:
        for _ in range(rounds):
            rates = {}
            for name, (url, headers) in servers.items():
                rates[name], sizes[name] = await requests_per_second(
                    client, url + PAGE, headers, count, concurrency
                )
            for name in ratios:
                ratios[name].append(rates[name] / rates["bare"])
    return ratios, sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        on_the_fly = Path(folder) / "site-on-the-fly"
        shutil.copytree(site, on_the_fly, ignore=shutil.ignore_patterns("*.gz", "*.br"))
        processes: list[subprocess.Popen[bytes]] = []
        try:
            servers: dict[str, tuple[str, dict[str, str]]] = {}
            for name, site_dir in (("precompressed", site), ("gzip per request", on_the_fly)):
                environment = {
                    "FORMS_DATA_DIR": str(Path(folder) / f"data-{len(processes)}"),
                    "FORMS_SITE_DIR": str(site_dir),
                    "FORMS_BUILD_HANDBOOK": "false",
                }
                process, url = start_server(
                    "forms_server.web.app:create_app", environment, factory=True
                )
                processes.append(process)
                servers[name] = (url, BROWSER)
            process, url = start_server(
                "bench.bare_app:static", {"BENCH_SITE_DIR": str(site)}, factory=True
            )
            processes.append(process)
            servers["bare"] = (url, UNCOMPRESSED)
            ratios, sizes = asyncio.run(
                rounds(servers, arguments.requests, arguments.concurrency, arguments.rounds)
            )
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    print(
        f"GET {PAGE}, {arguments.requests} requests a round, concurrency "
        f"{arguments.concurrency}, {arguments.rounds} interleaved rounds, one uvicorn worker "
        "each; median (range) of each round's ratio to a bare StaticFiles, uncompressed"
    )
    for name, found in ratios.items():
        print(
            f"  {name:<18} {statistics.median(found):.2f}x (range {min(found):.2f}x to "
            f"{max(found):.2f}x), {sizes[name]:,} bytes sent"
        )
    print(f"  {'bare':<18} 1.00x, {sizes['bare']:,} bytes sent")


if __name__ == "__main__":
    main()
