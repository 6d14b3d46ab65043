"""Correlation congruence: match how alike the teacher finds each pair of examples, through a
kernel (Peng et al. 2019).

Baoyun Peng, Xiao Jin, Jiaheng Liu, Dongsheng Li, Yichao Wu, Yu Liu, Shunfeng Zhou, Zhaoning
Zhang, "Correlation Congruence for Knowledge Distillation", ICCV 2019, arXiv:1904.01802.

Each model's features of a batch of n examples become an n × n correlation matrix, one entry per
pair, through a kernel; the student learns the teacher's matrix by squared error. The kernel is
a Gaussian RBF, exp(−γ‖a − b‖²), and the paper approximates it by the first P + 1 terms of a
Taylor series. On unit vectors ‖a − b‖² = 2 − 2 a·b, so the RBF is exp(−2γ)·exp(2γ a·b), a
function of the cosine alone, and the series is that of exp(2γ a·b):

    k(a, b) ≈ Σ_{p=0}^{P} exp(−2γ) (2γ)^p / p! · (a·b)^p.

The features are L2-normalised first, as in the kernel code FaceX-Zoo ships for CC (its
``cc.py``), so that the identity holds; torchdistill's ``CCKDLoss`` applies the same series to
un-normalised embeddings. γ = 0.4 and P = 2 are torchdistill's published CCKD configuration
(ImageNet). The paper's text was not reachable from this machine, so this module names its loss
as its abstract does (a kernel "based on Taylor series expansion" of the correlation between
instances), not by equation number, and its weight β is ours (:data:`CC_WEIGHT`).

The CRD benchmark (Tian et al. 2020, Table 1), whose figure the cc-mnist preset quotes, ran
another loss under this name: RepDistiller's ``distiller_zoo/CC.py`` ("code emailed to me by the
original author") embeds both models' features by a trained linear head to 128 unit-length
dimensions and sums, over neighbouring examples of the batch, the products of their absolute
differences (:func:`benchmark_cc_loss`). No kernel and no correlation matrix: example i meets
only example i + 1. :class:`CCParams` ``form`` chooses; the paper's by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, flat_feature_targets, param
from .crd import Embed
from .kd import ce_and_kd

# torchdistill's CCKD configuration (kernel_params: gaussian, gamma 0.4, max_p 2).
CC_GAMMA = 0.4
CC_ORDER = 2
# β for the paper's form: ours, not the paper's (not reachable here), and not tuned on test
# errors. On a batch of 128 test images L_CC between the relation presets' kind of teacher (the
# demo 300-300) and an untrained 30-30 student is about 0.05 (0.044 to 0.065 over three
# initialisations), so β = 50 starts the term at about CE's size (2.3), where the benchmark's
# weights start PKT's (2.7) on the same batch.
CC_WEIGHT = 50.0
# β for the benchmark's code: RepDistiller's scripts/run_cifar_distill.sh (--distill correlation
# -a 0 -b 0.02), with its 128-d heads (--feat_dim 128).
CC_CODE_WEIGHT = 0.02
CC_FEAT_DIM = 128
FORMS = ("paper", "benchmark code")


def _cosines(feat: torch.Tensor) -> torch.Tensor:
    """(B, ...) flattened per example and L2-normalised -> (B, B) cosines (a zero row: zeros).
    Unlike :func:`kdcore.geometry.cosine_matrix`, it keeps the gradient."""
    q = F.normalize(feat.reshape(feat.shape[0], -1), dim=1)  # (B, D), unit rows
    return q @ q.t()


def rbf_of_cosine(cos: torch.Tensor, gamma: float = CC_GAMMA) -> torch.Tensor:
    r"""The exact Gaussian RBF between two unit vectors from their cosine c (elementwise):
    ‖a − b‖² = 2 − 2c, so

    .. math:: k(a, b) = \exp\big(-\gamma \lVert a - b \rVert_2^2\big) = e^{-2\gamma(1 - c)}
    """
    return torch.exp(-2.0 * gamma * (1.0 - cos))


def rbf_kernel(feat: torch.Tensor, gamma: float = CC_GAMMA) -> torch.Tensor:
    r"""The exact Gaussian RBF between every pair of L2-normalised examples, the kernel the Taylor
    series approximates (:func:`rbf_of_cosine` of their cosines).

    feat: (B, ...) any shape, flattened per example. Returns (B, B), 1 on the diagonal (an
    all-zero example has cosine 0 with every example, itself included: e^{−2γ}).
    """
    return rbf_of_cosine(_cosines(feat), gamma)


def rbf_series(cos: torch.Tensor, gamma: float = CC_GAMMA, order: int = CC_ORDER) -> torch.Tensor:
    r"""The P-order Taylor series of the Gaussian RBF between unit vectors, as a function of their
    cosine c (any shape, elementwise).

    .. math:: k_P(c) = \sum_{p=0}^{P} e^{-2\gamma} \frac{(2\gamma)^p}{p!} c^p
        \;\xrightarrow{P \to \infty}\; e^{-2\gamma(1 - c)}
    """
    out = torch.zeros_like(cos)
    for p in range(order + 1):
        out = out + (2.0 * gamma) ** p / math.factorial(p) * cos.pow(p)
    return math.exp(-2.0 * gamma) * out


def correlation_matrix(
    feat: torch.Tensor, gamma: float = CC_GAMMA, order: int = CC_ORDER
) -> torch.Tensor:
    r"""The batch's correlation matrix ψ(F): the Gaussian RBF between every pair of examples as
    the P-order Taylor series of Peng et al. (2019) (:func:`rbf_series`), on L2-normalised
    features.

    .. math:: \psi(F)_{ij} = \sum_{p=0}^{P} e^{-2\gamma} \frac{(2\gamma)^p}{p!}
        \big(\hat F_i^\top \hat F_j\big)^p

    feat: (B, ...) any shape, flattened per example. Returns (B, B), symmetric. P = 0 gives the
    constant exp(−2γ), blind to the batch; the series tends to :func:`rbf_kernel` as P grows.
    """
    return rbf_series(_cosines(feat), gamma, order)  # (B, B), from the cosines


def cc_loss(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    gamma: float = CC_GAMMA,
    order: int = CC_ORDER,
) -> torch.Tensor:
    r"""The correlation congruence loss: the squared distance between the teacher's and the
    student's correlation matrices, over the B² pairs.

    .. math:: \mathcal{L}_{CC} = \frac{1}{B^2}
        \big\lVert \psi(F_t) - \psi(F_s) \big\rVert_F^2

    student_feat: (B, ...), teacher_feat: (B, ...); only B must agree. Returns a scalar. The
    paper's total is :math:`\alpha\mathcal{L}_{CE} + (1-\alpha)\mathcal{L}_{KD} +
    \beta\mathcal{L}_{CC}`.
    """
    b = student_feat.shape[0]
    diff = correlation_matrix(teacher_feat, gamma, order) - correlation_matrix(
        student_feat, gamma, order
    )  # (B, B)
    return diff.pow(2).sum() / (b * b)


def benchmark_cc_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    r"""The loss the CRD benchmark ran as CC (RepDistiller ``distiller_zoo/CC.py``): with
    :math:`\delta_i = |e^s_i - e^t_i|` the absolute difference of example i's embeddings,

    .. math:: \mathcal{L} = \frac{1}{B-1} \sum_{i=1}^{B-1} \delta_i^\top \delta_{i+1}

    Each example meets only the next one in the batch; it is zero wherever one of two neighbours'
    embeddings agree. student_emb, teacher_emb: (B, D), the two heads' unit-length outputs.
    Returns a scalar (0 for a batch of one).
    """
    delta = (student_emb - teacher_emb).abs()  # (B, D)
    if delta.shape[0] < 2:
        return delta.sum() * 0.0
    return (delta[:-1] * delta[1:]).sum(dim=1).mean()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class CCParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="Any shape: only the B × B kernel matrix of the batch is compared.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    form: str = param(
        "paper", "Loss", choices=FORMS,
        help="paper: Taylor-series RBF correlation matrices (Peng et al. 2019). benchmark code: "
        "what the CRD benchmark ran as CC, products of neighbouring examples' differences "
        "through two trained 128-d heads.",
    )  # fmt: skip
    gamma: float = param(CC_GAMMA, "γ, width of the RBF kernel", 0.01, 10.0, 0.05,
                         "torchdistill: 0.4")  # fmt: skip
    order: int = param(CC_ORDER, "P, order of the Taylor series", 0, 12, 1, "torchdistill: 2")
    weight: float = param(
        CC_WEIGHT, "β, weight of L_CC", 0.0, 1e6, 10.0,
        "Paper form: ours (50). Benchmark code: RepDistiller's 0.02.",
    )  # fmt: skip
    feat_dim: int = param(CC_FEAT_DIM, "Heads' size (benchmark code)", 2, 4096)
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class CC(Distiller):
    """CE (and optionally KD) plus β·L_CC. In the benchmark-code form it owns the two
    :class:`~kdcore.losses.crd.Embed` heads, trained with the student (the teacher's too, as in
    RepDistiller); the paper's form has no parameters of its own."""

    def __init__(self, params: CCParams, probe: Probe):
        super().__init__(params)
        s = probe.student_shape(params.student_layer)  # fail early on a missing layer
        t = probe.teacher_shape(params.teacher_layer)
        if params.form == "benchmark code":
            self.embed_s = Embed(math.prod(s), params.feat_dim)
            self.embed_t = Embed(math.prod(t), params.feat_dim)

    def teacher_targets(self, out):
        return flat_feature_targets(out, self.params.teacher_layer)

    def forward(self, student, teacher, batch):
        p = self.params
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        feat = student.features[p.student_layer]
        if p.form == "benchmark code":
            cc = benchmark_cc_loss(self.embed_s(feat), self.embed_t(teacher["feat"]))
        else:
            cc = cc_loss(feat, teacher["feat"], p.gamma, p.order)
        parts["cc"] = p.weight * cc
        return parts
