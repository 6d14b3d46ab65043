"""Train the demo teacher and student that the explainer pages load, into assets/models/.

    .venv/bin/python scripts/train_demo_models.py [--out assets/models]

The recipe is ``kdcore.demo.DEMO_SPECS`` (the app's fallback trains the same models, shorter, when a
file is missing). Both are small MLPs trained on hard labels from the bundled MNIST, seeded:
teacher 784-300-300-10 (2 epochs, all 60k images, about 98% test accuracy, 1.3 MB);
student 784-30-30-10 (2 epochs, 400 images a digit, weaker on purpose, 0.1 MB).
Measured: teacher 97.7% in 86 s, student 88.1% in 4 s, on a 2-core CPU shared with other jobs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.ui import MODELS_DIR  # noqa: E402
from kdcore.checkpoint import save_model  # noqa: E402
from kdcore.data import load_mnist  # noqa: E402
from kdcore.demo import DEMO_SPECS, train_demo_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder for the .safetensors")
    args = parser.parse_args(argv)
    data = load_mnist()
    for spec in DEMO_SPECS:
        t0 = time.perf_counter()
        model, meta = train_demo_model(spec, data)
        path = save_model(
            model,
            args.out / f"{spec.role}.safetensors",
            spec.arch,
            data.num_classes,
            data.image_shape,
            meta,
        )
        print(
            f"{spec.role}: {spec.arch}, test accuracy {meta['test_accuracy']:.4f}, "
            f"{path.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - t0:.1f} s -> {path}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
