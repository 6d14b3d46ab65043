"""AppTest for the feature-based pages (projector spectrum, hints and attention maps): with an
empty store they offer a run and train nothing; with a small hand-written completed result of
each preset's shape (no training) they draw it, and the controls move what is drawn. Also the
figure module's summaries against hand-checked numbers."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.feature_figures import projector_table, projector_verdict
from kdcore.models import build_model
from kdcore.store import Store
from tests.apptest import run_page

TIMEOUT = 60


def _page(name: str, **params) -> AppTest:
    return run_page(name, TIMEOUT, **params)


def _fake_run(store: Store, name: str, result: dict) -> int:
    run_id = store.create("preset", name, {"epochs": 2, "seed": 0}, f"fake-{name}")
    store.finish(run_id, "completed", "", {"preset": name, "status": "completed", **result})
    return run_id


def _spec(at: AppTest, key: str) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id)
    return json.loads(chart.proto.spec)


def _values(v) -> np.ndarray:
    """A trace's array from the chart spec: Plotly sends numpy arrays as typed base64."""
    if isinstance(v, dict) and "bdata" in v:
        flat = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return flat.reshape([int(n) for n in str(v.get("shape", len(flat))).split(",")])
    return np.asarray(v)


def _epoch(e: int, losses: dict, stage: str = "", extra: dict | None = None) -> dict:
    return {"epoch": e, "losses": {**losses, "total": sum(losses.values())}, "stage": stage,
            "train_accuracy": 0.9, "test_accuracy": 0.9 + e / 100, "test_errors": 1000 - 100 * e,
            "extra": extra or {}}  # fmt: skip


def _models(*names: str) -> dict:
    return {n: {"test_accuracy": 0.95 + i / 100, "test_errors": 500 - 100 * i}
            for i, n in enumerate(names)}  # fmt: skip


SPECTRA = {  # variant -> per epoch, σ descending (5 values)
    "none": [[2.0, 1.0, 0.5, 0.1, 0.05], [3.0, 1.0, 0.2, 0.01, 1e-4]],
    "orthogonal": [[1.0] * 5, [1.0, 1.0, 1.0, 1.0, 0.99999]],
}


def projector_result() -> dict:
    trace = {v: [{"step": 25 * i, "spectrum": e} for i, e in enumerate(ep)]
             for v, ep in SPECTRA.items()}  # fmt: skip
    names = ("student_hard", "student_kd", "projector_none", "projector_orthogonal")
    return {"spectra": SPECTRA, "collapsed": {"none": 2, "orthogonal": 0}, "trace": trace,
            "models": _models(*names),
            "history": {n: [_epoch(1, {"ce": 0.5}), _epoch(2, {"ce": 0.3})]
                        for n in names}}  # fmt: skip


def fitnets_result() -> dict:
    names = ("student_hard", "student_kd", "student_fitnets")
    history = {n: [_epoch(1, {"ce": 0.5}), _epoch(2, {"ce": 0.3})] for n in names[:2]}
    history["student_fitnets"] = [_epoch(1, {"hint": 0.8}, "hint"),
                                  _epoch(2, {"ce": 0.3, "kd": 0.2}, "train")]  # fmt: skip
    pairing = {"student": "cnn-8.conv2", "teacher": "cnn.conv2", "projector": "conv-bn-relu"}
    return {"models": _models(*names), "history": history, "pairing": pairing}


def _map(value: float) -> list:
    return [[value] * 7 for _ in range(7)]  # (7, 7)


def attention_result() -> dict:
    layers, images = ["conv1", "conv2"], [3, 7]

    def maps(v: float) -> dict:  # image i of epoch e holds v + i / 10 everywhere
        return {layer: [_map(v + i / 10) for i in range(len(images))] for layer in layers}

    names = ("student_hard", "student_kd", "student_at")
    history = {
        "student_hard": [_epoch(e, {"ce": 0.5}, extra={"maps": maps(e)}) for e in (1, 2)],
        "student_kd": [_epoch(e, {"ce": 0.5, "kd": 0.1}) for e in (1, 2)],
        "student_at": [_epoch(e, {"ce": 0.5, "at": 1 / e}, extra={"maps": maps(10 * e)})
                       for e in (1, 2)],
    }  # fmt: skip
    teacher = {"test_index": images, "layers": layers, "teacher": maps(0.0)}
    return {"models": _models(*names), "history": history, "maps": teacher}


# ----------------------------------------------------------------------------- no run yet


def test_projector_page_offers_a_run_and_draws_the_flow(no_shipped, store_path):
    at = _page("projector.py", ds="4", dt="6", steps="50")
    # and MGD's, SRRL's and SimKD's sections'
    assert [b.key for b in at.button] == ["run_now", "run_mgd", "run_srrl", "run_simkd"]
    assert "No completed projector-normalisation run" in at.info[0].value
    assert "No completed mgd-mnist run" in at.info[-3].value
    assert "No completed srrl-mnist run" in at.info[-2].value
    assert "No completed simkd-mnist run" in at.info[-1].value
    assert at.number_input(key="epochs").value == 1
    flow = _spec(at, "flow")
    assert len(flow["data"]) == 1 + 4  # the distance and one line per σ of a (6, 4) map
    # the distance in the left panel, the singular values in the right one (they were once
    # drawn over the distance, leaving "singular values of W_p" empty)
    assert [t.get("xaxis", "x") for t in flow["data"]] == ["x"] + ["x2"] * 4
    # whitened (C_s = I): ‖W_k − C_st‖ = (1 − η)^k ‖W_0 − C_st‖
    dist = _values(flow["data"][0]["y"])
    assert dist[50] / dist[0] == pytest.approx(0.9**50, rel=1e-6)
    at.toggle(key="raw").set_value(True).run()
    assert not at.exception
    assert float(at.metric[2].value) > 1.5  # C_s of the raw features is not the identity
    at.number_input(key="lr").set_value(0.9).run()  # above 2 / λ_max(C_s): diverges
    assert not at.exception and any("diverges" in c.value for c in at.caption)


def test_hints_page_offers_its_eight_runs(no_shipped, store_path):
    at = _page("hints.py")
    assert [b.label for b in at.button] == ["Run it now"] * 8
    assert {n.key for n in at.number_input} == {"ep_fit", "ep_at", "ep_vid", "ep_ab", "ep_ofd",
                                                "ep_ft", "ep_fsp", "ep_review",
                                                "ofd_unit"}  # fmt: skip
    assert "No completed ab-mnist run" in at.info[-5].value
    assert "No completed ofd-mnist run" in at.info[-4].value
    assert "No completed ft-mnist run" in at.info[-3].value
    assert "No completed fsp-mnist run" in at.info[-2].value
    assert "No completed review-mnist run" in at.info[-1].value
    # AB's cost of one unit, OFD's of one number and the demo teacher's unit need no run: the
    # only charts before any training
    assert len(at.latex) == 8 and [
        _spec(at, "ab_hinge"),
        _spec(at, "ofd_cost"),
        _spec(at, "ofd_unit_chart"),
    ] == [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


# A stored vid-mnist run's VID student: three teacher units, two epochs.
VID_EPOCHS = [
    {"variance": [5.0, 4.9, 4.95], "squared_error": [0.4, 0.02, 0.1]},
    {"variance": [4.5, 4.4, 4.45], "squared_error": [0.3, 0.01, 0.05]},
]


def test_hints_page_draws_a_vid_runs_variances_against_its_errors(no_shipped, store_path):
    """Each teacher unit a point, its squared error against its learned variance, at the epoch
    of the URL's slider; the caption's ranges and likelihoods are the run's."""
    from kdcore.losses.vid import vid_loss

    names = ("student_hard", "student_kd", "student_vid")
    history = {n: [_epoch(e + 1, {"ce": 0.5}, extra=VID_EPOCHS[e] if n == names[2] else None)
                   for e in range(2)] for n in names}  # fmt: skip
    run_id = _fake_run(Store(store_path), "vid-mnist", {"models": _models(*names),
                                                        "history": history})  # fmt: skip
    at = _page("hints.py", vid_epoch="1")
    assert not at.exception and at.slider(key="vid_epoch").value == 1
    assert any(f"Run #{run_id}" in c.value and "VID 73.09%" in c.value for c in at.caption)
    points = _spec(at, "vid_variance")["data"][1]
    assert list(_values(points["x"])) == [0.4, 0.02, 0.1]
    assert list(_values(points["y"])) == [5.0, 4.9, 4.95]
    caption = next(c.value for c in at.caption if "student_vid at epoch 1:" in c.value)
    err, var = (torch.tensor(VID_EPOCHS[0][k], dtype=torch.float64).view(1, -1)
                for k in ("squared_error", "variance"))  # fmt: skip
    now = float(vid_loss(err.sqrt(), torch.zeros_like(err), var))
    best = float(vid_loss(err.sqrt(), torch.zeros_like(err), err))
    assert "batches) range from 0.02 to 0.4" in caption and "from 4.9 to 5" in caption
    assert f"is {now:.3f} a unit" in caption and f"would be {best:.3f}" in caption
    assert "100% of the units" in caption and "weighed almost evenly" in caption
    at.slider(key="vid_epoch").set_value(2).run()
    assert list(_values(_spec(at, "vid_variance")["data"][1]["y"])) == [4.5, 4.4, 4.45]


def test_a_vid_run_with_two_starts_draws_the_one_chosen(no_shipped, store_path):
    """Each VID student named by where its variances started (its own record), chosen in the
    URL; the students' errors side by side."""
    near = [{**e, "start_variance": 0.05, "variance": [0.3, 0.01, 0.06]} for e in VID_EPOCHS]
    far = [{**e, "start_variance": 5.0} for e in VID_EPOCHS]
    names = ("student_hard", "student_kd", "student_vid", "student_vid_near")
    extras = {"student_vid": far, "student_vid_near": near}
    history = {n: [_epoch(e + 1, {"ce": 0.5}, extra=extras.get(n, [None, None])[e])
                   for e in range(2)] for n in names}  # fmt: skip
    _fake_run(Store(store_path), "vid-mnist", {"models": _models(*names), "history": history})
    at = _page("hints.py", vid_who="σ² from 0.05")
    assert not at.exception
    assert at.button_group(key="vid_who").options == ["σ² from 5", "σ² from 0.05"]
    assert list(_values(_spec(at, "vid_variance")["data"][1]["y"])) == [0.3, 0.01, 0.06]
    caption = next(c.value for c in at.caption if "at epoch 2:" in c.value)
    assert "student_vid_near at epoch 2" in caption and "weighed almost evenly" not in caption
    assert {"student_vid", "student_vid_near"} <= {m.label for m in at.metric}
    at.button_group(key="vid_who").set_value("σ² from 5").run()
    assert list(_values(_spec(at, "vid_variance")["data"][1]["y"])) == [4.5, 4.4, 4.45]


def test_the_ab_hinge_is_the_loss_at_the_urls_margin(no_shipped, store_path):
    """Each curve of the chart is ab_loss for one unit at the margin in the URL, zero past the
    margin on the teacher's side; the dotted steps are the mismatch count."""
    at = _page("hints.py", ab_mu="0.5")
    assert at.slider(key="ab_mu").value == 0.5
    fires, count, silent = (_spec(at, "ab_hinge")["data"][i] for i in (0, 1, 2))
    x, y = _values(fires["x"]), _values(fires["y"])
    assert y[x >= 0.5].max() == 0.0 and y[np.isclose(x, -1.0)][0] == pytest.approx(2.25)
    assert list(_values(count["y"])) == [float(v <= 0) for v in x]
    y = _values(silent["y"])
    assert y[x <= -0.5].max() == 0.0 and y[np.isclose(x, 1.0)][0] == pytest.approx(2.25)
    assert any("costs at least μ² = 0.25" in c.value for c in at.caption)


def test_a_stored_ab_run_draws_its_agreement_against_guessing(no_shipped, store_path):
    """Per epoch, each AB student's agreement beside the guess of each unit's usual side (from
    how often the teacher's units fire), the initialisation shaded; per unit at the URL's epoch,
    how often it fires against how often the student is on its side; the caption's figures are
    the run's."""
    on = [0.5, 0.9, 0.2]  # the guess: mean of max(p, 1 - p) = (0.5 + 0.9 + 0.8) / 3
    unit = [[0.9, 0.95, 0.85], [0.7, 0.9, 0.8], [0.6, 0.9, 0.8]]
    stages = ["init", "train", "train"]
    extra = [{"agreement": float(np.mean(u)), "unit_agreement": u, "teacher_on": on}
             for u in unit]  # fmt: skip
    names = ("student_hard", "student_kd", "student_ab", "student_ab_kd", "student_ab_throughout")
    losses = {
        "student_ab_kd": {"ce": 0.5, "kd": 0.1},
        "student_ab_throughout": {"ce": 0.5, "ab": 0.2},
    }
    inits = ("student_ab", "student_ab_kd")  # the third keeps AB beside CE: one stage, unnamed
    history = {n: [_epoch(e + 1, {"ab": 1.0} if stages[e] == "init" and n in inits
                          else losses.get(n, {"ce": 0.5}),
                          stage=stages[e] if n in inits else "",
                          extra=extra[e] if n.startswith("student_ab") else None)
                   for e in range(3)] for n in names}  # fmt: skip
    run_id = _fake_run(Store(store_path), "ab-mnist", {"models": _models(*names),
                                                       "history": history})  # fmt: skip
    at = _page("hints.py", ab_epoch="1", ab_who="AB, then KD")
    assert at.slider(key="ab_epoch").value == 1
    assert at.button_group(key="ab_who").options == ["AB, then hard labels", "AB, then KD",
                                                     "AB beside hard labels"]  # fmt: skip
    assert any(f"Run #{run_id}" in c.value and "AB 73.17%" in c.value for c in at.caption)
    fig = _spec(at, "ab_agreement")
    lines = {t["name"]: list(_values(t["y"])) for t in fig["data"]}
    assert lines["AB, then KD"] == pytest.approx([np.mean(u) for u in unit])
    assert lines["guessing each unit's usual side"] == pytest.approx([2.2 / 3] * 3)
    assert [(s["x0"], s["x1"]) for s in fig["layout"]["shapes"]] == [(0.5, 1.5)]
    xs = {t["name"]: list(_values(t["x"])) for t in fig["data"]}
    assert xs["AB, then KD"] == [1, 2, 3] and xs["AB beside hard labels"] == [2, 3, 4]
    # the accuracy curves line the students up on their epochs on labels: AB's from its last
    # stage on, counted from 1
    traces = _spec(at, "curves_ab")["data"]
    curves = {t["name"]: list(_values(t["x"])) for t in traces}
    assert curves["student_ab"] == [1, 2] and curves["student_hard"] == [1, 2, 3]
    assert curves["student_ab_throughout"] == [1, 2, 3]
    assert len({t["line"]["color"] for t in traces}) == 5  # no two students in one colour
    points = _spec(at, "ab_units")["data"][1]
    assert list(_values(points["x"])) == on and list(_values(points["y"])) == unit[0]
    caption = next(c.value for c in at.caption if "AB, then KD at epoch 1" in c.value)
    assert "(AB alone)" in caption and "90.0% of the time, against 73.3%" in caption
    assert "3 of the 3 teacher units" in caption
    assert "(epoch 1) it was 90.0%; at the last epoch, 76.7%" in caption
    at.slider(key="ab_epoch").set_value(3).run()
    caption = next(c.value for c in at.caption if "AB, then KD at epoch 3" in c.value)
    assert "(after the initialisation)" in caption and "1 of the 3 teacher units" in caption
    at.button_group(key="ab_who").set_value("AB beside hard labels").run()
    caption = next(c.value for c in at.caption if "AB beside hard labels at epoch 3" in c.value)
    assert "(AB beside its labels from the start)" in caption and "initialisation (" not in caption


def test_a_run_in_flight_is_polled_not_offered(store_path):
    store = Store(store_path)
    store.create("preset", "attention-transfer", {"epochs": 1}, "k", status="running")
    at = _page("hints.py")
    keys = [b.key for b in at.button]
    assert "run_at" not in keys and {"run_fit", "run_vid", "run_ab"} <= set(keys)  # the others
    assert at.get("progress") and "under way" in " ".join(c.value for c in at.caption)


# ----------------------------------------------------------------------------- stored runs


def test_projector_page_shows_a_stored_run(store_path):
    run_id = _fake_run(Store(store_path), "projector-normalisation", projector_result())
    at = _page("projector.py", steps="20")
    # no offer of the preset's own run; only MGD's, SRRL's and SimKD's sections', folded under
    # their shipped runs
    assert [b.key for b in at.button] == ["run_mgd", "run_srrl", "run_simkd"]
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    assert len(_spec(at, "final")["data"]) == 2
    spectrum = _spec(at, "spectrum")
    assert [d["type"] for d in spectrum["data"]] == ["scatter", "scatter", "heatmap"]
    assert _values(spectrum["data"][1]["y"])[-1] == pytest.approx(1e-4)
    table = at.dataframe[0].value
    assert list(table["model"]) == [*(f"projector_{v}" for v in SPECTRA), "student_hard",
                                    "student_kd"]  # fmt: skip
    assert any("kept all 5 singular values at 1" in m.value for m in at.markdown)
    at.button_group(key="variant").set_value("orthogonal").run()
    assert not at.exception
    assert list(_values(_spec(at, "spectrum")["data"][0]["y"])) == [1.0] * 5


def test_hints_page_shows_stored_runs_and_follows_the_controls(store_path):
    store = Store(store_path)
    _fake_run(store, "fitnets-mnist", fitnets_result())
    at_id = _fake_run(store, "attention-transfer", attention_result())
    cnn = build_model("cnn", 10, (1, 28, 28))  # untrained: the live maps only need a CNN
    store.save_weights(at_id, "teacher", cnn, "cnn", 10, (1, 28, 28))
    at = _page("hints.py")
    assert not {"run_fit", "run_at"} & {b.key for b in at.button}  # both shown, neither offered
    assert "(16, 7, 7)" in " ".join(m.value for m in at.markdown)  # the guided layer's shape
    hint = _spec(at, "hint")
    assert [d["name"] for d in hint["data"]] == ["hint", "ce", "kd"]
    assert hint["layout"]["shapes"][0]["x1"] == 1.5  # the hint stage is epoch 1
    assert _spec(at, "fit_acc")["data"][0]["x"] == ["student_hard", "student_kd",
                                                    "student_fitnets"]  # fmt: skip
    assert at.slider(key="epoch").value == 2
    maps = _spec(at, "maps")["data"]  # rows conv1, conv2; columns teacher, AT, hard
    assert [_values(m["z"])[0, 0] for m in maps[:3]] == [0.0, 20.0, 2.0]
    at.slider(key="epoch").set_value(1).run()
    at.number_input(key="img").set_value(1).run()
    assert not at.exception
    maps = _spec(at, "maps")["data"]
    assert [_values(m["z"])[0, 0] for m in maps[:3]] == pytest.approx([0.1, 10.1, 1.1])
    assert "#7" in at.image[0].proto.imgs[0].caption
    live = _spec(at, "live")["data"]
    assert len(live) == 2 and _values(live[0]["z"]).shape == (14, 14)  # conv1 of the CNN
    assert at.number_input(key="test").value == 3  # starts at the first stored image
    at.number_input(key="test").set_value(0).run()
    assert not at.exception and "#0" in at.image[1].proto.imgs[0].caption


# ----------------------------------------------------------------------------- summaries


def test_projector_verdict_reads_the_numbers():
    res = {"spectra": {"none": [[1.0, 1e-3]], "batchnorm": [[1.0, 0.5]],
                       "orthogonal": [[1.0, 0.9]]},
           "collapsed": {"none": 1, "batchnorm": 0, "orthogonal": 0}}  # fmt: skip
    text = projector_verdict(res)
    assert "**1** singular values collapsed against **0**" in text and "agrees" in text
    assert "off 1 by up to 0.100" in text
    res["collapsed"]["batchnorm"] = 1
    assert "no difference" in projector_verdict(res)
    rows = projector_table(res)
    assert rows[0] == {"model": "projector_none", "collapsed σ": 1, "of": 2, "σ_max": 1.0,
                       "σ_min": 1e-3, "test accuracy %": None}  # fmt: skip


def test_hints_page_shows_a_stored_ft_run_and_its_factor_gaps(store_path):
    """Each FT student's L_FT is its recorded β·L_FT over its own β, epoch by epoch on labels
    (after the paraphraser's epochs), and the caption quotes the paraphraser's errors."""
    from kdcore.store import Store

    names = ("student_hard", "student_kd", "student_ft", "student_ft_random", "student_ft_light")
    models = _models(*names)
    weights = {"student_ft": 500.0, "student_ft_random": 500.0, "student_ft_light": 50.0}
    for n, w in weights.items():
        models[n].update(method="ft", method_params={"weight": w, "init_epochs": 2})
    history = {n: [{"epoch": 1, "stage": "", "test_accuracy": 0.9, "losses": {"ce": 1.0}}]
               for n in names}  # fmt: skip
    history["student_ft"] = [
        _epoch(1, {"rec": 0.43}, "paraphraser", {"relative_reconstruction": 0.61}),
        _epoch(2, {"rec": 0.41}, "paraphraser", {"relative_reconstruction": 0.58}),
        {"epoch": 3, "stage": "train", "test_accuracy": 0.9, "losses": {"ce": 1.0, "ft": 5.0}},
        {"epoch": 4, "stage": "train", "test_accuracy": 0.95, "losses": {"ce": 0.5, "ft": 2.5}},
    ]
    for n in ("student_ft_random", "student_ft_light"):
        losses = [{"ce": 1.0, "ft": weights[n] * 0.01 / e} for e in (1, 2)]
        history[n] = [_epoch(e, lo) for e, lo in enumerate(losses, 1)]
    run_id = _fake_run(Store(store_path), "ft-mnist", {"models": models, "history": history})
    at = _page("hints.py")
    assert not at.exception
    gaps = _spec(at, "ft_gaps")["data"]
    assert [d["name"] for d in gaps] == ["student_ft (β = 500)", "student_ft_random (β = 500)",
                                         "student_ft_light (β = 50)"]  # fmt: skip
    assert list(_values(gaps[0]["y"])) == pytest.approx([0.01, 0.005])
    assert list(_values(gaps[2]["y"])) == pytest.approx([0.01, 0.005])
    assert any(f"Run #{run_id}" in c.value and "FT 72.86%" in c.value for c in at.caption)
    said = next(c.value for c in at.caption if c.value.startswith("The paraphraser's"))
    assert "0.430, 0.410 (61%, 58% of the layer's own size)" in said
    assert "student_ft_light 0.0050" in said


def fsp_result() -> dict:
    """A stored fsp-mnist run's shape: two pairs of layers (2 × 2 and 2 × 3 matrices); the FSP
    students recorded after their FSP epoch and two epochs on labels, the others after two."""
    names = ("student_hard", "student_kd", "student_fsp", "student_fsp_kd")
    history = {n: [_epoch(e, {"ce": 0.5}) for e in (1, 2)] for n in names}  # one stage: ""
    for n in ("student_fsp", "student_fsp_kd"):
        history[n] = [_epoch(1, {"fsp": 9.0}, "init"), *(_epoch(e, {"ce": 0.5}, "train")
                                                        for e in (2, 3))]  # fmt: skip
    flow = {"student_hard": [[4.0, 40.0], [3.0, 30.0]], "student_kd": [[4.0, 20.0], [2.0, 10.0]],
            "student_fsp": [[0.5, 5.0], [0.4, 4.0], [0.3, 3.0]],
            "student_fsp_kd": [[0.5, 5.0], [0.6, 6.0], [0.7, 7.0]]}  # fmt: skip

    def mats(v: float) -> list:
        return [[[v, 0.0], [0.0, v]], [[v, 1.0, 2.0], [0.0, v, 0.0]]]

    students = {n: [mats(float(i + e)) for e in range(len(f))]
                for i, (n, f) in enumerate(flow.items())}  # fmt: skip
    return {"models": _models(*names), "history": history, "flow": flow,
            "flow_matrices": {"layers": ["stem", "stage1", "stage2"], "indices": [3, 1, 4],
                              "teacher": mats(1.0), "students": students}}  # fmt: skip


def test_hints_page_shows_a_stored_fsp_run_its_flow_and_matrices(store_path):
    """The FSP loss to the teacher per epoch, FSP's own epoch at 0; the matrices of the chosen
    pair, student and epoch beside the teacher's; a student with no record there says so."""
    run_id = _fake_run(Store(store_path), "fsp-mnist", fsp_result())
    at = _page("hints.py")
    assert not at.exception
    flow = _spec(at, "fsp_flow")["data"]
    assert [d["name"] for d in flow] == ["student_hard", "student_kd", "student_fsp",
                                         "student_fsp_kd"]  # fmt: skip
    assert list(_values(flow[2]["x"])) == [0, 1, 2] and list(_values(flow[0]["x"])) == [1, 2]
    assert list(_values(flow[0]["y"])) == pytest.approx([44.0, 33.0])
    assert any(f"Run #{run_id}" in c.value and "FSP 69.95%" in c.value for c in at.caption)
    assert any(c.value == "After FSP's own epochs its student's matrices are 6 times nearer the "
               "teacher's than the hard-label student's at the end (6 against 33); its epochs "
               "on labels take it to 3." for c in at.caption)  # fmt: skip
    speed = next(c.value for c in at.caption if c.value.startswith("Test errors after each"))
    assert speed.endswith("800 against 900, 700 against 800.")
    # the widest pair, the FSP student, the last epoch by default: teacher, student, difference
    panels = _spec(at, "fsp_matrices")["data"]
    assert len(panels) == 3
    assert _values(panels[0]["z"]).tolist() == [[1.0, 1.0, 2.0], [0.0, 1.0, 0.0]]
    assert _values(panels[1]["z"]).tolist() == [[4.0, 1.0, 2.0], [0.0, 4.0, 0.0]]
    assert _values(panels[2]["z"]).tolist() == [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    said = next(c.value for c in at.caption if c.value.startswith("student_fsp at epoch 2"))
    assert "stem → stage1" not in said and "stage1 → stage2 3, all pairs 3.3" in said
    at.number_input(key="fsp_ep").set_value(0).run()
    at.button_group(key="fsp_pair").set_value("stem → stage1").run()
    assert not at.exception
    said = next(c.value for c in at.caption if c.value.startswith("student_fsp at epoch 0"))
    assert "stem → stage1 0.5, all pairs 5.5" in said
    assert _values(_spec(at, "fsp_matrices")["data"][1]["z"]).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    at.button_group(key="fsp_who").set_value("student_hard").run()
    assert not at.exception and len(_spec(at, "fsp_matrices")["data"]) == 1
    assert any(c.value.startswith("student_hard has no matrices at epoch 0") for c in at.caption)


def review_result() -> dict:
    """A stored review-mnist run's shape: the ReviewKD student's three epochs, three levels (two
    fusing), HCL per level and the fusion's mean attention (own, residual) per fusing level."""
    names = ("student_hard", "student_kd", "student_review")
    history = {n: [_epoch(e, {"ce": 0.5}) for e in (1, 2, 3)] for n in names}
    fusion = [[[0.5, 0.5], [0.5, 0.5]], [[0.4, 0.6], [0.8, 0.5]], [[0.2, 0.6], [0.5, 0.5]]]
    history["student_review"] = [
        _epoch(e, {"ce": 0.5, "review": 1.0}, extra={
            "review_loss": 3.0 / e, "level_loss": [1.0 / e, 1.5 / e, 0.5 / e],
            "fusion": fusion[e - 1]}) for e in (1, 2, 3)]  # fmt: skip
    models = _models(*names)
    models["student_review"]["method_params"] = {
        "layers": "stage1,stage2,embedding",
        "teacher_layers": "stage1_pre,stage2_pre,embedding",
    }
    return {"models": models, "history": history}


def test_hints_page_shows_a_stored_review_run_its_levels_and_paths(store_path):
    """HCL per level per epoch; the paths grid at the chosen epoch: level j's weight in the
    prediction of level i is the product of the residual weights from i to j − 1 and j's own
    (1 at the deepest level), blank below the diagonal."""
    run_id = _fake_run(Store(store_path), "review-mnist", review_result())
    at = _page("hints.py")
    assert not at.exception
    levels = _spec(at, "review_levels")["data"]
    assert [d["name"] for d in levels] == ["stage1", "stage2", "embedding"]
    assert list(_values(levels[1]["y"])) == pytest.approx([1.5, 0.75, 0.5])
    assert any(f"Run #{run_id}" in c.value and "ReviewKD 71.89%" in c.value for c in at.caption)
    grid = _values(_spec(at, "review_paths")["data"][0]["z"]).astype(float)
    want = [[0.2, 0.6 * 0.5, 0.6 * 0.5], [np.nan, 0.5, 0.5], [np.nan, np.nan, 1.0]]
    np.testing.assert_allclose(grid, want)
    said = next(c.value for c in at.caption if c.value.startswith("Epoch 3, means"))
    assert "stage1_pre is predicted from the student's stage1 at weight 0.20" in said
    assert "deeper levels at 0.60 in all: 75% of the sum is review" in said
    at.number_input(key="review_ep").set_value(2).run()
    assert not at.exception
    grid = _values(_spec(at, "review_paths")["data"][0]["z"]).astype(float)
    np.testing.assert_allclose(grid[0], [0.4, 0.6 * 0.8, 0.6 * 0.5])
