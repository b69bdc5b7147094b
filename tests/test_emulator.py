"""Emulator: closed-form gold traces of Lava's integer arithmetic, counters, agreement with the float model."""

import time

import numpy as np
import pytest

from deploy_helpers import float_run, quantise_calibrated, make_data, make_network
from evprop.data.spikes import SpikeData
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.spec import VTH_MAX, FixedConnection, FixedLayer, FixedPointSpec
from evprop.fixed_point.emulator import emulate


def tiny(out_du, out_dv, weights, weight_exp=0, mode="excitatory", delay=None, hidden=None, out_vth=VTH_MAX):
    """Input (len(weights) channels) -> LI output neuron; optional `hidden` = (du, dv, vth, weights [n, in]) LIF.
    `weights` [in] feed the output neuron directly."""
    n_in = len(weights)
    layers = [FixedLayer("h", "lif", *(np.array(x) for x in hidden[:2]), hidden[2], 1.0) if hidden else
              FixedLayer("h", "lif", np.array([0]), np.array([0]), VTH_MAX, 1.0),
              FixedLayer("out", "li", np.array([out_du]), np.array([out_dv]), out_vth, 0.5)]
    w = np.array([weights])
    d = np.zeros_like(w) if delay is None else np.array([delay])
    conns = [FixedConnection("in", "out", w, weight_exp, mode, d)]
    if hidden:
        hw = np.array(hidden[3])
        conns.append(FixedConnection("in", "h", hw, 0, "excitatory", np.zeros_like(hw)))
    return FixedPointSpec(1.0, 20, "in", n_in, tuple(layers), tuple(conns))


def events(n_in, spikes, n_steps=20):
    """One sample with spikes [(step, channel)]."""
    steps, channels = zip(*spikes) if spikes else ((), ())
    return SpikeData.from_event_lists(n_in, n_steps, [(steps, channels)], [0])


def test_du_2047_halves_u_each_step():
    # (4095 - 2047) / 4096 = 1/2 exactly, so u halves (toward zero) every step; dv = 0: v integrates u
    result = emulate(tiny(2047, 0, [200]), events(1, [(2, 0)]))
    v = result.v_out[0, :, 0].astype(np.int64)
    u = np.diff(np.concatenate([[0], v]))
    expected_u = np.zeros(20, np.int64)
    expected_u[3:] = (200 << 6) >> np.arange(17)          # spike in step 2 arrives in step 3
    np.testing.assert_array_equal(u, expected_u)
    assert v[-1] == expected_u.sum()
    np.testing.assert_allclose(result.v_out_float, result.v_out * 0.5)


def test_dv_2048_halves_v_and_du_4095_replaces_u():
    # du = 4095: u = a_in << 6 for one step only; dv = 2048: v halves each step
    result = emulate(tiny(4095, 2048, [200]), events(1, [(2, 0)]))
    expected = np.zeros(20, np.int64)
    expected[3:] = (200 << 6) >> np.arange(17)
    np.testing.assert_array_equal(result.v_out[0, :, 0], expected)


def test_threshold_is_strict_and_reset_is_to_zero():
    # vth << 6 = 12800: weight 200 reaches it exactly (no spike), 202 exceeds it (spike, v -> 0)
    fp = tiny(4095, 4095, [0], hidden=([4095, 4095], [0, 0], 200, [[200], [202]]))
    result = emulate(fp, events(1, [(1, 0), (5, 0)]))
    spikes = result.hidden_spikes["h"][0]
    assert np.nonzero(spikes[:, 1])[0].tolist() == [2, 6]      # neuron 1 spikes on each arrival
    assert np.nonzero(spikes[:, 0])[0].tolist() == [6]         # neuron 0: 12800 is not > 12800; 25600 is
    assert result.spike_counts["h"][0] == 3 and result.spike_counts["in"][0] == 2
    # synops: 2 input spikes x 2 non-zero hidden weights (input -> out weight is 0: no synapse)
    assert result.synops[0] == 4
    assert result.neuron_updates[0] == 20 * 3


def test_u_wraps_once_and_v_saturates_like_lava():
    # 5 spikes x 254 << 7 << 6 = 10403840 > 2**23: u wraps to 10403840 - 2**24
    fp = tiny(4095, 4095, [254] * 13, weight_exp=7)
    result = emulate(fp, events(13, [(1, c) for c in range(5)]))
    assert result.v_out[0, 2, 0] == 10403840 - 2 ** 24
    assert result.u_wraps["out"][0] == 1 and result.message_overflows["out"][0] == 1
    # 13 spikes: 27049984 - 2**24 = 10272768 is still > 2**23 (Lava wraps once, not modulo); v saturates at
    # 2**23 - 1 = 8388607 > vth << 6 = 8388544, so even the LI readout "spikes" and resets to 0: counted
    result = emulate(fp, events(13, [(1, c) for c in range(13)]))
    assert result.v_out[0, 2, 0] == 0
    assert result.v_saturations["out"][0] == 1 and result.spike_counts["out"][0] == 1
    assert result.max_abs_v["out"] == 2 ** 23 - 1 and result.max_abs_u["out"] == 10272768


def test_negative_exponent_shifts_the_sum_once():
    # a_out = (sum of weights) >> 1 with floor: one spike 3 >> 1 = 1, two spikes 6 >> 1 = 3 (not 1 + 1)
    fp = tiny(4095, 4095, [3, 3], weight_exp=-1)
    one = emulate(fp, events(2, [(1, 0)]))
    two = emulate(fp, events(2, [(1, 0), (1, 1)]))
    assert one.v_out[0, 2, 0] == 1 << 6 and two.v_out[0, 2, 0] == 3 << 6


def test_delay_arrives_at_s_plus_1_plus_d():
    fp = tiny(4095, 4095, [100, 100], delay=[4, 0])
    result = emulate(fp, events(2, [(2, 0), (10, 1)]))
    expected = np.zeros(20, np.int32)
    expected[[7, 11]] = 100 << 6            # channel 0 (delay 4) spiked in step 2, channel 1 (delay 0) in step 10
    expected[[8, 12]] = (100 << 6) >> 12    # dv = 4095: v keeps 1/4096 of itself for a step
    np.testing.assert_array_equal(result.v_out[0, :, 0], expected)


def test_samples_are_independent_and_chunking_does_not_matter():
    spec = make_network()
    data = make_data(n_samples=12)
    fp, _ = quantise_calibrated(spec, data)
    whole = emulate(fp, data)
    chunked = emulate(fp, data, chunk=5)
    single = emulate(fp, data.subset([7]))
    np.testing.assert_array_equal(whole.v_out, chunked.v_out)
    np.testing.assert_array_equal(whole.hidden_spikes["hidden"], chunked.hidden_spikes["hidden"])
    np.testing.assert_array_equal(whole.v_out[7], single.v_out[0])
    assert whole.spike_counts["hidden"].sum() == whole.hidden_spikes["hidden"].sum()


def test_quantised_network_agrees_with_float_model():
    spec = make_network()
    data = make_data()
    fp, _ = quantise_calibrated(spec, data)
    emu = emulate(fp, data)
    float_spikes, float_v_out = float_run(spec, data)
    a, b = emu.hidden_spikes["hidden"], float_spikes
    assert b.sum() > 20 * 30                                       # hidden neurons fire several times
    assert (a & b).sum() / b.sum() > 0.8                           # most spikes in exactly the same step
    assert abs(int(a.sum()) - int(b.sum())) / b.sum() < 0.03
    scores_emu, scores_ref = spec.scores(emu.v_out_float), spec.scores(float_v_out)
    assert (scores_emu.argmax(1) == scores_ref.argmax(1)).mean() >= 0.85
    assert np.abs(scores_emu - scores_ref).max() < 0.1 * np.abs(scores_ref).max()


def test_yinyang_sized_test_set_runs_in_seconds():
    spec = make_network(n_in=5, n_hidden=200, n_steps=100)
    data = make_data(n_samples=1000, n_steps=100, rate=0.05)
    fp, _ = quantise(spec)
    started = time.perf_counter()
    result = emulate(fp, data)
    elapsed = time.perf_counter() - started
    assert result.v_out.shape == (1000, 100, 3) and result.hidden_spikes["hidden"].shape == (1000, 100, 200)
    assert elapsed < 15.0, f"emulating 1000 x 100 steps took {elapsed:.1f} s"


def test_wrong_input_width_is_an_error():
    with pytest.raises(ValueError, match="input channels"):
        emulate(tiny(0, 0, [1, 1]), events(3, []))
