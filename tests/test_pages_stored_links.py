"""Links into the views that appear only once a preset run is stored: the epoch sliders and
the model and image pickers of the relations and attention views answer nonsense with a
notice, never an exception, and the nonsense leaves the URL (the general property test in
test_hardening.py cannot reach these views without a stored run)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from kdcore.store import Store
from tests.apptest import PAGES
from tests.test_pages_features import attention_result
from tests.test_pages_relation import RKD_GAPS, RKD_MATRICES, TIMEOUT, _fake_run

BAD = ["abc", "99", "0", "-1", "inf", "nan", "1e309", "²", "1" * 40]


@pytest.fixture
def rkd_store(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("KD_STORE", str(path))
    _fake_run(Store(path), "rkd-mnist", {"geometry": RKD_GAPS, "geometry_matrices": RKD_MATRICES})
    return path


@pytest.fixture
def at_store(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("KD_STORE", str(path))
    _fake_run(Store(path), "attention-transfer", attention_result())
    return path


def _check(page: str, key: str, value: str) -> None:
    at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT)
    at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.query_params.get(key)
    assert shown != [value] and shown != value, f"{key}={value!r} stayed in the URL"
    notices = (
        [t.value for t in at.toast] + [c.value for c in at.caption] + [w.value for w in at.warning]
    )
    assert any("not understood" in n or "ignored" in n for n in notices), notices


@pytest.mark.parametrize("key", ["epoch", "who"])
@pytest.mark.parametrize("value", BAD)
def test_geometry_stored_view_answers_bad_links(rkd_store, key, value):
    _check("geometry.py", key, value)


@pytest.mark.parametrize("key", ["epoch", "img"])  # "test" needs stored teacher weights
@pytest.mark.parametrize("value", ["abc", "99999", "-1", "inf", "²"])
def test_attention_stored_view_answers_bad_links(at_store, key, value):
    _check("hints.py", key, value)
