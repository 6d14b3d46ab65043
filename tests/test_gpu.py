"""The CUDA path, where a GPU is present (skipped otherwise): data on the device, training,
distillation with cached teacher logits, agreement with the CPU, a training step that does not
wait for the device (jitter drawn there, a fused update), and that step replayed as a CUDA graph."""

import warnings
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

import kdcore.train
from kdcore.cudagraph import StepGraph
from kdcore.data import load_mnist, per_class, random_shift
from kdcore.distill import distill
from kdcore.losses import distillation_loss
from kdcore.models import build_model
from kdcore.train import (
    TrainConfig,
    _optimizer,
    fit,
    max_norm_weights,
    pick_device,
    predict_logits,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def small(device):
    data = load_mnist(device)
    return data.with_train(*per_class(data.x_train, data.y_train, 200, seed=0))


def test_auto_device_is_cuda():
    assert pick_device("auto").type == "cuda"


def test_data_lives_on_the_gpu():
    data = load_mnist("cuda")
    assert data.x_train.is_cuda and data.y_test.is_cuda and data.x_train.shape == (60000, 1, 28, 28)


def test_training_and_distillation_on_cuda_learn():
    data = small("cuda")
    torch.manual_seed(0)
    teacher = build_model("mlp-300").cuda()
    res = fit(teacher, data, TrainConfig(epochs=3, lr=0.05, augment_shift=1))
    assert res.ok and res.history[-1].test_accuracy > 0.85
    torch.manual_seed(1)
    student = build_model("mlp-30").cuda()
    res = distill(
        student, teacher, data, TrainConfig(epochs=3, grad_clip=5.0), "kd", {"T": 4.0, "alpha": 0.9}
    )
    assert res.ok and res.history[-1].test_accuracy > 0.6
    assert next(student.parameters()).is_cuda


def test_losses_agree_between_cpu_and_cuda():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(64, 10, generator=g) * 5, torch.randn(64, 10, generator=g) * 5
    y = torch.randint(0, 10, (64,), generator=g)
    for T in (0.5, 4.0, 20.0):
        cpu = distillation_loss(s, t, y, T, 0.7)
        gpu = distillation_loss(s.cuda(), t.cuda(), y.cuda(), T, 0.7)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)


def test_teacher_logits_match_between_devices():
    data = small("cpu")
    torch.manual_seed(0)
    model = build_model("mlp-100")
    cpu = predict_logits(model, data.x_test[:512])
    gpu = predict_logits(model.cuda(), data.x_test[:512].cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


def test_jitter_stays_on_the_gpu():
    # Offsets drawn on a CUDA generator: no copy from the host, so no wait for the device.
    x = load_mnist("cuda").x_train[:256]
    g = torch.Generator(device="cuda").manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        out = random_shift(x, 2, g)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2), value=float(x.min()))
    windows = torch.stack(
        [padded[:, :, r : r + 28, c : c + 28] for r in range(5) for c in range(5)]
    )  # (25, B, 1, 28, 28): every translation by up to 2 pixels
    matched = (windows == out).flatten(2).all(2)  # (25, B)
    assert matched.any(0).all()  # each image is one of them
    assert (matched.float().argmax(0).unique().numel()) > 12  # and the offsets vary


def test_the_gpu_update_is_fused():
    model = build_model("mlp-30").cuda()
    for name in ("sgd", "adam"):
        opt = _optimizer(list(model.parameters()), TrainConfig(optimizer=name))
        assert opt.param_groups[0]["fused"] is True
    cpu = _optimizer(list(build_model("mlp-30").parameters()), TrainConfig())
    assert not cpu.param_groups[0]["fused"]  # the shipped CPU runs' update


@pytest.mark.parametrize("graphs", [False, True])
def test_training_steps_do_not_wait_for_the_gpu(graphs):
    # The loop looks at the loss every 16 steps and reads its figures at the epoch's end; nothing
    # else may wait for the device (the jitter's offsets, drawn on the CPU, once did every step).
    # A graphed run adds the capture's own synchronisation, once.
    data = load_mnist("cuda")
    data = data.with_train(data.x_train[: 128 * 64], data.y_train[: 128 * 64])  # 64 steps
    torch.manual_seed(0)
    model = build_model("mlp-1200-dropout").cuda()
    cfg = TrainConfig(epochs=1, augment_shift=2, max_norm=3.5, grad_clip=5.0)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            res = fit(model, data, cfg, graphs=graphs)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchronizing" in str(w.message) for w in seen)
    assert res.ok and 1 <= syncs < (40 if graphs else 32), syncs


# ----------------------------------------------------------------------------- CUDA graphs


class CountingGraph(StepGraph):
    made: ClassVar[list["CountingGraph"]] = []

    def __init__(self, step):
        super().__init__(step)
        CountingGraph.made.append(self)


@pytest.fixture
def counting(monkeypatch):
    CountingGraph.made = []
    monkeypatch.setattr(kdcore.train, "StepGraph", CountingGraph)
    return CountingGraph.made


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_graphed_step_trains_like_the_eager_one(counting, optimizer):
    # No dropout, no jitter: the replayed graph runs the eager step's kernels on the same
    # numbers, so the weights agree. 2,000 images in batches of 128: 3 eager warm-up steps, the
    # capture, replays, and each epoch's last batch of 80 eagerly; the cosine schedule and the
    # clipping must reach the graph through its static tensors.
    data = small("cuda")
    lr = 0.05 if optimizer == "sgd" else 1e-3
    cfg = TrainConfig(epochs=2, batch_size=128, lr=lr, grad_clip=1.0, optimizer=optimizer)
    nets = []
    for graphs in (False, True):
        torch.manual_seed(0)
        net = build_model("mlp-800").cuda()
        res = fit(net, data, cfg, graphs=graphs)
        assert res.ok and "capture failed" not in res.message, res.message
        nets.append((net, res))
    (eager, a), (graphed, b) = nets
    assert len(counting) == 1 and counting[0].replays == 2 * 15 - 3 and not counting[0].error
    for p, q in zip(eager.parameters(), graphed.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert abs(ra.losses["total"] - rb.losses["total"]) < 1e-4
        assert abs(ra.test_errors - rb.test_errors) <= 2
        assert ra.train_accuracy == pytest.approx(rb.train_accuracy, abs=2e-3)


def test_a_graphed_teacher_with_dropout_jitter_and_max_norm_learns(counting):
    data = small("cuda")
    cfg = TrainConfig(epochs=3, batch_size=100, lr=0.05, augment_shift=2, max_norm=3.5)
    accs = []
    for graphs in (False, True):
        torch.manual_seed(0)
        net = build_model("mlp-1200-dropout").cuda()
        res = fit(net, data, cfg, graphs=graphs)
        assert res.ok and "capture failed" not in res.message, res.message
        accs.append(res.history[-1].test_accuracy)
        rows = torch.cat([w.norm(dim=1) for w in max_norm_weights([net])])
        assert float(rows.max()) <= 3.5 + 1e-4  # the constraint holds in the graph too
    assert counting[0].replays > 0
    assert accs[1] > 0.85 and abs(accs[1] - accs[0]) < 0.02, accs


def test_graphed_distillation_of_the_hinton_preset(counting):
    from kdcore.runner import run_preset

    out = run_preset("hinton-mnist", device="cuda", profile="paper", epochs=1, teacher_epochs=1,
                     use_cache=False, cuda_graphs=True)  # fmt: skip
    assert out["status"] == "completed", out["message"]
    assert len(counting) == 3 and all(g.replays > 400 and not g.error for g in counting)
    assert all(m["test_errors"] < 600 for m in out["models"].values()), out["models"]
