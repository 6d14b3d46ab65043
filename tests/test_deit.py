"""DeiT: the tiny ViT with a distillation token, the two losses, the method and the preset.

Reference tests compute each loss a second, direct way (explicit sums of probabilities) and check
the gradients by finite differences in float64; behaviour tests check that the label reaches the
class head only and the teacher the distillation head only, and that a short real run learns.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdcore.distill import distill
from kdcore.losses.deit import DeiT, DeiTParams, deit_hard_loss, deit_soft_loss, head_logits
from kdcore.methods import METHODS
from kdcore.models import KDModel, build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.presets_deit import pick_examples, token_report
from kdcore.train import Batch, TrainConfig
from kdcore.vit import TinyViT
from tests.tiny_mnist import write_tiny_mnist

# ----------------------------------------------------------------------------- the model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_vit_gives_logits_heads_and_tokens():
    torch.manual_seed(0)
    model = build_model("vit-tiny").eval()
    assert isinstance(model, KDModel) and isinstance(model, TinyViT)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        out = model.forward_features(x)
        logits = model(x)
    f = out.features
    assert list(f) == ["tokens", "cls_embedding", "dist_embedding", "cls_logits", "dist_logits",
                       "embedding"]  # fmt: skip
    assert f["tokens"].shape == (3, 2 + 16, 64)  # class, distillation, 4x4 patches of 7x7 px
    assert f["cls_logits"].shape == f["dist_logits"].shape == (3, 10)
    torch.testing.assert_close(logits, out.logits)
    # The logits are the mean of the two heads' (the reference code's eval-mode forward).
    torch.testing.assert_close(out.logits, (f["cls_logits"] + f["dist_logits"]) / 2)
    torch.testing.assert_close(model.head(f["tokens"][:, 0]), f["cls_logits"])
    torch.testing.assert_close(model.head_dist(f["tokens"][:, 1]), f["dist_logits"])
    assert not torch.allclose(f["cls_logits"], f["dist_logits"])  # the tokens start apart


def test_vit_without_distillation_token_and_other_shapes():
    model = build_model("vit-tiny-cls").eval()
    out = model.forward_features(torch.randn(2, 1, 28, 28))
    assert "dist_logits" not in out.features and out.features["tokens"].shape == (2, 17, 64)
    torch.testing.assert_close(out.logits, out.features["cls_logits"])
    cifar = build_model("vit-tiny", num_classes=100, in_shape=(3, 32, 32))
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    with torch.device("meta"):  # the CLI checks architectures on the meta device
        build_model("vit-tiny")
    with pytest.raises(ValueError, match="vit-tiny"):
        build_model("vit-huge")
    with pytest.raises(ValueError, match="divisible"):
        TinyViT(dim=30, heads=4)


def test_every_vit_parameter_receives_a_gradient():
    model = build_model("vit-tiny").train()
    model(torch.randn(4, 1, 28, 28)).logsumexp(1).sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


# ----------------------------------------------------------------------------- the losses


def _logits(seed: int, b: int = 4, k: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, k, generator=g, dtype=dtype) * 3 for _ in range(3)], torch.randint(
        0, k, (b,), generator=g
    )


@pytest.mark.parametrize("tau,lam", [(1.0, 0.5), (3.0, 0.1), (0.5, 0.9)])
def test_soft_loss_against_a_direct_computation(tau, lam):
    (c, d, t), y = _logits(1)
    ce, kd = deit_soft_loss(c, d, t, y, tau, lam)
    p_c = c.exp() / c.exp().sum(1, keepdim=True)
    want_ce = -(1 - lam) * p_c[torch.arange(len(y)), y].log().mean()
    p = (t / tau).exp() / (t / tau).exp().sum(1, keepdim=True)  # teacher
    q = (d / tau).exp() / (d / tau).exp().sum(1, keepdim=True)  # distillation head
    want_kd = lam * tau**2 * (p * (p / q).log()).sum(1).mean()
    torch.testing.assert_close(ce, want_ce)
    torch.testing.assert_close(kd, want_kd)
    # The reference code divides the summed KL by B*K instead of B.
    _, kd_ref = deit_soft_loss(c, d, t, y, tau, lam, reference_scaling=True)
    torch.testing.assert_close(kd_ref, want_kd / c.shape[1])


def test_hard_loss_against_a_direct_computation_and_eq3():
    (c, d, t), y = _logits(2)
    ce, kd = deit_hard_loss(c, d, t, y)  # λ = ½: Eq. 3
    y_t = t.argmax(1)
    rows = torch.arange(len(y))
    torch.testing.assert_close(ce, -0.5 * c.log_softmax(1)[rows, y].mean())
    torch.testing.assert_close(kd, -0.5 * d.log_softmax(1)[rows, y_t].mean())
    # Only the teacher's decision counts: scaling or shifting its logits changes nothing.
    _, kd2 = deit_hard_loss(c, d, 10 * t + 4, y)
    torch.testing.assert_close(kd, kd2)


def test_one_head_soft_distillation_is_hinton_kd():
    from kdcore.losses.kd import distillation_loss

    (s, _, t), y = _logits(3)
    ce, kd = deit_soft_loss(s, s, t, y, 4.0, 0.9)
    torch.testing.assert_close(ce + kd, distillation_loss(s, t, y, 4.0, 0.9))


def test_loss_gradients_match_finite_differences():
    (c, d, t), y = _logits(4)
    c.requires_grad_(True)
    d.requires_grad_(True)
    for fn in (
        lambda c, d: sum(deit_soft_loss(c, d, t, y, 2.0, 0.3)),
        lambda c, d: sum(deit_hard_loss(c, d, t, y, 0.7)),
    ):
        assert torch.autograd.gradcheck(fn, (c, d))


def test_soft_term_gradient_is_the_kd_gradient():
    """d/dz of λτ²·KL(p ‖ q) is λτ(q − p)/B, as in Hinton et al.'s KD."""
    (c, d, t), y = _logits(5)
    d.requires_grad_(True)
    tau, lam = 2.5, 0.4
    _, kd = deit_soft_loss(c, d, t, y, tau, lam)
    (grad,) = torch.autograd.grad(kd, d)
    want = lam * tau * ((d / tau).softmax(1) - (t / tau).softmax(1)) / len(y)
    torch.testing.assert_close(grad, want.detach())


# ----------------------------------------------------------------------------- the method


def _grads(model, loss) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_label_reaches_the_class_head_and_teacher_the_distillation_head(kind):
    torch.manual_seed(0)
    model = build_model("vit-tiny").train()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    teacher = {"logits": torch.randn(6, 10) * 3}
    distiller = METHODS["deit"].build(METHODS["deit"].make_params({"kind": kind}), None)
    assert isinstance(distiller, DeiT)
    parts = distiller(model.forward_features(x), teacher, Batch(x, y, torch.arange(6)))
    assert set(parts) == {"ce", "teacher"}
    label = _grads(model, parts["ce"])
    assert label["head_dist.weight"] is None  # the label never reaches the distillation head
    assert label["head.weight"].abs().sum() > 0
    taught = _grads(model, parts["teacher"])
    assert taught["head.weight"] is None  # the teacher never reaches the class head
    assert taught["head_dist.weight"].abs().sum() > 0
    for grads in (label, taught):  # both shape the shared tokens and blocks
        assert grads["blocks.0.attn.qkv.weight"].abs().sum() > 0
        assert grads["cls_token"].abs().sum() > 0 and grads["dist_token"].abs().sum() > 0


def test_a_student_without_the_token_takes_both_terms_on_its_one_head():
    student = build_model("mlp-30")
    out = student.forward_features(torch.randn(4, 1, 28, 28))
    cls, dist = head_logits(out.features, out.logits)
    assert cls is out.logits and dist is out.logits
    y, t = torch.randint(0, 10, (4,)), torch.randn(4, 10)
    distiller = DeiT(DeiTParams(kind="soft", tau=2.0, lam=0.3))
    parts = distiller(out, {"logits": t}, Batch(torch.zeros(4), y, torch.arange(4)))
    want = sum(deit_soft_loss(out.logits, out.logits, t, y, 2.0, 0.3))
    torch.testing.assert_close(sum(parts.values()), want)


def test_method_entry_and_parameter_checks():
    m = METHODS["deit"]
    assert m.uses_teacher and m.family == "response" and "2012.12877" in m.citation
    p = m.make_params()
    assert (p.kind, p.tau, p.lam) == ("hard", 1.0, 0.5)  # the reference code's defaults
    with pytest.raises(ValueError, match="kind"):
        m.make_params({"kind": "medium"})
    with pytest.raises(ValueError, match="lam"):
        m.make_params({"lam": 1.5})


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=300)


def test_a_short_run_learns_and_the_distillation_head_follows_the_teacher(tiny_dir):
    from kdcore.data import load_dataset
    from kdcore.train import fit, predict_logits

    data = load_dataset("mnist", "cpu", str(tiny_dir))
    torch.manual_seed(0)
    teacher = build_model("mlp-100")
    fit(teacher, data, TrainConfig(epochs=2, lr=0.1, seed=0))
    t_pred = predict_logits(teacher, data.x_test).argmax(1)
    assert (t_pred == data.y_test).float().mean() > 0.6
    torch.manual_seed(0)
    student = TinyViT(dim=32, depth=1, heads=4)  # a smaller ViT than vit-tiny: seconds, not minutes
    cfg = TrainConfig(epochs=3, batch_size=50, lr=3e-3, optimizer="adam", seed=0)
    result = distill(student, teacher, data, cfg, "deit", {"kind": "hard"})
    assert result.ok
    hist = result.history
    assert hist[-1].losses["total"] < 0.8 * hist[0].losses["total"]
    assert hist[-1].test_accuracy > 0.4  # chance is 0.1; 1,000 images, 3 epochs
    report = token_report(_heads(student, data.x_test), data.y_test, t_pred)
    assert report["dist_teacher"] > 0.4 and 0.0 <= report["agreement"] <= 1.0


def _heads(model, x):
    from kdcore.presets_deit import head_outputs

    return head_outputs(model.eval(), x)


def test_token_report_and_example_choice_on_hand_made_predictions():
    y = torch.tensor([0, 1, 2, 3])
    eye = torch.eye(4)
    heads = {"cls": eye[[0, 1, 2, 0]], "dist": eye[[0, 1, 3, 0]]}
    teacher = torch.tensor([0, 1, 3, 3])
    r = token_report(heads, y, teacher)
    assert r == {"cls_accuracy": 0.75, "cls_teacher": 0.5, "dist_accuracy": 0.5,
                 "dist_teacher": 0.75, "agreement": 0.75}  # fmt: skip
    picked = pick_examples(y, teacher, heads, 3, seed=0)
    assert 2 in picked and len(picked) == 3 == len(set(picked))  # the teacher's mistake


def test_preset_end_to_end_on_a_tiny_set(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path))
    out = run_preset("deit-mnist", epochs=1, data_dir=str(tiny_dir), per_class=30, examples=6,
                     teacher="mlp-30", batch_size=64)  # fmt: skip
    assert out["status"] == "completed", out["message"]
    assert set(out["models"]) == {"teacher", "vit_no_teacher", "vit_deit_hard", "vit_deit_soft"}
    tokens = out["tokens"]
    assert set(tokens["vit_no_teacher"]) == {"cls_accuracy", "cls_teacher"}
    for name in ("vit_deit_hard", "vit_deit_soft"):
        assert set(tokens[name]) == {"cls_accuracy", "dist_accuracy", "agreement",
                                     "cls_teacher", "dist_teacher"}  # fmt: skip
        assert all(len(v) == 1 and 0 <= v[0] <= 1 for v in tokens[name].values())
        assert out["history"][name][0]["extra"]["agreement"] == tokens[name]["agreement"][0]
    ex = out["examples"]
    assert len(ex["test_index"]) == len(ex["labels"]) == len(ex["teacher"]) == 6
    assert set(ex["models"]["vit_deit_hard"]) == {"cls", "dist"}
    assert all(math.isclose(sum(p), 1.0, abs_tol=0.02) for p in ex["teacher"])
    assert out["training_images"] == 300
    assert out["models"]["vit_deit_soft"]["method_params"]["kind"] == "soft"


def test_cross_entropy_part_is_plain_cross_entropy_at_lambda_zero():
    (c, d, t), y = _logits(6, dtype=torch.float32)
    ce, kd = deit_hard_loss(c, d, t, y, lam=0.0)
    torch.testing.assert_close(ce, F.cross_entropy(c, y))
    assert kd == 0


def test_preset_quotes_deit_table_3():
    """Touvron et al. 2021, Table 3 (not Table 5, the throughput table): ImageNet top-1 of the
    distillation variants, six rows by four models."""
    p = PRESETS["deit-mnist"]
    assert "Table 3" in p.source and "Table 5" not in p.source + p.differences
    assert "could not" not in p.differences
    assert "Table 3" in p.paper["setting"] and all("Table 5" not in c for c in p.paper["claims"])
    rows = {r["method"]: r for r in p.paper["imagenet_top1"]}
    models = ("DeiT-Ti 224", "DeiT-S 224", "DeiT-B 224", "DeiT-B↑384")
    assert {m: [rows[m][k] for k in models] for m in rows} == {
        "no distillation": [72.2, 79.8, 81.8, 83.1],
        "usual distillation": [72.2, 79.8, 81.8, 83.2],
        "hard distillation": [74.3, 80.9, 83.0, 84.0],
        "distillation token: class embedding": [73.9, 80.9, 83.0, 84.2],
        "distillation token: distil. embedding": [74.6, 81.1, 83.1, 84.4],
        "distillation token: class+distillation": [74.5, 81.2, 83.4, 84.5],
    }
    assert [r["label"] for r in rows.values()] == [True, False, False, True, True, True]
    assert [r["teacher"] for r in rows.values()] == ["none", "soft", "hard", "hard", "hard", "hard"]
