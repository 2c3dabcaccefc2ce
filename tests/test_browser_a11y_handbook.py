"""Issue 22, the handbook (WCAG 2.2): focus that can be seen, a menu a keyboard can open,
targets large enough, and a header that fits a small phone."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.browser import visit
from tests.handbook_pages import HandbookPage
from tests.test_browser_quick_exit import EXIT_URL

pytestmark = pytest.mark.browser

PHONE = {"width": 320, "height": 640}
LAPTOP = {"width": 1280, "height": 800}

# Where the focused element shows: its own box, or for a control drawn by its label (a
# checkbox or radio the theme hides behind its label), the label's. Seen means a box of some
# size inside the screen, on top there (not under the header or the drawer's edge), with a
# focus ring at least 2 px wide on it.
FOCUS_SEEN = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return null;
  const next = element.nextElementSibling;
  const drawn = [element, ...(element.labels || []),
                 ...(next && next.tagName === 'LABEL' ? [next] : [])];
  const shown = drawn.map((candidate) => {
    const box = candidate.getBoundingClientRect();
    const inside = box.width >= 2 && box.height >= 2 && box.left >= -0.5 && box.top >= -0.5
      && box.right <= window.innerWidth + 0.5 && box.bottom <= window.innerHeight + 0.5;
    let onTop = false;
    if (inside) {
      // A link that wraps is two boxes with a gap between: look at the middle of each line.
      onTop = [...candidate.getClientRects()].some((line) => {
        const hit = document.elementFromPoint(line.left + line.width / 2,
                                              line.top + line.height / 2);
        return !!hit && (candidate.contains(hit) || element.contains(hit));
      });
    }
    const style = getComputedStyle(candidate);
    return {
      seen: inside && onTop && style.visibility !== 'hidden',
      // A ring GOV.UK would pass: solid (not the browser's thin "auto"), 2 px or more.
      ring: !['none', 'auto'].includes(style.outlineStyle) && parseFloat(style.outlineWidth) >= 2,
      box: [box.left, box.top, box.width, box.height].map(Math.round),
    };
  });
  const best = shown.find((one) => one.seen && one.ring) || shown.find((one) => one.seen)
    || shown[0];
  const name = (element.getAttribute('aria-label') || element.textContent || element.id || '')
    .trim().replace(/\\s+/g, ' ').slice(0, 40);
  return {tag: element.tagName, name, ...best};
}"""


def tab_through(page: Page, limit: int = 150) -> list[dict[str, Any]]:
    """Every tab stop of the page, in order, from the top, until focus leaves the page."""
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_SEEN)
        if focused is None:
            break
        stops.append(focused)
    return stops


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_every_tab_stop_on_the_home_page_can_be_seen_at_phone_width(
    browser: Browser, server_url: str, javascript: bool
) -> None:
    """WCAG 2.4.7, 2.4.11: without JavaScript the closed drawer's links (and the colour
    toggle's hidden radios) were tab stops nobody could see."""
    with visit(
        browser, server_url, EXIT_URL, viewport=PHONE, java_script_enabled=javascript
    ) as record:
        page = record.page
        page.goto(f"{server_url}/")
        stops = tab_through(page)
    unseen = [stop for stop in stops if not stop["seen"]]
    unringed = [stop for stop in stops if stop["seen"] and not stop["ring"]]
    assert len(stops) > 10
    assert unseen == [], f"{len(unseen)} of {len(stops)} tab stops cannot be seen"
    assert unringed == [], f"{len(unringed)} of {len(stops)} tab stops show no focus ring"


def open_the_menu_with_the_keyboard(page: Page) -> None:
    """From the top of the page, Tab to the menu and press it: Space, as a checkbox or a
    button takes (Enter works on the button too)."""
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate(
            """() => {
              const element = document.activeElement;
              const labels = element.labels ? [...element.labels] : [];
              return element.getAttribute('aria-label') === 'Menu'
                || labels.some((label) => label.textContent.trim() === 'Menu');
            }"""
        ):
            break
    else:
        pytest.fail("no menu control among the first ten tab stops")
    page.keyboard.press("Space")


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_the_menu_opens_from_the_keyboard_and_its_links_are_reached(
    browser: Browser, server_url: str, pages: list[HandbookPage], javascript: bool
) -> None:
    """WCAG 2.1.1: at phone width the navigation is in a drawer; a keyboard opens it and
    reaches every page's link in it, each one seen, with or without JavaScript."""
    with visit(
        browser, server_url, EXIT_URL, viewport=PHONE, java_script_enabled=javascript
    ) as record:
        page = record.page
        page.goto(f"{server_url}/")
        open_the_menu_with_the_keyboard(page)
        # Once it has slid in.
        expect(page.locator(".md-sidebar--primary")).to_be_in_viewport(ratio=1)
        reached: list[dict[str, Any]] = []
        for press in range(120):
            if press:  # with JavaScript, opening it puts focus on its first link
                page.keyboard.press("Tab")
            focused = page.evaluate(FOCUS_SEEN)
            if focused is None:
                break
            if page.evaluate("!!document.activeElement.closest('.md-sidebar--primary')"):
                reached.append(
                    {**focused, "href": page.evaluate("document.activeElement.href || ''")}
                )
    unseen = [stop for stop in reached if not stop["seen"]]
    assert unseen == [], f"{len(unseen)} of {len(reached)} drawer tab stops cannot be seen"
    hrefs = {stop["href"].removeprefix(server_url + "/") for stop in reached}
    missing = [p.url_path for p in pages if p.url_path not in hrefs]
    assert missing == []


MENU_STATE = """() => {
  const menus = [...document.querySelectorAll('.md-header [aria-label="Menu"]')]
    .filter((element) => element.getBoundingClientRect().width > 0);
  return menus.map((menu) => {
    const controls = menu.getAttribute('aria-controls');
    const drawer = controls && document.getElementById(controls);
    return {
      tag: menu.tagName,
      role: menu.getAttribute('role'),
      expanded: menu.getAttribute('aria-expanded'),
      controls_the_drawer: !!drawer && !!drawer.querySelector('.md-nav--primary'),
      open: document.getElementById('__drawer').checked,
    };
  });
}"""


@pytest.mark.parametrize("how", ["Enter", "Space", "click"])
def test_the_menu_is_a_button_that_says_whether_it_is_open(
    browser: Browser, server_url: str, how: str
) -> None:
    """With JavaScript the menu is a real button (not role="button" on a label), controls
    the drawer, and keeps aria-expanded true while open and false once closed, however it
    was opened or closed."""
    with visit(browser, server_url, EXIT_URL, viewport=PHONE) as record:
        page = record.page
        page.goto(f"{server_url}/guidelines/")
        closed = page.evaluate(MENU_STATE)
        menu = page.locator('.md-header [aria-label="Menu"]:visible')
        if how == "click":
            menu.click()
        else:
            menu.focus()
            page.keyboard.press(how)
        expect(page.locator(".md-sidebar--primary a[href]:visible").first).to_be_in_viewport()
        opened = page.evaluate(MENU_STATE)
        page.keyboard.press("Escape")
        after_escape = page.evaluate(MENU_STATE)
        menu.click()
        page.locator(".md-overlay").click(position={"x": 300, "y": 300})
        after_overlay = page.evaluate(MENU_STATE)
        assert record.console_errors == []
    button = {"tag": "BUTTON", "role": None, "controls_the_drawer": True}
    assert closed == [{**button, "expanded": "false", "open": False}]
    assert opened == [{**button, "expanded": "true", "open": True}]
    assert after_escape == [{**button, "expanded": "false", "open": False}]
    assert after_overlay == [{**button, "expanded": "false", "open": False}]


HEADER_NAME = """() => {
  const name = document.querySelector('.md-header__topic .md-ellipsis');
  const box = name.getBoundingClientRect();
  const range = document.createRange();
  range.selectNodeContents(name);
  const text = range.getBoundingClientRect();
  const controls = [...document.querySelectorAll(
    '.md-header a, .md-header button, .md-header label, .md-header input')]
    .map((control) => control.getBoundingClientRect())
    .filter((control) => control.width > 1 && control.height > 1);
  const overlaps = controls.filter((control) => control.left < text.right - 0.5
    && text.left < control.right - 0.5 && control.top < text.bottom - 0.5
    && text.top < control.bottom - 0.5).length;
  return {
    cut: name.scrollWidth > name.clientWidth + 0.5 || text.right > box.right + 0.5
      || text.right > window.innerWidth + 0.5 || text.left < -0.5,
    overlaps,
  };
}"""


@pytest.mark.parametrize("width", [320, 360, 400, 1280])
@pytest.mark.parametrize("path", ["/", "/forms/concern/"])
def test_the_header_shows_the_site_name_in_full(
    browser: Browser, server_url: str, width: int, path: str
) -> None:
    """At 360 px the name was cut to "Harbou..."; now it wraps onto a row of its own."""
    with visit(browser, server_url, EXIT_URL, viewport={"width": width, "height": 640}) as record:
        page = record.page
        page.goto(server_url + path)
        assert page.evaluate(HEADER_NAME) == {"cut": False, "overlaps": 0}
        # Scrolled, the theme swaps the name for the page's title: still whole.
        page.evaluate("window.scrollTo(0, 600)")
        assert page.evaluate(HEADER_NAME) == {"cut": False, "overlaps": 0}


PALETTE_RING = """() => {
  const focused = document.activeElement;
  const label = focused.nextElementSibling;
  const style = getComputedStyle(label);
  return {input: focused.classList.contains('md-option'), style: style.outlineStyle,
          width: parseFloat(style.outlineWidth), colour: style.outlineColor};
}"""


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["320px", "1280px"])
def test_the_colour_toggle_shows_focus_as_every_other_control(
    browser: Browser, server_url: str, color_scheme: str, viewport: dict[str, int]
) -> None:
    """Its ring was the browser's thin "auto" outline; now the site's 3 px yellow."""
    with visit(
        browser, server_url, EXIT_URL, viewport=viewport, color_scheme=color_scheme
    ) as record:
        page = record.page
        page.goto(f"{server_url}/")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('md-option')"):
                break
        ring = page.evaluate(PALETTE_RING)
    assert ring == {"input": True, "style": "solid", "width": 3, "colour": "rgb(255, 221, 0)"}


TABLE_REGION = """() => {
  const focused = document.activeElement;
  const table = focused.querySelector('table');
  if (!table) return null;
  const heading = document.getElementById(focused.getAttribute('aria-labelledby') || '');
  return {
    role: focused.getAttribute('role'),
    name: focused.getAttribute('aria-label') || (heading && heading.textContent.trim()),
    scrolls: focused.scrollWidth > focused.clientWidth,
    left: focused.scrollLeft,
  };
}"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_wide_table_can_be_scrolled_from_the_keyboard(
    browser: Browser, server_url: str, pages: list[HandbookPage], javascript: bool
) -> None:
    """WCAG 2.1.1: at 320 px a wide table scrolls sideways in its own box; that box is a tab
    stop, a named region, and the arrow keys scroll it, with or without JavaScript."""
    tables: dict[str, dict[str, Any]] = {}
    with visit(
        browser, server_url, EXIT_URL, viewport=PHONE, java_script_enabled=javascript
    ) as record:
        page = record.page
        for handbook_page in pages:
            page.goto(f"{server_url}/{handbook_page.url_path}")
            count = page.locator("article table").count()
            if not count:
                continue
            found: list[dict[str, Any] | None] = []
            for _ in range(200):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement === document.body"):
                    break
                region = page.evaluate(TABLE_REGION)
                if region is None:
                    continue
                if region["scrolls"]:
                    page.keyboard.press("ArrowRight")
                    # The browser scrolls smoothly: wait until it has moved at all.
                    expect(page.locator(":focus")).not_to_have_js_property("scrollLeft", 0)
                    region["moved"] = True
                found.append(region)
            tables[handbook_page.source] = {"tables": count, "regions": found}
    assert any(entry["tables"] for entry in tables.values())
    for source, entry in tables.items():
        assert len(entry["regions"]) == entry["tables"], source
        for region in entry["regions"]:
            assert region["role"] == "region", (source, region)
            assert region["name"], (source, region)
            assert region.get("moved", True), (source, region)
    # The privacy notice's table is wider than a small phone: the arrow keys were tried.
    assert any("moved" in region for entry in tables.values() for region in entry["regions"])


def undersized_targets(page: Page) -> list[dict[str, Any]]:
    """Axe's target-size rule (WCAG 2.5.8): each target at least 24 by 24 px, or spaced so a
    24 px circle on it meets no other; links inside a sentence are exempt, as WCAG says."""
    results = Axe().run(page, options={"runOnly": {"type": "rule", "values": ["target-size"]}})
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        {"target": node["target"], "why": node["failureSummary"].splitlines()[-1].strip()}
        for violation in violations
        for node in violation["nodes"]
    ]


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["320px", "1280px"])
def test_every_target_on_every_page_is_large_enough(
    browser: Browser, server_url: str, pages: list[HandbookPage], viewport: dict[str, int]
) -> None:
    """WCAG 2.5.8: on the search page two menu links were too close together. Every handbook
    page, the search page with results too, at both widths, with the menu open at 320 px."""
    found: dict[str, list[dict[str, Any]]] = {}
    with visit(browser, server_url, EXIT_URL, viewport=viewport) as record:
        page = record.page
        for handbook_page in pages:
            page.goto(f"{server_url}/{handbook_page.url_path}")
            found[handbook_page.source] = undersized_targets(page)
        page.goto(f"{server_url}/search/?q=leave")
        expect(page.locator("main")).to_contain_text("leave")
        found["search results"] = undersized_targets(page)
        if viewport is PHONE:
            page.get_by_role("button", name="Menu").click()
            expect(page.locator(".md-sidebar--primary")).to_be_in_viewport(ratio=1)
            found["menu open"] = undersized_targets(page)
    assert {where: targets for where, targets in found.items() if targets} == {}
