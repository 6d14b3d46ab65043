"""The distillation lab: start a run in the background, watch it learn, see how it compares.

Training never happens in this script: Start hands a spec to the shared job queue
(:mod:`kdcore.jobs`) and the page polls the run store while the worker thread trains.
"""

import streamlit as st

from app import lab_ui, reference_ui, ui
from kdcore.jobs import QueueFull, one_line
from kdcore.store import StoreError

st.title("Distillation lab")
ui.prose(
    "Pick a teacher and a student, or one of the paper's demonstrations, and press **Start**. "
    "The run trains in the background, one at a time per device, so this page and the others "
    "stay usable; the curves below fill in epoch by epoch. Every run is kept in the "
    "[run history](runs), and a configuration that has already run is served from there at "
    "once instead of training again."
)

queue = lab_ui.job_queue()
store = queue.store

# ----------------------------------------------------------------------------- which run to show

run = lab_ui.linked_run(store)
if run is None and isinstance(st.session_state.get("lab_run"), int):
    run = store.get(st.session_state["lab_run"])

# ----------------------------------------------------------------------------- what to run

# A link that names a preset (?preset=omitted-3) opens on it without also saying ?mode=Preset,
# and the address then says so: a bound control leaves its default out of the URL and the first
# preset is the default, so ?preset=hinton-mnist would otherwise become a bare /lab that reopens
# on a custom run. Written before the control binds the param, and set as its value: the control
# seeds itself only from the address the session opened with.
linked_preset = "preset" in st.query_params  # a bad mode beside a preset falls back to Preset
ui.guard_choice("mode", ["Custom run", "Preset"], "Preset" if linked_preset else "Custom run")
if linked_preset and "mode" not in st.query_params and "mode" not in st.session_state:
    # only on arrival: once the control exists, Streamlit refuses writes to its param, and the
    # user's own "Custom run" (which the address leaves out, as the default) must stand
    st.query_params["mode"] = "Preset"
    st.session_state["mode"] = "Preset"
mode = st.segmented_control(
    "What to run",
    ["Custom run", "Preset"],
    # no default beside a value set just above (Streamlit warns of the two in its log)
    default=None if "mode" in st.session_state else "Custom run",
    required=True,
    key="mode",
    bind="query-params",
)
with st.container(border=True):
    if mode == "Preset":
        spec, problem = lab_ui.preset_controls()
    else:
        spec, problem = lab_ui.custom_controls()
    if problem:
        st.warning(problem, icon=":material/warning:")
    blocked = spec is None or bool(problem)
    key = None if spec is None else lab_ui.config_key(spec)
    done = None if blocked else lab_ui.already_run(store, key)
    if done is not None:  # the estimate above is what a fresh run would take
        st.caption(f"This exact configuration has already run (run #{done}): **Start** shows "
                   "its stored result at once. Change the seed to train a fresh one.")  # fmt: skip
    start = st.button("Start", type="primary", icon=":material/play_arrow:", disabled=blocked)

if start and spec is not None:
    try:
        run_id = queue.submit(spec)
    except (ValueError, QueueFull, StoreError) as err:
        st.error(one_line(err), icon=":material/error:")
    else:
        st.session_state["lab_run"] = run_id
        st.query_params["run"] = str(run_id)
        run = store.get(run_id)
        st.session_state["lab_reused"] = run_id if run and run.status == "completed" else None

# ----------------------------------------------------------------------------- the run

if run is not None:
    if key is not None and key != run.config_key:
        st.caption(f"Shown below: run #{run.id}, made with other settings than those above. "
                   "**Start** runs the settings above.")  # fmt: skip
    if st.session_state.get("lab_reused") == run.id:
        st.info(
            f"This exact configuration has run before (run #{run.id}), so here is the stored "
            "result without training again. Change the seed to train a fresh one.",
            icon=":material/history:",
        )
    lab_ui.show_run(queue, run)

elif mode == "Preset":  # before anything trains: the preset's shipped paper-length run
    ref = reference_ui.records_by_preset().get(st.session_state.get("preset"))
    if ref is not None:
        recipe = st.session_state.get("profile") or "default"
        again = "reruns this one" if recipe == ref.reference.profile else "runs that recipe"
        reference_ui.show_reference(
            ref.reference,
            f"Shipped with the app so it opens at once. The recipe chosen above is **{recipe}**:"
            f" **Start** {again} on this machine, kept in the [run history](runs) beside this "
            f"one.",
        )

shown_id = run.id if run is not None else None
others = [r for r in store.list(status="running") + store.list(status="queued") if r.id != shown_id]
if others:
    with st.expander(f"Other runs in progress ({len(others)})"):
        for r in others:
            place = queue.place(r.id)
            where = f"place {place} in line" if place else f"{100 * r.progress:.0f}%"
            if place is None:
                where = "started elsewhere"
            st.markdown(f"- **{r.label}** · {r.status} · {where} · {lab_ui.describe(r)}")
