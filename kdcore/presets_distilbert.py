"""DistilBERT on the language models of :mod:`kdcore.presets_lm`: half the teacher's blocks,
started from its own, trained by the triple loss, and the paper's ablation of each part.

One run trains ``lm-half`` (the teacher's width 128 and 4 heads, 2 blocks of its 4) seven ways
from the same seed: on real text alone from random weights (the baseline), by DistilBERT's
triple loss from the teacher's blocks 1 and 3 (the paper's one of every two), with each of the
three terms removed in turn (Sanh et al. 2019, Table 4), by the triple loss from random weights
(Table 4's last row), and on real text alone from the teacher's blocks (the initialisation
without the teacher's losses). Besides the language-model figures every student records its
figures before the first step (``start_*``: the copied half of the teacher before training),
and the run times one pass of each model over the held-out text on this machine (Table 3's
comparison of inference time).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from .gpt import LM_MODELS, TinyGPT, build_lm, init_from
from .lm import Texts, logits_of, score
from .method import param
from .presets_lm import KL_TEACHER, KL_TRUE, LMRun, LMSetting
from .runner import Preset, RunContext, finish, register

ARCH = "lm-half"

# model name -> (method, its parameters); the ablations follow Table 4's rows
DISTILBERT = {
    "hard": ("lm-hard", {}),
    "distilbert": ("distilbert", {}),
    "no_kd": ("distilbert", {"alpha_ce": 0.0}),  # Ø - L_cos - L_mlm
    "no_cos": ("distilbert", {"alpha_cos": 0.0}),  # L_ce - Ø - L_mlm
    "no_lm": ("distilbert", {"alpha_lm": 0.0}),  # L_ce - L_cos - Ø
    "random_init": ("distilbert", {"init": "random"}),  # triple loss + random initialisation
    # not in the paper: the teacher's layers, then real text alone (the init without the losses)
    "init_only": ("distilbert", {"alpha_ce": 0.0, "alpha_cos": 0.0}),
}
# the passes over the held-out text timed per model; the fastest is kept (the machine is shared)
TIMED_PASSES = 3


@dataclass(frozen=True)
class DistilBERTConfig(LMSetting):
    # the copied half of the teacher should survive the first steps: after one epoch of six the
    # DistilBERT student was 0.027 bits per character from the truth at 3e-3 against 0.094 at
    # the other presets' 1e-2 (measured; it started at 0.157), and the teacher trained at 2e-3
    lr: float = param(3e-3, "Learning rate (AdamW)", 1e-6, 1.0)
    epochs: int = param(6, "Epochs per student", 1, 1000)


def pass_seconds(model: TinyGPT, ids: torch.Tensor) -> float:
    """The fastest of :data:`TIMED_PASSES` passes of ``model`` over ``ids`` (N, L), seconds."""
    best = float("inf")
    for _ in range(TIMED_PASSES):
        t0 = time.perf_counter()
        logits_of(model, ids)
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)


def kl_from_truth(model: TinyGPT, test: Texts, floor: float) -> float:
    """The model's exact KL from the language's truth on ``test``: its bits per character on the
    held-out text above their entropy ``floor``, rounded as the run records it."""
    return round(score(model.eval(), test.char)["bits_per_char"] - floor, 5)


def start_kls(teacher: TinyGPT, test: Texts, floor: float) -> dict[tuple[int, ...], float]:
    """For every choice of :data:`ARCH`'s depth in blocks among the teacher's (1 = first), the KL
    from the truth (bits per character on ``test``, above its entropy ``floor``) of the student
    started from them by :func:`kdcore.gpt.init_from`, before any training: which of the
    teacher's blocks make the best start."""
    layers = LM_MODELS[ARCH][1]
    out = {}
    for blocks in itertools.combinations(range(1, teacher.cfg.layers + 1), layers):
        model = build_lm(ARCH, teacher.cfg.vocab, teacher.cfg.block).to(test.char.ids.device)
        init_from(model, teacher, blocks)
        out[blocks] = kl_from_truth(model, test, floor)
    return out


def run_distilbert(cfg: DistilBERTConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    run = LMRun.start(cfg, ctx, len(DISTILBERT))
    test = run.test.char

    def start(model: TinyGPT) -> dict:  # the student before its first step
        first = score(model, test)
        return {"start_bits_per_char": first["bits_per_char"],
                "start_kl_true": round(first["bits_per_char"] - run.floor, 5)}  # fmt: skip

    def timed(model: TinyGPT) -> dict:
        return {"pass_seconds": pass_seconds(model, test.ids)}

    for name, (method, params) in DISTILBERT.items():
        run.student(name, ARCH, method, params, before=start, more=timed)
    ctx.models["teacher"].update(timed(run.teacher))
    return finish(DISTILBERT_PRESET, cfg, ctx, t0)


DISTILBERT_PRESET = register(
    Preset(
        name="distilbert",
        title="DistilBERT: half the layers, started from the teacher's, and the triple loss",
        summary="A student of the character-level teacher's width and half its blocks, started "
        "from one of every two of them and trained by DistilBERT's triple loss (soft targets, "
        "real text, the direction of the last hidden states), beside the paper's ablation: "
        "each term removed in turn, the triple loss from random weights, and real text alone.",
        source="Sanh, Debut, Chaumond & Wolf 2019 (arXiv:1910.01108), §2-3, Tables 1, 3 and 4",
        paper={
            "test_errors": {},
            "glue_macro_score": {"BERT-base": 79.5, "DistilBERT": 77.0},
            "ablation_glue_delta": {
                "no_kd": -2.96,
                "no_cos": -1.46,
                "no_lm": -0.31,
                "random_init": -3.69,
            },
            "params_millions": {"BERT-base": 110, "DistilBERT": 66},
            "inference_seconds": {"BERT-base": 668, "DistilBERT": 410},
            "claims": [
                "DistilBERT keeps 97% of BERT-base's GLUE macro-score (77.0 against 79.5) with "
                "40% fewer parameters, and runs 60% faster (Sanh et al. 2019, Tables 1 and 3).",
                "Removing the soft-target loss costs 2.96 GLUE points, the cosine loss 1.46, the "
                "masked-LM loss 0.31, and starting from random weights instead of the "
                "teacher's layers 3.69: the initialisation matters most (Table 4).",
            ],
        },
        config=DistilBERTConfig(),
        runner=run_distilbert,
        seed_measures=(KL_TRUE, KL_TEACHER),
        # the ablations against the full triple loss, the full recipe against real text alone
        seed_pairs={
            **{m: "distilbert" for m in DISTILBERT if m not in ("hard", "distilbert")},
            "distilbert": "hard",
        },
        differences="DistilBERT halves BERT-base (12 blocks of width 768) and distils it for "
        "about 90 hours on 8 V100s over Wikipedia and the Toronto Book Corpus with the masked-LM "
        "objective, then fine-tunes on GLUE; here the causal character model of 0.8M "
        f"parameters ({LM_MODELS['lm-teacher'][1]} blocks of width "
        f"{LM_MODELS['lm-teacher'][0]}) is halved into {LM_MODELS[ARCH][1]} blocks of the same "
        "width on a synthetic language, the masked-LM term is the causal LM's (as DistilGPT2 in "
        "the same code), the cosine loss compares the last block's outputs before the final "
        "LayerNorm, and the figures are exact KLs from the truth, not GLUE scores. The loss "
        "weights and T = 2 are the official code's defaults; the learning rate, 3e-3, is this "
        "project's. Over five seeds (the table under the run) DistilBERT ends closer to the "
        "truth than real text alone from random weights at every seed (KL from the truth 2.41 "
        "thousandths of a bit per character against 4.92; the teacher's 2.75). Two changes to "
        "the recipe cost at every seed: starting from random weights (2.85), as in the paper, "
        "and dropping the real text's loss (2.87), which the paper finds the least important "
        "part (0.31 GLUE points). Dropping the soft targets (2.41, ahead at 2 seeds of 5) or "
        "the cosine loss (2.60, ahead at 3) is within the noise here, where the paper loses "
        "2.96 and 1.46 points, though without the soft targets the student ends far from the "
        "teacher (KL to the teacher 1.78 against 0.62 thousandths of a nat per character, "
        "farther at every seed). The teacher is no closer to the truth than its students, so "
        "matching it counts for less than in the paper, and the real text for more.",
    )
)
