"""Server stack: plain uvicorn (asyncio + h11) against uvicorn[standard] (uvloop + httptools),
each as ratios against a bare Starlette GET served by the same stack in the same run.

    python -m bench.server_stack [--rounds 5] [--seconds 5] [--connections 16] [--client wrk]

Run from the project folder. With uvloop and httptools importable (a virtual environment with
`uvicorn[standard]`), both stacks are measured; without them, the plain stack only. Each server
is uvicorn on loopback in its own process, one worker, with the stack chosen explicitly
(`UVICORN_LOOP` and `UVICORN_HTTP`, uvicorn's own variables for `--loop` and `--http`), and the
shared libraries mapped into it are checked to be the stack's. Per stack, three cells:

- bare: a Starlette app whose one GET answers a short page (the baseline);
- form: the forms server's GET /forms/consent/ (a new draft token, the page rendered);
- handbook: the forms server's GET /guidelines/ (a built handbook page, static).

Every request asks for gzip, as browsers do (`--identity`: for no compression, which takes the
forms server's GZipMiddleware, at level 9, out of the measurement). The client is wrk (Debian's
`wrk`, one thread, so the server has the other CPU) when it is installed, else this folder's own
httpx2 client (bench/forms.py); the same client for every cell. The rounds interleave the
cells, and each cell's figure is the median of its rounds. Absolute figures are noisy on shared
machines: the ratios are what to compare between runs.

Last, a delivery check on each stack: forms confirmed one at a time must reach a loopback SMTP
relay (the delivery worker is a background task on the server's event loop), and the server
must stop cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx2
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

# Run as a script from the project folder too: the helpers of bench/forms.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.forms import ArrivalClock, free_port, peak_memory_mb, rate, start_server, submit_to_smtp
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook

BARE_PAGE = "<!doctype html><html lang=en><title>Bare</title><p>Hello.</p></html>"
CELLS = {"bare": "/", "form": "/forms/consent/", "handbook": "/guidelines/"}
REQUESTS_PER_SECOND = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_PROBLEMS = re.compile(r"(Non-2xx or 3xx responses|Socket errors):.*")
KEY = bytes(range(32))


async def bare_page(request: Request) -> HTMLResponse:
    return HTMLResponse(BARE_PAGE)


bare_get = Starlette(routes=[Route("/", bare_page, methods=["GET"])])


@dataclass(frozen=True)
class Stack:
    name: str
    loop: str
    http: str
    # Shared libraries that must be mapped into the server (present) or must not (absent).
    libraries: tuple[str, ...]

    @property
    def environment(self) -> dict[str, str]:
        return {"UVICORN_LOOP": self.loop, "UVICORN_HTTP": self.http}

    def check(self, pid: int) -> None:
        maps = Path(f"/proc/{pid}/maps").read_text()
        for library in ("uvloop", "httptools"):
            mapped = f"/{library}/" in maps
            if mapped != (library in self.libraries):
                raise RuntimeError(f"{self.name}: {library} mapped={mapped} in server {pid}")


PLAIN = Stack("plain (asyncio + h11)", "asyncio", "h11", ())
STANDARD = Stack("standard (uvloop + httptools)", "uvloop", "httptools", ("uvloop", "httptools"))


def available_stacks() -> list[Stack]:
    standard = all(importlib.util.find_spec(name) for name in ("uvloop", "httptools"))
    return [PLAIN, STANDARD] if standard else [PLAIN]


def forms_environment(folder: Path, site: Path, relay_port: int) -> dict[str, str]:
    """The forms server as bench/forms.py runs it: a loopback relay, no flood limits."""
    return {
        "FORMS_DATA_DIR": str(folder),
        "FORMS_DATA_KEY": base64.urlsafe_b64encode(KEY).decode(),
        "FORMS_SITE_DIR": str(site),
        "FORMS_BUILD_HANDBOOK": "false",
        "FORMS_SMTP_HOST": "127.0.0.1",
        "FORMS_SMTP_PORT": str(relay_port),
        "FORMS_SMTP_SECURITY": "none",
        "FORMS_MIN_CONFIRM_SECONDS": "0",
        "FORMS_CLIENT_POST_BURST": "1000000",
        "FORMS_GLOBAL_POST_BURST": "1000000",
        "FORMS_DIGEST_AFTER_PER_HOUR": "1000000",
    }


def wrk_rate(url: str, seconds: float, connections: int, encoding: str) -> float:
    result = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{seconds:g}s",
            f"--header=Accept-Encoding: {encoding}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    problems = WRK_PROBLEMS.search(result.stdout)
    found = REQUESTS_PER_SECOND.search(result.stdout)
    if problems or found is None:
        raise RuntimeError(f"wrk against {url}:\n{result.stdout}")
    return float(found.group(1))


async def httpx_rate(url: str, requests: int, connections: int, encoding: str) -> float:
    async with httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=connections),
        timeout=30,
        headers={"Accept-Encoding": encoding},
    ) as client:
        return await rate(requests, connections, lambda _: client.get(url), 200)


async def first_look(url: str, encoding: str) -> str:
    """One request as the bench's: it must be a 200 (gzipped when asked and big enough)."""
    async with httpx2.AsyncClient(timeout=30, headers={"Accept-Encoding": encoding}) as client:
        response = await client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    sent = response.headers.get("content-encoding", "identity")
    return f"{len(response.content):,} bytes, sent {sent}"


def paired(values: list[float], baselines: list[float]) -> float:
    """The median of each round's ratio: a round's cells ran moments apart, on the same load."""
    return statistics.median(
        value / baseline for value, baseline in zip(values, baselines, strict=True)
    )


def stopped(code: int) -> str:
    """uvicorn re-raises SIGTERM once its graceful shutdown (the lifespan's too) is done."""
    return "stopped" if code in (0, -signal.SIGTERM) else f"exit code {code}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5, help="per measurement, with wrk")
    parser.add_argument("--requests", type=int, default=2000, help="per measurement, httpx2")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--client", choices=("wrk", "httpx2"), default="wrk" if shutil.which("wrk") else "httpx2"
    )
    parser.add_argument("--samples", type=int, default=20, help="forms for the delivery check")
    parser.add_argument(
        "--identity", action="store_true", help="ask for no compression instead of gzip"
    )
    arguments = parser.parse_args()
    encoding = "identity" if arguments.identity else "gzip"

    def measure(url: str) -> float:
        if arguments.client == "wrk":
            return wrk_rate(url, arguments.seconds, arguments.connections, encoding)
        return asyncio.run(httpx_rate(url, arguments.requests, arguments.connections, encoding))

    stacks = available_stacks()
    clock = ArrivalClock()
    relay = Controller(clock, hostname="127.0.0.1", port=free_port())
    relay.start()
    servers: dict[tuple[str, str], tuple[subprocess.Popen[bytes], str]] = {}
    runs: dict[tuple[str, str], list[float]] = {}
    delivered: dict[str, list[float]] = {}
    memory: dict[tuple[str, str], float] = {}
    exits: dict[tuple[str, str], int] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = Path(folder) / "site"
            build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
            for stack in stacks:
                servers[stack.name, "bare"] = start_server(
                    "bench.server_stack:bare_get", stack.environment, factory=False
                )
                environment = forms_environment(Path(folder) / stack.loop, site, relay.port)
                servers[stack.name, "forms"] = start_server(
                    "forms_server.web.app:create_app",
                    {**environment, **stack.environment},
                    factory=True,
                )
            pages = {}
            for stack in stacks:
                for cell, path in CELLS.items():
                    process, url = servers[stack.name, "bare" if cell == "bare" else "forms"]
                    stack.check(process.pid)
                    pages[cell] = asyncio.run(first_look(url + path, encoding))
                    measure(url + path)  # warm up: templates, caches, the page cache
            for _ in range(arguments.rounds):
                for stack in stacks:
                    for cell, path in CELLS.items():
                        _, url = servers[stack.name, "bare" if cell == "bare" else "forms"]
                        runs.setdefault((stack.name, cell), []).append(measure(url + path))
            for stack in stacks:
                _, url = servers[stack.name, "forms"]
                delivered[stack.name] = asyncio.run(submit_to_smtp(url, clock, arguments.samples))
            for (name, kind), (process, _) in servers.items():
                memory[name, kind] = peak_memory_mb(process.pid)
                process.terminate()
                exits[name, kind] = process.wait(timeout=30)
    finally:
        for process, _ in servers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        relay.stop()

    medians = {key: statistics.median(values) for key, values in runs.items()}
    unit = (
        f"{arguments.seconds:g} s of wrk, 1 thread"
        if arguments.client == "wrk"
        else f"{arguments.requests} requests of httpx2"
    )
    print(
        f"{unit}, {arguments.connections} connections, Accept-Encoding: {encoding}; "
        f"{arguments.rounds} interleaved rounds; one uvicorn worker per server"
    )
    for cell, path in CELLS.items():
        print(f"  {cell:>8}: GET {path}, {pages[cell]}")
    print("req/s: median (range); ratios: the median of each round's own ratio")
    for stack in stacks:
        print(f"{stack.name}:")
        for cell in CELLS:
            values = runs[stack.name, cell]
            to_bare = paired(values, runs[stack.name, "bare"])
            print(
                f"  {cell:>8}: {medians[stack.name, cell]:6.0f} req/s "
                f"({min(values):.0f} to {max(values):.0f}), {to_bare:.3f}x bare"
            )
        latencies = delivered[stack.name]
        print(
            f"  delivery check: {len(latencies)} of {arguments.samples} forms reached the relay, "
            f"p50 {statistics.median(latencies) * 1000:.1f} ms"
        )
        print(
            f"  peak memory (VmHWM): bare {memory[stack.name, 'bare']:.0f} MB, "
            f"forms {memory[stack.name, 'forms']:.0f} MB; after SIGTERM: "
            f"bare {stopped(exits[stack.name, 'bare'])}, "
            f"forms {stopped(exits[stack.name, 'forms'])}"
        )
    if len(stacks) == 2:
        plain, standard = (stack.name for stack in stacks)
        print("standard / plain:")
        for cell in CELLS:
            print(f"  {cell:>8}: {paired(runs[standard, cell], runs[plain, cell]):.2f}x req/s")
    else:
        print("uvloop or httptools is not importable here: the plain stack only.")


if __name__ == "__main__":
    main()
