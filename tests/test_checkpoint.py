"""Checkpoints: safetensors round trips, one-line errors for bad files, and no unpickling."""

import contextlib
import json
import os
import pickle
import resource
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdcore import checkpoint
from kdcore.checkpoint import CheckpointError, cache_dir, load_model, save_model
from kdcore.models import MODELS, build_model

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
        ("no-arch", state_of("mlp-30"), {"format": "kdcore-1"}, "no arch"),
        ("bad-shape", state_of("mlp-30"), kdcore_meta(in_shape="[1, 28"), "in_shape"),
        ("bad-classes", state_of("mlp-30"), kdcore_meta(num_classes="ten"), "num_classes"),
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


# ----------------------------------------------------------------------------- crafted files
# Every field of the metadata wrong in type, range or presence, the tensors inconsistent with
# the declared model, and files that are not safetensors at all. Each must raise a one-line,
# printable CheckpointError before any model of the declared size is built.


def raw_safetensors(tensors: dict, metadata, extra: bytes = b"", header_len: int | None = None):
    """Bytes of a safetensors file built by hand, so that any header can be crafted.

    ``tensors``: name -> tensor (laid out in order); ``metadata``: anything JSON (or None).
    """
    header, data, pos = {}, b"", 0
    for key, t in tensors.items():
        blob = t.contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        header[key] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [pos, pos + len(blob)],
        }
        data, pos = data + blob, pos + len(blob)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    n = len(text) if header_len is None else header_len
    return n.to_bytes(8, "little") + text + data + extra


def mlp30(**changes) -> bytes:
    return raw_safetensors(state_of("mlp-30"), kdcore_meta(**changes))


def tiny(**changes) -> bytes:
    """A few hundred bytes that declare whatever model ``changes`` name."""
    return raw_safetensors({"w": torch.zeros(2)}, kdcore_meta(**changes))


def renamed() -> bytes:
    state = state_of("mlp-30")
    state["layers.0.weights"] = state.pop("layers.0.weight")
    return raw_safetensors(state, kdcore_meta())


def reshaped() -> bytes:  # the same bytes, transposed: only the shape tells
    state = state_of("mlp-30")
    state["layers.0.weight"] = state["layers.0.weight"].t().contiguous()
    return raw_safetensors(state, kdcore_meta())


def retyped() -> bytes:
    state = state_of("mlp-30")
    state["head.bias"] = state["head.bias"].double()
    return raw_safetensors(state, kdcore_meta())


def extra_tensor() -> bytes:
    return raw_safetensors({**state_of("mlp-30"), "spare": torch.zeros(1)}, kdcore_meta())


def missing_tensor() -> bytes:
    state = state_of("mlp-30")
    del state["head.bias"]
    return raw_safetensors(state, kdcore_meta())


def pickled() -> bytes:
    return pickle.dumps({"state": state_of("mlp-30")})


def overlapping() -> bytes:
    raw = mlp30()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["head.bias"]["data_offsets"] = header["head.weight"]["data_offsets"]
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


CRAFTED = {
    # arch: missing, not a string, unknown, absurd, unprintable
    "arch-missing": lambda: raw_safetensors(state_of("mlp-30"), {"format": "kdcore-1"}),
    "arch-number": lambda: mlp30(arch=5),
    "arch-null": lambda: mlp30(arch=None),
    "arch-empty": lambda: mlp30(arch=""),
    "arch-unknown": lambda: mlp30(arch="vgg16"),
    "arch-huge": lambda: tiny(arch="mlp-20000"),
    "arch-huge-mlp30-tensors": lambda: mlp30(arch="mlp-20000"),
    "arch-overflow": lambda: tiny(arch="mlp-99999999999999999999"),
    "arch-deep": lambda: tiny(arch="mlp-" + "-".join(["4000"] * 12)),
    "arch-long": lambda: tiny(arch="mlp-" + "1-" * 5000 + "1"),
    "arch-control-chars": lambda: mlp30(arch="mlp-30\x00\x1b[31m\nboom"),
    # num_classes
    "classes-word": lambda: mlp30(num_classes="x"),
    "classes-negative": lambda: mlp30(num_classes="-1"),
    "classes-float": lambda: mlp30(num_classes="1e9"),
    "classes-zero": lambda: mlp30(num_classes="0"),
    "classes-huge": lambda: tiny(num_classes="999999999"),
    "classes-number": lambda: mlp30(num_classes=10),
    "classes-missing": lambda: raw_safetensors(
        state_of("mlp-30"), {k: v for k, v in kdcore_meta().items() if k != "num_classes"}
    ),
    # in_shape
    "shape-scalar": lambda: mlp30(in_shape="5"),
    "shape-null": lambda: mlp30(in_shape="null"),
    "shape-two": lambda: mlp30(in_shape="[1, 28]"),
    "shape-zero": lambda: mlp30(in_shape="[0, 28, 28]"),
    "shape-huge": lambda: tiny(in_shape="[1, 100000, 100000]"),
    "shape-max-with-big-arch": lambda: tiny(arch="mlp-1200", in_shape="[64, 1024, 1024]"),
    "shape-float": lambda: mlp30(in_shape="[1.5, 28, 28]"),
    "shape-bool": lambda: mlp30(in_shape="[true, 28, 28]"),
    "shape-string": lambda: mlp30(in_shape='"1,28,28"'),
    "shape-deep": lambda: mlp30(in_shape="[" * 50 + "]" * 50),
    "shape-list": lambda: mlp30(in_shape=[1, 28, 28]),
    "shape-missing": lambda: raw_safetensors(
        state_of("mlp-30"), {k: v for k, v in kdcore_meta().items() if k != "in_shape"}
    ),
    # meta
    "meta-not-json": lambda: mlp30(meta="{not json"),
    "meta-list": lambda: mlp30(meta="[1, 2]"),
    "meta-deep": lambda: mlp30(meta="[" * 100_000 + "]" * 100_000),
    "meta-number": lambda: mlp30(meta=3),
    # metadata and header structure
    "metadata-list": lambda: raw_safetensors(state_of("mlp-30"), ["format", "kdcore-1"]),
    "header-list": lambda: (lambda t: len(t).to_bytes(8, "little") + t)(b"[1, 2, 3]"),
    "header-binary": lambda: (10).to_bytes(8, "little") + b"\xff\xfe\x00garbage",
    "header-longer-than-file": lambda: raw_safetensors(
        state_of("mlp-30"), kdcore_meta(), header_len=10**6
    ),
    "overlapping-tensors": overlapping,
    "trailing-bytes": lambda: mlp30() + b"\x00" * 16,
    # tensors against the declared model
    "tensor-renamed": renamed,
    "tensor-reshaped": reshaped,
    "tensor-retyped": retyped,
    "tensor-extra": extra_tensor,
    "tensor-missing": missing_tensor,
    "wrong-model": lambda: raw_safetensors(state_of("mlp-100"), kdcore_meta()),
    # not safetensors at all
    "pickle": pickled,
    "random": lambda: os.urandom(3000),
    "truncated": lambda: mlp30()[:-100],
    "truncated-in-header": lambda: mlp30()[:100],
    "seven-bytes": lambda: b"\x01" * 7,
}


def assert_clean_one_line(err: CheckpointError, name: str) -> None:
    assert_one_line(err, name)
    assert str(err).isprintable(), repr(str(err))


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_crafted_checkpoints_raise_one_clean_line(tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(CRAFTED[kind]())
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert time.perf_counter() - start < 2.0  # building any declared model would take longer
    assert_clean_one_line(err.value, path.name)


def _peak_rss_bytes() -> int:
    """This process's peak resident memory: VmHWM (which /proc/self/clear_refs can reset) where
    Linux gives it, else getrusage's maximum."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@pytest.mark.parametrize(
    "kind", ["arch-huge", "arch-huge-mlp30-tensors", "shape-max-with-big-arch", "classes-huge"]
)
def test_a_small_file_declaring_a_huge_model_allocates_nothing(tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(CRAFTED[kind]())
    clear = Path("/proc/self/clear_refs")
    if clear.exists():  # reset the peak RSS so that the growth below is this test's own
        with contextlib.suppress(OSError):
            clear.write_text("5")
    before = _peak_rss_bytes()
    with pytest.raises(CheckpointError, match=r"does not match|invalid metadata"):
        load_model(path)
    assert _peak_rss_bytes() - before < 100 * 2**20


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"arch": None}, "no arch"),
        ({"arch": 5}, "not a model name"),
        ({"arch": "vgg16"}, "unknown model"),
        ({"arch": "mlp-30\x00\nx"}, "mlp-30\\x00\\nx"),  # escaped, never raw control characters
        ({"num_classes": "1e9"}, "num_classes"),
        ({"num_classes": "100001"}, "outside 1..100,000"),
        ({"in_shape": "null"}, "in_shape"),
        ({"in_shape": "[1, 100000, 100000]"}, "outside"),
        ({"meta": "[1, 2]"}, "meta is not a JSON object"),
    ],
)
def test_metadata_messages_name_the_field(tmp_path, changes, words):
    info = {k: v for k, v in kdcore_meta(**changes).items() if v is not None}
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw_safetensors(state_of("mlp-30"), info))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert words in str(err.value)


@pytest.mark.parametrize(
    "make, words",
    [
        (renamed, "layers.0.weight is missing"),
        (reshaped, "tensor layers.0.weight has shape [784, 30], expected [30, 784]"),
        (retyped, "tensor head.bias has dtype F64, expected F32"),
        (extra_tensor, "unexpected tensor spare"),
        (lambda: tiny(arch="mlp-20000"), "the file holds 8"),
    ],
)
def test_tensor_mismatch_names_the_first_differing_tensor(tmp_path, make, words):
    path = tmp_path / "m.safetensors"
    path.write_bytes(make())
    with pytest.raises(CheckpointError, match="does not match its architecture") as err:
        load_model(path)
    assert words in str(err.value)


def test_expect_arch_refuses_another_architecture(tmp_path):
    path = save_model(build_model("mlp-300"), tmp_path / "mlp-100-key.safetensors", "mlp-300",
                      10, (1, 28, 28))  # fmt: skip
    with pytest.raises(CheckpointError) as err:
        load_model(path, expect_arch="mlp-100")
    assert str(err.value) == "mlp-100-key.safetensors holds mlp-300, not mlp-100"
    model, _ = load_model(path, expect_arch="mlp-300")
    assert model.hidden == (300, 300)


def test_read_metadata_reads_the_header_only(tmp_path):
    path = save_model(build_model("mlp-30"), tmp_path / "m.safetensors", "mlp-30", 10,
                      (1, 28, 28), {"a": 1})  # fmt: skip
    info = checkpoint.read_metadata(path)
    assert info["arch"] == "mlp-30" and json.loads(info["meta"]) == {"a": 1}
    path.write_bytes(raw_safetensors({"w": torch.zeros(1)}, {"format": "pt"}))
    with pytest.raises(CheckpointError, match="not a kdcore model"):
        checkpoint.read_metadata(path)


def test_concurrent_saves_to_one_path(tmp_path):
    """8 threads x 10 saves to one path: no error, no temporary file left, the file loads."""
    path = tmp_path / "teacher.safetensors"
    models = [build_model("mlp-30") for _ in range(8)]
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            for j in range(10):
                save_model(models[i], path, "mlp-30", 10, (1, 28, 28), {"thread": i, "save": j})
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["teacher.safetensors"]
    loaded, meta = load_model(path)
    assert meta["save"] == 9
    for a, b in zip(models[meta["thread"]].state_dict().values(), loaded.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(build_model("mlp-30"), path, "mlp-30", 10, (1, 28, 28), {"v": 1})

    def disk_full(state, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_model(build_model("mlp-30"), path, "mlp-30", 10, (1, 28, 28), {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert load_model(path)[1] == {"v": 1}


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_every_architecture_passes_the_header_checks(tmp_path, arch):
    """The meta-device skeleton must agree with the real model for every architecture."""
    in_shape = (3, 32, 32) if arch.startswith("resnet") else (1, 28, 28)
    model = build_model(arch, 10, in_shape)
    path = save_model(model, tmp_path / f"{arch}.safetensors", arch, 10, in_shape)
    loaded, _ = load_model(path, expect_arch=arch)
    assert [(k, v.shape, v.dtype) for k, v in loaded.state_dict().items()] == [
        (k, v.shape, v.dtype) for k, v in model.state_dict().items()
    ]
