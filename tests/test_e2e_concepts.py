"""The concept pages in a real headless Chromium: one T on the temperature page, a projector's
zoom, an offline favicon and a digit drawn with the mouse.

Same setup as tests/test_e2e_browser.py (Debian's chromium through Playwright, skipped without
it unless KD_REQUIRE_BROWSER=1). Playwright's CSS locators pierce the components' open shadow
roots, so ``.kd-t .mv`` finds the temperature component's metric values.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser import (
    ARTIFACTS,
    IDLE,
    label_problems,
    server_and_browser,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000  # the first visit loads MNIST and the demo models
PROJECTOR = {"width": 853, "height": 480}  # 1280x720 at 150% browser zoom, in CSS pixels


server, browser = server_and_browser("streamlit-concepts.log")


def settle(page) -> None:
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid^='stSkeleton']\")", timeout=TIMEOUT_MS
    )
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def open_page(browser, url: str, viewport=None, requests: list | None = None):
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 2000})
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=TIMEOUT_MS)
    settle(page)
    page.wait_for_selector(".kd-t .tv", timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)
    return page


def readout(page) -> dict:
    """What a user reads in the temperature component right now."""
    values = page.locator(".kd-t .mv").all_inner_texts()
    return {
        "T": page.locator(".kd-t .tv").inner_text(),
        "metrics": values,
        "para": page.locator(".kd-t .para").inner_text(),
        "bars": [
            round(b.bounding_box()["height"], 1) for b in page.locator(".kd-t rect.bar").all()
        ],
    }


def test_one_t_follows_the_drag_and_the_url_keeps_it(browser, server):
    page = open_page(browser, f"{server}/temperature")
    try:
        slider = page.locator(".kd-t input[type=range]")
        slider.scroll_into_view_if_needed()
        before = readout(page)
        assert before["T"] == "T = 1.00" and "At T = 1.00" in before["para"]
        box = slider.bounding_box()
        lo, hi = float(slider.get_attribute("min")), float(slider.get_attribute("max"))
        frac = (float(slider.input_value()) - lo) / (hi - lo)
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 8 + frac * (box["width"] - 16), y)
        page.mouse.down()
        page.mouse.move(box["x"] + 0.8 * box["width"], y, steps=12)
        page.wait_for_timeout(200)
        during = readout(page)  # the button is still held: no rerun has happened
        page.screenshot(path=str(ARTIFACTS / "temperature-one-t-dragging.png"))
        shown_t = during["T"].removeprefix("T = ")
        assert float(shown_t) > 5, during["T"]
        assert during["metrics"] != before["metrics"], "the metrics did not follow the drag"
        assert f"At T = {shown_t}" in during["para"], "the paragraph did not follow the drag"
        assert max(during["bars"]) < max(before["bars"])  # softer: the top bar shrinks
        assert "T" not in parse_qs(urlparse(page.url).query)  # nothing sent before release
        page.mouse.up()
        page.wait_for_function(
            "t => new URL(location.href).searchParams.has('T')", arg=None, timeout=20_000
        )
        settle(page)
        url_t = parse_qs(urlparse(page.url).query)["T"][0]
        assert f"{float(url_t):.2f}" == shown_t, (url_t, shown_t)
        after = readout(page)
        assert after["T"] == during["T"] and after["metrics"] == during["metrics"]
        assert after["para"] == during["para"]
        legend = page.locator("[data-testid='stPlotlyChart'] .legendtext").evaluate_all(
            "els => els.map(e => e.textContent)"
        )
        assert f"teacher at T = {shown_t}" in legend  # the label-smoothing chart follows too
        assert page.locator("[data-testid='stException']").count() == 0
        # The link opens the same view.
        again = open_page(browser, page.url)
        try:
            assert readout(again)["metrics"] == after["metrics"]
        finally:
            again.close()
    finally:
        page.close()


def test_the_slider_answers_the_keyboard(browser, server):
    page = open_page(browser, f"{server}/temperature?T=2")
    try:
        slider = page.locator(".kd-t input[type=range]")
        assert page.locator(".kd-t label").inner_text() == "Temperature T"
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "() => new URL(location.href).searchParams.get('T') !== '2'", timeout=20_000
        )
        settle(page)
        assert float(parse_qs(urlparse(page.url).query)["T"][0]) > 2
    finally:
        page.close()


def test_the_slider_reaches_both_ends_from_a_t_off_the_grid(browser, server):
    """T = 3.3 is not one of the grid's stops, so the page's frames are the grid plus 3.3: one
    more than at T = 50. The slider's range must follow the frames each time, or End stopped a
    stop short of 50 and the next step past it threw in the browser and froze the numbers."""
    errors: list[str] = []
    page = open_page(browser, f"{server}/temperature?T=3.3")
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        slider = page.locator(".kd-t input[type=range]")
        for _ in range(2):  # the first End reruns the page at T = 50, the second is at the end
            slider.focus()
            page.keyboard.press("End")
            page.wait_for_function(
                "() => new URL(location.href).searchParams.get('T') === '50'", timeout=20_000
            )
            settle(page)
            page.wait_for_timeout(300)
            assert slider.input_value() == slider.get_attribute("max")
            assert readout(page)["T"] == "T = 50.00"
        slider.focus()
        page.keyboard.press("Home")
        page.wait_for_function(
            "() => new URL(location.href).searchParams.get('T') === '0.1'", timeout=20_000
        )
        settle(page)
        assert readout(page)["T"] == "T = 0.10"
        assert errors == []
    finally:
        page.close()


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("slug", ["temperature", "kd-loss"])
def test_a_projector_at_150_percent_zoom_shows_whole_numbers(browser, server, slug):
    page = (
        open_page(browser, f"{server}/{slug}", viewport=PROJECTOR)
        if slug == "temperature"
        else None
    )
    if page is None:
        page = browser.new_page(viewport=PROJECTOR)
        page.goto(f"{server}/{slug}")
        page.wait_for_selector("[data-testid='stMetricValue']", timeout=TIMEOUT_MS)
        settle(page)
    try:
        target = ".kd-t .panels" if slug == "temperature" else "[data-testid='stMetricValue']"
        page.locator(target).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{slug}-853x480.png"))
        for sel in (".kd-t .mv", ".kd-t .tv", "[data-testid='stMetricValue']"):
            for el in page.locator(sel).all():
                text = el.inner_text()
                assert "…" not in text and "..." not in text, (sel, text)
                clipped = el.evaluate("e => e.scrollWidth > e.clientWidth + 1")
                assert not clipped, f"{sel} {text!r} is cut off"
        if slug == "temperature":
            words = page.locator(".kd-t svg.curves text")
            sharper = words.filter(has_text=re.compile("^sharper$")).bounding_box()
            softer = words.filter(has_text="uniform").bounding_box()
            assert not overlaps(sharper, softer)
            ticks = page.locator(".kd-t svg.curves text.tick-t")  # the T axis, 0.1 ... 50
            assert ticks.evaluate_all("els => els.map(e => e.textContent)") == [
                "0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50"
            ]  # fmt: skip
            ticks = [t.bounding_box() for t in ticks.all()]
            assert not any(overlaps(a, b) for a, b in itertools.pairwise(ticks))
    finally:
        page.close()


def test_nothing_is_fetched_from_another_host(browser, server):
    requests: list[str] = []
    page = open_page(browser, f"{server}/temperature", requests=requests)
    try:
        icon = page.locator("link[rel~='icon']").first.get_attribute("href") or ""
        assert not icon.startswith("http") or icon.startswith(server), icon
        host = urlparse(server).netloc
        foreign = [u for u in requests if urlparse(u).netloc not in (host, "")]
        assert not [u for u in foreign if not u.startswith("data:")], foreign
    finally:
        page.close()


def test_a_digit_drawn_with_the_mouse_reaches_the_teacher(browser, server):
    page = open_page(browser, f"{server}/temperature?src=your+digit")
    try:
        canvas = page.locator(".kd-draw canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        x = box["x"] + box["width"] * 0.5
        page.mouse.move(x, box["y"] + box["height"] * 0.15)
        page.mouse.down()
        page.mouse.move(x + 2, box["y"] + box["height"] * 0.85, steps=10)
        page.mouse.up()
        page.get_by_text("reads your digit as a").wait_for(timeout=30_000)
        settle(page)
        text = page.locator("[data-testid='stMain']").inner_text()
        assert "reads your digit as a 1." in text, text
        page.screenshot(path=str(ARTIFACTS / "temperature-own-digit.png"))
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 720}, PROJECTOR], ids=str)
@pytest.mark.parametrize("slug", ["temperature", "kd-loss"])
def test_presenter_mode_holds_at_720p_and_150_percent_zoom(browser, server, slug, viewport):
    """?present=1 in front of a room: no sidebar, nothing wider than the screen, no number cut
    off, no exception box."""
    page = browser.new_page(viewport=viewport)
    try:
        page.goto(f"{server}/{slug}?present=1")
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=TIMEOUT_MS)
        settle(page)
        page.wait_for_timeout(500)
        assert "present=1" in page.url
        assert page.locator("[data-testid='stException']").count() == 0
        sidebar = page.locator("[data-testid='stSidebar']")
        assert sidebar.count() == 0 or not sidebar.first.is_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than the screen"
        assert label_problems(page) == []  # every chart's text drawn whole
        for sel in (".kd-t .mv", "[data-testid='stMetricValue']"):
            for el in page.locator(sel).all():
                text = el.inner_text()
                assert "…" not in text, (sel, text)
                assert not el.evaluate("e => e.scrollWidth > e.clientWidth + 1"), (sel, text)
        # paragraphs fold to one line, but not one with the view's numbers in bold
        cut = page.evaluate(
            """() => [...document.querySelectorAll("[data-testid='stMain'] p")]
                .filter(p => p.querySelector('strong') && p.scrollHeight > p.clientHeight + 2)
                .map(p => p.innerText.slice(0, 60))"""
        )
        assert cut == [], cut
        name = f"present-{slug}-{viewport['width']}x{viewport['height']}.png"
        page.screenshot(path=str(ARTIFACTS / name))
    finally:
        page.close()


# Each display equation: whether its formula fits its column, and the size it is drawn at
# against KaTeX's own (1 when the fitting script left it alone).
EQUATIONS = """() => [...document.querySelectorAll('.katex-display')].map(d => {
    const k = d.querySelector(':scope > .katex'), c = d.getBoundingClientRect();
    const boxes = [...k.querySelectorAll('.katex-html > .base, .katex-html > .tag')]
        .map(b => b.getBoundingClientRect());
    const fits = boxes.every(b => b.left >= c.left - 1 && b.right <= c.right + 1);
    const own = 1.21 * parseFloat(getComputedStyle(d).fontSize);
    const scale = parseFloat(getComputedStyle(k).fontSize) / own;
    return {text: k.textContent.slice(0, 40), fits, scale};
})"""
# What KaTeX draws in its error red instead of failing: an unknown command, such as "\quadq"
# where two raw strings were joined without a space between "\quad" and "q".
UNKNOWN_MACROS = """() => [...document.querySelectorAll('.katex-error, .katex [style*="color"]')]
    .filter(e => e.classList.contains('katex-error')
                 || getComputedStyle(e).color === 'rgb(204, 0, 0)')
    .map(e => e.textContent)"""
PHONE = {"width": 390, "height": 844}
# Buttons of segmented controls and pills drawn past the right edge of the screen (a strip that
# scrolls sideways hid digits 8 and 9 on a phone).
CUT_BUTTONS = """() => [...document.querySelectorAll("[data-testid='stButtonGroup'] button")]
    .filter(b => b.getBoundingClientRect().width > 0
                 && b.getBoundingClientRect().right > window.innerWidth)
    .map(b => b.innerText)"""


@pytest.mark.parametrize(
    "slug", ["temperature", "kd-loss", "dkd", "label-smoothing", "zero-shot",
             "consistent-teaching", "deit",
             "language-models", "attention-relations", "hidden-states", "distilbert",
             "speculative", "relations", "channels", "projector", "features", "modes"],
)  # fmt: skip
def test_every_equation_fits_a_phone_at_a_readable_size(browser, server, slug):
    """KaTeX does not wrap: at 390 px each display equation is drawn whole (the router's script
    shrinks one that is wider than its column), and at no less than 70% of its size, so a long
    one is broken into lines where it is written rather than shrunk out of reading. Every button
    of a one-of-several control is on the screen too (ten digits wrap onto a second row), and
    no equation has a command KaTeX does not know (drawn in red rather than refused)."""
    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(f"{server}/{slug}")
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=TIMEOUT_MS)
        settle(page)
        page.wait_for_selector(".katex-display", timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)  # the fitting runs on the next animation frame
        shown = page.evaluate(EQUATIONS)
        assert shown
        assert [e["text"] for e in shown if not e["fits"]] == []
        assert [(e["text"], round(e["scale"], 2)) for e in shown if e["scale"] < 0.7] == []
        assert page.evaluate(UNKNOWN_MACROS) == []
        assert page.evaluate(CUT_BUTTONS) == []
    finally:
        page.close()
