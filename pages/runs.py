"""Run history: every run of the lab and the command line, filtered, compared, exported, deleted."""

import streamlit as st

from app import lab_ui, reference_ui, ui
from kdcore.methods import METHODS
from kdcore.store import STATUSES, iso

st.title("Run history")
ui.prose(
    "Every run started in the [lab](lab) or with `python -m kdcore run` is kept here with its "
    "configuration, per-epoch history and results. Select a few to lay their curves over each "
    "other and compare their test errors."
)
queue = lab_ui.job_queue()
store = queue.store
st.caption(f"Store: `{store.path}` (set `KD_STORE` to use another file).")

shipped = reference_ui.records()  # the shipped paper-length runs, read-only, ids below 0
reference_ui.skipped_notice()
all_runs = store.list() + shipped  # the user's own first, newest first
if not all_runs:
    st.info("No runs yet. Start one in the [lab](lab).", icon=":material/science:")
    st.stop()

# ----------------------------------------------------------------------------- filters

ALL = "all"
names = sorted({r.name for r in all_runs})
for key, options in (("status", STATUSES), ("preset", names), ("method", METHODS)):
    ui.guard_choice(key, [ALL, *options], ALL)
c1, c2, c3 = st.columns(3)
status = c1.selectbox("Status", [ALL, *STATUSES], key="status", bind="query-params")
name = c2.selectbox("Preset", [ALL, *names], key="preset", bind="query-params")
method = c3.selectbox("Method", [ALL, *METHODS], key="method", bind="query-params")
own = store.list(
    status=None if status == ALL else status,
    name=None if name == ALL else name,
    method=None if method == ALL else method,
)
runs = own + [
    r
    for r in shipped
    if status in (ALL, r.status)
    and name in (ALL, r.name)
    and (method == ALL or method in r.methods)
]
st.dataframe(
    [
        {
            "id": r.id,
            "run": r.label if r.id < 0 else r.title,
            "test errors": lab_ui.errors_summary(r.models),
            "what": lab_ui.describe(r),
            "status": r.status,
            "time": lab_ui.duration(r.seconds),
            "created": iso(r.created),
            "device": r.device,
            "message": r.message,
        }
        for r in runs
    ],
    hide_index=True,
    key="table",
    # A run's name and results come first and keep their room in the page's width; when and
    # where it ran follow, a sideways scroll away on a narrow screen
    column_config={
        "test errors": st.column_config.TextColumn(width="large"),
        "what": st.column_config.TextColumn(width="medium"),
    },
)
if not runs:
    st.info("No run matches these filters.")
    st.stop()

# ----------------------------------------------------------------------------- compare

by_id = {r.id: r for r in runs}
curves = [r for r in runs if any(r.history.values())]
# Opens on the user's two newest runs beside the first shipped one (hinton-mnist's paper run)
first = [r.id for r in curves if r.id > 0][:2] + [r.id for r in curves if r.id < 0][:1]
moved = lab_ui.url_moved("compare")  # Back or Forward: the address's selection, not the box's
linked = lab_ui.url_ids("compare", list(by_id))  # ?compare=3,1 keeps the selection in links
if moved:
    st.session_state["picked"] = first if linked is None else linked
picked = st.multiselect(
    "Runs to compare",
    list(by_id),
    default=first if linked is None else linked,
    format_func=lambda i: f"{by_id[i].label} ({by_id[i].status})",
    key="picked",
)
if linked is not None or picked != first:
    lab_ui.set_url_ids("compare", picked)
chosen = [by_id[i] for i in picked]
if chosen:
    CURVES = ["test accuracy", "train accuracy", "test errors"]  # as shown and in the URL
    ui.guard_choice("curve", CURVES, CURVES[0])
    curve = st.segmented_control(
        "Curve", CURVES, default=CURVES[0], required=True, key="curve", bind="query-params"
    )
    metric = (curve or CURVES[0]).replace(" ", "_")  # the epoch record's field
    ui.plot(lab_ui.overlay_figure(chosen, metric), key="overlay")
    if any(r.models for r in chosen):
        st.markdown("##### Final test errors (paper's as black ticks where it gives them)")
        ui.plot(lab_ui.errors_figure(chosen), key="errors")

# ----------------------------------------------------------------------------- export and delete

sel = picked or [r.id for r in runs]
ids = [i for i in sel if i > 0]  # rows of the store; the shipped runs are files, exported after
files = [by_id[i] for i in sel if i < 0]
which = "selected" if picked else "listed"
c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
c1.download_button(
    f"JSON ({len(sel)} {which})",
    data=store.export_json(ids, files),
    file_name="kd-runs.json",
    mime="application/json",
    icon=":material/download:",
    on_click="ignore",
)
c2.download_button(
    f"CSV ({len(sel)} {which})",
    data=store.export_csv(ids, files),
    file_name="kd-runs.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)
with c3.popover("Delete", icon=":material/delete:", disabled=not picked):
    doomed = [i for i in picked if i > 0 and not by_id[i].active]
    if len(doomed) < len(picked):
        st.caption(
            "Runs still queued or running are kept (cancel them in the lab first), and "
            "so are the shipped reference runs."
        )
    sure = st.checkbox(f"Yes, delete {len(doomed)} run(s) and their weights", key="sure")
    if st.button("Delete for good", type="primary", disabled=not (sure and doomed), key="delete"):
        store.delete(doomed)
        lab_ui.set_url_ids("compare", [i for i in picked if i not in doomed])
        st.session_state.pop("picked", None)
        st.session_state.pop("sure", None)
        st.toast(f"Deleted {len(doomed)} run(s).")
        st.rerun()

# ----------------------------------------------------------------------------- one run in full

st.divider()
shown = lab_ui.url_run_choice(
    "Show one run in full",
    [r.id for r in runs],
    format_func=lambda i: f"{by_id[i].label} · {by_id[i].status} · {iso(by_id[i].created)}",
    key="show",
)
if shown in by_id and shown < 0:
    reference_ui.show_reference(by_id[shown].reference)
elif shown in by_id:
    st.markdown(f"[Open run #{shown} in the lab](lab?run={shown})")
    lab_ui.show_run(queue, by_id[shown])
