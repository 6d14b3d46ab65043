"""The run-time estimate: each model's measured pace times its new number of epochs."""

from kdcore.estimate import custom_estimate, estimate_seconds, model_paces, teacher_epochs


def _result(paces: dict[str, float], epochs: dict[str, int], roles: dict[str, str]) -> dict:
    return {
        "history": {
            m: [{"epoch": e, "seconds": paces[m]} for e in range(1, epochs[m] + 1)] for m in paces
        },
        "models": {m: {"role": roles[m]} for m in paces},
    }


def test_students_scale_with_epochs_and_a_changed_teacher_is_trained_again():
    prev = _result(
        {"teacher": 10.0, "student_hard": 1.0, "student_fitnets": 3.0},
        {"teacher": 4, "student_hard": 4, "student_fitnets": 5},  # hint stage: +1
        {"teacher": "teacher", "student_hard": "baseline", "student_fitnets": "student"},
    )
    old = {"epochs": 4, "teacher_epochs": 0}
    # Same teacher settings (0: as epochs, and epochs unchanged): the cache serves it.
    assert estimate_seconds(prev, old, old) == 4 * 1.0 + 5 * 3.0
    # Twice the epochs: the students' time doubles, and the teacher (now 8 epochs) retrains.
    assert estimate_seconds(prev, old, {"epochs": 8, "teacher_epochs": 0}) == (
        8 * 10.0 + 8 * 1.0 + 10 * 3.0
    )
    assert teacher_epochs({"epochs": 8, "teacher_epochs": 0}) == 8
    assert teacher_epochs({"epochs": 8, "teacher_epochs": 3}) == 3


def test_a_teacher_loaded_from_a_file_costs_nothing_even_on_a_fresh_machine():
    """The language-model teacher ships as a file: a run loads it, and its history (from its
    own training, 5 epochs of 140 s) is longer than the whole run. A fresh machine loads it too,
    so the estimate leaves it out; a teacher the run trained counts as before."""
    prev = _result({"teacher": 140.0, "hard": 1.0}, {"teacher": 5, "hard": 10},
                   {"teacher": "teacher", "hard": "baseline"})  # fmt: skip
    old = {"epochs": 10}
    prev["seconds"] = 60.0
    assert estimate_seconds(prev, old, {"epochs": 20}, cached_teacher=False) == 20 * 1.0
    prev["seconds"] = 800.0  # the teacher trained inside the run
    assert estimate_seconds(prev, old, {"epochs": 20}, cached_teacher=False) == 20 * 140.0 + 20


def test_no_estimate_without_figures():
    assert estimate_seconds({}, {"epochs": 2}, {"epochs": 2}) is None
    prev = _result({"student": 1.0}, {"student": 2}, {"student": "student"})
    assert estimate_seconds(prev, {}, {"epochs": 2}) is None  # unknown earlier epochs


# ----------------------------------------------------------------------------- custom runs


def _run(models: dict[str, tuple[str, str, str, float, int]], **config) -> tuple[dict, dict]:
    """A completed run's (result, config): ``models`` maps a name to (role, arch, method, seconds
    per epoch, epochs)."""
    result = {
        "device": config.pop("device", "cpu"),
        "history": {
            n: [{"epoch": e, "seconds": pace} for e in range(1, epochs + 1)]
            for n, (_, _, _, pace, epochs) in models.items()
        },
        "models": {n: {"role": r, "arch": a, "method": m} for n, (r, a, m, _, _) in models.items()},
    }
    return result, {"dataset": "mnist", "per_class": 0, **config}


PLAN = [("teacher", None), ("student_hard", "hard"), ("student_kd", "kd")]
CFG = {"teacher": "big", "student": "small", "epochs": 3, "teacher_epochs": 8}


def test_a_custom_run_is_timed_model_by_model_from_any_earlier_runs():
    paces = model_paces(
        [
            _run({"teacher": ("teacher", "big", "hard", 10.0, 4)}),
            _run(
                {
                    "s": ("baseline", "small", "hard", 1.0, 2),
                    "k": ("student", "small", "kd", 1.5, 2),
                }
            ),
            _run({"s": ("baseline", "small", "hard", 1.0, 2)}),
            _run({"s": ("baseline", "small", "hard", 3.0, 2)}),  # median of 1, 1 and 3: 1
        ]
    )
    parts = custom_estimate(PLAN, CFG, paces, "cpu", teacher_cached=False)
    assert [(p.name, p.seconds, p.guess) for p in parts] == [
        ("teacher", 80.0, ""), ("student_hard", 3.0, ""), ("student_kd", 4.5, "")
    ]  # fmt: skip
    cached = custom_estimate(PLAN, CFG, paces, "cpu", teacher_cached=True)
    assert cached[0].seconds == 0.0 and sum(p.seconds for p in cached) == 7.5
    # a teacher loaded from the cache needs no pace: a run that loaded it timed none
    untimed = {k: v for k, v in paces.items() if k[0] != "big"}
    assert custom_estimate(PLAN, CFG, untimed, "cpu", teacher_cached=False) is None
    assert custom_estimate(PLAN, CFG, untimed, "cpu", teacher_cached=True)[0].seconds == 0.0
    # other images per class, another device or an untimed architecture: no estimate
    assert custom_estimate(PLAN, {**CFG, "per_class": 20}, paces, "cpu", False) is None
    assert custom_estimate(PLAN, CFG, paces, "cuda", False) is None
    assert custom_estimate(PLAN, {**CFG, "student": "other"}, paces, "cpu", False) is None


def test_an_untimed_method_costs_the_students_hard_pace_plus_its_overhead_elsewhere():
    paces = model_paces(
        [
            _run({"teacher": ("teacher", "big", "hard", 10.0, 1)}),
            _run({"s": ("baseline", "small", "hard", 1.0, 1)}),
            # crd on another student: 4 s an epoch over that student's hard-label 0.5
            _run(
                {"h": ("baseline", "tiny", "hard", 0.5, 1), "c": ("student", "tiny", "crd", 4.5, 1)}
            ),
        ]
    )
    plan = [("teacher", None), ("student_crd", "crd")]
    parts = custom_estimate(plan, CFG, paces, "cpu", teacher_cached=True)
    assert (parts[1].seconds, parts[1].guess) == (3 * (1.0 + 4.0), "overhead")
    never = custom_estimate([("student_x", "x")], CFG, paces, "cpu", teacher_cached=True)
    assert (never[0].seconds, never[0].guess) == (3 * 1.0, "hard")


def test_paces_leave_out_cached_teachers_and_read_the_device_type():
    result, config = _run({"teacher": ("teacher", "big", "hard", 9.0, 2)}, device="cuda:1")
    result["models"]["teacher"]["cached"] = True
    assert model_paces([(result, config)]) == {}
    result["models"]["teacher"]["cached"] = False
    assert model_paces([(result, config)]) == {("big", "hard", "mnist", 0, "cuda", True): [9.0]}
