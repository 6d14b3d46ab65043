"""Shared test setup. Every test session gets its own cache and run-store folders, so tests never
read or write the user's ~/.cache and never see each other's leftovers."""

import os
import tempfile

import pytest
from hypothesis import settings

# The same examples on every run: CI must not go red on a draw that no earlier run made. The
# properties are still checked on many inputs; exploring new ones is for runs with
# HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

_tmp = tempfile.mkdtemp(prefix="kd-tests-")
os.environ.setdefault("KD_CACHE_DIR", os.path.join(_tmp, "cache"))
os.environ.setdefault("KD_STORE", os.path.join(_tmp, "runs.sqlite"))


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    """A run store of the test's own, which the app's pages open through ``$KD_STORE`` (their
    cached job queue is keyed by this path)."""
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("KD_STORE", str(path))
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module of small models and tiny tensors, restored after.

    On the shared 2-core machine a second thread only adds synchronisation, and when the cores
    are busy it costs far more than it saves: measured, an epoch of mlp-100 went from 2.6 s to 16
    s, a klfit fit from 0.2 s to 12 s, a DeiT run from 5.6 s to 39 s. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shipped_without_weights(tmp_path, monkeypatch):
    """A preset's shipped run as its JSON alone, its weights left behind, in the folder
    ``$KD_REFERENCE_DIR`` names: call it with the preset's name."""

    def only(preset: str) -> None:
        import shutil

        from kdcore.reference import reference_dir

        folder = tmp_path / "refs-without-weights"
        folder.mkdir(exist_ok=True)
        shutil.copy(reference_dir() / f"{preset}.json", folder)
        monkeypatch.setenv("KD_REFERENCE_DIR", str(folder))

    return only


@pytest.fixture
def no_shipped(tmp_path, monkeypatch):
    """No shipped reference runs (``$KD_REFERENCE_DIR`` an empty folder): a page then offers to
    run its preset, as it does where the shipped files were removed."""
    folder = tmp_path / "no-reference-runs"
    folder.mkdir()
    monkeypatch.setenv("KD_REFERENCE_DIR", str(folder))
    return folder
