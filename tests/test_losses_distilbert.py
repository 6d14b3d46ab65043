"""DistilBERT's cosine loss against a plain loop, finite differences and properties; its
initialisation (one teacher block of every two) against the teacher's own computation; the
method's training step against a direct computation of the triple loss, and its refusals.

The reference follows Sanh et al. 2019 and the official code's ``nn.CosineEmbeddingLoss`` with
target 1: at every counted position 1 − h^S·h^T / (‖h^S‖ ‖h^T‖), averaged over those positions.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.gpt import build_lm, init_from
from kdcore.language import LANGUAGE
from kdcore.lm import block_for, cross_entropy, sample_texts
from kdcore.lm_distill import Transfer, lm_step
from kdcore.lm_methods import get_lm_method
from kdcore.losses.distilbert import cosine_loss, every_other
from kdcore.losses.lm import token_kd_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)
N = 10  # words per document, as the presets
VOCAB, BLOCK = LANGUAGE.chars.vocab_size, block_for("char", N)


def ref_cosine_loss(s, t, mask) -> float:
    terms = []
    for d in range(s.shape[0]):
        for i in range(s.shape[1]):
            if mask[d, i]:
                dot = sum(s[d, i, c] * t[d, i, c] for c in range(s.shape[2]))
                norms = math.sqrt(sum(v * v for v in s[d, i])) * math.sqrt(
                    sum(v * v for v in t[d, i]))  # fmt: skip
                terms.append(1 - dot / norms)
    return float(np.mean(terms))


@pytest.mark.parametrize("masked", [False, True])
def test_the_cosine_loss_matches_the_reference_and_torchs_own(masked):
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 5, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.4 if masked else torch.ones(3, 5, dtype=torch.bool)
    got = cosine_loss(s, t, mask)
    assert float(got) == pytest.approx(ref_cosine_loss(s.numpy(), t.numpy(), mask.numpy()))
    # the official code: nn.CosineEmbeddingLoss(reduction="mean") on the selected positions
    official = torch.nn.CosineEmbeddingLoss()(s[mask], t[mask], torch.ones(int(mask.sum())))
    torch.testing.assert_close(got, official)


def test_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 3, 4, generator=g, dtype=torch.double, requires_grad=True)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.double)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda x: cosine_loss(x, t, mask), (s,))


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0))
def test_between_0_and_2_blind_to_length_and_0_along_the_teachers_directions(seed, scale):
    g = torch.Generator().manual_seed(seed)
    s, t = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    mask = torch.ones(2, 4, dtype=torch.bool)
    loss = float(cosine_loss(s, t, mask))
    assert 0.0 <= loss <= 2.0
    # rescaling either state leaves it unchanged: only directions count
    assert float(cosine_loss(scale * s, t, mask)) == pytest.approx(loss, rel=1e-4, abs=1e-6)
    lengths = torch.rand(2, 4, 1, generator=g) * scale + 1e-3
    assert float(cosine_loss(lengths * t, t, mask)) == pytest.approx(0.0, abs=1e-5)
    assert float(cosine_loss(-t, t, mask)) == pytest.approx(2.0, abs=1e-5)


def test_states_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        cosine_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))


@pytest.mark.parametrize(("m", "n", "want"), [(2, 4, (1, 3)), (6, 12, (1, 3, 5, 7, 9, 11)),
                                              (1, 4, (1,)), (4, 4, (1, 2, 3, 4))])  # fmt: skip
def test_one_block_of_every_two(m, n, want):
    assert every_other(m, n) == want


def test_a_depth_that_does_not_divide_is_refused_in_one_line():
    with pytest.raises(ValueError, match="multiple"):
        every_other(3, 4)


# ----------------------------------------------------------------------------- initialisation


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(1)
    return build_lm("lm-teacher", VOCAB, BLOCK).eval()


def test_the_student_starts_as_the_teachers_blocks_1_and_3(teacher):
    torch.manual_seed(2)
    student = init_from(build_lm("lm-half", VOCAB, BLOCK), teacher, (1, 3)).eval()
    ids = sample_texts(3, N, seed=2).char.ids[:, :-1]
    with torch.no_grad():  # the teacher's own computation with blocks 2 and 4 skipped
        x = teacher._embed(ids, 0)
        x = teacher.blocks[2](teacher.blocks[0](x, None, 0), None, 2)
        want = teacher.head(teacher.ln(x))
        torch.testing.assert_close(student(ids), want)
    # a copy, not a share: training the student leaves the teacher alone
    assert student.blocks[1].mlp[0].weight.data_ptr() != teacher.blocks[2].mlp[0].weight.data_ptr()


def test_weights_that_do_not_fit_are_refused_and_nothing_is_copied(teacher):
    small = build_lm("lm-student", VOCAB, BLOCK)
    before = small.tok.weight.clone()
    with pytest.raises(ValueError, match=r"width 48 .* do not fit"):
        init_from(small, teacher, (1, 3))
    assert torch.equal(small.tok.weight, before)
    with pytest.raises(ValueError, match="1 to 4"):
        init_from(build_lm("lm-half", VOCAB, BLOCK), teacher, (1, 5))


def test_the_method_starts_the_student_as_its_init_parameter_says(teacher):
    m = get_lm_method("distilbert")
    torch.manual_seed(2)
    fresh = build_lm("lm-half", VOCAB, BLOCK)
    kept = {k: v.clone() for k, v in fresh.state_dict().items()}
    same = m.init(m.make_params({"init": "random"}), fresh, teacher)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in kept.items())
    taken = m.init(m.make_params(), fresh, teacher)
    assert torch.equal(taken.blocks[1].attn.qkv.weight, teacher.blocks[2].attn.qkv.weight)
    assert torch.equal(taken.head.weight, teacher.head.weight)


# ----------------------------------------------------------------------------- the method


@pytest.fixture(scope="module")
def transfer(teacher):
    return Transfer(teacher, sample_texts(16, N, seed=5), N, seed=0)


def test_the_triple_loss_equals_a_direct_computation(transfer):
    torch.manual_seed(3)
    student = build_lm("lm-half", VOCAB, BLOCK)
    rows = torch.tensor([0, 3, 5, 9])
    params = {"T": 3.0, "alpha_ce": 0.7, "alpha_lm": 0.2, "alpha_cos": 0.4}
    parts = lm_step("distilbert", params, "char", transfer, student.cfg)(student, rows)
    assert set(parts) == {"ce", "kd", "cos"}
    ids, mask = transfer.train.char.ids[rows], transfer.train.char.mask[rows]
    hidden, t_hidden = [], []
    logits = student(ids[:, :-1], hidden=hidden)
    with torch.no_grad():
        t_logits = transfer.teacher(ids[:, :-1], hidden=t_hidden)
    torch.testing.assert_close(parts["ce"], 0.2 * cross_entropy(logits, ids[:, 1:], mask))
    torch.testing.assert_close(parts["kd"], 0.7 * token_kd_loss(logits, t_logits, 3.0, mask))
    # the last block's output against the teacher's last block's
    torch.testing.assert_close(parts["cos"], 0.4 * cosine_loss(hidden[-1], t_hidden[-1], mask))
    sum(parts.values()).backward()
    assert all(p.grad is None for p in transfer.teacher.parameters())
    assert lm_step("distilbert", None, "char", transfer, student.cfg).modules == ()


def test_a_term_of_weight_0_costs_no_pass_over_the_teacher():
    torch.manual_seed(1)
    fresh = Transfer(build_lm("lm-teacher", VOCAB, BLOCK).eval(), sample_texts(8, N, seed=5), N)
    student = build_lm("lm-half", VOCAB, BLOCK)
    parts = lm_step("distilbert", {"alpha_ce": 0.0, "alpha_cos": 0.0}, "char", fresh,
                    student.cfg)(student, torch.tensor([0, 1]))  # fmt: skip
    assert set(parts) == {"ce"} and not fresh._logits and not fresh._streams


def test_the_method_refuses_what_cannot_be_compared(transfer):
    narrow = build_lm("lm-student", VOCAB, BLOCK)
    with pytest.raises(ValueError, match=r"without a projector.*width 128, not 48"):
        lm_step("distilbert", None, "char", transfer, narrow.cfg)
    with pytest.raises(ValueError, match=r"positions.*vocabulary"):
        lm_step("distilbert", None, "word", transfer, narrow.cfg)
    with pytest.raises(ValueError, match="must be one of"):
        get_lm_method("distilbert").make_params({"init": "pretrained"})
