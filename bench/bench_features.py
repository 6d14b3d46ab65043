"""One epoch of feature distillation (attention transfer, RKD) on MNIST: in-memory trainer with
cached teacher features vs the usual way, side by side in one run on this machine.

Teacher "cnn" (SmallCNN, width 32, trained here for one epoch with CE and then frozen), student
"cnn-8" (the same layers with a quarter of the channels), both students from the same
initialisation. Batch 128, SGD lr 0.05 with Nesterov momentum 0.9 and a per-step cosine schedule,
gradient norm clipped to 5.

- AT: CE + 1000 * (at_loss(conv1) + at_loss(conv2)) (Zagoruyko & Komodakis 2017; beta 1e3 from
  the authors' README).
- RKD: CE + 25 * RKD-D + 50 * RKD-A on the "embedding" features (Park et al. 2019; weights of
  RepDistiller and mdistiller); the usual way computes it as the authors' code does.

The usual way: torchvision's MNIST dataset (read from the bundled IDX files) + ToTensor/Normalize +
DataLoader(batch_size=128, shuffle=True, num_workers=2) + forward hooks on both models' layers to
grab the features + the teacher's forward pass on every batch + the loss from
kdcore.losses.attention.at_loss or kdcore.losses.rkd. SmallCNN applies ReLU and pooling
functionally, so the hooks sit on conv1/conv2/fc and apply the same ReLU (and 2x2 max pool) to the
module's output: the hooked tensors are exactly the features that forward_features names.

Ours: the whole data set as tensors (kdcore.data.load_mnist), the teacher's targets (AT: attention
maps and logits; RKD: flattened embedding and logits) computed once for the training set with
kdcore.distill.predict_targets and timed separately, then kdcore.distill.distill. fit() evaluates
the student on the test set after each epoch; the usual loop does not, so that evaluation is timed
on its own and subtracted (as in bench_epoch.py).

    python bench/bench_features.py [--device auto|cpu|cuda] [--threads N] [--only at|rkd|all]

Measured 2026-11-23 on a 2-core AMD EPYC CPU shared with other jobs (load average 5 to 9, so
the seconds are inflated and drift between phases), torch 2.14.1, --threads 2. AT and RKD were
measured in separate runs (--only at, --only rkd); the teacher's epoch took 294 s and 473 s.

                            usual way   ours, per epoch   teacher cache   speed-up (with cache)
    AT, conv1 + conv2         426.9 s           122.0 s          95.3 s       3.5x   (2.0x)
        test accuracy          0.9848            0.9832
    RKD, embedding            431.8 s            73.5 s          68.4 s       5.9x   (3.0x)
        test accuracy          0.9849            0.9858

The one-time cache costs about one teacher pass over the training set, which the usual way pays
every epoch. The usual RKD loop uses the reference code's loss (a (B, B, D) tensor of unit
differences and a bmm over all B^3 triplets, all kept for autograd); ours computes the same loss
(checked on a test batch at the start of the run) from the batch's Gram matrix with a
hand-written backward (kdcore.losses.rkd._AngleLoss). Before that change the in-memory RKD epoch
took 340 s against 478 s, 1.4x: the loss, not the data, was the cost. Relations are taken over
the whole batch of 128 on both sides (``group=0``).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.data import MNIST_DIR, MNIST_FILES, Dataset, load_mnist
from kdcore.distill import build_distiller, distill, freeze, predict_targets
from kdcore.losses.attention import at_loss
from kdcore.losses.rkd import rkd_angle_loss, rkd_distance_loss
from kdcore.models import KDModel, SmallCNN, build_model
from kdcore.train import TrainConfig, evaluate, fit, pick_device

TEACHER, STUDENT = "cnn", "cnn-8"
BATCH, LR, MOMENTUM, CLIP = 128, 0.05, 0.9, 5.0
AT_LAYERS, AT_BETA = ("conv1", "conv2"), 1000.0
RKD_D, RKD_A = 25.0, 50.0  # RepDistiller / mdistiller weights, see kdcore.losses.rkd

Features = dict[str, torch.Tensor]
FeatureLoss = Callable[[Features, Features], torch.Tensor]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def at_features_loss(s: Features, t: Features) -> torch.Tensor:
    return AT_BETA * sum(at_loss(s[name], t[name]) for name in AT_LAYERS)


def _reference_pdist(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Distances as the reference code computes them: |a|^2 + |b|^2 - 2ab, clamped, diagonal 0."""
    sq = e.pow(2).sum(1)  # (B,)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.T).clamp(min=eps).sqrt().clone()
    d[range(len(e)), range(len(e))] = 0
    return d  # (B, B)


def _reference_angles(e: torch.Tensor) -> torch.Tensor:
    """All B^3 triplet cosines as the reference code computes them: (B, B, D) unit differences
    and one bmm, everything kept for autograd."""
    unit = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # (B, B, D)
    return torch.bmm(unit, unit.transpose(1, 2)).view(-1)  # (B^3,)


def reference_rkd_loss(s: Features, t: Features) -> torch.Tensor:
    """RKD in the form most training code uses: the authors' (lenscloth/RKD, metric/loss.py,
    RkdDistance and RKdAngle), copied unchanged into RepDistiller and mdistiller. The same loss
    as kdcore.losses.rkd up to rounding; the teacher side under no_grad, as there."""
    se = s["embedding"].flatten(1)  # (B, D_s)
    te = t["embedding"].flatten(1)  # (B, D_t)
    with torch.no_grad():
        t_d = _reference_pdist(te)
        t_d = t_d / t_d[t_d > 0].mean()
        t_a = _reference_angles(te)
    s_d = _reference_pdist(se)
    s_d = s_d / s_d[s_d > 0].mean()
    dist = F.smooth_l1_loss(s_d, t_d)
    angle = F.smooth_l1_loss(_reference_angles(se), t_a)
    return RKD_D * dist + RKD_A * angle


def hook_features(model: SmallCNN, names: tuple[str, ...]):
    """Forward hooks that store the named features of a SmallCNN as forward_features returns
    them: max_pool(relu(conv)) for conv1/conv2, relu(fc) for the embedding."""

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(t), 2)

    where = {
        "conv1": (model.conv1, pool),
        "conv2": (model.conv2, pool),
        "embedding": (model.fc, F.relu),
    }
    store: Features = {}

    def make(name, post):
        def hook(_module, _inputs, output):
            store[name] = post(output)

        return hook

    handles = [where[n][0].register_forward_hook(make(n, where[n][1])) for n in names]
    return store, handles


def usual_way(
    student: SmallCNN,
    teacher: SmallCNN,
    root: Path,
    dev: torch.device,
    layers: tuple[str, ...],
    feature_loss: FeatureLoss,
) -> float:
    """Seconds for one epoch: DataLoader, hooks, a live teacher forward pass per batch."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    loader = DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=2, pin_memory=dev.type == "cuda"
    )
    s_feats, s_hooks = hook_features(student, layers)
    t_feats, t_hooks = hook_features(teacher, layers)
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, len(loader))
    student.train()
    teacher.eval()
    sync(dev)
    t0 = time.perf_counter()
    for x, y in loader:
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.no_grad():
            teacher(x)  # fills t_feats
        logits = student(x)  # (B, K); fills s_feats
        loss = F.cross_entropy(logits, y) + feature_loss(s_feats, t_feats)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), CLIP)
        opt.step()
        sched.step()
    sync(dev)
    seconds = time.perf_counter() - t0
    for h in (*s_hooks, *t_hooks):
        h.remove()
    return seconds


def ours(
    method: str, params: dict, student: KDModel, teacher: KDModel, data: Dataset
) -> tuple[float, float, float]:
    """(teacher cache seconds, epoch seconds without the test evaluation, test accuracy)."""
    dev = data.device
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, momentum=MOMENTUM, grad_clip=CLIP)
    distiller = build_distiller(method, params, student, teacher, data)
    sync(dev)
    t1 = time.perf_counter()
    targets = predict_targets(teacher, distiller.teacher_targets, data.x_train, cfg.eval_batch_size)
    sync(dev)
    t_cache = time.perf_counter() - t1

    t2 = time.perf_counter()
    res = distill(
        student, teacher, data, cfg, method, params, teacher_targets=targets, distiller=distiller
    )
    sync(dev)
    t_ours = time.perf_counter() - t2
    # fit() evaluates on the test set after the epoch; the usual loop does not, so subtract it.
    t3 = time.perf_counter()
    evaluate(student, data)
    sync(dev)
    t_eval = time.perf_counter() - t3
    return t_cache, t_ours - t_eval, res.history[-1].test_accuracy


def compare(
    title: str,
    method: str,
    params: dict,
    layers: tuple[str, ...],
    feature_loss: FeatureLoss,
    teacher: SmallCNN,
    data: Dataset,
    root: Path,
) -> None:
    dev = data.device
    torch.manual_seed(1)
    init = build_model(STUDENT).state_dict()
    student_a = build_model(STUDENT).to(dev)
    student_a.load_state_dict(init)
    t_usual = usual_way(student_a, teacher, root, dev, layers, feature_loss)
    acc_usual = evaluate(student_a, data)["test_accuracy"]

    student_b = build_model(STUDENT).to(dev)
    student_b.load_state_dict(init)
    t_cache, t_ours, acc_ours = ours(method, params, student_b, teacher, data)

    print(f"\n{title}, {TEACHER} -> {STUDENT}, 1 epoch")
    print(f"{'':30s}{'seconds':>10s}{'test acc':>10s}")
    print(f"{'usual way (DataLoader+hooks)':30s}{t_usual:10.2f}{acc_usual:10.4f}")
    print(f"{'in-memory, cached teacher':30s}{t_ours:10.2f}{acc_ours:10.4f}")
    print(f"{'  + teacher cache (once)':30s}{t_cache:10.2f}")
    print(f"speed-up per epoch (steady state): {t_usual / t_ours:.1f}x")
    print(f"speed-up counting the teacher cache: {t_usual / (t_ours + t_cache):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = default")
    ap.add_argument("--only", choices=("at", "rkd", "all"), default="all")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    print(
        f"device {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )

    t0 = time.perf_counter()
    data = load_mnist(dev)
    sync(dev)
    print(f"load bundled MNIST into memory on {dev}: {time.perf_counter() - t0:.2f} s")

    torch.manual_seed(0)
    teacher = build_model(TEACHER).to(dev)
    res = fit(teacher, data, TrainConfig(epochs=1, batch_size=BATCH, lr=LR))
    freeze(teacher)
    print(
        f"teacher {TEACHER}, 1 epoch CE: test acc {res.history[-1].test_accuracy:.4f} "
        f"({res.seconds:.1f} s)"
    )

    with tempfile.TemporaryDirectory() as tmp:  # torchvision's layout: <root>/MNIST/raw/<file>
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for stem in MNIST_FILES:
            with gzip.open(MNIST_DIR / f"{stem}.gz", "rb") as src, open(raw / stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        if args.only in ("at", "all"):
            compare(
                f"attention transfer (conv1, conv2; beta {AT_BETA:g}) + CE",
                "at",
                {"layers": ",".join(AT_LAYERS), "beta": AT_BETA},
                AT_LAYERS,
                at_features_loss,
                teacher,
                data,
                Path(tmp),
            )
        if args.only in ("rkd", "all"):
            # The reference form and kdcore's fused RKD are the same loss: check on real features.
            with torch.no_grad():
                x = data.x_test[:BATCH]
                s_out = build_model(STUDENT).to(dev).forward_features(x).features
                t_out = teacher.forward_features(x).features
            ours_loss = RKD_D * rkd_distance_loss(s_out["embedding"], t_out["embedding"]) + (
                RKD_A * rkd_angle_loss(s_out["embedding"], t_out["embedding"])
            )
            ref_loss = reference_rkd_loss(s_out, t_out)
            print(f"RKD loss on one test batch: reference form {ref_loss.item():.6f}, "
                  f"kdcore {ours_loss.item():.6f}")  # fmt: skip
            compare(
                f"RKD (embedding; distance {RKD_D:g}, angle {RKD_A:g}) + CE",
                "rkd",
                # group 0: relations over the whole batch of 128, as the usual loop computes
                # them (the method's default, groups of 64, would be a cheaper, different loss)
                {"distance_weight": RKD_D, "angle_weight": RKD_A, "group": 0},
                ("embedding",),
                reference_rkd_loss,
                teacher,
                data,
                Path(tmp),
            )


if __name__ == "__main__":
    main()
