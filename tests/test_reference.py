"""The paper profile and the shipped reference runs (issue: Hinton's MNIST at paper length).

The shipped files are checked as they are: they load, match the schema, were made with the
paper profile the README describes, and their weights give the test errors they record. The app
tests use a tiny reference run written by the real script's code into a folder of their own.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.catalog import DRAWN_ON, page
from kdcore.checkpoint import CheckpointError, load_model, save_model
from kdcore.data import load_dataset
from kdcore.estimate import estimate_seconds
from kdcore.models import build_model
from kdcore.presets import BIAS_ERRORS, BIAS_PERCENT, PAPER_78_PROFILE, PAPER_PROFILE, PRESETS
from kdcore.reference import (
    SHIPPED_WEIGHTS,
    Reference,
    check_reference,
    load_references,
    load_seed_study,
    reference_dir,
    reference_model,
    row_values,
    seed_line,
    seed_row,
    seed_study_path,
    seed_wins,
    shipped_profile,
    sweep_seeds,
    write_reference,
)
from kdcore.runner import TEST_ERRORS, resolve, run_preset
from kdcore.train import Batch, TrainConfig, apply_max_norm, evaluate, fit, max_norm_weights
from tests.tiny_mnist import write_tiny_mnist

PAPER_PRESETS = [name for name, p in PRESETS.items() if "paper" in p.profiles]

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
# The presets with a shipped reference run; hinton-mnist's is required, the demos' ship when made.
SHIPPED = tuple(sorted(p.stem for p in reference_dir().glob("*.json")))


# ----------------------------------------------------------------------------- the paper profile


def test_the_paper_profile_is_the_recipe_the_readme_states():
    cfg = resolve("hinton-mnist", profile="paper")
    assert (cfg.teacher, cfg.student, cfg.T, cfg.teacher_shift) == ("mlp-1200-dropout", "mlp-800",
                                                                    20.0, 2)  # fmt: skip
    assert (cfg.epochs, cfg.teacher_epochs, cfg.teacher_max_norm) == (20, 60, 3.5)
    teacher = build_model("mlp-1200-dropout")
    assert (teacher.input_dropout.p, teacher.dropout.p, teacher.hidden) == (0.0, 0.3, (1200, 1200))
    readme = (ROOT / "README.md").read_text()
    for key, value in PAPER_PROFILE.items():  # the README's table of the profile
        assert re.search(rf"`{key}`\s*\|\s*`?{re.escape(str(value))}`?", readme), key
    for name in ("hinton-mnist", "omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep"):
        assert PRESETS[name].profiles["paper"] in (PAPER_PROFILE, PAPER_78_PROFILE)
    # only-7-8's transfer set is a fifth of MNIST: as many steps as the others' students
    assert {**PAPER_PROFILE, "epochs": 5 * PAPER_PROFILE["epochs"]} == PAPER_78_PROFILE


def test_the_demos_paper_teacher_is_hinton_mnists_so_the_cache_serves_it():
    from kdcore.presets import teacher_config, teacher_train_config

    h = resolve("hinton-mnist", profile="paper")
    mine = teacher_config(h.teacher_epochs, h.batch_size, h.lr, h.seed, h.teacher_shift,
                          h.teacher_max_norm)  # fmt: skip
    for name in ("omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep"):
        cfg = resolve(name, profile="paper")
        assert teacher_train_config(cfg) == mine and cfg.teacher == h.teacher, name


def test_profiles_are_starting_points_and_unknown_ones_are_refused():
    cfg = resolve("hinton-mnist", epochs=3, profile="paper", T=4.0)
    assert (cfg.epochs, cfg.T, cfg.teacher) == (3, 4.0, "mlp-1200-dropout")
    assert resolve("hinton-mnist", profile="default") == PRESETS["hinton-mnist"].config
    with pytest.raises(ValueError, match="no profile 'long'; choose default, paper"):
        resolve("hinton-mnist", profile="long")


@pytest.mark.parametrize("name", list(PAPER_PRESETS))
def test_a_run_says_why_its_numbers_differ_for_the_recipe_it_ran(name):
    p = PRESETS[name]
    assert p.profile_of(asdict(p.config)) == "default"
    assert p.profile_of(asdict(resolve(name, profile="paper", seed=3))) == "paper"
    assert p.profile_of(asdict(resolve(name, profile="paper", epochs=2))) == "default"
    paper, default = p.differences_for("paper"), p.differences_for("default")
    assert default == p.differences and paper != default
    # the paper recipe's explanation names its own schedule, not the quick default's
    assert "20 epochs" in paper and "few epochs" not in paper and "8 epochs" not in paper


def test_the_cli_runs_a_profile_and_lists_them(tmp_path, capsys):
    from kdcore.cli import main

    tiny = write_tiny_mnist(tmp_path / "mnist", n_train=300, n_test=200)
    out = tmp_path / "r.json"
    code = main(["run", "hinton-mnist", "--profile", "paper", "--epochs", "1", "--no-store",
                 "--data-dir", str(tiny), "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["config"]["teacher"] == "mlp-1200-dropout" and result["config"]["epochs"] == 1
    # --epochs is the students'; the profile's teacher keeps its own 60
    assert [len(result["history"][m]) for m in ("teacher", "student_kd")] == [60, 1]
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert "--profile paper: epochs=20, teacher=mlp-1200-dropout, teacher_epochs=60" in listed
    # each shipped seed study in a line: the headline's mean (sd), a sweep's best values
    refs = load_references()[0]
    rows = load_seed_study(refs["hinton-mnist"])
    kd = [r["errors"]["student_kd"] for r in rows]
    line = seed_line(refs["hinton-mnist"], rows)
    assert line.startswith(f"at {len(rows)} seeds, mean (sd) test errors: teacher ")
    assert f"student_kd {statistics.fmean(kd):.1f} ({statistics.stdev(kd):.1f}) [paper 74]" in line
    # the paper's figure beside ours, in its unit, where it gives one
    only = refs["only-7-8"]
    assert (
        "before the shift 25.14 (1.42) [paper 47.3], after (bias chosen on test) 8.35 (0.81) "
        "[paper 13.2], after (bias chosen on held-out images) 8.42 (0.80)"
        in seed_line(only, load_seed_study(only))
    )
    for ref in refs.values():
        rows = load_seed_study(ref)
        assert not rows or seed_line(ref, rows) in listed, ref.preset
    sweep = refs["temperature-sweep"]
    best = sweep_seeds(sweep, load_seed_study(sweep))[1].best()
    assert "mlp-30 best at T = " + ", ".join(f"{b:g}" for b in best) in listed
    assert main(["run", "hinton-mnist", "--profile", "nope", "--no-store"]) == 2


# ----------------------------------------------------------------------------- max-norm


def test_max_norm_projects_only_the_rows_outside_the_ball():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 5)
    with torch.no_grad():
        layer.weight.mul_(torch.tensor([0.1, 1, 10, 100, 0.5]).view(5, 1))
    before = layer.weight.detach().clone()
    norms = before.norm(dim=1)
    radius = float(norms.median())
    apply_max_norm(max_norm_weights([torch.nn.Sequential(layer)]), radius)
    after = layer.weight.detach()
    for i, n in enumerate(norms):
        if n <= radius:
            assert torch.equal(after[i], before[i])  # inside: untouched
        else:  # outside: the same direction, on the sphere
            assert after[i].norm() == pytest.approx(radius, rel=1e-6)
            assert torch.allclose(after[i] / radius, before[i] / n, atol=1e-6)


def test_fit_keeps_every_units_incoming_weights_within_the_radius(tmp_path):
    data = load_dataset("mnist", "cpu", str(write_tiny_mnist(tmp_path, 256, 64)))
    model = build_model("mlp-30")
    fit(model, data, TrainConfig(epochs=1, lr=5.0, batch_size=64, max_norm=0.5))
    for layer in [*model.layers, model.head]:
        assert layer.weight.norm(dim=1).max() <= 0.5 + 1e-5
    free = build_model("mlp-30")
    fit(free, data, TrainConfig(epochs=1, lr=5.0, batch_size=64))
    assert free.layers[0].weight.norm(dim=1).max() > 0.5  # the constraint did the work
    assert Batch  # the step is the trainer's own; nothing here reimplements it


# ----------------------------------------------------------------------------- half precision


def test_half_precision_checkpoints_load_as_float32_within_rounding(tmp_path):
    model = build_model("mlp-30")
    path = save_model(model, tmp_path / "m.safetensors", "mlp-30", 10, (1, 28, 28), half=True)
    full = save_model(model, tmp_path / "f.safetensors", "mlp-30", 10, (1, 28, 28))
    assert path.stat().st_size < 0.55 * full.stat().st_size
    back, _ = load_model(path)
    for (k, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert b.dtype == torch.float32, k
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), k


def test_a_checkpoint_of_another_dtype_is_still_refused(tmp_path):
    from safetensors.torch import save_file

    model = build_model("mlp-30")
    good = save_model(model, tmp_path / "g.safetensors", "mlp-30", 10, (1, 28, 28))
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k).to(torch.int16) for k in f.keys()}  # noqa: SIM118
    bad = tmp_path / "b.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match="has dtype I16, expected F32"):
        load_model(bad)


# ----------------------------------------------------------------------------- the shipped runs


def test_every_shipped_reference_run_loads_and_matches_the_schema():
    refs, problems = load_references()
    assert not problems, problems
    assert "hinton-mnist" in refs and set(SHIPPED) == set(refs), sorted(refs)
    # the label names both schedules when the teacher has its own
    assert " · 20 epochs (teacher 60) · " in refs["hinton-mnist"].label()
    for name in SHIPPED:
        ref = refs[name]
        # Hinton's demos at the paper's length; the quick MLP presets at their long profile;
        # the rest at their default recipe: every page opens on a real run before anything trains
        profile = shipped_profile(PRESETS[name])
        assert (profile == "paper") == (name in PAPER_PRESETS), name
        assert ref.result["status"] == "completed" and ref.profile == profile, name
        # made with that profile, unchanged: the config is what the profile resolves to
        expected = json.loads(json.dumps(asdict(resolve(name, profile=profile))))  # tuples: lists
        assert ref.result["config"] == expected, name
        assert ref.info["command"].startswith(
            f"python scripts/make_reference_runs.py {name} --profile {profile}"
        )
        assert ref.info["seconds"] > 0 and ref.info["device_name"] and ref.info["code_version"]
        assert ref.result["paper"]["source"] == PRESETS[name].source
        cfg = ref.result["config"]
        if profile != "paper":
            continue
        for model, history in ref.result["history"].items():
            teacher = ref.result["models"][model]["role"] == "teacher"
            assert len(history) == cfg["teacher_epochs" if teacher else "epochs"], (name, model)


def test_the_shipped_weights_give_the_test_errors_they_record():
    refs, _ = load_references()
    data = load_dataset("mnist", "cpu")
    for name in SHIPPED:
        ref = refs[name]
        assert sorted(ref.weights) == sorted(SHIPPED_WEIGHTS.get(name, ())), name
        for model, w in ref.weights.items():
            net = reference_model(ref, model)
            errors = evaluate(net, data)["test_errors"]
            assert abs(errors - w["test_errors"]) <= 2, (name, model, errors)
            # half precision costs at most a few errors against the run's own figure
            assert abs(errors - ref.result["models"][model]["test_errors"]) <= 5, (name, model)


def test_a_reference_run_was_made_when_its_record_says_not_when_its_file_was_written(tmp_path):
    import os
    import shutil

    path = tmp_path / "hinton-mnist.json"
    shutil.copy(reference_dir() / "hinton-mnist.json", path)
    os.utime(path, (1e9, 1e9))  # 2001: a checkout's time, not the run's
    ref = load_references(tmp_path)[0]["hinton-mnist"]
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ref.created_at))
    assert made == ref.info["created"]
    odd = Reference(ref.preset, ref.result, {**ref.info, "created": "last Tuesday"}, path)
    assert odd.created_at == 1e9  # a record that is no date: the file's time, never an error


def test_a_reference_names_the_code_its_process_started_with(tmp_path, monkeypatch):
    import subprocess

    from kdcore import reference

    reference.code_version.cache_clear()
    first = reference.code_version()  # as the scripts ask, before anything trains

    def committed_meanwhile(*args, **kwargs):  # git would now name another commit
        return subprocess.CompletedProcess(args, 0, stdout="0000000\n", stderr="")

    monkeypatch.setattr(reference.subprocess, "run", committed_meanwhile)
    ref = load_references()[0]["hinton-mnist"]
    path = write_reference(ref.result, {}, tmp_path, "paper", "python scripts/x.py")
    assert json.loads(path.read_text())["reference"]["code_version"] == first != "0000000"
    row = seed_row(ref.result, "paper", 1.0)
    assert row["code_version"] == first
    reference.code_version.cache_clear()


def test_a_damaged_reference_file_is_skipped_with_one_line(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps({"preset": "x"}))
    good = json.loads(next(reference_dir().glob("hinton-mnist.json")).read_text())
    (tmp_path / "hinton-mnist.json").write_text(json.dumps(good))
    refs, problems = load_references(tmp_path)
    assert list(refs) == ["hinton-mnist"]
    assert problems == ["a.json: unreadable (JSONDecodeError)",
                        "b.json: no status, config, device, history, models, paper, seconds "
                        "(not a run result)"]  # fmt: skip
    broken = {**good, "reference": {"profile": "paper"}}
    with pytest.raises(ValueError, match="the reference block has no command"):
        check_reference(broken, "c.json")
    with pytest.raises(CheckpointError, match="ships no weights for nobody"):
        reference_model(refs["hinton-mnist"], "nobody")


@pytest.mark.parametrize(
    "spoil, said",
    [
        (lambda d: d.update(history=[]), "history is not an object"),
        (lambda d: d.update(seconds="17 min"), "seconds is not a number"),
        (lambda d: d["models"]["teacher"].update(test_errors="74"), "test_errors '74', not a"),
        (lambda d: d["models"]["teacher"].update(test_errors=True), "test_errors True, not a"),
        (lambda d: d["models"]["teacher"].update(test_accuracy=99.3), "test_accuracy 99.3"),
        (lambda d: d["history"].update(teacher={"epoch": 1}), "'teacher' is not a list"),
        (lambda d: d["history"]["teacher"][2].update(seconds="x"), "epoch 3 of 'teacher'"),
        (lambda d: d["history"]["teacher"][0].pop("epoch"), "epoch 1 of 'teacher'"),
        (lambda d: d["history"]["student_kd"].append(7), "epoch 21 of 'student_kd'"),
        (lambda d: d["history"]["teacher"][0].update(test_accuracy=float("nan")), "epoch 1 of"),
    ],
)
def test_a_reference_file_with_values_of_the_wrong_type_is_refused_in_one_line(spoil, said):
    """The keys are all there but a value is not what a page draws: refused, not drawn."""
    good = json.loads((reference_dir() / "hinton-mnist.json").read_text())
    check_reference(good, "h.json")
    spoil(good)
    with pytest.raises(ValueError, match=re.escape("h.json: ") + ".*" + re.escape(said)) as err:
        check_reference(good, "h.json")
    assert "\n" not in str(err.value)


def test_the_shipped_seed_study_is_the_table_the_readme_shows():
    ref = load_references()[0]["hinton-mnist"]
    rows = load_seed_study(ref)
    assert len(rows) >= 5 and len({r["seed"] for r in rows}) == len(rows)
    readme = (ROOT / "README.md").read_text()
    for r in rows:
        e = r["errors"]
        line = f"| {r['seed']} | {e['teacher']} | {e['student_hard']} | {e['student_kd']} |"
        assert line in readme, line
        assert r["profile"] == "paper" and r["code_version"] and r["device_name"]


def test_a_seed_study_keeps_only_rows_of_its_reference(tmp_path):
    good = json.loads((reference_dir() / "hinton-mnist.json").read_text())
    (tmp_path / "hinton-mnist.json").write_text(json.dumps(good))
    ref = load_references(tmp_path)[0]["hinton-mnist"]
    assert load_seed_study(ref) == []  # no study: no rows
    errors = {"teacher": 70, "student_hard": 140, "student_kd": 80}
    row = {"profile": "paper", "schedule": {"epochs": 20, "teacher_epochs": 60}, "errors": errors}
    lines = [
        {**row, "seed": 3},
        "{not json",
        {**row, "seed": 1, "profile": "default"},  # another profile
        {**row, "seed": 1, "schedule": {"epochs": 1, "teacher_epochs": 1}},  # a quick check
        {**row, "seed": 1, "errors": {"teacher": 70}},  # not its models
        {**row, "seed": "2"},
        {**row, "seed": 1, "errors": {**errors, "teacher": "x"}},
        [1, 2],
        {**row, "seed": 1},
        {**row, "seed": 3, "errors": {**errors, "teacher": 71}},  # run again
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    seed_study_path(ref).write_text(text)
    rows = load_seed_study(ref)
    assert [r["seed"] for r in rows] == [1, 3] and rows[1]["errors"]["teacher"] == 71


def test_an_estimate_from_a_reference_counts_the_teacher_a_fresh_machine_trains():
    history = {"teacher": [{"seconds": 10.0}] * 4, "student": [{"seconds": 2.0}] * 4}
    models = {"teacher": {"role": "teacher"}, "student": {"role": "student"}}
    result = {"history": history, "models": models}
    cfg = {"epochs": 4}
    assert estimate_seconds(result, cfg, cfg) == 8.0  # the teacher from the cache
    assert estimate_seconds(result, cfg, cfg, cached_teacher=False) == 48.0


# ----------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def tiny_refs(tmp_path_factory) -> Path:
    """A one-epoch paper-profile hinton-mnist on 1,000 images, written by the script's code."""
    root = tmp_path_factory.mktemp("refs")
    tiny = write_tiny_mnist(root / "mnist", n_train=1000, n_test=300)
    trained: dict = {}
    result = run_preset("hinton-mnist", epochs=1, profile="paper", data_dir=str(tiny),
                        trained=trained, use_cache=False)  # fmt: skip
    folder = root / "reference_runs"
    write_reference(result, trained, folder, "paper", "python scripts/make_reference_runs.py "
                    "hinton-mnist --epochs 1", ("student_kd",), data_dir=str(tiny))  # fmt: skip
    # its seed study: this run's row, as scripts/paper_seeds.py writes it
    row = seed_row(result, "paper", result["seconds"])
    (folder / "hinton-mnist.seeds.jsonl").write_text(json.dumps(row) + "\n")
    return folder


@pytest.fixture
def with_refs(tiny_refs, store_path, monkeypatch):
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tiny_refs))
    return tiny_refs


def test_the_lab_opens_a_preset_on_its_reference_run_without_training(with_refs, store_path):
    from kdcore.store import Store

    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["mode"] = "Preset"
    at.run()
    assert not at.exception, at.exception
    heads = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert any("Reference run: hinton-mnist · paper profile" in h for h in heads), heads
    assert any("make_reference_runs.py hinton-mnist" in c.value for c in at.caption)
    assert "student_kd" in at.dataframe[1].value["model"].tolist()  # ours beside the paper's
    assert any(m.value.startswith("**The same recipe at 1 seed**") for m in at.markdown)
    seeds = next(d.value for d in at.dataframe if "mean" in list(d.value.index))
    assert list(seeds.index) == ["seed 0", "mean", "paper"]
    assert seeds.loc["paper", "student_kd"] == 74  # the paper's 800-800 distilled
    assert any("seed 0 on" in c.value and "the row of seed 0." in c.value for c in at.caption)
    assert Store(store_path).list() == []  # nothing trained, nothing queued
    # the reference ran the paper recipe, the controls show the default: each says why its own
    # numbers differ from the paper's
    hinton = PRESETS["hinton-mnist"]
    assert any(hinton.differences_for("paper") in m.value for m in at.markdown)
    assert any(hinton.differences in c.value for c in at.caption)
    # the paper recipe from a link: its settings, with a cost scaled from the reference run
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(mode="Preset", profile="paper")
    at.run()
    assert not at.exception and at.button_group(key="profile").value == "paper"
    assert at.number_input(key="ep-hinton-mnist-paper").value == PAPER_PROFILE["epochs"]
    estimate = next(c.value for c in at.caption if "Estimated time" in c.value)
    assert "shipped reference run" in estimate and "teacher's training included" in estimate
    assert any(hinton.differences_for("paper") in c.value for c in at.caption)
    assert not any(hinton.differences in c.value for c in at.caption)
    assert not at.button[0].disabled


def test_an_odd_profile_in_the_link_falls_back_with_a_notice(with_refs):
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(mode="Preset", profile="<b>")
    at.run()
    assert not at.exception and at.button_group(key="profile").value == "default"
    assert " profile=" in at.toast[0].value


def test_the_shipped_run_shows_its_seed_study_and_why_its_own_figures_differ(
    store_path, monkeypatch
):
    monkeypatch.delenv("KD_REFERENCE_DIR", raising=False)  # the shipped runs
    ref = load_references()[0]["hinton-mnist"]
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "hinton-mnist"
    at.run()
    assert not at.exception, at.exception
    n = len(load_seed_study(ref))
    assert any(m.value.startswith(f"**The same recipe at {n} seeds**") for m in at.markdown)
    # the shipped run ran on another thread count than its seed's row: the caption says so
    where = ref.info["device_name"]
    assert any(f"seed 0 on {where}: another thread count" in c.value for c in at.caption)


@pytest.mark.parametrize(
    "preset,href",
    [
        ("dist-stronger", "(/dkd)"),
        ("born-again", "(/modes?mode=born-again)"),
        ("hinton-mnist", None),
    ],
)
def test_a_shipped_run_in_the_lab_links_the_page_that_draws_it_in_full(
    store_path, monkeypatch, preset, href
):
    """The lab's tables leave out what only a preset's own page draws (DIST's teacher sizes,
    a mode's peers): its run links there; Hinton's demonstrations are drawn in the lab itself."""
    monkeypatch.delenv("KD_REFERENCE_DIR", raising=False)  # the shipped runs
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = preset
    at.run()
    assert not at.exception, at.exception
    links = [m.value for m in at.markdown if m.value.startswith("[Explained and drawn in full")]
    if href is None:
        assert not links
    else:
        title = page(DRAWN_ON[preset].slug).title
        assert links == [f"[Explained and drawn in full: {title}]{href}"]


def test_the_history_lists_shipped_runs_beside_the_users_and_never_deletes_them(with_refs):
    import os

    from kdcore.store import iso

    # a checkout gives the file its own time: the history shows when the run was made
    os.utime(with_refs / "hinton-mnist.json", (1e9, 1e9))
    made = load_references(with_refs)[0]["hinton-mnist"].created_at
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["created"].tolist() == [iso(made)] and not iso(made).startswith("2001")
    assert table["id"].tolist() == [-1] and table["run"].tolist() == [
        "shipped hinton-mnist (paper)"
    ]
    assert at.multiselect(key="picked").value == [-1]  # compared by default
    assert "shipped hinton-mnist (paper)" in at.get("plotly_chart")[0].proto.spec
    assert any("Reference run: hinton-mnist" in m.value for m in at.markdown)
    assert at.button(key="delete").disabled or not at.checkbox(key="sure").value
    # the compared shipped run is what the export buttons count and export
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:2] == ["JSON (1 selected)", "CSV (1 selected)"], labels
    at = AppTest.from_file(str(PAGES / "runs.py"), default_timeout=60)
    at.query_params["compare"] = "-1"
    at.run()
    assert not at.exception and at.multiselect(key="picked").value == [-1] and not at.toast


def test_shipped_runs_export_beside_the_users_own(with_refs, store_path):
    import csv
    import io

    from app.reference_ui import records
    from kdcore.store import Store

    store = Store(store_path)
    own = store.create("custom", "custom", {"epochs": 1}, "k")
    shipped = records()
    exported = json.loads(store.export_json([own], shipped))  # strict JSON, no Path or tensor
    assert [r["id"] for r in exported] == [own, shipped[0].id]
    assert shipped[0].name == "hinton-mnist"  # listed first, the run the others build on
    assert exported[1]["shipped"]["command"].startswith("python scripts/make_reference_runs.py")
    assert "reference" not in exported[1] and exported[1]["result"]["models"]["student_kd"]
    rows = list(csv.DictReader(io.StringIO(store.export_csv([], shipped))))
    assert {r["model"] for r in rows} == set(shipped[0].models)
    assert all(r["run_id"] == str(shipped[0].id) and r["paper_test_errors"] for r in rows)


def test_error_bars_split_each_row_among_the_runs_that_have_it():
    """The five shipped runs side by side: a row of one run gets the row's whole height, a row
    of several splits it without overlap; the paper's figures once each."""
    from itertools import pairwise

    from app.lab_ui import errors_figure
    from app.reference_ui import records

    runs = [r for r in records() if r.reference.profile == "paper"]  # Hinton's five
    fig = errors_figure(runs)
    spans: dict[str, list[tuple[float, float]]] = {}
    for bar in (t for t in fig.data if t.type == "bar"):
        for model, off, width in zip(bar.y, bar.offset, bar.width, strict=True):
            spans.setdefault(model, []).append((off, off + width))
    holders = {m: sum(m in r.models for r in runs) for m in spans}
    for model, parts in spans.items():
        parts.sort()
        assert len(parts) == holders[model]
        assert parts[0][0] == pytest.approx(-0.4) and parts[-1][1] == pytest.approx(0.4)
        assert all(a[1] == pytest.approx(b[0]) for a, b in pairwise(parts))  # side by side
    assert holders["teacher"] == len(runs) and holders["student_78"] == 1
    (paper,) = [t for t in fig.data if t.type == "scatter"]
    marks = list(zip(paper.y, paper.x, strict=True))
    assert len(marks) == len(set(marks)) and ("teacher", 67) in marks


def test_a_custom_run_is_costed_before_any_run_from_the_shipped_runs_timings(
    store_path, tmp_path, monkeypatch
):
    """A fresh machine (empty store, empty teacher cache) still sees what a custom run costs:
    each model at the pace the shipped runs timed it, the teacher's training included."""
    from app.lab_ui import duration
    from kdcore.estimate import custom_estimate, model_paces
    from kdcore.lab import CustomConfig
    from kdcore.store import Store

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    refs, _ = load_references()
    paces = model_paces((r.result, r.result["config"]) for r in refs.values())

    def expected(cfg: CustomConfig) -> str:
        parts = custom_estimate(cfg.plan, asdict(cfg), paces, "cpu", teacher_cached=False)
        return f"about {duration(sum(p.seconds for p in parts))} on the CPU"

    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params.update(device="cpu")
    at.run()
    estimate = next(c.value for c in at.caption if "Estimated time" in c.value)
    assert expected(CustomConfig().resolved()) in estimate and "the teacher's training" in estimate
    # a method never timed on this student: its pace there plus the method's cost on others
    at.selectbox(key="student").set_value("mlp-100").run()
    at.button_group(key="method").set_value("crd").run()
    estimate = next(c.value for c in at.caption if "Estimated time" in c.value)
    crd = CustomConfig(student="mlp-100", method="crd").resolved()
    assert expected(crd) in estimate
    assert "student_crd: mlp-100's hard-label pace plus what the method added" in estimate
    # an architecture no run ever timed: no estimate, and why
    at.selectbox(key="student").set_value("resnet32").run()  # (fsp-mnist times resnet20)
    assert any("No estimate yet: no earlier run timed" in c.value for c in at.caption)
    assert Store(store_path).list() == []  # nothing trained


def test_seed_wins_count_the_seeds_where_each_student_beat_the_one_baseline(tmp_path):
    good = json.loads((reference_dir() / "hinton-mnist.json").read_text())
    (tmp_path / "hinton-mnist.json").write_text(json.dumps(good))
    ref = load_references(tmp_path)[0]["hinton-mnist"]
    rows = [{"errors": {"teacher": 1, "student_hard": h, "student_kd": k}}
            for h, k in ((150, 80), (140, 141), (90, 90))]  # fmt: skip
    # fewer errors wins; a tie does not; the teacher is not a student
    assert seed_wins(ref, rows) == {"student_kd": ("student_hard", 1)}
    assert seed_wins(ref, []) == {}
    ref.result["models"]["student_kd"]["arch"] = "mlp-30"  # another net: not a fair pair
    assert seed_wins(ref, rows) == {}
    ref.result["models"]["student_kd"]["role"] = "baseline"  # two baselines: no single pairing
    assert seed_wins(ref, rows) == {}


def test_a_seed_study_keeps_the_presets_own_measures_and_pairs(tmp_path):
    """The speculative preset's headline is each draft's acceptance rate (higher is better, a
    dict of the result), its distilled drafts compared with the one trained as long on real
    text; a row without a measure the page draws is skipped."""
    good = json.loads((reference_dir() / "speculative-draft.json").read_text())
    (tmp_path / "speculative-draft.json").write_text(json.dumps(good))
    ref = load_references(tmp_path)[0]["speculative-draft"]
    accept, kl = PRESETS["speculative-draft"].seed_measures
    row = seed_row(ref.result, "default", 1.0)
    assert row_values(row, accept) == good["acceptance_rate"]
    assert row_values(row, kl) == {m: s["kl_true"] for m, s in good["models"].items()}
    assert row_values(row, TEST_ERRORS) == {m: s["test_errors"] for m, s in good["models"].items()}

    def at(seed, kd, long_, **measures):
        vals = {**row["measures"]["acceptance_rate"], "draft_kd": kd, "draft_hard_long": long_}
        return {**row, "seed": seed, "measures": {**row["measures"], "acceptance_rate": vals,
                                                  **measures}}  # fmt: skip

    lines = [
        at(0, 0.99, 0.98),  # a higher rate wins
        at(1, 0.97, 0.98),
        at(2, 0.98, 0.98),  # a tie does not
        at(3, 0.99, 0.98, kl_true={"teacher": 0.002}),  # not every model's figure
        at(4, float("nan"), 0.98),  # not a number a table can show
        {**row, "seed": 5, "measures": {}},
    ]
    seed_study_path(ref).write_text("\n".join(json.dumps(x) for x in lines))
    rows = load_seed_study(ref)
    assert [r["seed"] for r in rows] == [0, 1, 2]
    assert seed_wins(ref, rows, accept) == {
        "draft_kd": ("draft_hard_long", 1),
        "draft_on_policy": ("draft_hard_long", 3),  # 0.9948 against 0.9814 at every seed
    }
    # the pairs are the preset's: draft_hard (the start of both) is compared with nothing
    assert set(seed_wins(ref, rows, kl)) == {"draft_kd", "draft_on_policy"}


def test_a_bias_demonstrations_seed_study_keeps_its_errors_before_and_after_the_shift():
    ref = load_references()[0]["omitted-3"]
    bias, errors = PRESETS["omitted-3"].seed_measures
    row = seed_row(ref.result, "paper", 1.0)
    adj = ref.result["bias_adjustment"]
    assert row_values(row, errors) == {"teacher": 74, "student_no3": 138}
    assert row_values(row, bias) == {
        "before the shift": adj["errors_before"],
        "after (bias chosen on test)": adj["errors_after"],
        "on 3s, before": adj["errors_on_3_before"],
        "on 3s, after (test)": adj["errors_on_3_after"],
        "after (bias chosen on held-out images)": adj["validation"]["errors_after"],
        "on 3s, after (held-out)": adj["validation"]["errors_on_classes_after"],
    }
    # only-7-8 names both digits it shifts
    only = load_references()[0]["only-7-8"]
    assert "on 7s and 8s, before" in bias.values(only.result)


def test_only_7_8s_seed_study_leads_with_the_test_error_in_percent_as_the_paper_gives_it():
    """The paper reports only-7-8 in percent (47.3% -> 13.2%): the study's first table is in
    that unit, with the paper's row, and each seed's percentages are its error counts over the
    10,000 test images."""
    ref = load_references()[0]["only-7-8"]
    assert PRESETS["only-7-8"].seed_measures == (BIAS_PERCENT, BIAS_ERRORS, TEST_ERRORS)
    rows = load_seed_study(ref)
    assert len(rows) == 5
    n = ref.result["bias_adjustment"]["n_test"]
    for row in rows:
        pct, errors = row_values(row, BIAS_PERCENT), row_values(row, BIAS_ERRORS)
        assert list(pct) == [
            "before the shift",
            "after (bias chosen on test)",
            "after (bias chosen on held-out images)",
        ]
        assert all(pct[c] == round(100 * errors[c] / n, 3) for c in pct), row["seed"]
    from app.reference_ui import seed_table

    table = seed_table(ref, rows, BIAS_PERCENT)
    assert table.loc["paper"].iloc[:2].tolist() == [47.3, 13.2]
    assert table.loc["paper"].isna().tolist() == [False, False, True]  # no held-out choice there
    means, sds = table.loc["mean"], table.loc["sd"]
    assert means["before the shift"] < 47.3 and means["after (bias chosen on test)"] < 13.2
    # the README quotes them
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    said = [f"{means[c]:.2f}% ({sds[c]:.2f})" for c in table.columns]
    quote = f"{said[0]} and {said[1]} on average, {said[2]} with the bias chosen on held-out"
    assert quote in readme


def test_the_lab_shows_a_bias_demonstrations_seed_study_in_a_tab_per_measure(
    tmp_path, store_path, monkeypatch
):
    """omitted-3's study: the errors before and after the bias shift in one tab, each model's
    test errors in the other, every column the study keeps."""
    good = json.loads((reference_dir() / "omitted-3.json").read_text())
    (tmp_path / "omitted-3.json").write_text(json.dumps(good))
    ref = load_references(tmp_path)[0]["omitted-3"]
    row = seed_row(ref.result, "paper", 1.0)
    other = json.loads(json.dumps(row))  # another seed, two more errors after the shift
    other["seed"], other["measures"]["bias_adjustment"]["after (bias chosen on test)"] = 1, 102
    seed_study_path(ref).write_text(json.dumps(row) + "\n" + json.dumps(other) + "\n")
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path))
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "omitted-3"
    at.run()
    assert not at.exception, at.exception
    bias, errors = PRESETS["omitted-3"].seed_measures
    assert [t.label for t in at.tabs][-2:] == [bias.label, errors.label]
    tables = [d.value for d in at.dataframe if "seed 1" in [*d.value.index, *d.value.columns]]
    # six long columns would run off the page: the bias table is turned, a column per seed
    assert list(tables[0].columns) == ["seed 0", "seed 1", "mean", "sd", "paper"]
    tables[0] = tables[0].T
    assert [list(t.columns) for t in tables] == [
        list(bias.values(good)),
        ["teacher", "student_no3"],
    ]
    assert tables[0].loc["mean", "after (bias chosen on test)"] == 101.0
    # the paper's figures where it gives them (it chose its bias on the test set only)
    paper = tables[0].loc["paper"]
    assert (paper["before the shift"], paper["on 3s, after (test)"]) == (206, 14)
    assert paper.isna().to_dict() == {c: "held-out" in c for c in tables[0].columns}
    assert tables[1].loc["paper", "student_no3"] == 206  # the paper's own figure beside them


def test_a_figure_the_paper_does_not_give_shows_as_a_dash_in_every_lab_table():
    """Streamlit's own placeholder for a missing value reads "None"; the lab's tables of
    only-7-8 (the paper gives its student in percent only, and no held-out choice) show a dash."""
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "only-7-8"
    at.run()
    assert not at.exception, at.exception
    gaps = [d for d in at.dataframe if d.value.isna().to_numpy().any()]
    assert len(gaps) >= 3  # the paper's table, the bias table, the seed study's first tab
    assert all(d.proto.placeholder == "\u2014" for d in gaps), [d.proto.placeholder for d in gaps]


def _sweep_study(tmp_path, curves: dict[int, dict[str, list[int]]], hard: dict[int, dict]):
    """The shipped temperature sweep in a folder of its own, with a study of the given seeds:
    each seed's curve per student and its hard-label twins (every other figure as shipped)."""
    good = json.loads((reference_dir() / "temperature-sweep.json").read_text())
    (tmp_path / "temperature-sweep.json").write_text(json.dumps(good))
    ref = load_references(tmp_path)[0]["temperature-sweep"]
    row = seed_row(ref.result, "paper", 1.0)
    lines = [{**row, "seed": s, "sweep": {"errors": c, "baseline_errors": hard[s]}}
             for s, c in curves.items()]  # fmt: skip
    seed_study_path(ref).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return ref


def test_a_sweeps_seed_study_keeps_each_students_curve_at_every_seed(tmp_path):
    """A sweep's row keeps its curves; mean, sd, the best value per seed and the wins over the
    hard-label twin come out as computed by hand; a row missing a point is not the recipe's."""
    ref = load_references()[0]["temperature-sweep"]
    row = seed_row(ref.result, "paper", 1.0)
    sweep = ref.result["sweep"]
    assert row["sweep"] == {"errors": sweep["errors"], "baseline_errors": sweep["baseline_errors"]}

    n = len(sweep["values"])  # 9 temperatures
    wide = {0: [100 + j for j in range(n)], 1: [110 - j for j in range(n)]}
    narrow = {0: [250] * n, 1: [260] * (n - 1) + [240]}
    hard = {0: {"mlp-300": 105, "mlp-30": 255}, 1: {"mlp-300": 104, "mlp-30": 250}}
    curves = {s: {"mlp-300": wide[s], "mlp-30": narrow[s]} for s in (0, 1)}
    curves[2] = {"mlp-300": wide[0][:-1], "mlp-30": narrow[0]}  # a cancelled sweep: skipped
    hard[2] = hard[0]
    ref = _sweep_study(tmp_path, curves, hard)
    rows = load_seed_study(ref)
    assert [r["seed"] for r in rows] == [0, 1]
    by = {s.student: s for s in sweep_seeds(ref, rows)}
    w, t = by["mlp-300"], by["mlp-30"]
    assert w.values == sweep["values"] and w.seeds == [0, 1]
    assert w.mean() == [105.0] * n  # (100 + j + 110 - j) / 2
    assert w.sd() == pytest.approx([abs(10 - 2 * j) / 2**0.5 for j in range(n)])
    assert w.best() == [1.0, 20.0]  # the first T at seed 0, the last at seed 1
    # fewer errors than 105 (seed 0) and 104 (seed 1): T index j beats at seed 0 when j < 5,
    # at seed 1 when 110 - j < 104, i.e. j > 6
    assert w.wins() == [int(j < 5) + int(j > 6) for j in range(n)]
    assert t.best() == [1.0, 20.0]  # all equal at seed 0: the smallest T
    assert t.wins() == [1] * (n - 1) + [2]  # 250 < 255 at seed 0; only 240 < 250 at seed 1
    assert sweep_seeds(load_references()[0]["hinton-mnist"], rows) == []  # not a sweep


def test_the_lab_draws_a_sweeps_seed_study_as_curves_with_a_table_per_student(
    tmp_path, store_path, monkeypatch
):
    from app.seed_sweeps import sweep_seeds_figure

    n = len(resolve("temperature-sweep", profile="paper").temperatures)
    curves = {s: {"mlp-300": [100 + s + j for j in range(n)], "mlp-30": [250 - s] * n}
              for s in (0, 1, 2)}  # fmt: skip
    hard = {s: {"mlp-300": 110, "mlp-30": 260} for s in (0, 1, 2)}
    ref = _sweep_study(tmp_path, curves, hard)
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path))
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=60)
    at.query_params["preset"] = "temperature-sweep"
    at.run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**The same recipe at 3 seeds**") for m in at.markdown)
    assert [t.label for t in at.tabs][-2:] == ["mlp-300", "mlp-30"]
    wide, narrow = (d.value for d in at.dataframe if "mean" in d.value.columns)
    assert list(wide.columns) == ["seed 0", "seed 1", "seed 2", "mean", "sd",
                                  "beats hard labels (of 3)"]  # fmt: skip
    assert wide.index[0] == "T=1" and wide.index[-1] == "hard labels only"
    assert wide.loc["T=1", "mean"] == 101.0 and wide.loc["T=1", "sd"] == 1.0
    assert wide.loc["T=20", "beats hard labels (of 3)"] == 2  # 108, 109 beat 110; a tie does not
    assert narrow.loc["T=4", "beats hard labels (of 3)"] == 3
    captions = [c.value for c in at.caption]
    # the 30-unit net's best T: the smallest tried at every seed, outside the paper's 2.5-4
    assert any(c.startswith("mlp-30: fewest errors at T=1 (seed 0)") and "at 0 of 3" in c
               for c in captions), captions  # fmt: skip
    # the 300-unit net above T=8, where the paper found all alike: the means against the spread
    # (T = 8, 12, 20: 107, 108, 109 mean errors, sd 1 at each)
    said = "the means are 107.0, 108.0, 109.0, 2.0 apart; the standard deviation over seeds at "
    assert any(c.startswith("mlp-300:") and f"{said}each is 1.0-1.0" in c for c in captions)
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert any("sweep-seeds" in k for k in keys), keys
    # the figure: each seed's curve behind the mean, a band of one sd around it
    study = sweep_seeds(ref, load_seed_study(ref))
    fig = sweep_seeds_figure(study, ref.result["paper"])
    seeds = [tr for tr in fig.data if tr.legendgroup == "seeds"]
    assert [list(tr.y) for tr in seeds[:3]] == [curves[s]["mlp-300"] for s in (0, 1, 2)]
    mean = next(tr for tr in fig.data if tr.name == "mlp-300" and tr.mode == "lines+markers")
    assert list(mean.y) == [101.0 + j for j in range(n)]
    assert list(fig.data).index(mean) > list(fig.data).index(seeds[-1])  # the mean on top
    band = next(tr for tr in fig.data if tr.legendgroup == "band")
    assert band.mode == "lines" and band.fill == "toself"  # a band, no dots along its edges
    assert any(tr.name == "mlp-300: fewest mean errors at T=1" for tr in fig.data)


@pytest.mark.parametrize(
    "preset,measure,log",
    [
        ("hinton-mnist", TEST_ERRORS, False),
        ("only-7-8", BIAS_PERCENT, False),
        ("word-vs-sequence-kd", None, True),
    ],
)
def test_a_seed_study_is_drawn_seed_by_seed_with_its_mean_spread_and_the_papers(
    preset, measure, log
):
    """The chart above each seed table draws that table: a line per seed through its models,
    the mean with one sd either side, the paper's figures where it gives them; a measure spread
    over orders of magnitude (a language model's KL from the truth) on a log axis."""
    from app.reference_ui import seed_figure, seed_table

    ref = load_references()[0][preset]
    rows = load_seed_study(ref)
    measure = measure or PRESETS[preset].seed_measures[0]
    table = seed_table(ref, rows, measure)
    fig = seed_figure(table, len(rows), measure)
    seeds = [t for t in fig.data if t.legendgroup == "seeds"]
    assert len(seeds) == len(rows) and [t.showlegend for t in seeds].count(True) == 1
    for trace, row in zip(seeds, rows, strict=True):
        assert list(trace.y) == table.loc[f"seed {row['seed']}"].tolist()
        assert list(trace.x) == [str(c) for c in table.columns]
    mean = next(t for t in fig.data if t.name.startswith("mean"))
    assert list(mean.y) == table.loc["mean"].tolist()
    assert list(mean.error_y.array) == table.loc["sd"].tolist()
    papers = [t for t in fig.data if t.name == "the paper's"]
    assert len(papers) == ("paper" in table.index)
    if papers:  # only-7-8 gives no held-out figure: no mark there
        given = table.loc["paper"].tolist()
        assert [y == y for y in papers[0].y] == [g == g for g in given]
    assert (fig.layout.yaxis.type == "log") == log


HELD_OUT = {"after (bias chosen on held-out images)": "before the shift"}


@pytest.mark.parametrize(
    "preset,measure,pairs",
    [
        ("omitted-3", BIAS_ERRORS, {**HELD_OUT, "on 3s, after (held-out)": "on 3s, before"}),
        ("only-7-8", BIAS_PERCENT, HELD_OUT),
        (
            "deit-mnist",
            TEST_ERRORS,
            dict.fromkeys(("vit_deit_hard", "vit_deit_soft"), "vit_no_teacher"),
        ),
    ],
)
def test_a_seed_study_may_pair_columns_of_a_measure_not_only_models(preset, measure, pairs):
    """A bias demonstration compares its student after the shift with itself before it, seed
    by seed; the DeiT students, whose token makes them another architecture, the plain ViT."""
    ref = load_references()[0][preset]
    rows = load_seed_study(ref)
    wins = seed_wins(ref, rows, measure)
    assert {m: b for m, (b, _) in wins.items()} == pairs
    for m, (b, k) in wins.items():  # counted from the rows themselves
        assert k == sum(row_values(r, measure)[m] < row_values(r, measure)[b] for r in rows)
