"""Speculative decoding with a distilled draft: ``speculative-draft``.

Leviathan et al. 2023 (arXiv:2211.17192) let a small draft propose γ tokens that the large model
checks in one call; the output keeps the large model's distribution whatever the draft, and the
draft only decides how many tokens each expensive call yields. DistillSpec (Zhou et al. 2024,
arXiv:2310.08461) distils the draft from the target to raise that number. This preset trains the
same ``lm-draft`` on real text, then trains copies of it as long again on real text, by forward KL
to the teacher on real text, and by on-policy JSD on its own samples; then it measures, for each:
the expected acceptance α on held-out text (the mean of Σ_x min(p, q), one minus the total
variation), the measured acceptance and tokens per teacher call of speculative sampling, and its
wall-clock time against plain sampling from the teacher on this machine. A first-word tally
beside the teacher's exact first-word probabilities shows that the texts keep the teacher's
distribution.

JSON: ``acceptance_rate: {draft: float}`` (accepted / examined proposals, Leviathan et al.'s α),
``tokens_per_teacher_call: {draft: float}``, ``expected_acceptance``, ``expected_tokens``
(Eq. 1 at the expected α), ``speedup`` (plain seconds per token / speculative),
``seconds_per_token`` (with ``teacher`` for plain sampling), ``first_word`` and ``traces`` (one
generation per draft, round by round, with each token's text, for the page's animation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .gpt import TinyGPT
from .language import LANGUAGE, PROMPT
from .lm import logits_of, sample_report
from .lm_methods import get_lm_method
from .method import param
from .presets_lm import KL_TRUE, N_WORDS, LMRun, LMSetting
from .runner import Measure, Preset, RunContext, finish, register
from .speculative import (
    SpecStats,
    acceptance_rate,
    expected_tokens_per_call,
    sample_plain,
    speculative_sample,
)  # fmt: skip

# model name -> (method, its parameters, trained on from draft_hard's weights). As in
# DistillSpec, distillation starts from a draft already trained on the data; "draft_hard_long"
# trains as long on real text, so a distilled draft's gain is not just its extra epochs.
DRAFTS = {
    "draft_hard": ("lm-hard", {}, False),
    "draft_hard_long": ("lm-hard", {}, True),
    "draft_kd": ("word-kd", {"alpha": 1.0}, True),
    "draft_on_policy": ("on-policy", {"beta": 0.5}, True),
}

# what a seed study keeps of each draft: the headline of speculative sampling
ACCEPTANCE = Measure("acceptance_rate", "acceptance rate α of speculative sampling",
                     lower_is_better=False, digits=4, better="a higher acceptance rate",
                     extract=lambda result: dict(result.get("acceptance_rate") or {}))  # fmt: skip


@dataclass(frozen=True)
class SpecConfig(LMSetting):
    epochs: int = param(12, "Epochs per draft", 1, 1000)
    gamma: int = param(4, "γ, draft tokens per round", 1, 16)
    generations: int = param(60, "Texts generated for the timing", 1, 2000)
    first_words: int = param(400, "First words drawn per sampler (the distribution check)", 1,
                             100_000)  # fmt: skip


def _as_fn(model: TinyGPT):
    @torch.no_grad()
    def logits(ids: torch.Tensor) -> torch.Tensor:
        return model(ids)

    return logits


def _stop(seq: list[int]) -> bool:
    space = LANGUAGE.chars.index[" "]
    return seq[len(PROMPT) :].count(space) >= N_WORDS


@torch.no_grad()
def expected_alpha(teacher_logits: torch.Tensor, draft: TinyGPT, ids: torch.Tensor, mask) -> float:
    """Mean over counted positions of Σ_x min(p(x), q(x)): the probability that the draft's
    token is accepted, on held-out true text (``teacher_logits``: the teacher's on ``ids``)."""
    p = teacher_logits.softmax(-1)
    q = logits_of(draft, ids).softmax(-1)
    return float(acceptance_rate(p, q)[mask].mean())


def first_words(texts: list[str]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for t in texts:
        w = t.split(" ")[0] if t else ""
        counts[w] = counts.get(w, 0) + 1
    return {w: round(c / max(len(texts), 1), 4) for w, c in sorted(counts.items())}


@torch.no_grad()
def teacher_first_word(teacher: TinyGPT) -> dict[str, float]:
    """The teacher's exact probability of each lexicon word opening a document."""
    out = {}
    for w in LANGUAGE.words:
        ids = torch.tensor([LANGUAGE.chars.encode(PROMPT + w + " ")])
        ids = ids.to(next(teacher.parameters()).device)
        logp = teacher(ids[:, :-1]).log_softmax(-1)[0, len(PROMPT) - 1 :]  # (len(w)+1, V)
        p = float(logp.gather(1, ids[0, len(PROMPT) :, None]).sum().exp())
        if p >= 1e-4:
            out[w] = round(p, 4)
    return out


def _generate(sampler, n: int, seed: int, device) -> tuple[list[str], SpecStats, int]:
    """``n`` documents from ``sampler(prefix, generator)``: their texts, summed costs (with the
    first document's trace) and the number of rejected proposals."""
    g = torch.Generator(device=device).manual_seed(seed)
    prefix = torch.tensor(LANGUAGE.chars.encode(PROMPT), device=device)
    sampler(prefix, torch.Generator(device=device).manual_seed(seed + 1))  # warm-up, not timed
    total, texts, rejected = SpecStats(), [], 0
    for _ in range(n):
        ids, stats = sampler(prefix, g)
        texts.append(LANGUAGE.chars.decode(ids[len(PROMPT) :].tolist()))
        for f in ("target_calls", "draft_calls", "proposed", "accepted", "tokens", "rounds"):
            setattr(total, f, getattr(total, f) + getattr(stats, f))
        total.seconds += stats.seconds
        if not total.trace:
            total.trace = [dict(r, text=[LANGUAGE.chars.chars[i] for i in r["proposed"]],
                                next_text=LANGUAGE.chars.chars[r["next"]])
                           for r in stats.trace]  # fmt: skip
        rejected += stats.rejected
    return texts, total, rejected


def _first_word_done(seq: list[int]) -> bool:
    return seq[len(PROMPT) :].count(LANGUAGE.chars.index[" "]) >= 1


def run_speculative(cfg: SpecConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    run = LMRun.start(cfg, ctx, len(DRAFTS))
    drafts: dict[str, TinyGPT] = {}
    for name, (method, params, more) in DRAFTS.items():
        start = drafts["draft_hard"] if more else None
        drafts[name] = run.student(name, "lm-draft", method, params, start=start)
    teacher, dev = run.teacher, ctx.device
    n_new = LANGUAGE.max_chars(N_WORDS) - len(PROMPT)

    def plain(stop):
        return lambda x, g: sample_plain(_as_fn(teacher), x, n_new, 1.0, g, stop)

    def spec(draft):
        return lambda stop: lambda x, g: speculative_sample(
            _as_fn(teacher), _as_fn(draft), x, n_new, cfg.gamma, 1.0, g, stop)  # fmt: skip

    samplers = {"plain": plain, **{name: spec(d) for name, d in drafts.items()}}
    out = {k: {} for k in ("acceptance_rate", "tokens_per_teacher_call", "expected_acceptance",
                           "expected_tokens", "speedup", "samples", "traces")}  # fmt: skip
    words, per_token = {"teacher": teacher_first_word(teacher)}, {}
    for i, (name, sampler) in enumerate(samplers.items()):
        texts, stats, rejected = _generate(sampler(_stop), cfg.generations, cfg.seed, dev)
        out["samples"][name] = sample_report(texts)
        # the first word alone, from many short generations with a seed of its own per sampler
        firsts, _, _ = _generate(sampler(_first_word_done), cfg.first_words, cfg.seed + 1000 * i,
                                 dev)  # fmt: skip
        words[name] = first_words(firsts)
        per_token[name] = stats.seconds / max(stats.tokens, 1)
        if name == "plain":
            continue
        alpha = expected_alpha(run.teacher_test, drafts[name], run.test.char.ids,
                               run.test.char.mask)  # fmt: skip
        out["acceptance_rate"][name] = round(stats.accepted / max(stats.accepted + rejected, 1), 4)
        out["tokens_per_teacher_call"][name] = round(stats.tokens_per_target_call, 4)
        out["expected_acceptance"][name] = round(alpha, 4)
        out["expected_tokens"][name] = round(expected_tokens_per_call(alpha, cfg.gamma), 4)
        out["speedup"][name] = round(per_token["plain"] / per_token[name], 3)
        out["traces"][name] = stats.trace
    per_token["teacher"] = per_token.pop("plain")
    out["seconds_per_token"] = {k: round(v, 6) for k, v in per_token.items()}
    out["first_word"] = words
    out["gamma"] = cfg.gamma
    ctx.extra.update(out)
    return finish(SPEC_PRESET, cfg, ctx, t0)


SPEC_PRESET = register(
    Preset(
        name="speculative-draft",
        title="Speculative decoding with a distilled draft",
        summary="The character-level teacher sped up by a 17k-parameter draft trained on real "
        "text, then trained further on real text, by forward KL to the teacher or on-policy; "
        "acceptance rate, tokens per teacher call and wall-clock speed-up of each, with the "
        "output checked against the teacher's own distribution.",
        source="Leviathan et al. 2023 (arXiv:2211.17192), Tables 2 and 3; Zhou et al. 2024 "
        "DistillSpec (arXiv:2310.08461), abstract",
        paper={
            "test_errors": {},
            "t5_xxl_en_de": {  # Leviathan et al. Table 2: draft, temperature -> (γ, α, speed-up)
                "T5-small, t=0": [7, 0.75, 3.4],
                "T5-base, t=0": [7, 0.8, 2.8],
                "T5-large, t=0": [7, 0.82, 1.7],
                "T5-small, t=1": [7, 0.62, 2.6],
                "T5-base, t=1": [5, 0.68, 2.4],
                "T5-large, t=1": [3, 0.71, 1.4],
            },
            "claims": [
                "Speculative sampling gave 2X-3X on T5-XXL with identical outputs (Leviathan "
                "et al. 2023, abstract); drafts two orders of magnitude smaller reached α of "
                "0.5 to 0.9 (§4).",
                "Distilling the draft from the target (DistillSpec) gave 10-45% speed-ups over "
                "standard speculative decoding (Zhou et al. 2024, abstract).",
            ],
        },
        config=SpecConfig(),
        runner=run_speculative,
        seed_measures=(ACCEPTANCE, KL_TRUE),
        # a distilled draft against the one trained as long on real text, from the same start
        seed_pairs={
            m: "draft_hard_long"
            for m, (method, _, _) in DRAFTS.items()
            if not get_lm_method(method).baseline
        },
        differences="The papers time T5-XXL (11B) on accelerators with a key/value cache; here "
        "a 0.8M-parameter teacher and a 17k-parameter draft run on the CPU and recompute the "
        "whole context at every call, so the wall-clock speed-up mixes the saved teacher calls "
        "with Python overhead per call. DistillSpec's per-task acceptance tables are not quoted: "
        "they could not be checked.",
    )
)
