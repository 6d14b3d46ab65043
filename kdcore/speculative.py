"""Speculative sampling: a small draft model proposes tokens, the large target model checks them.

Leviathan, Kalman & Matias (2023), "Fast Inference from Transformers via Speculative Decoding",
arXiv:2211.17192, Algorithm 1. The same method is Chen et al. (2023), "Accelerating Large
Language Model Decoding with Speculative Sampling", arXiv:2302.01318, Algorithm 2.

One round, from the context ``x`` so far, with target distributions ``p`` and draft ``q``:

1. The draft proposes γ tokens one after the other, ``x̃_i ~ q_i = q(· | x, x̃_1..x̃_{i-1})``
   (γ draft calls).
2. The target scores ``x + x̃_1..x̃_γ`` in ONE call. A causal LM returns next-token logits at
   every position, so that call gives γ+1 distributions ``p_1..p_{γ+1}``.
3. For i = 1..γ, accept ``x̃_i`` with probability ``min(1, p_i(x̃_i) / q_i(x̃_i))``; stop at the
   first rejection.
4. After a rejection at i, emit a token from ``norm(max(0, p_i − q_i))`` in place of ``x̃_i``
   (a "correction"); if all γ were accepted, emit a "bonus" token from ``p_{γ+1}``.

A round emits 1 to γ+1 tokens for one target call, and what it emits is distributed exactly as
ordinary sampling from ``p`` (Leviathan et al., Appendix A.1). For one position, with
``β = Σ_x min(p(x), q(x))`` the probability that the draft token is accepted,

    P(emit x) = q(x) min(1, p(x)/q(x)) + (1 − β) max(0, p(x) − q(x)) / (1 − β)
              = min(p(x), q(x)) + max(0, p(x) − q(x)) = p(x).

The draft only decides how many tokens each target call yields, never which tokens come out.
This is distillation's payoff at inference time: the closer a distilled student is to its
teacher, the larger β, the more tokens per expensive call.

Models are plain callables (:data:`LogitsFn`): token ids (1, T) long -> logits (1, T, V). There
is no KV cache: every call recomputes the whole context. That keeps the code short and the
quantity speculative decoding saves, the number of target calls, easy to read; the wall time in
:class:`SpecStats` is not what a cached implementation would measure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # ids (1, T) long -> logits (1, T, V)
StopFn = Callable[[list[int]], bool]  # the whole sequence so far, prefix included -> stop now?


@dataclass
class SpecStats:
    """What one generation cost. Every field is a plain number, ``trace`` plain dicts.

    ``trace`` has one dict per speculative round: ``proposed`` (the draft's token ids),
    ``accepted`` (how many of them passed the test, the leading ones), ``next`` (the token the
    target sampled after them), ``kind`` ("correction" after a rejection, "bonus" when all
    proposals were accepted) and ``kept`` (how many of the round's tokens went into the output:
    ``accepted + 1``, or fewer when ``stop`` fired inside the round). :func:`sample_plain` leaves
    it empty.
    """

    target_calls: int = 0
    draft_calls: int = 0
    proposed: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens accepted by the test (before any cut by ``stop``)
    tokens: int = 0  # new tokens in the output
    rounds: int = 0
    seconds: float = 0.0
    trace: list[dict] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / proposed. Proposals after a rejection count but are never examined, so this
        is below the per-token probability α of Leviathan et al.; see :attr:`alpha_estimate`."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_target_call(self) -> float:
        return self.tokens / self.target_calls if self.target_calls else 0.0

    @property
    def rejected(self) -> int:
        """Rounds that ended in a rejection (each examined exactly one rejected proposal)."""
        return sum(1 for r in self.trace if r["kind"] == "correction")

    @property
    def alpha_estimate(self) -> float:
        """Accepted / examined proposals: an estimate of α, the probability that one examined
        draft token is accepted, which is what Eq. (1) (:func:`expected_tokens_per_call`) takes.
        """
        examined = self.accepted + self.rejected
        return self.accepted / examined if examined else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("acceptance_rate", "tokens_per_target_call", "rejected", "alpha_estimate"):
            d[name] = getattr(self, name)
        return d


# ----------------------------------------------------------------------------- helpers


def _check(prefix: torch.Tensor, n_new: int, temperature: float) -> None:
    if prefix.ndim != 1 or prefix.numel() == 0 or prefix.dtype != torch.long:
        raise ValueError("prefix must be a non-empty 1-D LongTensor of token ids")
    if n_new < 0:
        raise ValueError("n_new must be >= 0")
    if not temperature > 0:
        raise ValueError("temperature must be > 0")


def _logits(model: LogitsFn, seq: torch.Tensor) -> torch.Tensor:
    """Next-token logits at every position of ``seq`` (T,) -> (T, V)."""
    logits = model(seq[None])
    if logits.ndim != 3 or logits.shape[:2] != (1, seq.numel()):
        raise ValueError(f"a model must map ids (1, T) to logits (1, T, V); got {logits.shape}")
    return logits[0]


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # float32 at least, so a bf16 model's ratios p/q are not rounded to 3 significant digits.
    return torch.softmax(logits.float() / temperature, dim=-1)


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token id (1,) from non-negative weights (V,); multinomial normalises them."""
    return torch.multinomial(weights, 1, generator=generator)


# ----------------------------------------------------------------------------- sampling


def sample_plain(
    target: LogitsFn,
    prefix: torch.Tensor,
    n_new: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop: StopFn | None = None,
) -> tuple[torch.Tensor, SpecStats]:
    """Ordinary ancestral sampling: one target call per token, x_t ~ softmax(z_t / temperature).

    ``prefix`` (T0,) long -> (ids (T0 + n,), stats), n = ``n_new`` unless ``stop`` (called with
    the whole sequence after each new token) ends it earlier. Every draw uses ``generator``,
    which must live on the device of the model's logits.
    """
    _check(prefix, n_new, temperature)
    start = time.perf_counter()
    stats = SpecStats()
    seq = prefix
    out = prefix.tolist()
    while stats.tokens < n_new:
        p = _probs(_logits(target, seq)[-1], temperature)  # (V,)
        x = _draw(p, generator)  # (1,)
        stats.target_calls += 1
        stats.rounds += 1
        stats.tokens += 1
        seq = torch.cat([seq, x.to(seq.device)])
        out.append(int(x))
        if stop is not None and stop(out):
            break
    stats.seconds = time.perf_counter() - start
    return seq, stats


def speculative_sample(
    target: LogitsFn,
    draft: LogitsFn,
    prefix: torch.Tensor,
    n_new: int,
    gamma: int = 4,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop: StopFn | None = None,
) -> tuple[torch.Tensor, SpecStats]:
    """Speculative sampling (Leviathan et al. 2023, Algorithm 1; see the module docstring).

    ``prefix`` (T0,) long -> (ids (T0 + n,), stats), with n = ``n_new`` unless ``stop`` fires
    first. The output has exactly the distribution of :func:`sample_plain` with the same
    ``target``, ``temperature`` and ``stop``, whatever the draft; ``gamma`` (γ, draft tokens
    per round) and the draft change only the cost. Temperature applies to both models, so the
    target's distribution is ``softmax(z / temperature)``. Every draw uses ``generator``, which
    must live on the device of the models' logits.
    """
    _check(prefix, n_new, temperature)
    if gamma < 0:
        raise ValueError("gamma must be >= 0")
    start = time.perf_counter()
    stats = SpecStats()
    seq = prefix
    out = prefix.tolist()
    stopped = False
    while stats.tokens < n_new and not stopped:
        # A round emits at most g + 1 tokens, so proposing g = min(γ, left − 1) never overshoots
        # n_new. This is exact: the proof of Appendix A.1 holds for any γ fixed before the round's
        # draws, and g depends only on how many tokens exist. (Running a full γ round and cutting
        # its output would also be exact, a prefix of an exact sample, but wastes draft calls.
        # What would NOT be exact is anything that looks at the round's draws, e.g. redrawing a
        # round because it came out too long.)
        g = min(gamma, n_new - stats.tokens - 1)
        t0 = seq.numel()

        # 1. The draft proposes g tokens, one call each.
        ctx = seq
        q_rows = []
        for _ in range(g):
            q_i = _probs(_logits(draft, ctx)[-1], temperature)  # (V,)
            ctx = torch.cat([ctx, _draw(q_i, generator).to(ctx.device)])
            q_rows.append(q_i)
        drafts = ctx[t0:]  # (g,)

        # 2. One target call scores them all: the rows at positions t0-1 .. t0+g-1 are the
        # target's distributions for each proposal and, last, for the bonus token.
        p = _probs(_logits(target, ctx)[t0 - 1 :], temperature)  # (g + 1, V)

        # 3. Accept proposal i with probability min(1, p_i(x_i) / q_i(x_i)). Drawing all g
        # uniforms at once is the same as drawing them in turn; the ones after the first
        # rejection are simply unused. u * q < p avoids dividing; q(x) > 0 as x was drawn from q.
        k = 0
        if g:
            q = torch.stack(q_rows)  # (g, V)
            idx = drafts.to(p.device)[:, None]  # (g, 1)
            p_x, q_x = p[:-1].gather(1, idx)[:, 0], q.gather(1, idx)[:, 0]  # (g,) each
            u = torch.rand(g, generator=generator, device=p.device)
            k = int((u * q_x < p_x).long().cumprod(0).sum())  # leading acceptances

        # 4. A correction from the residual after a rejection, else a bonus token from p_{g+1}.
        if k < g:
            residual = (p[k] - q[k]).clamp_min(0)  # (V,)
            # A rejection implies p(x) < q(x), hence residual mass q(x) - p(x) > 0 in exact
            # arithmetic; in float32 it can round to nothing when p and q nearly agree, and
            # then p itself is the right distribution to fall back on.
            nxt = _draw(residual if residual.sum() > 0 else p[k], generator)
            kind = "correction"
        else:
            nxt = _draw(p[g], generator)
            kind = "bonus"

        # Emit token by token so that stop sees every prefix, as in sample_plain: the stream of
        # emitted tokens is an exact target sample, and cutting it where stop first fires gives
        # the same distribution as sampling plainly with the same stop.
        new = [*drafts[:k].tolist(), int(nxt)]
        kept = 0
        for tok in new:
            out.append(tok)
            kept += 1
            if stop is not None and stop(out):
                stopped = True
                break
        seq = torch.tensor(out, dtype=torch.long, device=prefix.device)

        stats.draft_calls += g
        stats.target_calls += 1
        stats.proposed += g
        stats.accepted += k
        stats.tokens += kept
        stats.rounds += 1
        stats.trace.append(
            {
                "proposed": drafts.tolist(),
                "accepted": k,
                "next": int(nxt),
                "kind": kind,
                "kept": kept,
            }
        )
    stats.seconds = time.perf_counter() - start
    return seq, stats


# ----------------------------------------------------------------------------- analysis


def acceptance_rate(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """β = Σ_x min(p(x), q(x)) = 1 − TV(p, q): the probability that one draft token x ~ q passes
    the test min(1, p(x)/q(x)) (Leviathan et al. 2023, Definition 3.1 and Corollary 3.6).

    ``p``, ``q`` (..., V) probabilities -> (...).
    """
    return torch.minimum(p, q).sum(-1)


def expected_tokens_per_call(alpha: float, gamma: int) -> float:
    """Expected tokens emitted per target call when each examined draft token is accepted
    independently with probability α (Leviathan et al. 2023, Eq. 1):

        E = (1 − α^{γ+1}) / (1 − α) = Σ_{k=0..γ} α^k,   and γ + 1 at α = 1.

    Evaluated as expm1((γ+1) log α) / expm1(log α), which keeps full precision as α -> 1 where
    the plain quotient loses digits to cancellation.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if gamma < 0:
        raise ValueError("gamma must be >= 0")
    if alpha == 1.0:
        return float(gamma + 1)
    if alpha == 0.0:
        return 1.0
    log_a = math.log(alpha)
    return math.expm1((gamma + 1) * log_a) / math.expm1(log_a)


def bigram_model(logit_table: torch.Tensor) -> LogitsFn:
    """A toy causal LM whose next-token logits depend on the last token only.

    ``logit_table`` (V, V): row a holds the logits of the token after a. Returns a
    :data:`LogitsFn`, ids (1, T) -> logits (1, T, V), the table's rows gathered per position.
    Small enough that exact sequence probabilities can be enumerated, which the tests use.
    """

    def model(ids: torch.Tensor) -> torch.Tensor:
        return logit_table[ids]  # (1, T) -> (1, T, V)

    return model
