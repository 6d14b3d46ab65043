"""Relation-based methods (RKD, similarity, NST, CRD) and DKD as registered methods: each trains
end to end, its distiller matches its pure loss, CRD's memory bank moves, RKD ignores rotation,
scale and translation, and the four presets run on a slice of MNIST. Small models throughout."""

from __future__ import annotations

import json
import math

import pytest
import torch

from kdcore import geometry
from kdcore.distill import build_distiller, distill, probe
from kdcore.lab import configure
from kdcore.losses.crd import crd_infonce_loss, crd_infonce_loss_shared
from kdcore.losses.dkd import dkd_parts
from kdcore.losses.rkd import rkd_angle_loss, rkd_distance_loss
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.runner import RUNNERS
from kdcore.train import Batch, TrainConfig
from tests.tiny_mnist import few_per_class, write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

RELATION = ("rkd", "similarity", "pkt", "cc", "nst", "crd", "dkd")
RELATION_PRESETS = ("rkd-mnist", "similarity-mnist", "pkt-mnist", "crd-mnist", "dkd-mnist")


@pytest.fixture(scope="module")
def small():
    """20 training images per class, the first 500 test images."""
    return few_per_class()


def _models(method: str):
    arch = ("cnn-8", "cnn-8") if method == "nst" else ("mlp-30", "mlp-100")  # NST: spatial maps
    torch.manual_seed(0)
    return build_model(arch[0]), build_model(arch[1])


# ----------------------------------------------------------------------------- registration


def test_registered_with_family_citation_and_checked_defaults():
    for name in RELATION:
        m = METHODS[name]
        assert m.family == ("response" if name == "dkd" else "relation")
        assert "arXiv:" in m.citation and m.summary
        m.make_params()  # the defaults pass their own ranges
    assert METHODS["rkd"].make_params().distance_weight == 25.0
    assert METHODS["rkd"].make_params().angle_weight == 50.0
    p = METHODS["dkd"].make_params()
    assert (p.alpha, p.beta, p.T) == (1.0, 8.0, 4.0)
    p = METHODS["crd"].make_params()
    assert (p.k, p.nce_t, p.weight) == (4096, 0.07, 0.8)
    p = METHODS["pkt"].make_params()
    assert (p.weight, p.self_pairs, p.alpha) == (30000.0, False, 0.0)
    with pytest.raises(ValueError, match=r"k\)? must be"):
        METHODS["crd"].make_params({"k": 0})


@pytest.mark.parametrize("method", RELATION)
def test_trains_one_epoch_with_finite_parts(small, method):
    student, teacher = _models(method)
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    result = distill(student, teacher, small, cfg, method)
    assert result.ok, result.message
    losses = result.history[-1].losses
    expected = {"rkd": {"rkd_d", "rkd_a"}, "similarity": {"sp"}, "pkt": {"pkt"}, "cc": {"cc"},
                "nst": {"nst"}, "crd": {"crd"}, "dkd": {"tckd", "nckd"}}[method]  # fmt: skip
    assert expected | {"ce"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values()), losses


def test_nst_refuses_flat_features(small):
    student, teacher = _models("rkd")
    with pytest.raises(ValueError, match="spatial"):
        build_distiller("nst", {"student_layer": "embedding", "teacher_layer": "embedding"},
                        student, teacher, small)  # fmt: skip


def test_custom_run_reaches_the_methods_parameters_by_name():
    cfg = configure(RUNNERS["custom"].config, {"method": "crd", "k": "256", "nce_t": "0.1"})
    assert cfg.params["k"] == 256 and cfg.params["nce_t"] == 0.1 and cfg.params["weight"] == 0.8
    cfg = configure(cfg, {"method": "rkd", "angle_weight": "10"})
    assert cfg.params["angle_weight"] == 10.0 and "nce_t" not in cfg.params


# ----------------------------------------------------------------------------- CRD, DKD, RKD


def test_crd_memory_bank_changes_during_training(small):
    student, teacher = _models("crd")
    d = build_distiller("crd", {"k": 64}, student, teacher, small)
    assert d.memory.n_data == len(small.y_train)
    before = d.memory.memory_student.clone(), d.memory.memory_teacher.clone()
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0)
    assert distill(student, teacher, small, cfg, "crd", d.params, distiller=d).ok
    for old, new in zip(before, (d.memory.memory_student, d.memory.memory_teacher), strict=True):
        changed = (old - new).abs().sum(1) > 0  # (N,): every example was in some batch
        assert changed.all()
        assert torch.allclose(new.norm(dim=1), torch.ones(len(new)), atol=1e-5)  # re-normalised


def test_crd_shared_negatives_equal_the_per_example_form():
    torch.manual_seed(0)
    n, b, k, d = 50, 6, 9, 8
    ms, mt = (torch.nn.functional.normalize(torch.randn(n, d), dim=1) for _ in range(2))
    es, et = (torch.nn.functional.normalize(torch.randn(b, d), dim=1) for _ in range(2))
    idx = torch.arange(b)
    neg = torch.arange(b, b + k)  # no collision with the positives
    shared = crd_infonce_loss_shared(es, et, ms, mt, idx, neg, 0.1)
    full = crd_infonce_loss(es, et, ms, mt, idx, neg.expand(b, k), 0.1)
    assert torch.allclose(shared, full, atol=1e-5)
    # A negative that is an anchor's own row is masked, i.e. as if it were not drawn.
    with_own = crd_infonce_loss_shared(es, et, ms, mt, idx, torch.cat([neg, idx[:1]]), 0.1)
    masked = crd_infonce_loss(es[:1], et[:1], ms, mt, idx[:1], neg.expand(1, k), 0.1)
    rest = crd_infonce_loss(es[1:], et[1:], ms, mt, idx[1:], torch.cat([neg, idx[:1]]).expand(
        b - 1, k + 1), 0.1)  # fmt: skip
    assert torch.allclose(with_own, (masked + (b - 1) * rest) / b, atol=1e-5)


def test_dkd_distiller_parts_equal_dkd_parts(small):
    student, teacher = _models("dkd")
    p = METHODS["dkd"].make_params({"alpha": 2.0, "beta": 3.0, "T": 2.5})
    d = METHODS["dkd"].build(p, probe(student, teacher, small))
    torch.manual_seed(1)
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    out = student.forward_features(small.x_train[:16])
    out.logits = s
    parts = d(out, {"logits": t}, Batch(small.x_train[:16], y, torch.arange(16)))
    tckd, nckd = dkd_parts(s, t, y, 2.5)
    assert torch.allclose(parts["tckd"], 2.0 * tckd) and torch.allclose(parts["nckd"], 3.0 * nckd)
    assert torch.allclose(parts["ce"], torch.nn.functional.cross_entropy(s, y))


def test_rkd_distiller_averages_its_groups(small):
    student, teacher = _models("rkd")
    pr = probe(student, teacher, small)
    torch.manual_seed(2)
    s, t = torch.randn(8, 30), torch.randn(8, 100)
    out = student.forward_features(small.x_train[:8])
    out.features["embedding"] = s
    batch = Batch(small.x_train[:8], small.y_train[:8], torch.arange(8))
    parts = {}
    for group in (0, 4):
        d = METHODS["rkd"].build(METHODS["rkd"].make_params({"group": group}), pr)
        parts[group] = d(out, {"logits": out.logits, "feat": t}, batch)
    assert torch.allclose(parts[0]["rkd_a"], 50.0 * rkd_angle_loss(s, t), atol=1e-5)
    halves = (rkd_distance_loss(s[:4], t[:4]) + rkd_distance_loss(s[4:], t[4:])) / 2
    assert torch.allclose(parts[4]["rkd_d"], 25.0 * halves, atol=1e-6)


@pytest.mark.parametrize(
    "transform",
    [{"angle": 37.0}, {"scale": 4.0}, {"shift": 2.5}, {"random_rotation": True, "seed": 3},
     {"angle": -120.0, "scale": 0.3, "shift": -1.0}],
)  # fmt: skip
def test_rkd_is_invariant_where_l2_is_not(transform):
    torch.manual_seed(0)
    s, t = torch.randn(20, 6), torch.randn(20, 30)
    base = geometry.rkd_vs_l2(s, t, {})
    moved = geometry.rkd_vs_l2(s, t, transform)
    assert base["l2"] < 1e-10 and moved["l2"] > 1e-3
    assert moved["rkd_distance"] == pytest.approx(base["rkd_distance"], rel=1e-4, abs=1e-6)
    assert moved["rkd_angle"] == pytest.approx(base["rkd_angle"], rel=1e-4, abs=1e-6)
    assert geometry.geometry_gap(geometry.apply_transform(s, **transform), s) < 1e-5


# ----------------------------------------------------------------------------- geometry


def test_geometry_gap_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    a = torch.randn(16, 10)
    assert geometry.geometry_gap(a, a) == 0.0
    assert geometry.geometry_gap(a, a * 7 + 3) < 1e-5  # scale and translation are free
    assert geometry.geometry_gap(a, torch.randn(16, 10)) > 0.05


def test_geometry_matrices_and_angle_histogram():
    torch.manual_seed(0)
    a = torch.randn(9, 4)
    d = geometry.distance_matrix(a)
    off = ~torch.eye(9, dtype=torch.bool)
    assert d[off].mean() == pytest.approx(1.0, abs=1e-5) and torch.all(d.diagonal() == 0)
    c = geometry.cosine_matrix(a)
    expected = torch.nn.functional.cosine_similarity(a[2], a[5], dim=0)
    assert torch.allclose(c[2, 5], expected, atol=1e-6)
    counts, edges = geometry.angle_histogram(a, bins=10)
    assert counts.sum() == pytest.approx(1.0) and len(edges) == 11
    # one angle by hand: vertex 0, between points 1 and 2
    e1, e2 = a[1] - a[0], a[2] - a[0]
    cos = float(e1 @ e2 / (e1.norm() * e2.norm()))
    assert counts[min(int((cos + 1) / 0.2), 9)] > 0


def test_pca_pair_lays_a_rotated_copy_over_the_original():
    torch.manual_seed(0)
    t = torch.randn(30, 8) * torch.tensor([5.0, 2.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    s = geometry.apply_transform(t, angle=70.0, scale=3.0, shift=1.0)
    views = geometry.pca_pair(s, t)
    assert views["student"].shape == (30, 2)
    assert torch.allclose(views["student"], views["teacher"], atol=1e-4)


# ----------------------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=300))


TINY = {"teacher": "mlp-30", "teacher_epochs": 1, "epochs": 1, "per_class": 20}


def test_preset_configs_validate():
    for name in RELATION_PRESETS:
        preset = PRESETS[name]
        cfg = preset.with_changes({})
        assert cfg.student == "mlp-30" and preset.paper["cifar100_top1"]["student_hard"] == 72.5
        assert preset.with_changes({"epochs": "1", "per_class": "20"}).epochs == 1
    with pytest.raises(ValueError):
        PRESETS["rkd-mnist"].with_changes({"geometry_batch": 1})


# DIST's figures are ImageNet's; VID, AB and FitNets: feature methods on the relation presets' pair
@pytest.mark.parametrize(
    "name",
    [
        *RELATION_PRESETS,
        "dist-mnist",
        "vid-mnist",
        "ab-mnist",
        "fitnets-mlp",
        "cc-mnist",
        "ft-mnist",
        "fsp-mnist",
        "review-mnist",
    ],
)
def test_preset_runs_and_reports_every_student(tiny_dir, name):
    # FSP needs the teacher's channels: a ResNet of the student's widths (its own, for speed)
    # (ReviewKD's levels are a ResNet's stages)
    tiny = {**TINY, "teacher": "resnet8"} if name in ("fsp-mnist", "review-mnist") else TINY
    result = json.loads(json.dumps(run_preset(name, data_dir=tiny_dir, **tiny)))
    assert result["status"] == "completed", result["message"]
    method = name.split("-")[0]
    # VID from a second σ² start; AB then KD after the same initialisation, and beside CE
    more = {
        "vid-mnist": ["student_vid_near"],
        "ab-mnist": ["student_ab_kd", "student_ab_throughout"],
        "fitnets-mlp": ["student_fitnets_light"],
        "cc-mnist": ["student_cc_kd", "student_cc_code"],
        "ft-mnist": ["student_ft_random", "student_ft_long", "student_ft_light"],
        "fsp-mnist": ["student_fsp_kd"],
    }.get(name, [])
    students = ["student_hard", "student_kd", f"student_{method}", *more]
    assert list(result["models"]) == ["teacher", *students]
    assert result["models"][f"student_{method}"]["method"] == method
    if name == "vid-mnist":  # each epoch, every teacher unit's variance and squared error
        for student, start in (("student_vid", 5.0), ("student_vid_near", 0.05)):
            extra = result["history"][student][0]["extra"]
            assert len(extra["variance"]) == len(extra["squared_error"]) == 30  # mlp-30's
            assert extra["start_variance"] == start and max(extra["variance"]) < start * 1.5
    if name == "ab-mnist":  # the initialisation first, then the run's epochs on labels
        for student, kd in (("student_ab", False), ("student_ab_kd", True)):
            history = result["history"][student]
            assert [e["stage"] for e in history] == ["init", "init", "train"]
            assert len(history[0]["extra"]["unit_agreement"]) == 30  # the tiny teacher's width
            assert ("kd" in history[-1]["losses"]) == kd and "ab" not in history[-1]["losses"]
        kept = result["history"]["student_ab_throughout"]  # one stage: AB beside CE
        assert [e["stage"] for e in kept] == [""] and {"ce", "ab"} <= set(kept[0]["losses"])
    if name == "ft-mnist":  # the paraphraser's epochs first, except from an untrained one
        for student, stages in (("student_ft", ["paraphraser", "paraphraser", "train"]),
                                ("student_ft_random", [""]),
                                ("student_ft_long", ["paraphraser"] * 16 + ["train"])):  # fmt: skip
            assert [e["stage"] for e in result["history"][student]] == stages
    if name == "fsp-mnist":  # an FSP epoch first; every student judged by the FSP loss
        flow, mats = result["flow"], result["flow_matrices"]
        assert list(flow) == students and mats["layers"] == ["stem", "stage1", "stage2", "stage3"]
        for student in ("student_fsp", "student_fsp_kd"):
            assert [e["stage"] for e in result["history"][student]] == ["init", "train"]
            assert len(flow[student]) == 2 and len(mats["students"][student]) == 2
        assert len(flow["student_hard"]) == 1 and all(len(f[0]) == 3 for f in flow.values())
        shapes = [(len(m), len(m[0])) for m in mats["teacher"]]
        assert shapes == [(16, 16), (16, 32), (32, 64)]
        first = result["history"]["student_fsp"][0]
        assert first["extra"]["flow"] == pytest.approx(sum(flow["student_fsp"][0]), abs=1e-3)
        assert "kd" in result["history"]["student_fsp_kd"][-1]["losses"]
    if name == "review-mnist":  # HCL at each of the four levels, the fusion of the three above
        extra = result["history"]["student_review"][0]["extra"]
        assert len(extra["level_loss"]) == 4 and len(extra["fusion"]) == 3
        assert extra["review_loss"] == pytest.approx(sum(extra["level_loss"]), abs=1e-4)
        assert all(0 < w < 1 for row in extra["fusion"] for w in row)  # sigmoids, averaged
        assert {"ce", "review", "total"} == set(result["history"]["student_review"][0]["losses"])
    if name == "cc-mnist":  # every student judged by the paper's L_CC each epoch
        gaps, mats = result["congruence"], result["correlation_matrices"]
        assert list(gaps) == students and all(len(g) == 1 and g[0] > 0 for g in gaps.values())
        assert len(mats["teacher"]) == len(mats["labels"]) == len(mats["students"]["student_cc"])
        assert mats["labels"] == sorted(mats["labels"])  # digit order, as many of each
        assert [mats["labels"].count(d) for d in range(10)] == [4] * 10
        assert (
            result["history"]["student_cc_code"][0]["extra"]["congruence"]
            == gaps["student_cc_code"][0]
        )
        assert result["models"]["student_cc_code"]["method_params"]["form"] == "benchmark code"
    if name == "rkd-mnist":
        gaps, mats = result["geometry"], result["geometry_matrices"]
        assert set(gaps) == {"student_hard", "student_kd", "student_rkd"}
        assert all(len(g) == 1 and g[0] > 0 for g in gaps.values())
        assert len(mats["teacher"]) == 32 and len(mats["students"]["student_rkd"][0][0]) == 32
        extra = result["history"]["student_rkd"][0]["extra"]
        assert extra["geometry_gap"] == gaps["student_rkd"][0]
