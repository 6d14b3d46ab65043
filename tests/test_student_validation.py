"""scripts/student_validation.py: it finds the paper-profile teachers in the cache and scores a
student distilled from one on held-out training images, not on the test set."""

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from kdcore.checkpoint import cache_dir, load_model, save_model
from kdcore.data import load_dataset
from kdcore.presets import teacher_config
from kdcore.reference import reference_dir
from kdcore.runner import resolve
from kdcore.train import evaluate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script():
    path = ROOT / "scripts" / "student_validation.py"
    spec = importlib.util.spec_from_file_location("student_validation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cache_teacher(name: str, seed: int, shift: int) -> Path:
    """The shipped paper teacher, filed in the cache as train_teacher files a teacher trained
    with the profile's settings at ``seed`` (or another jitter)."""
    cfg = resolve("hinton-mnist", profile="paper")
    tcfg = teacher_config(cfg.teacher_epochs, cfg.batch_size, cfg.lr, seed, shift,
                          cfg.teacher_max_norm)  # fmt: skip
    model, _ = load_model(reference_dir() / "hinton-mnist" / "teacher.safetensors")
    meta = {"config": {"arch": cfg.teacher, "data": "mnist", "n": 60_000, "cfg": asdict(tcfg)}}
    path = cache_dir() / "teachers" / f"{cfg.teacher}-mnist-{name}.safetensors"
    return save_model(model, path, cfg.teacher, 10, (1, 28, 28), meta)


def test_it_scores_the_distilled_student_on_held_out_images(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    paper = cache_teacher("paper", seed=5, shift=2)
    cache_teacher("other", seed=5, shift=1)  # not the profile's teacher: skipped
    (cache_dir() / "teachers" / "mlp-1200-dropout-mnist-broken.safetensors").write_bytes(b"x")
    assert script.paper_teachers() == [paper]

    out = tmp_path / "rows.jsonl"
    assert script.main(["--epochs", "1", "--out", str(out)]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["variant"] == "profile" and row["seed"] == 5
    assert row["teacher_test_errors"] < 100  # the shipped teacher: 74
    # one epoch from a good teacher already leaves few of the 10,000 held-out images wrong
    assert 0 < row["validation_errors"] < 400 and 0 < row["test_errors"] < 400
    assert "profile (own teacher): 1 student, validation" in capsys.readouterr().out


def test_an_ensemble_of_teachers_teaches_on_all_images(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    one = cache_teacher("a", seed=5, shift=2)
    cache_teacher("b", seed=6, shift=2)  # the same net again: their mean logits are its logits
    single = load_model(one)[0]
    out = tmp_path / "rows.jsonl"
    assert script.main(["--ensemble", "--held-out", "0", "--epochs", "1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [5, 6]  # a student at each teacher's seed
    errors = evaluate(single, load_dataset("mnist"))["test_errors"]
    for r in rows:
        assert r["teacher"] == "ensemble of 2" and r["teacher_test_errors"] == errors
        assert r["validation_errors"] is None and 0 < r["test_errors"] < 400
    assert "profile (ensemble of 2 teacher): 2 students, test" in capsys.readouterr().out
    assert script.main(["--held-out", "60000"]) == 2
    capsys.readouterr()
    assert script.main(["--teachers", str(tmp_path / "nowhere.safetensors")]) == 1
    assert "cannot use that teacher: no checkpoint at" in capsys.readouterr().out


def test_student_seeds_give_each_teacher_several_students(script, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    cache_teacher("paper", seed=5, shift=2)
    out = tmp_path / "rows.jsonl"
    args = ["--held-out", "59000", "--epochs", "1", "--student-seeds", "3", "4", "--out", str(out)]
    assert script.main(args) == 0  # 1,000 transfer images: quick
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["teacher_seed"], r["seed"]) for r in rows] == [(5, 3), (5, 4)]
    pair = [(r["validation_errors"], r["test_errors"]) for r in rows]
    assert pair[0] != pair[1]  # two students, not one run twice


def test_it_says_what_to_run_when_the_cache_has_no_paper_teacher(script, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "empty"))
    assert script.main([]) == 1
    assert "run scripts/paper_seeds.py first" in capsys.readouterr().out
