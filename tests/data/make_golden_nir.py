"""Make tests/data/golden.nir and tests/data/golden_expected.npz (issue 13: a change that NIR reader and writer
make together must not pass unnoticed; tests/test_nir_golden.py).

    PYTHONPATH=. python tests/data/make_golden_nir.py        # from the repository root

Regenerate only when the NIR format changes on purpose (bump evprop.export.nir.FORMAT_VERSION) and say so in the
commit. The network and inputs are literal numbers below; the expected results are NOT read back from the file:
  - float_hidden_spikes, float_v_out: the training engine's float forward pass (evprop.train.engine.forward) of
    the network, which a NIR interpreter of the file's standard fields must reproduce (evprop.export.nir_interpreter);
  - fixed_hidden_spikes, fixed_v_out: the emulator (evprop.fixed_point.emulator) on quantise(network), which Lava
    run from the file must reproduce bit for bit.
"""

from pathlib import Path

import numpy as np

from evprop.data.spikes import SpikeData
from evprop.export.nir import export_nir
from evprop.fixed_point.emulator import emulate
from evprop.fixed_point.quantise import quantise
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import forward

HERE = Path(__file__).resolve().parent

# 3 inputs -> 4 recurrent LIF (input delays 0..2 steps, recurrent delays 0..1) -> 2 LI, dt 1 ms, 24 steps
W_IN = [[2.4, 3.1, 0.0, 2.0], [2.8, -1.0, 3.5, 2.2], [1.6, 3.0, 2.6, -0.8]]
D_IN = [[0.0, 1.2, 2.0, 0.4], [1.0, 0.0, 1.6, 2.0], [0.3, 2.0, 0.0, 1.0]]
W_REC = [[0.0, 0.2, -0.3, 0.1], [-0.2, 0.0, 0.25, 0.0], [0.3, -0.1, 0.0, -0.2], [0.1, 0.15, -0.25, 0.0]]
D_REC = [[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]
W_OUT = [[1.6, -1.1], [-0.9, 1.4], [1.2, 0.6], [-0.5, 1.0]]
# input spikes per sample: (step, channel)
INPUTS = [[(0, 0), (1, 1), (2, 2), (3, 0), (5, 1), (6, 2), (8, 0), (9, 1), (12, 2), (13, 0), (15, 1)],
          [(0, 1), (0, 2), (2, 1), (4, 2), (4, 0), (7, 1), (10, 2), (11, 0), (14, 1), (17, 2)],
          [(1, 0), (2, 0), (3, 0), (4, 1), (6, 1), (8, 2), (9, 2), (16, 0), (18, 1), (20, 2)]]
N_STEPS = 24


def golden_network() -> NetworkSpec:
    layers = (InputLayer(name="input", size=3),
              LIFLayer(name="hidden", size=4, tau_mem_ms=[20.0, 15.0, 25.0, 18.0], tau_syn_ms=[5.0, 4.0, 6.0, 3.0],
                       threshold=1.0),
              LILayer(name="output", size=2, tau_mem_ms=[20.0, 12.0], tau_syn_ms=[5.0, 2.5]))
    conns = (Connection(source="input", target="hidden", weight=W_IN, delay=D_IN, max_delay_steps=2),
             Connection(source="hidden", target="hidden", weight=W_REC, delay=D_REC, max_delay_steps=1),
             Connection(source="hidden", target="output", weight=W_OUT))
    return NetworkSpec(dt_ms=1.0, n_steps=N_STEPS, layers=layers, connections=conns, readout="sum_gaus",
                       readout_params=(0.1, 0.25, 3.0, 0.5))


def golden_inputs() -> SpikeData:
    rasters = np.zeros((len(INPUTS), N_STEPS, 3), dtype=bool)
    for i, events in enumerate(INPUTS):
        for step, channel in events:
            rasters[i, step, channel] = True
    return SpikeData.from_dense(rasters, np.array([0, 1, 0]))


def expected(spec: NetworkSpec, data: SpikeData) -> dict:
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=1000)
    emulated = emulate(quantise(spec)[0], data)
    return {"float_hidden_spikes": fwd.spike_raster(net.layer_slices["hidden"]), "float_v_out": fwd.v_out,
            "fixed_hidden_spikes": emulated.hidden_spikes["hidden"], "fixed_v_out": emulated.v_out}


def main() -> None:
    spec, data = golden_network(), golden_inputs()
    export_nir(HERE / "golden.nir", spec, quantise(spec)[0])
    results = expected(spec, data)
    np.savez(HERE / "golden_expected.npz", **results)
    print({k: (v.shape, int(v.sum()) if v.dtype == bool else float(np.abs(v).max())) for k, v in results.items()})


if __name__ == "__main__":
    main()
