"""The searched per-layer scale never does worse than the published rule on the data it was searched on."""

import numpy as np

from deploy_helpers import make_data, make_network
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.scale_search import fixed_point_loss, search_percentiles
from evprop.fixed_point.calibrate import state_bounds


def test_search_improves_on_the_published_rule_and_is_per_layer():
    spec, data = make_network(), make_data(n_samples=30)
    bounds = state_bounds(spec, data)
    published = fixed_point_loss(spec, bounds, {"hidden": 99.0, "output": 99.0}, data, 16.0)
    chosen, loss, rounded = search_percentiles(spec, bounds, data, candidates=(50.0, 90.0, 99.0, 100.0), sweeps=1)
    assert set(chosen) == {"hidden", "output"}
    assert loss <= published
    assert loss == fixed_point_loss(spec, bounds, chosen, data, 16.0, rounded)
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
