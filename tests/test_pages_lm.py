"""AppTest for the language-model page: the next-character view with the shipped teacher and the
exact probabilities, odd URL values, the methods' table from the registry, and the stored runs
(an empty store offers a run; a small hand-written result is drawn without training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.lm_figures import LABEL, results_figure, results_rows
from kdcore.language import LANGUAGE, PAD
from kdcore.lm_methods import LM_METHODS
from kdcore.store import Store

PAGE = Path(__file__).resolve().parent.parent / "pages" / "lm.py"


def _page(**params) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=90)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id)


def test_the_next_character_view_follows_the_url(store_path):
    at = _page(doc="3", pos="9", T="2")
    assert [s.value for s in at.slider if s.label.startswith("Teacher's temperature")] == [2.0]
    fig = _chart(at, "next")
    truth = next(t for t in fig["data"] if t["name"].startswith("the language"))
    assert sum(truth["y"]) == pytest.approx(1.0, abs=1e-6)
    assert any(t["name"] == "teacher at T = 2" for t in fig["data"])
    assert any("KL(truth ‖ teacher at T = 2)" in c.value for c in at.caption)


def test_the_methods_table_shows_every_sentence_whole(no_shipped, store_path):
    """A static table (``st.table``), whose cells wrap: a data frame's fixed-width columns cut
    the longer summaries off (the browser test checks what is drawn)."""
    at = _page()
    assert len(at.table) == 1
    methods = at.table[0].value
    assert list(methods["method"]) == [m.title for m in LM_METHODS.values()]
    assert list(methods["it matches"]) == [m.summary for m in LM_METHODS.values()]
    assert list(methods["source"]) == [m.citation for m in LM_METHODS.values()]
    assert "any tokenizer" in methods.columns


def test_the_vocabularies_are_counted_with_their_padding_token(store_path):
    """The caption counts characters and words; the vocabularies have one token more, and the
    page says which: padding. All from the tokenizers, nothing typed in."""
    chars, words = LANGUAGE.chars, LANGUAGE.wordtok
    assert chars.chars[PAD] == words.words[PAD] == "<pad>"
    at = _page()
    caption = next(c.value for c in at.caption if "word-bigram grammar" in c.value)
    assert f"over {words.vocab_size - 1} words (the full stop is one)" in caption
    assert f"{chars.vocab_size - 1} characters, the space and the full stop" in caption
    text = next(m.value for m in at.markdown if "character tokens from a vocabulary" in m.value)
    assert (f"vocabulary of {chars.vocab_size} for the teacher (the {chars.vocab_size - 1} "
            "characters and the padding token `<pad>`") in text  # fmt: skip
    assert (f"vocabulary of {words.vocab_size} for the word student (the "
            f"{words.vocab_size - 1} words and the same padding token)") in text  # fmt: skip


@pytest.mark.parametrize("params", [{"doc": "abc"}, {"pos": "999"}, {"T": "-1"},
                                    {"beta": "nan"}, {"view": "nope"},
                                    {"view": "on-policy KD"}])  # fmt: skip
def test_odd_url_values_fall_back_without_a_traceback(store_path, params):
    at = _page(**params)
    assert at.get("plotly_chart")


def test_empty_store_offers_a_run(no_shipped, store_path):
    at = _page()
    assert [b.label for b in at.button] == ["Run it now"]
    assert any("No completed word-vs-sequence-kd run" in i.value for i in at.info)


def _result() -> dict:
    def model(bits, method, tok="char", **kw):
        return {"bits_per_char": bits, "kl_true": bits - 0.65, "sample_valid": 0.9,
                "sample_distinct": 0.8, "sample_nll": 0.7, "method": method, "tokenizer": tok,
                "params": 62424, "test_accuracy": 0.8, "test_errors": 10, **kw}  # fmt: skip

    models = {"teacher": model(0.66, "lm-hard", role="teacher"),
              "hard": model(0.9, "lm-hard", role="baseline"),
              "word_kd": model(0.8, "word-kd", kl_teacher=0.1),
              "seq_kd_greedy": model(1.4, "seq-kd", greedy_match=0.95),
              "wordtok_uld": model(0.85, "uld", "word")}  # fmt: skip
    return {"preset": "word-vs-sequence-kd", "status": "completed", "models": models,
            "floor_bits": 0.65, "training_docs": 4000, "history": {},
            "tokenizer_mismatch": "Word-level KD needs the teacher's vocabulary (char)",
            "teacher_texts": {"greedy": ["the cat sees the cat "], "sample": ["a dog runs . "]},
            "paper": {"claims": ["Sequence-level KD gains more than word-level KD."]}}  # fmt: skip


def test_a_stored_run_is_drawn_with_the_floor_and_the_refusal(store_path):
    store = Store(store_path)
    run_id = store.create("preset", "word-vs-sequence-kd", {"epochs": 1, "seed": 0}, "fake-lm")
    store.finish(run_id, "completed", "", _result())
    at = _page()
    assert not at.button
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    fig = _chart(at, "results")
    assert LABEL["seq_kd_greedy"] in fig["data"][0]["x"]
    assert any("needs the teacher's vocabulary" in i.value for i in at.info)
    assert any("the cat sees the cat" in c.value for c in at.caption)
    at = _page(view="on-policy-kd")  # the other preset, by its slug: no run of the user's own
    assert any(c.value.startswith("The shipped run: preset on-policy-kd") for c in at.caption)
    at = _page(view="on-policy KD")  # a link with the old label: the default, with a notice
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    assert "view" not in at.query_params


def test_figure_helpers_on_hand_made_numbers():
    models = _result()["models"]
    fig = results_figure(models, 0.65)
    assert len(fig.data) == 4
    colours = fig.data[0].marker.color  # the teacher, the baseline (by role), the students
    assert colours[0] != colours[1] != colours[2] and colours[2] == colours[3]
    assert list(fig.data[0].y) == [m["bits_per_char"] for m in models.values()]
    # every annotation has its text: Plotly draws one without as "new text"
    assert all(a.text for a in fig.layout.annotations)
    rows = results_rows(models)
    assert rows[2]["KL from teacher (nats/token)"] == 0.1 and rows[0]["model"] == "teacher"
