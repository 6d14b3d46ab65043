"""Glue between :func:`kdcore.lm.fit_lm` and an entry of :data:`kdcore.lm_methods.LM_METHODS`.

:class:`Transfer` holds what every student of a run shares: the teacher, the training documents,
the teacher's continuations of them (written once per decoding and prompt length) and the
teacher's logits on each text it is asked about and, for a relation method, its residual stream
entering the block it reads (computed once: the inputs are not augmented).
:func:`lm_step` turns a method into the step function ``fit_lm`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .gpt import GPTConfig, TinyGPT
from .language import Corpus
from .lm import Texts, continue_texts, corpus_of, logits_of, retokenize
from .lm_methods import LMBatch, get_lm_method

TEACHER_TOKENIZER = "char"
# documents per teacher pass when caching its streams: on the 2-core CPU a pass over the 4,000
# training documents took 4.4 s in chunks of 64, 4.9 s of 256, 5.3 s of 512 and 8.6 s in one
CHUNK = 128


@dataclass
class Transfer:
    teacher: TinyGPT | None
    train: Texts
    n_words: int
    seed: int = 0
    _texts: dict[tuple, Corpus] = field(default_factory=dict)
    _logits: dict[tuple, torch.Tensor] = field(default_factory=dict)
    _streams: dict[tuple, torch.Tensor] = field(default_factory=dict)

    def texts(self, reads: str, prompt_words: int = 0) -> Corpus:
        """The training text a method reads, in the teacher's tokenization: the true corpus, or
        the teacher's continuation of each document after ``prompt_words`` true words."""
        if reads == "corpus":
            return self.train.char
        key = (reads, prompt_words)
        if key not in self._texts:
            if self.teacher is None:
                raise ValueError(f"reading {reads} text needs a teacher")
            g = torch.Generator().manual_seed(self.seed + 17)
            ids = continue_texts(self.teacher, self.train.char, TEACHER_TOKENIZER, self.n_words,
                                 prompt_words, reads == "teacher-greedy", 1.0, g)  # fmt: skip
            self._texts[key] = corpus_of(ids, TEACHER_TOKENIZER)
        return self._texts[key]

    def teacher_logits(self, reads: str, prompt_words: int = 0) -> torch.Tensor:
        """The teacher's next-token logits on that text, (N, L-1, V), computed once."""
        key = (reads, prompt_words)
        if key not in self._logits:
            self._logits[key] = logits_of(self.teacher, self.texts(reads, prompt_words).ids)
        return self._logits[key]

    def teacher_stream(self, reads: str, prompt_words: int, block: int) -> torch.Tensor:
        """The teacher's residual stream entering ``block`` (0-based) on that text, (N, L-1, D),
        computed once: a relation method reads the block's queries, keys and values from it
        (one LayerNorm and one linear map a batch) instead of running the teacher every step."""
        return self.teacher_streams(reads, prompt_words, (block,))[0]

    @torch.no_grad()
    def teacher_streams(self, reads: str, prompt_words: int, blocks) -> list[torch.Tensor]:
        """:meth:`teacher_stream` for several blocks, those not yet cached computed in one pass
        over the text (a hidden-state method reads several)."""
        missing = sorted({b for b in blocks if (reads, prompt_words, b) not in self._streams})
        if missing:
            ids = self.texts(reads, prompt_words).ids
            self.teacher.eval()
            parts = [self.teacher.streams(ids[i : i + CHUNK, :-1], missing)
                     for i in range(0, len(ids), CHUNK)]  # fmt: skip
            for k, b in enumerate(missing):
                self._streams[(reads, prompt_words, b)] = torch.cat([p[k] for p in parts])
        return [self._streams[(reads, prompt_words, b)] for b in blocks]


@dataclass
class LMStep:
    """What :func:`lm_step` builds: ``step(model, rows)`` the named losses of a batch of
    documents; ``modules`` what the method trains beside the student (``fit_lm``'s ``modules``);
    :meth:`figures` the JSON-ready figures the method records with each epoch."""

    fn: Callable[[TinyGPT, torch.Tensor], dict[str, torch.Tensor]]
    modules: tuple[torch.nn.Module, ...] = ()
    report: Callable[[torch.nn.Module], dict[str, Any]] | None = None

    def __call__(self, model: TinyGPT, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fn(model, rows)

    def figures(self) -> dict[str, Any]:
        if self.report is None or not self.modules:
            return {}
        with torch.no_grad():
            return self.report(self.modules[0])


def lm_step(
    method: str, params: Any, tokenizer: str, transfer: Transfer, student: GPTConfig | None = None
) -> LMStep:
    """The step for a student with ``tokenizer`` (and config ``student``, which a method that
    trains a module beside it needs to size it) trained by ``method``.

    Raises ValueError (one line) when the method compares logits position by position and the
    student's tokenizer is not the teacher's: there is no shared vocabulary to compare.
    """
    m = get_lm_method(method)
    p = m.make_params(params)
    if m.same_vocab and tokenizer != TEACHER_TOKENIZER:
        inside = m.attends is not None or m.hidden is not None
        what = "the two models' positions" if inside else "next-token distributions"
        raise ValueError(
            f"{m.title} compares {what} entry by entry, so it needs the "
            f"teacher's vocabulary ({TEACHER_TOKENIZER}); this student's tokenizer is {tokenizer}"
        )
    reads = m.reads(p)
    prompt_words = getattr(p, "prompt_words", 0)

    if reads == "student":  # on-policy: the student writes, the teacher scores (GKD, Alg. 1)
        g = torch.Generator().manual_seed(transfer.seed + 29)
        corpus = transfer.train.tokens(tokenizer)

        def on_policy(model: TinyGPT, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            own = float(torch.rand((), generator=g)) < p.lam
            if own:
                batch = Corpus(corpus.ids[rows], corpus.mask[rows], corpus.chars[rows])
                ids = continue_texts(model, batch, tokenizer, transfer.n_words, prompt_words,
                                     False, 1.0, g)  # fmt: skip
                mask = corpus_of(ids, tokenizer).mask
                model.train()
            else:
                ids, mask = corpus.ids[rows], corpus.mask[rows]
            with torch.no_grad():
                t = transfer.teacher(ids[:, :-1])
            return m.loss(LMBatch(model(ids[:, :-1]), ids[:, 1:], mask, t, mask), p)

        return LMStep(on_policy)

    text = transfer.texts(reads, prompt_words)
    own = text if tokenizer == TEACHER_TOKENIZER else retokenize(
        text.ids, TEACHER_TOKENIZER, tokenizer, transfer.n_words)  # fmt: skip
    own = own.to(text.ids.device)
    t_logits = None
    if m.reads_logits(p):
        t_logits = transfer.teacher_logits(reads, prompt_words)
    if m.attends is not None:
        layer = m.attends(p) - 1
        if not 0 <= layer < transfer.teacher.cfg.layers:
            raise ValueError(f"the teacher has no block {layer + 1}; it has "
                             f"{transfer.teacher.cfg.layers}")  # fmt: skip
        stream = transfer.teacher_stream(reads, prompt_words, layer)
    module, pairs, streams = None, (), {}
    if m.hidden is not None:
        if student is None:
            raise ValueError(f"{m.title} reads the student's layers: pass its config")
        s_cfg, t_cfg = student, transfer.teacher.cfg
        pairs = m.hidden(p, s_cfg.layers, t_cfg.layers)
        if m.module is not None:
            module = m.module(p, s_cfg.width, t_cfg.width).to(own.ids.device)
        elif pairs and s_cfg.width != t_cfg.width:
            raise ValueError(f"{m.title} compares hidden states without a projector, so the "
                             f"student needs the teacher's width {t_cfg.width}, not "
                             f"{s_cfg.width}")  # fmt: skip
        # the teacher's layers past its embeddings, cached once (its inputs are not augmented);
        # its embeddings cost a lookup a batch, so they are not stored
        deep = [n for _, n in pairs if n]
        streams = dict(zip(deep, transfer.teacher_streams(reads, prompt_words, deep), strict=True))

    def offline(model: TinyGPT, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        ids = own.ids[rows, :-1]
        inside: dict = {}
        if m.attends is not None:  # MiniLM: the student's last block, the teacher's chosen one
            keep: list = []
            s = model(ids, keep=keep)
            with torch.no_grad():
                t_qkv = transfer.teacher.block_qkv(stream[rows], layer)
            inside = {"student_qkv": keep[-1], "teacher_qkv": t_qkv}
        elif pairs:  # TinyBERT, DistilBERT: the student's layer m against the teacher's g(m)
            hidden: list = []
            s = model(ids, hidden=hidden)
            with torch.no_grad():
                t_h = [streams[n][rows] if n else transfer.teacher.stream(ids, 0) for _, n in pairs]
            inside = {"student_hidden": [hidden[k] for k, _ in pairs], "teacher_hidden": t_h,
                      "module": module}  # fmt: skip
        else:
            s = model(ids)
        t = t_logits[rows] if t_logits is not None else None
        return m.loss(LMBatch(s, own.ids[rows, 1:], own.mask[rows], t, text.mask[rows], **inside),
                      p)  # fmt: skip

    return LMStep(offline, (module,) if module is not None else (), m.figures)
