"""Hostile links: every page's URL parameters, fuzzed with hypothesis in AppTest.

Each example opens a page with a few of its own URL keys set to numbers, non-finite and huge
values, unicode digits, long strings or repeated parameters. Properties: the page raises nothing;
a value that no control can take is answered by a notice naming it and leaves the URL; a value
that leaves the URL without a notice was the control's default (Streamlit drops those itself).

The keys are the ones the pages bind (``ui.url_*``, ``lab_ui.param_widget``, ``bind=``); views
that appear only over a stored preset run (the hints, geometry and projector pages' run
sections) are not reached here.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from kdcore.methods import METHODS

PAGES = Path(__file__).resolve().parent.parent / "pages"

# One store with three finished runs for the whole module: the runs page lists them, the lab's
# ?run= and the runs page's ?compare= name them. Set before any page caches its queue.
_STORE = os.path.join(tempfile.mkdtemp(prefix="kd-hardening-"), "runs.sqlite")


@pytest.fixture(scope="module", autouse=True)
def store():
    from kdcore.store import Store

    old = os.environ.get("KD_STORE")
    os.environ["KD_STORE"] = _STORE
    s = Store(_STORE)
    if not s.list():
        for i, (name, method) in enumerate((("hinton-mnist", "kd"), ("custom", "hard"))):
            kind = "custom" if name == "custom" else "preset"
            config = {"method": method, "epochs": 1, "seed": 0}
            run_id = s.create(kind, name, config, f"hardening-{i}")
            hist = {f"student_{method}": [{"epoch": 1, "test_accuracy": 0.9,
                                           "train_accuracy": 0.9, "test_errors": 1000,
                                           "losses": {"total": 1.0}}]}  # fmt: skip
            result = {"preset": name, "status": "completed", "message": "", "config": {},
                      "history": hist, "paper": {},
                      "models": {f"student_{method}": {"test_errors": 1000,
                                                      "test_accuracy": 0.9}}}  # fmt: skip
            s.finish(run_id, "completed", "", result)
    yield s
    if old is None:
        os.environ.pop("KD_STORE", None)
    else:
        os.environ["KD_STORE"] = old


def _method_keys(name: str) -> list[str]:
    return [f.name for f in fields(METHODS[name].params)]


LAB_KEYS = ["run", "mode", "data", "teacher", "student", "method", "epochs", "lr",
            "teacher_epochs", "seed", "grad_clip", "per_class", "device", "baseline"]  # fmt: skip
# (page, URL params always set, keys to fuzz, examples)
SCENARIOS = [
    ("temperature.py", {}, ["src", "digit", "idx", "T", "log", "eps"], 12),
    ("temperature.py", {"src": "by hand"}, ["z", "T", "log"], 6),
    ("kd_loss.py", {}, ["digit", "idx", "alpha", "T"], 10),
    ("dkd.py", {}, ["alpha", "beta", "T", "ep_dkd"], 6),
    ("geometry.py", {}, ["batch", "n", "seed", "sel", "angle", "scale", "shift"], 4),
    ("projector.py", {}, ["ds", "dt", "lr", "steps", "raw", "epochs"], 6),
    ("hints.py", {}, ["ep_fit", "ep_at"], 4),
    ("modes.py", {}, ["mode", "img"], 4),
    ("overview.py", {}, ["T", "idx"], 2),  # no keys of its own: nothing may break it
    ("lab.py", {}, LAB_KEYS + _method_keys("kd"), 12),
    ("lab.py", {"method": METHODS["fitnets"].title}, _method_keys("fitnets"), 5),
    ("lab.py", {"method": METHODS["crd"].title}, _method_keys("crd"), 4),
    ("lab.py", {"method": METHODS["self-distillation"].title},
     _method_keys("self-distillation"), 3),
    ("lab.py", {"mode": "Preset"},
     ["preset", "ep-hinton-mnist", "seed-hinton-mnist", "pdevice"], 6),
    ("runs.py", {}, ["status", "preset", "method", "compare", "curve", "show"], 10),
]  # fmt: skip
OWN_KEYS = {page: set() for page, *_ in SCENARIOS}
for _page, _, _keys, _ in SCENARIOS:
    if _page != "overview.py":
        OWN_KEYS[_page] |= set(_keys)

# Values no control of this app can take: each must be refused with a notice.
HOSTILE = ["inf", "-inf", "nan", "NaN", "1e309", "-1e309", "9" * 5000, "²", "٣", "٣٤", "1²",
           "x" * 300, "12345678901234567890123", "-99999999999999999999999999"]  # fmt: skip
# Values some controls take: a few numbers and each key's real options.
PLAUSIBLE = ["0", "1", "2", "3", "-2", "0.5", "7", "25", "100", "1e3", "true", "false", ""]
OPTIONS = {
    "src": ["by hand", "test image"], "mode": ["Preset", "Custom run", "preset", " custom RUN"],
    "data": ["fashion-mnist", "MNIST"],
    "teacher": ["mlp-30"], "student": ["cnn-8"], "method": [METHODS["hard"].title, "kd"],
    "device": ["cpu", "cuda"], "pdevice": ["cpu"], "per_class": ["20", "50"],
    "status": ["failed", "completed", "COMPLETED"],
    "preset": ["custom", "hinton-mnist", "Omitted-3"],
    "compare": ["1", "2,1", "1,1", "3", "0,1"], "run": ["1", "2", "0", "01"],
    "curve": ["test errors", "test_errors"], "show": ["1", "-1", "2", "01"],
    "z": ["1,2,3,4,5,6,7,8,9,10", "1,2,3"], "batch": ["random"], "projector": ["linear"],
    "distance": ["mse"], "normalise": ["none"],
}  # fmt: skip

hostile_single = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet="²³¹٠١٢٣٤٥٦٧٨٩०१२३", min_size=1, max_size=8),  # unicode digits
    st.text(min_size=201, max_size=400),  # long strings
)


def value_for(key: str):
    """(raw value, must be refused) pairs for one key."""
    hostile = hostile_single.map(lambda v: (v, True))
    repeated = st.lists(st.sampled_from(PLAUSIBLE + OPTIONS.get(key, [])), min_size=2,
                        max_size=3).map(lambda v: (v, True))  # fmt: skip
    plausible = st.one_of(
        st.sampled_from(PLAUSIBLE + OPTIONS.get(key, []) * 3),
        st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P"]), max_size=12),
    ).map(lambda v: (v, False))
    return st.one_of(hostile, repeated, plausible)


def _same(raw: str, default) -> bool:
    """Whether a URL value reads as the control's default (which Streamlit drops by itself)."""
    if isinstance(default, bool):
        return raw.lower() == str(default).lower()
    titles = {m.title: k for k, m in METHODS.items()}
    if raw == str(default) or titles.get(raw) == default:
        return True
    if isinstance(default, str) and raw.strip().casefold() == default.casefold():
        return True  # a choice typed in another case reads as that choice
    try:
        return float(raw) == float(default)
    except (TypeError, ValueError, OverflowError):
        return False


# The control that reads a URL key not bound to a widget of its own name (the lab's ?run= is
# read on every run: the page's mode control stands for it).
CONTROL = {"compare": "picked", "run": "mode"}
_DEFAULTS: dict[tuple, dict] = {}


def _defaults(page: str, base: dict) -> dict:
    """The controls' values with only ``base`` in the URL (one run per scenario)."""
    key = (page, tuple(sorted(base.items())))
    if key not in _DEFAULTS:
        at = _open(page, base)
        assert not at.exception, [e.value for e in at.exception]
        _DEFAULTS[key] = {k: at.session_state[k] for k in OWN_KEYS[page] if k in at.session_state}
    return _DEFAULTS[key]


def _open(page: str, params: dict) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _url_values(at: AppTest, key: str) -> list[str]:
    got = at.query_params.get(key)  # a str, or a list for a repeated parameter
    return [] if got is None else got if isinstance(got, list) else [got]


def check_page(page: str, base: dict, drawn: dict[str, tuple]) -> None:
    defaults = _defaults(page, base)
    at = _open(page, {**base, **{k: v for k, (v, _) in drawn.items()}})
    assert not at.exception, [e.value for e in at.exception]
    toasts = " ".join(t.value for t in at.toast)
    for key, (raw, refuse) in drawn.items():
        if page == "overview.py" or CONTROL.get(key, key) not in at.session_state:
            continue  # a key whose control is not on the page this time is not read
        given_values = raw if isinstance(raw, list) else [raw]
        kept = _url_values(at, key) == given_values
        noticed = f" {key}=" in toasts
        if refuse:
            assert noticed, f"no notice for {key}={str(raw)[:60]!r}: {toasts!r}"
            assert not kept, f"{key}={str(raw)[:60]!r} is still in the URL"
        elif noticed:
            assert not kept, f"{key}={raw!r} has a notice but is still in the URL"
        elif not kept and key in defaults:
            read_as = _url_values(at, key)  # ?mode=preset reads as, and becomes, ?mode=Preset
            folded = isinstance(raw, str) and [v.casefold() for v in read_as] == [
                raw.strip().casefold()
            ]
            assert folded or _same(raw, defaults[key]), f"{key}={raw!r} dropped without a notice"


@pytest.mark.parametrize(
    "page, base, keys, examples",
    SCENARIOS,
    ids=[f"{p[:-3]}-{'-'.join(map(str, b.values())) or 'plain'}" for p, b, *_ in SCENARIOS],
)
def test_every_link_value_is_taken_or_refused_with_a_notice(page, base, keys, examples):
    # No shrinking: each step reruns a page, and the failing example is readable as drawn.
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.reuse, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(drawn=st.fixed_dictionaries({}, optional={k: value_for(k) for k in keys}))
    def run(drawn):
        check_page(page, base, drawn)

    run()


@pytest.mark.parametrize(
    "page, key, raw",
    [
        ("temperature.py", "idx", "inf"),
        ("kd_loss.py", "idx", "1e309"),
        ("lab.py", "epochs", "inf"),
        ("lab.py", "teacher_epochs", "-inf"),
        ("lab.py", "seed", "9" * 5000),
        ("lab.py", "run", "²"),
        ("lab.py", "run", "123456789012345678901234567"),
        ("lab.py", "T", "٣"),
        ("lab.py", "mode", "nan"),
        ("lab.py", "lr", ["0.1", "0.2"]),
        ("runs.py", "status", "bogus"),
        ("runs.py", "compare", "1,²"),
        ("runs.py", "show", "²"),
        ("runs.py", "curve", "nan"),
    ],
)
def test_known_crashes_and_silent_drops(page, key, raw):
    """The links that once raised (or vanished without a word), each answered by one notice."""
    check_page(page, {}, {key: (raw, True)})


@pytest.mark.parametrize(
    "page, given, expect",
    [
        ("lab.py", {"mode": "preset", "preset": " Omitted-3"},
         {"mode": "Preset", "preset": "omitted-3"}),
        ("lab.py", {"mode": "Preset", "preset": "only-7-8", "profile": "PAPER"},
         {"profile": "paper"}),
        ("lab.py", {"method": "knowledge DISTILLATION", "device": "CPU"},
         {"method": "kd", "device": "cpu"}),
        ("runs.py", {"status": "Completed", "curve": "Test Errors"},
         {"status": "completed", "curve": "test errors"}),
    ],
)  # fmt: skip
def test_a_choice_typed_in_another_case_is_read_as_that_choice(page, given, expect):
    """A hand-typed link (?mode=preset) opens on the choice it names, in the address too, with no
    notice; a value that names no choice in any case is still refused (the property test)."""
    at = _open(page, given)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.toast, [t.value for t in at.toast]
    for key, value in expect.items():
        assert at.session_state[key] == value, key
        if key != "method":  # the method's control keeps its title in the URL
            assert _url_values(at, key) in ([value], []), key  # [] where it is the default


def test_lab_preset_links_are_refused_with_a_notice():
    for key in ("ep-omitted-3", "seed-omitted-3"):
        check_page("lab.py", {"mode": "Preset", "preset": "omitted-3"}, {key: ("1e309", True)})


# ----------------------------------------------------------------------------- finite divergence


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests.tiny_mnist import write_tiny_mnist

    return str(write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=500))


def _custom(tiny_dir: str, **changes) -> dict:
    import torch

    from kdcore.presets import run_preset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only waits on a busy machine
    try:
        base = {"teacher": "mlp-30", "teacher_epochs": 1, "student": "mlp-30", "baseline": False}
        return run_preset("custom", data_dir=tiny_dir, **{**base, **changes})
    finally:
        torch.set_num_threads(threads)


def test_a_run_whose_loss_explodes_but_stays_finite_fails(tiny_dir):
    """lr 1000 without clipping at T = 100: logits of 1e7 and more keep every loss finite, the
    accuracy falls to chance, and the run used to say "completed"."""
    result = _custom(tiny_dir, lr=1000.0, grad_clip=0.0, epochs=3, per_class=20,
                     params={"T": 100.0, "alpha": 0.9})  # fmt: skip
    assert result["status"] == "failed", result["message"]
    assert "diverged" in result["message"] and "\n" not in result["message"]
    (epoch,) = result["history"]["student_kd"]  # the diverged epoch is kept, the rest not run
    assert 1e6 < epoch["losses"]["total"] < float("inf")


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {"T": 20.0, "alpha": 0.9}, "lr": 0.05},  # T²-scaled KD: a large soft loss
        {
            "method": "fitnets",
            "student": "cnn-8",
            "teacher": "cnn",
            "epochs": 1,
            "params": {"hint_epochs": 1},
        },  # hints: an MSE that starts large
        {"method": "hard", "epochs": 1, "lr": 0.001},  # hardly learns: near chance, loss flat
    ],
    ids=["kd-T20", "fitnets", "slow-hard"],
)
def test_normal_runs_do_not_trip_the_divergence_check(tiny_dir, changes):
    result = _custom(tiny_dir, **{"epochs": 2, "per_class": 20, **changes})
    assert result["status"] == "completed", result["message"]


def test_divergence_rule_against_hand_made_numbers():
    from kdcore.train import divergence

    assert divergence(2.3, 0.5, 2.0, 0.95, 10) == ""  # learning
    assert divergence(2.3, 2.3, 2.3, 0.10, 10) == ""  # not learning, but no explosion
    assert divergence(1e3, 50.0, 1e3, 0.30, 10) == ""  # starts large (hints), falls
    assert divergence(0.0, 50.0, 50.0, 0.10, 10) == ""  # from ~0 to 50: under the floor's 100x
    assert divergence(2.3, 300.0, 300.0, 0.50, 10) == ""  # grew, but still learning
    assert "chance" in divergence(2.3, 300.0, 300.0, 0.11, 10)
    assert "grew" in divergence(2.3, 1.5e11, 1.5e11, 0.90, 10)  # 1e6x: whatever the accuracy
    assert divergence(float("nan"), 1e20, 1e20, 0.1, 10) == ""  # the NaN check's case


@pytest.mark.parametrize("raw, expect", [("2", 2), ("1", 1), ("abc", 1), ("0", 1), ("-2", 1)])
def test_the_page_thread_setting_takes_only_a_sane_count(monkeypatch, raw, expect):
    """A page run sets its own thread's torch threads from $KD_TORCH_THREADS (default 1)."""
    import threading

    import torch

    from app.ui import THREADS_ENV, page_run

    monkeypatch.setenv(THREADS_ENV, raw)
    seen = []

    def run() -> None:  # a script thread of its own, as Streamlit gives every run
        with page_run():
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    t = threading.Thread(target=run)
    t.start()
    t.join()
    torch.set_num_threads(before)
    assert seen == [expect]


def test_page_runs_take_turns_and_a_long_one_does_not_hold_the_rest(monkeypatch):
    """At most one page run at a time; one that waits past GATE_WAIT_S goes ahead anyway."""
    import threading

    from app import ui

    monkeypatch.setattr(ui, "GATE_WAIT_S", 0.3)
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def run(hold: bool) -> None:
        with ui.page_run():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            if hold:
                release.wait(5)
            else:
                time.sleep(0.02)
            with lock:
                inside[0] -= 1

    quick = [threading.Thread(target=run, args=(False,)) for _ in range(4)]
    for t in quick:
        t.start()
    for t in quick:
        t.join()
    assert most[0] == 1  # taking turns

    slow = threading.Thread(target=run, args=(True,))
    slow.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    late = threading.Thread(target=run, args=(False,))
    late.start()
    late.join(3)
    waited = time.monotonic() - t0
    release.set()
    slow.join()
    assert not late.is_alive() and 0.25 < waited < 2.0  # waited its bounded turn, then ran


# ----------------------------------------------------------------------------- values by hand


@pytest.mark.parametrize(
    ("preset", "setting", "words"),
    [
        ("custom", "params=[1,2]", "must be a JSON object"),
        ("custom", 'params={"T": "abc"}', "Temperature T must be a number, not 'abc'"),
        ("custom", 'params={"T": true}', "must be a number, not True"),
        ("custom", 'params={"alpha": null}', "must be a number, not None"),
        ("custom", "student=mlp-20000", "parameters; this app trains models of up to"),
        ("temperature-sweep", "temperatures=5", "temperatures must be a JSON list"),
        ("temperature-sweep", 'temperatures=["a"]', "must be a list of numbers"),
        ("temperature-sweep", "temperatures=[-1]", "temperatures: Temperature T must be in"),
        ("temperature-sweep", "temperatures=[]", "at least one value"),
        ("temperature-sweep", "students=mlp-30", 'such as ["mlp-300", "mlp-30"]'),
        ("temperature-sweep", "students=[1]", "must be a list of names"),
        ("alpha-sweep", "alphas=[0.5, 2]", "alphas: "),
        ("only-7-8", "kept=[11]", "distinct digits from 0 to 9"),
        ("only-7-8", "bias_step=0", "Bias step must be in"),
        ("omitted-3", "bias_max=-1", "Largest bias shift (bias_max) must be in"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_before_anything_trains(
    capsys, tmp_path, preset, setting, words
):
    """Each used to train for a while (a teacher, a student) before failing, or to end in a
    traceback; now one line and exit 2 at once, nothing stored."""
    from kdcore.cli import main
    from kdcore.store import Store

    path = tmp_path / "runs.sqlite"
    assert main(["run", preset, "--set", setting, "--store", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and words in err, err
    assert not path.exists() or not Store(path).list()


def test_an_unwritable_cache_costs_the_cache_not_the_run(tiny_dir, tmp_path, monkeypatch):
    """A cache folder that cannot be made (a file stands in its path: refused even to root):
    the teacher trains, the run completes, nothing is cached."""
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "file" / "cache"))
    result = _custom(tiny_dir, epochs=1, per_class=20)
    assert result["status"] == "completed", result["message"]
    assert result["models"]["teacher"]["cached"] is False


def test_an_unexpected_failure_without_the_store_is_one_line(capsys, monkeypatch):
    """`run --no-store` has no store to record a failure: the CLI says it in the line the store
    would have kept (a CPU allocation failure reads as out of memory), exit 1."""
    from kdcore import cli

    def fails(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] can't allocate memory: 3 TB")

    monkeypatch.setattr(cli, "run_preset", fails)
    assert cli.main(["run", "hinton-mnist", "--no-store", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: out of memory on auto: try a smaller model or batch", err


@pytest.mark.parametrize(
    "name",
    ["hints", "deit", "dkd", "lm", "attention", "modes", "projector", "speculative", "geometry"],
)
def test_a_store_that_cannot_be_opened_costs_a_page_one_section(name, tmp_path, monkeypatch):
    """A damaged run store: the stored run's section says so in one line and the rest of the
    page (its headers, equations and code) is still drawn; it used to stop the whole page."""
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not an SQLite database" * 100)
    monkeypatch.setenv("KD_STORE", str(bad))
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    said = [w.value for w in at.warning if "Stored runs are unavailable here" in w.value]
    assert len(said) == 1 and "\n" not in said[0], [w.value for w in at.warning]
    assert at.get("code"), "the page stopped before its code"


def test_a_list_typed_on_the_command_line_takes_the_field_s_kind():
    """``--set 'temperatures=[2, 4, 8]'``: JSON's whole numbers become the floats the field
    holds, so the run's config (and its key in the store) is the same as for [2.0, 4.0, 8.0]."""
    from kdcore.presets import RUNNERS  # importing the presets registers them

    sweep = RUNNERS["temperature-sweep"]
    typed = sweep.with_changes({"temperatures": "[2, 4, 8]"})
    assert typed.temperatures == (2.0, 4.0, 8.0)
    assert all(type(t) is float for t in typed.temperatures)
    assert typed == sweep.with_changes({"temperatures": "[2.0, 4.0, 8.0]"})
    assert sweep.with_changes({"students": '["mlp-30"]'}).students == ("mlp-30",)
