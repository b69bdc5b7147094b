"""NetworkSpec (+ FixedPointSpec) <-> NIR 1.0.8 graph (HDF5), and back.

Graph: one `Input` (the input layer), one `CubaLIF` per hidden layer, a `CubaLI` for the output layer, an
`Output` after it, and per connection one `Linear` (weight (out, in) = our w [pre, post] transposed) per distinct
used delay d; a branch with d > 0 is followed by a `Delay` (delay d * dt [s], one value per post neuron) before
the target. Recurrent edges are plain cycles. Every node is named (`node_names`).

NIR is continuous-time with times in SECONDS (`ms_to_s`/`s_to_ms` are the one conversion). Its neuron equations

    tau_syn dI/dt = -I + w_in S,   tau_mem dv/dt = (v_leak - v) + r I,   spike if v > v_threshold, v <- v_reset

equal ours (tau_syn dI/dt = -I, I jumps by w per spike; tau_mem dV/dt = -V + I) with r = 1, v_leak = 0,
v_reset = 0, v_threshold = theta, and w_in = tau_syn [s]: for a Dirac spike train S (unit area per spike) a spike
then makes I jump by w_in / tau_syn * w = w. NIR has no time step and no discretisation rule, so graph metadata
holds dt, the discrete step (`DISCRETISATION`), the readout, and the format name/version. With a FixedPointSpec,
node metadata holds the exact target integers (du, dv, vth, v_lsb on neurons; weight_mant (out, in), weight_exp,
sign_mode on Linears), so the Lava network can be built from the file alone (evprop.hw_sim.lava_sim).
Node metadata also holds the taus in ms and the float delays, so import -> export is exact (`==`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import nir

from evprop.model.io import atomic_write
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, used_delay_steps

from ..fixed_point.spec import FixedConnection, FixedLayer, FixedPointSpec

FORMAT = "evprop-nir"
FORMAT_VERSION = 1
MS_PER_S = 1000.0
DISCRETISATION = (
    "Discrete step dt [ms] per neuron: I <- I + (sum of w of spikes arriving this step; a spike emitted in step s "
    "with delay d arrives in step s+1+d); V <- alpha*V + g*I; I <- beta*I; CubaLIF: if V >= v_threshold: spike, "
    "V <- 0 (no refractory period); CubaLI: no threshold. alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn), "
    "g = (1-alpha)*(tau_syn/dt)*(1-beta). Input spike in step s is emitted in step s.")


def ms_to_s(value_ms):
    """evprop times [ms] -> NIR times [s]."""
    return np.asarray(value_ms, dtype=np.float64) / MS_PER_S


def s_to_ms(value_s):
    """NIR times [s] -> evprop times [ms]."""
    return np.asarray(value_s, dtype=np.float64) * MS_PER_S


def node_names(spec: NetworkSpec) -> dict:
    """{'output': name of the Output node, connection name: [(delay d, Linear name, Delay name or None)]}."""
    names = {"output": f"{spec.output.name}.readout"}
    for conn in spec.connections:
        ds = np.unique(conn.delay_steps())
        if len(ds) == 1 and ds[0] == 0:
            names[conn.name] = [(0, conn.name, None)]
        else:
            names[conn.name] = [(int(d), f"{conn.name}.d{int(d)}", f"{conn.name}.d{int(d)}.delay" if d else None)
                                for d in ds]
    return names


# ---------------------------------------------------------------------------------------------------------------
# export


def export_nir(path, spec: NetworkSpec, fixed_point: FixedPointSpec | None = None) -> None:
    """Write `spec` (and the integers of `fixed_point`, if given) as a NIR graph to `path`."""
    if fixed_point is not None:
        _check_matches(spec, fixed_point)
    names = node_names(spec)
    wanted = [l.name for l in spec.layers] + [names["output"]] + [
        n for c in spec.connections for _, linear, delay in names[c.name] for n in (linear, delay) if n]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"{path}: NIR node names collide ({sorted(wanted)}); rename the layers")
    nodes = {spec.input.name: nir.Input(input_type=np.array([spec.input.size]))}
    edges = []
    for layer in spec.neuron_layers:
        nodes[layer.name] = _neuron_node(layer, None if fixed_point is None else fixed_point.layer(layer.name))
    nodes[names["output"]] = nir.Output(output_type=np.array([spec.output.size]))
    edges.append((spec.output.name, names["output"]))
    for conn in spec.connections:
        fixed = None if fixed_point is None else _fixed_conn(fixed_point, conn.name)
        for d, linear, delay in names[conn.name]:
            mask = conn.delay_steps() == d
            meta = {"connection": conn.name, "delay_steps": d, "max_delay_steps": conn.max_delay_steps,
                    "delay_float": np.where(mask, conn.delay, 0.0).T}
            if fixed is not None:
                meta.update({"weight_mant": np.where(mask.T, fixed.weight, 0).astype(np.int32),
                             "weight_exp": fixed.weight_exp, "sign_mode": fixed.sign_mode,
                             "num_weight_bits": fixed.num_weight_bits})
            nodes[linear] = nir.Linear(weight=np.where(mask, conn.weight, 0.0).T, metadata=meta)
            edges.append((conn.source, linear))
            if delay is None:
                edges.append((linear, conn.target))
            else:
                n_post = conn.weight.shape[1]
                nodes[delay] = nir.Delay(delay=np.full(n_post, ms_to_s(d * spec.dt_ms)))
                edges += [(linear, delay), (delay, conn.target)]
    layout = {"layers": [[layer.name, _kind(layer)] for layer in spec.layers],
              "connections": [[c.source, c.target] for c in spec.connections], "output_node": names["output"]}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "dt_ms": float(spec.dt_ms),
                "dt_s": float(ms_to_s(spec.dt_ms)), "time_unit": "s", "n_steps": spec.n_steps,
                "readout": spec.readout, "readout_params": json.dumps(list(spec.readout_params)),
                "discretisation": DISCRETISATION, "layout": json.dumps(layout),
                "fixed_point": fixed_point is not None}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    atomic_write(path, lambda handle: nir.write(handle, graph))     # never half a file


def _kind(layer) -> str:
    return {InputLayer: "input", LIFLayer: "lif", LILayer: "li"}[type(layer)]


def _neuron_node(layer, fixed: FixedLayer | None):
    n = layer.size
    tau_syn_s, tau_mem_s = ms_to_s(layer.tau_syn_ms), ms_to_s(layer.tau_mem_ms)
    meta = {"tau_mem_ms": np.array(layer.tau_mem_ms), "tau_syn_ms": np.array(layer.tau_syn_ms)}
    if fixed is not None:
        meta.update({"du": fixed.du.copy(), "dv": fixed.dv.copy(), "vth": fixed.vth, "v_lsb": fixed.v_lsb,
                     "kind": fixed.kind})
    # w_in = tau_syn: a Dirac spike makes I jump by w_in / tau_syn * w = w (module docstring)
    common = dict(tau_syn=tau_syn_s, tau_mem=tau_mem_s, r=np.ones(n), v_leak=np.zeros(n), w_in=tau_syn_s.copy(),
                  metadata=meta)
    if isinstance(layer, LIFLayer):
        return nir.CubaLIF(v_threshold=np.full(n, float(layer.threshold)), v_reset=np.zeros(n), **common)
    return nir.CubaLI(**common)


def _fixed_conn(fp: FixedPointSpec, name: str) -> FixedConnection:
    for conn in fp.connections:
        if conn.name == name:
            return conn
    raise ValueError(f"fixed-point network has no connection '{name}'")


def _check_matches(spec: NetworkSpec, fp: FixedPointSpec) -> None:
    if [l.name for l in spec.neuron_layers] != [l.name for l in fp.layers] \
            or sorted(c.name for c in spec.connections) != sorted(c.name for c in fp.connections):
        raise ValueError("export_nir: fixed_point does not describe the same layers/connections as spec")
    for conn in spec.connections:
        if not np.array_equal(_fixed_conn(fp, conn.name).delay, conn.delay_steps().T):
            raise ValueError(f"export_nir: fixed-point delays of '{conn.name}' differ from the spec's used delays")


# ---------------------------------------------------------------------------------------------------------------
# import


def read_graph(path) -> nir.NIRGraph:
    """nir.read with one-line ValueErrors naming the path, and a check that it is an evprop graph."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: NIR file not found")
    try:
        graph = nir.read(str(path))
    except Exception as err:       # h5py/nir raise OSError, KeyError, ValueError, TypeError, AssertionError
        raise ValueError(f"{path}: not a readable NIR graph ({type(err).__name__}: {err})") from None
    meta = getattr(graph, "metadata", None) or {}
    if meta.get("format") != FORMAT or int(meta.get("format_version", -1)) != FORMAT_VERSION:
        raise ValueError(f"{path}: NIR graph metadata format {meta.get('format')!r} version "
                         f"{meta.get('format_version')!r}, expected {FORMAT!r} version {FORMAT_VERSION}")
    return graph


def import_nir(path):
    """Read a graph written by `export_nir`. Returns (NetworkSpec, FixedPointSpec or None)."""
    graph = read_graph(path)
    try:
        return _import(graph, str(path))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: NIR graph lacks or garbles {err} (expected an evprop export)") from None
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _import(graph: nir.NIRGraph, source: str):
    meta = graph.metadata
    layout = json.loads(str(meta["layout"]))
    dt_ms = float(meta["dt_ms"])
    nodes = graph.nodes
    layers, fixed_layers = [], []
    for name, kind in layout["layers"]:
        node = nodes[name]
        expected = {"input": nir.Input, "lif": nir.CubaLIF, "li": nir.CubaLI}[kind]
        if type(node) is not expected:
            raise ValueError(f"{source}: node '{name}' is {type(node).__name__}, expected {expected.__name__}")
        if kind == "input":
            layers.append(InputLayer(name, int(np.asarray(node.input_type["input"])[0])))
            continue
        layer, fixed = _layer_from_node(name, kind, node, source)
        layers.append(layer)
        fixed_layers.append(fixed)
    conns, fixed_conns = [], []
    for src, tgt in layout["connections"]:
        conn, fixed = _connection_from_nodes(src, tgt, nodes, graph.edges, dt_ms, source)
        conns.append(conn)
        fixed_conns.append(fixed)
    spec = NetworkSpec(dt_ms, int(meta["n_steps"]), tuple(layers), tuple(conns), str(meta["readout"]),
                       tuple(json.loads(str(meta.get("readout_params", "[]")))))
    if not bool(meta["fixed_point"]):
        return spec, None
    fp = FixedPointSpec(dt_ms, spec.n_steps, spec.input.name, spec.input.size, tuple(fixed_layers),
                        tuple(fixed_conns), spec.readout)
    return spec, fp


def _layer_from_node(name: str, kind: str, node, source: str):
    m = node.metadata
    tau_mem = np.asarray(m["tau_mem_ms"], dtype=np.float64)
    tau_syn = np.asarray(m["tau_syn_ms"], dtype=np.float64)
    for field, exact, value_s in (("tau_mem", tau_mem, node.tau_mem), ("tau_syn", tau_syn, node.tau_syn)):
        if not np.allclose(s_to_ms(value_s), exact, rtol=1e-12, atol=0):
            raise ValueError(f"{source}: node '{name}' field '{field}' disagrees with its metadata "
                             f"'{field}_ms' (edited file?)")
    if not (np.all(node.r == 1) and np.all(node.v_leak == 0) and np.allclose(node.w_in, node.tau_syn, rtol=1e-12)):
        raise ValueError(f"{source}: node '{name}': evprop needs r = 1, v_leak = 0, w_in = tau_syn")
    if kind == "lif":
        thresholds = np.unique(node.v_threshold)
        if len(thresholds) != 1 or np.any(node.v_reset != 0):
            raise ValueError(f"{source}: node '{name}': evprop needs one v_threshold per layer and v_reset = 0")
        layer = LIFLayer(name, len(tau_mem), tau_mem, tau_syn, float(thresholds[0]))
    else:
        layer = LILayer(name, len(tau_mem), tau_mem, tau_syn)
    fixed = None
    if "du" in m:
        fixed = FixedLayer(name, str(m["kind"]), np.asarray(m["du"]), np.asarray(m["dv"]), int(m["vth"]),
                           float(m["v_lsb"]))
    return layer, fixed


def _connection_from_nodes(src: str, tgt: str, nodes: dict, edges: list, dt_ms: float, source: str):
    name = f"{src}->{tgt}"
    branches = [(k, n) for k, n in nodes.items() if isinstance(n, nir.Linear)
                and str(n.metadata.get("connection", "")) == name]
    if not branches:
        raise ValueError(f"{source}: no Linear node for connection '{name}'")
    weight = delay = mant = None
    fixed_info = None
    for key, node in branches:
        d = int(node.metadata["delay_steps"])
        _check_branch_edges(key, src, tgt, d, nodes, edges, dt_ms, source)
        w = np.asarray(node.weight, dtype=np.float64).T
        fd = np.asarray(node.metadata["delay_float"], dtype=np.float64).T
        weight = w if weight is None else weight + w
        delay = fd if delay is None else delay + fd
        if "weight_mant" in node.metadata:
            m = np.asarray(node.metadata["weight_mant"]).astype(np.int32)
            mant = m if mant is None else mant + m
            fixed_info = (int(node.metadata["weight_exp"]), str(node.metadata["sign_mode"]),
                          int(node.metadata["num_weight_bits"]))
    max_delay = int(branches[0][1].metadata["max_delay_steps"])
    conn = Connection(src, tgt, weight, delay, max_delay)
    if not np.array_equal(used_delay_steps(delay, max_delay), _branch_delays(branches, weight.shape)):
        raise ValueError(f"{source}: connection '{name}': float delays disagree with their branches")
    fixed = None if fixed_info is None else FixedConnection(src, tgt, mant, fixed_info[0], fixed_info[1],
                                                            conn.delay_steps().T, fixed_info[2])
    return conn, fixed


def _branch_delays(branches: list, shape: tuple) -> np.ndarray:
    out = np.zeros(shape, np.int32)
    for _, node in branches:
        d = int(node.metadata["delay_steps"])
        if d:
            out[np.asarray(node.metadata["delay_float"]).T != 0] = d
    return out


def _check_branch_edges(key: str, src: str, tgt: str, d: int, nodes: dict, edges: list, dt_ms: float,
                        source: str) -> None:
    """The Linear `key` must be fed by `src` and reach `tgt` directly (d = 0) or through a Delay of d * dt."""
    edge_set = {(a, b) for a, b in edges}
    if (src, key) not in edge_set:
        raise ValueError(f"{source}: Linear '{key}' is not fed by '{src}'")
    if d == 0:
        if (key, tgt) not in edge_set:
            raise ValueError(f"{source}: Linear '{key}' does not feed '{tgt}'")
        return
    delays = [b for a, b in edges if a == key and isinstance(nodes[b], nir.Delay) and (b, tgt) in edge_set]
    if len(delays) != 1:
        raise ValueError(f"{source}: Linear '{key}' (delay {d}) does not reach '{tgt}' through one Delay node")
    steps = s_to_ms(nodes[delays[0]].delay) / dt_ms
    if not np.allclose(steps, d, rtol=0, atol=1e-6):
        raise ValueError(f"{source}: Delay '{delays[0]}' is {steps.min()}..{steps.max()} steps, expected {d}")
