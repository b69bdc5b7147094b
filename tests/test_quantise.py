"""Quantiser invariants: decays, weights within half a step, threshold, LI headroom, reported clipping, files."""

import numpy as np
import pytest

from deploy_helpers import quantise_calibrated, make_data, make_network
from evprop.fixed_point.quantise import device_params, quantise, weight_unit
from evprop.fixed_point.spec import (DECAY_UNITY, MESSAGE_MAX, VTH_MAX, VTH_SHIFT, FixedConnection, FixedLayer,
                                     load_fixed_point, save_fixed_point)
from evprop.model.spec import Connection, LIFLayer, discretise


@pytest.fixture(scope="module")
def quantised():
    spec = make_network(per_neuron_taus=True)
    data = make_data()
    fp, report = quantise_calibrated(spec, data)
    return spec, data, fp, report


def test_decays_follow_lava_formula(quantised):
    spec, _, fp, _ = quantised
    for layer, fixed in zip(spec.neuron_layers, fp.layers):
        alpha, beta, _ = discretise(layer.tau_mem_ms, layer.tau_syn_ms, spec.dt_ms)
        # Lava: u decays by (4096 - (du + 1)) / 4096, v by (4096 - dv) / 4096
        np.testing.assert_array_equal(fixed.du, 4095 - np.rint(4096 * beta))
        np.testing.assert_array_equal(fixed.dv, 4096 - np.rint(4096 * alpha))
        assert np.all(np.abs((4095 - fixed.du) / DECAY_UNITY - beta) <= 0.5 / DECAY_UNITY)
        assert np.all(np.abs((4096 - fixed.dv) / DECAY_UNITY - alpha) <= 0.5 / DECAY_UNITY)
        assert len(np.unique(fixed.du)) > 1          # per-neuron taus give per-neuron decays


def test_weights_within_half_a_step_and_representable(quantised):
    spec, _, fp, report = quantised
    for conn in spec.connections:
        fixed = next(c for c in fp.connections if c.name == conn.name)
        target = spec.layer(conn.target)
        _, _, g = discretise(target.tau_mem_ms, target.tau_syn_ms, spec.dt_ms)
        unit = report["connections"][conn.name]["weight_unit"]
        assert fixed.weight.shape == conn.weight.T.shape          # [post, pre]
        step = 2 if fixed.sign_mode == "mixed" else 1
        assert np.all(fixed.weight % step == 0)
        error = np.abs(fixed.weight.T * unit - conn.weight * g[None, :])
        within = error <= step * unit / 2 * (1 + 1e-9)
        # every weight is within half a step, except the saturated ones the report counts, which sit at the limit
        assert (~within).sum() == report["connections"][conn.name]["clipped"]
        assert np.all(np.isin(fixed.weight.T[~within], [-256, 254, 255, -255]))
        assert within.mean() > 0.97
    for fixed in fp.connections:          # every connection into a layer uses the layer's v units
        unit = report["connections"][fixed.name]["weight_unit"]
        assert fp.layer(fixed.target).v_lsb == pytest.approx(unit / 2.0 ** (fixed.weight_exp + 6), rel=1e-15)
    exps = {c.name: c.weight_exp for c in fp.connections}
    assert exps["input->hidden"] != exps["hidden->hidden"]     # own exponents: ranges differ by ~10x


def test_threshold_maps_to_theta(quantised):
    spec, _, fp, _ = quantised
    hidden = fp.layer("hidden")
    theta_int = spec.layer("hidden").threshold / hidden.v_lsb
    assert abs((hidden.vth << VTH_SHIFT) - theta_int) <= 32          # vth rounded: within half of 64 LSBs
    assert 1000 < hidden.vth <= VTH_MAX


def test_li_output_far_from_threshold_and_limits(quantised):
    _, _, fp, report = quantised
    out = report["layers"]["output"]
    assert fp.output.vth == VTH_MAX and fp.output.kind == "li"
    assert out["max_abs_v"] <= 2 ** 20 < out["vth_shifted"]
    assert out["max_abs_v"] > 2 ** 14                                  # but not needlessly coarse
    assert out["spikes_seen"] == 0 and out["v_saturations_seen"] == 0 and out["u_wraps_seen"] == 0
    for name in ("hidden", "output"):
        assert report["layers"][name]["u_wrap_possible"] is False
        assert report["layers"][name]["message_overflows_seen"] == 0


def test_clipped_weights_are_reported_not_hidden():
    spec = make_network()
    conn = spec.connection("input->hidden")
    weight = conn.weight.copy()
    weight[0, 0] = 40.0                                                  # an outlier far above the 99th percentile
    spec = spec.replace_connection(Connection(conn.source, conn.target, weight))
    fp, report = quantise_calibrated(spec, make_data())
    entry = report["connections"]["input->hidden"]
    assert entry["clipped"] == 1 and entry["clipped_fraction"] == pytest.approx(1 / weight.size)
    assert fp.connections[0].weight[0, 0] == 254                          # saturated at the mixed-mode maximum


def test_weight_unit_is_published_power_of_two_rule():
    w = [np.array([[0.3, -0.1], [0.05, 0.2]])]
    unit = weight_unit(w, 100.0)
    assert unit == 2.0 ** (np.floor(np.log2(0.3)) - 7)
    assert 128 <= 0.3 / unit < 256


def test_without_calibration_messages_fit_16_bits():
    spec = make_network()
    fp, report = quantise(spec)
    assert report["calibrated"] is False
    for layer in fp.layers:
        assert report["layers"][layer.name]["message_bound_int"] <= MESSAGE_MAX
    assert report["layers"]["output"]["assumed_max_abs_v"] == 8.0


def test_device_params_decay_edge_cases():
    # tau_syn tiny -> beta ~ 0 -> du = 4095 (u replaced every step); tau_mem huge -> dv = 0 (no leak)
    layer = LIFLayer("x", 2, [1e9, 1e9], [1e-3, 1e-3])
    params = device_params(layer, (), 1.0, 2.0 ** -16, {})
    np.testing.assert_array_equal(params.layer.du, [4095, 4095])
    np.testing.assert_array_equal(params.layer.dv, [0, 0])
    assert params.decays_clipped == 0
    # tau_syn huge -> beta -> 1: 4095 - 4096 = -1 is not representable: clipped to 0, and counted
    params = device_params(LIFLayer("y", 1, 20.0, 1e9), (), 1.0, 2.0 ** -16, {})
    assert params.layer.du[0] == 0 and params.decays_clipped == 1


def test_delay_above_target_maximum_is_an_error():
    spec = make_network()
    conn = spec.connection("input->hidden")
    delayed = Connection(conn.source, conn.target, conn.weight, np.full(conn.weight.shape, 64.0), 70)
    with pytest.raises(ValueError, match=rf"exceeds the target's maximum of 63; train with network.max_delay_ms "
                                         rf"<= {63 * spec.dt_ms:g} "):
        quantise(spec.replace_connection(delayed))
    # a network trained within the target's range (the trainer clamps delays at max_delay_steps = 63) deploys
    in_range = Connection(conn.source, conn.target, conn.weight, np.full(conn.weight.shape, 63.0), 63)
    fixed, _ = quantise(spec.replace_connection(in_range))
    assert fixed.connections[0].max_delay == 63


def test_fixed_point_file_round_trip(tmp_path, quantised):
    _, _, fp, _ = quantised
    save_fixed_point(tmp_path / "fp.npz", fp)
    assert load_fixed_point(tmp_path / "fp.npz") == fp


@pytest.mark.parametrize("content", [b"not a zip", None])
def test_bad_fixed_point_file(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, something=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)) as err:
        load_fixed_point(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not found"):
        load_fixed_point(tmp_path / "missing.npz")


@pytest.mark.parametrize("build, message", [
    (lambda: FixedConnection("a", "b", np.array([[3]]), 0, "mixed", np.array([[0]])), "steps of 2"),
    (lambda: FixedConnection("a", "b", np.array([[2]]), 9, "mixed", np.array([[0]])), "weight_exp"),
    (lambda: FixedConnection("a", "b", np.array([[2]]), 0, "mixed", np.array([[64]])), "delay"),
    (lambda: FixedLayer("h", "lif", np.array([4096]), np.array([0]), 10, 1.0), "du"),
    (lambda: FixedLayer("h", "lif", np.array([0]), np.array([0]), VTH_MAX + 1, 1.0), "vth"),
])
def test_fixed_point_validation(build, message):
    with pytest.raises(ValueError, match=message):
        build()
