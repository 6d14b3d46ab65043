"""The loss and temperature pages' charts are built without plotly's validation (speed, see
app.figures.fast_figure); here each is put through the validating constructor instead, so a
misspelt property fails a test rather than reaching the browser."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from app import figures
from kdcore.analysis import temperature_grid

TEMPS = temperature_grid(0.1, 50.0, 100)
RNG = np.random.default_rng(0)


def _built() -> dict[str, go.Figure]:
    with_t2 = RNG.uniform(0.1, 2.0, len(TEMPS))
    return {
        "targets": figures.targets_figure(
            np.eye(10)[3], np.full(10, 0.1), RNG.dirichlet(np.ones(10)), 0.1, 4.0
        ),
        "loss_mix": figures.loss_mix_figure(
            np.linspace(0, 1, 11), RNG.uniform(0, 1, 11), RNG.uniform(0, 1, 11), 0.5, 4.0
        ),
        "gradient": figures.gradient_figure(TEMPS, with_t2, with_t2 / TEMPS**2, 4.0),
        "limit": figures.limit_figure(TEMPS, RNG.uniform(0, 1, len(TEMPS)), 0.8, 4.0),
    }


@pytest.mark.parametrize("name", ["targets", "loss_mix", "gradient", "limit"])
def test_every_fast_chart_passes_plotly_validation(name):
    fig = _built()[name]
    spec = fig.to_dict()
    checked = go.Figure(spec)  # validates every property; raises on an unknown one
    assert len(checked.data) == len(spec["data"]) > 0
    assert checked.layout.template.layout.font.family == figures.TEMPLATE.layout.font.family


def test_the_marker_line_stands_at_t_across_the_whole_plot():
    for name in ("gradient", "limit"):
        (shape,) = _built()[name].to_dict()["layout"]["shapes"]
        assert (shape["x0"], shape["x1"], shape["y0"], shape["y1"]) == (4.0, 4.0, 0, 1)
        assert shape["yref"] == "paper"


def test_the_validation_check_can_fail():
    """Without validation a misspelt property goes through; the check above would catch it."""
    bad = figures.fast_figure([{"type": "scatter", "x": [1], "y": [2], "colour": "red"}])
    with pytest.raises(ValueError, match="colour"):
        go.Figure(bad.to_dict())


def test_log_sigma_axes_label_whole_decades_when_they_span_two():
    """The projector's σ axes: decades only over two or more (2 and 5 between them ran into
    the decade labels in presenter mode), Plotly's own ticks over less."""
    from app.feature_figures import final_spectra_figure
    from app.figures import decade_ticks

    assert decade_ticks([3.0, 1.0, 1e-4]) == {"dtick": 1}
    assert decade_ticks([3.0, 1.0, 0.5]) == {}
    assert decade_ticks([0.0, float("nan")]) == {}
    fig = final_spectra_figure({"none": [[3.0, 1.0, 1e-4]], "whitening": [[2.0, 1.0, 0.9]]})
    assert fig.layout.yaxis.dtick == 1
    # the DKD page's NCKD per image, over three decades: decades only there too
    from app.relation_figures import dkd_scatter_figure

    p_t, nckd = np.array([0.1, 0.5, 0.99]), np.array([30.0, 2.0, 0.02])
    assert dkd_scatter_figure(p_t, nckd, (0.5, 2.0)).layout.yaxis.dtick == 1


def test_the_run_history_curves_write_large_counts_in_full():
    """A language run's test errors run to thousands: the history chart's y ticks read "8,000",
    not the template's power form ("0.8×10⁴"), which is meant for its log axes."""
    from app import lab_ui
    from app.reference_ui import records

    fig = lab_ui.overlay_figure(records(), "test_errors")
    assert max(max(t.y) for t in fig.data) >= 10_000
    assert fig.layout.yaxis.exponentformat == "none" and fig.layout.yaxis.separatethousands
    assert figures.TEMPLATE.layout.yaxis.exponentformat == "power"  # elsewhere it stays
