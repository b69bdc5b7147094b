"""Lava 0.10 fixed_pt, built from the NIR file, against the emulator: bit for bit. Lava runs in a child process
with a hard timeout (it hangs instead of raising when a process model fails)."""

import numpy as np
import pytest

from deploy_helpers import make_data, make_network, network_quantising_to, quantise_calibrated
from evprop.export.nir import export_nir
from evprop.fixed_point.quantise import quantise, quantise_at
from evprop.fixed_point.spec import FixedConnection, FixedLayer, FixedPointSpec
from evprop.fixed_point.emulator import EmulatorResult, emulate
from evprop.hw_sim.lava_sim import LavaResult, run_lava
from evprop.hw_sim.verify import compare

TIMEOUT_S = 240.0

pytestmark = pytest.mark.usefixtures("lava")


def assert_bit_exact(fp, data, tmp_path, spec):
    export_nir(tmp_path / "net.nir", spec, fp)
    emu = emulate(fp, data)
    lava = run_lava(tmp_path / "net.nir", data, timeout_s=TIMEOUT_S)
    result = compare(emu, lava)
    assert result["n_samples"] == len(data)
    assert result["bit_exact"], [p for p in result["per_sample"] if not p["spikes_identical"]][:3]
    assert result["spikes_identical_fraction"] == 1.0 and result["outputs_identical_fraction"] == 1.0
    return emu, lava


@pytest.mark.slow
def test_lava_matches_emulator_bit_for_bit(tmp_path):
    spec = make_network()                         # 5 inputs, 30 recurrent hidden, 3 outputs
    data = make_data(n_samples=20, n_steps=60)
    fp, _ = quantise_calibrated(spec, data)
    emu, lava = assert_bit_exact(fp, data, tmp_path, spec)
    assert lava.hidden_spikes["hidden"].sum() > 20 * 30          # non-trivial: hidden neurons fire
    assert np.abs(lava.v_out).max() > 2 ** 14
    np.testing.assert_array_equal(spec.scores(lava.v_out_float), spec.scores(emu.v_out_float))


@pytest.mark.slow
def test_lava_matches_emulator_with_delays_and_per_neuron_decays(tmp_path):
    spec = make_network(seed=2, max_delay=5, per_neuron_taus=True)
    data = make_data(seed=2, n_samples=8, n_steps=60)
    fp, _ = quantise_calibrated(spec, data)
    assert fp.connections[0].max_delay == 5 and len(np.unique(fp.layer("hidden").du)) > 1
    assert_bit_exact(fp, data, tmp_path, spec)


@pytest.mark.slow
def test_lava_overflow_behaviour_matches_emulator(tmp_path):
    """Extreme integers: u wraps, v saturates, messages exceed 16 bits, a negative weight_exp floors."""
    rng = np.random.default_rng(3)
    data = make_data(n_samples=6, n_steps=30, n_in=40, rate=0.3)
    # du < 4095 and dv > 0: the float network the file must hold has finite taus
    layers = (FixedLayer("hidden", "lif", rng.integers(0, 4095, 20), rng.integers(1, 4096, 20), 20000, 1e-6),
              FixedLayer("output", "li", rng.integers(0, 4095, 3), rng.integers(1, 300, 3), 131071, 1e-6))
    conns = (FixedConnection("input", "hidden", 2 * rng.integers(-128, 128, (20, 40)), 7, "mixed",
                             np.zeros((20, 40), int)),
             FixedConnection("hidden", "hidden", 2 * rng.integers(-128, 128, (20, 20)), 5, "mixed",
                             np.zeros((20, 20), int)),
             FixedConnection("hidden", "output", rng.integers(0, 256, (3, 20)), -3, "excitatory",
                             np.zeros((3, 20), int)))
    fp = FixedPointSpec(1.0, 30, "input", 40, layers, conns)
    spec = network_quantising_to(fp)
    assert quantise_at(spec, {"hidden": 1e-6, "output": 1e-6}, {c.name: c.weight_exp for c in conns}) == fp
    emu, _ = assert_bit_exact(fp, data, tmp_path, spec)
    assert emu.u_wraps["hidden"].sum() > 0 and emu.v_saturations["hidden"].sum() > 0
    assert emu.message_overflows["hidden"].sum() > 0


def test_timeout_kills_the_child_and_names_the_limit(tmp_path):
    spec = make_network()
    fp, _ = quantise(spec)
    export_nir(tmp_path / "net.nir", spec, fp)
    with pytest.raises(TimeoutError, match="hard timeout of 0.2 s"):
        run_lava(tmp_path / "net.nir", make_data(n_samples=2), timeout_s=0.2)


def test_nir_without_fixed_point_is_refused(tmp_path):
    spec = make_network()
    export_nir(tmp_path / "float.nir", spec)
    with pytest.raises(ValueError, match="float.nir: NIR graph holds no fixed-point integers"):
        run_lava(tmp_path / "float.nir", make_data(n_samples=1), timeout_s=TIMEOUT_S)


def fake(spikes, v):
    return LavaResult({"hidden": spikes}, v, v * 1.0, 0.0, 0.0)


def test_compare_finds_single_differences():
    rng = np.random.default_rng(0)
    spikes = rng.random((4, 10, 6)) < 0.2
    v = rng.integers(-100, 100, (4, 10, 3)).astype(np.int32)
    emu = EmulatorResult({"hidden": spikes}, v, v * 1.0, {}, np.zeros(4), np.zeros(4), np.zeros(4), {}, {}, {}, {}, {})
    assert compare(emu, fake(spikes.copy(), v.copy()))["bit_exact"]
    other_spikes, other_v = spikes.copy(), v.copy()
    other_spikes[1, 7, 2] ^= True
    other_v[3, 0, 0] += 1
    result = compare(emu, fake(other_spikes, other_v))
    assert not result["bit_exact"]
    assert result["spikes_identical_fraction"] == 0.75 and result["outputs_identical_fraction"] == 0.75
    assert result["per_sample"][1]["first_spike_mismatch_step"] == 7
    assert result["per_sample"][3]["max_abs_v_difference"] == 1
    assert compare(emu, fake(spikes[:2], v[:2]))["n_samples"] == 2      # Lava ran a subset
