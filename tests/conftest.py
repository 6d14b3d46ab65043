"""Shared test setup. Every test session gets its own cache and run-store folders, so tests never
read or write the user's ~/.cache and never see each other's leftovers."""

import os
import tempfile

_tmp = tempfile.mkdtemp(prefix="kd-tests-")
os.environ.setdefault("KD_CACHE_DIR", os.path.join(_tmp, "cache"))
os.environ.setdefault("KD_STORE", os.path.join(_tmp, "runs.sqlite"))
