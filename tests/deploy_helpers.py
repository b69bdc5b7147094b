"""Small random networks and inputs for the deployment tests (quantise, emulator, NIR, Lava)."""

import numpy as np

from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec


def make_network(seed=0, n_in=5, n_hidden=30, n_out=3, n_steps=60, recurrent=True, max_delay=0,
                 per_neuron_taus=False, readout="sum_exp"):
    """5 -> 30 (recurrent) -> 3 network whose hidden neurons fire several times on `make_data` inputs.
    W [pre, post] ~ N(0.5, 0.3) input, N(0, 0.05) recurrent, N(0, 0.3) output; delays U(0, max_delay)."""
    rng = np.random.default_rng(seed)

    def taus(n, base):
        return base * rng.uniform(0.7, 1.3, n) if per_neuron_taus else base

    def conn(src, tgt, w, delayed=True):
        if max_delay and delayed:
            return Connection(src, tgt, w, rng.uniform(0, max_delay, w.shape), max_delay)
        return Connection(src, tgt, w)

    conns = [conn("input", "hidden", rng.normal(0.5, 0.3, (n_in, n_hidden)))]
    if recurrent:
        conns.append(conn("hidden", "hidden", rng.normal(0.0, 0.05, (n_hidden, n_hidden))))
    conns.append(conn("hidden", "output", rng.normal(0.0, 0.3, (n_hidden, n_out)), delayed=False))
    layers = (InputLayer("input", n_in), LIFLayer("hidden", n_hidden, taus(n_hidden, 20.0), taus(n_hidden, 5.0)),
              LILayer("output", n_out, taus(n_out, 20.0), taus(n_out, 5.0)))
    return NetworkSpec(1.0, n_steps, layers, tuple(conns), readout)


def make_data(seed=0, n_samples=20, n_steps=60, n_in=5, rate=0.1):
    """Random input spikes (probability `rate` per channel and step)."""
    rng = np.random.default_rng(seed + 1000)
    rasters = rng.random((n_samples, n_steps, n_in)) < rate
    return SpikeData.from_dense(rasters, rng.integers(0, 3, n_samples))


def quantise_calibrated(spec, data, percentile=99.0):
    """What the pipeline does: bound the float network's state on `data`, quantise, add the headroom report."""
    from evprop.fixed_point.quantise import add_headroom, quantise
    from evprop.fixed_point.emulator import emulate
    from evprop.fixed_point.calibrate import state_bounds
    fp, report = quantise(spec, state_bounds(spec, data), percentile)
    add_headroom(report, fp, emulate(fp, data, record_hidden=False))
    return fp, report


def float_run(spec, data):
    """The training engine's float forward pass: (hidden spikes bool [B, T, n], output voltages [B, T, n_out])."""
    from evprop.train.compiled import CompiledNetwork
    from evprop.train.engine import forward
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=1000)
    return fwd.spike_raster(net.layer_slices["hidden"]), fwd.v_out


def two_hidden_with_skip():
    """in -> h1 (delays) -> h2 (recurrent, delays) -> out, plus a skip in -> out; per-neuron taus, dt 0.5 ms."""
    rng = np.random.default_rng(5)
    layers = (InputLayer("in", 4), LIFLayer("h1", 6, rng.uniform(10, 30, 6), 5.0, threshold=1.5),
              LIFLayer("h2", 5, 20.0, rng.uniform(2, 8, 5)), LILayer("out", 2, 15.0, 4.0))
    conns = (Connection("in", "h1", rng.normal(1.2, 0.3, (4, 6)), rng.uniform(0, 3, (4, 6)), 3),
             Connection("h1", "h2", rng.normal(1.0, 0.3, (6, 5))),
             Connection("h2", "h2", rng.normal(0, 0.1, (5, 5)), rng.uniform(0, 2, (5, 5)), 2),
             Connection("in", "out", rng.normal(0, 0.2, (4, 2))),
             Connection("h2", "out", rng.normal(0, 0.3, (5, 2))))
    return NetworkSpec(0.5, 80, layers, conns, "max")


def network_quantising_to(fp, dt_ms=1.0):
    """The float NetworkSpec whose quantisation at fp's scales (v_lsb, weight_exp) is exactly `fp`: the inverse of
    evprop.fixed_point.quantise.device_params (beta = (4095 - du) / 4096, alpha = (4096 - dv) / 4096,
    g w = W_L 2**(weight_exp + 6) v_lsb, theta = vth 64 v_lsb). Needs du < 4095 and dv > 0 (finite taus)."""
    from evprop.model.spec import discretise
    layers, g = [InputLayer(fp.input_name, fp.input_size)], {}
    for layer in fp.layers:
        tau_syn = -dt_ms / np.log((4095 - layer.du) / 4096)
        tau_mem = -dt_ms / np.log((4096 - layer.dv) / 4096)
        g[layer.name] = discretise(tau_mem, tau_syn, dt_ms)[2]
        if layer.kind == "lif":
            layers.append(LIFLayer(layer.name, layer.size, tau_mem, tau_syn, layer.vth * 64 * layer.v_lsb))
        else:
            layers.append(LILayer(layer.name, layer.size, tau_mem, tau_syn))
    conns = []
    for conn in fp.connections:
        unit = fp.layer(conn.target).v_lsb * 2.0 ** (conn.weight_exp + 6)
        conns.append(Connection(conn.source, conn.target, conn.weight.T * unit / g[conn.target][None, :],
                                conn.delay.T.astype(float), int(conn.delay.max(initial=0))))
    return NetworkSpec(dt_ms=dt_ms, n_steps=fp.n_steps, layers=tuple(layers), connections=tuple(conns),
                       readout=fp.readout)


# ---- edited NIR files (issue 13: both passed `evprop verify` bit-exact before the standard fields were checked) ----

def zero_standard_weights(path):
    """Set every Linear node's standard `weight` to zero, leaving evprop's metadata integers as they were."""
    import h5py
    with h5py.File(path, "r+") as f:
        for name, group in f["node/nodes"].items():
            if group["type"][()].decode() == "Linear":
                group["weight"][...] = 0.0


def add_recurrent_path(path, layer="hidden", factor=50.0, how="copy"):
    """Add a path from `layer` back to itself carrying `factor` x its recurrent weights: how='copy' a Linear with
    the recurrent branch's metadata copied, 'plain' a bare Linear, 'scale' a Scale node into the existing branch."""
    import nir
    graph = nir.read(str(path))
    branch = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Linear)
                  and str(n.metadata.get("connection")) == f"{layer}->{layer}")
    node = graph.nodes[branch]
    edges = list(graph.edges)
    if how == "scale":
        graph.nodes[f"{layer}.x{factor:g}"] = nir.Scale(scale=np.full(node.weight.shape[1], factor))
        edges += [(layer, f"{layer}.x{factor:g}"), (f"{layer}.x{factor:g}", branch)]
    else:
        meta = dict(node.metadata) if how == "copy" else {}
        graph.nodes[f"{layer}.x{factor:g}"] = nir.Linear(weight=factor * np.asarray(node.weight), metadata=meta)
        edges += [(layer, f"{layer}.x{factor:g}"), (f"{layer}.x{factor:g}", layer)]
    nir.write(str(path), nir.NIRGraph(nodes=graph.nodes, edges=edges, metadata=graph.metadata))
