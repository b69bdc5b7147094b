"""The searched per-layer scale never does worse than the published rule on the data it was searched on."""

import numpy as np

from deploy_helpers import make_data, make_network
from evprop.export.quantise import quantise
from evprop.hw_sim.scale_search import fixed_point_loss, search_percentiles
from evprop.train.engine import state_bounds


def test_search_improves_on_the_published_rule_and_is_per_layer():
    spec, data = make_network(), make_data(n_samples=30)
    bounds = state_bounds(spec, data)
    published = fixed_point_loss(spec, bounds, {"hidden": 99.0, "output": 99.0}, data, 16.0)
    chosen, loss = search_percentiles(spec, bounds, data, candidates=(50.0, 90.0, 99.0, 100.0), sweeps=1)
    assert set(chosen) == {"hidden", "output"}
    assert loss <= published
    assert loss == fixed_point_loss(spec, bounds, chosen, data, 16.0)
    fixed, report = quantise(spec, bounds, chosen)
    assert report["percentile"] == chosen
    coarse, _ = quantise(spec, bounds, {"hidden": 50.0, "output": 99.0})
    fine, _ = quantise(spec, bounds, {"hidden": 100.0, "output": 99.0})
    assert coarse.connections[0].weight_exp != fine.connections[0].weight_exp or \
        not np.array_equal(coarse.connections[0].weight, fine.connections[0].weight)   # per-layer percentiles act
