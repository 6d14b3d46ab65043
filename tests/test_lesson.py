"""The guided lesson: the shipped file, its checks against the pages' code, and the lesson page
(Next, Back, ?step=N, a bad ?step=, a broken file) in AppTest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import lesson
from app.catalog import PAGES, ROOT, page

LESSON_PAGE = str(ROOT / "pages" / "lesson.py")
ROUTER = str(ROOT / "app" / "streamlit_app.py")


def page_code(slug: str) -> str:
    """The page's source and the app modules it imports (its views, the shared controls it
    draws: the example picker, the lab's), with the custom controls that read their own keys."""
    info = page(slug)
    text = info.path.read_text()
    names = set(re.findall(r"^from app\.(\w+) import", text, re.M))
    for group in re.findall(r"^from app import ([\w, ]+)", text, re.M):
        names |= {n.strip() for n in group.split(",")}
    if "pick_example" not in text:  # the shared helpers name every key: only their picker
        names.discard("ui")
    for name in sorted(names):
        if (ROOT / "app" / f"{name}.py").is_file():
            text += (ROOT / "app" / f"{name}.py").read_text()
    if "app.components" in text:  # a custom control that reads its own URL key
        text += "".join(f.read_text() for f in sorted((ROOT / "app" / "components").glob("*.py")))
    return text


def reads(code: str, key: str) -> bool:
    """Whether the code names ``key`` as a control's key or a URL value it reads."""
    return re.search(rf"[\"']{re.escape(key)}[\"']", code) is not None


@pytest.mark.parametrize("info", [p for p in PAGES if p.exists], ids=lambda p: p.slug)
def test_the_catalog_lists_only_settings_the_page_reads(info):
    code = page_code(info.slug)
    missing = [k for k in info.params if not reads(code, k)]
    assert not missing, f"/{info.slug} lists {missing} but its code never reads them"


def test_the_shipped_lesson_parses_and_every_step_opens_a_real_view():
    course = lesson.load()
    assert course.error == ""
    assert len(course.steps) >= 8
    for step in course.steps:
        assert step.problem == "", (step.number, step.problem)
        info = page(step.page)
        assert info is not None and info.exists
        assert step.title and step.talk and step.ask, step.number
        code = page_code(step.page)
        for key, _ in step.params:
            assert key in info.params and reads(code, key), (step.number, key)
    story = [s.page for s in course.steps]
    # the story: soft targets, temperature, the loss, then the families and modes
    assert story.index("temperature") < story.index("kd-loss") < story.index("dkd")
    assert {"relations", "features", "modes"} <= set(story)


def test_a_step_url_carries_its_settings_and_its_number():
    step = lesson.parse('[[step]]\ntitle = "a"\npage = "temperature"\nparams = { T = 4 }').steps[0]
    assert step.url == "/temperature?T=4&lesson=1"
    first = lesson.parse('[[step]]\ntitle = "a"\npage = "overview"').steps[0]
    assert first.url == "/?lesson=1"  # the overview lives at the root


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[step]\ntitle = 1", "not valid TOML"),
        ('title = "no steps"', "has no steps"),
        ("step = 3", "has no steps"),
    ],
)
def test_a_broken_file_is_one_line(text, fragment):
    course = lesson.parse(text, "mine.toml")
    assert fragment in course.error and "\n" not in course.error
    assert course.steps == ()


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ('page = "nowhere"', "not one of the app's pages"),
        ('page = "temperature"\nparams = { Tee = 4 }', "no setting 'Tee'"),
        ('page = "temperature"\nparams = { lesson = 2 }', "no setting 'lesson'"),
        ('page = "temperature"\nparams = { T = [1, 2] }', "params.T must be"),
        ('page = "temperature"\nparams = 4', "params must be a table"),
    ],
)
def test_a_bad_step_keeps_its_place_with_a_problem(step, fragment):
    text = f'[[step]]\ntitle = "ok"\npage = "overview"\n\n[[step]]\ntitle = "bad"\n{step}\n'
    course = lesson.parse(text)
    assert course.error == ""
    assert course.steps[0].problem == ""
    assert fragment in course.steps[1].problem


def open_lesson(**params: str) -> AppTest:
    at = AppTest.from_file(LESSON_PAGE, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def shown_step(at: AppTest) -> int:
    (header,) = [h.value for h in at.subheader]
    return int(header.split(".")[0])


def test_step_n_opens_that_step_with_its_view_link():
    at = open_lesson(step="2")
    assert not at.exception
    assert shown_step(at) == 2
    step = lesson.load().steps[1]
    links = [m.value for m in at.markdown if "Open this view" in m.value]
    assert links == [f"[Open this view]({step.url})"]
    assert at.session_state[lesson.STATE] == 2


def test_next_and_back_move_one_step_and_stop_at_the_ends():
    count = len(lesson.load().steps)
    at = open_lesson()
    assert shown_step(at) == 1 and at.button(key="back").disabled
    at.button(key="next").click().run()
    assert shown_step(at) == 2 and at.query_params["step"] == "2"
    at.button(key="next").click().run()
    at.button(key="back").click().run()
    assert shown_step(at) == 2
    at = open_lesson(step=str(count))
    assert shown_step(at) == count and at.button(key="next").disabled


@pytest.mark.parametrize("raw", ["0", "x", "99", "2.5", "-1"])
def test_a_bad_step_link_gets_a_notice_and_step_one(raw):
    at = open_lesson(step=raw)
    assert not at.exception
    assert shown_step(at) == 1
    assert any("step=" in t.value for t in at.toast), [t.value for t in at.toast]


def test_a_malformed_lesson_file_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    bad = tmp_path / "lesson.toml"
    bad.write_text('[[step]]\ntitle = "unclosed\n')
    monkeypatch.setenv(lesson.LESSON_ENV, str(bad))
    at = open_lesson()
    assert not at.exception
    (error,) = at.error
    assert "not valid TOML" in error.value and "\n" not in error.value
    monkeypatch.setenv(lesson.LESSON_ENV, str(tmp_path / "missing.toml"))
    at = open_lesson()
    assert not at.exception and "cannot read" in at.error[0].value


def test_a_step_with_a_problem_shows_it_instead_of_the_link(tmp_path, monkeypatch):
    mine = Path(tmp_path / "lesson.toml")
    mine.write_text('[[step]]\ntitle = "x"\npage = "kd-loss"\nparams = { temperature = 4 }\n')
    monkeypatch.setenv(lesson.LESSON_ENV, str(mine))
    at = open_lesson()
    assert not at.exception
    assert "no setting 'temperature'" in at.warning[0].value
    assert not [m for m in at.markdown if "Open this view" in m.value]


def test_the_strip_follows_the_lesson_onto_other_pages():
    at = AppTest.from_file(ROUTER, default_timeout=60)
    at.query_params["lesson"] = "5"
    at.run()
    assert not at.exception
    strip = [m.value for m in at.markdown if m.value.startswith("**Step 5 of")]
    assert strip, [m.value for m in at.markdown][:3]
    at.button(key="_lesson_end").click().run()
    assert "lesson" not in at.query_params
    assert not [m for m in at.markdown if m.value.startswith("**Step ")]


@pytest.mark.parametrize("raw", ["abc", "999", "0", "-1", ["2", "3"]])
def test_a_bad_lesson_value_on_a_page_is_dropped_with_a_notice(raw):
    at = AppTest.from_file(ROUTER, default_timeout=60)
    at.query_params["lesson"] = raw
    at.run()
    assert not at.exception
    assert "lesson" not in at.query_params
    assert any("not a lesson step" in t.value for t in at.toast), [t.value for t in at.toast]
    assert not [m for m in at.markdown if m.value.startswith("**Step ")]
