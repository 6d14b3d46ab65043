"""Distillation losses: one pure function of tensors per method, its paper and equation in the
docstring. Each loss file also holds its method's parameter dataclass and a thin
:class:`~kdcore.method.Distiller` over the pure function; :data:`kdcore.methods.METHODS` is the
one table that lists them.
"""

from __future__ import annotations

from .kd import distillation_loss, kd_loss, logit_matching_loss, softmax_t

__all__ = [
    "distillation_loss",
    "kd_loss",
    "logit_matching_loss",
    "softmax_t",
]
