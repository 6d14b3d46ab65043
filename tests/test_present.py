"""Presenter mode: ?present=1 and the sidebar toggle, kept across pages, and ui.prose."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.catalog import ROOT
from app.present import first_sentence

ROUTER = str(ROOT / "app" / "streamlit_app.py")


def styled(at: AppTest) -> bool:
    return any('[data-testid="stSidebar"]' in h.proto.body for h in at.get("html"))


def open_app(**params: str) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


@pytest.mark.parametrize("raw", ["1", "true", "on"])
def test_present_in_the_url_turns_it_on(raw):
    at = open_app(present=raw)
    assert not at.exception
    assert styled(at)
    assert at.query_params["present"] == "1"
    assert at.button(key="_present_exit_button")
    assert not at.sidebar.toggle  # the sidebar is hidden: the exit button stands in


def test_it_survives_a_page_change_and_can_be_left():
    at = open_app(present="1")
    at.switch_page("../pages/lesson.py").run()
    assert not at.exception
    assert styled(at) and at.query_params["present"] == "1"
    at.button(key="_present_exit_button").click().run()
    assert not styled(at) and "present" not in at.query_params
    at.switch_page("../pages/overview.py").run()
    assert not styled(at)


def test_the_sidebar_toggle_turns_it_on_and_present_0_off():
    at = open_app()
    assert not styled(at) and "present" not in at.query_params
    at.sidebar.toggle(key="_present_toggle").set_value(True).run()
    assert styled(at) and at.query_params["present"] == "1"
    at.query_params["present"] = "0"
    at.run()
    assert not styled(at) and "present" not in at.query_params


def test_a_nonsense_value_changes_nothing_and_says_so():
    at = open_app(present="maybe")
    assert not at.exception and not styled(at)
    assert "present" not in at.query_params
    assert "presenter mode stays off" in at.toast[0].value
    at = open_app(present=["1", "0"])  # given twice: neither wins
    assert not at.exception and not styled(at) and "present" not in at.query_params


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("One. Two three.", "One."),
        ("Hinton et al. 2015 showed it. Then more.", "Hinton et al. 2015 showed it."),
        ("See §2.1 of the paper. *Then* this.", "See §2.1 of the paper."),
        ("No end", "No end"),
    ],
)
def test_first_sentence(text, first):
    head, rest = first_sentence(text)
    assert head == first
    assert f"{head} {rest}".strip() == text


PROSE_APP = """
import streamlit as st
from app import ui
st.session_state["_present"] = st.query_params.get("present") == "1"
ui.prose("First sentence here. The rest of a long paragraph.")
"""


def test_prose_folds_to_its_first_sentence_in_presenter_mode():
    at = AppTest.from_string(PROSE_APP, default_timeout=30)
    at.query_params["present"] = "1"
    at.run()
    assert [m.value for m in at.markdown] == [
        "First sentence here.",
        "The rest of a long paragraph.",
    ]
    assert at.expander[0].label == "More"
    plain = AppTest.from_string(PROSE_APP, default_timeout=30).run()
    assert [m.value for m in plain.markdown] == [
        "First sentence here. The rest of a long paragraph."
    ]
    assert not plain.expander


def test_link_values_no_control_reads_are_dropped_with_one_notice():
    """/?junk=1&alpha=0.5: the overview reads neither, so the address loses both and says so;
    the app's own keys (present) stay."""
    at = open_app(junk="1", alpha="0.5", present="1")
    assert not at.exception
    assert "junk" not in at.query_params and "alpha" not in at.query_params
    assert at.query_params["present"] == "1"
    said = [t.value for t in at.toast]
    assert len(said) == 1 and "junk='1'" in said[0] and "alpha='0.5'" in said[0], said
    at.run()  # said once
    assert not at.toast


def test_a_page_keeps_the_link_values_its_controls_read():
    at = open_app()
    at.switch_page("../pages/kd_loss.py")
    at.query_params.update(T="8", alpha="0.5", digit="3")
    at.run()
    assert not at.exception and not at.toast
    assert at.title[0].value == "The distillation loss"
    assert {k: at.query_params[k] for k in ("T", "alpha", "digit")} == {
        "T": "8", "alpha": "0.5", "digit": "3"}  # fmt: skip
