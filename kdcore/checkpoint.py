"""Weights on disk with safetensors: nothing is ever unpickled.

A checkpoint holds the state dict plus string metadata naming the architecture, so that
:func:`load_model` can rebuild the model. A corrupt, truncated or foreign file raises
:class:`CheckpointError` whose message is one line for the user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .models import KDModel, build_model

CACHE_ENV = "KD_CACHE_DIR"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read; ``str(err)`` is one line for the user."""


def cache_dir() -> Path:
    """Where trained teachers are cached: ``$KD_CACHE_DIR`` or ``~/.cache/kdcore``."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kdcore")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_model(
    model: nn.Module,
    path: str | Path,
    arch: str,
    num_classes: int,
    in_shape: tuple[int, int, int],
    meta: dict | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    info = {
        "format": "kdcore-1",
        "arch": arch,
        "num_classes": str(num_classes),
        "in_shape": json.dumps(list(in_shape)),
        "meta": json.dumps(meta or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=info)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint under the name
    return path


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{Path(path).name} is not a readable safetensors file ({err})"
        ) from None
    if info.get("format") != "kdcore-1":
        raise CheckpointError(f"{Path(path).name} is a safetensors file but not a kdcore model")
    return info


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[KDModel, dict]:
    """Rebuild and load a model saved by :func:`save_model`. Returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    info = read_metadata(path)
    try:
        model = build_model(
            info["arch"], int(info["num_classes"]), tuple(json.loads(info["in_shape"]))
        )
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (SafetensorError, KeyError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path.name} does not match its architecture: {first}") from None
    try:
        meta = json.loads(info.get("meta", "{}"))
    except ValueError as err:
        raise CheckpointError(f"{path.name} has unreadable metadata ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name} has unreadable metadata (not a JSON object)")
    return model.to(device).eval(), meta
