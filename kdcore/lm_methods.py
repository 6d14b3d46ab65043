"""The one table of language-model distillation methods.

A language-model method says which text the student reads (:attr:`LMMethod.reads`: the true
corpus, the teacher's own continuations of it, or the student's own samples), what it is trained
to match there (:attr:`LMMethod.loss`, built on the pure functions of :mod:`kdcore.losses.lm` and
:mod:`kdcore.losses.minilm`) and, for a method that looks inside the models, which of the
teacher's blocks it reads (:attr:`LMMethod.attends`, :attr:`LMMethod.hidden`), what module it
trains with the student (:attr:`LMMethod.module`, TinyBERT's projector) and how it starts the
student (:attr:`LMMethod.init`, DistilBERT's layers taken from the teacher). The vision
methods' table (:mod:`kdcore.methods`) cannot hold them: a vision method never chooses its
inputs. Nothing
outside this table names one of these methods; :mod:`kdcore.lm_distill` turns an entry into a
training step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from .gpt import LM_MODELS, TinyGPT, init_from
from .lm import cross_entropy
from .losses.distilbert import cosine_loss, every_other
from .losses.lm import generalized_jsd, token_kd_loss, uld_loss
from .losses.minilm import PAIRS, minilm_losses
from .losses.tinybert import MAPPINGS, hidden_losses, layer_map
from .method import check_config, param
from .projectors import singular_values

READS = ("corpus", "teacher-greedy", "teacher-sample", "student")


@dataclass
class LMBatch:
    """What a loss sees: the student's logits (B, L, V) on the text it reads, the targets and
    counted positions (B, L), and the teacher's logits on the same text in the teacher's own
    tokenization (B, Lt, Vt) with their mask, when the method uses a teacher; and, when it reads
    the models' self-attention (:attr:`LMMethod.attends`), the queries, keys and values of the
    student's last block and of the teacher's chosen block, (B, L, D) each."""

    student: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    teacher: torch.Tensor | None = None
    teacher_mask: torch.Tensor | None = None
    student_qkv: tuple[torch.Tensor, ...] | None = None
    teacher_qkv: tuple[torch.Tensor, ...] | None = None
    # a hidden-state method (:attr:`LMMethod.hidden`): the student's and the teacher's residual
    # streams at each mapped pair of layers, (B, L, D') and (B, L, D), and the method's module
    student_hidden: list[torch.Tensor] | None = None
    teacher_hidden: list[torch.Tensor] | None = None
    module: torch.nn.Module | None = None


@dataclass(frozen=True)
class LMMethod:
    name: str
    title: str
    citation: str
    summary: str
    params: type
    reads: Callable[[Any], str]  # params -> one of READS
    loss: Callable[[LMBatch, Any], dict[str, torch.Tensor]]
    uses_teacher: bool = True
    same_vocab: bool = True  # compares logits position by position: needs the teacher's tokenizer
    baseline: bool = False
    # params -> the teacher's block (1 = first) whose queries, keys and values the loss reads
    # beside the student's last block's; None for a method of logits or text alone
    attends: Callable[[Any], int] | None = None
    # whether the loss reads the teacher's logits (computed once for the whole text), or
    # params -> whether: a method that reads only inside the teacher need not pay a pass over
    # the corpus for them
    teacher_logits: bool | Callable[[Any], bool] = True
    # (params, student blocks, teacher blocks) -> the pairs (m, g(m)) of layers whose residual
    # streams the loss compares (0 = the embeddings, m = the output of block m); None for none
    hidden: Callable[[Any, int, int], tuple[tuple[int, int], ...]] | None = None
    # (params, student width, teacher width) -> a module trained with the student (a projector)
    module: Callable[[Any, int, int], torch.nn.Module] | None = None
    # the module -> JSON-ready figures recorded with each epoch (a projector's singular values)
    figures: Callable[[torch.nn.Module], dict[str, Any]] | None = None
    # (params, the student as built, the teacher) -> the student started from the teacher's
    # weights, or as built; None: every student starts from its seed's random weights
    init: Callable[[Any, TinyGPT, TinyGPT], TinyGPT] | None = None

    def reads_logits(self, params: Any) -> bool:
        """Whether the loss, with these parameters, reads the teacher's logits."""
        if not self.uses_teacher:
            return False
        return self.teacher_logits(params) if callable(self.teacher_logits) else self.teacher_logits

    def make_params(self, values: dict[str, Any] | None = None) -> Any:
        known = {f.name for f in fields(self.params)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"method {self.name} has no parameter {', '.join(unknown)}")
        p = replace(self.params(), **(values or {}))
        check_config(p)
        return p

    def params_dict(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        return asdict(self.make_params(values))


LM_METHODS: dict[str, LMMethod] = {}


def register(method: LMMethod) -> LMMethod:
    if method.name in LM_METHODS:
        raise ValueError(f"language-model method {method.name!r} is registered twice")
    if not method.uses_teacher and method.same_vocab:
        method = replace(method, same_vocab=False)
    LM_METHODS[method.name] = method
    return method


def get_lm_method(name: str) -> LMMethod:
    if name not in LM_METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(LM_METHODS)}")
    return LM_METHODS[name]


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class NoParams:
    pass


@dataclass(frozen=True)
class WordKDParams:
    T: float = param(1.0, "Temperature T", 0.1, 20.0)
    # Kim & Rush interpolate the NLL and the KD term with a weight α; an even mix is this
    # project's default, not theirs
    alpha: float = param(0.5, "α, weight of the teacher term", 0.0, 1.0)


@dataclass(frozen=True)
class SeqKDParams:
    decode: str = param("greedy", "Teacher's decoding", choices=("greedy", "sample"))
    prompt_words: int = param(3, "True words before the teacher writes", 0, 20)


@dataclass(frozen=True)
class SeqWordKDParams:
    decode: str = param("greedy", "Teacher's decoding", choices=("greedy", "sample"))
    prompt_words: int = param(3, "True words before the teacher writes", 0, 20)
    T: float = param(1.0, "Temperature T", 0.1, 20.0)
    alpha: float = param(0.5, "α, weight of the word-level term", 0.0, 1.0)


@dataclass(frozen=True)
class OnPolicyParams:
    beta: float = param(0.0, "β: 0 forward KL, 1 reverse KL", 0.0, 1.0)
    lam: float = param(1.0, "λ, share of batches the student writes", 0.0, 1.0)
    prompt_words: int = param(1, "True words before the student writes", 0, 20)


@dataclass(frozen=True)
class ULDParams:
    lam: float = param(0.5, "λ, weight of the ULD term", 0.0, 10.0)


# the relation heads both the teacher and the student can be split into: the common divisors of
# their widths (each relation head count must divide its model's width)
_WIDTHS = math.gcd(LM_MODELS["lm-teacher"][0], LM_MODELS["lm-student"][0])
RELATION_HEADS = tuple(h for h in range(1, _WIDTHS + 1) if _WIDTHS % h == 0)


@dataclass(frozen=True)
class MiniLMParams:
    relations: str = param("q-q k-k v-v", "Relations distilled", choices=tuple(PAIRS),
                           help="q-q k-k v-v: MiniLMv2; q-k v-v: MiniLM's attention "
                           "distributions and value relation")  # fmt: skip
    # as many relation heads as the teacher has attention heads, 4, against the student's 2: this
    # project's default (MiniLMv2 tunes the number per teacher)
    heads: int = param(4, "Relation heads A_r", choices=RELATION_HEADS)
    teacher_layer: int = param(LM_MODELS["lm-teacher"][1], "Teacher's block read (last = 4)", 1,
                               LM_MODELS["lm-teacher"][1])  # fmt: skip
    # MiniLM trains on the relation terms alone, then fine-tunes; a language model here must also
    # learn to predict, so the terms are added to the corpus's cross-entropy (this project's
    # choice), each of weight λ (MiniLMv2 weighs its three terms 1 each)
    lam: float = param(1.0, "λ, weight of each relation term", 0.0, 100.0)


@dataclass(frozen=True)
class TinyBERTParams:
    mapping: str = param("uniform", "Layer mapping g(m)", choices=MAPPINGS,
                         help="uniform g(m) = mN/M, top g(m) = m + N - M, bottom g(m) = m; the "
                         "embeddings always learn the teacher's")  # fmt: skip
    # TinyBERT distils the layers first, then the predictions, then fine-tunes; a language model
    # here must also learn to predict, so the terms are added to the corpus's cross-entropy (this
    # project's choice, as for MiniLM), all layers of weight λ (the paper's λ_m are 1)
    lam: float = param(1.0, "λ, weight of the hidden-state terms", 0.0, 1000.0)
    # TinyBERT's prediction-layer term, eq. (10): the soft cross-entropy to the teacher's logits
    # at t = 1, here its KL (the same gradient); 0 leaves the logits to the real text alone
    alpha: float = param(0.0, "α, weight of the prediction-layer term", 0.0, 100.0,
                         help="TinyBERT's eq. (10) at t = 1: the teacher's next-character "
                         "distribution at every position")  # fmt: skip


@dataclass(frozen=True)
class DistilBERTParams:
    # the official code's defaults (Sanh et al. 2019 give no weights): alpha_ce 5, alpha_mlm 2
    # (here the causal LM's, as DistilGPT2's alpha_clm), alpha_cos 1, temperature 2
    T: float = param(2.0, "Temperature T", 0.1, 20.0)
    alpha_ce: float = param(5.0, "α_ce, weight of the soft targets (T²·KL)", 0.0, 100.0)
    alpha_lm: float = param(2.0, "α_lm, weight of the real text's cross-entropy", 0.0, 100.0)
    alpha_cos: float = param(1.0, "α_cos, weight of the cosine loss", 0.0, 100.0,
                             help="1 − cos between the two models' last hidden states at every "
                             "position")  # fmt: skip
    init: str = param(
        "teacher",
        "Student starts from",
        choices=("teacher", "random"),
        help="teacher: one block of every two (blocks 1 and 3 of 4), the "
        "embeddings, final LayerNorm and head copied; random: its seed's weights",
    )


def _take_layers(p: DistilBERTParams, student: TinyGPT, teacher: TinyGPT) -> TinyGPT:
    if p.init == "random":
        return student
    return init_from(student, teacher, every_other(student.cfg.layers, teacher.cfg.layers))


def _projector(p: TinyBERTParams, student_width: int, teacher_width: int) -> torch.nn.Module:
    """W_h: one linear map from the student's width into the teacher's, shared by every mapped
    layer as the official code's ``fit_dense``; PyTorch's default initialisation."""
    return torch.nn.Linear(student_width, teacher_width)


def _spectrum(projector: torch.nn.Module) -> dict[str, Any]:
    sv = singular_values(projector.weight)
    return {"projector_sv": [round(float(v), 5) for v in sv]}


# ----------------------------------------------------------------------------- losses


def _ce(b: LMBatch) -> torch.Tensor:
    return cross_entropy(b.student, b.targets, b.mask)


def _word_kd(b: LMBatch, p: WordKDParams) -> dict[str, torch.Tensor]:
    kd = token_kd_loss(b.student, b.teacher, p.T, b.mask)
    return {"ce": (1 - p.alpha) * _ce(b), "kd": p.alpha * kd}


def _on_policy(b: LMBatch, p: OnPolicyParams) -> dict[str, torch.Tensor]:
    return {"jsd": generalized_jsd(b.student, b.teacher, p.beta, 1.0, b.mask)}


def _uld(b: LMBatch, p: ULDParams) -> dict[str, torch.Tensor]:
    return {"ce": _ce(b), "uld": p.lam * uld_loss(b.student, b.teacher, b.mask, b.teacher_mask)}


def _minilm(b: LMBatch, p: MiniLMParams) -> dict[str, torch.Tensor]:
    terms = minilm_losses(b.teacher_qkv, b.student_qkv, p.heads, PAIRS[p.relations], b.mask)
    return {"ce": _ce(b), **{pair: p.lam * term for pair, term in terms.items()}}


def _tinybert(b: LMBatch, p: TinyBERTParams) -> dict[str, torch.Tensor]:
    hidn = hidden_losses(b.student_hidden, b.teacher_hidden, b.module, b.mask)
    parts = {"ce": _ce(b), "hidden": p.lam * hidn}
    if p.alpha:
        parts["pred"] = p.alpha * token_kd_loss(b.student, b.teacher, 1.0, b.mask)
    return parts


def _distilbert(b: LMBatch, p: DistilBERTParams) -> dict[str, torch.Tensor]:
    parts = {"ce": p.alpha_lm * _ce(b)}
    if p.alpha_ce:
        parts["kd"] = p.alpha_ce * token_kd_loss(b.student, b.teacher, p.T, b.mask)
    if p.alpha_cos:
        parts["cos"] = p.alpha_cos * cosine_loss(b.student_hidden[0], b.teacher_hidden[0], b.mask)
    return parts


register(
    LMMethod(
        "lm-hard", "Real text only", "cross-entropy baseline",
        "No teacher: next-token cross-entropy on the true corpus.", NoParams,
        lambda p: "corpus", lambda b, p: {"ce": _ce(b)}, uses_teacher=False, baseline=True,
    )
)  # fmt: skip
register(
    LMMethod(
        "word-kd", "Word-level KD", "Kim & Rush 2016, arXiv:1606.07947, §3.1",
        "At every position of the true text, the teacher's whole next-token distribution.",
        WordKDParams, lambda p: "corpus", _word_kd,
    )
)  # fmt: skip
register(
    LMMethod(
        "seq-kd", "Sequence-level KD", "Kim & Rush 2016, arXiv:1606.07947, §3.2",
        "The teacher's own continuations of the corpus (its approximate mode under greedy "
        "decoding), learnt as if they were the data.",
        SeqKDParams, lambda p: f"teacher-{p.decode}", lambda b, p: {"ce": _ce(b)},
        same_vocab=False,
    )
)  # fmt: skip
register(
    LMMethod(
        "seq-word-kd", "Sequence- + word-level KD", "Kim & Rush 2016, arXiv:1606.07947, §3.2",
        "The teacher's continuations, and its distribution at every position of them.",
        SeqWordKDParams, lambda p: f"teacher-{p.decode}", _word_kd,
    )
)  # fmt: skip
register(
    LMMethod(
        "on-policy", "On-policy KD (GKD)", "Agarwal et al. 2024, arXiv:2306.13649",
        "The student writes; the teacher scores every token of it; a β moves the divergence "
        "from forward KL through JSD to reverse KL.",
        OnPolicyParams, lambda p: "student", _on_policy,
    )
)  # fmt: skip
register(
    LMMethod(
        "uld", "Universal logit distillation", "Boizard et al. 2024, arXiv:2402.12030",
        "Across tokenizers: the sorted next-token probabilities of teacher and student, "
        "position by position.",
        ULDParams, lambda p: "corpus", _uld, same_vocab=False,
    )
)  # fmt: skip
register(
    LMMethod(
        "minilm", "Self-attention relations (MiniLM)",
        "Wang et al. 2020, arXiv:2002.10957; Wang et al. 2021, arXiv:2012.15828",
        "Inside one block: how each position's queries, keys and values relate to the earlier "
        "positions', as the teacher's relate, by relation heads of any count.",
        MiniLMParams, lambda p: "corpus", _minilm, attends=lambda p: p.teacher_layer,
        teacher_logits=False,
    )
)  # fmt: skip
register(
    LMMethod(
        "tinybert", "Hidden states (TinyBERT)", "Jiao et al. 2020, arXiv:1909.10351, §3.1",
        "Layer by layer: the student's residual stream, mapped by a learnt linear projector into "
        "the teacher's width, made to match the teacher's at the layer g(m) it is mapped to.",
        TinyBERTParams, lambda p: "corpus", _tinybert, teacher_logits=lambda p: p.alpha > 0,
        hidden=lambda p, m, n: layer_map(p.mapping, m, n), module=_projector, figures=_spectrum,
    )
)  # fmt: skip
register(
    LMMethod(
        "distilbert", "Half the layers, from the teacher's (DistilBERT)",
        "Sanh, Debut, Chaumond & Wolf 2019, arXiv:1910.01108, §2-3",
        "A student of the teacher's width and half its depth, started from one of every two of "
        "the teacher's blocks, trained on the teacher's soft targets, the real text and the "
        "direction of the teacher's last hidden states.",
        DistilBERTParams, lambda p: "corpus", _distilbert, teacher_logits=lambda p: p.alpha_ce > 0,
        hidden=lambda p, m, n: ((m, n),) if p.alpha_cos else (), init=_take_layers,
    )
)  # fmt: skip
