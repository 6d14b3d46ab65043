"""The trainer and distillation: learning, reproducibility, cancellation, failure, callbacks,
cached teacher logits, and a teacher that stays frozen. Small models on MNIST subsets."""

import copy
import math
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from kdcore.data import load_mnist, per_class
from kdcore.distill import distill
from kdcore.models import MLP, build_model
from kdcore.train import (
    Callback,
    TrainConfig,
    accuracy_report,
    evaluate,
    fit,
    pick_device,
    predict_logits,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def small(mnist):
    """640 training images (64 per class) and the first 1,000 test images."""
    x, y = per_class(mnist.x_train, mnist.y_train, 64, seed=0)
    return replace(mnist.with_train(x, y), x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])


def model(name: str = "mlp-30", seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name)


def without_seconds(history) -> list[dict]:
    out = []
    for r in history:
        d = r.to_dict()
        d.pop("seconds")
        out.append(d)
    return out


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Recorder(Callback):
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, progress):
        self.steps.append(progress)

    def on_epoch(self, record, progress):
        self.epochs.append((record, progress))


# ----------------------------------------------------------------------------- learning


def test_one_epoch_of_mlp_100_learns_mnist(mnist):
    net = model("mlp-100")
    result = fit(net, mnist, TrainConfig(epochs=1))
    assert result.status == "completed" and result.ok and result.message
    (rec,) = result.history
    assert rec.test_accuracy > 0.9  # chance is 0.1
    assert rec.train_accuracy > 0.8
    assert rec.test_errors == round((1 - rec.test_accuracy) * 10000)
    assert set(rec.losses) == {"ce", "total"} and rec.losses["total"] == rec.losses["ce"]
    assert rec.losses["ce"] < 1.0 < math.log(10)  # below the loss of a uniform guess
    assert rec.lr == pytest.approx(0.0, abs=1e-12)  # cosine schedule ends at zero
    assert not net.training  # fit leaves the model in eval mode
    report = evaluate(net, mnist)
    assert report["test_accuracy"] == rec.test_accuracy
    assert report["test_errors"] == rec.test_errors


def test_seeded_runs_are_reproducible(small):
    # Dropout and 1-pixel jitter exercise both random streams (global and the shuffling one).
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, augment_shift=1, seed=3)

    def run(seed: int):
        torch.manual_seed(0)
        net = MLP(784, (32, 32), dropout=0.3)
        return net, fit(net, small, replace(cfg, seed=seed))

    a_net, a = run(3)
    b_net, b = run(3)
    assert a.status == b.status == "completed"
    assert without_seconds(a.history) == without_seconds(b.history)
    assert same_weights(a_net, b_net)
    c_net, c = run(4)
    assert without_seconds(c.history) != without_seconds(a.history)
    assert not same_weights(a_net, c_net)


def test_cuda_graphs_change_nothing_on_the_cpu(small):
    # Graphs are a GPU replay of the same step; on the CPU the flag is ignored, bit for bit
    # (7 steps of 100: the last one smaller, with jitter, clipping and max-norm).
    cfg = TrainConfig(epochs=2, batch_size=100, augment_shift=1, max_norm=3.0, grad_clip=5.0)
    a, b = model("mlp-30"), model("mlp-30")
    ra, rb = fit(a, small, cfg), fit(b, small, cfg, graphs=True)
    assert ra.ok and rb.ok and ra.message == rb.message
    assert without_seconds(ra.history) == without_seconds(rb.history)
    assert same_weights(a, b)


# ----------------------------------------------------------------------------- stopping


def test_cancel_from_a_callback_keeps_the_finished_epochs(small):
    cancel = threading.Event()
    k = 13  # 10 steps per epoch (640 / 64): cancelled during epoch 2

    class CancelAfter(Recorder):
        def on_step(self, progress):
            super().on_step(progress)
            if progress.done_steps == k:
                cancel.set()

    cb = CancelAfter()
    result = fit(
        model(), small, TrainConfig(epochs=5, batch_size=64), callbacks=[cb], cancel=cancel
    )
    assert result.status == "cancelled" and not result.ok
    assert "epoch 2" in result.message
    assert [r.epoch for r in result.history] == [1]
    assert cb.steps[-1].done_steps == k  # no step ran after the event was set
    assert len(cb.epochs) == 1


def test_cancel_from_another_thread(small):
    cancel = threading.Event()
    started = threading.Event()

    class Signal(Callback):
        def on_step(self, progress):
            started.set()

    out = {}
    cfg = TrainConfig(epochs=1000, batch_size=64)
    worker = threading.Thread(
        target=lambda: out.update(r=fit(model(), small, cfg, callbacks=[Signal()], cancel=cancel))
    )
    worker.start()
    assert started.wait(30)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert out["r"].status == "cancelled" and len(out["r"].history) < 1000


def test_cancel_before_the_start(small):
    cancel = threading.Event()
    cancel.set()
    result = fit(model(), small, TrainConfig(epochs=2), cancel=cancel)
    assert result.status == "cancelled" and result.history == []


@pytest.mark.parametrize("lr", [1e3, 1e8])
def test_a_huge_learning_rate_fails_with_a_message(small, lr):
    result = fit(model(), small, TrainConfig(epochs=3, batch_size=64, lr=lr, warmup=0.0))
    assert result.status == "failed" and not result.ok
    assert "loss" in result.message and "\n" not in result.message
    assert len(result.history) < 3


def test_an_empty_training_set_is_an_error(small):
    empty = small.with_train(small.x_train[:0], small.y_train[:0])
    with pytest.raises(ValueError, match="empty"):
        fit(model(), empty, TrainConfig(epochs=1))


# ----------------------------------------------------------------------------- callbacks


def test_callbacks_receive_sane_progress(small):
    cb = Recorder()
    cfg = TrainConfig(epochs=3, batch_size=100)  # 640 examples: 7 steps, the last one short
    result = fit(model(), small, cfg, callbacks=[cb])
    steps_per_epoch, total = 7, 21
    assert [p.done_steps for p in cb.steps] == list(range(1, total + 1))
    assert [(p.epoch, p.step) for p in cb.steps] == [
        (e, s) for e in (1, 2, 3) for s in range(1, steps_per_epoch + 1)
    ]
    for p in cb.steps:
        assert p.steps_per_epoch == steps_per_epoch and p.total_steps == total
        assert p.fraction == pytest.approx(p.done_steps / total)
        assert 0 < p.fraction <= 1
        assert math.isfinite(p.eta) and p.eta >= 0
        # The ETA extrapolates the pace so far over the steps left.
        assert p.eta == pytest.approx(p.elapsed / p.done_steps * (total - p.done_steps))
    assert cb.steps[-1].fraction == 1.0 and cb.steps[-1].eta == 0.0
    elapsed = [p.elapsed for p in cb.steps]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert [r.epoch for r, _ in cb.epochs] == [1, 2, 3]
    assert [p.fraction for _, p in cb.epochs] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [r for r, _ in cb.epochs] == result.history
    for r in result.history:
        assert r.seconds > 0 and 0 <= r.test_accuracy <= 1 and 0 <= r.train_accuracy <= 1
        assert r.to_dict()["losses"] == r.losses


# ----------------------------------------------------------------------------- distillation


@pytest.fixture(scope="module")
def teacher(small):
    net = model("mlp-100", seed=1)
    fit(net, small, TrainConfig(epochs=2, batch_size=64))
    return net


def test_distill_with_cached_logits_equals_computing_them(small, teacher):
    cfg = TrainConfig(epochs=2, batch_size=64)
    logits = predict_logits(teacher, small.x_train)
    s1, s2 = model(seed=5), model(seed=5)
    kd = {"T": 4.0, "alpha": 0.9}
    a = distill(s1, teacher, small, cfg, "kd", kd)
    b = distill(s2, teacher, small, cfg, "kd", kd, teacher_targets={"logits": logits})
    assert a.status == b.status == "completed"
    assert without_seconds(a.history) == without_seconds(b.history)
    assert same_weights(s1, s2)
    assert set(a.history[0].losses) == {"ce", "kd", "total"}


def test_distill_rejects_logits_of_another_transfer_set(mnist, small, teacher):
    # Logits of a larger set (here the first 1,000 MNIST images) would index without error
    # and pair each student input with another image's teacher logits.
    wrong = predict_logits(teacher, mnist.x_train[:1000])
    with pytest.raises(ValueError, match="1000 rows"):
        distill(model(), teacher, small, TrainConfig(epochs=1), teacher_targets={"logits": wrong})


@pytest.mark.parametrize("shift", [0, 1])
def test_teacher_stays_frozen_and_unchanged(small, shift):
    """With a BatchNorm teacher, a forward pass in train mode would move its running
    statistics; with shift > 0 the teacher runs live on every batch."""
    torch.manual_seed(2)
    bn_teacher = build_model("resnet8", in_shape=(1, 28, 28))
    bn_teacher.train()
    before = copy.deepcopy(bn_teacher.state_dict())
    sub = small.with_train(small.x_train[:128], small.y_train[:128])
    cfg = TrainConfig(epochs=1, batch_size=64, augment_shift=shift)
    result = distill(model(), bn_teacher, sub, cfg, "kd", {"T": 4.0, "alpha": 0.5})
    assert result.status == "completed"
    assert not bn_teacher.training
    assert all(not p.requires_grad for p in bn_teacher.parameters())
    after = bn_teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kd_student_moves_towards_its_teacher(small, teacher):
    """Pure distillation (alpha=1) at T=1 for a few epochs: the student agrees with the
    teacher's predictions far more often than chance."""
    student = model("mlp-30", seed=7)
    cfg = TrainConfig(epochs=4, batch_size=64)
    result = distill(student, teacher, small, cfg, "kd", {"T": 1.0, "alpha": 1.0})
    assert result.status == "completed"
    t_pred = predict_logits(teacher, small.x_test).argmax(1)
    s_pred = predict_logits(student, small.x_test).argmax(1)
    assert (t_pred == s_pred).float().mean().item() > 0.7
    assert result.history[-1].losses["kd"] < result.history[0].losses["kd"]


def test_hard_method_needs_no_teacher(small):
    result = distill(model(), None, small, TrainConfig(epochs=1, batch_size=64), "hard")
    assert result.status == "completed" and set(result.history[0].losses) == {"ce", "total"}


def test_method_errors_are_value_errors(small):
    with pytest.raises(ValueError, match="needs a teacher"):
        distill(model(), None, small, TrainConfig(epochs=1), "kd")
    with pytest.raises(ValueError, match="unknown method 'no-such-method'"):
        distill(model(), None, small, TrainConfig(epochs=1), "no-such-method")
    with pytest.raises(ValueError, match=r"T\)? must be"):
        distill(model(), model(), small, TrainConfig(epochs=1), "kd", {"T": -1.0})


# ----------------------------------------------------------------------------- evaluation


def test_accuracy_report_against_a_plain_count():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5))
    y = rng.integers(0, 5, 300)
    y[y == 4] = 3  # class 4 absent from the labels: its accuracy is reported as 0
    got = accuracy_report(torch.tensor(logits), torch.tensor(y), 5)
    pred = logits.argmax(1)
    assert got["test_errors"] == int((pred != y).sum())
    assert got["test_accuracy"] == pytest.approx((pred == y).mean())
    want = [float((pred[y == c] == c).mean()) if (y == c).any() else 0.0 for c in range(5)]
    assert got["per_class_accuracy"] == pytest.approx(want)


def test_predict_logits_is_batched_eval_and_restores_the_mode(small):
    net = build_model("mlp-1200-dropout")
    net.train()
    x = small.x_test[:300]
    a = predict_logits(net, x, batch_size=64)
    b = predict_logits(net, x, batch_size=1000)
    assert a.shape == (300, 10) and not a.requires_grad
    torch.testing.assert_close(a, b)  # dropout off in eval, batching does not matter
    assert net.training


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(None) == pick_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")
