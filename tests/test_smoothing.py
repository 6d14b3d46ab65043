"""Label smoothing and the teacher (Müller, Kornblith & Hinton 2019): the plane through three
templates, the projection onto it against the model's own logits, the cluster spread and the
evenness over the wrong classes against loops, and the smooth-teacher preset end to end: its two
teachers differ in their targets only."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.dkd import non_target_log_probs
from kdcore.models import build_model
from kdcore.presets_smoothing import FROM, STUDENTS, TEACHERS, TEMPERATURES, sweep_points
from kdcore.runner import run_preset
from kdcore.smoothing import (
    cluster_spread,
    embeddings,
    head_of,
    non_target_entropy,
    template_basis,
    template_projection,
)
from tests.tiny_mnist import write_tiny_mnist

SETTINGS = settings(max_examples=30, deadline=None)


@given(seed=st.integers(0, 10_000), d=st.integers(3, 40))
@SETTINGS
def test_the_basis_is_orthonormal_and_spans_the_templates_differences(seed, d):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(10, d, generator=g, dtype=torch.float64)
    a, b, c = torch.randperm(10, generator=g)[:3].tolist()
    basis = template_basis(w, (a, b, c))  # (2, D)
    torch.testing.assert_close(basis @ basis.T, torch.eye(2, dtype=torch.float64))
    for other in (b, c):  # w_other − w_a lies in the plane: projecting it loses nothing
        diff = w[other] - w[a]
        torch.testing.assert_close(basis.T @ (basis @ diff), diff)


def test_three_distinct_classes_and_a_plane_are_required():
    w = torch.randn(10, 5, dtype=torch.float64)
    for bad in ((1, 2), (1, 1, 2), (0, 1, 10), (-1, 2, 3)):
        with pytest.raises(ValueError, match="three different classes"):
            template_basis(w, bad)
    w[2] = 2 * w[1] - w[0]  # three templates on one line
    with pytest.raises(ValueError, match="on one line"):
        template_basis(w, (0, 1, 2))


def test_where_an_image_lands_is_what_the_three_logits_say():
    """(w_b − w_a)·h is the plane's coordinates of h dotted with those of w_b: the projection
    gives back the model's own logit differences."""
    torch.manual_seed(0)
    model = build_model("mlp-30").eval()
    x = torch.randn(50, 1, 28, 28)
    classes = (4, 7, 9)
    points, templates = template_projection(model, x, classes)
    torch.testing.assert_close(templates[0], torch.zeros(2, dtype=torch.float64))
    z = model(x).double()
    w, bias = model.head.weight.double(), model.head.bias.double()
    a = classes[0]
    for k, other in enumerate(classes[1:], start=1):
        offset = (w[other] - w[a]) @ w[a] + bias[other] - bias[a]
        torch.testing.assert_close(points @ templates[k] + offset, z[:, other] - z[:, a])
    assert model.training is False
    model.train()
    template_projection(model, x, classes)
    assert model.training  # left in the mode it was in
    emb = embeddings(model, x)
    assert emb.shape == (50, 30) and model.training


def test_a_model_without_a_linear_head_is_refused_in_one_line():
    with pytest.raises(ValueError, match="no linear head"):
        head_of(torch.nn.Sequential(torch.nn.Linear(3, 2)))


def _spread_loop(points: np.ndarray, labels: np.ndarray) -> float:
    classes = sorted(set(labels.tolist()))
    centres = [points[labels == c].mean(0) for c in classes]
    rms = [np.sqrt(((points[labels == c] - m) ** 2).sum(1).mean())
           for c, m in zip(classes, centres, strict=True)]  # fmt: skip
    gaps = [np.linalg.norm(centres[i] - centres[j])
            for i in range(len(classes)) for j in range(i + 1, len(classes))]  # fmt: skip
    return float(np.mean(rms) / np.mean(gaps))


@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0), shift=st.floats(-50, 50))
@SETTINGS
def test_cluster_spread_against_a_loop_and_blind_to_scale_and_shift(seed, scale, shift):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 60)
    labels[:3] = [0, 1, 2]
    points = rng.normal(size=(60, 4)) + 3 * labels[:, None]
    want = _spread_loop(points, labels)
    got = cluster_spread(torch.tensor(points), torch.tensor(labels))
    assert got == pytest.approx(want, rel=1e-9)
    moved = cluster_spread(torch.tensor(points * scale + shift), torch.tensor(labels))
    assert moved == pytest.approx(want, rel=1e-6)


def test_cluster_spread_is_zero_for_points_and_needs_two_classes():
    pts = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [1.0, 2.0]])
    assert cluster_spread(pts, torch.tensor([0, 0, 1, 1])) == 0.0
    with pytest.raises(ValueError, match="two classes"):
        cluster_spread(pts, torch.zeros(4, dtype=torch.long))


@given(seed=st.integers(0, 10_000), T=st.floats(0.3, 20.0))
@SETTINGS
def test_non_target_entropy_against_a_loop(seed, T):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 10, generator=g, dtype=torch.float64) * 5
    y = torch.randint(0, 10, (8,), generator=g)
    got = non_target_entropy(z, y, T)
    for i in range(8):
        rest = [k for k in range(10) if k != y[i]]
        log_p = F.log_softmax(z[i, rest] / T, 0)
        torch.testing.assert_close(non_target_log_probs(z, y, T)[i], log_p)
        want = float(-(log_p.exp() * log_p).sum() / math.log(9))
        assert float(got[i]) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert bool(((got >= -1e-12) & (got <= 1 + 1e-12)).all())


def test_non_target_entropy_ends():
    y = torch.tensor([0, 0])
    z = torch.tensor([[9.0, 1.0, 1.0, 1.0], [9.0, 60.0, -60.0, -60.0]])
    got = non_target_entropy(z, y, 1.0)
    assert float(got[0]) == pytest.approx(1.0)  # every wrong class alike: nothing said
    assert float(got[1]) == pytest.approx(0.0, abs=1e-6)  # all on one wrong class
    with pytest.raises(ValueError, match="three classes"):
        non_target_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), 1.0)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=600, n_test=200)


TINY = {"epochs": 1, "per_class": 30, "teacher": "mlp-30", "student": "mlp-10"}


def test_the_preset_runs_and_measures_every_model(tiny_dir):
    result = json.loads(json.dumps(run_preset("smooth-teacher", data_dir=tiny_dir, **TINY)))
    assert result["status"] == "completed", result["message"]
    models = result["models"]
    assert list(models) == [*TEACHERS, *STUDENTS]
    assert [models[n]["role"] for n in models] == ["teacher"] * 2 + ["baseline"] + ["student"] * 8
    assert models["teacher_ls"]["method"] == "label-smoothing"
    assert models["teacher_ls"]["method_params"] == {"eps": 0.1}
    for name in STUDENTS[1:]:
        params = models[name]["method_params"]
        assert models[name]["method"] == "kd" and params["alpha"] == 1.0
        assert name.endswith(f" T={params['T']:g}")
    # the sweep: both students' errors at every T, read back from the models it names
    sweep = result["sweep"]
    assert sweep["values"] == list(TEMPERATURES) == [1.0, 2.0, 4.0, 8.0]
    assert set(sweep["baseline_errors"].values()) == {models["student_hard"]["test_errors"]}
    points = sweep_points(models)
    for stem, title in FROM:
        want = [models[f"{stem} T={t:g}"]["test_errors"] for t in TEMPERATURES]
        assert sweep["errors"][title] == want == [e for _, e in points[title]]
        assert [t for t, _ in points[title]] == list(TEMPERATURES)
    for m in models.values():
        assert 0 <= m["wrong_class_evenness"] <= 1 and 0 <= m["ece"] <= 1
        assert m["cluster_spread"] > 0


def test_the_two_teachers_differ_in_their_targets_only(tiny_dir):
    """At α = 0 label smoothing is the hard labels' cross-entropy: the same initial weights and
    data order then give the same teacher, bit for bit, and the same students from it."""
    result = run_preset("smooth-teacher", data_dir=tiny_dir, eps=0.0, **TINY)
    models = result["models"]
    assert models["teacher_ls"]["test_errors"] == models["teacher_hard"]["test_errors"]
    for T in TEMPERATURES:
        a, b = models[f"student_from_hard T={T:g}"], models[f"student_from_ls T={T:g}"]
        assert a["test_errors"] == b["test_errors"] and a["ece"] == b["ece"]


def test_a_run_made_before_the_sweep_gives_its_own_points():
    """A run stored before the sweep named its students by suffix (``_low_T`` at T = 1): the
    points come from each model's own parameters, so it still draws."""
    kd = {"method": "kd"}
    models = {"student_hard": {"test_errors": 300, "method_params": {}},
              "student_from_hard": {**kd, "test_errors": 250, "method_params": {"T": 4.0}},
              "student_from_ls": {**kd, "test_errors": 320, "method_params": {"T": 4.0}},
              "student_from_hard_low_T": {**kd, "test_errors": 280, "method_params": {"T": 1.0}},
              "student_from_ls_low_T": {**kd, "test_errors": 270, "method_params": {"T": 1.0}},
              "teacher_ls": {"test_errors": 140, "method_params": {"eps": 0.1}}}  # fmt: skip
    want = {"from the hard teacher": [(1.0, 280), (4.0, 250)],
            "from the smoothed teacher": [(1.0, 270), (4.0, 320)]}  # fmt: skip
    assert sweep_points(models) == want


@pytest.mark.parametrize("temperatures", [(), (0.0, 4.0), (4.0, -1.0)])
def test_a_sweep_it_cannot_run_is_refused_before_anything_trains(tiny_dir, temperatures):
    with pytest.raises(ValueError, match="temperatures"):
        run_preset("smooth-teacher", data_dir=tiny_dir, temperatures=temperatures, **TINY)
