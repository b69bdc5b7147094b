"""Measure what the installed lava-dl (netx) and Lava do with NetX files; prints one JSON object.

Run as a script in its own process by tests/test_netx.py (Lava must not be imported into the pytest process):
    python tests/netx_pins.py SCRATCH_DIR
Nothing is run in Lava here: only netx's weight optimisation, Lava's weight clipping/truncation and the
processes netx builds, which is where the netx 0.6.0 defects live.
"""

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np

from evprop.export.netx import weight_problem
from evprop.hw_sim.netx_import import netx_hdf5

NEURON = {"iDecay": 100, "vDecay": 200, "vThMant": 1000}


def lava_weights(weight):
    """What netx + Lava add per arriving spike for a file matrix `weight` (netx's optimize_weight_bits, then Lava
    Dense's sign-mode detection, clip_weights, truncate_weights and exponent shift), netx's weight bits, and what
    netx printed."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        shifted, bits, exponent, _ = optimize_weight_bits(np.asarray(weight))
    mode = determine_sign_mode(shifted)
    lava = truncate_weights(clip_weights(shifted, mode, num_bits=8), mode, bits).astype(np.int64)
    return (lava << exponent if exponent > 0 else lava >> -exponent), bits, printed.getvalue()


def write_raw(path, layers, n_in):
    """A NetX file written by hand (the exporter refuses these)."""
    with h5py.File(path, "w") as f:
        f["layer/0/type"] = np.array([b"input"], "S10")
        f["layer/0/shape"] = np.array([n_in])
        for i, layer in enumerate(layers, start=1):
            for key, value in layer.items():
                if key == "neuron":
                    f[f"layer/{i}/neuron/type"] = np.array([b"CUBA"], "S10")
                    for name, v in value.items():
                        f[f"layer/{i}/neuron/{name}"] = v
                elif key == "type":
                    f[f"layer/{i}/type"] = np.array([value.encode()], "S10")
                else:
                    f[f"layer/{i}/{key}"] = value
    return str(path)


def accepted_matrices(rng):
    """Edge cases plus random matrices of every kind `weight_problem` accepts (and some it refuses)."""
    matrices = [[[254, -256, 2]], [[127, -128, 1]], [[255, 0, 3]], [[128, -128, -256, 0]], [[64, -64]], [[1, 0, 0]],
                [[2, -2, 0]], [[200, -30]], [[201, -3, 0]]]
    for _ in range(400):
        kind = int(rng.integers(3))
        shape = tuple(int(x) for x in rng.integers(1, 6, 2))
        if kind == 0:
            w = np.clip(2 * rng.integers(-128, 128, shape) << int(rng.integers(0, 3)), -256, 254)
        elif kind == 1:
            w = rng.integers(-128, 128, shape) << int(rng.integers(0, 2))
        else:
            w = rng.integers(0, 256, shape) >> int(rng.integers(0, 4))
        matrices.append(w.tolist())
    return matrices


def main(scratch: Path) -> dict:
    hdf5 = netx_hdf5()
    out = {"torch_imported": "torch" in sys.modules,
           "stand_in_files": [os.path.isfile(sys.modules[name].__file__) for name in
                              ("lava.lib.dl.slayer.neuron.rf", "lava.lib.dl.netx.sequential_modules")]}
    checked, wrong = 0, []
    for w in accepted_matrices(np.random.default_rng(0)):
        if weight_problem(np.array(w)) is None:
            effective, bits, _ = lava_weights(np.array(w))
            checked += 1
            if not np.array_equal(effective, w) or bits > 8:
                wrong.append({"weight": w, "effective": effective.tolist(), "bits": bits})
    out["accepted"] = {"checked": checked, "wrong": wrong}
    for name, w in {"excitatory_over_255": [[300, 10, 5]], "negative_with_zero": [[-128, -128, 0]],
                    "mixed_over_254": [[300, -10, 5]]}.items():
        effective, bits, printed = lava_weights(np.array(w))
        out[name] = {"effective": effective.tolist(), "printed": printed, "problem": weight_problem(np.array(w))}

    path = write_raw(scratch / "float.net", [{"type": "dense", "shape": np.array([1]),
                                              "weight": np.array([[1.7, -2.9, 3.0]]), "neuron": NEURON}], 3)
    synapse = hdf5.Network(net_config=path).layers[0].synapse
    out["float_weights"] = (synapse.proc_params["weights"] >> -synapse.proc_params["weight_exp"]).tolist()

    path = write_raw(scratch / "delay.net", [{"type": "dense", "shape": np.array([2]),
                                              "weight": np.array([[10, -4], [3, 5]]),
                                              "delay": np.array([[70, 1], [2, 62]]), "neuron": NEURON}], 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = hdf5.Network(net_config=path)
    out["delay_over_62"] = {"warnings": [str(w.message) for w in caught],
                            "delays": net.layers[0].synapse.delays.init.tolist()}

    rng = np.random.default_rng(0)
    w, w_rec = rng.integers(-100, 100, (4, 4)), rng.integers(-100, 100, (4, 4))
    delay, delay_rec = rng.integers(0, 5, (4, 4)), rng.integers(5, 9, (4, 4))
    layer = {"type": "dense_rec", "shape": np.array([4]), "weight": w, "weight_rec": w_rec, "neuron": NEURON}
    plain = hdf5.Network(net_config=write_raw(scratch / "rec.net", [layer], 4)).layers[0]
    delayed = hdf5.Network(net_config=write_raw(scratch / "rec_delay.net",
                                                [{**layer, "delay": delay, "delay_rec": delay_rec}], 4)).layers[0]
    try:
        hdf5.Network(net_config=write_raw(scratch / "rec_delay5.net",
                                          [{**layer, "weight": rng.integers(-100, 100, (4, 5)),
                                            "delay": rng.integers(0, 5, (4, 5))}], 5))
        five_inputs = "built"
    except ValueError as err:
        five_inputs = str(err)
    out["recurrent_delays"] = {
        "plain_weight_exp": plain.synapse_rec.proc_params["weight_exp"],
        "delayed_synapse_kind": type(delayed.synapse_rec).__name__,
        "delayed_rec_delays": delayed.synapse_rec.delays.init.tolist(), "file_delay": delay.tolist(),
        "file_delay_rec": delay_rec.tolist(),
        "delayed_has_weight_exp": ["weight_exp" in s.proc_params._parameters
                                   for s in (delayed.synapse, delayed.synapse_rec)],
        "delayed_rec_weights": delayed.synapse_rec.proc_params["weights"].tolist(), "file_weight_rec": w_rec.tolist(),
        "five_inputs": five_inputs}
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
