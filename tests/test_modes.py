"""Training modes: mutual learning, born-again generations, ensembles of teachers, virtual
teachers (label smoothing, teacher-free KD), self-distillation through exits, teacher
assistants. Each loss against a direct computation, the contracts they rely on (detached
targets, the previous generation as teacher), and every preset end to end on a slice of MNIST."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from kdcore import presets_modes
from kdcore.distill import build_distiller, distill
from kdcore.losses.kd import kd_loss
from kdcore.losses.modes import (
    TeacherEnsemble,
    agreement,
    ensemble_kd_loss,
    ensemble_soft_targets,
    label_smoothing_loss,
    mutual_kl,
    mutual_learning_parts,
    mutual_step,
    self_distillation_parts,
    teacher_free_loss,
    uniform_teacher,
    virtual_teacher,
)
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.runner import RunContext, resolve
from kdcore.train import Batch, TrainConfig, fit
from tests.tiny_mnist import few_per_class, write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

MODE_PRESETS = ("mutual-learning", "online-features", "mutual-contrastive", "born-again",
                "class-wise", "deep-supervision", "ensemble", "teacher-free",
                "teacher-assistant")  # fmt: skip


@pytest.fixture(scope="module")
def small():
    """20 training images per class, the first 300 test images."""
    return few_per_class(n_test=300)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, straight from the definition, in float64."""
    p, q = p.double(), q.double()
    return (p * (p.log() - q.log())).sum(-1)


# ----------------------------------------------------------------------------- mutual learning


def test_mutual_kl_is_the_mean_kl_to_the_other_peers():
    torch.manual_seed(0)
    z = [torch.randn(5, 10) * 3 for _ in range(3)]
    T = 2.0
    p = [F.softmax(v / T, -1) for v in z]
    want = (_kl(p[1], p[0]).mean() + _kl(p[2], p[0]).mean()) / 2 * T * T
    assert mutual_kl(z[0], [z[1], z[2]], T).item() == pytest.approx(want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="two peers"):
        mutual_kl(z[0], [])


def test_each_peers_target_is_detached():
    """Peer a's KL term moves peer a only; its target (b's prediction) gets no gradient."""
    torch.manual_seed(0)
    a, b = build_model("mlp-30"), build_model("mlp-100")
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    parts = mutual_learning_parts({"a": a(x), "b": b(x)}, y)
    assert set(parts) == {"a/ce", "a/kl", "b/ce", "b/kl"}
    parts["a/kl"].backward()
    assert all(p.grad is None for p in b.parameters())
    assert a.head.weight.grad is not None and a.head.weight.grad.abs().sum() > 0
    # the same through the trainer's step function
    a.zero_grad(), b.zero_grad()
    out = mutual_step(1.0)({"a": a, "b": b}, Batch(x, y, torch.arange(8)))
    assert set(out.logits) == {"a", "b"}
    out.parts["b/kl"].backward()
    assert all(p.grad is None for p in a.parameters())


def test_a_mutual_learning_step_updates_both_peers_and_records_agreement(small):
    torch.manual_seed(0)
    peers = {"a": build_model("mlp-30"), "b": build_model("mlp-30")}
    before = {k: m.head.weight.detach().clone() for k, m in peers.items()}
    cfg = TrainConfig(epochs=2, batch_size=50, lr=0.05)
    result = fit(
        peers,
        small,
        cfg,
        mutual_step(1.0),
        epoch_extra=lambda: agreement({k: m(small.x_test) for k, m in peers.items()}),
    )
    assert result.ok and list(result.histories) == ["a", "b"]
    for name, m in peers.items():
        assert not torch.equal(before[name], m.head.weight)
        rec = result.histories[name][-1]
        assert set(rec.losses) == {"ce", "kl", "total"} and rec.losses["kl"] > 0
        assert 0.0 <= rec.extra["agreement"] <= 1.0 and rec.extra["sym_kl"] >= 0


def test_agreement_of_identical_and_of_different_predictions():
    z = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    same = agreement({"a": z, "b": z.clone()})
    assert same["agreement"] == 1.0 and same["sym_kl"] == pytest.approx(0.0, abs=1e-7)
    diff = agreement({"a": z, "b": z.flip(1)})
    assert diff["agreement"] == 0.0 and diff["sym_kl"] > 1.0


# ----------------------------------------------------------------------------- ensembles


def test_the_ensembles_soft_target_is_the_mean_of_the_teachers():
    torch.manual_seed(0)
    members = torch.randn(4, 3, 10) * 4  # (B, M, C)
    T = 3.0
    want = sum(F.softmax(members[:, m] / T, -1) for m in range(3)) / 3
    got = ensemble_soft_targets(members, T)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(-1), torch.ones(4))
    s = torch.randn(4, 10)
    q = F.softmax(s / T, -1)
    ref = (_kl(want, q).mean() * T * T).item()
    assert ensemble_kd_loss(s, members, T).item() == pytest.approx(ref, rel=1e-5)
    # one teacher: plain KD
    one = members[:, :1]
    torch.testing.assert_close(ensemble_kd_loss(s, one, T), kd_loss(s, one[:, 0], T))


def test_teacher_ensemble_is_one_frozen_teacher_for_the_multi_teacher_method(small):
    torch.manual_seed(0)
    teachers = [build_model("mlp-30"), build_model("mlp-100")]
    ens = TeacherEnsemble(teachers).eval()
    x = small.x_test[:16]
    out = ens.forward_features(x)
    assert out.features["member_logits"].shape == (16, 2, 10)
    torch.testing.assert_close(out.features["member_logits"][:, 1], teachers[1](x))
    mean_p = (F.softmax(teachers[0](x), -1) + F.softmax(teachers[1](x), -1)) / 2
    torch.testing.assert_close(out.logits.exp(), mean_p, rtol=1e-5, atol=1e-6)
    student = build_model("mlp-30")
    d = build_distiller("multi-teacher", None, student, ens, small)
    assert all(not p.requires_grad for p in ens.parameters())  # frozen by the contract
    targets = d.teacher_targets(out)
    torch.testing.assert_close(targets["members"], out.features["member_logits"])
    # a single ordinary teacher is an ensemble of one
    assert d.teacher_targets(teachers[0].forward_features(x))["members"].shape == (16, 1, 10)
    result = distill(student, ens, small, TrainConfig(epochs=1, batch_size=50), "multi-teacher")
    assert result.ok and set(result.history[-1].losses) == {"ce", "kd", "total"}


# ----------------------------------------------------------------------------- virtual teachers


def test_the_virtual_teacher_has_the_stated_form():
    y = torch.tensor([0, 3, 9])
    a, C = 0.9, 10
    p = virtual_teacher(y, C, a)
    assert p.shape == (3, C)
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    for row, label in zip(p, y, strict=True):
        assert row[label].item() == pytest.approx(a)
        others = torch.cat([row[:label], row[label + 1 :]])
        torch.testing.assert_close(others, torch.full((C - 1,), (1 - a) / (C - 1)))


def test_teacher_free_loss_against_a_direct_computation():
    torch.manual_seed(0)
    s, y = torch.randn(6, 10) * 2, torch.randint(0, 10, (6,))
    a, T, alpha = 0.95, 5.0, 0.3
    ce, kd = teacher_free_loss(s, y, a, T, alpha)
    p = virtual_teacher(y, 10, a) ** (1 / T)
    p = p / p.sum(-1, keepdim=True)  # the virtual teacher softened at T
    want_kd = alpha * T * T * _kl(p, F.softmax(s / T, -1)).mean()
    assert kd.item() == pytest.approx(want_kd.item(), rel=1e-5)
    assert ce.item() == pytest.approx((1 - alpha) * F.cross_entropy(s, y).item(), rel=1e-6)


def test_label_smoothing_is_kd_from_a_uniform_teacher():
    torch.manual_seed(0)
    s, y, eps = torch.randn(7, 10), torch.randint(0, 10, (7,)), 0.2
    ls = label_smoothing_loss(s, y, eps)
    torch.testing.assert_close(ls, F.cross_entropy(s, y, label_smoothing=eps))
    u = torch.full((7, 10), 0.1)
    decomposed = (1 - eps) * F.cross_entropy(s, y) + eps * (
        _kl(u, F.softmax(s, -1)).mean() + math.log(10)
    )
    assert ls.item() == pytest.approx(decomposed.item(), rel=1e-5)
    torch.testing.assert_close(uniform_teacher(y, 10, eps).sum(-1), torch.ones(7))


def test_label_smoothing_keeps_the_logits_precision():
    """In float64 the target is built in float64 too: equal to PyTorch's own to 1e-12 (a float32
    target was off by about 4e-8)."""
    torch.manual_seed(1)
    s, y = torch.randn(64, 10, dtype=torch.float64), torch.randint(0, 10, (64,))
    ls = label_smoothing_loss(s, y, 0.1)
    assert ls.dtype == torch.float64
    torch.testing.assert_close(ls, F.cross_entropy(s, y, label_smoothing=0.1), rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- own exits


def test_self_distillation_parts_reference_and_detached_deepest_exit(small):
    torch.manual_seed(0)
    student = build_model("mlp-30")
    d = build_distiller("self-distillation", {"exits": "hidden1", "beta": 0.5}, student, None,
                        small)  # fmt: skip
    out = student.forward_features(small.x_train[:20])
    y = small.y_train[:20]
    parts = d(out, {}, Batch(small.x_train[:20], y, torch.arange(20)))
    assert set(parts) == {"ce", "exits_ce", "exits_kd", "exits_hint"}
    (z, f), = d.exit_outputs(out).values()  # fmt: skip
    p = d.params
    ref = self_distillation_parts([z], [f], out.logits, out.features["embedding"], y, p.T,
                                  p.alpha, p.beta)  # fmt: skip
    want_kd = p.alpha * kd_loss(z, out.logits.detach(), p.T)
    torch.testing.assert_close(ref["exits_kd"], want_kd)
    torch.testing.assert_close(parts["exits_hint"],
                               p.beta * ((f - out.features["embedding"]) ** 2).mean())  # fmt: skip
    # The deepest exit is a target: the exits' terms do not reach the student's last layers.
    (parts["exits_kd"] + parts["exits_hint"]).backward()
    assert student.head.weight.grad is None and student.layers[1].weight.grad is None
    assert student.layers[0].weight.grad.abs().sum() > 0
    assert d.heads["hidden1"].classifier.weight.grad.abs().sum() > 0


def test_self_distillation_trains_its_exit_heads(small):
    torch.manual_seed(0)
    student = build_model("mlp-30")
    d = build_distiller("self-distillation", None, student, None, small)
    before = d.heads["hidden1"].classifier.weight.detach().clone()
    result = distill(student, None, small, TrainConfig(epochs=1, batch_size=50),
                     "self-distillation", distiller=d)  # fmt: skip
    assert result.ok
    assert not torch.equal(before, d.heads["hidden1"].classifier.weight)


def test_mode_methods_are_registered_and_reach_the_lab():
    for name in ("multi-teacher", "label-smoothing", "teacher-free", "self-distillation"):
        m = METHODS[name]
        assert "arXiv:" in m.citation and m.summary
        assert m.uses_teacher == (name == "multi-teacher")
        m.make_params()
    cfg = resolve("custom", method="teacher-free", a=0.9)
    assert cfg.params == {"a": 0.9, "T": 20.0, "alpha": 0.1}
    with pytest.raises(ValueError):
        METHODS["teacher-free"].make_params({"a": 1.5})


# ----------------------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=300))


TINY = {"epochs": 1, "per_class": 20}
TINY_OVERRIDES = {
    "mutual-learning": {"peers": ("mlp-30", "mlp-10")},
    "online-features": {"peers": ("mlp-10", "mlp-10")},
    "class-wise": {"student": "mlp-10", "pairs": 50},
    "mutual-contrastive": {"peers": ("mlp-10", "mlp-10"), "probe": 32, "embed_dim": 8},
    "born-again": {"student": "mlp-30", "generations": 3, "images": 4},
    "deep-supervision": {"student": "mlp-30"},
    "ensemble": {"teachers": ("mlp-30", "mlp-30"), "student": "mlp-10"},
    "teacher-free": {"teacher": "mlp-30", "student": "mlp-10"},
    "teacher-assistant": {"teachers": ("mlp-10", "mlp-30"), "assistant": "mlp-10",
                          "student": "mlp-8"},
    "uskd": {"teacher": "mlp-30", "teacher_epochs": 1},
}  # fmt: skip


def test_born_again_teacher_is_the_previous_generation_by_value(tiny_dir):
    cfg = PRESETS["born-again"].with_changes({**TINY, **TINY_OVERRIDES["born-again"]})
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def capture(k, teacher):
        seen[k] = {n: v.detach().clone() for n, v in teacher.state_dict().items()}

    ctx = RunContext(torch.device("cpu"), data_dir=tiny_dir)
    result = presets_modes.run_born_again(cfg, ctx, on_teacher=capture)
    assert sorted(seen) == [1, 2]
    for k, weights in seen.items():
        previous = ctx.trained[f"generation_{k - 1}"].model.state_dict()
        own = ctx.trained[f"generation_{k}"].model.state_dict()
        for n, v in weights.items():
            torch.testing.assert_close(v, previous[n], rtol=0, atol=0)
        assert any(not torch.equal(v, own[n]) for n, v in weights.items())
    gens = result["generations"]
    assert [g["teacher"] for g in gens] == [None, "generation_0", "generation_1"]
    assert result["models"]["generation_1"]["method"] == "kd"
    for g in gens:
        assert len(g["soft_targets"]) == 4
        assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in g["soft_targets"])


@pytest.mark.parametrize("name", MODE_PRESETS)
def test_mode_preset_runs_end_to_end(tiny_dir, name):
    result = run_preset(name, data_dir=tiny_dir, **TINY, **TINY_OVERRIDES[name])
    result = json.loads(json.dumps(result))  # JSON-ready
    assert result["status"] == "completed", result["message"]
    models = result["models"]
    assert all(0.0 <= m["test_accuracy"] <= 1.0 for m in models.values())
    if name == "mutual-learning":
        assert set(result["peers"]) == {"peer_1", "peer_2"}
        assert set(result["independent"]) == {"alone_1", "alone_2"}
        peer = result["peers"]["peer_2"]
        assert peer["arch"] == "mlp-10" and len(peer["history"]) == 1
        assert "agreement" in peer["history"][0]["extra"]
        assert models["peer_1"]["role"] == "peer" and models["alone_1"]["role"] == "baseline"
    elif name == "born-again":
        assert len(result["generations"]) == 3
        assert 0.0 <= result["ensemble"]["test_accuracy"] <= 1.0
        assert result["independent"]["alone_long"]["epochs"] == 3
        assert len(result["history"]["alone_long"]) == 3
    elif name == "deep-supervision":
        assert set(result["exits"]) == {"hidden1", "deepest"}
        assert result["exits"]["deepest"][-1] == pytest.approx(
            models["student_self"]["test_accuracy"], abs=1e-4
        )
    elif name == "ensemble":
        names = ["teacher_1", "teacher_2", "ensemble", "student_hard", "student_kd",
                 "student_ensemble"]  # fmt: skip
        assert list(result["comparison"]) == names
        assert result["comparison"]["ensemble"]["params"] == 2 * models["teacher_1"]["params"]
        m = result["agreement"]["matrix"]
        assert all(m[i][i] == 1.0 for i in range(len(m))) and m[0][1] == m[1][0]
        assert models["student_ensemble"]["method"] == "multi-teacher"
    elif name == "teacher-free":
        assert list(models) == ["teacher", "student_hard", "student_ls", "student_tf",
                                "student_kd"]  # fmt: skip
    elif name == "teacher-assistant":
        assert [c["teacher"] for c in result["capacity"]] == ["mlp-10", "mlp-30"]
        assert result["chain"]["assistant"] == "mlp-10"
        assert models["assistant"]["role"] == "assistant"


def test_mode_presets_check_their_configs():
    with pytest.raises(ValueError):
        PRESETS["mutual-learning"].with_changes({"peers": ("mlp-30", "no-such-net")})
    with pytest.raises(ValueError):
        PRESETS["born-again"].with_changes({"generations": 1})
    cfg = PRESETS["mutual-learning"].with_changes({"epochs": "1", "peers": '["mlp-30", "cnn"]'})
    assert cfg.peers == ("mlp-30", "cnn") and cfg.epochs == 1
    assert PRESETS["mutual-learning"].paper["cifar100_top1"] == {"alone": 68.99, "mutual": 71.19}
    with pytest.raises(ValueError, match="two peers"):
        run_preset("mutual-learning", peers=("mlp-30",))


def test_mode_presets_quote_the_papers_tables():
    """The verified numbers: Furlanello et al. 2018 Table 2, Mirzadeh et al. 2020 Tables 1 and
    3, Hinton et al. 2015 Table 1; each named by ``paper["table"]`` and JSON-safe (stored with
    every run's result)."""
    ban = PRESETS["born-again"].paper
    assert "Table 2" in PRESETS["born-again"].source and "Table 2" in ban["setting"]
    rows = {r["network"]: r for r in ban[ban["table"]]}
    assert list(rows) == ["DenseNet-112-33", "DenseNet-90-60", "DenseNet-80-80",
                          "DenseNet-80-120"]  # fmt: skip
    assert rows["DenseNet-112-33"]["teacher"] == 18.25 and rows["DenseNet-112-33"]["BAN"] == 16.95
    assert rows["DenseNet-80-80"]["BAN-3"] == 15.5 and rows["DenseNet-80-120"]["Ens*3"] == 14.9
    assert rows["DenseNet-80-120"]["BAN-3"] is None  # not trained in the paper
    assert all(r["BAN"] < r["teacher"] for r in rows.values())  # the born-again claim

    ta = PRESETS["teacher-assistant"].paper
    assert "Table 1" in ta["setting"] and "Tables 1 and 3" in PRESETS["teacher-assistant"].source
    t1 = {(r["model"], r["dataset"]): r for r in ta[ta["table"]]}
    assert t1["CNN", "CIFAR-100"] == {"model": "CNN", "dataset": "CIFAR-100", "NOKD": 41.09,
                                      "BLKD": 44.57, "TAKD": 44.92}  # fmt: skip
    assert t1["ResNet", "CIFAR-100"]["TAKD"] == 61.82 and t1["ResNet", "ImageNet"]["NOKD"] == 65.2
    assert all(r["TAKD"] > r["BLKD"] > r["NOKD"] for r in t1.values())
    assert ta["assistant_depth"]["CIFAR-100"]["TA=20"] == 61.82 == t1["ResNet", "CIFAR-100"]["TAKD"]

    hinton = PRESETS["ensemble"].paper
    assert "Table 1" in hinton["setting"] and "Table 1" in PRESETS["ensemble"].source
    t1 = {r["system"]: (r["test frame accuracy %"], r["WER %"]) for r in hinton["speech"]}
    assert t1 == {"baseline": (58.9, 10.9), "10x ensemble": (61.1, 10.7),
                  "distilled single model": (60.8, 10.7)}  # fmt: skip
    assert all(n in hinton["claims"][0] for n in ("58.9%", "61.1%", "60.8%", "10.9%"))

    for name in ("born-again", "teacher-assistant", "ensemble"):
        paper = PRESETS[name].paper
        assert json.loads(json.dumps(paper)) == paper
        assert "could not" not in PRESETS[name].differences


def test_paper_reference_reads_the_presets_table():
    from app.mode_figures import paper_reference

    caption, rows = paper_reference(PRESETS["mutual-learning"].paper)
    assert rows == [] and caption == (
        "Paper (ResNet-32 pair on CIFAR-100, top-1 accuracy %): alone 68.99%, mutual 71.19%."
    )
    paper = PRESETS["born-again"].paper
    caption, rows = paper_reference(paper)
    assert rows == paper["cifar100_test_error"] and caption.startswith("Paper: Furlanello")
    assert r"Ens\*2 and Ens\*3 their ensembles" in caption  # Markdown: not "2 and Ens" in italics
    assert paper_reference(PRESETS["deep-supervision"].paper) == ("", [])
