"""The command line as a user runs it: `python -m kdcore ...` in a subprocess."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdcore import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e.pop("KD_DATA_DIR", None)
    e.update(
        KD_CACHE_DIR=str(tmp_path / "cache"),
        KD_STORE=str(tmp_path / "runs.sqlite"),
        # Any download attempt goes to a closed local port and fails at once, so no test can
        # hang on (or reach) the network.
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        no_proxy="",
        NO_PROXY="",
        # Tiny models: one intra-op thread is as fast on an idle machine and far faster on a
        # busy one.
        OMP_NUM_THREADS="1",
    )
    return e


def kdcore(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kdcore", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_presets_lists_hinton_mnist(env):
    out = kdcore(env, "presets")
    assert out.returncode == 0, out.stderr
    assert "hinton-mnist" in out.stdout and "Hinton" in out.stdout
    assert out.stderr == ""


def test_presets_show_each_shipped_run_beside_the_paper(env):
    from kdcore.reference import load_references

    out = kdcore(env, "presets").stdout
    refs, _ = load_references()
    assert refs
    for ref in refs.values():
        errors = ref.result["models"]
        first = next(iter(errors))
        assert f"{ref.label()}: {first} {errors[first]['test_errors']}" in out, ref.preset
        assert f"in {ref.path}" in out
    kd = refs["hinton-mnist"].result["models"]["student_kd"]["test_errors"]
    assert f"student_kd {kd} (paper 74)" in out


def test_the_bias_shift_reads_in_one_line_beside_the_papers():
    from kdcore.reference import load_references

    refs, _ = load_references()
    res = refs["omitted-3"].result
    adj, held = res["bias_adjustment"], res["bias_adjustment"]["validation"]
    line = cli.bias_line(adj, res["paper"]["bias_adjustment"])
    assert line.startswith(f"the 3 bias {adj['bias']:+g} (best on the test set): ")
    assert f"{adj['errors_before']} ({adj['errors_on_classes_before']}) -> " in line
    assert f"{adj['errors_after']} ({adj['errors_on_classes_after']}) test errors" in line
    assert f"held-out images {held['bias']:+g}: {held['errors_after']} (" in line
    assert line.endswith("paper +3.5: 206 (133) -> 109 (14)")
    res = refs["only-7-8"].result  # the paper gives percentages: so does the line
    line = cli.bias_line(res["bias_adjustment"], res["paper"]["bias_adjustment"])
    assert line.startswith("the 7 and 8 biases ") and "on the 2,002 test 7s and 8s)" in line
    assert f"{res['bias_adjustment']['error_percent_after']:g}% (" in line
    assert line.endswith("paper -7.6: 47.3% -> 13.2%")


def mlp_params(*dims: int) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def test_run_writes_the_results_json(env, tmp_path):
    path = tmp_path / "out" / "tmp.json"
    out = kdcore(env, "run", "hinton-mnist", "--epochs", "1", "--set", "teacher=mlp-100",
                 "--set", "student=mlp-30", "--out", str(path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    result = json.loads(path.read_text())
    assert result["preset"] == "hinton-mnist" and result["status"] == "completed"
    cfg = result["config"]
    assert (cfg["epochs"], cfg["teacher"], cfg["student"]) == (1, "mlp-100", "mlp-30")
    assert cfg["T"] == 20.0
    assert result["device"] == "cpu" or result["device"].startswith("cuda")
    names = ["teacher", "student_hard", "student_kd"]
    assert list(result["history"]) == names and list(result["models"]) == names
    for name in names:
        (epoch,) = result["history"][name]
        assert epoch["epoch"] == 1
        assert {"losses", "train_accuracy", "test_accuracy", "test_errors", "lr", "seconds"} <= set(
            epoch
        )
        assert "total" in epoch["losses"]
        m = result["models"][name]
        assert 0.8 < m["test_accuracy"] <= 1.0  # one epoch on MNIST, well above chance
        assert isinstance(m["test_errors"], int)
        assert m["test_errors"] == round((1 - m["test_accuracy"]) * 10000)
        assert len(m["per_class_accuracy"]) == 10
        assert all(0.0 <= a <= 1.0 for a in m["per_class_accuracy"])
        assert isinstance(m["params"], int) and m["seconds"] >= 0
    assert result["models"]["teacher"]["params"] == mlp_params(784, 100, 100, 10)
    assert result["models"]["student_kd"]["params"] == mlp_params(784, 30, 30, 10)
    assert set(result["history"]["student_kd"][0]["losses"]) == {"ce", "kd", "total"}
    assert result["paper"]["test_errors"] == {"teacher": 67, "student_hard": 146, "student_kd": 74}
    # The human-readable summary and the progress bar.
    assert "student_kd" in out.stdout and "status: completed" in out.stdout
    assert "epoch 1" in out.stderr
    # The teacher went to the cache named by KD_CACHE_DIR, as safetensors.
    assert list((tmp_path / "cache" / "teachers").glob("*.safetensors"))


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_preset(env):
    line = one_error_line(kdcore(env, "run", "no-such-preset"))
    assert "no-such-preset" in line and "hinton-mnist" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "nope=1"], ["nope", "teacher"]),
        (["--set", "T=abc"], ["'abc'", "float"]),
        (["--set", "T"], ["KEY=VALUE"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--device", "cuda:99"], ["cuda"]),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, args, words):
    """In-process (the same main() as `python -m kdcore`): these fail before any work starts."""
    code = cli.main(["run", "hinton-mnist", "--no-store", *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for w in words:
        assert w in lines[0]


CIFAR_ARGS = ("run", "hinton-mnist", "--epochs", "1", "--set", "dataset=cifar10")


def assert_names_cifar_folder(line: str, folder: Path) -> None:
    assert str(folder) in line
    for f in ("cifar-10-batches-py", "data_batch_1", "test_batch", "batches.meta"):
        assert f in line


def test_missing_cifar_folder_without_the_store(env, tmp_path):
    folder = tmp_path / "nonexistent"
    line = one_error_line(kdcore(env, *CIFAR_ARGS, "--no-store", "--data-dir", str(folder)))
    assert_names_cifar_folder(line, folder)


def test_missing_cifar_folder(env, tmp_path):
    folder = tmp_path / "nonexistent"
    out = kdcore(env, *CIFAR_ARGS, "--data-dir", str(folder))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert_names_cifar_folder(out.stderr.strip().splitlines()[-1], folder)
    one_error_line(out)


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """Any training attempt fails the test: each bad input must be refused before it."""

    def trained(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(cli, "execute", trained)
    monkeypatch.setattr(cli, "run_preset", trained)
    monkeypatch.setenv("KD_STORE", str(tmp_path / "runs.sqlite"))


def refused(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize("store", [[], ["--no-store"]], ids=["store", "no-store"])
@pytest.mark.parametrize(
    "setting, words",
    [
        ("lr=nan", ["lr"]),
        ("lr=inf", ["lr"]),
        ("T=-inf", ["T"]),
        ("T=nan", ["T"]),
        ("alpha=inf", ["alpha"]),
        ("alpha=nan", ["alpha"]),
        ("grad_clip=-1", ["grad_clip"]),
        ("teacher_shift=-5", ["teacher_shift"]),
        ("teacher_shift=100", ["teacher_shift"]),
        ("seed=-1", ["seed"]),
        ("epochs=0", ["epochs"]),
        ("epochs=2.5", ["epochs"]),
        ("lr=1e309", ["lr"]),
        ("device=cpu", ["--device"]),
    ],
)
def test_bad_settings_are_refused_before_training(capsys, no_training, store, setting, words):
    line = refused(capsys, ["run", "hinton-mnist", *store, "--set", setting])
    for w in words:  # the setting's name, or its label where that is the name ("Seed")
        assert w.lower() in line.lower()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta", "cuda:99"])
def test_an_unknown_device_is_refused(capsys, no_training, device):
    line = refused(capsys, ["run", "hinton-mnist", "--device", device])
    assert device in line or "cuda" in line


@pytest.mark.parametrize("store", [[], ["--no-store"]], ids=["store", "no-store"])
def test_an_unwritable_out_path_is_refused_before_training(capsys, no_training, tmp_path, store):
    line = refused(capsys, ["run", "hinton-mnist", *store, "--out", "/proc/nope/out.json"])
    assert "/proc/nope/out.json" in line
    line = refused(capsys, ["run", "hinton-mnist", *store, "--out", str(tmp_path)])
    assert "folder" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = refused(capsys, ["run", "hinton-mnist", *store, "--out", str(blocker / "out.json")])
    assert "--out" in line


def test_a_writable_out_path_is_accepted_and_left_alone(no_training, tmp_path):
    path = cli.writable_file(str(tmp_path / "new" / "out.json"))
    assert path.parent.is_dir() and not path.exists()  # nothing written before the run
    assert list(path.parent.iterdir()) == []  # the probe file is gone


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_runs_limit_must_be_positive(capsys, no_training, limit):
    line = refused(capsys, ["runs", "--limit", limit])
    assert "--limit" in line


def test_runs_device_tpu_from_a_real_process(env):
    """The exact command from the issue, as a user types it: one line, exit 2, no traceback."""
    line = one_error_line(kdcore(env, "run", "hinton-mnist", "--device", "tpu", timeout=120))
    assert "tpu" in line
