"""Shared test setup. Every test session gets its own cache and run-store folders, so tests never
read or write the user's ~/.cache and never see each other's leftovers."""

import os
import tempfile

import pytest

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
