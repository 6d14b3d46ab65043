"""The language-model core: the synthetic language's exact probabilities, the tiny GPT and its
cache, generation, the methods' steps against direct computations, and a short run that learns."""

from __future__ import annotations

import math

import pytest
import torch

from kdcore.checkpoint import CheckpointError
from kdcore.gpt import build_lm, generate, load_lm, save_lm
from kdcore.language import LANGUAGE, PAD, PROMPT
from kdcore.lm import (
    LMTrainConfig,
    block_for,
    continue_texts,
    fit_lm,
    floor_bits,
    logits_of,
    sample_report,
    sample_texts,
    score,
    texts_of,
)  # fmt: skip
from kdcore.lm_distill import Transfer, lm_step
from kdcore.lm_methods import LM_METHODS, get_lm_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

N = 10  # words per document, as the presets


def test_the_exact_next_character_tables_are_distributions_and_give_the_word_chain():
    w = LANGUAGE.sample_words(20, N, seed=3)
    c = LANGUAGE.corpus([LANGUAGE.text(r) for r in w])
    dist = LANGUAGE.true_next(c.ids)  # (N, L-1, V)
    counted = dist[c.mask]
    assert torch.allclose(counted.sum(-1), torch.ones(len(counted), dtype=torch.float64))
    direct = torch.tensor([sum(math.log(LANGUAGE.P[p, n]) for p, n in
                               zip([LANGUAGE.end, *r[:-1].tolist()], r.tolist(), strict=True))
                           for r in w], dtype=torch.float64)  # fmt: skip
    assert torch.allclose(LANGUAGE.true_log_prob(c.ids, c.mask), direct)


def test_a_text_outside_the_language_has_probability_zero():
    c = LANGUAGE.corpus(["the cat cat ", "the cta sees "])
    assert LANGUAGE.true_log_prob(c.ids, c.mask).isinf().all()
    assert not LANGUAGE.is_valid("the cat cat ") and LANGUAGE.is_valid("the cat sees a dog ")


def test_tokenizers_round_trip_the_same_text():
    text = LANGUAGE.text(LANGUAGE.sample_words(1, N, seed=0)[0])
    for name in ("char", "word"):
        tok = LANGUAGE.tokenizer(name)
        assert tok.decode(tok.encode(text)) == text
    assert len(LANGUAGE.wordtok.encode(text)) == N < len(LANGUAGE.chars.encode(text))


def test_the_cache_gives_the_same_logits_as_the_whole_sequence():
    torch.manual_seed(0)
    m = build_lm("lm-student", 24, 40).eval()
    x = torch.randint(1, 24, (3, 30))
    cache = m.new_cache()
    parts = [m(x[:, :4], cache)] + [m(x[:, t : t + 1], cache) for t in range(4, 30)]
    assert torch.allclose(torch.cat(parts, 1), m(x), atol=1e-5)


def test_generate_copies_prompts_and_pads_finished_rows():
    torch.manual_seed(0)
    m = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", 2)).eval()
    texts = sample_texts(4, 2, seed=1)
    ids, n = texts.char.ids, torch.tensor([5, 6, 7, 8])
    out = generate(m, ids, n, ids.shape[1], greedy=True)
    for i in range(4):
        assert torch.equal(out[i, : n[i]], ids[i, : n[i]])
    space = LANGUAGE.chars.index[" "]
    done = lambda x: (x[:, len(PROMPT) :] == space).sum(1) >= 1  # noqa: E731
    out = generate(m, ids, torch.full((4,), 2), ids.shape[1], greedy=True, done=done)
    for row in out:
        first = (row[len(PROMPT) :] == space).nonzero()
        if len(first):
            assert (row[len(PROMPT) + int(first[0]) + 1 :] == PAD).all()


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(1)
    return build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N)).eval()


@pytest.fixture(scope="module")
def transfer(teacher):
    return Transfer(teacher, sample_texts(16, N, seed=5), N, seed=0)


def test_word_level_kd_step_equals_a_direct_computation(transfer, teacher):
    torch.manual_seed(2)
    student = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))
    rows = torch.tensor([0, 3, 7])
    parts = lm_step("word-kd", {"T": 2.0, "alpha": 0.3}, "char", transfer)(student, rows)
    c = transfer.train.char
    s, t = student(c.ids[rows, :-1]).detach(), teacher(c.ids[rows, :-1]).detach()
    y, m = c.ids[rows, 1:], c.mask[rows]
    kl, ce, count = 0.0, 0.0, 0
    for b in range(3):
        for j in range(y.shape[1]):
            if m[b, j]:
                p, logq = torch.softmax(t[b, j] / 2, -1), torch.log_softmax(s[b, j] / 2, -1)
                kl += float((p * (p.log() - logq)).sum()) * 4
                ce -= float(torch.log_softmax(s[b, j], -1)[y[b, j]])
                count += 1
    assert parts["kd"].item() == pytest.approx(0.3 * kl / count, rel=1e-4)
    assert parts["ce"].item() == pytest.approx(0.7 * ce / count, rel=1e-4)


def test_sequence_level_text_is_the_teachers_own_greedy_continuation(transfer, teacher):
    text = transfer.texts("teacher-greedy", 2)
    ids = transfer.train.char.ids
    for i in range(3):  # re-decode without the cache, one argmax at a time
        words = (ids[i, len(PROMPT) :] == LANGUAGE.chars.index[" "]).cumsum(0)
        n = int((words < 2).sum()) + len(PROMPT) + 1
        seq = ids[i, :n].tolist()
        while len(seq) < ids.shape[1] and seq[len(PROMPT) :].count(LANGUAGE.chars.index[" "]) < N:
            with torch.no_grad():
                seq.append(int(teacher(torch.tensor([seq]))[0, -1].argmax()))
        assert text.ids[i, : len(seq)].tolist() == seq
    assert not torch.equal(text.ids, ids)  # the teacher really wrote something


def test_a_logit_level_method_refuses_a_student_with_another_tokenizer(transfer):
    with pytest.raises(ValueError, match="vocabulary"):
        lm_step("word-kd", None, "word", transfer)
    for name, m in LM_METHODS.items():  # the others build for the word student
        if not m.same_vocab:
            lm_step(name, None, "word", transfer)


def test_on_policy_trains_the_student_on_its_own_samples(transfer, teacher):
    torch.manual_seed(3)
    student = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))
    seen = []
    original = teacher.forward
    teacher.forward = lambda idx, cache=None: seen.append(idx) or original(idx, cache)
    try:
        parts = lm_step("on-policy", {"beta": 1.0}, "char", transfer)(student, torch.arange(4))
    finally:
        del teacher.forward
    assert not torch.equal(seen[0], transfer.train.char.ids[:4, :-1])  # text it wrote itself
    parts["jsd"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_every_method_has_a_known_text_source_and_checked_parameters():
    for m in LM_METHODS.values():
        assert m.reads(m.params()) in ("corpus", "teacher-greedy", "teacher-sample", "student")
    with pytest.raises(ValueError):
        get_lm_method("on-policy").make_params({"beta": 2.0})
    with pytest.raises(ValueError, match="unknown method"):
        get_lm_method("nope")


def test_a_short_run_learns_and_bits_per_char_meet_the_floor_definition():
    train, test = sample_texts(256, N, seed=11), sample_texts(64, N, seed=12)
    torch.manual_seed(0)
    model = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))
    before = score(model, test.char)["bits_per_char"]
    step = lm_step("lm-hard", None, "char", Transfer(None, train, N))
    result = fit_lm(model, 256, step, LMTrainConfig(epochs=3, batch_size=32, lr=1e-2),
                    lambda m: score(m, test.char))  # fmt: skip
    after = result.history[-1].extra["bits_per_char"]
    assert result.ok and after < before - 1.0
    floor = floor_bits(test)
    assert 0.4 < floor < after  # the language's entropy is below any trained model


def test_sample_report_on_true_text_is_all_grammatical():
    texts = texts_of(sample_texts(30, N, seed=4).char.ids, "char")
    report = sample_report(texts)
    assert report["sample_valid"] == 1.0 and report["sample_nll"] > 0


def test_weights_round_trip_and_a_corrupt_file_is_refused_in_one_line(tmp_path):
    m = build_lm("lm-draft", 24, 40)
    path = save_lm(m, tmp_path / "m.safetensors")
    back, _ = load_lm(path)
    x = torch.randint(1, 24, (2, 10))
    assert torch.equal(back(x), m.eval()(x))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_lm(bad)
    assert "\n" not in str(err.value)


def test_continue_texts_and_logits_agree_on_shapes(teacher):
    texts = sample_texts(5, N, seed=9)
    ids = continue_texts(teacher, texts.char, "char", N, 1, greedy=False,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert ids.shape == texts.char.ids.shape
    assert logits_of(teacher, ids).shape == (*ids[:, :-1].shape, LANGUAGE.chars.vocab_size)


def test_a_finite_but_exploding_loss_ends_the_run_as_diverged():
    """The trainer's own rule (kdcore.train.divergence): a loss that stays finite but grows a
    millionfold from the first step fails the run, keeping the epoch's record."""
    model = build_lm("lm-draft", LANGUAGE.chars.vocab_size, block_for("char", N))
    steps = iter(range(10_000))

    def exploding(m, rows):
        zero = sum(p.sum() for p in m.parameters()) * 0.0  # a graph, no gradient
        return {"loss": zero + (1.0 if next(steps) == 0 else 1e9)}

    test = sample_texts(16, N, seed=2).char
    result = fit_lm(model, 64, exploding, LMTrainConfig(epochs=3, batch_size=32),
                    lambda m: score(m, test))  # fmt: skip
    assert result.status == "failed" and "diverged in epoch 1" in result.message
    assert len(result.history) == 1
