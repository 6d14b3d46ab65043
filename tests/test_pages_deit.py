"""AppTest for the DeiT page: with an empty store it offers a run and trains nothing; with a
small hand-written completed ``deit-mnist`` result (no training) it draws the heads' curves and
the predictions, and the controls move what is drawn. Also the figure helpers on hand-made
numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.deit_figures import predictions_table, token_curves
from kdcore.losses.deit import KINDS
from kdcore.store import Store

PAGE = Path(__file__).resolve().parent.parent / "pages" / "deit.py"
TIMEOUT = 60


def _page(**params) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _probs(top: int, p: float = 0.9) -> list[float]:
    rest = (1 - p) / 9
    return [p if d == top else rest for d in range(10)]


def deit_result() -> dict:
    names = ("teacher", "vit_no_teacher", "vit_deit_hard", "vit_deit_soft")
    models = {n: {"test_accuracy": 0.9 + i / 100, "test_errors": 1000 - 100 * i}
              for i, n in enumerate(names)}  # fmt: skip
    both = {"cls_accuracy": [0.8, 0.9], "dist_accuracy": [0.78, 0.91], "agreement": [0.85, 0.95],
            "cls_teacher": [0.8, 0.9], "dist_teacher": [0.82, 0.93]}  # fmt: skip
    tokens = {"vit_no_teacher": {"cls_accuracy": [0.79, 0.88], "cls_teacher": [0.8, 0.87]},
              "vit_deit_hard": both, "vit_deit_soft": both}  # fmt: skip
    examples = {
        "test_index": [3, 8, 21],
        "labels": [0, 5, 7],
        "teacher": [_probs(0), _probs(3), _probs(7)],
        "models": {
            "vit_no_teacher": {"cls": [_probs(0), _probs(5), _probs(7)]},
            "vit_deit_hard": {
                "cls": [_probs(0), _probs(5), _probs(7)],
                "dist": [_probs(0), _probs(3), _probs(1)],
            },
            "vit_deit_soft": {
                "cls": [_probs(0), _probs(5), _probs(7)],
                "dist": [_probs(0), _probs(5), _probs(7)],
            },
        },
    }
    history = {n: [{"epoch": e, "test_accuracy": 0.9, "losses": {"total": 1.0}} for e in (1, 2)]
               for n in names}  # fmt: skip
    return {"models": models, "tokens": tokens, "examples": examples, "history": history,
            "training_images": 10000}  # fmt: skip


def _fake_run(store: Store) -> int:
    run_id = store.create("preset", "deit-mnist", {"epochs": 2, "seed": 0}, "fake-deit")
    store.finish(run_id, "completed", "", {"preset": "deit-mnist", "status": "completed",
                                           **deit_result()})  # fmt: skip
    return run_id


def test_empty_store_offers_a_run_and_shows_the_losses(no_shipped, store_path):
    at = _page()
    assert [b.label for b in at.button] == ["Run it now"]
    assert any("No completed deit-mnist run" in i.value for i in at.info)
    assert len(at.latex) >= 2
    assert any(m.label == "teacher term (distillation head)" for m in at.metric)
    # soft distillation: the teacher term changes with λ and the target is a distribution
    at = _page(kind="soft", tau="2", lam="0.9")
    teacher = next(m for m in at.metric if m.label == "teacher term (distillation head)")
    at2 = _page(kind="soft", tau="2", lam="0.1")
    teacher2 = next(m for m in at2.metric if m.label == "teacher term (distillation head)")
    assert float(teacher.value) == pytest.approx(9 * float(teacher2.value), rel=1e-3)


def test_stored_run_draws_heads_agreement_and_predictions(store_path):
    run_id = _fake_run(Store(store_path))
    at = _page()
    assert not at.button
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    curves = next(s for k, s in charts.items() if "tokens" in k)
    names = {t["name"] for t in curves["data"]}
    assert "hard distillation: distillation head" in names
    assert "hard distillation: class = distillation head" in names
    assert "no teacher: class head" in names and "no teacher: distillation head" not in names
    table = at.dataframe[0].value
    assert list(table["teacher"]) == [0, 3, 7]
    assert list(table["distillation head"]) == ["0", "3", "1 ≠ teacher"]
    # another image and the soft student, through the URL-bound controls
    at = _page(img="2", student="soft")
    preds = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "preds" in c.proto.id)
    assert {t["name"] for t in preds["data"]} == {"teacher (CNN)", "class head",
                                                  "distillation head"}  # fmt: skip
    assert [a["text"] for a in preds["layout"]["annotations"]] == ["label 7"]


def _choice(at: AppTest, key: str):
    return next(b for b in at.get("button_group") if b.proto.query_param_key == key)


def test_the_url_holds_slugs_and_old_labels_fall_back(store_path):
    """``?kind=`` and ``?student=`` are short slugs, shown as the buttons; a link with an old
    label (``soft (Eq. 2)``) or junk opens at the default with a notice, never a traceback."""
    at = _page(kind="soft")
    kind = _choice(at, "kind")
    assert [o.content for o in kind.proto.options] == list(KINDS)
    assert kind.value == "soft" and "Eq. 2" in kind.label
    assert not next(s for s in at.slider if s.label.startswith("τ")).disabled
    at = _page(kind=" Soft")  # a slug typed in another case is read as that slug
    assert _choice(at, "kind").value == "soft" and not at.toast
    for raw in ("soft (Eq. 2)", "%%", ""):
        at = _page(kind=raw)
        assert _choice(at, "kind").value == "hard"
        assert next(s for s in at.slider if s.label.startswith("τ")).disabled
        assert "kind" not in at.query_params
    _fake_run(Store(store_path))
    at = _page(student="soft")
    assert [o.content for o in _choice(at, "student").proto.options] == ["hard", "soft"]
    assert _choice(at, "student").value == "vit_deit_soft"
    at = _page(student="soft distillation")
    assert _choice(at, "student").value == "vit_deit_hard"
    assert "student" not in at.query_params


def test_figure_helpers_on_hand_made_numbers():
    res = deit_result()
    rows = predictions_table(res["examples"], "vit_deit_hard")
    assert rows[1] == {"test image": 8, "label": 5, "teacher": 3, "class head": "5 ≠ teacher",
                       "distillation head": "3"}  # fmt: skip
    fig = token_curves(res["tokens"])
    assert len(fig.data) == 1 + 2 * 4  # no teacher: one head; two students: 2 heads + 2 agreements


def test_paper_table_3_is_shown_with_or_without_a_run(no_shipped, store_path):
    """DeiT's Table 3 from the preset's paper dict, cited, whether or not a run is stored."""
    from kdcore.presets import PRESETS

    rows = PRESETS["deit-mnist"].paper["imagenet_top1"]
    at = _page()
    assert len(at.dataframe) == 1
    assert at.dataframe[0].value.to_dict("records") == rows
    assert any("Touvron et al. 2021, Table 3" in c.value for c in at.caption)
    assert not any("could not be checked" in c.value or "Table 5" in c.value for c in at.caption)
    _fake_run(Store(store_path))
    at = _page()
    assert at.dataframe[-1].value.to_dict("records") == rows
