"""The run-time estimate: each model's measured pace times its new number of epochs."""

from kdcore.estimate import estimate_seconds, teacher_epochs


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


def test_no_estimate_without_figures():
    assert estimate_seconds({}, {"epochs": 2}, {"epochs": 2}) is None
    prev = _result({"student": 1.0}, {"student": 2}, {"student": "student"})
    assert estimate_seconds(prev, {}, {"epochs": 2}) is None  # unknown earlier epochs
