"""Distilling language models: word- vs sequence-level KD, on-policy KD, a distilled draft.

Every preset here uses the synthetic language of :mod:`kdcore.language` (ten-word documents
whose exact probabilities are known) and the character-level ``lm-teacher`` shipped in
``assets/models/lm-teacher.safetensors`` (trained by ``scripts/train_lm_teacher.py``; retrained
and cached when the file is missing or unreadable). Students are ``lm-student`` (about a
thirteenth of the teacher's parameters), speculative drafts ``lm-draft``.

Each model's summary carries ``bits_per_char`` on held-out true text beside the language's exact
entropy (``floor_bits``), ``kl_true`` (the difference: the sequence-level KL from the truth per
character), ``kl_teacher``, the share of grammatical and distinct samples and their exact
likelihood (:func:`kdcore.lm.measure`), so results from students of different tokenizers read on
one scale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoint import CheckpointError, cache_dir
from .gpt import TinyGPT, build_lm, load_lm, n_params, save_lm
from .language import LANGUAGE
from .lm import (
    LMTrainConfig,
    Texts,
    block_for,
    continue_texts,
    fit_lm,
    floor_bits,
    logits_of,
    measure,
    sample_texts,
    score,
    texts_of,
)  # fmt: skip
from .lm_distill import TEACHER_TOKENIZER, Transfer, lm_step
from .lm_methods import get_lm_method
from .method import param
from .runner import Measure, Preset, RunContext, Stopped, finish, register

N_WORDS = 10  # words per document; the shipped teacher's block is sized for it
ASSET = Path(__file__).resolve().parent.parent / "assets" / "models" / "lm-teacher.safetensors"


@dataclass(frozen=True)
class TeacherRecipe:
    """How the shipped teacher was trained (and how a missing one is retrained)."""

    docs: int = 8000
    epochs: int = 5
    lr: float = 2e-3
    batch_size: int = 64
    seed: int = 1000


def train_lm_teacher(recipe: TeacherRecipe, device="cpu", callbacks=(), cancel=None, name=""):
    """The ``lm-teacher`` trained on ``recipe.docs`` true documents with cross-entropy.
    Returns (model, FitResult)."""
    torch.manual_seed(recipe.seed)
    train = _to(sample_texts(recipe.docs, N_WORDS, recipe.seed), device)
    test = sample_texts(500, N_WORDS, recipe.seed + 1).char.to(device)
    model = build_lm("lm-teacher", LANGUAGE.chars.vocab_size, block_for("char", N_WORDS))
    model = model.to(device)
    step = lm_step("lm-hard", None, "char", Transfer(None, train, N_WORDS))
    cfg = LMTrainConfig(recipe.epochs, recipe.batch_size, recipe.lr, seed=recipe.seed)
    result = fit_lm(model, len(train.char), step, cfg, lambda m: score(m, test), callbacks, cancel,
                    name)  # fmt: skip
    return model.eval(), result


def load_teacher(ctx: RunContext, floor: float, test: Texts) -> TinyGPT:
    """The shipped teacher, else one trained earlier with the recipe, else trained now."""
    recipe = TeacherRecipe()
    key = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()[:12]
    cached = cache_dir() / "teachers" / f"lm-teacher-{key}.safetensors"
    ctx.monitor.on_model_start("teacher", len(ctx.history), ctx.count)
    for path in (ASSET, cached):
        try:
            model, meta = load_lm(path, ctx.device)
            ctx.history["teacher"] = meta.get("history", [])
            seconds, note = meta.get("seconds", 0.0), f"loaded from {path.name}"
            break
        except CheckpointError:
            continue
    else:  # neither file is there or readable: train it, as the script would
        model, result = train_lm_teacher(recipe, ctx.device, [ctx.monitor], ctx.cancel, "teacher")
        ctx.history["teacher"] = [r.to_dict() for r in result.history]
        if not result.ok:
            raise Stopped("teacher", result)
        seconds, note = result.seconds, "trained now (no shipped teacher)"
        with contextlib.suppress(OSError):  # a read-only cache costs the cache, not the run
            save_lm(model, cached, {"history": ctx.history["teacher"], "seconds": seconds})
    summary = {"role": "teacher", "arch": "lm-teacher", "method": "lm-hard", "tokenizer": "char",
               "params": n_params(model), "seconds": round(seconds, 2), "source": note,
               **score(model, test.char)}  # fmt: skip
    summary["kl_true"] = round(summary["bits_per_char"] - floor, 5)
    ctx.done("teacher", summary)
    return model.eval()


@dataclass(frozen=True)
class LMSetting:
    """What every language-model preset's config has; each preset adds its own fields."""

    epochs: int = param(10, "Epochs per student", 1, 1000)
    docs: int = param(4000, "Training documents", 16, 200_000)
    test_docs: int = param(500, "Held-out documents", 50, 20_000)
    # Tiny transformers on 4,000 documents: at 1e-2 a draft reached 0.75 bits/char in 4 epochs,
    # at 3e-3 it was still at 2.5 after one (measured; the language's floor is 0.64)
    lr: float = param(1e-2, "Learning rate (AdamW)", 1e-6, 1.0)
    batch_size: int = param(64, "Batch size (documents)", 1, 4096)
    samples: int = param(200, "Texts each model writes to be judged", 10, 5000)
    seed: int = param(0, "Seed", 0, 2**31 - 1)


@dataclass
class LMRun:
    """One run's data, teacher and measurements, shared by its students."""

    ctx: RunContext
    cfg: LMSetting
    train: Texts
    test: Texts
    floor: float
    teacher: TinyGPT
    transfer: Transfer
    teacher_greedy: list[str]
    teacher_test: torch.Tensor  # the teacher's logits on the test documents (N, L-1, V), once

    @classmethod
    def start(cls, cfg, ctx: RunContext, count: int) -> LMRun:
        ctx.count = count + 1
        train = _to(sample_texts(cfg.docs, N_WORDS, cfg.seed), ctx.device)
        test = _to(sample_texts(cfg.test_docs, N_WORDS, cfg.seed + 500_000), ctx.device)
        floor = floor_bits(test)
        teacher = load_teacher(ctx, floor, test)
        greedy = texts_of(continue_texts(teacher, test.char, "char", N_WORDS, 2, True), "char")
        ctx.extra.update(floor_bits=round(floor, 5), n_words=N_WORDS, training_docs=cfg.docs)
        ctx.models["teacher"].update(measure(
            teacher, "char", test, N_WORDS, None, floor, cfg.samples, seed=cfg.seed,
            teacher_greedy=greedy))  # fmt: skip
        transfer = Transfer(teacher, train, N_WORDS, cfg.seed)
        t_test = logits_of(teacher, test.char.ids)
        return cls(ctx, cfg, train, test, floor, teacher, transfer, greedy, t_test)

    def student(self, name: str, arch: str, method: str, params=None, tokenizer: str = "char",
                role: str | None = None, start: TinyGPT | None = None,
                more: Callable[[TinyGPT], dict] | None = None,
                before: Callable[[TinyGPT], dict] | None = None) -> TinyGPT:  # fmt: skip
        """Train one student from the run's seed (or from a copy of ``start``'s weights, or as
        its method starts it) and record its measurements, with what ``before(model)`` adds
        before the first step and ``more(model)`` after the last."""
        m = get_lm_method(method)
        torch.manual_seed(self.cfg.seed + 1)
        vocab = LANGUAGE.tokenizer(tokenizer).vocab_size
        model = build_lm(arch, vocab, block_for(tokenizer, N_WORDS)).to(self.ctx.device)
        if start is not None:
            model.load_state_dict(start.state_dict())
        elif m.init is not None:  # the method starts the student (DistilBERT: teacher's layers)
            model = m.init(m.make_params(params), model, self.teacher)
        step = lm_step(method, params, tokenizer, self.transfer, model.cfg)
        first = before(model) if before is not None else {}
        tcfg = LMTrainConfig(self.cfg.epochs, self.cfg.batch_size, self.cfg.lr, seed=self.cfg.seed)
        test = self.test.tokens(tokenizer)
        result = self.ctx.train(name, lambda cbs: fit_lm(
            model, len(self.train.char), step, tcfg, lambda mdl: {**score(mdl, test),
            **step.figures()}, cbs, self.ctx.cancel, name, modules=step.modules))  # fmt: skip
        summary = {
            "role": role or ("baseline" if m.baseline else "student"), "arch": arch,
            "method": method, "method_params": m.params_dict(params), "tokenizer": tokenizer,
            "params": n_params(model), "seconds": round(result.seconds, 2),
            **measure(model, tokenizer, self.test, N_WORDS, self.teacher, self.floor,
                      self.cfg.samples, seed=self.cfg.seed, teacher_greedy=self.teacher_greedy,
                      teacher_logits=self.teacher_test),
            **first, **(more(model) if more is not None else {}),
        }  # fmt: skip
        self.ctx.done(name, summary)
        return model.eval()


def _to(texts: Texts, device) -> Texts:
    return Texts(texts.words, texts.char.to(device), texts.word.to(device))


# What a seed study of these presets keeps per model (scripts/paper_seeds.py): the gains here are
# thousandths of a bit, so whether one holds at other seeds is the question. The seed draws the
# held-out documents too, and their entropy moves every model's bits per character together
# (the fixed teacher's from 0.6457 to 0.6532 over five seeds), so the headline is the excess
# over that entropy: the exact KL from the truth.
KL_TRUE = Measure("kl_true", "KL from the truth, bits per character", digits=5,
                  better="a smaller KL from the truth")  # fmt: skip
GREEDY_MATCH = Measure("greedy_match", "greedy continuations equal to the teacher's",
                       lower_is_better=False, digits=4,
                       better="more greedy continuations equal to the teacher's")  # fmt: skip
KL_TEACHER = Measure("kl_teacher", "KL to the teacher on true text, nats per token", digits=5,
                     better="a smaller KL to the teacher")  # fmt: skip
SAMPLE_BITS = Measure("sample_nll", "bits per character of its own texts under the truth",
                      digits=5, better="likelier own texts under the truth")  # fmt: skip


# ----------------------------------------------------------------------------- word vs sequence

# model name -> (method, its parameters, tokenizer). The word-tokenizer students cannot read the
# teacher's character distributions: they learn from its text (sequence-level) or by ULD.
WORD_VS_SEQ = {
    "hard": ("lm-hard", {}, "char"),
    "word_kd": ("word-kd", {}, "char"),
    "seq_kd_greedy": ("seq-kd", {"decode": "greedy"}, "char"),
    "seq_kd_sample": ("seq-kd", {"decode": "sample"}, "char"),
    "seq_word_kd": ("seq-word-kd", {"decode": "greedy"}, "char"),
    "wordtok_hard": ("lm-hard", {}, "word"),
    "wordtok_seq_kd": ("seq-kd", {"decode": "sample"}, "word"),
    "wordtok_uld": ("uld", {}, "word"),
}
MISMATCH = ("word-kd", "word")  # tried on the word-tokenizer student: refused, and why


@dataclass(frozen=True)
class WordSeqConfig(LMSetting):
    prompt_words: int = param(3, "True words before the teacher writes", 0, 9)


def run_word_vs_seq(cfg: WordSeqConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    run = LMRun.start(cfg, ctx, len(WORD_VS_SEQ))
    try:
        lm_step(MISMATCH[0], None, MISMATCH[1], run.transfer)
        ctx.extra["tokenizer_mismatch"] = ""
    except ValueError as err:
        ctx.extra["tokenizer_mismatch"] = str(err)
    for name, (method, params, tok) in WORD_VS_SEQ.items():
        if "prompt_words" in get_lm_method(method).params_dict(params):
            params = {**params, "prompt_words": cfg.prompt_words}
        run.student(name, "lm-student", method, params, tok)
    sample = run.transfer.texts("teacher-greedy", cfg.prompt_words)
    ctx.extra["teacher_texts"] = {
        "greedy": texts_of(sample.ids[:5], TEACHER_TOKENIZER),
        "sample": texts_of(run.transfer.texts("teacher-sample", cfg.prompt_words).ids[:5],
                           TEACHER_TOKENIZER),
        "corpus": texts_of(run.train.char.ids[:5], TEACHER_TOKENIZER),
    }  # fmt: skip
    return finish(WORD_VS_SEQ_PRESET, cfg, ctx, t0)


WORD_VS_SEQ_PRESET = register(
    Preset(
        name="word-vs-sequence-kd",
        title="Word- vs sequence-level KD, and a student with another tokenizer",
        summary="A character-level transformer teacher and eight 62k-parameter students on a "
        "synthetic language with known probabilities: real text only, word-level KD, "
        "sequence-level KD on the teacher's greedy and sampled continuations, both combined; "
        "then a word-tokenizer student, which can only learn from the teacher's text or by ULD.",
        source="Kim & Rush 2016 (arXiv:1606.07947), Table 1; Boizard et al. 2024 "
        "(arXiv:2402.12030)",
        paper={
            "test_errors": {},
            "wmt14_en_de_bleu_greedy_beam": {
                "teacher 4x1000": [17.7, 19.5],
                "student 2x500": [14.7, 17.6],
                "word-kd": [15.4, 17.7],
                "seq-kd": [18.9, 19.0],
                "seq-kd + seq-inter + word-kd": [18.8, 19.2],
            },
            "seq_kd_perplexity": {"student 2x500": 8.2, "seq-kd": 22.7},
            "greedy_output_probability": {"student 2x500": 0.009, "seq-kd": 0.169},
            "claims": [
                "Sequence-level KD gains far more than word-level KD under greedy decoding "
                "(+4.2 BLEU against +0.7 for the 2x500 English-German student), so the student "
                "no longer needs beam search.",
                "A sequence-level student has a much higher perplexity on real text (22.7 "
                "against 8.2) yet better translations: its greedy output carries 16.9% of its "
                "probability mass, against 0.9% for the baseline.",
                "Logit-level KD needs a shared vocabulary; ULD compares sorted distributions, "
                "so any tokenizers can be paired (Boizard et al. 2024).",
            ],
        },
        config=WordSeqConfig(),
        runner=run_word_vs_seq,
        seed_measures=(KL_TRUE, GREEDY_MATCH),
        # each student against the net of its tokenizer trained on real text alone
        seed_pairs={
            m: "wordtok_hard" if tok == "word" else "hard"
            for m, (method, _, tok) in WORD_VS_SEQ.items()
            if not get_lm_method(method).baseline
        },
        differences="Kim & Rush distil 4x1000 LSTM translation models on WMT 2014 and report "
        "BLEU; this is unconditional generation of a synthetic language, where BLEU has no "
        "reference, so the figures are bits per character on true text, the exact KL from the "
        "truth, and how many written texts are grammatical. Their task is conditional and "
        "nearly deterministic, ours open-ended: the teacher's greedy text repeats its likeliest "
        "sentence, which the sequence-level student then learns. The Table 1 rows quoted are "
        "the 2x500 student's (greedy / beam 5 BLEU), taken from copies of the table that agree; "
        "the perplexities and probabilities are quoted from §4's text as others reproduce it. "
        "Over five seeds (the table under the run), word-level KD's greedy text is the "
        "teacher's 80% of the time against 61% on real text alone, and sequence-level KD's 76%: "
        "it beats word-level KD at 2 seeds of 5, where Kim & Rush's Table 1 has it far ahead.",
    )
)


# ----------------------------------------------------------------------------- on-policy

# Every student starts from the same supervised model ("sft", trained on real text), as in GKD,
# where on-policy distillation fine-tunes a student already fine-tuned on the task: sampling from
# an untrained student gives noise for the teacher to score. Each then trains as long again.
ON_POLICY = {
    "hard": ("lm-hard", {}),
    "supervised_fkl": ("word-kd", {"alpha": 1.0}),
    "on_policy_fkl": ("on-policy", {"beta": 0.0}),
    "on_policy_jsd": ("on-policy", {"beta": 0.5}),
    "on_policy_rkl": ("on-policy", {"beta": 1.0}),
}


@dataclass(frozen=True)
class OnPolicyConfig(LMSetting):
    epochs: int = param(4, "Epochs of each phase (real text, then each method)", 1, 1000)
    lam: float = param(1.0, "λ, share of batches the student writes", 0.0, 1.0)


def run_on_policy(cfg: OnPolicyConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    run = LMRun.start(cfg, ctx, 1 + len(ON_POLICY))
    sft = run.student("sft", "lm-student", "lm-hard", role="baseline")
    for name, (method, params) in ON_POLICY.items():
        if "lam" in get_lm_method(method).params_dict(params):
            params = {**params, "lam": cfg.lam}
        run.student(name, "lm-student", method, params, start=sft)
    return finish(ON_POLICY_PRESET, cfg, ctx, t0)


ON_POLICY_PRESET = register(
    Preset(
        name="on-policy-kd",
        title="On-policy KD: forward KL, JSD and reverse KL on the student's own text",
        summary="A student first trained on real text, then trained as long again five ways: "
        "on real text, by forward KL to the teacher on real text (supervised KD), and on its "
        "own samples scored by the teacher with β = 0 (forward KL), 0.5 (JSD) and 1 "
        "(reverse KL).",
        source="Agarwal et al. 2024 (arXiv:2306.13649); Gu et al. 2024 (arXiv:2306.08543)",
        paper={
            "test_errors": {},
            "claims": [
                "GKD: training on the student's own samples, scored by the teacher, removes "
                "the mismatch between the text a student learns from and the text it writes; "
                "the best divergence depends on the task and the decoding (Agarwal et al. "
                "2024, abstract).",
                "MiniLLM: reverse KL keeps the student from overestimating the low-probability "
                "regions of the teacher's distribution (Gu et al. 2024, abstract).",
            ],
        },
        config=OnPolicyConfig(),
        runner=run_on_policy,
        seed_measures=(KL_TRUE, KL_TEACHER, SAMPLE_BITS),
        # each student against the one trained as long again on real text, from the same start
        seed_pairs={
            m: "hard" for m, (method, _) in ON_POLICY.items() if not get_lm_method(method).baseline
        },
        differences="Both papers distil T5 or GPT-family models of hundreds of millions of "
        "parameters on summarisation, translation and instructions, judged by ROUGE and "
        "GPT-4; this is a 62k-parameter student of a synthetic language judged by exact "
        "likelihoods, so only the direction of each effect can be compared. MiniLLM optimises "
        "sequence-level reverse KL by policy gradient; here reverse KL is GKD's token-level "
        "form on the student's samples (β = 1). The shipped run is seed 0, where every taught "
        "student ends farther from the truth than the one trained on real text alone; over five "
        "seeds (the table under the run) forward KL on real text, on-policy forward KL and JSD "
        "end closer at 4 of 5, and reverse KL at 2.",
    )
)
