"""Data: the bundled MNIST, the IDX reader, subsets, augmentation, and the torchvision sets read
from small files in their real on-disk formats that the tests write themselves."""

import gzip
import hashlib
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from kdcore import data as kdata
from kdcore.data import (
    MNIST_DIR,
    DataUnavailable,
    class_counts,
    drop_classes,
    keep_classes,
    load_dataset,
    load_mnist,
    per_class,
    random_shift,
    read_idx,
)

# Published class counts of MNIST (LeCun et al.): train and the 10,000-image test set.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """The IDX format: 0, 0, type 0x08 (ubyte), ndim, big-endian int32 sizes, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# ----------------------------------------------------------------------------- bundled MNIST


def test_mnist_shapes_and_dtypes(mnist):
    assert mnist.name == "mnist"
    assert mnist.x_train.shape == (60000, 1, 28, 28)
    assert mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert mnist.x_train.dtype == torch.float32 and mnist.x_test.dtype == torch.float32
    assert mnist.y_train.dtype == torch.int64 and mnist.y_test.dtype == torch.int64
    assert mnist.num_classes == 10 and mnist.image_shape == (1, 28, 28)
    assert mnist.class_names == tuple("0123456789")
    assert mnist.device == torch.device("cpu")


def test_mnist_is_normalised_with_its_own_statistics(mnist):
    # The stored mean/std are those of the training pixels, so the training set comes out at
    # mean 0 and std 1 (to the 4 digits the constants carry).
    assert mnist.x_train.mean().item() == pytest.approx(0.0, abs=2e-3)
    assert mnist.x_train.std().item() == pytest.approx(1.0, abs=2e-3)
    raw = read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz")[:500].astype(np.float64)
    want = (raw / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(mnist.x_train[:500, 0].numpy(), want, rtol=1e-5, atol=1e-5)
    # denormalise goes back to the pixels in [0, 1].
    np.testing.assert_allclose(mnist.denormalise(mnist.x_train[:500])[:, 0], raw / 255, atol=1e-6)


def test_mnist_labels_and_class_counts(mnist):
    assert class_counts(mnist.y_train) == MNIST_TRAIN_COUNTS
    assert class_counts(mnist.y_test) == MNIST_TEST_COUNTS
    assert int((mnist.y_test == 3).sum()) == 1010  # Hinton et al. 2015 §3: "1010 threes"
    raw = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert torch.equal(mnist.y_test, torch.from_numpy(raw.astype(np.int64)))


def test_bundled_training_images_are_the_original_file():
    raw = gzip.decompress((MNIST_DIR / "train-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"


def test_load_dataset_mnist_is_the_cached_bundle(mnist):
    again = load_dataset("mnist")
    assert again.x_train is mnist.x_train  # decoded once per process
    assert mnist.to("cpu") is mnist


def test_unknown_dataset_name():
    with pytest.raises(DataUnavailable, match="unknown data set 'svhn'"):
        load_dataset("svhn")


def test_with_train_keeps_the_test_set(mnist):
    x, y = mnist.x_train[:10], mnist.y_train[:10]
    sub = mnist.with_train(x, y)
    assert sub.x_train is x and sub.y_train is y
    assert sub.x_test is mnist.x_test and sub.name == "mnist"


def test_mnist_from_a_data_dir_of_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 256, (5, 28, 28))
    ytr, yte = np.arange(20) % 10, np.arange(5)
    raw = tmp_path / "MNIST" / "raw"
    for stem, arr in zip(kdata.MNIST_FILES, (xtr, ytr, xte, yte), strict=True):
        write_idx(raw / f"{stem}.gz", arr, compress=True)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.y_train.tolist() == ytr.tolist()
    np.testing.assert_allclose(ds.denormalise(ds.x_train)[:, 0].numpy(), xtr / 255, atol=1e-6)


# ----------------------------------------------------------------------------- IDX reader


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", arr)), arr)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", arr, compress=True)), arr)


@pytest.mark.parametrize(
    "name, content",
    [
        ("text", b"this is not an IDX file at all"),
        ("empty", b""),
        ("float-type", bytes([0, 0, 0x0D, 1]) + struct.pack(">i", 1) + b"\0\0\0\0"),
        ("truncated-header", bytes([0, 0, 8, 3]) + struct.pack(">i", 60000)),
        ("truncated-data", bytes([0, 0, 8, 2]) + struct.pack(">2i", 10, 10) + b"x" * 99),
        ("too-long", bytes([0, 0, 8, 1]) + struct.pack(">i", 3) + b"abcd"),
        ("bad.gz", b"\x1f\x8b not really gzip"),
        ("truncated.gz", gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 9]) + b"x" * 9)[:-12]),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataUnavailable) as err:
        read_idx(path)
    assert "\n" not in str(err.value) and path.name in str(err.value)


# ----------------------------------------------------------------------------- subsets


def labelled(n: int = 200, k: int = 10, seed: int = 0):
    """Labels in random order and x whose one feature is the example's index, so a subset's
    rows can be traced back to the original examples."""
    y = torch.from_numpy(np.random.default_rng(seed).integers(0, k, n)).long()
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    return x, y


def rows(x: torch.Tensor) -> list[int]:
    return x.view(-1).long().tolist()


def test_drop_classes(mnist):
    x, y = drop_classes(mnist.x_train, mnist.y_train, (3,))
    counts = class_counts(y)
    assert counts[3] == 0
    assert [c for i, c in enumerate(counts) if i != 3] == [
        c for i, c in enumerate(MNIST_TRAIN_COUNTS) if i != 3
    ]
    assert len(x) == len(y) == 60000 - 6131
    xs, ys = labelled()
    xd, yd = drop_classes(xs, ys, (0, 5))
    assert all(ys[i].item() == yd[j].item() for j, i in enumerate(rows(xd)))  # pairs intact
    assert rows(xd) == [i for i in range(len(ys)) if ys[i] not in (0, 5)]  # order kept


def test_keep_classes(mnist):
    x, y = keep_classes(mnist.x_train, mnist.y_train, (7, 8))
    assert set(y.tolist()) == {7, 8}
    assert len(x) == len(y) == MNIST_TRAIN_COUNTS[7] + MNIST_TRAIN_COUNTS[8]
    xs, ys = labelled()
    xk, yk = keep_classes(xs, ys, (2,))
    assert rows(xk) == [i for i in range(len(ys)) if ys[i] == 2]
    assert set(yk.tolist()) == {2}


def test_per_class_draws_n_of_each_class():
    xs, ys = labelled(500)
    x, y = per_class(xs, ys, 7, seed=1)
    assert class_counts(y) == [7] * 10
    idx = rows(x)
    assert len(set(idx)) == len(idx)  # no example twice
    assert [ys[i].item() for i in idx] == y.tolist()  # pairs intact
    assert y.tolist() != sorted(y.tolist())  # shuffled, not grouped by class
    again_x, _ = per_class(xs, ys, 7, seed=1)
    other_x, _ = per_class(xs, ys, 7, seed=2)
    assert torch.equal(again_x, x) and not torch.equal(other_x, x)


def test_per_class_takes_all_of_a_small_class():
    xs, ys = labelled(300)
    ys[ys == 4] = 5
    ys[0] = 4  # class 4 has a single example
    _, y = per_class(xs, ys, 10, seed=0)
    counts = class_counts(y)
    assert counts[4] == 1 and counts[5] == 10 and sum(counts) == 9 * 10 + 1
    x_all, _ = per_class(xs, ys, 10_000)
    assert sorted(rows(x_all)) == list(range(300))


def test_per_class_on_mnist(mnist):
    x, y = per_class(mnist.x_train, mnist.y_train, 100, seed=0)
    assert x.shape == (1000, 1, 28, 28) and class_counts(y) == [100] * 10


# ----------------------------------------------------------------------------- augmentation


def shift_reference(img: np.ndarray, dr: int, dc: int, fill: np.ndarray) -> np.ndarray:
    """img (C, H, W) moved down by dr and right by dc, new pixels set to fill (C,)."""
    c, h, w = img.shape
    out = np.empty_like(img)
    out[:] = fill.reshape(c, 1, 1)
    src = img[:, max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
    out[:, max(0, dr) : max(0, dr) + src.shape[1], max(0, dc) : max(0, dc) + src.shape[2]] = src
    return out


def test_random_shift_zero_is_identity(mnist):
    x = mnist.x_train[:8]
    assert torch.equal(random_shift(x, 0), x)


@pytest.mark.parametrize("max_shift", [1, 2, 3])
def test_random_shift_translates_each_image(mnist, max_shift):
    x = mnist.x_train[:64]
    out = random_shift(x, max_shift, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    fill = x.numpy().min(axis=(0, 2, 3))  # black, in normalised units
    seen = set()
    for img, got in zip(x.numpy(), out.numpy(), strict=True):
        matches = [
            (dr, dc)
            for dr in range(-max_shift, max_shift + 1)
            for dc in range(-max_shift, max_shift + 1)
            if np.array_equal(got, shift_reference(img, dr, dc, fill))
        ]
        assert matches, "output is not a translation of its input by at most max_shift"
        seen.update(matches)
    assert len(seen) > (2 * max_shift + 1) ** 2 // 2  # offsets vary from image to image
    # Same generator seed, same shifts.
    again = random_shift(x, max_shift, torch.Generator().manual_seed(0))
    assert torch.equal(again, out)


def test_random_shift_fills_each_channel_with_its_black():
    # Three channels whose black is -1, -2, -3 (as with CIFAR's per-channel normalisation).
    black = torch.tensor([-1.0, -2.0, -3.0]).view(1, 3, 1, 1)
    x = black + torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[:, :, 0, 0] = black[..., 0, 0]  # every channel has a black pixel somewhere
    out = random_shift(x, 2, torch.Generator().manual_seed(1))
    for img, got in zip(x.numpy(), out.numpy(), strict=True):
        assert any(
            np.array_equal(got, shift_reference(img, dr, dc, np.array([-1.0, -2.0, -3.0])))
            for dr in range(-2, 3)
            for dc in range(-2, 3)
        )


# ----------------------------------------------------------------------------- torchvision sets

CIFAR10_LABELS = [
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
]


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the real archives are Python 2 pickles


def fake_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """cifar-10-batches-py/ in the real layout (Krizhevsky 2009, "CIFAR-10 python version"):
    data_batch_1..5 and test_batch are pickled dicts with 'data' uint8 (N, 3072) holding the
    red, green and blue planes of each 32x32 image row-major, and 'labels' a list of ints;
    batches.meta holds 'label_names'. Returns the images (N, 3, 32, 32) and labels written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    out = {}
    for split, names, n in (
        ("train", [f"data_batch_{i}" for i in range(1, 6)], per_batch),
        ("test", ["test_batch"], n_test),
    ):
        xs, ys = [], []
        for name in names:
            x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            y = rng.integers(0, 10, n).tolist()
            entry = {
                "batch_label": f"{name} of 5",
                "labels": y,
                "data": x.reshape(n, 3072),
                "filenames": [f"img_{name}_{i}.png" for i in range(n)],
            }
            write_pickle(folder / name, entry)
            xs.append(x)
            ys += y
        out[split] = (np.concatenate(xs), np.array(ys))
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR10_LABELS, "num_vis": 3072}
    write_pickle(folder / "batches.meta", meta)
    return out


def fake_cifar100(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 100, n).tolist()
        entry = {"filenames": [], "batch_label": name, "fine_labels": y,
                 "coarse_labels": [v // 5 for v in y], "data": x.reshape(n, 3072)}  # fmt: skip
        write_pickle(folder / name, entry)
        out[name] = (x, np.array(y))
    names = [f"class{i}" for i in range(100)]
    write_pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": names[:20]})
    return out


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision's CIFAR classes compare every file with the MD5 of the real 160 MB archive
    (``CIFAR10._check_integrity`` and ``_load_meta`` call ``check_integrity(path, md5)``); small
    test files cannot match those. This patches only that check, keeping its file-exists part:
    ``check_integrity(path, None)`` is torchvision's own "file present" test."""
    from torchvision.datasets import cifar, utils

    monkeypatch.setattr(
        cifar, "check_integrity", lambda path, md5=None: utils.check_integrity(path)
    )


def expected_normalised(x_u8: np.ndarray, name: str) -> np.ndarray:
    mean, std = (np.array(v).reshape(1, -1, 1, 1) for v in kdata.STATS[name])
    return (x_u8 / 255.0 - mean) / std


def test_cifar10_from_files_in_the_real_format(tmp_path, skip_md5):
    written = fake_cifar10(tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.image_shape == (3, 32, 32) and ds.class_names == tuple(CIFAR10_LABELS)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        x_u8, labels = written[split]
        assert y.tolist() == labels.tolist()
        # Channel order and layout: the red plane of the file is channel 0, row-major.
        np.testing.assert_allclose(x.numpy(), expected_normalised(x_u8, "cifar10"), atol=1e-5)
    np.testing.assert_allclose(
        ds.denormalise(ds.x_test).numpy(), written["test"][0] / 255, atol=1e-6
    )


def test_cifar100_from_files_in_the_real_format(tmp_path, skip_md5):
    written = fake_cifar100(tmp_path)
    ds = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert ds.num_classes == 100 and len(ds.class_names) == 100
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.y_train.tolist() == written["train"][1].tolist()
    np.testing.assert_allclose(
        ds.x_train.numpy(), expected_normalised(written["train"][0], "cifar100"), atol=1e-5
    )


def test_cifar10_with_the_real_checksums_rejects_files_that_are_not_the_real_ones(tmp_path):
    fake_cifar10(tmp_path)  # right names, wrong contents: torchvision's MD5 check must say no
    with pytest.raises(DataUnavailable, match="cifar10: not found"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def assert_one_clear_line(err: DataUnavailable, folder: Path, files: tuple[str, ...]) -> None:
    msg = str(err)
    assert "\n" not in msg and "Traceback" not in msg
    assert str(folder) in msg
    for f in files:
        assert f in msg
    assert err.__suppress_context__  # raised "from None": no chained traceback either


CIFAR10_FILES = ("cifar-10-batches-py", "data_batch_1", "test_batch", "batches.meta")


def test_missing_cifar10_without_download(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(DataUnavailable) as err:
        load_dataset("cifar10", data_dir=folder, download=False)
    assert_one_clear_line(err.value, folder, CIFAR10_FILES)
    assert "downloading is off" in str(err.value)
    assert not folder.exists()  # nothing created when nothing may be downloaded


def test_missing_cifar10_offline_with_download(tmp_path, monkeypatch):
    """With download=True and no network the download fails; the user still gets one line.
    The network is cut at torchvision's download function, so no real connection is tried."""
    from torchvision.datasets import cifar

    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    folder = tmp_path / "nowhere"
    with pytest.raises(DataUnavailable) as err:
        load_dataset("cifar10", data_dir=folder, download=True)
    assert_one_clear_line(err.value, folder, CIFAR10_FILES)
    assert "could not be downloaded" in str(err.value) and "name resolution" in str(err.value)
    assert calls and calls[0].startswith("https://www.cs.toronto.edu/")


def test_missing_cifar100_and_fashion_mnist_name_their_files(tmp_path):
    with pytest.raises(DataUnavailable) as err:
        load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert_one_clear_line(err.value, tmp_path, ("cifar-100-python", "train", "test", "meta"))
    with pytest.raises(DataUnavailable) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert_one_clear_line(err.value, tmp_path, ("FashionMNIST/raw", *kdata.MNIST_FILES))


def test_fashion_mnist_from_idx_files(tmp_path):
    """torchvision's FashionMNIST reads root/FashionMNIST/raw/<four uncompressed IDX files>."""
    rng = np.random.default_rng(3)
    xtr, xte = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    ytr, yte = rng.integers(0, 10, 12), rng.integers(0, 10, 4)
    raw = tmp_path / "FashionMNIST" / "raw"
    for stem, arr in zip(kdata.MNIST_FILES, (xtr, ytr, xte, yte), strict=True):
        write_idx(raw / stem, arr)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert ds.name == "fashion-mnist" and ds.class_names[0] == "T-shirt/top"
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_test.dtype == torch.int64
    assert ds.y_train.tolist() == ytr.tolist() and ds.y_test.tolist() == yte.tolist()
    np.testing.assert_allclose(
        ds.x_train.numpy(), expected_normalised(xtr[:, None], "fashion-mnist"), atol=1e-5
    )


def test_fashion_mnist_offline_says_why_the_download_failed(tmp_path, monkeypatch):
    """torchvision's MNIST-style download error starts "Error downloading x.gz:" and ends with
    the reason, after the mirrors tried: the line must carry the reason, not the opener."""
    from torchvision.datasets import mnist

    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    with pytest.raises(DataUnavailable) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=True)
    assert_one_clear_line(err.value, tmp_path, ("FashionMNIST/raw", *kdata.MNIST_FILES))
    assert "could not be downloaded (" in str(err.value)
    assert "name resolution" in str(err.value)


def test_damaged_fashion_mnist_files_are_called_damaged_not_a_failed_download(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in kdata.MNIST_FILES:
        (raw / stem).write_bytes(b"not an IDX file at all")
    with pytest.raises(DataUnavailable) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=True)
    assert_one_clear_line(err.value, tmp_path, ("FashionMNIST/raw",))
    assert "could not be read" in str(err.value) and "downloaded" not in str(err.value)


FAR = "/nonexistent/kd-data/one-more-folder"


def test_a_missing_data_set_reaches_the_user_whole():
    """The run's stored message (jobs.one_line) keeps the ~300-character line to its end: where
    to put the files, which a 300-character cut lost."""
    from kdcore.jobs import one_line

    with pytest.raises(DataUnavailable) as err:
        load_dataset(
            "fashion-mnist", data_dir="/nonexistent/kd-data/one-more-folder", download=False
        )
    assert len(str(err.value)) > 300
    assert one_line(err.value).endswith(
        "under /nonexistent/kd-data/one-more-folder or set KD_DATA_DIR"
    )
    long = one_line(ValueError("x" * 700))
    assert len(long) == 600 and long.endswith("…")


@pytest.mark.parametrize("flaw", ["fewer labels", "label 200"])
def test_idx_files_that_do_not_pair_up_are_refused_in_one_line(tmp_path, flaw):
    """A wrong --data-dir with MNIST-named files: 600 images and 200 labels trained and said
    "completed"; a label of 200 failed mid-run naming no file."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (600, 28, 28)), rng.integers(0, 10, 600)
    if flaw == "fewer labels":
        y = y[:200]
    else:
        y[5] = 200
    for stem, arr in zip(kdata.MNIST_FILES, (x, y, x[:100], y[:100]), strict=True):
        write_idx(tmp_path / stem, arr)
    kdata._load_idx_set.cache_clear()
    with pytest.raises(DataUnavailable) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "train-labels-idx1-ubyte" in msg and str(tmp_path) in msg
