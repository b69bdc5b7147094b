"""The cases of tests/data/numpy_golden.npz: what the training core computes on fixed inputs, written once under
Python 3.10 / numpy 1.26.4 (`python tests/numpy_golden.py`, from the repository root, in the Makefile's venv) and
compared by tests/test_numpy_golden.py under whatever Python and numpy run the tests (numpy 2 on Python 3.11+:
NEP 50 changed how numpy scalars promote, and the fixed-point target must stay bit-exact).

Cases
- "deploy": make_network(per-neuron taus, delays up to 12 steps), 20 samples: the quantiser's integers
  (FixedPointSpec), the emulator's v_out, hidden spikes and counters, and the float engine's forward
  voltages and EventProp gradients (float64) for a fixed random loss drive.
- "skip": two_hidden_with_skip (dt 0.5 ms, two hidden layers, a skip connection): quantiser and emulator.
- "overflow": a random FixedPointSpec with large integer weights and weight_exp up to 7, so that u wraps,
  v saturates and messages exceed 16 bits on many neuron-steps: every integer overflow path of the emulator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_helpers import make_data, make_network, quantise_calibrated, two_hidden_with_skip  # noqa: E402
from evprop.data.spikes import SpikeData  # noqa: E402
from evprop.fixed_point.emulator import emulate  # noqa: E402
from evprop.fixed_point.spec import (FixedConnection, FixedLayer, FixedPointSpec,  # noqa: E402
                                     fixed_point_to_arrays)
from evprop.train.compiled import CompiledNetwork  # noqa: E402
from evprop.train.engine import backward, forward  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "data" / "numpy_golden.npz"


def overflow_case():
    """5 -> 8 LIF (recurrent) -> 3 LI with large weights and exponents: wraps, saturations, 16-bit overflows."""
    rng = np.random.default_rng(11)
    layers = (FixedLayer("h", "lif", rng.integers(0, 4096, 8), rng.integers(0, 4096, 8), 20000, 1.0),
              FixedLayer("out", "li", rng.integers(0, 4096, 3), rng.integers(0, 4096, 3), 131071, 0.5))

    def conn(src, tgt, shape, exp, max_delay):
        weight = 2 * rng.integers(-128, 128, shape)                     # mixed: even values in [-256, 254]
        return FixedConnection(src, tgt, weight, exp, "mixed", rng.integers(0, max_delay + 1, shape))

    conns = (conn("in", "h", (8, 5), 7, 6), conn("h", "h", (8, 8), 3, 4), conn("h", "out", (3, 8), 7, 0))
    fp = FixedPointSpec(1.0, 50, "in", 5, layers, conns)
    rasters = rng.random((6, 50, 5)) < 0.3
    return fp, SpikeData.from_dense(rasters, rng.integers(0, 3, 6))


def emulator_arrays(prefix: str, fp, data) -> dict:
    result = emulate(fp, data)
    out = {f"{prefix}/v_out": result.v_out, f"{prefix}/synops": result.synops,
           f"{prefix}/active_neuron_updates": result.active_neuron_updates}
    for name, spikes in result.hidden_spikes.items():
        out[f"{prefix}/hidden/{name}"] = spikes
    for what in ("u_wraps", "v_saturations", "message_overflows", "spike_counts"):
        for name, counts in getattr(result, what).items():
            out[f"{prefix}/{what}/{name}"] = counts
    for what in ("max_abs_u", "max_abs_v"):
        for name, value in getattr(result, what).items():
            out[f"{prefix}/{what}/{name}"] = np.int64(value)
    return out


def engine_arrays(prefix: str, spec, data) -> dict:
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=1000)
    drive = np.random.default_rng(7).normal(0.0, 1.0, fwd.v_out.shape)
    grads = backward(net, data, fwd, drive)
    return {f"{prefix}/float_v_out": fwd.v_out, f"{prefix}/grad_weights": grads.weights,
            f"{prefix}/grad_delays": grads.delays, f"{prefix}/grad_tau_mem": grads.tau_mem,
            f"{prefix}/grad_tau_syn": grads.tau_syn}


def golden_arrays() -> dict:
    """Every array of the golden file, computed now."""
    arrays = {}
    spec = make_network(seed=3, max_delay=12, per_neuron_taus=True)
    data = make_data(seed=3, n_samples=20)
    fp, _ = quantise_calibrated(spec, data)
    arrays.update(fixed_point_to_arrays(fp, "deploy/fixed"))
    arrays.update(emulator_arrays("deploy", fp, data))
    arrays.update(engine_arrays("deploy", spec, data))
    spec = two_hidden_with_skip()
    data = make_data(seed=5, n_samples=10, n_steps=spec.n_steps, n_in=4, rate=0.15)
    fp, _ = quantise_calibrated(spec, data)
    arrays.update(fixed_point_to_arrays(fp, "skip/fixed"))
    arrays.update(emulator_arrays("skip", fp, data))
    fp, data = overflow_case()
    arrays.update(emulator_arrays("overflow", fp, data))
    return arrays


if __name__ == "__main__":
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        sys.exit(f"write the golden file under numpy 1.26 (the Makefile's venv), not numpy {np.__version__}")
    arrays = golden_arrays()
    arrays["origin"] = np.array(f"tests/numpy_golden.py, Python {sys.version.split()[0]}, numpy {np.__version__}")
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"{GOLDEN}: {len(arrays)} arrays, {GOLDEN.stat().st_size} bytes")
