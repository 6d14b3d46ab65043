"""Speculative sampling: its output is the target's distribution, whatever the draft.

Models are bigram tables over a 3-token vocabulary (logits depend on the last token only), small
enough that the exact probability of every sequence can be enumerated and compared with samples.
Statistical tests use fixed seeds, so they are deterministic; the thresholds are chosen so that a
correct implementation would fail them with a probability of about 1e-3 or less for a fresh seed.
"""

import itertools
import json
import math

import pytest
import torch

from kdcore.speculative import (
    acceptance_rate,
    bigram_model,
    expected_tokens_per_call,
    sample_plain,
    speculative_sample,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

V = 3
TEMP = 1.3  # applied to both models; the exact target distribution below uses it too


def tables(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Target and draft logit tables (V, V), independent draws. Seed 2 gives every 3-token
    sequence from prefix [0] a target probability above 0.009 at TEMP (so >= 5 expected counts
    at 6,000 samples, Cochran's rule for the chi-square approximation) and a draft far from
    the target (acceptance 0.54-0.76 per context); both are asserted below, not assumed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, V, generator=g), torch.randn(V, V, generator=g)


def seq_probs(table: torch.Tensor, first: int, n: int) -> dict[tuple[int, ...], float]:
    """Exact probability of every continuation of length n after token ``first``, by
    enumeration: the product of the bigram softmax entries along the path (float64)."""
    p = torch.softmax(table.double() / TEMP, -1)
    out = {}
    for seq in itertools.product(range(V), repeat=n):
        prob, prev = 1.0, first
        for tok in seq:
            prob *= float(p[prev, tok])
            prev = tok
        out[seq] = prob
    return out


def chi_square(counts: dict[tuple[int, ...], int], probs: dict[tuple[int, ...], float]):
    """Pearson's statistic Σ (O − E)² / E over all cells and its p-value. The chi-square survival
    function with k degrees of freedom is the regularised upper incomplete gamma Q(k/2, x/2)
    (Abramowitz & Stegun 26.4.19), so scipy is not needed."""
    n = sum(counts.values())
    stat = sum((counts.get(s, 0) - n * p) ** 2 / (n * p) for s, p in probs.items())
    df = len(probs) - 1
    p_value = float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))
    return stat, df, p_value


def test_chi_square_p_value_matches_the_table():
    # NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.6.7.4: the upper 0.001 critical value
    # of chi-square with 26 degrees of freedom is 54.052; with 8, 26.124.
    for df, crit in ((26, 54.052), (8, 26.124)):
        p = float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(crit / 2.0)))
        assert p == pytest.approx(1e-3, rel=1e-3)


# ----------------------------------------------------------------------------- exactness


N_SEQ = 6_000  # sequences per sample: ~3 s of speculative sampling on one CPU thread
N_NEW = 3  # 27 cells, 26 degrees of freedom
ALPHA_TEST = 1e-3  # reject "distribution == target" below this p-value


def test_output_distribution_is_the_target_and_the_test_can_fail():
    """Samples of whole 3-token continuations with γ = 2 (a full round, then truncated ones)
    against the exact target distribution; the draft's own samples must be rejected."""
    t_table, d_table = tables()
    target, draft = bigram_model(t_table), bigram_model(d_table)
    probs = seq_probs(t_table, 0, N_NEW)
    assert min(probs.values()) * N_SEQ >= 5  # the chi-square approximation holds
    beta = acceptance_rate(torch.softmax(t_table / TEMP, -1), torch.softmax(d_table / TEMP, -1))
    assert beta.max() < 0.8  # the draft is clearly not the target

    prefix = torch.tensor([0])
    gen = torch.Generator().manual_seed(0)
    spec, plain_draft = {}, {}
    rounds = 0
    for _ in range(N_SEQ):
        out, stats = speculative_sample(
            target, draft, prefix, N_NEW, gamma=2, temperature=TEMP, generator=gen
        )
        key = tuple(out[1:].tolist())
        spec[key] = spec.get(key, 0) + 1
        rounds += stats.rounds
        out, _ = sample_plain(draft, prefix, N_NEW, temperature=TEMP, generator=gen)
        key = tuple(out[1:].tolist())
        plain_draft[key] = plain_draft.get(key, 0) + 1
    assert rounds < 2 * N_SEQ  # speculation did save target calls (3 per plain sequence)

    stat, df, p_value = chi_square(spec, probs)
    assert df == 26
    assert p_value > ALPHA_TEST, (stat, p_value)

    stat_d, _, p_draft = chi_square(plain_draft, probs)
    assert p_draft < 1e-12, (stat_d, p_draft)  # the test has power against a wrong distribution
    # And the draft samples do follow the draft's own distribution, so the rejection above is
    # about the distribution, not about the sampler.
    assert chi_square(plain_draft, seq_probs(d_table, 0, N_NEW))[2] > ALPHA_TEST


# ----------------------------------------------------------------------------- accept / reject


def test_identical_draft_is_always_accepted():
    t_table, _ = tables()
    target = bigram_model(t_table)
    same = bigram_model(t_table.clone())
    gamma, full_rounds = 3, 5
    n_new = full_rounds * (gamma + 1) + 2  # the last round has room for 1 proposal + bonus
    gen = torch.Generator().manual_seed(1)
    out, stats = speculative_sample(
        target, same, torch.tensor([1]), n_new, gamma=gamma, temperature=TEMP, generator=gen
    )
    assert out.numel() == 1 + n_new
    assert stats.acceptance_rate == 1.0 and stats.alpha_estimate == 1.0
    assert stats.accepted == stats.proposed == full_rounds * gamma + 1
    assert stats.target_calls == stats.rounds == full_rounds + 1
    for r in stats.trace[:-1]:
        assert r["kind"] == "bonus" and r["accepted"] == gamma and r["kept"] == gamma + 1
    assert stats.trace[-1]["kind"] == "bonus" and len(stats.trace[-1]["proposed"]) == 1
    # Every full round yields γ + 1 tokens per target call.
    _, stats = speculative_sample(target, same, torch.tensor([1]), 4 * (gamma + 1), gamma=gamma)
    assert stats.tokens_per_target_call == gamma + 1


def test_measured_acceptance_matches_acceptance_rate():
    """Each examined proposal x ~ q(·|a) is accepted with probability β(a) = Σ min(p, q) for
    its context a. So accepted − Σ β(a) over the examined proposals is a martingale with
    variance Σ β(a)(1 − β(a)); by the martingale CLT it lies within 4 standard deviations
    (two-sided false alarm ~6e-5)."""
    t_table, d_table = tables()
    beta = acceptance_rate(torch.softmax(t_table / TEMP, -1), torch.softmax(d_table / TEMP, -1))
    gen = torch.Generator().manual_seed(3)
    out, stats = speculative_sample(
        bigram_model(t_table),
        bigram_model(d_table),
        torch.tensor([0]),
        1500,
        gamma=3,
        temperature=TEMP,
        generator=gen,
    )
    toks = out.tolist()
    pos, expected, var, examined = 0, 0.0, 0.0, 0  # pos: index of the token before the round
    for r in stats.trace:
        k, g = r["accepted"], len(r["proposed"])
        # Proposal i is examined if all before it were accepted; its context is the output
        # token just before it (accepted proposals are output tokens).
        for i in range(min(k + 1, g)):
            b = float(beta[toks[pos + i]])
            expected, var, examined = expected + b, var + b * (1 - b), examined + 1
        pos += r["kept"]
    assert examined == stats.accepted + stats.rejected
    assert abs(stats.accepted - expected) < 4 * math.sqrt(var), (stats.accepted, expected)
    assert stats.alpha_estimate == pytest.approx(expected / examined, abs=4 * var**0.5 / examined)


def test_tokens_per_round_follow_eq_1():
    """With context-free models (every row of each table equal), each examined proposal is
    accepted independently with the same α = Σ min(p, q), so the tokens of a full round are a
    truncated geometric whose mean is Eq. (1); its variance is computed directly."""
    g = torch.Generator().manual_seed(4)
    t_row, d_row = torch.randn(V, generator=g), torch.randn(V, generator=g)
    target, draft = bigram_model(t_row.expand(V, V)), bigram_model(d_row.expand(V, V))
    alpha = float(acceptance_rate(torch.softmax(t_row, -1), torch.softmax(d_row, -1)))
    gamma = 4
    _, stats = speculative_sample(target, draft, torch.tensor([0]), 2000, gamma=gamma, generator=g)
    kept = [r["kept"] for r in stats.trace if len(r["proposed"]) == gamma]
    # P(kept = j) = α^{j-1}(1 − α) for j <= γ, α^γ for j = γ + 1.
    pmf = [alpha ** (j - 1) * (1 - alpha) for j in range(1, gamma + 1)] + [alpha**gamma]
    mean = sum(j * p for j, p in enumerate(pmf, 1))
    sd = math.sqrt(sum((j - mean) ** 2 * p for j, p in enumerate(pmf, 1)))
    assert mean == pytest.approx(expected_tokens_per_call(alpha, gamma), rel=1e-12)
    assert abs(sum(kept) / len(kept) - mean) < 4 * sd / math.sqrt(len(kept))


def test_acceptance_rate_is_one_minus_total_variation():
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(4, 7, generator=g), -1)
    q = torch.softmax(torch.randn(4, 7, generator=g), -1)
    tv = 0.5 * (p - q).abs().sum(-1)
    torch.testing.assert_close(acceptance_rate(p, q), 1 - tv)
    torch.testing.assert_close(acceptance_rate(p, p), torch.ones(4))
    disjoint = acceptance_rate(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert float(disjoint) == 0.0


@pytest.mark.parametrize("gamma", [0, 1, 2, 5, 10])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0])
def test_expected_tokens_per_call_is_a_geometric_sum(alpha, gamma):
    direct = math.fsum(alpha**k for k in range(gamma + 1))
    assert expected_tokens_per_call(alpha, gamma) == pytest.approx(direct, rel=1e-12)


def test_expected_tokens_per_call_limits():
    assert expected_tokens_per_call(1.0, 4) == 5.0
    assert expected_tokens_per_call(0.0, 4) == 1.0
    with pytest.raises(ValueError):
        expected_tokens_per_call(1.5, 4)


# ----------------------------------------------------------------------------- bookkeeping


@pytest.mark.parametrize("gamma", [0, 1, 3, 7])
@pytest.mark.parametrize("n_new", [0, 1, 2, 5, 13])
def test_exactly_n_new_tokens_and_consistent_counts(n_new, gamma):
    t_table, d_table = tables()
    gen = torch.Generator().manual_seed(n_new * 10 + gamma)
    prefix = torch.tensor([2, 0])
    out, stats = speculative_sample(
        bigram_model(t_table), bigram_model(d_table), prefix, n_new, gamma=gamma, generator=gen
    )
    assert out.dtype == torch.long and out.numel() == prefix.numel() + n_new
    assert out[:2].tolist() == [2, 0]
    assert stats.tokens == n_new == sum(r["kept"] for r in stats.trace)
    assert stats.accepted == sum(r["accepted"] for r in stats.trace)
    assert stats.proposed == stats.draft_calls == sum(len(r["proposed"]) for r in stats.trace)
    assert stats.target_calls == stats.rounds == len(stats.trace)
    assert all(len(r["proposed"]) <= gamma for r in stats.trace)
    json.dumps(stats.to_dict())  # JSON-ready: plain ints, floats, lists


def test_stop_ends_generation_at_the_first_stop_token():
    t_table, d_table = tables()
    target, draft = bigram_model(t_table), bigram_model(d_table)
    eos = 2

    def stop(toks: list[int]) -> bool:
        return toks[-1] == eos

    cut_inside_round = 0
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        out, stats = speculative_sample(
            target, draft, torch.tensor([0]), 12, gamma=3, generator=gen, stop=stop
        )
        new = out[1:].tolist()
        assert len(new) == stats.tokens == sum(r["kept"] for r in stats.trace)
        assert eos not in new[:-1]
        assert new[-1] == eos or len(new) == 12
        cut_inside_round += stats.trace[-1]["kept"] < stats.trace[-1]["accepted"] + 1
        plain, _ = sample_plain(target, torch.tensor([0]), 12, generator=gen, stop=stop)
        assert eos not in plain[1:-1].tolist()
        assert plain[-1] == eos or plain.numel() == 13
    assert cut_inside_round > 0  # the case where stop discards accepted proposals was exercised


# ----------------------------------------------------------------------------- reproducibility


def test_fixed_generator_reproduces_the_samples():
    t_table, d_table = tables()
    target, draft = bigram_model(t_table), bigram_model(d_table)

    def run_plain(seed):
        return sample_plain(
            target, torch.tensor([0]), 30, generator=torch.Generator().manual_seed(seed)
        )

    def run_spec(seed):
        gen = torch.Generator().manual_seed(seed)
        return speculative_sample(target, draft, torch.tensor([0]), 30, generator=gen)

    assert torch.equal(run_plain(7)[0], run_plain(7)[0])
    assert not torch.equal(run_plain(7)[0], run_plain(8)[0])
    (a, sa), (b, sb) = run_spec(7), run_spec(7)
    assert torch.equal(a, b) and sa.trace == sb.trace


def test_invalid_arguments():
    target = bigram_model(tables()[0])
    prefix = torch.tensor([0])
    with pytest.raises(ValueError, match="temperature"):
        sample_plain(target, prefix, 3, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        speculative_sample(target, target, prefix, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        speculative_sample(target, target, prefix, 3, gamma=-1)
    with pytest.raises(ValueError, match="prefix"):
        sample_plain(target, torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match="logits"):
        sample_plain(lambda ids: torch.zeros(ids.shape[1], V), prefix, 3)
