"""One epoch of distillation into Hinton's 800-800 student on MNIST: in-memory trainer vs the
usual way, side by side in one run on this machine.

The usual way: torchvision's MNIST dataset + ToTensor/Normalize transforms + DataLoader(batch_size
128, num_workers 2, shuffle) + the teacher's forward pass on every batch. Ours: the whole data set
as tensors on the device, teacher logits computed once (timed separately, and also counted in a
"first epoch" figure), index slicing per batch. Same teacher, same student initialisation, same
loss (kdcore.losses.distillation_loss, T=20, alpha=0.9), same optimiser and batch size.

    python bench/bench_epoch.py [--device cpu|cuda] [--epochs 1]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.data import MNIST_DIR, MNIST_FILES, load_mnist
from kdcore.distill import distill, freeze
from kdcore.losses import distillation_loss
from kdcore.models import build_model
from kdcore.train import TrainConfig, evaluate, fit, pick_device, predict_logits

T, ALPHA, BATCH, LR = 20.0, 0.9, 128, 0.05


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def usual_way(student, teacher, root: Path, dev, epochs: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    loader = DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=2, pin_memory=dev.type == "cuda"
    )
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    student.train()
    teacher.eval()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.no_grad():
                t_logits = teacher(x)
            loss = distillation_loss(student(x), t_logits, y, T, ALPHA)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    sync(dev)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--teacher-epochs", type=int, default=1)
    args = ap.parse_args()
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
    teacher = build_model("mlp-1200-dropout").to(dev)
    fit(teacher, data, TrainConfig(epochs=args.teacher_epochs, lr=LR, augment_shift=2))
    freeze(teacher)
    torch.manual_seed(1)
    init = build_model("mlp-800").state_dict()

    with tempfile.TemporaryDirectory() as tmp:  # torchvision's layout: <root>/MNIST/raw/<file>
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for stem in MNIST_FILES:
            with gzip.open(MNIST_DIR / f"{stem}.gz", "rb") as src, open(raw / stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        student_a = build_model("mlp-800").to(dev)
        student_a.load_state_dict(init)
        t_usual = usual_way(student_a, teacher, Path(tmp), dev, args.epochs)
    acc_usual = evaluate(student_a, data)["test_accuracy"]

    sync(dev)
    t1 = time.perf_counter()
    cached = predict_logits(teacher, data.x_train)
    sync(dev)
    t_cache = time.perf_counter() - t1
    student_b = build_model("mlp-800").to(dev)
    student_b.load_state_dict(init)
    cfg = TrainConfig(epochs=args.epochs, batch_size=BATCH, lr=LR)
    sync(dev)
    t2 = time.perf_counter()
    res = distill(
        student_b,
        teacher,
        data,
        cfg,
        "kd",
        {"T": T, "alpha": ALPHA},
        teacher_targets={"logits": cached},
    )
    sync(dev)
    t_ours = time.perf_counter() - t2
    acc_ours = res.history[-1].test_accuracy
    # fit() evaluates on the test set after each epoch; the usual loop does not, so subtract it.
    t3 = time.perf_counter()
    evaluate(student_b, data)
    sync(dev)
    t_eval = (time.perf_counter() - t3) * args.epochs
    t_ours_train = t_ours - t_eval

    print(f"{'':28s}{'seconds':>10s}{'test acc':>10s}")
    print(f"{'usual way (DataLoader)':28s}{t_usual:10.2f}{acc_usual:10.4f}")
    print(f"{'in-memory, cached teacher':28s}{t_ours_train:10.2f}{acc_ours:10.4f}")
    print(f"{'  + teacher cache (once)':28s}{t_cache:10.2f}")
    print(f"speed-up per epoch (steady state): {t_usual / t_ours_train:.1f}x")
    print(f"speed-up counting the teacher cache: {t_usual / (t_ours_train + t_cache):.1f}x")


if __name__ == "__main__":
    main()
