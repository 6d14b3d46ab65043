"""TinyBERT's hidden-state loss against plain loops, finite differences and properties; its layer
mappings against the paper's formulas; the method's training step against a direct computation,
and its projector trained by ``fit_lm``.

The reference follows Jiao et al. 2020, eq. (7), position by position in numpy: the student's
hidden state times W_h (plus the bias of the official ``fit_dense``), the squared error to the
teacher's, averaged over the teacher's width and the counted positions.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.gpt import build_lm
from kdcore.language import LANGUAGE
from kdcore.lm import LMTrainConfig, block_for, cross_entropy, fit_lm, sample_texts
from kdcore.lm_distill import Transfer, lm_step
from kdcore.lm_methods import get_lm_method
from kdcore.losses.tinybert import hidden_losses, hidden_mse, layer_map, linear_fit_r2

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)
N = 10  # words per document, as the presets


def ref_hidden_mse(s, t, W, b, mask) -> float:
    """Mean over counted (document, position) pairs of mean_d ((s W^T + b)_d - t_d)^2."""
    errs = []
    for d in range(s.shape[0]):
        for i in range(s.shape[1]):
            if not mask[d, i]:
                continue
            proj = [sum(W[j, c] * s[d, i, c] for c in range(s.shape[2])) + b[j]
                    for j in range(t.shape[2])]  # fmt: skip
            errs.append(np.mean([(proj[j] - t[d, i, j]) ** 2 for j in range(t.shape[2])]))
    return float(np.mean(errs))


@pytest.mark.parametrize(
    ("mapping", "m", "n", "want"),
    [
        ("uniform", 2, 4, ((0, 0), (1, 2), (2, 4))),  # g(m) = m N / M
        ("top", 2, 4, ((0, 0), (1, 3), (2, 4))),  # g(m) = m + N - M
        ("bottom", 2, 4, ((0, 0), (1, 1), (2, 2))),  # g(m) = m
        ("uniform", 4, 12, ((0, 0), (1, 3), (2, 6), (3, 9), (4, 12))),  # TinyBERT-4 of BERT-base
        ("top", 4, 12, ((0, 0), (1, 9), (2, 10), (3, 11), (4, 12))),
    ],
)
def test_the_layer_mappings_are_the_papers(mapping, m, n, want):
    assert layer_map(mapping, m, n) == want


def test_mappings_that_cannot_be_made_are_refused_in_one_line():
    with pytest.raises(ValueError, match="multiple"):
        layer_map("uniform", 3, 4)
    with pytest.raises(ValueError, match="cannot map"):
        layer_map("top", 5, 4)
    with pytest.raises(ValueError, match="unknown layer mapping"):
        layer_map("middle", 2, 4)


@pytest.mark.parametrize("masked", [False, True])
def test_hidden_mse_matches_the_reference(masked):
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 4, generator=g)
    W, b = torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    if masked:
        mask[0, 3:] = False
        mask[1, 1:] = False
    got = hidden_mse(s, t, W, b, mask)
    assert float(got) == pytest.approx(ref_hidden_mse(*(x.numpy() for x in (s, t, W, b)),
                                                      mask.numpy()), rel=1e-5)  # fmt: skip
    if not masked:  # all positions counted: torch's own MSE over every element
        torch.testing.assert_close(got, torch.nn.functional.mse_loss(s @ W.T + b, t))


def test_the_layers_share_one_projector_and_add_up():
    g = torch.Generator().manual_seed(4)
    proj = torch.nn.Linear(3, 4)
    s = [torch.randn(2, 5, 3, generator=g) for _ in range(3)]
    t = [torch.randn(2, 5, 4, generator=g) for _ in range(3)]
    mask = torch.ones(2, 5, dtype=torch.bool)
    want = sum(hidden_mse(a, c, proj.weight, proj.bias, mask) for a, c in zip(s, t, strict=True))
    torch.testing.assert_close(hidden_losses(s, t, proj, mask), want)
    with pytest.raises(ValueError, match="3 student layers against 2"):
        hidden_losses(s, t[:2], proj, mask)


def test_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 4, 3, generator=g, dtype=torch.double, requires_grad=True)
    t = torch.randn(2, 4, 5, generator=g, dtype=torch.double)
    W = torch.randn(5, 3, generator=g, dtype=torch.double, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.double, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda s, W, b: hidden_mse(s, t, W, b, mask), (s, W, b))


sizes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(1, 7))


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**16), scale=st.floats(0.1, 5.0))
def test_non_negative_and_zero_when_the_teacher_is_a_linear_map_of_the_student(size, seed, scale):
    b_, n, d_s, d_t = size
    g = torch.Generator().manual_seed(seed)
    s = scale * torch.randn(b_, n, d_s, generator=g, dtype=torch.double)
    W, c = (
        torch.randn(d_t, d_s, generator=g, dtype=torch.double),
        torch.randn(d_t, dtype=torch.double),
    )
    mask = torch.ones(b_, n, dtype=torch.bool)
    assert float(hidden_mse(s, s @ W.T + c, W, c, mask)) == pytest.approx(0.0, abs=1e-20)
    other = torch.randn(b_, n, d_t, generator=g, dtype=torch.double)
    assert float(hidden_mse(s, other, W, c, mask)) >= 0.0
    # the read-out R² of an exact linear map is 1 wherever the teacher varies
    if b_ * n > d_s + 1 and float(other.var()) > 0:
        assert linear_fit_r2(s, s @ W.T + c + 1e-3 * other, mask) > 0.99


def test_the_read_out_r2_is_near_zero_for_unrelated_states_and_counts_only_the_mask():
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(4, 500, 3, generator=g), torch.randn(4, 500, 6, generator=g)
    mask = torch.ones(4, 500, dtype=torch.bool)
    r2 = linear_fit_r2(s, t, mask)
    assert 0.0 <= r2 < 0.01
    t2 = t.clone()
    t2[:, :100] = s[:, :100, :1] * 3 - 1  # the first 100 positions linear in the student ...
    assert linear_fit_r2(s, t2, mask) < 0.5
    mask[:, 100:] = False  # ... and when only they count, all of it is read
    assert linear_fit_r2(s, t2, mask) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the model


def test_the_models_hidden_states_are_its_stream_and_leave_the_logits_alone():
    torch.manual_seed(7)
    model = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()
    ids = sample_texts(3, N, seed=2).char.ids[:, :-1]
    hidden: list = []
    with torch.no_grad():
        logits = model(ids, hidden=hidden)
        assert len(hidden) == model.cfg.layers + 1
        for m, h in enumerate(hidden):
            torch.testing.assert_close(h, model.stream(ids, m))
        torch.testing.assert_close(logits, model(ids))


# ----------------------------------------------------------------------------- the method


@pytest.fixture(scope="module")
def transfer():
    torch.manual_seed(1)
    teacher = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()
    return Transfer(teacher, sample_texts(16, N, seed=5), N, seed=0)


def test_the_teachers_streams_are_cached_in_one_pass_and_are_its_stream(transfer):
    ids = transfer.train.char.ids[:, :-1]
    two, one = transfer.teacher_streams("corpus", 0, (2, 1))
    with torch.no_grad():
        torch.testing.assert_close(two, transfer.teacher.stream(ids, 2))
        torch.testing.assert_close(one, transfer.teacher.stream(ids, 1))
    assert transfer.teacher_stream("corpus", 0, 1) is one  # one cache for both methods
    assert transfer.teacher_streams("corpus", 0, (1, 2))[1] is two


def _student():
    torch.manual_seed(2)
    return build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))


@pytest.mark.parametrize("mapping", ["top", "bottom"])
def test_the_tinybert_step_equals_a_direct_computation(transfer, mapping):
    student = _student()  # 1 block of width 32 under a "teacher" of 2 blocks of width 48
    rows = torch.tensor([0, 3, 5, 9])
    step = lm_step("tinybert", {"mapping": mapping, "lam": 0.5}, "char", transfer, student.cfg)
    parts = step(student, rows)
    assert not transfer._logits  # it reads inside the teacher: no pass for its logits
    (proj,) = step.modules
    assert (proj.in_features, proj.out_features) == (32, 48)
    ids, mask = transfer.train.char.ids[rows], transfer.train.char.mask[rows]
    hidden, t_hidden = [], []
    logits = student(ids[:, :-1], hidden=hidden)
    with torch.no_grad():
        transfer.teacher(ids[:, :-1], hidden=t_hidden)
    g1 = {"top": 2, "bottom": 1}[mapping]  # the student's block 1 learns the teacher's g(1)
    want = hidden_losses(hidden, [t_hidden[0], t_hidden[g1]], proj, mask)
    assert set(parts) == {"ce", "hidden"}
    torch.testing.assert_close(parts["ce"], cross_entropy(logits, ids[:, 1:], mask))
    torch.testing.assert_close(parts["hidden"], 0.5 * want)
    sum(parts.values()).backward()
    assert all(p.grad is None for p in transfer.teacher.parameters())
    assert proj.weight.grad.abs().sum() > 0 and student.tok.weight.grad.abs().sum() > 0


def test_the_prediction_layer_term_is_word_level_kd_at_t_1():
    """TinyBERT's eq. (10) at t = 1, read from the teacher's logits cached once; without it the
    method pays no pass for them."""
    from kdcore.losses.lm import token_kd_loss

    torch.manual_seed(1)
    teacher = build_lm("lm-student", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()
    fresh = Transfer(teacher, sample_texts(16, N, seed=5), N, seed=0)
    student = _student()
    rows = torch.tensor([1, 2, 7])
    lm_step("tinybert", {"alpha": 0.0}, "char", fresh, student.cfg)
    assert not fresh._logits
    parts = lm_step("tinybert", {"alpha": 0.25}, "char", fresh, student.cfg)(student, rows)
    assert set(parts) == {"ce", "hidden", "pred"} and fresh._logits
    ids, mask = fresh.train.char.ids[rows], fresh.train.char.mask[rows]
    with torch.no_grad():
        t = teacher(ids[:, :-1])
    want = 0.25 * token_kd_loss(student(ids[:, :-1]), t, 1.0, mask)
    torch.testing.assert_close(parts["pred"], want)


def test_fit_lm_trains_the_projector_and_records_its_singular_values(transfer):
    student = _student()
    step = lm_step("tinybert", {"mapping": "top"}, "char", transfer, student.cfg)
    before = step.modules[0].weight.detach().clone()
    cfg = LMTrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=0)
    result = fit_lm(student, 16, step, cfg, lambda m: {"test_accuracy": 0.5, "test_errors": 1,
                    **step.figures()}, modules=step.modules)  # fmt: skip
    assert result.status == "completed"
    assert not torch.equal(step.modules[0].weight, before)
    (history,) = result.histories.values()
    for rec in history:
        sv = rec.extra["projector_sv"]
        assert len(sv) == 32 and sv == sorted(sv, reverse=True) and sv[-1] >= 0
    want = torch.linalg.svdvals(step.modules[0].weight.detach().double())
    assert history[-1].extra["projector_sv"] == pytest.approx(want.tolist(), abs=1e-5)


def test_the_method_refuses_what_cannot_be_compared(transfer):
    student = _student()
    with pytest.raises(ValueError, match=r"positions.*vocabulary"):
        lm_step("tinybert", None, "word", transfer, student.cfg)
    with pytest.raises(ValueError, match="pass its config"):
        lm_step("tinybert", None, "char", transfer)
    with pytest.raises(ValueError, match="4 blocks cannot map onto a teacher of 2"):
        lm_step("tinybert", None, "char", transfer, build_lm("lm-teacher", 30, 80).cfg)
    with pytest.raises(ValueError, match="must be one of"):
        get_lm_method("tinybert").make_params({"mapping": "middle"})
    assert lm_step("lm-hard", None, "char", transfer).modules == ()
