"""The per-layer scale search finds the best quantisation scale of its candidate grid on the data it searches on."""

import itertools
from dataclasses import replace

import numpy as np

from deploy_helpers import make_data, make_network
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.scale_search import fixed_point_loss, search_percentiles
from evprop.fixed_point.calibrate import state_bounds
from evprop.train.trainer import evaluate


def test_search_finds_the_grid_minimum_and_is_per_layer():
    """Labels = the float network's own predictions, so its float loss (1.0373) is the quantisation-free target.
    Coordinate descent over the layers must land on the minimum of the whole candidate grid (checked by evaluating
    all 16 pairs), which is within 1e-3 of the float loss; a coarse scale (percentile 50 everywhere) is > 0.02 worse,
    so the grid's choice matters on this data."""
    spec, data = make_network(), make_data(n_samples=30)
    float_eval = evaluate(spec, data)
    data = replace(data, labels=float_eval["predictions"])
    float_loss = evaluate(spec, data)["loss"]
    bounds = state_bounds(spec, data)
    candidates = (50.0, 90.0, 99.0, 100.0)
    grid = {(h, o): fixed_point_loss(spec, bounds, {"hidden": h, "output": o}, data, 16.0)
            for h, o in itertools.product(candidates, candidates)}
    chosen, loss, rounded = search_percentiles(spec, bounds, data, candidates=candidates, sweeps=1)
    assert set(chosen) == {"hidden", "output"}
    assert loss == grid[(chosen["hidden"], chosen["output"])] == min(grid.values())
    assert loss == fixed_point_loss(spec, bounds, chosen, data, 16.0, rounded)
    assert abs(loss - float_loss) < 1e-3
    assert grid[(50.0, 50.0)] - loss > 0.02
    fixed, report = quantise(spec, bounds, chosen)
    assert report["percentile"] == chosen
    coarse, _ = quantise(spec, bounds, {"hidden": 50.0, "output": 99.0})
    fine, _ = quantise(spec, bounds, {"hidden": 100.0, "output": 99.0})
    assert coarse.connections[0].weight_exp != fine.connections[0].weight_exp or \
        not np.array_equal(coarse.connections[0].weight, fine.connections[0].weight)   # per-layer percentiles act


def test_round_messages_raises_negative_exponents_to_zero():
    """A slow, positively driven readout accumulates a large voltage: its per-spike weights sit below its v units,
    so the output connection gets a negative exponent."""
    from dataclasses import replace
    spec, data = make_network(), make_data(n_samples=10)
    spec = replace(spec, layers=spec.layers[:-1] + (replace(spec.output, tau_mem_ms=500.0),))
    spec = spec.with_weights({"hidden->output": spec.connection("hidden->output").weight + 0.5})
    bounds = state_bounds(spec, data)
    plain, _ = quantise(spec, bounds)
    negative = [c.name for c in plain.connections if c.weight_exp < 0]
    assert negative                                           # the output connection's messages are shifted down
    rounded, _ = quantise(spec, bounds, round_messages=frozenset(negative))
    for conn in rounded.connections:
        before = next(c for c in plain.connections if c.name == conn.name)
        assert conn.weight_exp == (0 if conn.name in negative else before.weight_exp)
