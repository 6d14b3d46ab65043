"""The guided lesson: one step at a time, each opening a view of the app with its settings."""

import streamlit as st

from app import lesson, ui

course = lesson.load()
st.title(course.title or "Guided lesson")
if course.error:
    st.error(course.error, icon=":material/error:")
    st.caption(f"The lesson is read from {lesson.lesson_path()} (or the file KD_LESSON names).")
    st.stop()

steps = course.steps
count = len(steps)


def go(number: int) -> None:
    st.query_params["step"] = str(max(1, min(count, number)))


# ?step=N is the whole state of this page: a link opens that step, Next/Back rewrite it
ui.guard_url("step", ui.int_ok(1, count), 1)  # ?step=0, ?step=x, ?step=99: a notice, then step 1
n = int(st.query_params.get("step", "1"))
st.progress(n / count, text=f"Step {n} of {count}")
step = steps[n - 1]
st.session_state[lesson.STATE] = n  # the strip on the step's page follows this

with st.container(border=True, key="lesson_card"):
    st.subheader(f"{n}. {step.title}")
    if step.talk:
        st.markdown(step.talk)
    if step.ask:
        st.info(f"**Ask the room:** {step.ask}", icon=":material/forum:")
    if step.problem:
        st.warning(f"This step's view cannot be opened: {step.problem}.", icon=":material/warning:")
    else:
        lesson.view_link(step, "Open this view")
        settings = ", ".join(f"{k} = {v}" for k, v in step.params)
        where = step.url.split("?")[0]
        where = "the overview (/)" if where == "/" else where
        st.caption(where + (f" with {settings}" if settings else ""))

back, _, nxt = st.columns([1, 4, 1])
back.button("Back", icon=":material/arrow_back:", key="back", disabled=n <= 1,
            on_click=go, args=(n - 1,), width="stretch")  # fmt: skip
nxt.button("Next", icon=":material/arrow_forward:", key="next", disabled=n >= count,
           on_click=go, args=(n + 1,), width="stretch")  # fmt: skip

with st.expander("All steps", icon=":material/format_list_numbered:"):
    for s in steps:
        mark = " (cannot open: " + s.problem + ")" if s.problem else ""
        lesson.lesson_link(s.number, f"{s.number}. {s.title}{mark}", ":material/chevron_right:")
st.caption(
    f"Steps are read from `{lesson.lesson_path().name}`: edit it, or point KD_LESSON at your own. "
    "A link to one step: /lesson?step=N."
)
