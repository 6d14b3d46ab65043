"""The language-model presets end to end at a tiny size, with the shipped teacher: every model
is trained, measured and reported under the JSON keys the pages and the issue name."""

from __future__ import annotations

import json

import pytest

from kdcore.presets_lm import ON_POLICY, WORD_VS_SEQ
from kdcore.presets_spec import DRAFTS
from kdcore.runner import run_preset

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {"epochs": 1, "docs": 32, "test_docs": 50, "samples": 10, "batch_size": 16}


def _check(result: dict, names) -> None:
    assert result["status"] == "completed", result["message"]
    json.dumps(result)  # stored as JSON
    assert set(names) | {"teacher"} == set(result["models"])
    floor = result["floor_bits"]
    for name, m in result["models"].items():
        assert m["bits_per_char"] > floor, name  # nothing beats the language's entropy
        assert 0 <= m["sample_valid"] <= 1 and 0 < m["sample_distinct"] <= 1
        assert m["kl_true"] == pytest.approx(m["bits_per_char"] - floor, abs=1e-4)


def test_word_vs_sequence_kd_reports_every_student_and_the_tokenizer_refusal():
    result = run_preset("word-vs-sequence-kd", **TINY)
    _check(result, WORD_VS_SEQ)
    assert "vocabulary" in result["tokenizer_mismatch"]
    models = result["models"]
    uld = models["wordtok_uld"]
    assert uld["tokenizer"] == "word" and "kl_teacher" not in uld  # no shared vocabulary
    assert models["teacher"]["greedy_match"] == 1.0  # the teacher's greedy text is its own
    assert set(result["teacher_texts"]) == {"greedy", "sample", "corpus"}


def test_on_policy_kd_trains_each_beta():
    result = run_preset("on-policy-kd", **TINY, lam=1.0)
    _check(result, [*ON_POLICY, "sft"])
    betas = {n: m.get("method_params", {}).get("beta") for n, m in result["models"].items()}
    assert betas["on_policy_fkl"] == 0.0 and betas["on_policy_rkl"] == 1.0


def test_speculative_draft_has_the_issue_keys_and_consistent_numbers():
    result = run_preset("speculative-draft", **TINY, generations=3, gamma=3, first_words=20)
    _check(result, DRAFTS)
    for key in ("acceptance_rate", "tokens_per_teacher_call", "expected_acceptance", "speedup"):
        assert set(result[key]) == set(DRAFTS), key
        assert all(isinstance(v, float) for v in result[key].values())
    for name in DRAFTS:
        assert 0 <= result["acceptance_rate"][name] <= 1
        assert 1 <= result["tokens_per_teacher_call"][name] <= 4  # at most γ + 1
        trace = result["traces"][name]
        assert trace and all(len(r["text"]) == len(r["proposed"]) for r in trace)
    assert abs(sum(result["first_word"]["teacher"].values()) - 1) < 0.05
    assert set(result["first_word"]) == {"teacher", "plain", *DRAFTS}
    assert all(
        abs(sum(f.values()) - 1) < 1e-3 for k, f in result["first_word"].items() if k != "teacher"
    )


def test_tinybert_hidden_reads_every_teacher_layer_from_every_student_layer():
    from kdcore.losses.tinybert import MAPPINGS
    from kdcore.presets_tinybert import TINYBERT

    result = run_preset("tinybert-hidden", **TINY, lam=3.0)
    _check(result, TINYBERT)
    models, history = result["models"], result["history"]
    for name in TINYBERT:
        r2 = models[name]["readout_r2"]
        assert len(r2) == 3 and all(len(row) == 5 for row in r2)  # student layers x teacher's
        assert all(0 <= v <= 1 for row in r2 for v in row)
        assert models[name]["r2_last"] == r2[-1][-1]
    taught = {n: models[n]["method_params"] for n in TINYBERT if models[n]["method"] == "tinybert"}
    assert {p["mapping"] for p in taught.values()} == set(MAPPINGS)
    assert sorted(p["alpha"] for p in taught.values()) == [0.0, 0.0, 0.0, 1.0]
    assert all(p["lam"] == 3.0 for p in taught.values())
    assert "pred" in history["hidden_pred"][0]["losses"]
    for name in TINYBERT:  # a projector's spectrum each epoch, for the students that train one
        spectra = [r["extra"].get("projector_sv") for r in history[name]]
        if name in taught:
            assert all(len(sv) == 48 and sv == sorted(sv, reverse=True) for sv in spectra)
        else:
            assert spectra == [None] * len(spectra)


def test_minilm_relations_measures_every_students_last_block_against_the_teachers():
    from kdcore.presets_minilm import MINILM, PAIRS_MEASURED

    result = run_preset("minilm-relations", **TINY, heads=2, lam=2.0)
    _check(result, MINILM)
    models = result["models"]
    for name in MINILM:
        kls = models[name]["relation_kls"]
        assert set(kls) == set(PAIRS_MEASURED) and all(v >= 0 for v in kls.values())
        assert models[name]["relation_kl"] == pytest.approx(kls["qq"] + kls["kk"] + kls["vv"],
                                                            abs=1e-4)  # fmt: skip
    taught = {n: models[n]["method_params"] for n in MINILM if models[n]["method"] == "minilm"}
    assert {p["teacher_layer"] for p in taught.values()} == {3, 4}
    assert all(p["heads"] == 2 and p["lam"] == 2.0 for p in taught.values())
    maps = result["relation_maps"]
    n = len(maps["text"])
    assert maps["heads"] == 2 and maps["text"].count(" ") == 4  # the prompt and four words
    assert set(maps["models"]) == {"teacher", *MINILM}
    for rel in maps["models"].values():
        assert set(rel) == set(PAIRS_MEASURED)
        for m in rel.values():
            assert len(m) == n and all(abs(sum(row) - 1) < 0.01 for row in m)


def test_distilbert_starts_each_student_as_its_entry_says_and_times_each_model():
    from kdcore.presets_distilbert import DISTILBERT

    result = run_preset("distilbert", **TINY)
    _check(result, DISTILBERT)
    models, history = result["models"], result["history"]
    starts = {n: models[n]["start_kl_true"] for n in DISTILBERT}
    copied = {n for n, (_, p) in DISTILBERT.items() if DISTILBERT[n][0] == "distilbert"
              and p.get("init", "teacher") == "teacher"}  # fmt: skip
    assert copied == {"distilbert", "no_kd", "no_cos", "no_lm", "init_only"}
    # every copied student starts at the same point, far nearer the truth than random weights
    assert len({starts[n] for n in copied}) == 1
    assert starts["hard"] == starts["random_init"] > 10 * starts["distilbert"]
    for name in DISTILBERT:
        assert models[name]["arch"] == "lm-half" and models[name]["pass_seconds"] > 0
        parts = set(history[name][0]["losses"]) - {"total"}
        p = models[name]["method_params"]
        # α_ce weighs the soft targets ("kd"), α_cos the cosine; the real text's "ce" always
        want = {
            "ce",
            *(["kd"] if p.get("alpha_ce") else []),
            *(["cos"] if p.get("alpha_cos") else []),
        }
        assert parts == want, name
    assert models["teacher"]["pass_seconds"] > 0
    assert models["distilbert"]["params"] < 0.55 * models["teacher"]["params"]
