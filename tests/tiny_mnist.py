"""A small slice of the bundled MNIST written as IDX files, so preset tests run the real code
path (``load_dataset("mnist", data_dir=...)``) in a second instead of a minute; and the same in
memory for the method tests (:func:`few_per_class`)."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from kdcore.data import MNIST_FILES, Dataset, load_mnist, per_class


def few_per_class(per: int = 20, n_test: int = 500) -> Dataset:
    """``per`` training images of each digit (the first, by seed 0) and the first ``n_test``
    test images of the bundled MNIST: one epoch of a method in a second."""
    mnist = load_mnist()
    x, y = per_class(mnist.x_train, mnist.y_train, per, seed=0)
    return replace(
        mnist.with_train(x, y), x_test=mnist.x_test[:n_test], y_test=mnist.y_test[:n_test]
    )


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(folder: Path, n_train: int = 3000, n_test: int = 1000) -> Path:
    """The first ``n_train`` / ``n_test`` images of MNIST as the four IDX files in ``folder``."""
    data = load_mnist()
    folder.mkdir(parents=True, exist_ok=True)

    def pixels(x: torch.Tensor) -> np.ndarray:  # normalised (N, 1, 28, 28) -> uint8 (N, 28, 28)
        return (data.denormalise(x) * 255).round().squeeze(1).numpy()

    parts = (
        pixels(data.x_train[:n_train]),
        data.y_train[:n_train].numpy(),
        pixels(data.x_test[:n_test]),
        data.y_test[:n_test].numpy(),
    )
    for stem, array in zip(MNIST_FILES, parts, strict=True):
        _write_idx(folder / stem, array)
    return folder


# Small models and one epoch: every preset runs end to end in about a second on the CPU.
TINY = {"teacher": "mlp-30", "teacher_epochs": 1, "epochs": 1, "val_size": 500}
TINY_OVERRIDES = {
    "omitted-3": {**TINY, "student": "mlp-30"},
    "only-7-8": {**TINY, "student": "mlp-30"},
    "temperature-sweep": {
        "teacher": "mlp-30",
        "teacher_epochs": 1,
        "epochs": 1,
        "students": ("mlp-30", "mlp-8"),
        "temperatures": (1.0, 4.0),
    },
    "alpha-sweep": {
        "teacher": "mlp-30",
        "teacher_epochs": 1,
        "epochs": 1,
        "student": "mlp-30",
        "alphas": (0.0, 0.5, 1.0),
    },
    "hinton-mnist": {"teacher": "mlp-30", "student": "mlp-30", "epochs": 1},
}
