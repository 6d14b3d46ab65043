"""The lab and run-history pages in AppTest, with real tiny runs in the background queue.

AppTest does not fire ``run_every`` fragments by itself, so the tests rerun the page in a loop
while the worker thread trains, as a browser's polling would.
"""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdcore.presets import PRESETS
from kdcore.store import Store

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(autouse=True)
def no_shipped_runs(tmp_path, monkeypatch):
    """These tests count the store's runs: no shipped reference runs beside them (their own
    tests are in test_reference.py)."""
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path / "no-reference-runs"))


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _header(at: AppTest) -> str:
    found = [m.value for m in at.markdown if m.value.startswith("### ")]
    return found[0] if found else ""


def _tiny(at: AppTest, epochs: int = 2, method: str | None = None) -> AppTest:
    at.selectbox(key="teacher").set_value("mlp-100")
    at.selectbox(key="per_class").set_value(20)
    at.number_input(key="epochs").set_value(epochs)
    at.number_input(key="teacher_epochs").set_value(1)
    if method:
        at.button_group(key="method").set_value(method)
    return at.run()


def _until_done(at: AppTest, timeout: float = 120) -> set[str]:
    """Rerun until the run's header says it ended; returns the progress texts seen."""
    seen = set()
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        seen |= {p.proto.text for p in at.get("progress")}
        header = _header(at)
        if any(s in header for s in ("completed", "failed", "cancelled")):
            return seen
        assert time.monotonic() < deadline, f"run did not end: {header}"
        time.sleep(0.2)


def test_lab_runs_a_tiny_run_and_history_shows_it(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))  # run #1 trains its teacher
    at = _tiny(_page("lab.py"))
    assert any("No estimate yet" in c.value for c in at.caption)
    at.button[0].click().run()  # Start
    assert not at.exception, at.exception
    assert "Run #1" in _header(at)
    live = any(b.label == "Cancel" for b in at.button)  # the live view while it runs
    assert live or "completed" in _header(at)  # (a fast machine may finish first)
    _until_done(at)
    assert "completed" in _header(at)
    assert at.dataframe and not at.error  # the results table
    run = Store(store_path).get(1)
    assert run.status == "completed" and len(run.history["student_kd"]) == 2

    said = [c.value for c in at.caption if "already run" in c.value]  # said before Start
    assert said and "(run #1)" in said[0]
    assert not any("other settings" in c.value for c in at.caption)  # the run shown matches
    at.button[0].click().run()  # the same config again: served from the store
    assert "run #1" in at.info[0].value and len(Store(store_path).list()) == 1
    # Twice the epochs: each student at the pace run #1 timed, the teacher from the cache.
    at.number_input(key="epochs").set_value(4).run()
    estimate = [c.value for c in at.caption if "Estimated time" in c.value]
    assert estimate and "its teacher comes from the cache" in estimate[0]
    at.number_input(key="teacher_epochs").set_value(2).run()  # another teacher: trained again
    estimate = [c.value for c in at.caption if "Estimated time" in c.value]
    assert estimate and "of it the teacher's training" in estimate[0]
    at.number_input(key="teacher_epochs").set_value(1).run()
    assert not any("already run" in c.value for c in at.caption)  # a new configuration
    other = [c.value for c in at.caption if "other settings" in c.value]  # under run #1 shown
    assert other and "run #1" in other[0]

    runs = _page("runs.py")
    table = runs.dataframe[0].value
    assert list(table["id"]) == [1] and table["status"][0] == "completed"
    assert runs.multiselect(key="picked").value == [1]
    assert len(runs.get("plotly_chart")) >= 2  # overlaid curves and the bar chart of errors


def test_lab_cancel_keeps_partial_history(store_path):
    at = _tiny(_page("lab.py"), epochs=500, method="hard")
    at.button[0].click().run()
    store = Store(store_path)
    deadline = time.monotonic() + 60
    while not store.get(1).history.get("student_hard"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    at.run()
    assert "1/1 student_hard · epoch" in at.get("progress")[0].proto.text  # live progress
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.exception, at.exception
    _until_done(at)
    assert "cancelled" in _header(at) and at.warning
    run = store.get(1)
    assert run.status == "cancelled" and 1 <= len(run.history["student_hard"]) < 500


def test_lab_failed_run_shows_one_line(store_path):
    at = _tiny(_page("lab.py"), epochs=3, method="hard")
    at.number_input(key="lr").set_value(1000.0)
    at.number_input(key="grad_clip").set_value(0.0).run()
    at.button[0].click().run()
    _until_done(at)
    assert "failed" in _header(at)
    assert "diverged" in at.error[0].value and "\n" not in at.error[0].value


def test_lab_odd_url_params_fall_back(store_path):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(run="abc", mode="bogus", T="-3", teacher="nope", epochs="x")
    at.run()
    assert not at.exception, at.exception
    notices = " ".join(t.value for t in at.toast)  # the concept pages' kind of notice
    for key in ("run", "mode", "T", "teacher", "epochs"):
        assert f" {key}=" in notices
    assert at.selectbox(key="teacher").value == "mlp-1200-dropout"
    assert at.number_input(key="T").value == 4.0 and at.number_input(key="epochs").value == 3
    assert dict(at.query_params) == {}  # every bad value left the URL
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(run="999")
    at.run()
    assert not at.exception and "names no stored run" in at.toast[0].value
    assert "run" not in at.query_params


def test_a_link_naming_a_preset_opens_the_preset(store_path):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "omitted-3"  # no ?mode=Preset
    at.run()
    assert not at.exception, at.exception
    assert at.button_group(key="mode").value == "Preset"
    assert at.selectbox(key="preset").value == "omitted-3"
    at.button_group(key="mode").set_value("Custom run").run()  # the user's choice still holds
    assert at.button_group(key="mode").value == "Custom run"
    assert at.selectbox(key="teacher").value == "mlp-1200-dropout"
    # The browser's address leaves the default mode out: the preset still named there must not
    # turn the page back to Preset (the write to the bound param raised)
    at.query_params.pop("mode", None)
    at.run()
    assert not at.exception, at.exception
    assert at.button_group(key="mode").value == "Custom run"


def test_a_link_naming_the_first_preset_leaves_an_address_that_reopens_it(store_path):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "hinton-mnist"  # the default preset: the URL drops it
    at.run()
    assert not at.exception, at.exception
    assert at.button_group(key="mode").value == "Preset"
    assert at.query_params.get("mode") == "Preset"  # so the address still says which view
    again = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    again.query_params.update({k: at.query_params[k] for k in at.query_params if k != "preset"})
    again.run()  # the address as the browser keeps it, without the default preset
    assert again.button_group(key="mode").value == "Preset"
    assert again.selectbox(key="preset").value == "hinton-mnist"


def test_a_bad_mode_beside_a_preset_says_the_mode_the_page_opens_on(store_path):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update({"mode": "abc", "preset": "omitted-3"})
    at.run()
    assert not at.exception, at.exception
    assert at.button_group(key="mode").value == "Preset"
    assert any("using Preset" in t.value for t in at.toast), [t.value for t in at.toast]


@pytest.mark.parametrize(("box", "value", "reason"), [
    ("ep-omitted-3", 0, "Student epochs must be in [1, 1000], not 0"),
    ("tep-omitted-3", -1, "Teacher epochs must be in [1, 1000], not -1"),
    ("seed-omitted-3", -1, "Seed must be in [0, 2147483647], not -1"),
])  # fmt: skip
def test_a_preset_box_out_of_range_disables_start_with_the_reason(store_path, box, value, reason):
    """The preset's boxes carry no limits of their own (the browser would keep an out-of-range
    number on screen while Start ran the last good one): the config refuses it, Start says why."""
    at = _page("lab.py")
    at.button_group(key="mode").set_value("Preset").run()
    at.selectbox(key="preset").set_value("omitted-3").run()
    at.number_input(key=box).set_value(value).run()
    assert not at.exception, at.exception
    assert at.button[0].disabled
    assert any(reason in w.value for w in at.warning), [w.value for w in at.warning]
    at.number_input(key=box).set_value(3).run()
    assert not at.button[0].disabled


def test_lab_preset_mode_shows_every_preset(store_path):
    at = _page("lab.py")
    at.button_group(key="mode").set_value("Preset").run()
    assert at.selectbox(key="preset").value == "hinton-mnist"
    for name, preset in PRESETS.items():
        at.selectbox(key="preset").set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert at.number_input(key=f"ep-{name}").value == preset.config.epochs
        assert any(preset.source in c.value for c in at.caption)
        assert not at.button[0].disabled  # Start is ready


def _fake_run(store: Store, name: str, status: str, errors: int, method: str = "kd") -> int:
    """A finished run written straight to the store (no training): what the page reads."""
    kind = "custom" if name == "custom" else "preset"
    run_id = store.create(kind, name, {"method": method, "epochs": 2, "seed": 0}, f"k{errors}")
    model = f"student_{method}"
    history = {model: [{"epoch": e, "test_accuracy": 0.9 + e / 100, "train_accuracy": 0.9,
                        "test_errors": errors + 10 - e, "losses": {"total": 1.0 / e}}
                       for e in (1, 2)]}  # fmt: skip
    result = {
        "preset": name,
        "status": status,
        "message": "",
        "config": {},
        "history": history,
        "models": {model: {"test_errors": errors, "test_accuracy": 1 - errors / 1e4}},
        "paper": {"source": "paper", "test_errors": {model: 74}},
    }
    store.finish(run_id, status, "" if status == "completed" else "stopped", result)
    return run_id


def test_runs_page_filters_selects_and_deletes(store_path):
    store = Store(store_path)
    a = _fake_run(store, "hinton-mnist", "completed", 80)
    b = _fake_run(store, "custom", "failed", 300, method="logits")
    c = _fake_run(store, "custom", "completed", 120, method="hard")
    at = _page("runs.py")
    assert list(at.dataframe[0].value["id"]) == [c, b, a]

    at.selectbox(key="status").set_value("failed").run()
    assert list(at.dataframe[0].value["id"]) == [b]
    at.selectbox(key="status").set_value("all")
    at.selectbox(key="method").set_value("kd").run()
    assert list(at.dataframe[0].value["id"]) == [a]
    at.selectbox(key="method").set_value("all")
    at.selectbox(key="preset").set_value("custom").run()
    assert list(at.dataframe[0].value["id"]) == [c, b]
    at.selectbox(key="preset").set_value("all").run()

    at.multiselect(key="picked").set_value([a, c]).run()
    overlay = at.get("plotly_chart")[0].proto.spec
    assert f"#{a} hinton-mnist" in overlay and f"#{c} custom hard" in overlay

    assert at.button(key="delete").disabled  # not before the confirmation
    at.checkbox(key="sure").check().run()
    at.button(key="delete").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in store.list()] == [b]
    assert list(at.dataframe[0].value["id"]) == [b]


def test_runs_page_empty_and_odd_params(store_path):
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params.update(status="nonsense", method="??")
    at.run()
    assert not at.exception and "No runs yet" in at.info[0].value


def test_lab_missing_data_set_gives_one_line_and_no_start(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path / "no-data-here"))
    at = _page("lab.py")
    at.selectbox(key="data").set_value("fashion-mnist").run()
    assert not at.exception, at.exception
    notice = at.warning[0].value
    assert "fashion-mnist" in notice and "\n" not in notice
    assert at.button[0].disabled  # Start


def test_lab_out_of_range_values_disable_start_with_the_reason(store_path):
    """Typed values the run cannot take reach the check (no silent clamp or stale value): Start
    is disabled and the reason names them; fixed, Start records exactly what is shown."""
    at = _page("lab.py")
    at.number_input(key="alpha").set_value(7.0)
    at.number_input(key="lr").set_value(0.0).run()
    assert not at.exception, at.exception
    assert at.number_input(key="alpha").value == 7.0 and at.number_input(key="lr").value == 0.0
    assert at.button[0].disabled
    (reason,) = [w.value for w in at.warning]
    assert ("alpha" in reason or "lr" in reason) and "\n" not in reason
    at.number_input(key="alpha").set_value(0.5).run()
    assert at.button[0].disabled and "lr" in at.warning[0].value
    _tiny(at, epochs=1, method="hard")
    at.number_input(key="lr").set_value(0.2).run()
    assert not at.button[0].disabled and not at.warning
    shown = {k: at.number_input(key=k).value for k in ("lr", "epochs", "seed", "grad_clip")}
    at.button[0].click().run()
    assert not at.exception, at.exception
    cfg = Store(store_path).get(1).config
    assert {k: cfg[k] for k in shown} == shown and cfg["method"] == "hard"


def test_the_custom_run_s_boxes_are_labelled_as_words(store_path):
    """Every control of the custom run has a label in words, capitalised as the others ("Data
    set", "Method"): the architecture boxes read "teacher" and "student", the field names."""
    at = _page("lab.py")
    assert at.selectbox(key="teacher").label == "Teacher"
    assert at.selectbox(key="student").label == "Student"
    labels = [w.label for w in (*at.selectbox, *at.number_input, *at.button_group)]
    # a word starts with a capital; a symbol ("α, the teacher's weight") stays as it is
    assert labels and not [label for label in labels if "a" <= label[:1] <= "z"], labels


def test_lab_baseline_switch_comes_from_the_url(store_path):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(baseline="false", method="Knowledge distillation", T="8")
    at.run()
    assert not at.exception and not at.toast
    assert at.toggle(key="baseline").value is False and at.number_input(key="T").value == 8.0
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(baseline="maybe")
    at.run()
    assert at.toggle(key="baseline").value is True and " baseline=" in at.toast[0].value
    assert "baseline" not in at.query_params


def test_runs_page_keeps_the_compared_runs_in_the_url(store_path):
    store = Store(store_path)
    a = _fake_run(store, "hinton-mnist", "completed", 80)
    b = _fake_run(store, "custom", "completed", 120, method="hard")
    c = _fake_run(store, "custom", "completed", 90, method="logits")
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params["compare"] = f"{c},{a}"
    at.run()
    assert not at.exception and not at.toast
    assert at.multiselect(key="picked").value == [c, a]
    at.multiselect(key="picked").set_value([b]).run()
    assert at.query_params["compare"] == str(b)  # a changed selection goes to the URL
    at.multiselect(key="picked").set_value([]).run()
    assert at.query_params["compare"] == ""  # none, not the default three
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params["compare"] = f"{b},x,999,²"
    at.run()
    assert not at.exception and at.multiselect(key="picked").value == [b]
    assert " compare=" in at.toast[0].value and at.query_params["compare"] == str(b)
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params["compare"] = "999,999,999"  # nothing listed: the default, not nothing
    at.run()
    assert not at.exception and at.multiselect(key="picked").value == [c, b]
    assert "(999 not listed); comparing the default runs" in at.toast[0].value
    assert "compare" not in at.query_params
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params["compare"] = [str(a), str(c), str(a)]  # ?compare=a&compare=c&compare=a
    at.run()
    assert not at.exception and not at.toast  # a list given key by key is still a list
    assert at.multiselect(key="picked").value == [a, c] and at.query_params["compare"] == f"{a},{c}"


def test_runs_page_keeps_the_curve_and_the_run_shown_in_the_url(store_path):
    store = Store(store_path)
    a = _fake_run(store, "hinton-mnist", "completed", 80)
    b = _fake_run(store, "custom", "completed", 120, method="hard")
    at = _page("runs.py")
    assert at.selectbox(key="show").value == b  # the newest run, and the URL stays bare
    assert "show" not in at.query_params and "curve" not in at.query_params
    at.button_group(key="curve").set_value("test errors").run()  # bound: the browser's URL
    at.selectbox(key="show").set_value(a).run()
    assert at.query_params["show"] == str(a)
    assert '"test errors"' in at.get("plotly_chart")[0].proto.spec  # the overlay's axis

    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)  # the link, opened
    at.query_params.update(curve="test errors", show=str(a))
    at.run()
    assert not at.exception and at.selectbox(key="show").value == a
    assert at.button_group(key="curve").value == "test errors"
    assert any(f"lab?run={a}" in m.value for m in at.markdown)

    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)  # odd values
    at.query_params.update(curve="test_errors", show="999")
    at.run()
    assert not at.exception and at.selectbox(key="show").value == b
    assert at.button_group(key="curve").value == "test accuracy"
    assert "show" not in at.query_params and "curve" not in at.query_params
    said = " ".join(t.value for t in at.toast)
    assert f"using #{b} custom hard · completed" in said  # the run by name, not by its id


def test_lab_preset_shows_what_epochs_cover_the_teacher_epochs_and_an_estimate(
    store_path, tmp_path, monkeypatch
):
    """omitted-3's students and teacher have separate epochs (its teacher is hinton-mnist's,
    cached): both are shown side by side, and the time is scaled from a stored run."""
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path / "none"))  # no shipped run to scale
    at = _page("lab.py")
    at.button_group(key="mode").set_value("Preset").run()
    at.selectbox(key="preset").set_value("omitted-3").run()
    assert at.number_input(key="ep-omitted-3").label.startswith("Student epochs")
    assert at.number_input(key="tep-omitted-3").value == 8
    assert at.number_input(key="tep-omitted-3").label == "Teacher epochs, default 8"
    # a teacher that follows the students' epochs at 0 says so, not "default 0"
    at.selectbox(key="preset").set_value("fitnets-mnist").run()
    assert at.number_input(key="tep-fitnets-mnist").value == 0
    assert at.number_input(key="tep-fitnets-mnist").label == "Teacher epochs, 0 = as epochs"
    at.selectbox(key="preset").set_value("omitted-3").run()
    assert any("No estimate yet" in c.value for c in at.caption)

    store = Store(store_path)
    run_id = store.create("preset", "omitted-3", {"epochs": 8, "teacher_epochs": 8}, "k")
    hist = {"teacher": [{"epoch": e, "seconds": 10.0} for e in range(1, 9)],
            "student_kd": [{"epoch": e, "seconds": 2.0} for e in range(1, 9)]}  # fmt: skip
    models = {"teacher": {"role": "teacher"}, "student_kd": {"role": "student"}}
    store.finish(run_id, "completed", "", {"config": {"epochs": 8, "teacher_epochs": 8},
                                           "history": hist, "models": models})  # fmt: skip

    def estimate() -> str:
        return next(c.value for c in at.caption if "Estimated time" in c.value)

    at.run()
    assert "about 16 s" in estimate()  # the student's 8 x 2 s; the teacher is cached
    at.number_input(key="ep-omitted-3").set_value(4).run()
    assert "about 8 s" in estimate()
    at.number_input(key="tep-omitted-3").set_value(2).run()  # a new teacher: 2 x 10 s
    assert "about 28 s" in estimate()
    assert not at.button[0].disabled


def test_a_method_that_cannot_pair_the_two_models_disables_start_with_the_reason(store_path):
    """FSP needs a layer of each name in both models and the teacher's channel counts: with the
    default MLPs Start is disabled and says which layer is missing, before anything trains;
    two ResNets of the same widths are ready."""
    at = _page("lab.py")
    at.button_group(key="method").set_value("fsp").run()
    assert not at.exception, at.exception
    assert at.button[0].disabled
    (reason,) = [w.value for w in at.warning]
    assert reason.startswith("the student has no feature 'stem'; it has hidden1_pre")
    at.selectbox(key="teacher").set_value("resnet20")
    at.selectbox(key="student").set_value("resnet8x4").run()
    assert at.button[0].disabled
    assert [w.value for w in at.warning] == [
        "FSP needs the teacher's channels: the student's stem has 64, the teacher's 16"
    ]
    at.selectbox(key="student").set_value("resnet8").run()
    assert not at.exception and not at.warning and not at.button[0].disabled


def test_ctkd_takes_its_controls_from_its_entry_and_refuses_a_start_outside_its_range(store_path):
    """CTKD's learned temperature lies strictly between the lowest and the lowest plus the
    range: a start outside disables Start with the reason, before anything trains."""
    at = _page("lab.py")
    at.button_group(key="method").set_value("ctkd").run()
    assert not at.exception and not at.button[0].disabled
    shown = {n.key: n.value for n in at.number_input}
    assert shown["t_start"] == 1.0 and shown["t_range"] == 20.0 and shown["ramp_epochs"] == 10.0
    assert shown["t_init"] == pytest.approx(15.62, abs=0.01)
    at.number_input(key="t_init").set_value(25.0).run()
    assert at.button[0].disabled
    assert [w.value for w in at.warning] == [
        "the starting temperature must lie strictly between the lowest (1) and the lowest plus "
        "the range (21), not 25"
    ]
    at.number_input(key="t_range").set_value(30.0).run()
    assert not at.warning and not at.button[0].disabled


def test_a_custom_run_draws_what_its_method_recorded_each_epoch(store_path, tmp_path, monkeypatch):
    """A real CTKD run: beside the curves, a panel per number its distiller recorded (the
    learned temperature, λ, ...) with the stored values; a plain KD run records none."""
    import json

    from tests.apptest import plotly_array

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    at = _tiny(_page("lab.py"), method="ctkd")
    at.number_input(key="ramp_epochs").set_value(1.0).run()
    at.button[0].click().run()
    _until_done(at)
    assert "completed" in _header(at)
    run = Store(store_path).get(1)
    (chart,) = [c for c in at.get("plotly_chart") if c.key == "recorded-1"]
    spec = json.loads(chart.proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:2] == ["temperature", "lambda"]
    stored = [e["extra"]["temperature"] for e in run.history["student_ctkd"]]
    first = next(d for d in spec["data"] if d["name"] == "student_ctkd")
    assert plotly_array(first["y"]).tolist() == pytest.approx(stored)
    assert min(stored) > 1.0 and max(stored) < 21.0
    lam = [e["extra"]["lambda"] for e in run.history["student_ctkd"]]
    assert lam == pytest.approx([1.0, 1.0])  # the curriculum was one epoch long
    # the hard-label baseline records nothing of its own: no line of it in the panel
    assert {d["name"] for d in spec["data"]} == {"student_ctkd"}
    assert any("recorded at the end of every epoch" in c.value for c in at.caption)
