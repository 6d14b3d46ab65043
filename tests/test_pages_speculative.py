"""AppTest for the speculative-decoding page: Eq. 1 follows the URL's α and γ with no run; with an
empty store it offers a run and trains nothing; with a small hand-written completed
``speculative-draft`` result (no training) it draws the measurements, the first-word check and
the round-by-round animation, and ``?draft=`` picks the animated draft. Also the figure helpers
on hand-made traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.spec_figures import (
    KINDS,
    PAD,
    SPACE,
    paper_rows,
    rounds,
    seconds_rows,
    tokens_figure,
    trace_animation,
    visible,
)
from kdcore.presets_spec import SPEC_PRESET
from kdcore.speculative import expected_tokens_per_call
from kdcore.store import Store

PAGE = Path(__file__).resolve().parent.parent / "pages" / "speculative.py"
TIMEOUT = 60
DRAFTS = ("draft_hard", "draft_kd", "draft_on_policy")


def _page(**params) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _round(proposed: str, accepted: int, nxt: str, kept: int | None = None) -> dict:
    kind = "bonus" if accepted == len(proposed) else "correction"
    kept = accepted + 1 if kept is None else kept
    return {"proposed": [ord(c) for c in proposed], "accepted": accepted, "next": ord(nxt),
            "kind": kind, "kept": kept, "text": list(proposed), "next_text": nxt}  # fmt: skip


# "the cat sees" in four rounds: a bonus, two corrections and a round cut short by the stop rule
TRACE = [
    _round("the ", 4, "c"),
    _round("ot s", 1, "t"),
    _round("s se", 2, "e"),
    _round("es x", 2, "y", kept=1),
]
KEPT = "the c" + "ot" + "s e" + "e"


def spec_result(traces: dict | None = None) -> dict:
    models = {"teacher": {"role": "teacher", "arch": "lm-teacher", "params": 800_000}}
    models |= {d: {"role": "student", "arch": "lm-draft", "params": 17_000} for d in DRAFTS}
    per = dict(zip(DRAFTS, (0.55, 0.7, 0.75), strict=True))
    return {
        "models": models,
        "acceptance_rate": per,
        "tokens_per_teacher_call": {d: 1 + 2 * a for d, a in per.items()},
        "expected_acceptance": {d: a - 0.02 for d, a in per.items()},
        "expected_tokens": {d: expected_tokens_per_call(a - 0.02, 4) for d, a in per.items()},
        "speedup": {d: 1 + a for d, a in per.items()},
        "seconds_per_token": {"teacher": 0.004, **{d: 0.004 / (1 + a) for d, a in per.items()}},
        "first_word": {"teacher": {"the": 0.5, "a": 0.3, "my": 0.2},
                       "plain": {"the": 0.52, "a": 0.28, "my": 0.2},
                       **{d: {"the": 0.48, "a": 0.32, "my": 0.2} for d in DRAFTS}},
        "traces": traces or {"draft_hard": TRACE[:2], "draft_kd": TRACE,
                             "draft_on_policy": TRACE[:3]},
        "gamma": 4,
        "config": {"epochs": 1, "gamma": 4, "generations": 60, "first_words": 400},
        "paper": {"source": SPEC_PRESET.source, **SPEC_PRESET.paper},
        "history": {},
    }  # fmt: skip


def _fake_run(store: Store) -> int:
    run_id = store.create("preset", "speculative-draft", {"epochs": 1, "seed": 0}, "fake-spec")
    store.finish(run_id, "completed", "", {"preset": "speculative-draft", "status": "completed",
                                           **spec_result()})  # fmt: skip
    return run_id


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _chart(at: AppTest, key: str) -> dict:
    return next(s for k, s in _charts(at).items() if key in k)


def _metric(at: AppTest, label: str) -> float:
    return float(next(m for m in at.metric if m.label == label).value)


def test_empty_store_offers_a_run_and_eq1_follows_the_url(no_shipped, store_path):
    at = _page(alpha="0.9", gamma="7")
    assert [b.label for b in at.button] == ["Run it now"]
    assert any("No completed speculative-draft run" in i.value for i in at.info)
    assert Store(store_path).list(name="speculative-draft") == []  # nothing queued or trained
    want = expected_tokens_per_call(0.9, 7)
    assert _metric(at, "tokens per teacher call") == pytest.approx(want, abs=5e-4)
    assert _metric(at, "draft calls per token") == pytest.approx(7 / want, abs=5e-3)
    marker = _chart(at, "eq1")["data"][-1]
    assert marker["x"] == [0.9] and marker["y"] == [pytest.approx(want)]
    assert len(at.latex) == 3
    assert not at.toast
    # the paper's Table 2 is shown from the preset's dict even without a run
    assert at.dataframe[-1].value.to_dict("records") == paper_rows(SPEC_PRESET.paper)


def test_bad_url_values_fall_back_with_a_notice(store_path):
    _fake_run(Store(store_path))
    at = _page(alpha="abc", gamma="99", draft="nope")
    notices = " ".join(t.value for t in at.toast)
    for key in ("alpha", "gamma", "draft"):
        assert f"{key}=" in notices, notices
    assert _metric(at, "tokens per teacher call") == pytest.approx(
        expected_tokens_per_call(0.8, 4), abs=5e-4
    )
    assert at.button_group(key="draft").value == "draft_kd"


def test_stored_run_draws_measurements_words_and_animation(store_path):
    run_id = _fake_run(Store(store_path))
    at = _page()
    assert not at.button
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    assert [m.label for m in at.metric][-3:] == [
        "real text only", "forward KL to the teacher", "on-policy JSD (GKD)"
    ]  # fmt: skip
    assert at.metric[-2].value == "2.40"
    assert at.metric[-2].delta == "α 0.70 · 1.70× faster"
    measured = _chart(at, "measured")
    assert {t["name"] for t in measured["data"]} == {"expected", "measured"}
    words = _chart(at, "first_word")
    assert [t["name"] for t in words["data"]][:2] == ["teacher, exact", "plain sampling"]
    assert words["data"][0]["y"] == [0.5, 0.3, 0.2]
    assert "error_y" not in words["data"][0]  # exact: no whiskers
    assert words["data"][1]["error_y"]["array"][0] == pytest.approx(2 * (0.25 / 400) ** 0.5)
    anim = _chart(at, "trace")
    assert len(anim["frames"]) == len(TRACE)  # draft_kd by default
    assert anim["layout"]["sliders"][0]["steps"][-1]["label"] == str(len(TRACE))
    # ?draft= switches the animated draft
    anim = _chart(_page(draft="on-policy"), "trace")
    assert len(anim["frames"]) == 3
    assert len(_chart(_page(draft="real text"), "trace")["frames"]) == 2


def test_rounds_keep_exactly_the_kept_tokens():
    steps = rounds(TRACE)
    assert [s["text"] for s in steps] == ["the c", "the cot", "the cots e", KEPT]
    kinds = [k for _, k in steps[1]["chars"][5:]]
    assert kinds == ["accepted", "rejected", "unused", "unused", "teacher"]
    assert steps[0]["title"].startswith("round 1 of 4: 4 of 4 accepted, + bonus 'c'")
    assert "2 of 4 accepted, + correction 'y' (stop: 1 kept)" in steps[3]["title"]
    assert "11 characters from 4 teacher calls" in steps[3]["title"]


def test_animation_has_a_frame_per_round_and_ends_on_the_kept_text():
    fig = trace_animation(TRACE, "draft_kd")
    assert len(fig.frames) == len(TRACE) and len(fig.data) == len(KINDS)
    last = fig.frames[-1]
    chars = []  # every kept character, read back from its place on the grid
    for trace, kind in zip(last.data, KINDS, strict=True):
        if kind in ("text", "accepted", "teacher"):
            chars += [(-y, x, t) for x, y, t in zip(trace.x, trace.y, trace.text, strict=True)]
    text = "".join(t for *_, t in sorted(chars)).replace(SPACE, " ")
    assert text == KEPT
    assert last.layout.title.text.startswith("round 4 of 4")
    assert all("<s>" in t for t in last.data[list(KINDS).index("rejected")].text)
    assert trace_animation([], "draft_kd").frames == ()
    assert visible("<pad>") == PAD and visible(" ") == SPACE


def test_tokens_figure_marks_the_given_point():
    fig = tokens_figure(0.5, 3, expected_tokens_per_call(0.5, 3))
    assert fig.data[-1].y == (1.875,)
    assert [t.name for t in fig.data[:-1]] == ["1", "2", "3", "4", "8", "16"]


def test_seconds_table_rounds_and_tolerates_missing_numbers():
    res = spec_result()
    rows = seconds_rows(res, DRAFTS)
    assert rows[0] == {"sampling": "plain, teacher only", "ms per token": 4.0,
                       "tokens per teacher call": 1.0, "speed-up": 1.0}  # fmt: skip
    assert rows[2]["ms per token"] == round(4 / 1.7, 2) and rows[2]["speed-up"] == 1.7
    assert seconds_rows({}, ["draft_kd"])[1]["ms per token"] is None
