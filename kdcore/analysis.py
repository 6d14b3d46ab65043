"""What the response-based pages plot: soft targets across temperature, and the KD loss taken apart.

Pure torch/numpy (no Streamlit). Every quantity is computed with the functions in
:mod:`kdcore.losses`, gradients with ``torch.autograd``, so the pages show what training runs
rather than a re-derivation. References: Hinton, Vinyals & Dean (2015), "Distilling the Knowledge
in a Neural Network", arXiv:1503.02531; Szegedy et al. (2016), arXiv:1512.00567, §7 (label
smoothing); Yuan et al. (2020), arXiv:1909.11723 (label smoothing as a virtual uniform teacher).
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kdcore.losses import distillation_loss, kd_loss, logit_matching_loss, softmax_t
from kdcore.methods import METHODS
from kdcore.models import ModelOutput
from kdcore.train import Batch

# ----------------------------------------------------------------------------- temperature


def temperature_grid(t_min: float = 0.1, t_max: float = 50.0, n: int = 100) -> np.ndarray:
    """``n`` log-spaced temperatures from ``t_min`` to ``t_max`` that contain T = 1 exactly.

    Log spacing because what matters is the ratio of logits to T: 0.1 -> 0.2 changes the
    distribution as much as 10 -> 20. T = 1 is in the grid so the slider can stop on the ordinary
    softmax. Both halves get points in proportion to their length in log T.
    """
    if not 0 < t_min < 1 < t_max or n < 3:
        raise ValueError("need 0 < t_min < 1 < t_max and n >= 3")
    lo, hi = -math.log(t_min), math.log(t_max)
    n_lo = max(2, round((n - 1) * lo / (lo + hi)) + 1)  # points in [t_min, 1]
    below = np.geomspace(t_min, 1.0, n_lo)
    above = np.geomspace(1.0, t_max, n - n_lo + 1)[1:]
    return np.concatenate([below, above])


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats along the last axis, with 0 log 0 = 0. (..., K) -> (...)."""
    return torch.special.entr(p).sum(-1)


@dataclass(frozen=True)
class TemperatureSweep:
    """Soft targets of one logit vector at each temperature of a grid."""

    temps: np.ndarray  # (F,)
    probs: np.ndarray  # (F, K) softmax(z / T) per frame
    entropy: np.ndarray  # (F,) nats
    top_prob: np.ndarray  # (F,) probability of the top class (argmax z, the same for every T)
    dark_mass: np.ndarray  # (F,) 1 - top_prob: the "dark knowledge" spread over the other classes
    top_class: int

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]

    @property
    def max_entropy(self) -> float:
        """log K, the entropy of the uniform distribution that T -> infinity reaches."""
        return math.log(self.num_classes)


def temperature_sweep(logits: torch.Tensor, temps: np.ndarray) -> TemperatureSweep:
    """Soft targets ``softmax(z / T)`` for each T in ``temps``. logits: (K,). Float64 throughout,
    so that probabilities around 1e-9 (Hinton's "2 that looks like a 7") are still resolved."""
    z = logits.detach().to(torch.float64).flatten()  # (K,)
    t = torch.as_tensor(np.asarray(temps), dtype=torch.float64)  # (F,)
    p = softmax_t(z.expand(len(t), -1), t[:, None])  # (F, K): one row per temperature
    top = int(z.argmax())
    top_prob = p[:, top]
    return TemperatureSweep(
        temps=t.numpy(),
        probs=p.numpy(),
        entropy=entropy(p).numpy(),
        top_prob=top_prob.numpy(),
        dark_mass=(1.0 - top_prob).numpy(),
        top_class=top,
    )


def regime(T: float, entropy_ratio: float | None = None) -> str:
    """The regime a temperature is in, in words. entropy_ratio = H / log K, if known."""
    if math.isclose(T, 1.0, rel_tol=1e-3):
        return "the ordinary softmax (T = 1)"
    if T < 1:
        return "sharper than the softmax, towards one-hot (T < 1)"
    if entropy_ratio is not None and entropy_ratio > 0.99:
        return "nearly uniform: only the ranking is left (T >> 1)"
    return "softer: the dark knowledge shows (T > 1)"


def link_temperatures(temps: np.ndarray, digits: int = 3) -> np.ndarray:
    """``temps`` rounded to ``digits`` significant digits, sorted and without repeats: values that
    print the same in a link (``?T=7.49``) as they are computed, so a page reloaded from the link
    shows the very numbers it showed before."""
    rounded = [float(f"{t:.{digits}g}") for t in np.asarray(temps, dtype=float)]
    return np.unique(np.array(rounded))


def runners_up(probs: np.ndarray, top_class: int, k: int = 3) -> np.ndarray:
    """The ``k`` most probable classes after ``top_class``, most probable first, per row.
    probs: (F, K) -> (F, k) class indices. Ties keep the lower class first (stable sort)."""
    order = np.argsort(-np.asarray(probs), axis=1, kind="stable")  # (F, K)
    return np.array([row[row != top_class][:k] for row in order])


# ----------------------------------------------------------------------------- label smoothing


def label_smoothing_target(label: int, num_classes: int, eps: float) -> torch.Tensor:
    """(1 - eps) one-hot + eps / K (Szegedy et al. 2016, §7). Returns (K,)."""
    target = torch.full((num_classes,), eps / num_classes, dtype=torch.float64)
    target[label] += 1.0 - eps
    return target


def label_smoothing_as_kd(
    student_logits: torch.Tensor, labels: torch.Tensor, eps: float
) -> dict[str, float]:
    r"""Label smoothing is distillation from a uniform teacher (Yuan et al. 2020, §3).

    .. math::
        \mathrm{CE}(\tilde y, q) = (1-\epsilon)\,\mathrm{CE}(y, q)
            + \epsilon\,\mathrm{KL}(u \,\|\, q) + \epsilon \log K

    The uniform teacher u has constant (here zero) logits, so the first two terms are exactly
    :func:`~kdcore.losses.distillation_loss` at T = 1, alpha = eps; log K is the entropy of u, a
    constant that does not change the gradient. student_logits: (B, K); labels: (B,).
    """
    s = student_logits.detach().to(torch.float64)
    k = s.shape[-1]
    uniform_teacher = torch.zeros_like(s)  # (B, K): softmax of constant logits is uniform
    smoothed = F.cross_entropy(s, labels, label_smoothing=eps)
    as_kd = distillation_loss(s, uniform_teacher, labels, T=1.0, alpha=eps)
    return {
        "label_smoothing": float(smoothed),
        "distillation": float(as_kd),
        "entropy_of_uniform": eps * math.log(k),
        "kl_to_uniform": float(kd_loss(s, uniform_teacher, T=1.0)),
        "hard_ce": float(F.cross_entropy(s, labels)),
    }


# ----------------------------------------------------------------------------- the KD loss


def loss_mix(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> dict[str, float]:
    """The two parts of (1 - alpha) CE + alpha T^2 KL, weighted and raw, as the registered KD
    method's distiller computes them in training.

    Returns ce, kd (the weighted parts that sum to total), raw_ce, raw_kd (unweighted) and total
    from :func:`~kdcore.losses.distillation_loss`. Inputs: (B, K), (B, K), (B,).
    """
    s, t = student_logits.detach(), teacher_logits.detach()
    kd = METHODS["kd"]
    distiller = kd.build(kd.make_params({"T": T, "alpha": alpha}), None)
    parts = distiller(ModelOutput(s, {}), {"logits": t}, Batch(s, labels, labels))
    return {
        "ce": float(parts["ce"]),
        "kd": float(parts["kd"]),
        "raw_ce": float(F.cross_entropy(s, labels)),
        "raw_kd": float(kd_loss(s, t, T)),
        "total": float(distillation_loss(s, t, labels, T, alpha)),
    }


def loss_mix_sweep(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alphas: np.ndarray,
) -> dict[str, np.ndarray]:
    """The weighted parts (1 - alpha) CE and alpha T^2 KL for many alphas at once: the loss is
    linear in alpha, so both raw terms are computed once (by the same functions the KD distiller
    calls) and scaled; equal to :func:`loss_mix` at each alpha (tested). Returns ``ce`` and
    ``kd``, arrays (A,). Inputs: (B, K), (B, K), (B,)."""
    s, t = student_logits.detach(), teacher_logits.detach()
    a = np.asarray(alphas, dtype=float)
    raw_ce, raw_kd = float(F.cross_entropy(s, labels)), float(kd_loss(s, t, T))
    return {"ce": (1.0 - a) * raw_ce, "kd": a * raw_kd}


def kd_gradient(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float, t_squared: bool = True
) -> torch.Tensor:
    """d kd_loss / d student logits, by autograd; (B, K) -> (B, K).

    Without ``t_squared`` the T^2 factor is divided out first: the gradient of the plain KL
    between the softened distributions.
    """
    z = student_logits.detach().to(torch.float64).requires_grad_(True)
    loss = kd_loss(z, teacher_logits.detach().to(torch.float64), T)
    if not t_squared:
        loss = loss / (T * T)
    (grad,) = torch.autograd.grad(loss, z)
    return grad


@contextmanager
def _known_fallback():
    """torch's vmap has no batching rule for ``kl_div`` and warns of "a performance drop" on
    each call (in the server's log at every rerun); its fallback is what was measured, about
    40 times faster than a loop, so that one warning is silenced here, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*batching rule for aten::kl_div.*")
        yield


def gradient_norms(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temps: np.ndarray
) -> dict[str, np.ndarray]:
    """Norm of the KD gradient w.r.t. the student logits across T, with and without T^2.

    Hinton et al. (2015, §2): soft-target gradients scale as 1/T^2, so the loss is multiplied by
    T^2 to keep the soft and hard terms in proportion when T changes. Returns arrays (F,).
    The gradient of :func:`kd_loss` itself at every T in one vectorised call (``torch.func``:
    ``vmap`` over T of ``grad``), the same numbers as :func:`kd_gradient` at each T in turn
    (tested) and about 40 times faster: a page rerun computes 200 of them.
    """
    z = student_logits.detach().to(torch.float64)
    t = teacher_logits.detach().to(torch.float64)
    T = torch.as_tensor(np.asarray(temps, dtype=float), dtype=torch.float64)  # (F,)
    per_t = torch.func.grad(lambda zz, tt: kd_loss(zz, t, tt))
    with _known_fallback():
        grads = torch.func.vmap(per_t, in_dims=(None, 0))(z, T)  # (F, B, K)
    norms = grads.flatten(1).norm(dim=1)  # (F,)
    # without T^2: the gradient of kd_loss / T^2, i.e. the same gradient divided by T^2
    return {"with_t2": norms.numpy(), "without_t2": (norms / T**2).numpy()}


def zero_mean(logits: torch.Tensor) -> torch.Tensor:
    """Subtract each row's mean: softmax is unchanged, and §2.1's limit assumes it. (B, K)."""
    return logits - logits.mean(-1, keepdim=True)


def high_temperature_limit(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temps: np.ndarray
) -> dict[str, np.ndarray | float]:
    r"""T^2 KL against its T -> infinity limit ||z - v||^2 / (2N), on zero-mean logits.

    Hinton et al. (2015, §2.1): for zero-mean logits and large T, the KD gradient tends to
    :math:`(z_i - v_i) / (N T^2)` per unit of KL, so :math:`T^2 \mathrm{KL}` tends to the logit
    matching loss :math:`\lVert z - v \rVert^2 / (2N)` with N classes (Buciluǎ et al. 2006).
    Returns ``t2_kl`` (F,), the constant ``limit`` and ``ratio`` = t2_kl / limit (F,).
    """
    s = zero_mean(student_logits.detach().to(torch.float64))
    t = zero_mean(teacher_logits.detach().to(torch.float64))
    limit = float(logit_matching_loss(s, t))
    T = torch.as_tensor(np.asarray(temps, dtype=float), dtype=torch.float64)  # (F,)
    # kd_loss itself at every T in one vectorised call (a page rerun asks for 120 of them)
    with _known_fallback():
        t2_kl = torch.func.vmap(lambda tt: kd_loss(s, t, tt))(T).numpy()  # (F,)
    ratio = t2_kl / limit if limit > 0 else np.ones_like(t2_kl)
    return {"t2_kl": t2_kl, "limit": limit, "ratio": ratio}
