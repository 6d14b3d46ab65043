"""MiniLM's self-attention relations against plain loops, the model's own attention, finite
differences and properties; the method's training step against a direct computation.

The reference follows Wang et al. 2021 (MiniLMv2, §3) position by position in numpy:
split the concatenated heads into relation heads, a softmax of scaled dot products over the
earlier positions per row, KL teacher to student, the mean over heads and counted rows.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.gpt import build_lm
from kdcore.language import LANGUAGE
from kdcore.lm import block_for, cross_entropy, sample_texts
from kdcore.lm_distill import Transfer, lm_step
from kdcore.lm_methods import RELATION_HEADS, get_lm_method
from kdcore.losses.minilm import (
    PAIRS,
    log_relations,
    minilm_losses,
    model_relations,
    relation_heads,
    relation_kl,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)
N = 10  # words per document, as the presets


def ref_relation(a: np.ndarray, b: np.ndarray, heads: int) -> np.ndarray:
    """(L, D) x2 -> (heads, L, L): row i the softmax over j <= i of a_i . b_j / sqrt(d_r), the
    vectors cut into ``heads`` consecutive slices; zeros above the diagonal."""
    n, d = a.shape
    dr = d // heads
    out = np.zeros((heads, n, n))
    for h in range(heads):
        for i in range(n):
            s = [sum(a[i, h * dr + c] * b[j, h * dr + c] for c in range(dr)) / math.sqrt(dr)
                 for j in range(i + 1)]  # fmt: skip
            e = np.exp(np.array(s) - max(s))
            out[h, i, : i + 1] = e / e.sum()
    return out


def ref_relation_kl(t_pair, s_pair, heads, mask=None) -> float:
    """Mean over counted (document, row) pairs of the mean over heads of KL(teacher || student)."""
    kls = []
    for d in range(t_pair[0].shape[0]):
        rt = ref_relation(t_pair[0][d], t_pair[1][d], heads)
        rs = ref_relation(s_pair[0][d], s_pair[1][d], heads)
        for i in range(rt.shape[1]):
            if mask is not None and not mask[d, i]:
                continue
            per_head = []
            for h in range(heads):
                pairs = zip(rt[h, i, : i + 1], rs[h, i, : i + 1], strict=True)
                per_head.append(sum(p * math.log(p / q) for p, q in pairs if p > 0))
            kls.append(sum(per_head) / heads)
    return sum(kls) / len(kls) if kls else 0.0


def features(seed: int, b=2, n=5, d=8):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, d, generator=g, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_relation_kl_matches_the_reference(heads, masked):
    t, s = features(0, d=8), features(1, d=12)  # widths differ, as teacher's and student's
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]]) if masked else None
    for i, j in ((0, 0), (1, 1), (2, 2), (0, 1)):
        got = relation_kl((t[i], t[j]), (s[i], s[j]), heads, mask)
        want = ref_relation_kl((t[i].numpy(), t[j].numpy()), (s[i].numpy(), s[j].numpy()), heads,
                               None if mask is None else mask.numpy())  # fmt: skip
        assert float(got) == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_minilm_losses_are_the_named_relations():
    t, s = features(2), features(3, d=4)
    v2 = minilm_losses(t, s, 2)
    assert list(v2) == ["qq", "kk", "vv"] == list(PAIRS["q-q k-k v-v"])
    v1 = minilm_losses(t, s, 2, PAIRS["q-k v-v"])
    assert list(v1) == ["qk", "vv"]
    assert float(v1["vv"]) == float(v2["vv"])
    assert float(v1["qk"]) == pytest.approx(float(relation_kl((t[0], t[1]), (s[0], s[1]), 2)))


def test_the_query_key_relation_is_the_models_own_attention():
    """With as many relation heads as the model has heads, R_qk is its attention: R_qk V per
    head, merged, is what the block's projection receives."""
    torch.manual_seed(0)
    model = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N)).double().eval()
    ids = sample_texts(3, N, seed=4).char.ids[:, :20]
    heads = model.cfg.heads
    keep, got = [], []
    attn = model.blocks[-1].attn
    hook = attn.proj.register_forward_pre_hook(lambda mod, args: got.append(args[0]))
    try:
        model(ids, keep=keep)
    finally:
        hook.remove()
    q, k, v = keep[-1]
    r = log_relations(q, k, heads).exp()  # (B, H, L, L)
    out = (r @ relation_heads(v, heads)).transpose(1, 2).reshape(q.shape)
    torch.testing.assert_close(out, got[0])


def test_the_cached_stream_gives_each_blocks_queries_keys_and_values():
    """What a relation method caches (the teacher's stream entering a block) turned into that
    block's q, k, v equals what the forward pass hands back for it, block by block."""
    torch.manual_seed(3)
    model = build_lm("lm-teacher", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()
    ids = sample_texts(4, N, seed=8).char.ids[:, :-1]
    keep: list = []
    with torch.no_grad():
        model(ids, keep=keep)
        for i in range(model.cfg.layers):
            for got, want in zip(model.block_qkv(model.stream(ids, i), i), keep[i], strict=True):
                torch.testing.assert_close(got, want)


def test_model_relations_are_causal_distributions():
    torch.manual_seed(1)
    model = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N))
    ids = sample_texts(2, N, seed=6).char.ids[:, :15]
    maps = model_relations(model, ids, 4)
    assert set(maps) == {"qq", "kk", "vv", "qk"}
    for r in maps.values():
        assert r.shape == (2, 4, 15, 15)
        torch.testing.assert_close(r.sum(-1), torch.ones(2, 4, 15))
        assert float(r.triu(1).abs().max()) == 0.0


def test_gradients_against_finite_differences():
    t, s = features(4, n=4), features(5, n=4, d=4)
    s = tuple(x.clone().requires_grad_() for x in s)
    mask = torch.tensor([[True, True, False, True], [True] * 4])

    def total(*x):
        return sum(minilm_losses(t, x, 2, mask=mask).values())

    assert torch.autograd.gradcheck(total, s)
    tt = tuple(x.clone().requires_grad_() for x in t)
    assert torch.autograd.gradcheck(lambda *x: sum(minilm_losses(x, s, 2).values()), tt)


def test_no_counted_row_gives_zero_with_a_gradient_and_bad_heads_are_refused():
    t, s = features(6), features(7)
    s = tuple(x.clone().requires_grad_() for x in s)
    none = torch.zeros(2, 5, dtype=torch.bool)
    loss = sum(minilm_losses(t, s, 2, mask=none).values())
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="do not divide a width of 8"):
        relation_heads(t[0], 3)
    with pytest.raises(ValueError, match="mask"):
        relation_kl((t[0], t[0]), (s[0], s[0]), 2, torch.ones(2, 4, dtype=torch.bool))


# ----------------------------------------------------------------------------- properties

sizes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.sampled_from([1, 2, 4]))


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**16), scale=st.floats(0.1, 5.0))
def test_non_negative_and_zero_for_the_teachers_own_features(size, seed, scale):
    b, n, heads = size
    g = torch.Generator().manual_seed(seed)
    t = tuple(scale * torch.randn(b, n, 8, generator=g, dtype=torch.float64) for _ in range(3))
    s = tuple(scale * torch.randn(b, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    for pairs in PAIRS.values():
        assert all(float(v) >= -1e-12 for v in minilm_losses(t, s, heads, pairs).values())
        assert all(abs(float(v)) < 1e-12 for v in minilm_losses(t, t, heads, pairs).values())


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**16))
def test_a_rotation_inside_each_relation_head_changes_nothing(size, seed):
    """Relations are dot products: a student whose features are the teacher's turned by any
    orthogonal map inside each relation head matches it exactly (the point of relations: no
    projector is needed between widths)."""
    b, n, heads = size
    g = torch.Generator().manual_seed(seed)
    t = tuple(torch.randn(b, n, 8, generator=g, dtype=torch.float64) for _ in range(3))
    dr = 8 // heads
    rot = torch.block_diag(*(torch.linalg.qr(torch.randn(dr, dr, generator=g,
                                                         dtype=torch.float64))[0]
                             for _ in range(heads)))  # fmt: skip
    turned = tuple(x @ rot for x in t)
    for v in minilm_losses(t, turned, heads).values():
        assert abs(float(v)) < 1e-9


# ----------------------------------------------------------------------------- the method


@pytest.fixture(scope="module")
def transfer():
    torch.manual_seed(1)
    teacher = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()
    return Transfer(teacher, sample_texts(16, N, seed=5), N, seed=0)


@pytest.mark.parametrize("relations", list(PAIRS))
def test_the_minilm_step_equals_a_direct_computation(transfer, relations):
    torch.manual_seed(2)
    student = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))
    rows = torch.tensor([0, 3, 5, 9])
    params = {"relations": relations, "heads": 2, "teacher_layer": 1, "lam": 0.5}
    parts = lm_step("minilm", params, "char", transfer)(student, rows)
    assert not transfer._logits  # it reads inside the teacher: no pass for its logits
    ids, mask = transfer.train.char.ids[rows], transfer.train.char.mask[rows]
    keep, t_keep = [], []
    logits = student(ids[:, :-1], keep=keep)
    with torch.no_grad():
        transfer.teacher(ids[:, :-1], keep=t_keep)
    want = minilm_losses(t_keep[0], keep[-1], 2, PAIRS[relations], mask)
    assert set(parts) == {"ce", *PAIRS[relations]}
    torch.testing.assert_close(parts["ce"], cross_entropy(logits, ids[:, 1:], mask))
    for pair in PAIRS[relations]:
        torch.testing.assert_close(parts[pair], 0.5 * want[pair])
    sum(parts.values()).backward()
    assert all(p.grad is None for p in transfer.teacher.parameters())
    assert student.blocks[-1].attn.qkv.weight.grad.abs().sum() > 0


def test_the_method_refuses_what_cannot_be_compared(transfer):
    assert get_lm_method("minilm").attends(get_lm_method("minilm").params()) == 4
    with pytest.raises(ValueError, match="no block 4; it has 2"):
        lm_step("minilm", None, "char", transfer)
    with pytest.raises(ValueError, match="vocabulary"):
        lm_step("minilm", {"teacher_layer": 1}, "word", transfer)
    with pytest.raises(ValueError, match="must be one of"):
        get_lm_method("minilm").make_params({"heads": 3})
    assert RELATION_HEADS == (1, 2, 4, 8, 16)  # the common divisors of widths 128 and 48
