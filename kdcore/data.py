"""Data sets held whole in memory as tensors on the chosen device.

MNIST ships with the repository (``assets/mnist``, the original IDX files) and is the default, so
everything works offline. Fashion-MNIST, CIFAR-10 and CIFAR-100 go through torchvision's dataset
classes: read from a local folder when present, else downloaded when online; when neither works the
caller gets a :class:`DataUnavailable` error whose message is one line naming what to provide.

Images are normalised once at load time; training then only indexes tensors (no per-sample
Python), which is what makes the trainer fast.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MNIST_DIR = ASSETS / "mnist"
DATA_DIR_ENV = "KD_DATA_DIR"

# Per-channel mean and std of the training images (the values every reference implementation uses).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DATASETS = tuple(STATS)
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}


class DataUnavailable(RuntimeError):
    """A data set could not be read or downloaded; ``str(err)`` is one line for the user."""


@dataclass(frozen=True)
class Dataset:
    """A whole data set in memory. Images are normalised float32 ``(N, C, H, W)``, labels int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES.get(self.name, tuple(str(i) for i in range(self.num_classes)))

    def to(self, device: str | torch.device) -> Dataset:
        dev = torch.device(device)
        if dev == self.device:
            return self
        return replace(
            self,
            x_train=self.x_train.to(dev),
            y_train=self.y_train.to(dev),
            x_test=self.x_test.to(dev),
            y_test=self.y_test.to(dev),
        )

    def with_train(self, x: torch.Tensor, y: torch.Tensor) -> Dataset:
        """The same data set with another training (transfer) set; the test set is unchanged."""
        return replace(self, x_train=x, y_train=y)

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Back to pixel values in [0, 1], for display."""
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)


# ----------------------------------------------------------------------------- IDX (MNIST format)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array of unsigned bytes.

    Format (LeCun et al.): two zero bytes, a type code (0x08 = ubyte), the number of dimensions,
    then one big-endian int32 per dimension, then the data.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = zlib.decompress(raw, 31)  # 31: gzip wrapper; faster than the gzip module
        except zlib.error as err:
            raise DataUnavailable(f"{path.name} is not a valid gzip file ({err})") from None
    raw = bytearray(raw)  # writable, so torch.from_numpy shares it without a warning
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataUnavailable(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataUnavailable(f"{path.name} is truncated: its header needs {header} bytes")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != math.prod(dims):
        raise DataUnavailable(f"{path.name} is truncated: expected {dims}, got {data.size} bytes")
    return data.reshape(dims)


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _normalise(images_u8: torch.Tensor, name: str) -> torch.Tensor:
    # (N, C, H, W) uint8 -> float32 in one vectorised pass.
    # (x / 255 - mean) / std as one scale and one shift, in place: two passes over the floats.
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in STATS[name])
    return images_u8.to(torch.float32).mul_(1.0 / (255.0 * std)).sub_(mean / std)


@lru_cache(maxsize=4)
def _load_idx_set(folder: str, name: str) -> Dataset:
    paths = [_find_idx(Path(folder), stem) for stem in MNIST_FILES]
    missing = [stem for stem, p in zip(MNIST_FILES, paths, strict=True) if p is None]
    if missing:
        raise DataUnavailable(
            f"{name}: no data in {folder}; provide the four IDX files ({', '.join(MNIST_FILES)},"
            " optionally .gz)"
        )
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    for x, y, (xp, yp) in ((xtr, ytr, paths[:2]), (xte, yte, paths[2:])):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataUnavailable(f"{name}: {xp.name} holds {x.shape} images and {yp.name} "
                                  f"{y.shape} labels in {folder}; they must pair up")  # fmt: skip
        if y.size and int(y.max()) > 9:
            raise DataUnavailable(f"{name}: {yp.name} in {folder} has label {int(y.max())}; "
                                  "digits are 0 to 9")  # fmt: skip
    return Dataset(
        name=name,
        x_train=_normalise(torch.from_numpy(xtr).unsqueeze(1), name),
        y_train=torch.from_numpy(ytr.astype(np.int64)),
        x_test=_normalise(torch.from_numpy(xte).unsqueeze(1), name),
        y_test=torch.from_numpy(yte.astype(np.int64)),
        num_classes=10,
        mean=STATS[name][0],
        std=STATS[name][1],
    )


def load_mnist(device: str | torch.device = "cpu", folder: str | Path | None = None) -> Dataset:
    """The bundled MNIST (60,000 train / 10,000 test), normalised, on ``device``.

    Decoding is cached per process, so a second call only moves tensors (or nothing).
    """
    return _load_idx_set(str(folder or MNIST_DIR), "mnist").to(device)


# ----------------------------------------------------------------------------- torchvision sets


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "kdcore" / "data")


_TV_EXPECTED = {
    "fashion-mnist": "FashionMNIST/raw/ (the four uncompressed IDX files: "
    + ", ".join(MNIST_FILES)
    + ")",
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
    "cifar100": "cifar-100-python/ (train, test, meta)",
}


def _torchvision_set(name: str, root: Path, download: bool):
    from torchvision import datasets  # imported lazily: MNIST alone never needs torchvision

    cls = {
        "fashion-mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]

    def build(train: bool):
        try:
            return cls(str(root), train=train, download=False)
        except RuntimeError:  # torchvision's "not found" (or a failed checksum)
            if not download:
                raise
        except Exception as err:  # the files are there but do not read
            raise _Damaged(_reason(err)) from None
        return cls(str(root), train=train, download=True)

    return build(True), build(False)


class _Damaged(Exception):
    """Files of a torchvision data set were found and failed to read (not a download)."""


def _reason(err: Exception) -> str:
    """The one line of a torchvision failure that says why. A failed download reads "Error
    downloading x.gz:", then the URLs tried and, last, what went wrong (name resolution...)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    return (lines[-1] if lines[0].endswith(":") else lines[0])[:160]


@lru_cache(maxsize=4)
def _load_torchvision(name: str, root: str, download: bool) -> Dataset:
    try:
        train, test = _torchvision_set(name, Path(root), download)
    except Exception as err:  # offline, corrupt archive, bad checksum: all end the same way
        # Without download, torchvision's reason ("use download=True") is advice for its API,
        # not for our user; say plainly that downloading was off. _Damaged: the files were
        # there and did not read, which no download would mend.
        if isinstance(err, _Damaged):
            what = f"its files in {root} could not be read ({err})"
        elif download:
            what = f"not found (or damaged) in {root} and could not be downloaded ({_reason(err)})"
        else:
            what = f"not found (or damaged) in {root} and downloading is off"
        raise DataUnavailable(
            f"{name}: {what}; put {_TV_EXPECTED[name]} under {root} or set {DATA_DIR_ENV}"
        ) from None

    def to_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        data = ds.data
        x = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        return _normalise(x.contiguous(), name), y

    xtr, ytr = to_tensors(train)
    xte, yte = to_tensors(test)
    return Dataset(
        name=name,
        x_train=xtr,
        y_train=ytr,
        x_test=xte,
        y_test=yte,
        num_classes=100 if name == "cifar100" else 10,
        mean=STATS[name][0],
        std=STATS[name][1],
    )


def load_dataset(
    name: str = "mnist",
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    download: bool = True,
) -> Dataset:
    """Load a data set by name (``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``).

    ``mnist`` comes from the bundled assets unless ``data_dir`` holds its own IDX files. The others
    are read from ``data_dir`` (default: ``$KD_DATA_DIR`` or ``~/.cache/kdcore/data``), downloaded
    there if absent and ``download`` is true. Raises :class:`DataUnavailable` with a one-line
    message when the data cannot be had.
    """
    name = name.lower()
    if name not in STATS:
        raise DataUnavailable(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "mnist":
        folder = None
        if data_dir is not None:
            for cand in (Path(data_dir), Path(data_dir) / "MNIST" / "raw"):
                if _find_idx(cand, MNIST_FILES[0]):
                    folder = cand
        return load_mnist(device, folder)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return _load_torchvision(name, str(root), download).to(device)


# ----------------------------------------------------------------------------- subsets


def drop_classes(
    x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove every example of ``classes`` (Hinton et al. 2015 §3: the transfer set with no 3s)."""
    keep = ~torch.isin(y, torch.as_tensor(classes, device=y.device))
    return x[keep], y[keep]


def keep_classes(
    x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only ``classes`` (Hinton et al. 2015 §3: a transfer set of only 7s and 8s)."""
    keep = torch.isin(y, torch.as_tensor(classes, device=y.device))
    return x[keep], y[keep]


def per_class(
    x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``n`` examples of each class, drawn at random with ``seed``, in shuffled order."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g).to(y.device)
    y_sh = y[order]
    # Rank of each example within its class, computed without a Python loop over examples.
    sorted_y, idx = torch.sort(y_sh, stable=True)
    starts = torch.searchsorted(sorted_y, sorted_y, right=False)
    rank = torch.empty_like(idx)
    rank[idx] = torch.arange(len(idx), device=y.device) - starts
    chosen = order[rank < n]
    return x[chosen], y[chosen]


def class_counts(y: torch.Tensor, num_classes: int = 10) -> list[int]:
    return torch.bincount(y.cpu(), minlength=num_classes).tolist()


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None):
    """Translate each image by up to ``max_shift`` pixels in each direction, filled with black.

    Hinton et al. (2015, §3) jittered the teacher's inputs "by up to two pixels in any direction".
    Pure tensor code: pad once, then gather each image's shifted rows, then its shifted columns.
    The offsets are drawn on the generator's device (the CPU without one), so a CUDA generator
    keeps the whole jitter on the GPU with no copy from the host.  x: (B, C, H, W).
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    # Black is each channel's own minimum once normalised (per-channel means differ on CIFAR), so
    # the border is filled channel by channel; the interior is copied, not recomputed, so it is
    # bit-for-bit the input.
    fill = x.amin(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    padded = fill.expand(b, c, h + 2 * s, w + 2 * s).clone()  # (B, C, H+2s, W+2s)
    padded[:, :, s : s + h, s : s + w] = x
    dev = x.device
    where = generator.device if generator is not None else torch.device("cpu")
    off = torch.randint(0, 2 * s + 1, (2, b), generator=generator, device=where).to(dev)
    # two gathers along one dimension each: half the time of one 4-index gather on the CPU
    rows = (torch.arange(h, device=dev) + off[0].view(b, 1)).view(b, 1, h, 1)
    padded = padded.gather(2, rows.expand(b, c, h, w + 2 * s))  # (B, C, H, W+2s)
    cols = (torch.arange(w, device=dev) + off[1].view(b, 1)).view(b, 1, 1, w)
    return padded.gather(3, cols.expand(b, c, h, w))  # (B, C, H, W)
