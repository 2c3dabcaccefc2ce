"""The handbook's own search in a real browser: what it costs to download, and how soon it answers.

    .venv/bin/python -m bench.search [--runs 5] [--query camera]

Builds the handbook and serves it with the forms server (gzip on, its own headers) on loopback,
then drives Debian's Chromium through Playwright. Chromium resolves no host but 127.0.0.1, and
every request elsewhere is counted (it should be none). Routing is not used: Playwright turns the
HTTP cache off while it routes, and the second visit below relies on the cache.

- First view of the home page (fresh browser context): every response, bodies as sent (gzip
  above 1,000 bytes), with and without headers, and how many of those bytes are search's (none).
- What opening the search page adds, from the home page (cache warm): its HTML, search.js,
  search.css and search.json as sent, and anything else that went over the wire.
- Time to first result: from the navigation start of /search/ to the first result link on
  screen, typing the query key by key as soon as `form[data-search-ready]` exists; once from
  the home page (theme cached) and once cold (a fresh context, as from a link in an email).
- Time from one keystroke (Backspace) to the results list redrawn for the shorter query.
- The baseline, in the same run: the home page's navigation start to its load event.

Times are read from the page's own clock (performance.now(), whose zero is the navigation start),
so Playwright's round trips do not count, except the keystrokes it sends while typing. Medians of
`--runs`; the times are noisy on shared machines, so compare the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, sync_playwright

from bench.handbook import first_view_bytes
from forms_server.config.env import load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook
from forms_server.handbook.search import SEARCH_INDEX
from forms_server.web.app import create_app
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.test_browser_pages import FIRST_VIEW_BUDGET_BYTES

# Nothing but loopback resolves, so no request can leave the machine whatever a page asks for.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
# The files only the search page loads, as paths on the server.
SEARCH_FILES = ("/search/", "/assets/search.js", "/assets/search.css", f"/{SEARCH_INDEX}")


@dataclass(frozen=True)
class SearchUI:
    """Where a search lives on a page, so the same clock can time other search tools too."""

    path: str  # the page to open, e.g. "/search/"
    ready: str  # a selector that exists once typing will be answered
    field: str  # the search input
    results: str  # the element whose contents are the results
    link: str  # a result link, inside `results`


OURS = SearchUI(
    path="/search/",
    ready="form[data-search-ready]",
    field="#search-query",
    results="[data-search-results]",
    link="[data-search-results] a",
)

# Installed before any page script runs. `ready` is when the ready selector first exists; `typing`
# the first key's keydown and `typed` the input event that completes the query; `first` when,
# after that, the results area changes and shows a result link; `updated` likewise after a
# Backspace, whose keydown is `keydown`. All in ms from the navigation start.
CLOCK = """(ui) => {
  const t = { ready: null, typing: null, typed: null, first: null, keydown: null, updated: null };
  window.__searchClock = t;
  let typed = false;
  let erased = false;
  const shown = (element) => !!element && element.getClientRects().length > 0;
  const check = (mutations) => {
    const now = performance.now();
    if (t.ready === null && document.querySelector(ui.ready)) t.ready = now;
    const results = document.querySelector(ui.results);
    if (!results || !mutations.some((m) => results.contains(m.target))) return;
    if (!shown(document.querySelector(ui.link))) return;
    if (t.first === null && typed) t.first = now;
    else if (t.updated === null && erased) t.updated = now;
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
  // Capturing listeners run before the page's own, and only note what was typed.
  document.addEventListener("keydown", (event) => {
    if (t.typing === null) t.typing = event.timeStamp;
    if (t.first !== null && t.keydown === null) t.keydown = event.timeStamp;
  }, true);
  document.addEventListener("input", (event) => {
    if (!event.target.matches || !event.target.matches(ui.field)) return;
    typed = event.target.value === ui.query;
    if (typed && t.typed === null) t.typed = performance.now();
    erased = t.keydown !== null && event.target.value === ui.query.slice(0, -1);
  }, true);
}"""
LOAD_EVENT_MS = "performance.getEntriesByType('navigation')[0].loadEventEnd"


@dataclass
class Wire:
    """Every response a page received, and every request that tried to leave loopback."""

    own_host: str
    responses: list[Response] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("response", self.keep)
        page.on("request", self.check)

    def keep(self, response: Response) -> None:
        self.responses.append(response)

    def check(self, request: Request) -> None:
        if urlsplit(request.url).netloc != self.own_host and not request.url.startswith("data:"):
            self.elsewhere.append(request.url)

    def take(self) -> list[Response]:
        taken, self.responses = self.responses, []
        return taken


@dataclass(frozen=True)
class Sent:
    path: str
    body: int  # as sent: gzipped when the server gzipped it
    headers: int
    encoding: str
    from_cache: bool


def sent(responses: list[Response]) -> list[Sent]:
    found = []
    for response in responses:
        sizes = response.request.sizes()
        # Chromium counts a response from its cache as headers only, so its body goes negative.
        cached = sizes["responseBodySize"] < 0
        found.append(
            Sent(
                path=urlsplit(response.url).path,
                body=max(sizes["responseBodySize"], 0),
                headers=max(sizes["responseHeadersSize"], 0),
                encoding=response.headers.get("content-encoding", "identity"),
                from_cache=cached,
            )
        )
    return found


@contextmanager
def served(site: Path, data_dir: Path) -> Iterator[str]:
    """The forms server on loopback serving `site`, as `forms-server serve` would."""
    settings = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(data_dir),
            "FORMS_SITE_DIR": str(site),
            "FORMS_BUILD_HANDBOOK": "false",
        },
    )
    port = free_port()
    settings = replace(settings, port=port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the forms server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, LOOPBACK_ONLY]
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(context: BrowserContext, ui: SearchUI, query: str, wire: Wire) -> Page:
    context.add_init_script(f"({CLOCK})({json.dumps({**asdict(ui), 'query': query})})")
    page = context.new_page()
    wire.watch(page)
    return page


@dataclass(frozen=True)
class SearchTimes:
    """Milliseconds from the navigation start, but `keystroke`: from a keydown."""

    ready: float  # the ready selector exists
    typing: float  # the first key of the query goes down
    typed: float  # the last key of the query has changed the field
    first: float  # the first result for the query is on screen
    keystroke: float  # a Backspace's keydown to the results redrawn


def search_once(page: Page, base: str, ui: SearchUI, query: str) -> SearchTimes:
    """Open the search page, type the query as soon as it is ready, then erase one letter."""
    page.goto(base + ui.path, wait_until="commit")
    page.wait_for_selector(ui.ready, state="attached")
    page.locator(ui.field).press_sequentially(query)
    page.wait_for_function("() => window.__searchClock.first !== null")
    page.keyboard.press("Backspace")
    page.wait_for_function("() => window.__searchClock.updated !== null")
    clock: dict[str, Any] = page.evaluate("window.__searchClock")
    return SearchTimes(
        ready=clock["ready"],
        typing=clock["typing"],
        typed=clock["typed"],
        first=clock["first"],
        keystroke=clock["updated"] - clock["keydown"],
    )


@dataclass
class Run:
    home_load: float
    home: list[Sent]
    opened: list[Sent]
    warm: SearchTimes
    cold: SearchTimes


def one_run(browser: Browser, base: str, ui: SearchUI, query: str, wire: Wire) -> Run:
    context = browser.new_context()
    try:
        page = new_page(context, ui, query, wire)
        page.goto(base + "/", wait_until="load")
        home_load: float = page.evaluate(LOAD_EVENT_MS)
        page.wait_for_load_state("networkidle")
        home = sent(wire.take())
        warm = search_once(page, base, ui, query)
        page.wait_for_load_state("networkidle")
        opened = sent(wire.take())
    finally:
        context.close()
    context = browser.new_context()
    try:
        cold = search_once(new_page(context, ui, query, wire), base, ui, query)
        wire.take()
    finally:
        context.close()
    return Run(home_load, home, opened, warm, cold)


def described(item: Sent) -> str:
    return f"  {item.path:<46} {item.body:>6} B body ({item.encoding}), {item.headers} B headers"


def kib(size: float) -> str:
    return f"{size / 1024:.1f} KiB"


def report(runs: list[Run], site: Path, query: str) -> None:
    first = runs[0]
    home_bodies = sum(item.body for item in first.home)
    home_total = home_bodies + sum(item.headers for item in first.home)
    search_on_home = [item for item in first.home if "search" in item.path]
    print(f"Home page first view ({len(first.home)} responses, fresh context):")
    for item in first.home:
        print(described(item))
    print(
        f"  total: {kib(home_bodies)} bodies, {kib(home_total)} with headers "
        f"(budget {kib(FIRST_VIEW_BUDGET_BYTES)}); search's share: "
        f"{sum(item.body + item.headers for item in search_on_home)} B "
        f"in {len(search_on_home)} responses"
    )
    estimate = sum(first_view_bytes(site).values())
    print(f"  (bench/handbook.py's estimate from the files, gzip -9: {kib(estimate)})")

    print("Opening the search page from the home page (cache warm):")
    own = [item for item in first.opened if item.path in SEARCH_FILES and not item.from_cache]
    other = [item for item in first.opened if item not in own and not item.from_cache]
    for item in own:
        print(described(item))
    own_bodies = sum(item.body for item in own)
    print(
        f"  search page + script + style + index: {kib(own_bodies)} bodies, "
        f"{kib(own_bodies + sum(item.headers for item in own))} with headers"
    )
    print(
        f"  anything else over the wire: {sum(i.body + i.headers for i in other)} B in "
        f"{len(other)} responses ({sum(1 for i in first.opened if i.from_cache)} from the cache)"
    )

    baseline = statistics.median(run.home_load for run in runs)

    def median(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    def line(name: str, value: float) -> None:
        print(f"  {name:<62} {value:7.0f} ms  ({value / baseline:.2f}x the baseline)")

    print(f"Times, median of {len(runs)} (Chromium, loopback):")
    print(f"  {'baseline: home page, navigation start to load event':<62} {baseline:7.0f} ms")
    for name, times in (
        ("from the home page (theme cached)", [run.warm for run in runs]),
        ("cold (fresh context)", [run.cold for run in runs]),
    ):
        print(f"  search page opened {name}, from its navigation start:")
        line("    ready to type (form[data-search-ready])", median(t.ready for t in times))
        line(f'    first result for "{query}" on screen', median(t.first for t in times))
        print(
            f"      (first key down at {median(t.typing for t in times):.0f} ms; Playwright took "
            f"{median(t.typed - t.typing for t in times):.0f} ms to type {len(query)} keys; the "
            f"result showed {median(t.first - t.typed for t in times):.1f} ms after the last)"
        )
        line(
            "    the same, had the whole word come when the field was ready",
            median(t.ready + t.first - t.typed for t in times),
        )
    keystrokes = [value for run in runs for value in (run.warm.keystroke, run.cold.keystroke)]
    print(
        f"  {'a keystroke (Backspace) to the results redrawn':<62} "
        f"{statistics.median(keystrokes):7.1f} ms  (median of {len(keystrokes)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--query", default="camera")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        with served(site, Path(folder) / "data") as base, chromium() as browser:
            wire = Wire(urlsplit(base).netloc)
            runs = [
                one_run(browser, base, OURS, arguments.query, wire) for _ in range(arguments.runs)
            ]
        report(runs, site, arguments.query)
        print(f"Requests to any other host: {len(wire.elsewhere)} {wire.elsewhere[:3]}")


if __name__ == "__main__":
    main()
