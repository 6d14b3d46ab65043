"""Train the character-level language-model teacher that the LM pages and presets load.

    .venv/bin/python scripts/train_lm_teacher.py [--out assets/models/lm-teacher.safetensors]

The recipe is ``kdcore.presets_lm.TeacherRecipe`` (the presets train the same model and cache it
when the shipped file is missing): ``lm-teacher`` (width 128, 4 blocks, 0.8M parameters) on
documents sampled from the synthetic language of ``kdcore.language``, with cross-entropy, seeded.
The figures it prints (held-out bits per character beside the language's exact entropy) are
stored in the file's metadata with its training history.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdcore.gpt import save_lm  # noqa: E402
from kdcore.lm import floor_bits, sample_texts, score  # noqa: E402
from kdcore.presets_lm import ASSET, N_WORDS, TeacherRecipe, train_lm_teacher  # noqa: E402
from kdcore.train import Callback  # noqa: E402


class Print(Callback):
    def on_epoch(self, record, progress) -> None:
        print(
            f"epoch {record.epoch}: loss {record.losses['total']:.4f}, "
            f"{record.extra['bits_per_char']:.4f} bits/char, {record.seconds:.0f} s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSET, help="the .safetensors to write")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    recipe = TeacherRecipe()
    model, result = train_lm_teacher(recipe, args.device, [Print()])
    if not result.ok:
        print(f"training {result.status}: {result.message}", file=sys.stderr)
        return 1
    test = sample_texts(2000, N_WORDS, 12345)
    floor = floor_bits(test)
    figures = score(model.cpu(), test.char)
    history = [r.to_dict() for r in result.history]
    save_lm(model, args.out, {"history": history, "seconds": round(result.seconds, 1),
                              "recipe": asdict(recipe),
                              "test": figures, "floor_bits": round(floor, 5)})  # fmt: skip
    bits = figures["bits_per_char"]
    print(
        f"wrote {args.out}: {bits:.4f} bits/char on 2,000 held-out documents, the language's "
        f"entropy {floor:.4f} (KL {bits - floor:.4f}); {result.seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
