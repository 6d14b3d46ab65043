"""Weights on disk with safetensors: nothing is ever unpickled, and nothing is trusted.

A checkpoint holds the state dict plus string metadata naming the architecture, so that
:func:`load_model` can rebuild the model. The metadata is checked before any model is built:
types and ranges, an architecture :func:`~kdcore.models.build_model` knows, and the tensor names,
shapes and dtypes of the file's header against a copy of the model built on the ``meta`` device
(which allocates nothing). So a 200-byte file that declares a billion-parameter model is refused
before a byte is allocated, and nothing larger than the file itself is ever read into memory.

A corrupt, truncated, foreign or inconsistent file raises :class:`CheckpointError`, whose message
is one printable line for the user.

File layout (https://github.com/huggingface/safetensors#format): 8 bytes little-endian header
length ``N``, then ``N`` bytes of JSON ``{tensor: {dtype, shape, data_offsets}, "__metadata__":
{str: str}}``, then the tensor data, whose byte ranges must tile it exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from torch import nn

from .models import KDModel, build_model

CACHE_ENV = "KD_CACHE_DIR"
FORMAT = "kdcore-1"

# Bounds on what a checkpoint may declare. Far above anything the app trains (MNIST, CIFAR-100),
# low enough that a crafted file cannot ask for an absurd model.
MAX_CLASSES = 100_000
MAX_CHANNELS = 64
MAX_SIDE = 1024  # pixels, height and width
MAX_ARCH_CHARS = 64
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header

# safetensors dtype -> bytes per element
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
# A model's float32 tensors may be stored at half precision (save_model(half=True)).
_STORED_AS = {"F32": ("F32", "F16")}
_TORCH_DTYPES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
    torch.int64: "I64", torch.float64: "F64",
}  # fmt: skip
_COUNT = re.compile(r"[0-9]{1,9}")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read; ``str(err)`` is one line for the user."""


def cache_dir() -> Path:
    """Where trained teachers are cached: ``$KD_CACHE_DIR`` or ``~/.cache/kdcore``. A folder
    that cannot be made (read-only, a file in the way) is still returned: nothing loads from it
    and saving there fails with OSError, which the callers take as "not cached"."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kdcore")
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path


def save_model(
    model: nn.Module,
    path: str | Path,
    arch: str,
    num_classes: int,
    in_shape: tuple[int, int, int],
    meta: dict | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s state dict and its architecture to ``path`` (safetensors).

    ``half`` stores the float32 tensors as float16 (half the file; the shipped reference runs
    use it): loading casts them back, so the model computes in float32 as before.

    The file is written under a unique temporary name in the same folder and then renamed over
    ``path``: a crash never leaves a half-written checkpoint under the name, and concurrent saves
    to one path never collide (the last rename wins, whole).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    info = {
        "format": FORMAT,
        "arch": arch,
        "num_classes": str(int(num_classes)),
        "in_shape": json.dumps([int(v) for v in in_shape]),
        "meta": json.dumps(meta or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=info)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, Exception) and not isinstance(err, OSError):  # safetensors' own
            raise OSError(f"could not write {path.name}: {err}") from err
        raise
    return path


# ----------------------------------------------------------------------------- reading


def _show(value: object, limit: int = 60) -> str:
    """``value`` as printable text for a one-line message: control and other non-printable
    characters escaped, long text shortened with an ellipsis."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Header:
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)
    metadata: dict
    data_bytes: int  # bytes after the header, exactly covered by the tensors


def _is_count(v: object) -> bool:
    return type(v) is int and v >= 0  # not bool, which is an int too


def _read_header(f, size: int, name: str) -> _Header:
    """Parse and check the safetensors header of the open file ``f`` of ``size`` bytes, reading
    at most the header itself (never more than the file holds)."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name} is not a readable safetensors file ({why})")

    if size < 8:
        raise bad(f"{size} bytes, too short for a header")
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8 or n > MAX_HEADER_BYTES:
        raise bad(f"its header length {n:,} exceeds the file's {size:,} bytes")
    raw = f.read(n)
    if len(raw) != n:
        raise bad("the file shrank while it was read")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise bad("__metadata__ is not a JSON object")
    tensors, spans = {}, []
    for key, entry in header.items():
        if not isinstance(entry, dict):
            raise bad(f"tensor {_show(key)} has no description")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
            raise bad(f"tensor {_show(key)} has unknown dtype {_show(dtype)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise bad(f"tensor {_show(key)} has an invalid shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise bad(f"tensor {_show(key)} has invalid data offsets")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise bad(f"tensor {_show(key)} has a byte range that does not fit its shape")
        tensors[key] = (dtype, tuple(shape))
        spans.append((offsets[0], offsets[1], key))
    data_bytes = size - 8 - n
    pos = 0
    for begin, end, key in sorted(spans):
        if begin != pos:
            raise bad(f"tensor data has a gap or overlap at {_show(key)}")
        pos = end
    if pos != data_bytes:
        what = "truncated" if pos > data_bytes else "followed by stray bytes"
        raise bad(
            f"{what}: tensors need {pos:,} bytes after the header, the file has {data_bytes:,}"
        )
    return _Header(tensors, metadata, data_bytes)


def _check_format(header: _Header, name: str) -> None:
    if header.metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name} is a safetensors file but not a kdcore model")


@dataclass(frozen=True)
class _Spec:
    arch: str
    num_classes: int
    in_shape: tuple[int, int, int]
    meta: dict


def _check_metadata(info: dict, name: str) -> _Spec:
    """Types and ranges of every field, before anything is built from them."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name} has invalid metadata: {why}")

    arch = info.get("arch")
    if arch is None:
        raise bad("no arch")
    if not isinstance(arch, str) or not arch or len(arch) > MAX_ARCH_CHARS:
        raise bad(f"arch {_show(arch)} is not a model name")

    classes = info.get("num_classes")
    if not isinstance(classes, str) or not _COUNT.fullmatch(classes):
        raise bad(f"num_classes {_show(classes)} is not a whole number")
    if not 1 <= int(classes) <= MAX_CLASSES:
        raise bad(f"num_classes {int(classes):,} is outside 1..{MAX_CLASSES:,}")

    text = info.get("in_shape")
    try:
        shape = json.loads(text) if isinstance(text, str) and len(text) <= 100 else None
    except (ValueError, RecursionError):
        shape = None
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(v) is int for v in shape)):
        raise bad(f"in_shape {_show(text)} is not a list [C, H, W] of 3 whole numbers")
    c, h, w = shape
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise bad(f"in_shape {shape} is outside [1..{MAX_CHANNELS}, 1..{MAX_SIDE}, 1..{MAX_SIDE}]")

    text = info.get("meta", "{}")
    try:
        meta = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        raise bad("meta is not JSON") from None
    if not isinstance(meta, dict):
        raise bad("meta is not a JSON object")
    return _Spec(arch, int(classes), (c, h, w), meta)


def _check_tensors(spec: _Spec, header: _Header, name: str) -> None:
    """Compare the file's tensors with those of ``spec``'s model built on the meta device."""
    try:
        with torch.device("meta"):  # shapes and dtypes only: no memory is allocated
            skeleton = build_model(spec.arch, spec.num_classes, spec.in_shape)
    except (ValueError, TypeError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{name} cannot be rebuilt: {_show(str(err), 200)}") from None
    expected = {k: (_TORCH_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape))
                for k, v in skeleton.state_dict().items()}  # fmt: skip

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name} does not match its architecture {_show(spec.arch)}: {why}")

    def accepted(dt: str) -> tuple[str, ...]:
        return _STORED_AS.get(dt, (dt,))

    need = sum(
        math.prod(shape) * min(_DTYPE_BYTES.get(d, 4) for d in accepted(dt))
        for dt, shape in expected.values()
    )
    if need > header.data_bytes:
        params = sum(math.prod(shape) for _, shape in expected.values())
        raise bad(
            f"it needs {params:,} values ({need:,} bytes), the file holds {header.data_bytes:,}"
        )
    for key in expected:
        if key not in header.tensors:
            raise bad(f"tensor {_show(key)} is missing")
    for key in header.tensors:
        if key not in expected:
            raise bad(f"unexpected tensor {_show(key)}")
    for key, (dtype, shape) in expected.items():
        got_dtype, got_shape = header.tensors[key]
        if got_shape != shape:
            raise bad(f"tensor {_show(key)} has shape {list(got_shape)}, expected {list(shape)}")
        if got_dtype not in accepted(dtype):
            raise bad(f"tensor {_show(key)} has dtype {got_dtype}, expected {dtype}")


def read_metadata(path: str | Path) -> dict:
    """The metadata of a kdcore checkpoint (string values as stored), read from its header only.
    Raises :class:`CheckpointError` for a file that is not a readable kdcore checkpoint."""
    path = Path(path)
    name = _show(path.name, 120)
    try:
        with open(path, "rb") as f:
            header = _read_header(f, os.fstat(f.fileno()).st_size, name)
    except OSError as err:
        raise CheckpointError(f"cannot read {name}: {_show(err.strerror or err)}") from None
    _check_format(header, name)
    return header.metadata


def load_model(
    path: str | Path, device: str | torch.device = "cpu", expect_arch: str | None = None
) -> tuple[KDModel, dict]:
    """Rebuild and load a model saved by :func:`save_model`. Returns (model in eval mode, meta).

    With ``expect_arch``, a file holding another architecture is refused (a cache entry whose
    name promises one model but whose file holds another). Every check runs on the header before
    a model is built; the tensors are then read from the same open file, so a concurrent
    :func:`save_model` cannot swap the file between the checks and the load.
    """
    path = Path(path)
    name = _show(path.name, 120)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {_show(str(path), 200)}")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = _read_header(f, size, name)
            _check_format(header, name)
            spec = _check_metadata(header.metadata, name)
            if expect_arch is not None and spec.arch != expect_arch:
                raise CheckpointError(f"{name} holds {_show(spec.arch)}, not {_show(expect_arch)}")
            _check_tensors(spec, header, name)
            f.seek(0)
            raw = f.read(size)  # at most the file's size, which the checks bound the model by
    except OSError as err:
        raise CheckpointError(f"cannot read {name}: {_show(err.strerror or err)}") from None
    try:
        state = load_bytes(raw)
        del raw
        model = build_model(spec.arch, spec.num_classes, spec.in_shape)
        model.load_state_dict(state, strict=True)
    except (SafetensorError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{name} could not be loaded: {_show(first, 200)}") from None
    return model.to(device).eval(), spec.meta


def save_state(module: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Save the tensors a method owns (a projector, an embedding head, a memory bank) beside the
    student's weights, as safetensors with the format "kdcore-module-1". They are read back with
    ``safetensors.torch.load_file`` into the method's distiller; nothing is ever unpickled."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    info = {"format": "kdcore-module-1", "meta": json.dumps(meta or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=info)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; weights are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
