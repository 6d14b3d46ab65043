"""The feature presets end to end on a 1,000-image slice of MNIST (real training, small): each
result has the keys its page and the issue ask for, and the teacher's pass over the training set
is made once and shared by the KD baseline and the method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcore import presets_features
from kdcore.runner import run_preset
from tests.tiny_mnist import write_tiny_mnist


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=300)


def _run(name: str, tiny_dir: Path, **changes) -> dict:
    result = run_preset(name, epochs=1, data_dir=str(tiny_dir), **changes)
    result = json.loads(json.dumps(result))  # JSON-ready
    assert result["status"] == "completed", result["message"]
    return result


def test_projector_normalisation_has_spectra_and_collapse_counts(tiny_dir):
    result = _run("projector-normalisation", tiny_dir, teacher="mlp-100", student="mlp-30")
    variants = ["none", "batchnorm", "whitening", "orthogonal"]
    assert list(result["spectra"]) == variants and list(result["collapsed"]) == variants
    for v in variants:
        (sigma,) = result["spectra"][v]  # one epoch
        assert len(sigma) == 30 and sigma == sorted(sigma, reverse=True)
    assert result["spectra"]["orthogonal"][0] == pytest.approx([1.0] * 30, abs=1e-4)
    assert result["collapsed"]["orthogonal"] == 0


@pytest.mark.parametrize("name", ["fitnets-mnist", "attention-transfer"])
def test_cnn_presets_share_one_teacher_pass(tiny_dir, name, monkeypatch):
    passes = []
    real = presets_features.cache_targets

    def counted(*args, **kw):
        out = real(*args, **kw)
        passes.append(out)
        return out

    monkeypatch.setattr(presets_features, "cache_targets", counted)
    logits_seen = []
    real_predict = presets_features.predict_logits
    monkeypatch.setattr(presets_features, "predict_logits",
                        lambda *a, **k: logits_seen.append(1) or real_predict(*a, **k))  # fmt: skip
    result = _run(name, tiny_dir)
    method = "student_fitnets" if name == "fitnets-mnist" else "student_at"
    assert list(result["models"]) == ["teacher", "student_hard", "student_kd", method]
    assert len(passes) == 1 and "logits" in passes[0]  # one pass, and KD took its logits
    assert not logits_seen
    assert passes[0]["logits"].shape == (1000, 10) and torch.isfinite(passes[0]["logits"]).all()
    if name == "fitnets-mnist":
        stages = [r["stage"] for r in result["history"][method]]
        assert stages == ["hint", "train"]
        assert result["pairing"]["teacher"] == "cnn.conv2"
    else:
        maps = result["maps"]
        assert maps["layers"] == ["conv1", "conv2"] and len(maps["test_index"]) == 8
        assert "maps" in result["history"]["student_at"][0]["extra"]
