"""Presenter mode and the frame the router draws around every page.

Presenter mode (``?present=1`` or the sidebar toggle) is for a projector: no sidebar and no
header, larger type, the main column at full width, and long prose paragraphs collapsed to their
first line (hover to read the rest; pages that call :func:`app.ui.prose` get a first sentence and
a "More" expander instead). A paragraph with bold in it stays whole: the pages bold the numbers
computed for the view ("‖∂/∂z‖ = **0.41** with T²"), which the room must see. It is done with
CSS from the router, so no page has to change.

The flag lives in the session and in the URL: the router writes ``present=1`` back into the URL
on every run, so it survives page changes, a reload and a copied link. ``?present=0`` turns it
off.
"""

from __future__ import annotations

import re

import streamlit as st

PARAM = "present"  # the URL key
STATE = "_present"  # the session's flag
TOGGLE = "_present_toggle"  # the sidebar toggle's widget key
ON = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"0", "false", "no", "off"})

# Streamlit's own test ids (stable across 1.4x-1.6x); the lesson card and ui.prose output are
# keyed containers (class st-key-...), which the prose rule leaves alone.
CSS = """
<style>
html { font-size: 20px; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], header[data-testid="stHeader"] { display: none !important; }
[data-testid="stMainBlockContainer"] {
  max-width: 100% !important; padding: 1rem 2rem 3rem 2rem !important;
}
[data-testid="stMain"] h1 { font-size: 2.2rem; padding-top: 0; }
[data-testid="stMain"] [data-testid="stMarkdown"] p {
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 1; line-clamp: 1;
  overflow: hidden; cursor: zoom-in;
}
[data-testid="stMain"] [data-testid="stMarkdown"] p:hover,
[data-testid="stMain"] [data-testid="stMarkdown"] p:has(strong),
[data-testid="stMain"] [data-testid="stExpander"] [data-testid="stMarkdown"] p,
[data-testid="stMain"] [class*="st-key-lesson"] [data-testid="stMarkdown"] p,
[data-testid="stMain"] [class*="st-key-prose"] [data-testid="stMarkdown"] p {
  display: block; -webkit-line-clamp: unset; line-clamp: none; cursor: auto;
}
.st-key-present_exit { position: fixed; top: 0.4rem; right: 0.8rem; z-index: 1000; width: auto;
  opacity: 0.35; }  /* over the page as it scrolls: faint until the pointer comes to it */
.st-key-present_exit:hover, .st-key-present_exit:focus-within { opacity: 1; }
.st-key-present_exit button { font-size: 0.7rem; min-height: 0; padding: 0.1rem 0.6rem; }
</style>
"""

# Display equations fit the column they sit in: KaTeX does not wrap, and a long one ran past the
# edge of a phone or a projector's large type (cut off, with no scrollbar in sight). Each display
# wider than its column is drawn at a smaller size that fits, down to 60%; anything still wider
# scrolls sideways. Measured again when the page changes or the window is resized.
#
# The lesson strip's question and its four buttons share one row while the strip is wide enough;
# in a narrower column (a 1280-px projector at 150% zoom with the sidebar open leaves it 520 px)
# the buttons were cut to "Bac" and "E…", so there the question takes the first row and the
# buttons the second.
FIT_MATH = """
<style>[data-testid="stLayoutWrapper"]:has(> .st-key-fit_math) { display: none; }
.st-key-lesson_strip { container-type: inline-size; }
@container (max-width: 640px) {
  .st-key-lesson_strip [data-testid="stHorizontalBlock"] { flex-wrap: wrap; row-gap: 0.25rem; }
  .st-key-lesson_strip [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:first-child {
    flex: 1 1 100% !important; min-width: 100% !important; }
}
</style>
<script>
(() => {
  if (window.__kdFitMath) return;
  window.__kdFitMath = true;
  const fit = () => {
    for (const d of document.querySelectorAll('.katex-display')) {
      const k = d.querySelector(':scope > .katex');
      if (!k) continue;
      k.style.fontSize = '';
      d.style.overflowX = 'auto';
      const boxes = [...k.querySelectorAll('.katex-html > .base, .katex-html > .tag')]
        .map(b => b.getBoundingClientRect());
      if (!boxes.length || !d.clientWidth) continue;
      const need = Math.max(...boxes.map(b => b.right)) - Math.min(...boxes.map(b => b.left));
      if (need <= d.clientWidth) continue;
      const size = parseFloat(getComputedStyle(k).fontSize);
      k.style.fontSize = Math.max(0.6, (d.clientWidth - 2) / need) * size + 'px';
    }
  };
  let queued = false;
  const later = () => {
    if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; fit(); }); }
  };
  new MutationObserver(later).observe(document.body, {childList: true, subtree: true});
  window.addEventListener('resize', later);
  later();
})();
</script>
"""


def _read_url() -> bool | None:
    """The URL's say: True, False, or None when it has no (understood) ``present`` value; one
    it cannot read (``?present=banana``, or given twice) is dropped with a notice."""
    values = st.query_params.get_all(PARAM)
    if not values:
        return None
    word = values[0].strip().lower()
    if len(values) == 1 and word in ON | OFF:
        return word in ON
    from app import ui

    mode = "on" if st.session_state.get(STATE) else "off"
    ui.notice(PARAM, "&".join(values), f"not understood (1 or 0); presenter mode stays {mode}.")
    ui.drop_url(PARAM)
    return None


def active() -> bool:
    """Whether this session is in presenter mode (the URL wins over the session)."""
    from_url = _read_url()
    if from_url is not None:
        st.session_state[STATE] = from_url
    return bool(st.session_state.get(STATE, False))


def set_active(on: bool) -> None:
    st.session_state[STATE] = on
    if on:
        st.query_params[PARAM] = "1"
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def _on_toggle() -> None:
    set_active(bool(st.session_state.get(TOGGLE)))


def setup() -> bool:
    """Presenter mode for this run: keeps the flag in the URL, draws the sidebar toggle or the
    exit button, and injects the CSS. Returns whether it is on."""
    on = active()
    if on and st.query_params.get(PARAM) != "1":
        st.query_params[PARAM] = "1"  # a page change dropped it, or it was spelled "true"
    elif not on and PARAM in st.query_params:
        del st.query_params[PARAM]
    if on:
        st.html(CSS)
        with st.container(key="present_exit"):
            st.button(
                "Exit presenter mode",
                icon=":material/close_fullscreen:",
                key="_present_exit_button",
                on_click=set_active,
                args=(False,),
            )
    else:
        st.session_state[TOGGLE] = False  # in step with the flag before the widget is drawn
        st.sidebar.toggle(
            "Presenter mode",
            key=TOGGLE,
            on_change=_on_toggle,
            help="Large type, no sidebar, prose folded to one line (?present=1 in the URL)",
        )
    return on


def frame(current: object) -> None:
    """The router's one hook, called with the page ``st.navigation`` chose, before it runs:
    presenter mode, then the lesson strip when a lesson step brought the user here."""
    from app.lesson import strip

    setup()
    with st.container(key="fit_math"):  # hidden, so it adds no gap above the page
        st.html(FIT_MATH, unsafe_allow_javascript=True)
    strip(str(getattr(current, "url_path", "")))


# ----------------------------------------------------------------------------- prose

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*(\"'])")


def first_sentence(text: str) -> tuple[str, str]:
    """``text`` split after its first sentence: (first, rest). A sentence ends at ., ! or ?
    followed by a space and a capital, so "et al. 2015" and "§2.1" do not end one."""
    parts = _SENTENCE_END.split(text.strip(), maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""
