"""SRRL (Yang, Martinez, Bulat & Tzimiropoulos 2021): both losses against the official code's
written out and a reference by example, finite differences through the frozen classifier, the
method owning its connector and a frozen copy of the teacher's classifier, and the preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdcore.distill import build_distiller, distill
from kdcore.losses.srrl import feature_statistics_loss, softmax_regression_loss
from kdcore.models import build_model
from kdcore.presets import run_preset
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class, write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def official_statm(x, y):
    """``statm_loss`` of the official AIN.py, written out: per channel the spatial mean, the
    squared gap averaged over channels, then over the batch."""
    x = x.view(x.size(0), x.size(1), -1)
    y = y.view(y.size(0), y.size(1), -1)
    return (x.mean(dim=2) - y.mean(dim=2)).pow(2).mean(1).mean()


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 2, 2)])
def test_the_feature_statistics_are_the_official_codes_and_a_loop(shape):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=shape), rng.normal(size=shape)
    got = feature_statistics_loss(t64(x), t64(y)).item()
    assert got == pytest.approx(official_statm(t64(x), t64(y)).item(), rel=1e-12)
    xs, ys = x.reshape(shape[0], shape[1], -1), y.reshape(shape[0], shape[1], -1)
    want = np.mean([[(xs[b, c].mean() - ys[b, c].mean()) ** 2 for c in range(shape[1])]
                    for b in range(shape[0])])  # fmt: skip
    assert got == pytest.approx(want, rel=1e-12)


def test_the_softmax_regression_goes_through_the_teachers_classifier():
    rng = np.random.default_rng(1)
    head = nn.Linear(6, 4).double().requires_grad_(False)
    f, z = t64(rng.normal(size=(3, 6))), t64(rng.normal(size=(3, 4)))
    got = softmax_regression_loss(head, f, z).item()
    w, b = head.weight.numpy(), head.bias.numpy()
    want = np.mean([(w @ f[i].numpy() + b - z[i].numpy()) ** 2 for i in range(3)])
    assert got == pytest.approx(want, rel=1e-12)
    # zero where the student's feature is the teacher's own
    assert softmax_regression_loss(head, f, head(f)).item() == 0.0


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(2)
    head = nn.Linear(5, 3).double().requires_grad_(False)
    t_feat, z = t64(rng.normal(size=(4, 5))), t64(rng.normal(size=(4, 3)))
    f = t64(rng.normal(size=(4, 5)), True)
    assert torch.autograd.gradcheck(
        lambda a: feature_statistics_loss(a, t_feat) + softmax_regression_loss(head, a, z), (f,)
    )
    assert all(p.grad is None for p in head.parameters())  # the classifier stays frozen


def test_the_method_trains_its_connector_through_a_frozen_copy_of_the_teachers_classifier():
    small = few_per_class()
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("srrl", {"alpha": 2.0, "beta": 3.0}, student, teacher, small)
    assert d.connector.linear.weight.shape == (100, 30)
    head_before = {k: v.clone() for k, v in d.teacher_head.state_dict().items()}
    assert d.teacher_head is not teacher.head and not any(
        p.requires_grad for p in d.teacher_head.parameters())  # fmt: skip
    conn_before = d.connector.linear.weight.detach().clone()
    result = distill(student, teacher, small, TrainConfig(epochs=2, batch_size=50, seed=0),
                     "srrl", distiller=d)  # fmt: skip
    assert result.ok, result.message
    assert set(result.history[-1].losses) == {"ce", "fm", "sr", "total"}
    for k, v in d.teacher_head.state_dict().items():
        torch.testing.assert_close(v, head_before[k], rtol=0, atol=0)
        torch.testing.assert_close(v, teacher.head.state_dict()[k], rtol=0, atol=0)
    assert not torch.equal(conn_before, d.connector.linear.weight)
    extra = result.history[-1].extra
    assert 0 <= extra["read_accuracy"] <= 1 and 0 <= extra["read_agreement"] <= 1
    x, y = small.x_train[:30], small.y_train[:30]
    d.eval()
    with torch.no_grad():
        s = student.eval().forward_features(x)
        t = d.teacher_targets(teacher.eval().forward_features(x))
        parts = d(s, t, type("B", (), {"y": y})())
        connected = d.connector(s.features["embedding"])
    assert parts["ce"].item() == pytest.approx(F.cross_entropy(s.logits, y).item())
    assert parts["fm"].item() == pytest.approx(
        2.0 * F.mse_loss(connected, t["feat"]).item(), rel=1e-5)  # fmt: skip
    assert parts["sr"].item() == pytest.approx(
        3.0 * F.mse_loss(teacher.head(connected), t["logits"]).item(), rel=1e-5)  # fmt: skip


def test_without_the_teachers_classifier_it_is_refused_in_one_line():
    """No teacher, or one whose logits are not one classifier of its penultimate feature (a ViT
    averaging two heads): SRRL has nothing to read the student's feature with."""
    from kdcore.losses.srrl import SRRL, SRRLParams
    from kdcore.method import Probe

    small = few_per_class(per=2, n_test=10)
    with pytest.raises(ValueError, match="needs a teacher"):
        build_distiller("srrl", {}, build_model("mlp-30"), None, small)
    x = small.x_train[:2]
    s = build_model("mlp-30").forward_features(x)
    t = build_model("mlp-100").forward_features(x)
    with pytest.raises(ValueError, match="the teacher's classifier") as err:
        SRRL(SRRLParams(), Probe(s, t, 10, 20, teacher_head=None))
    assert "\n" not in str(err.value)


def test_the_preset_records_what_the_teachers_classifier_reads(tmp_path):
    tiny = str(write_tiny_mnist(tmp_path, n_train=1000, n_test=300))
    result = json.loads(
        json.dumps(
            run_preset(
                "srrl-mnist",
                data_dir=tiny,
                teacher="mlp-30",
                teacher_epochs=1,
                epochs=1,
                per_class=20,
            )
        )
    )
    assert result["status"] == "completed", result["message"]
    assert {"teacher", "student_hard", "student_kd", "student_srrl"} <= set(result["models"])
    last = result["history"]["student_srrl"][-1]["extra"]
    assert 0 <= last["read_accuracy"] <= 1
