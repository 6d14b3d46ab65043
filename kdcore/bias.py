"""Accuracy as a function of a bias added to some classes' logits.

Hinton, Vinyals & Dean (2015, arXiv:1503.02531, §3) distil an MNIST student on a transfer set
with no 3s: its learned bias for the 3 class ends up far too low, and raising that one logit by
3.5 recovers most of the test 3s. With a transfer set of only 7s and 8s, *lowering* the 7 and 8
biases by 7.6 brings the test error from 47.3% to 13.2%.

Adding ``b`` to the logits of a set of classes ``S`` only changes which class wins, so the sweep
needs no forward pass: from cached logits ``z`` (N, K) the prediction under bias ``b`` is

    argmax_k ( z_k + b [k in S] ),

which is the best class of ``S`` when ``max_{k in S} z_k + b`` beats ``max_{k not in S} z_k`` and
the best class outside ``S`` otherwise. Two maxima per example are computed once; every bias is
then one comparison per example, so a sweep of hundreds of biases over the test set is instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BiasSweep:
    """Errors at each bias; ``bias`` (B,), the error counts (B,) as plain lists (JSON-ready)."""

    classes: tuple[int, ...]  # the classes whose logit receives the bias
    bias: list[float]
    errors: list[int]  # errors on all N examples
    errors_on_classes: list[int]  # errors on the examples whose label is in ``classes``
    n: int
    n_classes: int  # how many examples have a label in ``classes``

    @property
    def accuracy(self) -> list[float]:
        return [1.0 - e / max(self.n, 1) for e in self.errors]

    @property
    def accuracy_on_classes(self) -> list[float]:
        return [1.0 - e / max(self.n_classes, 1) for e in self.errors_on_classes]

    def best(self) -> int:
        """Index of the bias with the fewest errors overall (the smallest such bias in the
        order given, so ties go to the first)."""
        return min(range(len(self.errors)), key=lambda i: (self.errors[i], i))

    def index_of(self, bias: float) -> int:
        """Index of the grid point nearest to ``bias``."""
        return min(range(len(self.bias)), key=lambda i: abs(self.bias[i] - bias))

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "bias": self.bias,
            "errors": self.errors,
            "errors_on_classes": self.errors_on_classes,
            "accuracy": self.accuracy,
            "accuracy_on_classes": self.accuracy_on_classes,
            "n": self.n,
            "n_classes": self.n_classes,
        }


def predictions_with_bias(
    logits: torch.Tensor, classes: Sequence[int], bias: torch.Tensor
) -> torch.Tensor:
    """Predicted class of each example for each bias added to the logits of ``classes``.

    logits: (N, K); bias: (B,). Returns (B, N) int64, equal to
    ``(logits + b * onehot(classes)).argmax(1)`` for each ``b`` (ties go to the lower class
    index, as ``argmax`` does).
    """
    if len(classes) == 0:
        raise ValueError("name at least one class to shift")
    k = logits.shape[1]
    inside = torch.zeros(k, dtype=torch.bool, device=logits.device)
    inside[list(classes)] = True
    if inside.all():  # every class shifted by the same amount: nothing changes
        return logits.argmax(1).expand(len(bias), -1)
    idx_in = torch.nonzero(inside).squeeze(1)  # (|S|,) ascending
    idx_out = torch.nonzero(~inside).squeeze(1)  # (K-|S|,)
    m_in, a_in = logits[:, idx_in].max(1)  # (N,), first maximum within S
    m_out, a_out = logits[:, idx_out].max(1)
    a_in, a_out = idx_in[a_in], idx_out[a_out]  # back to class indices
    shifted = m_in[None, :] + bias.to(logits)[:, None]  # (B, N)
    tie = torch.minimum(a_in, a_out)[None, :].expand_as(shifted)
    pred = torch.where(shifted > m_out[None, :], a_in[None, :], a_out[None, :])
    return torch.where(shifted == m_out[None, :], tie, pred)


def bias_sweep(
    logits: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[int],
    biases: Sequence[float] | torch.Tensor,
) -> BiasSweep:
    """Error counts, overall and on ``classes``, for each bias added to those classes' logits.

    logits: (N, K) cached model outputs; labels: (N,); biases: (B,), e.g. a fine grid 0..10.
    """
    bias = torch.as_tensor(biases, dtype=logits.dtype, device=logits.device).reshape(-1)  # (B,)
    pred = predictions_with_bias(logits, classes, bias)  # (B, N)
    wrong = pred != labels[None, :]  # (B, N)
    member = torch.isin(labels, torch.as_tensor(list(classes), device=labels.device))  # (N,)
    return BiasSweep(
        classes=tuple(int(c) for c in classes),
        bias=[round(float(b), 6) for b in bias.cpu()],
        errors=wrong.sum(1).tolist(),
        errors_on_classes=(wrong & member[None, :]).sum(1).tolist(),
        n=len(labels),
        n_classes=int(member.sum()),
    )


def bias_grid(start: float, stop: float, step: float) -> list[float]:
    """``start, start+step, ..., stop`` (inclusive), rounded so that 3.5 prints as 3.5."""
    n = round((stop - start) / step)
    return [round(start + i * step, 6) for i in range(n + 1)]
