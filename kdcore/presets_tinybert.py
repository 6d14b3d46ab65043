"""Distilling hidden states inside a transformer: TinyBERT's layer-to-layer loss through a learnt
projector, on the language models of :mod:`kdcore.presets_lm`.

One run trains the 62k-parameter ``lm-student`` (2 blocks, width 48) six ways from the same
seed: on real text alone, by word-level KD, by TinyBERT's hidden-state loss on top of the real
text's cross-entropy under the paper's three layer mappings onto the teacher's 4 blocks of width
128 (uniform, top, bottom), and by the uniform mapping's hidden states together with TinyBERT's
prediction-layer term (the teacher's next-character distributions). Besides the language-model
figures every model gets the R² of a least-squares linear read-out of each teacher layer from
each of its own layers on held-out text (how much of the teacher's hidden states it carries, up
to a linear map), and each hidden-state student's projector records its singular values every
epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .gpt import LM_MODELS, TinyGPT
from .lm import Texts
from .lm_distill import CHUNK
from .lm_methods import get_lm_method
from .losses.tinybert import linear_fit_r2
from .method import param
from .presets_lm import KL_TEACHER, KL_TRUE, LMRun, LMSetting
from .runner import Measure, Preset, RunContext, finish, register

# model name -> (method, its parameters)
TINYBERT = {
    "hard": ("lm-hard", {}),
    "word_kd": ("word-kd", {}),
    "hidden_uniform": ("tinybert", {"mapping": "uniform"}),
    "hidden_top": ("tinybert", {"mapping": "top"}),
    "hidden_bottom": ("tinybert", {"mapping": "bottom"}),
    # TinyBERT's layers and its prediction layer together (eq. 7, 8 and 10, α = 1 as its λ_m)
    "hidden_pred": ("tinybert", {"mapping": "uniform", "alpha": 1.0}),
}


@dataclass(frozen=True)
class TinyBERTConfig(LMSetting):
    lam: float = param(1.0, "λ, weight of the hidden-state terms", 0.0, 1000.0)


def hidden_states(model: TinyGPT, test: Texts) -> list[torch.Tensor]:
    """The model's residual stream after its embeddings and after each block on the held-out
    documents: one (N, L-1, D) tensor per layer (:meth:`TinyGPT.streams`, no head computed)."""
    ids = test.char.ids[:, :-1]
    layers = range(model.cfg.layers + 1)
    with torch.no_grad():
        parts = [model.streams(ids[i : i + CHUNK], layers) for i in range(0, len(ids), CHUNK)]
    return [torch.cat(layer) for layer in zip(*parts, strict=True)]


def readout_r2(teacher: list[torch.Tensor], model: TinyGPT, test: Texts) -> list[list[float]]:
    """R²[m][n]: how much of the teacher's layer n a least-squares linear map reads from the
    model's layer m on the held-out documents (:func:`linear_fit_r2`; 0 = the embeddings)."""
    mask = test.char.mask
    own = hidden_states(model, test)
    return [[round(linear_fit_r2(s, t, mask), 4) for t in teacher] for s in own]


def run_tinybert(cfg: TinyBERTConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    run = LMRun.start(cfg, ctx, len(TINYBERT))
    teacher = hidden_states(run.teacher, run.test)  # the teacher's side of every read-out, once

    def inside(model: TinyGPT) -> dict:
        r2 = readout_r2(teacher, model, run.test)
        return {"readout_r2": r2, "r2_last": r2[-1][-1]}

    for name, (method, params) in TINYBERT.items():
        if "lam" in get_lm_method(method).params_dict(params):
            params = {**params, "lam": cfg.lam}
        run.student(name, "lm-student", method, params, more=inside)
    return finish(TINYBERT_PRESET, cfg, ctx, t0)


R2_LAST = Measure(
    "r2_last", "R² of the teacher's last hidden state read linearly from the student's",
    lower_is_better=False, digits=4, better="more of the teacher's last hidden state carried",
)  # fmt: skip

TINYBERT_PRESET = register(
    Preset(
        name="tinybert-hidden",
        title="TinyBERT: distilling the hidden states inside a transformer",
        summary="The character-level teacher's hidden states, layer by layer, taught through a "
        "learnt linear projector to a student of half its depth and three-eighths of its "
        "width, under TinyBERT's three layer mappings (uniform, top, bottom) and with its "
        "prediction-layer term too, beside real text only and word-level KD.",
        source="Jiao et al. 2020 (arXiv:1909.10351), §3.1, eq. (7), (8) and (10), and its study "
        "of mapping functions",
        paper={
            "test_errors": {},
            "claims": [
                "TinyBERT: a 4-layer student distilled layer by layer (embeddings, attention, "
                "hidden states through a learnt W_h, predictions) keeps more than 96.8% of "
                "BERT-base's performance on GLUE while 7.5 times smaller and 9.4 times faster "
                "at inference (Jiao et al. 2020, abstract).",
                "Of the three layer mappings the paper compares, the uniform one, which takes "
                "knowledge from the teacher's bottom to its top layers, does best (Jiao et al. "
                "2020, mapping-function study).",
            ],
        },
        config=TinyBERTConfig(),
        runner=run_tinybert,
        seed_measures=(KL_TRUE, R2_LAST, KL_TEACHER),
        seed_pairs={
            m: "hard" for m, (method, _) in TINYBERT.items() if not get_lm_method(method).baseline
        },
        differences="TinyBERT distils BERT-base (12 blocks of width 768) into 4 blocks of width "
        "312 in two stages, general distillation on Wikipedia then task-specific distillation "
        "on augmented GLUE data, with attention and prediction terms beside the hidden states; "
        "here a causal character model of 0.8M parameters teaches a "
        f"{LM_MODELS['lm-student'][1]}-block student on a synthetic language with the embedding "
        "and hidden-state terms alone, added to the next-character cross-entropy, one projector "
        "serving every layer as in the official code (the paper writes a separate W_e for the "
        "embeddings), and the figures are exact KLs from the truth, not task accuracies. "
        "TinyBERT's attention term compares head by head and needs equal head counts; the "
        "MiniLM preset distils attention here. Over five seeds (the table under the run) the "
        "uniform- and top-mapped students end closer to the truth than the student on real "
        "text alone and than word-level KD at all five seeds (KL from the truth 2.49 and 2.41 "
        "thousandths of a bit per character against 4.25 and 3.12; the teacher's 2.75); the "
        "bottom-mapped one, never shown the teacher's last two blocks, beats real text alone at "
        "every seed and word-level KD at none (3.81). The paper finds the uniform mapping best; "
        "here uniform and top are within each other's noise (top ahead at 3 seeds of 5). A "
        "linear map reads the teacher's last hidden state from the uniform and top students' "
        "last blocks with R² 0.9950 and 0.9951, against 0.9440 from the student on real text "
        "alone. TinyBERT's prediction-layer term added to the uniform mapping brings the "
        "student nearer the teacher at every seed (KL to the teacher 0.98 against 1.43 "
        "thousandths of a nat per character) but no nearer the truth (2.48 against 2.49, ahead "
        "at 2 seeds of 5): the teacher, itself 2.75 from the truth, is no better a guide to it.",
    )
)
