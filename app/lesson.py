"""The guided lesson: steps read from one TOML file, checked against the catalog, and the strip
that follows the lecturer onto each step's page.

A step opens a page with settings (``/temperature?T=4&digit=2``) plus ``lesson=N``, which tells
the router's frame to show that step's strip (question, Back, Next) above the page. The file is
data a lecturer can rewrite (``KD_LESSON=path``); anything wrong with it becomes one line on the
lesson page, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from app import ui
from app.catalog import PAGES, ROOT, page

LESSON_FILE = ROOT / "assets" / "lesson.toml"
LESSON_ENV = "KD_LESSON"
PARAM = "lesson"  # ?lesson=N on a step's page: which step brought the user there
STATE = "_lesson_step"  # the step this session is on, for the strip on other pages
ARRIVED = "_lesson_arrived"  # (page, step) whose link last set the page's controls
APP_PARAMS = frozenset({PARAM, "present"})  # set by the app, not by a step
SHOWN = "_page_shown"  # the page the session ran last
# every page's link-settable controls, less the app's own
PAGE_PARAMS = frozenset(k for info in PAGES for k in info.params) - APP_PARAMS


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    title: str
    page: str  # a slug of app.catalog.PAGES
    params: tuple[tuple[str, str], ...]  # the view's URL parameters, in file order
    talk: str  # the talking point
    ask: str  # a question for the room
    problem: str = ""  # why the view cannot be opened, or "" when it can

    @property
    def query(self) -> dict[str, str]:
        """The target page's query parameters, with ``lesson=N`` for the strip."""
        return {**dict(self.params), PARAM: str(self.number)}

    @property
    def url(self) -> str:
        info = page(self.page)
        return f"/{info.url if info else self.page}?{urlencode(self.query)}"


@dataclass(frozen=True)
class Lesson:
    title: str
    steps: tuple[Step, ...]
    error: str = ""  # one line when the file cannot be used at all


def _value(v: object) -> str | None:
    """A TOML value as the URL spells it; None for a table or a list (not a URL value)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, str | int | float) else None


def _step(number: int, raw: object) -> Step:
    if not isinstance(raw, dict):
        return Step(number, f"Step {number}", "", (), "", "", "is not a table ([[step]])")
    title, slug = str(raw.get("title", f"Step {number}")), raw.get("page")
    talk, ask = str(raw.get("talk", "")), str(raw.get("ask", ""))
    params_raw = raw.get("params", {})
    problem = ""
    info = page(slug) if isinstance(slug, str) else None
    params: list[tuple[str, str]] = []
    if not isinstance(params_raw, dict):
        problem = "params must be a table, e.g. params = { T = 4 }"
    else:
        for key, v in params_raw.items():
            text = _value(v)
            if text is None:
                problem = f"params.{key} must be a string, number or true/false"
            params.append((key, text or ""))
    if info is None:
        problem = f"page {slug!r} is not one of the app's pages"
    elif not info.exists:
        problem = f"page {slug!r} is not written yet"
    elif not problem:
        unknown = [k for k, _ in params if k not in info.params or k in APP_PARAMS]
        if unknown:
            known = ", ".join(info.params) or "none"
            problem = f"/{slug} has no setting {unknown[0]!r} (it reads: {known})"
    return Step(number, title, str(slug or ""), tuple(params), talk, ask, problem)


def parse(text: str, name: str = "lesson.toml") -> Lesson:
    """A lesson from TOML text. A file that cannot be read gives ``Lesson.error``; a step that
    names a missing page or setting keeps its place (step numbers stay put) with a problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        return Lesson("", (), f"{name} is not valid TOML: {err}")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        return Lesson("", (), f"{name} has no steps: add [[step]] tables with a title and a page")
    steps = tuple(_step(i, raw) for i, raw in enumerate(raw_steps, start=1))
    return Lesson(str(data.get("title", "Guided lesson")), steps)


def lesson_path() -> Path:
    return Path(os.environ.get(LESSON_ENV) or LESSON_FILE)


@st.cache_data(max_entries=8, show_spinner=False)
def _load(path: str, mtime: float) -> Lesson:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return Lesson("", (), f"cannot read {path}: {err.strerror or err}")
    return parse(text, Path(path).name)


def load() -> Lesson:
    """The lesson file, parsed once per version of it (a lecturer's edit shows on reload)."""
    path = lesson_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    return _load(str(path), mtime)


# ----------------------------------------------------------------------------- links


def view_link(step: Step, label: str, icon: str = ":material/open_in_new:", **kw) -> None:
    """A link that opens the step's page with its settings, in this session (st.page_link).
    Outside the router (a page run on its own in AppTest) it degrades to a plain link."""
    from streamlit.errors import StreamlitAPIException

    from app import present

    info = page(step.page)
    # presenter mode goes along, so a view opened in a new tab is on the projector's terms too
    query = {**step.query, **({present.PARAM: "1"} if present.active() else {})}
    try:
        st.page_link(str(info.path), label=label, icon=icon, query_params=query, **kw)
    except StreamlitAPIException:
        st.markdown(f"[{label}]({step.url})")


def lesson_link(number: int, label: str, icon: str = ":material/school:") -> None:
    from streamlit.errors import StreamlitAPIException

    info = page("lesson")
    try:
        st.page_link(str(info.path), label=label, icon=icon, query_params={"step": str(number)})
    except StreamlitAPIException:
        st.markdown(f"[{label}](/lesson?step={number})")


def arrive(slug: str, number: int) -> None:
    """A step's link was just followed: its page shows what the link names and the defaults
    for the rest. Pages share control names (``alpha`` is KD's weight on the loss page and the
    acceptance rate on the speculative one; ``digit``, ``T``, ``mode``), and a value left in
    this session by an earlier page would otherwise win over the link: a step written for
    α = 0.8 showed 0.9. Once per arrival, so the user's own changes on the step then stay.

    Moving to another page, Streamlit also drops from the address every param bound to a
    control of the page left (``teacher`` and ``idx`` on the loss page), though the new page has
    controls of those names too: Back from the loss page to a step on the paper's teacher showed
    the demo teacher. The link's values are put back before the page's controls are drawn."""
    if st.session_state.get(ARRIVED) == (slug, number):
        return
    st.session_state[ARRIVED] = (slug, number)
    steps = load().steps
    link = dict(steps[number - 1].params) if 1 <= number <= len(steps) else {}
    for key in PAGE_PARAMS:
        if key in link:
            st.session_state.pop(key, None)  # bound controls then take the link's value
            if key not in st.query_params:
                ui.restore_url(key, link[key])
        else:
            ui.reset_control(key)


def fresh_page(slug: str) -> None:
    """Another page than the last run's: its controls start from their defaults, or from what
    the address names, never from a value a control of the same name left on another page.

    Pages share control names with other meanings and ranges (``alpha`` is KD's weight on the
    loss page, TCKD's on the DKD page, up to 8; ``T``, ``digit``, ``mode``, ``student``), and
    Streamlit hands a keyed control the value its namesake held: DKD's α = 1 crashed the
    speculative page (at most 0.99), the lab's preset showed as the modes page's ``?mode=``
    with neither shown selected, and the digit of the link the session opened with came back
    two pages later. The address is what a reload or a copied link would show, so it wins."""
    last = st.session_state.get(SHOWN)
    st.session_state[SHOWN] = slug
    if last is None or last == slug:
        return
    for key in PAGE_PARAMS | (ui.seen_keys() - APP_PARAMS):
        st.session_state.pop(key, None)
        if key not in st.query_params:
            ui.forget_link(key)


def strip(slug: str) -> None:
    """Above a step's page while a lesson runs: where we are, the question, Back and Next."""
    fresh_page(slug)
    values = st.query_params.get_all(PARAM)
    if values:
        count = len(load().steps)
        raw = values[0].strip()
        if len(values) == 1 and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= count:
            st.session_state[STATE] = int(raw)
            if load().steps[int(raw) - 1].page == slug:  # the step's own view, not a side trip
                arrive(slug, int(raw))
        else:  # ?lesson=abc, 999, or given twice: no step to show a strip for
            ui.notice(PARAM, "&".join(values), f"not a lesson step (1 to {count}); ignored.")
            ui.drop_url(PARAM)
    number = st.session_state.get(STATE)
    if slug == "lesson" or not isinstance(number, int):
        return
    lesson = load()
    if lesson.error or not 1 <= number <= len(lesson.steps):
        return
    step = lesson.steps[number - 1]
    if st.query_params.get(PARAM) != str(number):
        # the address says the strip is there (a page change through the sidebar dropped it),
        # so a reload or a copied link keeps it, as presenter mode's ?present=1 does
        st.query_params[PARAM] = str(number)
    with st.container(border=True, key="lesson_strip"):
        # room for each button's whole label in presenter mode at 150% zoom on a 1280-px
        # projector (853 px): "Lesson" read "Lessor", "End" "E"
        text, back, home, nxt, end = st.columns(
            [4.6, 2.1, 2.6, 2.1, 1.4], vertical_alignment="center"
        )
        text.markdown(f"**Step {number} of {len(lesson.steps)}: {step.title}.** {step.ask}")
        with back:
            if number > 1 and not lesson.steps[number - 2].problem:
                view_link(lesson.steps[number - 2], "Back", ":material/arrow_back:")
        with home:
            lesson_link(number, "Lesson")
        with nxt:
            if number < len(lesson.steps) and not lesson.steps[number].problem:
                view_link(lesson.steps[number], "Next", ":material/arrow_forward:")
            elif number == len(lesson.steps):
                st.caption("Last step")
        end.button("End", key="_lesson_end", help="End the lesson here", on_click=end_lesson)


def end_lesson() -> None:
    st.session_state.pop(STATE, None)
    if PARAM in st.query_params:
        del st.query_params[PARAM]
