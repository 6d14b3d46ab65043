"""The language-model pages in a real headless Chromium.

A small real ``speculative-draft`` run is trained first through the CLI into a store of its own
(one epoch on 32 documents, three generations per draft, with the shipped teacher). Then:
/language-models, where dragging β moves the student's curve and every number beside it while the
button is held, and the URL takes β only on release; /speculative, where the stored run's
token-by-token animation plays in the browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser import ARTIFACTS, ROOT, server_and_browser
from tests.test_e2e_browser import open_page

pytestmark = pytest.mark.browser
NUMBERS = (".kl-beta", ".kl-mu", ".kl-sigma", ".kl-fwd", ".kl-rev", ".kl-gap")


def readout(page) -> dict[str, str]:
    return {sel: page.locator(f"[data-testid='klview'] {sel}").inner_text() for sel in NUMBERS}


TMP = Path(tempfile.mkdtemp(prefix="kd-e2e-lm-"))
ENV = {"KD_STORE": str(TMP / "runs.sqlite"), "KD_CACHE_DIR": str(TMP / "cache")}


def small_run() -> None:
    """A real speculative-draft run into the server's store, through the CLI."""
    subprocess.run(
        [sys.executable, "-m", "kdcore", "run", "speculative-draft", "--epochs", "1",
         "--set", "docs=32", "--set", "test_docs=50", "--set", "samples=10",
         "--set", "generations=3", "--set", "first_words=20", "--device", "cpu"],
        cwd=ROOT, env={**os.environ, **ENV}, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


server, browser = server_and_browser("streamlit-lm.log", ENV, prepare=small_run)


def test_beta_moves_the_student_and_its_numbers_together(browser, server):
    page = open_page(browser, f"{server}/language-models?sep=6")
    try:
        from playwright.sync_api import expect

        expect(page.locator("[data-testid='klview'] .kl-mu")).not_to_have_text("", timeout=60_000)
        slider = page.locator("[data-testid='klview'] input[type=range]")
        slider.scroll_into_view_if_needed()
        before = readout(page)
        curve = page.locator("[data-testid='klview'] path.kl-q").get_attribute("d")
        box = slider.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 4, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 4, y, steps=15)
        page.wait_for_timeout(200)
        during = readout(page)  # still held: no rerun yet
        page.screenshot(path=str(ARTIFACTS / "lm-kl-dragging.png"))
        assert during[".kl-beta"] != before[".kl-beta"]
        assert during[".kl-mu"] != before[".kl-mu"] and during[".kl-gap"] != before[".kl-gap"]
        assert page.locator("[data-testid='klview'] path.kl-q").get_attribute("d") != curve
        assert "beta" not in parse_qs(urlparse(page.url).query)
        page.mouse.up()
        page.wait_for_function(
            "() => new URL(location.href).searchParams.has('beta')", timeout=20_000
        )
        page.wait_for_timeout(1500)
        assert float(parse_qs(urlparse(page.url).query)["beta"][0]) > 0.9
        assert readout(page) == during  # the rerun shows what the drag showed
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()


def test_the_methods_table_is_drawn_whole_at_two_widths(browser, server):
    """Every cell of "Whose text, which target" shows its whole text at a desktop and at a narrow
    width: nothing cut off inside a cell, and the table no wider than the page."""
    from kdcore.lm_methods import LM_METHODS

    page = open_page(browser, f"{server}/language-models")
    try:
        table = page.locator("[data-testid='stTable']").filter(has_text="it matches")
        for width in (1400, 760):
            page.set_viewport_size({"width": width, "height": 2400})
            page.wait_for_timeout(500)
            table.scroll_into_view_if_needed()
            text = table.inner_text()
            for m in LM_METHODS.values():
                assert m.summary in " ".join(text.split()), (width, m.summary)
            assert "any tokenizer" in " ".join(text.split())
            clipped = table.evaluate(
                """el => [...el.querySelectorAll('th, td')]
                         .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"""
            )
            assert clipped == [], (width, clipped)
            assert table.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), width
            page.screenshot(path=str(ARTIFACTS / f"lm-methods-table-{width}.png"))
    finally:
        page.close()


def test_the_stored_rounds_play_in_the_browser(browser, server):
    page = open_page(browser, f"{server}/speculative")
    try:
        main = page.locator("[data-testid='stMain']")
        assert main.get_by_text("Run #1").count() >= 1  # the CLI's run, read from the store
        chart = page.locator("[data-testid='stPlotlyChart']").filter(
            has=page.locator(".updatemenu-button")
        )  # the one animated chart: it has the Play button
        chart.scroll_into_view_if_needed()
        first = chart.locator(".gtitle").text_content()
        assert first.startswith("round 1 of")
        chart.locator(".updatemenu-button").first.click()  # Play
        page.wait_for_function(
            """t => [...document.querySelectorAll('.gtitle')]
                   .some(e => e.textContent.startsWith('round') && e.textContent !== t)""",
            arg=first,
            timeout=20_000,
        )
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "speculative-playing.png"))
        assert chart.locator(".gtitle").text_content() != first
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()
