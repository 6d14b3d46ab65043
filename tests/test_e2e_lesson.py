"""End to end in Chromium: one lesson step. Open /lesson?step=2, follow "Open this view", and
check that the target page shows the step's settings (in its URL and its controls), with the
lesson strip above it and no exception box; then presenter mode keeps ?present=1 across it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from app import lesson
from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    require_browser,
    streamlit_server,
)
from tests.test_e2e_browser import open_page

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with streamlit_server("streamlit-lesson.log") as url, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b, url
        b.close()


def follow_view_link(page) -> None:
    page.get_by_role("link", name="Open this view").click()
    page.wait_for_selector("[data-testid='stMain'] h1:not(:has-text('Knowledge distillation in'))",
                           timeout=TIMEOUT_MS)  # fmt: skip
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


@pytest.mark.parametrize("present", [False, True], ids=["plain", "presenter"])
def test_a_lesson_step_opens_its_view_with_its_settings(browser, present):
    b, url = browser
    step = lesson.load().steps[1]
    settings = dict(step.params)
    assert step.page == "temperature" and "T" in settings  # what this test checks below
    page = open_page(b, f"{url}/lesson?step=2" + ("&present=1" if present else ""))
    try:
        assert step.title in page.locator("[data-testid='stMain']").inner_text()
        # the link itself carries presenter mode, so a view opened in a new tab keeps it
        href = page.get_by_role("link", name="Open this view").get_attribute("href")
        assert ("present=1" in href) is present, href
        follow_view_link(page)
        query = parse_qs(urlparse(page.url).query)
        assert urlparse(page.url).path == f"/{step.page}"
        # Streamlit drops a setting equal to the page's default (digit 2, index 7) from the
        # URL; T = 4 is not the default, so it stays, and the box shows it
        assert query.get("T") == [settings["T"]], page.url
        main = page.locator("[data-testid='stMain']").inner_text()
        assert f"Step 2 of {len(lesson.load().steps)}" in main  # the strip
        assert page.locator("[data-testid='stException']").count() == 0
        assert "Traceback" not in main
        assert (query.get("present") == ["1"]) is present
        assert page.locator("[data-testid='stSidebar']").is_visible() is not present
        page.screenshot(path=str(ARTIFACTS / f"lesson-step-2{'-present' if present else ''}.png"))
    finally:
        page.close()


def test_a_step_shows_its_own_settings_whatever_came_before(browser):
    """Pages share control names: the loss page's α = 0.9 (steps 6–7) once stayed in the
    session and overrode the DKD step's own link (α 0.9, digit 2, index 19 where the step
    names none of them) and the speculative step's α = 0.8. Each step now opens on its link."""
    b, url = browser
    steps = lesson.load().steps
    n_loss = next(s.number for s in steps if s.page == "kd-loss")
    n_dkd = next(s.number for s in steps if s.page == "dkd")
    assert dict(steps[n_loss - 1].params)["alpha"] == "0.9"  # what the loss step leaves behind
    assert "alpha" not in dict(steps[n_dkd - 1].params)
    page = open_page(b, f"{url}/lesson?step={n_loss}")
    try:
        follow_view_link(page)
        weight = page.locator("[data-testid='stSlider']").filter(has_text="weight of the teacher")
        assert "0.90" in weight.inner_text()  # the loss page's α (its default: not in the URL)
        for _ in range(n_dkd - n_loss):  # Next, Next, ... in the strip, one session
            page.locator(".st-key-lesson_strip").get_by_role("link", name="Next").click()
            page.wait_for_timeout(800)
            page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        assert urlparse(page.url).path == "/dkd"
        query = parse_qs(urlparse(page.url).query)
        assert "alpha" not in query and "idx" not in query, page.url  # the page's defaults
        slider = page.locator("[data-testid='stSlider']").filter(has_text="weight of TCKD")
        assert "1.00" in slider.inner_text()  # DKD's own default α, not the loss page's 0.9
    finally:
        page.close()


def test_back_across_pages_keeps_the_step_s_teacher(browser):
    """The step on the paper's teacher, Next to the loss page, then Back: Streamlit drops from
    the address the params bound to the page left (the loss page's own teacher control), so the
    step once came back with the demo teacher while its text spoke of the paper's."""
    b, url = browser
    steps = lesson.load().steps
    n = next(s.number for s in steps if dict(s.params).get("teacher") == "paper")
    assert steps[n].page != steps[n - 1].page  # Next leaves the page
    page = open_page(b, f"{url}/{steps[n - 1].page}?{urlencode(steps[n - 1].query)}")

    def teacher() -> list[str]:
        buttons = page.locator(".st-key-teacher button[aria-checked='true']")
        return buttons.all_inner_texts()

    try:
        assert teacher() == ["paper"]
        for name in ("Next", "Back"):
            page.locator(".st-key-lesson_strip").get_by_role("link", name=name).click()
            page.wait_for_timeout(800)
            page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        assert parse_qs(urlparse(page.url).query).get("teacher") == ["paper"], page.url
        assert teacher() == ["paper"]
    finally:
        page.close()


def test_the_strip_on_a_side_trip_is_in_the_address(browser):
    """A lesson step, then another page through the sidebar: the strip goes along, and so does
    ?lesson=N, so a reload or a copied link keeps it (it used to vanish on reload). The side
    page keeps its own settings: the step's T = 4 is for the temperature page."""
    b, url = browser
    page = open_page(b, f"{url}/lesson?step=2")
    try:
        follow_view_link(page)
        page.locator("[data-testid='stSidebarNavLink']", has_text="Decoupled KD").first.click()
        page.wait_for_url("**/dkd**", timeout=TIMEOUT_MS)
        page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        page.wait_for_timeout(1000)
        assert parse_qs(urlparse(page.url).query) == {"lesson": ["2"]}, page.url
        page.reload()
        page.wait_for_selector(".st-key-lesson_strip", timeout=TIMEOUT_MS)
        assert "Step 2 of" in page.locator(".st-key-lesson_strip").inner_text()
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()


def test_next_on_the_same_page_shows_the_step_s_switches(browser):
    """Step 3 turns the temperature page's log scale on, step 4 (the same page) does not name
    it: after Next in the strip the switch reads OFF, as the chart is drawn (it read ON over a
    linear chart: the page forgot the value, the browser kept showing it)."""
    b, url = browser
    steps = lesson.load().steps
    n = next(s.number for s in steps if dict(s.params).get("log") == "true")
    assert steps[n].page == steps[n - 1].page and "log" not in dict(steps[n].params)
    page = open_page(b, f"{url}/lesson?step={n}")
    try:
        follow_view_link(page)
        switch = page.get_by_role("switch", name="Log scale")
        assert switch.is_checked()
        page.locator(".st-key-lesson_strip").get_by_role("link", name="Next").click()
        page.wait_for_function(
            f"() => new URL(location.href).searchParams.get('lesson') === '{n + 1}'",
            timeout=TIMEOUT_MS,
        )
        page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        page.wait_for_timeout(1000)
        assert not switch.is_checked()
        assert "log" not in parse_qs(urlparse(page.url).query)
        ticks = page.locator(".kd-t svg.bars text").all_inner_texts()
        assert "1e-3" not in ticks, ticks  # the chart is linear, as the switch says
    finally:
        page.close()


# Each label in the lesson strip's buttons and links that its box cuts off ("Bac", "E…").
CUT_LABELS = """() => [...document.querySelectorAll(
        '.st-key-lesson_strip a, .st-key-lesson_strip button')]
    .filter(b => [b, ...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
    .map(b => b.innerText)"""


@pytest.mark.parametrize(
    "viewport,present",
    [((1280, 720), False), ((853, 480), False), ((853, 480), True), ((390, 844), False)],
    ids=["720p", "150%-zoom-sidebar", "150%-zoom-presenter", "phone"],
)
def test_the_strip_shows_every_button_whole(browser, viewport, present):
    """At 1280x720 and at 150% zoom (853x480 CSS pixels) with the sidebar open, the main column
    is 520 px: Back and End were cut to "Bac" and "E…" until the question took its own row
    there. Presenter mode (no sidebar) and a phone keep them whole too."""
    b, url = browser
    width, height = viewport
    page = b.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{url}/temperature?lesson=2" + ("&present=1" if present else ""))
        page.wait_for_selector(".st-key-lesson_strip a", timeout=TIMEOUT_MS)
        page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        assert page.evaluate(CUT_LABELS) == []
        labels = page.locator(".st-key-lesson_strip").inner_text()
        assert all(w in labels for w in ("Back", "Lesson", "Next", "End")), labels
        page.screenshot(path=str(ARTIFACTS / f"lesson-strip-{width}x{height}-{present}.png"))
    finally:
        page.close()
