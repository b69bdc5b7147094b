"""RingDelayDense against Lava 0.10's own DelayDense (fixed_pt): every message of every time step identical.
Lava runs in a child process with a hard timeout (it hangs instead of raising when a process model fails)."""

import numpy as np
import pytest

TIMEOUT_S = 120.0

pytestmark = pytest.mark.usefixtures("lava")

CASES = [  # (seed, n_in, n_out, n_steps, max delay, weight_exp, sign_mode, input rate)
    (0, 12, 7, 40, 8, 0, "mixed", 0.3),
    (1, 30, 10, 50, 63, -3, "mixed", 0.2),          # delays up to Loihi's 63, floor of negative sums
    (2, 20, 5, 40, 17, 7, "excitatory", 0.4),       # large messages (beyond 16 bits)
    (3, 16, 9, 40, 5, 2, "inhibitory", 0.5),
]


def random_case(seed, n_in, n_out, n_steps, max_delay, sign_mode, rate):
    rng = np.random.default_rng(seed)
    if sign_mode == "mixed":
        weights = rng.integers(-256, 256, (n_out, n_in))      # odd and out-of-range values: Lava clips/truncates
    elif sign_mode == "excitatory":
        weights = rng.integers(0, 300, (n_out, n_in))
    else:
        weights = -rng.integers(0, 300, (n_out, n_in))
    weights[rng.random(weights.shape) < 0.2] = 0
    delays = rng.integers(0, max_delay + 1, (n_out, n_in))
    delays[0, 0] = max_delay
    raster = rng.random((n_steps, n_in)) < rate
    return weights, delays, raster


@pytest.mark.slow
@pytest.mark.parametrize("seed,n_in,n_out,n_steps,max_delay,weight_exp,sign_mode,rate", CASES)
def test_every_message_equals_lava_delay_dense(seed, n_in, n_out, n_steps, max_delay, weight_exp, sign_mode, rate):
    from evprop.hw_sim.lava_procs.delay_check import compare_connections      # imports Lava
    weights, delays, raster = random_case(seed, n_in, n_out, n_steps, max_delay, sign_mode, rate)
    out = compare_connections(weights, delays, raster, weight_exp, sign_mode, timeout_s=TIMEOUT_S)
    lava, ring = out["lava"]["messages"], out["ring"]["messages"]
    assert lava.shape == (n_steps + max_delay + 2, n_out)
    np.testing.assert_array_equal(ring, lava)
    assert np.count_nonzero(lava) > lava.size // 4                  # non-trivial traffic


@pytest.mark.slow
def test_arrival_step_is_emission_plus_one_plus_delay():
    from evprop.hw_sim.lava_procs.delay_check import compare_connections      # imports Lava
    weights = np.array([[10, 0], [0, 20]])
    delays = np.array([[0, 0], [0, 5]])
    raster = np.zeros((4, 2), bool)
    raster[1, 0] = raster[1, 1] = True                            # both spike in step index 1
    out = compare_connections(weights, delays, raster, 0, "excitatory", kinds=("ring",), timeout_s=TIMEOUT_S)
    messages = out["ring"]["messages"]
    assert np.flatnonzero(messages[:, 0]).tolist() == [2] and messages[2, 0] == 10
    assert np.flatnonzero(messages[:, 1]).tolist() == [7] and messages[7, 1] == 20


def test_invalid_delays_raise_in_the_parent():
    from evprop.hw_sim.lava_procs.delay_dense import RingDelayDense      # imports Lava
    weights = np.ones((2, 3), int)
    with pytest.raises(ValueError, match=r"delays must lie in \[0, 63\].*got \[0, 64\]"):
        RingDelayDense(weights=weights, delays=np.array([[0, 1, 64], [0, 0, 0]]))
    with pytest.raises(ValueError, match="delays must be integers"):
        RingDelayDense(weights=weights, delays=np.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="max_delay 2 must lie"):
        RingDelayDense(weights=weights, delays=np.full((2, 3), 3), max_delay=2)


@pytest.mark.slow
def test_lava_sim_with_long_delays_matches_emulator(tmp_path):
    """lava_sim builds RingDelayDense for delayed connections: still bit-exact with the emulator (delays to 40)."""
    from deploy_helpers import make_data, make_network, quantise_calibrated
    from evprop.export.nir import export_nir
    from evprop.fixed_point.emulator import emulate
    from evprop.hw_sim.lava_sim import run_lava
    from evprop.hw_sim.verify import compare

    spec = make_network(seed=4, max_delay=40, n_steps=80)
    data = make_data(seed=4, n_samples=4, n_steps=80)
    fp, _ = quantise_calibrated(spec, data)
    assert fp.connections[0].max_delay > 30
    export_nir(tmp_path / "net.nir", spec, fp)
    emu = emulate(fp, data)
    result = compare(emu, run_lava(tmp_path / "net.nir", data, timeout_s=TIMEOUT_S))
    assert result["bit_exact"], result["per_sample"]
    assert emu.hidden_spikes["hidden"].sum() > 50                        # non-trivial: hidden neurons fire
