"""Writes tests/data/mlgenn/checkpoint/: network B of tiny_cases.json saved the way mlGeNN 2.x saves a trained network.

What mlGeNN does (genn-team/ml_genn, read for this file):
- the `Checkpoint` callback calls `compiled_network.save((epoch,), serialiser)` at the end of an epoch;
- `CompiledNetwork.save(keys, serialiser)` pulls each checkpointed connection variable from the device and calls
  `serialiser.serialise(keys + (connection, var), genn_var.values)`; the EventProp compiler checkpoints the weight
  `g` of every trained connection and, for connections with learned delays, the delay `d`;
- a connection is named `Conn_<source name>_<target name>`; populations created without a name are named
  `Pop0`, `Pop1`, ... in creation order;
- the `Numpy` serialiser writes `np.save(os.path.join(path, "-".join(str(k) for k in keys) + ".npy"), data)`;
- `genn_var.values` of a DENSE synapse variable is a copy of GeNN's flat array: n_pre * n_post values, row-major
  [pre][post], in the model's precision (float32 for mlGeNN's default "float"); delays are float ("scalar").

Run from the repository root: python tests/data/mlgenn/make_checkpoint.py (it rewrites the .npy files only).
"""

import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EPOCH = 49
CONNECTIONS = {"W_ih": ("Conn_Pop0_Pop1", "D_ih"), "W_hh": ("Conn_Pop1_Pop1", "D_hh"), "W_ho": ("Conn_Pop1_Pop2", None)}


def serialise(path: Path, keys: tuple, data: np.ndarray) -> None:
    """mlGeNN's Numpy serialiser."""
    np.save(os.path.join(path, "-".join(str(k) for k in keys) + ".npy"), data)


def main() -> None:
    network = json.loads((HERE / "tiny_cases.json").read_text())["B_rec_delay"]["network"]
    out = HERE / "checkpoint"
    out.mkdir(exist_ok=True)
    for weight_key, (connection, delay_key) in CONNECTIONS.items():
        serialise(out, (EPOCH, connection, "g"), np.asarray(network[weight_key], np.float32).ravel())
        if delay_key:
            serialise(out, (EPOCH, connection, "d"), np.asarray(network[delay_key], np.float32).ravel())


if __name__ == "__main__":
    main()
