"""Checkpoints: safetensors round trips, one-line errors for bad files, and no unpickling."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdcore import checkpoint
from kdcore.checkpoint import CheckpointError, cache_dir, load_model, save_model
from kdcore.models import build_model

CASES = [("mlp-30", (1, 28, 28), 10), ("cnn", (1, 28, 28), 10), ("resnet8", (3, 32, 32), 100)]


def trained_like(arch: str, in_shape, num_classes: int) -> torch.nn.Module:
    """A model whose weights and BatchNorm statistics are no longer their initial values."""
    torch.manual_seed(0)
    model = build_model(arch, num_classes, in_shape)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model.train()
        model(torch.randn(8, *in_shape) * 2 + 0.5)  # moves BN running statistics, if any
    return model.eval()


@pytest.mark.parametrize("arch, in_shape, num_classes", CASES)
def test_round_trip_gives_identical_logits(tmp_path, arch, in_shape, num_classes):
    model = trained_like(arch, in_shape, num_classes)
    meta = {"history": [{"epoch": 1, "test_accuracy": 0.5}], "seconds": 1.5, "note": "ü"}
    path = save_model(model, tmp_path / "sub" / "m.safetensors", arch, num_classes, in_shape, meta)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["m.safetensors"]
    loaded, got_meta = load_model(path)
    assert got_meta == meta
    assert type(loaded) is type(model) and not loaded.training
    x = torch.randn(5, *in_shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(build_model("mlp-30"), path, "mlp-30", 10, (1, 28, 28), {"v": 1})
    save_model(build_model("mlp-30"), path, "mlp-30", 10, (1, 28, 28), {"v": 2})
    assert load_model(path)[1] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no .tmp left


def test_nothing_is_unpickled(tmp_path, monkeypatch):
    """A round trip works with every unpickling entry point disabled."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    model = trained_like("mlp-30", (1, 28, 28), 10)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    path = save_model(model, tmp_path / "m.safetensors", "mlp-30", 10, (1, 28, 28))
    loaded, _ = load_model(path)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


class Payload:
    """Unpickling this creates a file: the proof that a loader unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_is_rejected_without_running_it(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:
        torch.save({"state": Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def good_bytes(tmp_path: Path) -> bytes:
    model = build_model("mlp-30")
    path = save_model(model, tmp_path / "good.safetensors", "mlp-30", 10, (1, 28, 28))
    return path.read_bytes()


def corrupt_header(raw: bytes) -> bytes:
    # 8 bytes of header length, then the JSON header: break the JSON in its middle.
    n = int.from_bytes(raw[:8], "little")
    mid = 8 + n // 2
    return raw[:mid] + b"\x00\xff{{" + raw[mid + 4 :]


BAD_FILES = {
    "random": lambda raw: os.urandom(4096),
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[: len(raw) // 2],
    "truncated-one-byte": lambda raw: raw[:-1],
    "header-only": lambda raw: raw[: 8 + int.from_bytes(raw[:8], "little")],
    "truncated-header": lambda raw: raw[:20],
    "corrupt-header": corrupt_header,
    "huge-header-length": lambda raw: (2**40).to_bytes(8, "little") + raw[8:],
    "text": lambda raw: b"not a checkpoint\n",
}


def assert_one_line(err: CheckpointError, name: str) -> None:
    msg = str(err)
    assert msg and "\n" not in msg and name in msg
    assert err.__suppress_context__ or err.__context__ is None  # no chained traceback


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_raise_one_line_checkpoint_error(tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(BAD_FILES[kind](good_bytes(tmp_path)))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert_one_line(err.value, path.name)


def write_safetensors(path: Path, tensors: dict, metadata: dict | None) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def kdcore_meta(**changes) -> dict:
    info = {"format": "kdcore-1", "arch": "mlp-30", "num_classes": "10",
            "in_shape": "[1, 28, 28]", "meta": "{}"}  # fmt: skip
    info.update(changes)
    return info


def state_of(arch: str) -> dict:
    return {k: v.contiguous() for k, v in build_model(arch).state_dict().items()}


@pytest.mark.parametrize(
    "name, tensors, metadata, words",
    [
        ("foreign", {"weight": torch.zeros(3, 4)}, None, "not a kdcore model"),
        ("other-format", {"w": torch.ones(2)}, {"format": "pt"}, "not a kdcore model"),
        ("wrong-arch", state_of("mlp-100"), kdcore_meta(), "does not match"),
        ("unknown-arch", state_of("mlp-30"), kdcore_meta(arch="vgg16"), "unknown model"),
        ("no-arch", state_of("mlp-30"), {"format": "kdcore-1"}, "does not match"),
        ("bad-shape", state_of("mlp-30"), kdcore_meta(in_shape="[1, 28"), "does not match"),
        ("bad-classes", state_of("mlp-30"), kdcore_meta(num_classes="ten"), "does not match"),
        ("bad-meta", state_of("mlp-30"), kdcore_meta(meta="{not json"), "metadata"),
        ("list-meta", state_of("mlp-30"), kdcore_meta(meta="[1, 2]"), "metadata"),
    ],
)
def test_foreign_or_inconsistent_safetensors(tmp_path, name, tensors, metadata, words):
    path = write_safetensors(tmp_path / f"{name}.safetensors", tensors, metadata)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert_one_line(err.value, path.name)
    assert words in str(err.value)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(tmp_path)


def test_metadata_is_strings_only(tmp_path):
    # safetensors metadata is str -> str; numbers and nested meta travel as JSON text.
    from safetensors import safe_open

    path = save_model(build_model("mlp-30"), tmp_path / "m.safetensors", "mlp-30", 10,
                      (1, 28, 28), {"a": [1, 2]})  # fmt: skip
    with safe_open(str(path), framework="pt") as f:
        info = f.metadata()
    assert info["format"] == "kdcore-1" and info["arch"] == "mlp-30"
    assert json.loads(info["in_shape"]) == [1, 28, 28] and json.loads(info["meta"]) == {"a": [1, 2]}


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "cache"
    monkeypatch.setenv(checkpoint.CACHE_ENV, str(target))
    assert cache_dir() == target and target.is_dir()
