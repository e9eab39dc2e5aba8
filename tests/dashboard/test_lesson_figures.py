"""The lesson's info records: edges carry the engine's numbers, widths follow their size, regimes their bands."""

from __future__ import annotations

import numpy as np
import pytest

from descentlab import lesson as L
from descentlab.dashboard import lesson_figures as LF
from descentlab.registry import load_registry


@pytest.fixture(scope="module")
def trace():
    registry = load_registry(entry_points=False, use_env=False)
    instance = L.build_instance({"name": "moons", "hidden": [3, 2], "samples": 20}, registry)
    return L.trace_step(instance, instance.init_params([0])[0], example=5)


@pytest.mark.parametrize("stage", LF.STAGES)
def test_edges_carry_weights_gradients_or_steps(trace, stage):
    update = -0.1 * trace.gradient
    info = LF.network_info(trace, stage, update=update)
    flat = {"w": trace.params, "∂J/∂w": trace.gradient, "Δw": update}[info.edge_quantity]
    assert len(info.edges) == sum(a * b for a, b in zip(trace.sizes[:-1], trace.sizes[1:]))
    for e in info.edges:
        assert e["value"] == flat[e["index"]]
        assert e["color"] == (LF.POSITIVE if e["value"] >= 0 else LF.NEGATIVE)
    by_size = sorted(info.edges, key=lambda e: abs(e["value"]))
    assert [e["width"] for e in by_size] == sorted(e["width"] for e in by_size)
    assert max(e["width"] for e in info.edges) == pytest.approx(8.0)
    assert len(info.nodes) == sum(trace.sizes)


def test_backprop_lights_only_the_layers_the_error_has_reached(trace):
    info = LF.network_info(trace, "backprop", lit_from=2)
    assert {e["layer"] for e in info.edges if e["lit"]} == {2, 3}
    assert all(e["color"] == LF.DIM for e in info.edges if e["layer"] == 1)
    deltas = [n["text"] for n in info.nodes if n["layer"] == 2]
    assert deltas == [f"δ={LF._fmt(v)}" for v in trace.layers[1].delta]
    assert [n["text"] for n in info.nodes if n["layer"] == 1] == ["δ=?"] * 3  # not reached yet
    with pytest.raises(ValueError, match="update"):
        LF.network_info(trace, "descent")


def test_regime_bar_bands_are_the_thresholds_of_the_quadratic():
    info = LF.regime_bar_info(4.0, 0.6)  # αλ = 2.4
    assert [(n, a, b) for n, a, b in info.bands[:3]] == [
        ("crawl", 0.0, 0.125),
        ("glide", 0.125, 0.25),
        ("bounce", 0.25, 0.5),
    ]
    assert info.bands[3][:2] == ("escape", 0.5) and info.regime == "escape"


def test_slice_record_follows_the_iterates(trace):
    registry = load_registry(entry_points=False, use_env=False)
    instance = L.build_instance({"name": "linear_regression", "samples": 16}, registry)
    params = instance.init_params([0])[0]
    view = L.slice_view(instance, params, weight=0)
    info = LF.slice_info(instance, params, view, 1.5 / view.curvature)
    assert info.regime == "bounce"
    errors = info.iterates - (-view.slope / view.curvature)
    assert np.all(np.sign(errors[1:]) == -np.sign(errors[:-1]))  # overshoots every step
    assert np.all(np.abs(errors[1:]) < np.abs(errors[:-1]))  # and still converges
    np.testing.assert_allclose(info.iterate_values, L.slice_curve(instance, params, view, info.iterates))


def test_regime_bar_on_a_sliders_range_puts_each_threshold_under_its_position():
    # a slider from α = 0.05/λ to 3/λ in steps of 0.05/λ: crawl to position 10, glide to 20, bounce to 40
    lam = 2.5
    rates = [k * 0.05 / lam for k in range(1, 61)]
    info = LF.regime_bar_info(lam, rates[29], span=(rates[0], rates[-1]))
    assert [name for name, _, _ in info.bands] == ["crawl", "glide", "bounce", "escape"]
    assert info.bands[0][1] == rates[0] and info.bands[-1][2] == rates[-1]
    assert [b for _, _, b in info.bands[:3]] == pytest.approx([rates[9], rates[19], rates[39]], rel=1e-12)
    assert info.regime == "bounce"  # α = 1.5/λ
    fig = LF.draw_regime_bar(info)
    assert tuple(fig.layout.xaxis.range) == (rates[0], rates[-1])
    # a span that starts past a threshold drops the bands it no longer shows
    late = LF.regime_bar_info(lam, 1.0, span=(0.6 / lam, 3 / lam))
    assert [name for name, _, _ in late.bands] == ["glide", "bounce", "escape"]
