"""Training and measuring tiny language models on the synthetic language.

:func:`fit_lm` is the language-model counterpart of :func:`kdcore.train.fit`: it knows nothing of
distillation, runs a step function over batches of documents held in memory and reports to the
same callbacks (progress, epoch records, cancellation), so the job queue and the run store follow
a language-model run like any other. :func:`measure` scores a model against the truth, the
teacher and its own samples; :func:`texts_of` turns any model's ids back into text, so models
with different tokenizers are compared on the same characters.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .gpt import TinyGPT, generate
from .language import LANGUAGE, PAD, PROMPT, Corpus
from .losses.lm import forward_kl_per_token
from .train import Callback, EpochRecord, FitResult, Progress, divergence

LN2 = math.log(2.0)


@dataclass(frozen=True)
class LMTrainConfig:
    epochs: int = 4
    batch_size: int = 64  # documents
    lr: float = 3e-3  # peak, AdamW
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of steps with a linear ramp
    grad_clip: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Texts:
    """One set of documents in the two tokenizations, plus their words (for prompts)."""

    words: torch.Tensor  # (N, n_words) word indices of the language
    char: Corpus
    word: Corpus

    def tokens(self, tokenizer: str) -> Corpus:
        return self.char if tokenizer == "char" else self.word


def make_texts(texts: list[str], n_words: int) -> Texts:
    """Both tokenizations of ``texts`` (documents after the prompt), padded to fixed lengths."""
    words = torch.tensor([[LANGUAGE.words.index(w) for w in t.split()][:n_words] +
                          [LANGUAGE.end] * max(0, n_words - len(t.split()))
                          for t in texts])  # fmt: skip
    return Texts(
        words,
        LANGUAGE.corpus(texts, "char", LANGUAGE.max_chars(n_words)),
        LANGUAGE.corpus(texts, "word", 1 + n_words),
    )


def sample_texts(n_docs: int, n_words: int, seed: int) -> Texts:
    """``n_docs`` documents drawn from the true language."""
    w = LANGUAGE.sample_words(n_docs, n_words, seed)
    return make_texts([LANGUAGE.text(r) for r in w], n_words)


def block_for(tokenizer: str, n_words: int) -> int:
    return LANGUAGE.max_chars(n_words) if tokenizer == "char" else 1 + n_words


# ----------------------------------------------------------------------------- generation


def done_after(tokenizer: str, n_words: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``done(ids) -> (B,)``: the rows whose text after the prompt has ``n_words`` words."""
    if tokenizer == "char":
        space = LANGUAGE.chars.index[" "]
        return lambda ids: (ids[:, len(PROMPT) :] == space).sum(1) >= n_words
    return lambda ids: (ids[:, 1:] != PAD).sum(1) >= n_words


def prompts_of(corpus: Corpus, tokenizer: str, words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt lengths (B,) in tokens: the document's prompt and its first ``words`` words."""
    if tokenizer == "word":
        return corpus.ids, torch.full((len(corpus),), 1 + words, device=corpus.ids.device)
    space = LANGUAGE.chars.index[" "]
    after = (corpus.ids[:, len(PROMPT) :] == space).cumsum(1)  # words finished so far
    n = (after < words).sum(1) + len(PROMPT) + (1 if words else 0)
    return corpus.ids, n.clamp(max=corpus.ids.shape[1])


def continue_texts(
    model: TinyGPT, corpus: Corpus, tokenizer: str, n_words: int, prompt_words: int,
    greedy: bool, temperature: float = 1.0, generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """Each document's first ``prompt_words`` words continued by ``model`` to ``n_words`` words;
    (N, L) ids in the model's tokenization."""
    ids, n = prompts_of(corpus, tokenizer, prompt_words)
    return generate(model, ids, n, ids.shape[1], temperature, greedy, generator,
                    done_after(tokenizer, n_words))  # fmt: skip


def texts_of(ids: torch.Tensor, tokenizer: str) -> list[str]:
    """Documents as text after the prompt, whichever tokenizer made them."""
    tok = LANGUAGE.tokenizer(tokenizer)
    skip = len(PROMPT) if tokenizer == "char" else 1
    return [tok.decode(row[skip:].tolist()) for row in ids.cpu()]


def retokenize(ids: torch.Tensor, src: str, dst: str, n_words: int) -> Corpus:
    """Model output in tokenizer ``src`` as a padded corpus in ``dst`` (texts that are not
    sequences of lexicon words cannot be word-tokenized; they are cut at the first bad word)."""
    texts = texts_of(ids, src)
    if dst == "word":
        texts = [_lexicon_prefix(t) for t in texts]
    return LANGUAGE.corpus(texts, dst, block_for(dst, n_words))


def _lexicon_prefix(text: str) -> str:
    out = []
    for w in text.split(" "):
        if w not in LANGUAGE.wordtok.index or w == "<pad>":
            break
        out.append(w + " ")
    return "".join(out)


def corpus_of(ids: torch.Tensor, tokenizer: str) -> Corpus:
    """Generated ids (N, L) as a corpus: counted positions are the generated ones."""
    skip = len(PROMPT) - 1 if tokenizer == "char" else 0
    mask = ids[:, 1:] != PAD
    mask[:, :skip] = False
    # characters of text after the prompt, by table: no decoding (this runs at every on-policy
    # step); equal to len() of texts_of's strings
    lengths = torch.tensor(LANGUAGE.tokenizer(tokenizer).lengths, device=ids.device)
    return Corpus(ids, mask, (lengths[ids[:, 1:]] * mask).sum(1))


# ----------------------------------------------------------------------------- training


def fit_lm(
    model: TinyGPT,
    n_docs: int,
    step: Callable[[TinyGPT, torch.Tensor], dict[str, torch.Tensor]],
    cfg: LMTrainConfig,
    evaluate: Callable[[TinyGPT], dict],
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
    name: str = "",
    modules: Iterable[nn.Module] = (),
) -> FitResult:
    """Train ``model`` for ``cfg.epochs`` passes over ``n_docs`` documents.

    ``step(model, rows)`` gets the batch's document indices (B,) and returns named scalar losses
    (their sum is minimised); ``evaluate(model)`` returns the epoch's figures, with at least
    ``test_accuracy`` (next-token accuracy on held-out text) and ``test_errors``. ``modules``
    are trained with the model by the same optimiser (a method's projector).
    """
    callbacks = list(callbacks)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed)
    trainable = [*model.parameters(), *(q for mod in modules for q in mod.parameters())]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, math.ceil(n_docs / cfg.batch_size))
    total = per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    history: list[EpochRecord] = []
    t0 = time.perf_counter()
    done = 0
    first, peak = float("nan"), float("-inf")  # the first step's loss; the largest epoch mean

    def result(status: str, message: str) -> FitResult:
        return FitResult(status, message, {name or "model": history}, time.perf_counter() - t0)

    for epoch in range(1, cfg.epochs + 1):
        e0 = time.perf_counter()
        model.train()
        order = torch.randperm(n_docs, generator=g).to(device)
        sums: dict[str, float] = {}
        for i in range(per_epoch):
            if cancel is not None and cancel.is_set():
                return result("cancelled", "cancelled")
            lr = cfg.lr * min((done + 1) / warm, 0.5 * (1 + math.cos(math.pi * done / total)))
            for group in opt.param_groups:
                group["lr"] = lr
            parts = step(model, order[i * cfg.batch_size : (i + 1) * cfg.batch_size])
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                return result("failed", f"the loss is {float(loss)} at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if done == 0:
                first = float(loss.detach())
            done += 1
            progress = Progress(epoch, i + 1, per_epoch, total, done, time.perf_counter() - t0)
            for cb in callbacks:
                cb.on_step(progress)
        model.eval()
        figures = evaluate(model)
        losses = {k: v / per_epoch for k, v in sums.items()}
        losses["total"] = sum(losses.values())
        record = EpochRecord(
            epoch, losses, figures.pop("train_accuracy", 0.0), figures.pop("test_accuracy"),
            figures.pop("test_errors"), lr, round(time.perf_counter() - e0, 3), name,
            extra=figures,
        )  # fmt: skip
        history.append(record)
        for cb in callbacks:
            cb.on_epoch(record, progress)
        # finite but exploding: the trainer's own rule, next-token accuracy against chance
        peak = max(peak, abs(losses["total"]))
        why = divergence(first, abs(losses["total"]), peak, record.test_accuracy, model.cfg.vocab)
        if why:  # the epoch's record stays in the history
            return result("failed", f"training diverged in epoch {epoch}: {why} (try a lower "
                          "learning rate or gradient clipping)")  # fmt: skip
    return result("completed", "")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over counted positions. logits (B, L, V), targets (B, L)."""
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, L)
    return (ce * mask).sum() / mask.sum().clamp(min=1)


# ----------------------------------------------------------------------------- measuring


@torch.no_grad()
def logits_of(model: TinyGPT, ids: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Next-token logits for every document, (N, L-1, V)."""
    model.eval()
    return torch.cat([model(ids[i : i + batch, :-1]) for i in range(0, len(ids), batch)])


@torch.no_grad()
def score(model: TinyGPT, corpus: Corpus) -> dict:
    """Held-out figures on real text: bits per character (the documents' total negative
    log-likelihood over their characters, so models with different tokenizers compare) and
    next-token accuracy."""
    logits = logits_of(model, corpus.ids)
    y, m = corpus.ids[:, 1:], corpus.mask
    logp = torch.log_softmax(logits.float(), -1).gather(2, y.unsqueeze(2)).squeeze(2)
    nll = -(logp * m).sum()
    right = ((logits.argmax(-1) == y) & m).sum()
    count = m.sum()
    return {
        "bits_per_char": round(float(nll / corpus.chars.sum() / LN2), 5),
        "test_accuracy": round(float(right / count), 5),
        "test_errors": int(count - right),
    }


@torch.no_grad()
def measure(
    model: TinyGPT, tokenizer: str, test: Texts, n_words: int, teacher: TinyGPT | None,
    floor_bits: float, samples: int = 200, prompt_words: int = 2, seed: int = 0,
    teacher_greedy: list[str] | None = None, teacher_logits: torch.Tensor | None = None,
) -> dict:  # fmt: skip
    """Everything a language-model preset reports for one model, JSON-ready.

    On held-out true text: ``bits_per_char`` and ``kl_true`` (its excess over the language's
    exact entropy ``floor_bits``, i.e. the sequence-level KL from the truth, per character);
    ``kl_teacher`` (nats per token, same tokenizer as the teacher only). On ``samples`` texts the
    model writes from scratch at temperature 1: the share that are grammatical
    (``sample_valid``), that are distinct, and their exact negative log-likelihood under the
    language (``sample_nll``, bits per character over the grammatical ones: low means the model
    keeps to the likeliest texts). On the test documents' first ``prompt_words`` words continued
    greedily: the share identical to the teacher's own greedy continuation and the teacher's
    bits per character on them (Kim & Rush's "teacher probability of the greedy output").
    ``teacher_logits``: the teacher's logits on the test documents, when the caller has them.
    """
    corpus = test.tokens(tokenizer)
    out = score(model, corpus)
    out["kl_true"] = round(out["bits_per_char"] - floor_bits, 5)
    if teacher is not None and tokenizer == "char":
        t = logits_of(teacher, corpus.ids) if teacher_logits is None else teacher_logits
        kl = forward_kl_per_token(t, logits_of(model, corpus.ids), corpus.mask)
        out["kl_teacher"] = round(float(kl.sum() / corpus.mask.sum()), 5)
    g = torch.Generator().manual_seed(seed)
    start = sample_texts(samples, n_words, seed + 7).tokens(tokenizer)
    ids = continue_texts(model, _rows(start, samples), tokenizer, n_words, 0, False, 1.0, g)
    out.update(sample_report(texts_of(ids, tokenizer)))
    greedy = texts_of(continue_texts(model, corpus, tokenizer, n_words, prompt_words, True),
                      tokenizer)  # fmt: skip
    if teacher_greedy is not None:
        same = sum(a == b for a, b in zip(greedy, teacher_greedy, strict=True))
        out["greedy_match"] = round(same / len(greedy), 4)
    if teacher is not None:
        c = LANGUAGE.corpus(greedy, "char", LANGUAGE.max_chars(n_words)).to(corpus.ids.device)
        out["greedy_teacher_bits"] = score(teacher, c)["bits_per_char"]
    out["examples"] = [PROMPT + t for t in texts_of(ids[:3], tokenizer)]
    return out


def _rows(corpus: Corpus, n: int) -> Corpus:
    return Corpus(corpus.ids[:n], corpus.mask[:n], corpus.chars[:n])


def sample_report(texts: list[str]) -> dict:
    """Share of grammatical and of distinct texts, and the grammatical ones' exact negative
    log-likelihood under the language in bits per character."""
    valid = [t for t in texts if t and LANGUAGE.is_valid(t)]
    report = {"sample_valid": round(len(valid) / max(len(texts), 1), 4),
              "sample_distinct": round(len(set(texts)) / max(len(texts), 1), 4)}  # fmt: skip
    if valid:
        c = LANGUAGE.corpus(valid)
        nll = -LANGUAGE.true_log_prob(c.ids, c.mask).sum() / c.chars.sum()
        report["sample_nll"] = round(float(nll) / LN2, 5)
    return report


def floor_bits(test: Texts) -> float:
    """The language's exact entropy of the test documents, bits per character: no model can
    score lower on average."""
    c = test.char
    return float(-LANGUAGE.true_log_prob(c.ids, c.mask).sum() / c.chars.sum()) / LN2
