"""AppTest for the features page's section on the overhaul of feature distillation (OFD): the
cost chart is ofd_loss of one number at the URL's margin, the caption follows the margin; the
shipped ofd-mnist run's margins and skipped shares are drawn as recorded, and a run without
them says so in one line."""

from __future__ import annotations

import numpy as np
import pytest

from app.ofd_views import STANDARD
from kdcore.reference import load_references
from kdcore.store import Store
from tests.test_pages_features import _epoch, _fake_run, _models, _page, _spec, _values


def test_the_cost_is_ofds_loss_at_the_urls_margin(no_shipped, store_path):
    at = _page("hints.py", ofd_m="-0.5")
    assert not at.exception and at.slider(key="ofd_m").value == -0.5
    kept, middle, low, plain = _spec(at, "ofd_cost")["data"]
    x = _values(kept["x"])
    assert _values(kept["y"]) == pytest.approx((x - 1) ** 2)  # +1: matched from both sides
    # −0.3 is above the margin: free below it; −2 is raised to −0.5: free below −0.5
    assert _values(middle["y"]) == pytest.approx(np.where(x <= -0.3, 0.0, (x + 0.3) ** 2))
    assert _values(low["y"]) == pytest.approx(np.where(x <= -0.5, 0.0, (x + 0.5) ** 2))
    assert _values(plain["y"]) == pytest.approx((x + 2) ** 2)
    caption = next(c.value for c in at.caption if c.value.startswith("At m = -0.5"))
    assert "one of -0.3 is kept" in caption and "of -2 becomes -0.5" in caption
    # a margin above −0.3 raises that response too; the default is a standard normal's
    at = _page("hints.py", ofd_m="-0.1")
    caption = next(c.value for c in at.caption if c.value.startswith("At m = -0.1"))
    assert "one of -0.3 is below the margin and becomes -0.1" in caption
    assert _page("hints.py").slider(key="ofd_m").value == pytest.approx(round(STANDARD, 1))


def test_the_shipped_run_draws_its_margins_and_skipped_shares_as_recorded(store_path):
    ref = load_references()[0]["ofd-mnist"]
    history = ref.result["history"]
    at = _page("hints.py")
    assert not at.exception
    last = history["student_ofd"][-1]["extra"]
    points = _spec(at, "ofd_margins")["data"][1]
    assert list(_values(points["x"])) == last["margin_responses"]
    assert list(_values(points["y"])) == last["margin_gaussian"]
    lines = {t["name"]: list(_values(t["y"])) for t in _spec(at, "ofd_shares")["data"]}
    ofd = [n for n, rec in ref.result["models"].items() if rec.get("method") == "ofd"]
    assert len(ofd) == 4 and set(lines) == {*ofd, "teacher below zero"}
    for name in ofd:
        assert lines[name] == [e["extra"]["skipped"] for e in history[name]]
    caption = next(c.value for c in at.caption if "the teacher's 300 units" in c.value)
    g = np.asarray(last["margin_gaussian"])
    assert f"averages {g.mean():.3f}" in caption
    assert f"{last['negative']:.1%} are below zero" in caption


def test_a_run_without_margins_says_so(no_shipped, store_path):
    names = ("student_hard", "student_kd", "student_ofd")
    history = {n: [_epoch(1, {"ce": 0.5})] for n in names}
    run_id = _fake_run(Store(store_path), "ofd-mnist", {"models": _models(*names),
                                                        "history": history})  # fmt: skip
    at = _page("hints.py")
    assert not at.exception
    assert any(f"Run #{run_id}" in w.value and "kept no margins" in w.value
               for w in [*at.warning, *at.info, *at.caption])  # fmt: skip


def test_the_lab_runs_ofd_from_its_entry_and_draws_its_shares(store_path, tmp_path, monkeypatch):
    """OFD's controls come from its entry (the margin's four ways, the partial L2 as a toggle);
    a real run on the MLPs' layers before their ReLUs records its shares each epoch, which the
    lab's recorded panel draws as stored (the per-unit margins are lists, not drawn there)."""
    import json

    from tests.apptest import plotly_array
    from tests.test_pages_lab import _header, _page, _tiny, _until_done

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    at = _tiny(_page("lab.py"), method="ofd")
    assert at.selectbox(key="margin").options == ["gaussian", "responses", "zero", "none"]
    assert at.toggle(key="partial").value is True
    at.selectbox(key="student_layer").set_value("hidden2_pre")
    at.selectbox(key="teacher_layer").set_value("hidden2_pre").run()
    assert not at.exception and not at.button[0].disabled
    at.button[0].click().run()
    _until_done(at)
    assert "completed" in _header(at)
    run = Store(store_path).get(1)
    records = [e["extra"] for e in run.history["student_ofd"]]
    assert len(records[-1]["margin"]) == 100 and 0 < records[-1]["skipped"] < 1
    (chart,) = [c for c in at.get("plotly_chart") if c.key == "recorded-1"]
    spec = json.loads(chart.proto.spec)
    assert {a["text"] for a in spec["layout"]["annotations"]} == {"raised", "negative",
                                                                 "skipped"}  # fmt: skip
    drawn = {d["xaxis"]: plotly_array(d["y"]).tolist() for d in spec["data"]}
    assert [e["skipped"] for e in records] in [pytest.approx(v) for v in drawn.values()]


def test_a_demo_teacher_unit_shows_its_responses_and_both_margins(no_shipped, store_path):
    """The histogram is the demo teacher's unit before its ReLU on the test images; the two
    dashed lines are gaussian_margin of their mean and spread and the mean of the negatives;
    by default the unit where those differ most."""
    import torch

    from app.ofd_views import demo_responses, unit_margins
    from kdcore.losses.ofd import gaussian_margin

    responses = demo_responses()
    x = responses[:, 7]
    at = _page("hints.py", ofd_unit="7")
    assert at.number_input(key="ofd_unit").value == 7
    hist, normal, gauss, neg = _spec(at, "ofd_unit_chart")["data"]
    assert _values(hist["x"]) == pytest.approx(x)
    peak = 1 / (x.std() * np.sqrt(2 * np.pi))  # the normal's density at its mean
    assert _values(normal["y"]).max() == pytest.approx(peak, rel=1e-2)
    want = float(gaussian_margin(torch.tensor([x.mean()]), torch.tensor([x.std()]))[0])
    assert _values(gauss["x"]) == pytest.approx([want, want], rel=1e-6)
    assert _values(neg["x"]) == pytest.approx([x[x < 0].mean()] * 2, rel=1e-9)
    caption = next(c.value for c in at.caption if "unit 7 of its" in c.value)
    assert f"below zero on {(x < 0).mean():.1%}" in caption and f"{want:.3f}" in caption
    gaps = [abs(m["gaussian"] - m["responses"]) for m in map(unit_margins, responses.T)]
    assert _page("hints.py").number_input(key="ofd_unit").value == int(np.argmax(gaps))
