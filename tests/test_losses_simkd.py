"""SimKD (Chen et al. 2022): the loss and the spatial alignment against the official code's written
out, properties, finite differences, the projector's bottleneck, and the deployed network (the
student, the projector and the teacher's frozen classifier) being what trains, what is evaluated
and what is counted, while the student's own classifier is never trained."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.simkd import PROJECTED, Projector, align, pooled, reused_logits, simkd_loss
from kdcore.models import build_model
from kdcore.train import TrainConfig, evaluate
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def official(feat_s, feat_t):
    """The official ``SimKD.forward``'s spatial alignment and ``nn.MSELoss`` written out, after
    the projector (passed in already projected)."""
    s_h, t_h = feat_s.shape[2], feat_t.shape[2]
    if s_h > t_h:
        source, target = F.adaptive_avg_pool2d(feat_s, (t_h, t_h)), feat_t
    else:
        source, target = feat_s, F.adaptive_avg_pool2d(feat_t, (s_h, s_h))
    return torch.nn.MSELoss()(source, target)


def test_the_loss_is_the_official_codes_and_a_mean_by_element():
    rng = np.random.default_rng(0)
    for s_hw, t_hw in ((4, 2), (2, 4), (3, 3)):
        s, t = t64(rng.normal(size=(3, 5, s_hw, s_hw))), t64(rng.normal(size=(3, 5, t_hw, t_hw)))
        got = simkd_loss(*align(s, t)).item()
        assert got == pytest.approx(official(s, t).item(), rel=1e-12)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))  # vectors: no alignment
    assert simkd_loss(t64(a), t64(b)).item() == pytest.approx(((a - b) ** 2).mean(), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_zero_on_the_teachers_feature_and_quadratic_in_scale(seed, k):
    rng = np.random.default_rng(seed)
    a, b = t64(rng.normal(size=(2, 3, 2, 2))), t64(rng.normal(size=(2, 3, 2, 2)))
    assert simkd_loss(a, a).item() == 0.0
    assert simkd_loss(a, b).item() > 0.0
    assert simkd_loss(k * a, k * b).item() == pytest.approx(k * k * simkd_loss(a, b).item(),
                                                             rel=1e-9)  # fmt: skip


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    t = t64(rng.normal(size=(2, 3, 2, 2)))
    s = t64(rng.normal(size=(2, 3, 2, 2)), True)
    assert torch.autograd.gradcheck(lambda a: simkd_loss(a, t), (s,))
    # the teacher's feature is a target: no gradient reaches it
    t.requires_grad_(True)
    simkd_loss(s, t).backward()
    assert t.grad is None and s.grad is not None


def test_the_teachers_classifier_reads_its_own_feature_back_into_its_logits():
    torch.manual_seed(0)
    teacher = build_model("resnet8", 10, (1, 28, 28)).eval()
    x = few_per_class(per=1).x_train
    with torch.no_grad():
        out = teacher.forward_features(x)
        # a student whose projected feature were the teacher's would answer exactly as it does
        read = reused_logits(teacher.classifier(), out.features["stage3"])
    assert torch.allclose(read, out.logits, atol=1e-5)
    assert torch.equal(pooled(out.features["embedding"]), out.features["embedding"])


def test_the_projector_is_the_official_bottleneck():
    p = Projector(16, 64, 4, spatial=True)
    convs = [m for m in p.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(16, 16, 1, 1), (16, 16, 3, 3),
                                                      (64, 16, 1, 1)]  # fmt: skip
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in p.modules()) == 3
    assert p(torch.randn(2, 16, 5, 5)).min().item() >= 0.0  # ends in a ReLU, as the teacher's map
    flat = Projector(30, 300, 2, spatial=False)
    linears = [m for m in flat.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(150, 30), (150, 150), (300, 150)]


def test_the_deployed_network_trains_and_answers_and_the_students_own_head_never_learns():
    small = few_per_class()
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("simkd", {}, student, teacher, small)
    net = d.deploy(student)
    assert d.deploy(student) is net and net.classifier() is d.head
    own_head = copy.deepcopy(student.head.state_dict())
    head, proj = copy.deepcopy(d.head.state_dict()), copy.deepcopy(d.projector.state_dict())
    result = distill(student, teacher, small, TrainConfig(epochs=2, batch_size=50, seed=0),
                     "simkd", distiller=d)  # fmt: skip
    assert result.status == "completed"
    assert set(result.history[-1].losses) == {"simkd", "total"}  # no CE, no KD
    assert 0.0 <= result.history[-1].extra["train_agreement"] <= 1.0
    for k, v in d.head.state_dict().items():  # the teacher's classifier stays frozen
        assert torch.equal(v, head[k]) and torch.equal(v, teacher.head.state_dict()[k])
    assert any(not torch.equal(v, proj[k]) for k, v in d.projector.state_dict().items())
    for k, v in student.head.state_dict().items():  # no loss reaches the student's own head
        assert torch.equal(v, own_head[k])
    # what is evaluated is the teacher's classifier on the projected feature
    net.eval()
    with torch.no_grad():
        out = net.forward_features(small.x_test)
        by_hand = teacher.head(d.projector(student.forward_features(small.x_test).features[
            "embedding"]))  # fmt: skip
    assert torch.allclose(out.logits, by_hand, atol=1e-6) and PROJECTED in out.features
    assert evaluate(net, small)["test_errors"] == int((by_hand.argmax(1) != small.y_test).sum())
    assert result.history[-1].test_errors == evaluate(net, small)["test_errors"]
    # what the method owns (and saves beside the student) is the projector and the head only
    assert {k.split(".")[0] for k in d.state_dict()} == {"projector", "head"}


def test_a_map_is_projected_at_the_smaller_size_and_read_after_pooling():
    small = few_per_class(per=2)
    torch.manual_seed(0)
    shape = (1, 28, 28)
    student, teacher = build_model("resnet8", 10, shape), build_model("resnet14", 10, shape)
    layers = {"student_layer": "stage3", "teacher_layer": "stage3", "factor": 8}
    d = build_distiller("simkd", layers, student, teacher, small)
    assert d.size == (7, 7) and d.projector.net[0].weight.shape == (8, 64, 1, 1)
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=10, seed=0),
                     "simkd", layers)  # fmt: skip
    assert result.status == "completed"


def test_pairs_it_cannot_distil_are_refused_in_one_line():
    small = few_per_class(per=1)
    s = build_model("resnet8", 10, (1, 28, 28))
    with pytest.raises(ValueError, match="does not read stage2"):
        build_distiller("simkd", {"student_layer": "stage2", "teacher_layer": "stage2"}, s,
                        build_model("resnet8", 10, (1, 28, 28)), small)  # fmt: skip
    with pytest.raises(ValueError, match="does not read conv2"):  # pooled into fc, not the head
        build_distiller("simkd", {"student_layer": "conv2", "teacher_layer": "conv2"},
                        build_model("cnn-8"), build_model("cnn"), small)  # fmt: skip
    with pytest.raises(ValueError, match="a map onto a map"):
        build_distiller("simkd", {"student_layer": "stage3"}, s,
                        build_model("resnet8", 10, (1, 28, 28)), small)  # fmt: skip
    with pytest.raises(ValueError, match="reuses the teacher's classifier"):
        build_distiller("simkd", {}, s, build_model("vit-tiny", 10, (1, 28, 28)), small)


def test_the_runner_counts_and_returns_the_deployed_student(tmp_path):
    from kdcore.runner import RunContext, train_student

    small = few_per_class(per=5, n_test=100)
    teacher = build_model("mlp-100")
    ctx = RunContext(torch.device("cpu"))
    net = train_student(ctx, small, "mlp-30", TrainConfig(epochs=1, batch_size=25, seed=0),
                        "s", "simkd", teacher, {"factor": 4})  # fmt: skip
    deployed = sum(p.numel() for p in net.parameters())
    assert (
        ctx.models["s"]["params"]
        == deployed
        > sum(p.numel() for p in build_model("mlp-30").parameters())
    )
    assert ctx.models["s"]["test_errors"] == evaluate(net, small)["test_errors"]
    assert ctx.trained["s"].arch == "mlp-30"  # the saved weights are the student's own
    assert "projector.net.0.weight" in ctx.trained["s"].distiller.state_dict()


# ----------------------------------------------------------------------------- the preset


def test_the_preset_records_agreement_and_the_feature_gap_and_a_student_of_the_deployed_size(
    tmp_path,
):
    from kdcore.presets import PRESETS, run_preset
    from tests.tiny_mnist import write_tiny_mnist

    preset = PRESETS["simkd-mnist"]
    assert preset.paper["cifar100_top1"]["student_simkd"] == 78.08
    data_dir = write_tiny_mnist(tmp_path / "mnist", n_train=200, n_test=100)
    result = run_preset("simkd-mnist", data_dir=data_dir, teacher_epochs=1, epochs=2,
                        per_class=10)  # fmt: skip
    result = json.loads(json.dumps(result))
    assert result["status"] == "completed", result["message"]
    simkd = ["student_simkd", "student_simkd_f4", "student_simkd_f8"]
    students = ["student_hard", "student_kd", *simkd, "student_hard_wide", "student_kd_wide"]
    assert list(result["models"]) == ["teacher", *students]
    models = result["models"]
    assert [models[s]["method_params"]["factor"] for s in simkd] == [2, 4, 8]
    assert models["student_kd_wide"]["arch"] == "mlp-110"
    assert models["student_kd_wide"]["method"] == "kd"
    # the deployed students are larger than the bare 30-30 net, f = 2 about the wide student
    sizes = [models[s]["params"] for s in ("student_hard", *simkd)]
    assert sizes[0] < sizes[3] < sizes[2] < sizes[1]
    assert abs(models["student_simkd"]["params"] / models["student_hard_wide"]["params"] - 1) < 0.02
    reuse = result["reuse"]
    assert list(reuse["agreement"]) == students and set(reuse["gap"]) == set(simkd)
    for s in students:
        assert len(reuse["agreement"][s]) == 2 and all(0 <= a <= 1 for a in reuse["agreement"][s])
        assert result["history"][s][-1]["extra"]["teacher_agreement"] == reuse["agreement"][s][-1]
    for s in simkd:
        assert result["history"][s][-1]["extra"]["feature_gap"] == reuse["gap"][s][-1] >= 0
        assert set(result["history"][s][-1]["losses"]) == {"simkd", "total"}


def test_a_lab_run_stores_the_student_and_what_it_answers_through_and_the_lab_offers_both(
    tmp_path, monkeypatch, store_path
):
    from safetensors.torch import load_file

    from kdcore.checkpoint import load_model
    from kdcore.jobs import RunSpec, execute
    from kdcore.store import Store
    from tests.apptest import run_page

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    store = Store(store_path)
    spec = RunSpec.custom(device="cpu", method="simkd", teacher="mlp-100", student="mlp-30",
                          per_class=10, teacher_epochs=1, epochs=1, baseline=False)  # fmt: skip
    run_id, result = execute(store, spec)
    assert result["status"] == "completed", result["message"]
    summary = result["models"]["student_simkd"]
    bare = sum(p.numel() for p in build_model("mlp-30").parameters())
    assert summary["params"] > bare  # the deployed network: with the projector and the head
    # the student's own weights load as the 30-30 net; its method's file holds the rest
    net, _ = load_model(store.weights_path(run_id, "student_simkd"))
    assert sum(p.numel() for p in net.parameters()) == bare
    path = store.weights_path(run_id, "student_simkd").parent / "methods"
    state = load_file(str(path / "student_simkd.safetensors"))
    assert {k.split(".")[0] for k in state} == {"projector", "head"}
    assert state["head.weight"].shape == (10, 100)  # the teacher's classifier
    at = run_page("lab.py", 180, run=str(run_id))
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("student_simkd") == 2  # its weights, and its method's modules


def test_a_larger_student_map_is_pooled_to_the_teachers_as_the_official_code_does():
    small = few_per_class(per=2)
    torch.manual_seed(0)
    shape = (1, 28, 28)
    student, teacher = build_model("resnet8", 10, shape), build_model("resnet8", 10, shape)
    layers = {"student_layer": "stage2", "teacher_layer": "stage3"}  # 14 × 14 against 7 × 7
    d = build_distiller("simkd", layers, student, teacher, small)
    assert d.size == (7, 7)
    x = small.x_train[:4]
    net = d.deploy(student).eval()
    d.eval()
    with torch.no_grad():
        out, t_out = net.forward_features(x), teacher.forward_features(x)
        targets = d.teacher_targets(t_out)
        by_hand = d.projector(F.adaptive_avg_pool2d(student.forward_features(x).features[
            "stage2"], (7, 7)))  # fmt: skip
    assert torch.allclose(out.features[PROJECTED], by_hand, atol=1e-6)
    assert torch.equal(targets["feat"], t_out.features["stage3"])  # already the smaller
    loss = d(out, targets, type("B", (), {"y": small.y_train[:4]})())["simkd"]
    assert loss.item() == pytest.approx(official(by_hand, t_out.features["stage3"]).item())
