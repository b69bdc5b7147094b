"""FixedPointSpec -> NetX HDF5, the network format of lava-dl (`lava.lib.dl.netx.hdf5.Network`), through which
Loihi 2's toolchain loads networks.

What netx 0.6.0 reads (lava-dl tag v0.6.0, netx/hdf5.py and netx/utils.py; unchanged up to the archived HEAD):

    /layer/0/type = "input", shape = [n_in]                 input spikes go straight into layer 1's synapses
    /layer/i/type = "dense" | "dense_rec", shape = [n]      one layer per population, in sequence (a chain)
             weight [n, n_prev]                             integers; a_in = sum of the weights of arriving spikes
             weight_rec [n, n]                              dense_rec only; scaled together with `weight`
             delay [n, n_prev]                              optional; a spike in step s arrives in s + 1 + delay
             neuron/type = "CUBA", iDecay, vDecay, vThMant  Lava LIF with du = iDecay - 1, dv = vDecay, vth

netx turns the integer weights into Lava's 8-bit mantissa and exponent itself (`optimize_weight_bits`), so the
weights Lava adds are exactly the file's when they lie in the ranges of `weight_problem`, and the mapping from
evprop's integers (evprop.fixed_point.spec) is

    weight   = W_L * 2**weight_exp          (must be an integer: NetX has no exponent field)
    iDecay   = du + 1,  vDecay = dv,  vThMant = vth   (the LI readout is a LIF with vth = 131071)

`NETX_FACTS` lists what the exporter therefore refuses (netx 0.6.0 would silently compute something else); the
tests pin each defect against the installed lava-dl so that a change there shows up. The file also carries
evprop's own attributes (`evprop_*`, ignored by netx): dt, steps, readout, layer names and the readout's v_lsb.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evprop.fixed_point.spec import FixedPointSpec
from evprop.model.io import atomic_write

NETX_FORMAT = "evprop-netx"
NETX_VERSION = 1
NETX_MAX_DELAY = 62                 # netx builds DelayDense(max_delay=62) and clamps larger delays with a warning
NEURON_TYPE = "CUBA"                # netx: CUBA -> Lava LIF (LIFReset when Network(reset_interval=...) is given)
TYPE_DTYPE = "S10"                  # netx reads `type` as a byte string
MIXED_RANGE = (-256, 254)           # mixed-sign matrices: even integers here, or any integer in ODD_RANGE
ODD_RANGE = (-128, 127)             # (beyond it netx would ask Lava for 9-bit weights)
EXCITATORY_MAX = 255                # matrices without a negative entry: integers in [0, 255]

# What netx 0.6.0 does with what it cannot hold (lava-dl v0.6.0 netx/hdf5.py, netx/utils.py, blocks/process.py);
# the exporter never writes any of it. Pinned by tests/test_netx.py.
NETX_FACTS = {
    "recurrent_delays": "a dense_rec layer with delays gets the feed-forward delays on its recurrent synapse, "
                        "never reads delay_rec and drops the weight exponent",
    "excitatory_over_255": "all-positive weights above 255 become 0",
    "no_positive_weight": "a matrix without a positive weight is mis-scaled (all-negative with a zero: halved)",
    "float_weights": "float weights are truncated toward zero",
    "mixed_over_254": "mixed-sign weights above 254 are clipped, with only a print",
    "delay_over_62": "delays above 62 are clamped, with only a warning",
}


class NetxError(ValueError):
    """A network NetX cannot hold; the message is one line naming the layer or connection and the reason."""


def weight_problem(weight: np.ndarray) -> str | None:
    """Why netx 0.6.0 + Lava would not add exactly these integer weights (the matrix netx scales at once: a
    dense_rec layer's [weight | weight_rec]), or None. Exact: a matrix with a positive entry whose entries are
    integers in [0, 255] (no negative entry), even integers in [-256, 254], or integers in [-128, 127]."""
    weight = np.asarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(weight)) or np.any(weight != np.rint(weight)):
        return f"non-integer weights ({NETX_FACTS['float_weights']})"
    lo, hi = (weight.min(), weight.max()) if weight.size else (0, 0)
    if hi <= 0:
        return f"no positive weight ({NETX_FACTS['no_positive_weight']}; all zero: netx fails to load)"
    if lo >= 0:
        return None if hi <= EXCITATORY_MAX else \
            f"all-positive weights up to {hi:g} > {EXCITATORY_MAX} ({NETX_FACTS['excitatory_over_255']})"
    if lo < MIXED_RANGE[0] or hi > MIXED_RANGE[1]:
        return (f"mixed-sign weights span [{lo:g}, {hi:g}], outside [{MIXED_RANGE[0]}, {MIXED_RANGE[1]}] "
                f"({NETX_FACTS['mixed_over_254']})")
    odd = weight[weight % 2 != 0]
    if odd.size and (lo < ODD_RANGE[0] or hi > ODD_RANGE[1]):
        return (f"mixed-sign weights span [{lo:g}, {hi:g}] with odd values: only even values fit 8 bits beyond "
                f"[{ODD_RANGE[0]}, {ODD_RANGE[1]}]")
    return None


def netx_weight(conn) -> np.ndarray:
    """The integer NetX weights [post, pre] of a FixedConnection: W_L * 2**weight_exp, exactly."""
    weight = conn.weight.astype(np.int64)
    if conn.weight_exp >= 0:
        return weight << conn.weight_exp
    step = 1 << -conn.weight_exp
    if np.any(weight % step):
        raise NetxError(f"NetX export: connection '{conn.name}': weights x 2^{conn.weight_exp} are not integers "
                        f"(NetX has no weight exponent; {NETX_FACTS['float_weights']}); quantise with "
                        f"quantise.profile = \"netx\"")
    return weight >> -conn.weight_exp


def netx_layers(fp: FixedPointSpec) -> list:
    """The datasets of /layer/1.. for `fp` ({'type', 'shape', 'weight', ['weight_rec'], ['delay'], 'neuron'}),
    after every check; NetxError names the first thing NetX cannot hold."""
    chain = _chain(fp)
    layers = []
    for layer, (ff, recurrent) in zip(fp.layers, chain):
        incoming = fp.incoming(layer.name)
        for conn in incoming:
            if conn.max_delay > NETX_MAX_DELAY:
                raise NetxError(f"NetX export: connection '{conn.name}': delay {conn.max_delay} steps exceeds "
                                f"NetX's {NETX_MAX_DELAY} ({NETX_FACTS['delay_over_62']})")
        if recurrent and any(c.max_delay > 0 for c in incoming):
            raise NetxError(f"NetX export: layer '{layer.name}' is recurrent and has delays (netx 0.6.0: "
                            f"{NETX_FACTS['recurrent_delays']})")
        entry = {"type": "dense_rec" if recurrent else "dense", "shape": np.array([layer.size], np.int32),
                 "weight": netx_weight(ff)}
        if recurrent:
            entry["weight_rec"] = netx_weight(recurrent[0])
        scaled_together = np.hstack([entry["weight"]] + ([entry["weight_rec"]] if recurrent else []))
        problem = weight_problem(scaled_together)
        if problem:
            raise NetxError(f"NetX export: layer '{layer.name}' ({', '.join(c.name for c in incoming)}): {problem}; "
                            f"quantise with quantise.profile = \"netx\"")
        if ff.max_delay > 0:
            entry["delay"] = ff.delay.astype(np.int32)
        entry["neuron"] = {"type": NEURON_TYPE, "iDecay": _per_neuron(layer.du.astype(np.int32) + 1),
                           "vDecay": _per_neuron(layer.dv.astype(np.int32)), "vThMant": np.int32(layer.vth)}
        entry["weight"] = entry["weight"].astype(np.int32)
        if recurrent:
            entry["weight_rec"] = entry["weight_rec"].astype(np.int32)
        layers.append(entry)
    return layers


def _chain(fp: FixedPointSpec) -> list:
    """[(feed-forward connection, [recurrent connection] or [])] per layer; NetxError unless every layer is fed by
    exactly the one before it (the input for the first) and optionally by itself."""
    chain, previous = [], fp.input_name
    for layer in fp.layers:
        incoming = fp.incoming(layer.name)
        forward = [c for c in incoming if c.source == previous]
        recurrent = [c for c in incoming if c.source == layer.name]
        if len(forward) != 1 or len(forward) + len(recurrent) != len(incoming):
            raise NetxError(f"NetX export: the graph is not a chain: layer '{layer.name}' must be fed by exactly "
                            f"'{previous}' (and optionally itself), got {[c.name for c in incoming]}")
        chain.append((forward[0], recurrent))
        previous = layer.name
    return chain


def _per_neuron(values: np.ndarray) -> np.ndarray:
    """One value when the population shares it (what Lava's LIF declares), else one per neuron."""
    return np.int32(values[0]) if np.all(values == values[0]) else values


def export_netx(path, fp: FixedPointSpec) -> Path:
    """Write `fp` as a NetX HDF5 file (atomic: a refused network or a failed write leaves `path` as it was)."""
    path = Path(path)
    layers = netx_layers(fp)                          # every refusal happens before anything is written
    atomic_write(path, lambda handle: _write_netx(handle, fp, layers))
    return path


def _write_netx(handle, fp: FixedPointSpec, layers: list) -> None:
    """The NetX layout of `fp` (its `netx_layers`) into the open binary file `handle`."""
    import h5py

    with h5py.File(handle, "w") as f:
        f.attrs.update({"evprop_format": NETX_FORMAT, "evprop_version": NETX_VERSION, "evprop_dt_ms": fp.dt_ms,
                        "evprop_n_steps": fp.n_steps, "evprop_readout": fp.readout,
                        "evprop_layers": json.dumps([layer.name for layer in fp.layers]),
                        "evprop_output_v_lsb": fp.output.v_lsb})
        _write_string(f, "layer/0/type", "input")
        f["layer/0/shape"] = np.array([fp.input_size], np.int32)
        for i, entry in enumerate(layers, start=1):
            group = f.create_group(f"layer/{i}")
            _write_string(group, "type", entry["type"])
            for key in ("shape", "weight", "weight_rec", "delay"):
                if key in entry:
                    group[key] = entry[key]
            _write_string(group, "neuron/type", entry["neuron"]["type"])
            for key in ("iDecay", "vDecay", "vThMant"):
                group[f"neuron/{key}"] = entry["neuron"][key]


def _write_string(group, key: str, value: str) -> None:
    group[key] = np.array([value.encode("ascii")], dtype=TYPE_DTYPE)


def read_netx_header(path) -> dict:
    """evprop's attributes of a NetX file written by `export_netx` (ValueError naming the path otherwise):
    {'dt_ms', 'n_steps', 'readout', 'layers' (names, in order), 'output_v_lsb', 'n_layers'}."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            n_layers = len(f["layer"]) - 1 if "layer" in f else 0
    except OSError as err:
        raise ValueError(f"{path}: not a readable NetX HDF5 file ({err})") from None
    if attrs.get("evprop_format") != NETX_FORMAT or attrs.get("evprop_version") != NETX_VERSION:
        raise ValueError(f"{path}: not a NetX file written by evprop (format {NETX_FORMAT} v{NETX_VERSION})")
    names = json.loads(attrs["evprop_layers"])
    if len(names) != n_layers:
        raise ValueError(f"{path}: {n_layers} layers, but its header names {len(names)}")
    return {"dt_ms": float(attrs["evprop_dt_ms"]), "n_steps": int(attrs["evprop_n_steps"]),
            "readout": str(attrs["evprop_readout"]), "layers": names, "n_layers": n_layers,
            "output_v_lsb": float(attrs["evprop_output_v_lsb"])}


def check_netx(path, fp: FixedPointSpec) -> None:
    """The NetX file at `path` must hold exactly what `export_netx(path, fp)` writes; otherwise a one-line
    ValueError naming the first dataset that differs."""
    import h5py

    path = Path(path)
    header = read_netx_header(path)
    names = [layer.name for layer in fp.layers]
    if header["layers"] != names or header["n_steps"] != fp.n_steps or header["output_v_lsb"] != fp.output.v_lsb:
        raise ValueError(f"{path}: its header (layers {header['layers']}, {header['n_steps']} steps) does not "
                         f"describe fixed_point.npz; export it again")
    with h5py.File(path, "r") as f:
        if f["layer/0/shape"][()].tolist() != [fp.input_size]:
            raise ValueError(f"{path}: input shape {f['layer/0/shape'][()].tolist()} differs from fixed_point.npz")
        for i, (name, entry) in enumerate(zip(names, netx_layers(fp)), start=1):
            group = f[f"layer/{i}"]
            stored = {key: group[key][()] for key in ("shape", "weight", "weight_rec", "delay") if key in group}
            stored.update({f"neuron/{key}": group[f"neuron/{key}"][()] for key in ("iDecay", "vDecay", "vThMant")})
            wanted = {key: entry[key] for key in ("shape", "weight", "weight_rec", "delay") if key in entry}
            wanted.update({f"neuron/{key}": value for key, value in entry["neuron"].items() if key != "type"})
            if group["type"][0].decode() != entry["type"]:
                raise ValueError(f"{path}: layer {i} ('{name}') type differs from fixed_point.npz; export it again")
            for key in sorted(set(stored) | set(wanted)):
                if key not in stored or key not in wanted or not np.array_equal(stored[key], wanted[key]):
                    raise ValueError(f"{path}: layer {i} ('{name}') '{key}' differs from fixed_point.npz; "
                                     f"export it again")
