"""Hinton et al.'s MNIST demonstrations as presets: the bias sweep against a direct computation,
and every preset end to end on a small slice of MNIST with tiny models."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.bias import bias_grid, bias_sweep, predictions_with_bias
from kdcore.data import class_counts, load_dataset
from kdcore.presets import (
    PRESETS,
    HintonMnistConfig,
    Monitor,
    holdout,
    run_preset,
    teacher_train_config,
)
from kdcore.train import TrainConfig
from tests.tiny_mnist import TINY_OVERRIDES, write_tiny_mnist

STANDARD = {"preset", "status", "message", "config", "device", "history", "models", "paper"}
NEW_PRESETS = ("omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep")


# ----------------------------------------------------------------------------- bias sweep


def direct_sweep(logits, labels, classes, biases):
    """The definition, one bias at a time: add b to the classes' logits and take the argmax."""
    mask = torch.zeros(logits.shape[1])
    mask[list(classes)] = 1.0
    member = torch.isin(labels, torch.tensor(classes))
    errors, on_classes = [], []
    for b in biases:
        wrong = (logits + b * mask).argmax(1) != labels
        errors.append(int(wrong.sum()))
        on_classes.append(int((wrong & member).sum()))
    return errors, on_classes


@pytest.mark.parametrize("classes", [(3,), (7, 8), (0, 4, 9)])
def test_bias_sweep_matches_direct_computation(classes):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 10, generator=g) * 3
    labels = torch.randint(0, 10, (2000,), generator=g)
    biases = bias_grid(-6.0, 6.0, 0.25)
    sweep = bias_sweep(logits, labels, classes, biases)
    errors, on_classes = direct_sweep(logits, labels, classes, biases)
    assert sweep.errors == errors
    assert sweep.errors_on_classes == on_classes
    assert sweep.n == 2000 and sweep.n_classes == int(
        torch.isin(labels, torch.tensor(classes)).sum()
    )
    best = sweep.best()
    assert sweep.errors[best] == min(errors)
    assert sweep.accuracy[best] == pytest.approx(1 - min(errors) / 2000)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(-3, 3), min_size=5, max_size=5), min_size=1, max_size=30),
    classes=st.sets(st.integers(0, 4), min_size=1, max_size=5),
    bias=st.integers(-8, 8),
)
def test_predictions_with_bias_break_ties_like_argmax(rows, classes, bias):
    # Small integer logits and half-integer biases: many exact ties, no rounding.
    logits = torch.tensor(rows, dtype=torch.float32)
    b = bias / 2
    mask = torch.zeros(5)
    mask[sorted(classes)] = 1.0
    expected = (logits + b * mask).argmax(1)
    got = predictions_with_bias(logits, sorted(classes), torch.tensor([b]))[0]
    assert torch.equal(got, expected)


def test_bias_grid_hits_the_papers_values_exactly():
    grid = bias_grid(0.0, 10.0, 0.05)
    assert grid[0] == 0.0 and grid[-1] == 10.0 and len(grid) == 201
    assert 3.5 in grid and 7.6 in bias_grid(0.0, 15.0, 0.05)


# ----------------------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(write_tiny_mnist(tmp_path_factory.mktemp("mnist")))


def run_tiny(name, data_dir, **extra):
    result = run_preset(name, data_dir=data_dir, **{**TINY_OVERRIDES[name], **extra})
    json.dumps(result)  # what the CLI writes and the run store keeps
    return result


def test_presets_are_registered_with_sources_and_paper_numbers():
    for name in NEW_PRESETS:
        p = PRESETS[name]
        assert "Hinton, Vinyals & Dean 2015" in p.source and "§" in p.source
        assert p.config.epochs >= 1 and p.differences
    assert PRESETS["omitted-3"].paper["bias_adjustment"]["bias"] == 3.5
    assert PRESETS["only-7-8"].paper["bias_adjustment"]["bias"] == -7.6


def test_omitted_3_never_sees_a_3_and_reports_the_bias_adjustment(tiny_dir):
    r = run_tiny("omitted-3", tiny_dir)
    assert r["status"] == "completed" and set(r) >= STANDARD
    assert set(r["models"]) == {"teacher", "student_no3"}

    # The transfer set has no 3s, and is exactly the held-out-free training set minus its 3s.
    data = load_dataset("mnist", data_dir=tiny_dir)
    rest, _, y_val = holdout(data, 500, 0)
    ts = r["transfer_set"]
    assert ts["class_counts"][3] == 0
    assert ts["size"] == sum(ts["class_counts"]) == int((rest.y_train != 3).sum())
    expected = class_counts(rest.y_train)
    expected[3] = 0
    assert ts["class_counts"] == expected and ts["held_out"] == len(y_val) == 500

    adj = r["bias_adjustment"]
    for key in ("bias", "errors_before", "errors_on_3_before", "errors_after", "errors_on_3_after"):
        assert key in adj
    sweep = adj["sweep"]
    assert len(sweep["bias"]) == len(sweep["errors"]) == len(sweep["accuracy_on_classes"]) == 201
    assert adj["errors_before"] == r["models"]["student_no3"]["test_errors"] == sweep["errors"][0]
    assert adj["errors_after"] == min(sweep["errors"]) <= adj["errors_before"]
    assert adj["n_test_classes"] == int((data.y_test == 3).sum())
    assert adj["errors_on_3_before"] == adj["errors_on_classes_before"] <= adj["n_test_classes"]
    val = adj["validation"]
    assert val["n"] == 500 and val["bias"] in sweep["bias"]
    assert val["errors_after"] == sweep["errors"][sweep["bias"].index(val["bias"])]
    assert val["errors_after"] >= adj["errors_after"]  # the test-chosen bias is the optimist


def test_only_7_8_keeps_only_7s_and_8s_and_lowers_their_biases(tiny_dir):
    r = run_tiny("only-7-8", tiny_dir)
    assert r["status"] == "completed" and set(r) >= STANDARD
    counts = r["transfer_set"]["class_counts"]
    assert [c for c, n in enumerate(counts) if n] == [7, 8]
    adj = r["bias_adjustment"]
    assert adj["classes"] == [7, 8] and adj["bias"] <= 0 and max(adj["sweep"]["bias"]) == 0
    assert adj["error_percent_before"] == pytest.approx(
        100 * (1 - r["models"]["student_78"]["test_accuracy"]), abs=1e-3
    )
    assert adj["error_percent_after"] <= adj["error_percent_before"]


def test_temperature_sweep_reports_errors_per_student_and_T(tiny_dir):
    r = run_tiny("temperature-sweep", tiny_dir)
    assert r["status"] == "completed" and set(r) >= STANDARD
    sweep = r["sweep"]
    assert sweep["parameter"] == "T" and sweep["values"] == [1.0, 4.0]
    assert set(sweep["errors"]) == {"mlp-30", "mlp-8"}
    for arch in ("mlp-30", "mlp-8"):
        assert sweep["errors"][arch] == [
            r["models"][f"{arch} T={t:g}"]["test_errors"] for t in (1, 4)
        ]
        assert sweep["baseline_errors"][arch] == r["models"][f"{arch} hard"]["test_errors"]
    assert r["models"]["mlp-8 T=1"]["params"] < r["models"]["mlp-30 T=1"]["params"]
    # One teacher, reused from the cache by the other presets of this module or trained here.
    assert len(r["history"]) == 1 + 2 * 3


def test_alpha_sweep_reports_errors_per_alpha(tiny_dir):
    r = run_tiny("alpha-sweep", tiny_dir)
    assert r["status"] == "completed" and set(r) >= STANDARD
    sweep = r["sweep"]
    assert sweep["parameter"] == "alpha" and sweep["fixed"] == {"T": 20.0}
    assert len(sweep["errors"]["mlp-30"]) == 3
    assert "claims" in r["paper"] and "test_errors" in r["paper"]


def test_presets_share_hinton_mnists_cached_teacher(tiny_dir):
    first = run_tiny("hinton-mnist", tiny_dir, seed=11)
    assert first["models"]["teacher"]["cached"] is False
    second = run_tiny("omitted-3", tiny_dir, seed=11)
    assert second["models"]["teacher"]["cached"] is True
    assert second["models"]["teacher"]["test_errors"] == first["models"]["teacher"]["test_errors"]


class CancelAtStudent(Monitor):
    """Sets the cancel event after the first epoch of the ``n``-th student."""

    def __init__(self, cancel: threading.Event, n: int):
        self.cancel, self.n, self.students = cancel, n, 0

    def on_model_start(self, name, index, count):
        self.students += name != "teacher"

    def on_epoch(self, record, progress):
        if self.students == self.n:
            self.cancel.set()


def test_a_cancelled_sweep_keeps_its_partial_history_and_points(tiny_dir):
    cancel = threading.Event()
    r = run_tiny(
        "temperature-sweep",
        tiny_dir,
        epochs=2,
        students=("mlp-30",),
        temperatures=(1.0, 2.0, 4.0),
        monitor=CancelAtStudent(cancel, 3),  # hard baseline, T=1 done; cancelled in T=2
        cancel=cancel,
    )
    assert r["status"] == "cancelled" and "mlp-30 T=2" in r["message"]
    assert len(r["history"]["mlp-30 T=1"]) == 2 and len(r["history"]["mlp-30 T=2"]) == 1
    assert "mlp-30 T=4" not in r["history"] and "mlp-30 T=2" not in r["models"]
    assert r["sweep"]["errors"]["mlp-30"] == [r["models"]["mlp-30 T=1"]["test_errors"]]


def test_default_teacher_is_hinton_mnists_so_the_cache_is_shared():
    h = HintonMnistConfig()
    base = TrainConfig(epochs=h.epochs, batch_size=h.batch_size, lr=h.lr, seed=h.seed)
    expected = replace(base, augment_shift=h.teacher_shift)  # as run_hinton_mnist builds it
    for name in NEW_PRESETS:
        cfg = PRESETS[name].config
        assert teacher_train_config(cfg) == expected
        assert (cfg.teacher, cfg.dataset) == (h.teacher, h.dataset)
