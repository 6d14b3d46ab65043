"""The recipe of the small demo teacher and student that the concept pages show.

``scripts/train_demo_models.py`` trains them into ``assets/models/``; when a file is missing the
app trains a quick stand-in with the same recipe (fewer images). Plain functions, no UI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .data import Dataset, per_class
from .models import KDModel, build_model
from .train import TrainConfig, fit


@dataclass(frozen=True)
class DemoSpec:
    role: str  # "teacher" or "student"; also the file stem under assets/models
    arch: str
    per_class: int  # training images per digit (MNIST has about 6,000 of each)
    cfg: TrainConfig
    quick_per_class: int  # the in-app stand-in when the file is missing: seconds of training


DEMO_SPECS = (
    # 784-300-300-10, about 98% test accuracy after 2 epochs: confident, and its mistakes rank
    # the look-alike digits, which is all the temperature page needs.
    DemoSpec("teacher", "mlp-300", 6000, TrainConfig(epochs=2, lr=0.1, seed=0), 300),
    # 784-30-30-10 (Hinton et al. 2015 §3's smallest width) on 400 images a digit: a weak student
    # whose logits differ visibly from the teacher's, so the KD loss is not close to zero.
    DemoSpec("student", "mlp-30", 400, TrainConfig(epochs=2, lr=0.05, seed=1), 200),
)


def train_demo_model(spec: DemoSpec, data: Dataset, quick: bool = False) -> tuple[KDModel, dict]:
    """Train one demo model on hard labels; returns (model in eval mode, metadata)."""
    x, y = per_class(data.x_train, data.y_train, spec.quick_per_class if quick else spec.per_class)
    cfg = replace(spec.cfg, epochs=1) if quick else spec.cfg
    model = build_model(spec.arch, data.num_classes, data.image_shape)
    result = fit(model, data.with_train(x, y), cfg)
    if not result.ok:
        raise RuntimeError(f"training the demo {spec.role} {result.status}: {result.message}")
    meta = {
        "role": spec.role,
        "arch": spec.arch,
        "train_images": len(y),
        "epochs": cfg.epochs,
        "quick": quick,
        "test_accuracy": round(result.history[-1].test_accuracy, 4),
        "seconds": round(result.seconds, 1),
    }
    return model.eval(), meta
