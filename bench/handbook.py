"""Handbook measurements that are not tests: build time, first-view bytes and Lighthouse.

    .venv/bin/python bench/handbook.py            # build time and first-view bytes
    .venv/bin/python bench/handbook.py --lighthouse   # also Lighthouse (needs node and npm)

Times are noisy on shared machines, so the build is timed against a bare one-page Material site
built in the same run, and reported as a ratio. Lighthouse runs `npx lighthouse@12` against the
real server on loopback with Debian's Chromium.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import uvicorn

from forms_server.config.env import load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook
from forms_server.web.app import create_app

RUNS = 5
CHROME_FLAGS = (
    "--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync"
)


def median_build_seconds(config: Path, site: Path) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        build_handbook(config, site)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bare_site(folder: Path) -> Path:
    (folder / "docs").mkdir()
    (folder / "docs/index.md").write_text("# Hello\n\nOne page.\n")
    config = folder / "mkdocs.yml"
    config.write_text("site_name: Bare\ntheme:\n  name: material\n  font: false\nplugins: []\n")
    return config


def first_view_bytes(site: Path) -> dict[str, int]:
    """What the home page loads on a first visit, gzipped as the server sends it."""
    html = (site / "index.html").read_text("utf-8")
    files = ["index.html"]
    for marker in ('href="', 'src="'):
        for chunk in html.split(marker)[1:]:
            target = chunk.split('"', 1)[0]
            if target.endswith((".css", ".js", ".svg")) and "://" not in target:
                files.append(target.lstrip("./"))
    return {name: len(gzip.compress((site / name).read_bytes(), 9)) for name in files}


def serve_in_background(site: Path, port: int) -> uvicorn.Server:
    settings = replace(load_settings(env_file=None), site_dir=site, build_handbook_on_start=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=port, log_level="warning", access_log=False)
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def lighthouse(url: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [
                "npx",
                "--yes",
                "lighthouse@12",
                url,
                "--quiet",
                "--output=json",
                f"--output-path={report.name}",
                "--form-factor=mobile",
                f"--chrome-flags={CHROME_FLAGS}",
            ],
            check=True,
            env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"},
            capture_output=True,
        )
        result = json.loads(Path(report.name).read_text())
    scores = {
        name: round(category["score"] * 100) for name, category in result["categories"].items()
    }
    scores["total_kib"] = round(result["audits"]["total-byte-weight"]["numericValue"] / 1024, 1)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lighthouse", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        baseline = median_build_seconds(bare_site(work), work / "bare-site")
        handbook = median_build_seconds(PROJECT_ROOT / "mkdocs.yml", work / "site")
        print(
            f"build: handbook {handbook:.2f} s, bare one-page site {baseline:.2f} s, "
            f"ratio {handbook / baseline:.1f}x (median of {RUNS})"
        )
        sizes = first_view_bytes(work / "site")
        for name, size in sizes.items():
            print(f"  first view: {name} {size / 1024:.1f} KiB gzipped")
        print(f"first view (bodies, gzipped): {sum(sizes.values()) / 1024:.1f} KiB")
        if arguments.lighthouse:
            server = serve_in_background(work / "site", 8799)
            try:
                for page in ("", "guidelines/online-safety/", "about/privacy/"):
                    print(f"lighthouse /{page}: {lighthouse(f'http://127.0.0.1:8799/{page}')}")
            finally:
                server.should_exit = True


if __name__ == "__main__":
    main()
