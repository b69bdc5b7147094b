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
holds dt, the discrete step (`DISCRETISATION`), the NetworkSpec's other settings (readout, readout_params, ... as
JSON under 'network') and the format name/version.

The standard fields are the network. evprop's private metadata only states what they cannot say exactly, and
`import_nir` (which the Lava builder, evprop.hw_sim.lava_sim, uses) checks it against them, so a file whose
standard fields were edited is refused, never run:
- taus in ms (`tau_mem_ms`, `tau_syn_ms`): ms_to_s of them must equal the standard `tau_*` bit for bit;
- float delays (`delay_float`): where a branch's weights are non-zero they must round to its Delay;
- with a FixedPointSpec, the scales (`v_lsb` per neuron node, `weight_exp` per Linear): the integers are derived
  from the standard fields at these scales (`evprop.fixed_point.quantise.quantise_at`, the quantiser's own
  mapping), and the integers stored beside them (du, dv, vth, kind; weight_mant, sign_mode, num_weight_bits)
  must equal the derived ones exactly.
A disagreement, a node the layout does not account for, or an edge no connection uses is a one-line ValueError
naming the node and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import nir

from evprop.model.io import atomic_write, network_from_parts, network_settings
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, first_difference

from ..fixed_point.quantise import quantise_at
from ..fixed_point.spec import FixedConnection, FixedLayer, FixedPointSpec

FORMAT = "evprop-nir"
FORMAT_VERSION = 2        # 2: standard fields authoritative, NetworkSpec settings under 'network'
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
                "dt_s": float(ms_to_s(spec.dt_ms)), "time_unit": "s", "network": json.dumps(network_settings(spec)),
                "discretisation": DISCRETISATION, "layout": json.dumps(layout),
                "fixed_point": fixed_point is not None}
    write_graph(path, nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata))


def write_graph(path, graph: nir.NIRGraph) -> None:
    """nir.write through the one atomic writer (evprop.model.io.atomic_write): never half a file."""
    atomic_write(path, lambda handle: nir.write(handle, graph))


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
    """`fp` must be what the quantiser makes of `spec` at fp's own scales: only then can a reader derive the
    integers from the file's standard fields (module docstring)."""
    if [l.name for l in spec.neuron_layers] != [l.name for l in fp.layers] \
            or sorted(c.name for c in spec.connections) != sorted(c.name for c in fp.connections):
        raise ValueError("export_nir: fixed_point does not describe the same layers/connections as spec")
    derived = quantise_at(spec, {l.name: l.v_lsb for l in fp.layers}, {c.name: c.weight_exp for c in fp.connections})
    difference = first_difference(derived, fp)
    if difference:
        raise ValueError(f"export_nir: fixed_point is not the quantisation of spec at its own scales (v_lsb, "
                         f"weight_exp): {difference} differs")


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
                         f"{meta.get('format_version')!r}, expected {FORMAT!r} version {FORMAT_VERSION} (an older "
                         f"evprop file: write it again with `evprop export RUN_DIR`)")
    return graph


def import_nir(path):
    """Read a graph written by `export_nir`. Returns (NetworkSpec, FixedPointSpec or None), both taken from the
    standard fields (the fixed-point integers derived from them at the file's scales); every check of the module
    docstring is applied, a failure is a one-line ValueError naming the path, the node and the field."""
    graph = read_graph(path)
    try:
        return _Reader(graph, str(path)).read()
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: NIR graph lacks or garbles {err} (expected an evprop export)") from None
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def check_export(path, spec: NetworkSpec, fixed_point: FixedPointSpec, spec_source: str = "the trained network",
                 fixed_source: str = "fixed_point.npz") -> None:
    """The NIR file at `path` must hold exactly `spec` and `fixed_point` (the network and integers it was exported
    from); otherwise a one-line ValueError naming the first field that differs."""
    spec_file, fixed_file = import_nir(path)
    if fixed_file is None:
        raise ValueError(f"{path}: NIR graph holds no fixed-point integers (export it with fixed_point=...)")
    for mine, theirs, source in ((spec_file, spec, spec_source), (fixed_file, fixed_point, fixed_source)):
        difference = first_difference(mine, theirs)
        if difference:
            raise ValueError(f"{path}: {difference} differs from {source} (re-run `evprop export`)")


class _Reader:
    """One pass over an evprop graph: every node and edge must be accounted for by the layout."""

    def __init__(self, graph: nir.NIRGraph, source: str):
        self.source = source
        self.nodes = graph.nodes
        self.meta = graph.metadata
        self.edges = [(str(a), str(b)) for a, b in graph.edges]          # nir.read refuses duplicates
        for edge in self.edges:
            for end in edge:
                if end not in self.nodes:
                    raise ValueError(f"{source}: edge {edge} names node '{end}', which is not in the graph")
        self.used_nodes, self.used_edges = set(), set()
        self.dt_ms = float(self.meta["dt_ms"])

    def fail(self, node: str, field: str, message: str):
        raise ValueError(f"{self.source}: node '{node}' field '{field}': {message}")

    def edge(self, a: str, b: str) -> None:
        if (a, b) not in self.edges:
            raise ValueError(f"{self.source}: edge ('{a}', '{b}') is missing")
        self.used_edges.add((a, b))

    def node(self, name: str, cls):
        if name not in self.nodes:
            raise ValueError(f"{self.source}: node '{name}' is missing")
        node = self.nodes[name]
        if type(node) is not cls:
            self.fail(name, "type", f"is {type(node).__name__}, expected {cls.__name__}")
        self.used_nodes.add(name)
        return node

    def read(self):
        meta = self.meta
        settings = json.loads(str(meta["network"]))
        if float(settings["dt_ms"]) != self.dt_ms or float(meta["dt_s"]) != float(ms_to_s(self.dt_ms)):
            raise ValueError(f"{self.source}: graph metadata 'dt_ms' {self.dt_ms}, 'dt_s' {meta['dt_s']} and "
                             f"'network' dt_ms {settings['dt_ms']} disagree")
        layout = json.loads(str(meta["layout"]))
        fixed = bool(meta["fixed_point"])
        layers, stated = [], {}
        for name, kind in layout["layers"]:
            if kind == "input":
                node = self.node(name, nir.Input)
                layers.append(InputLayer(name=name, size=int(np.prod(np.asarray(node.input_type["input"])))))
            else:
                layer, stated[name] = self._layer(name, kind, fixed)
                layers.append(layer)
        conns, branches = [], {}
        for src, tgt in layout["connections"]:
            conn, branches[f"{src}->{tgt}"] = self._connection(src, tgt, fixed)
            conns.append(conn)
        output = str(layout["output_node"])
        node = self.node(output, nir.Output)
        self.edge(layers[-1].name, output)
        if int(np.prod(np.asarray(node.output_type["output"]))) != layers[-1].size:
            self.fail(output, "output_type", f"is {node.output_type['output']}, expected [{layers[-1].size}]")
        self._everything_used()
        spec = network_from_parts(settings, layers, conns)
        if not fixed:
            return spec, None
        return spec, self._fixed_point(spec, stated, branches)

    def _everything_used(self) -> None:
        for name, node in self.nodes.items():
            if name not in self.used_nodes:
                raise ValueError(f"{self.source}: node '{name}' ({type(node).__name__}) is not part of the network "
                                 f"the layout describes (unknown node)")
        for edge in self.edges:
            if edge not in self.used_edges:
                raise ValueError(f"{self.source}: edge {edge} is not used by any connection of the layout")

    # ---- neurons ----
    def _layer(self, name: str, kind: str, fixed: bool):
        cls = {"lif": nir.CubaLIF, "li": nir.CubaLI}[kind]
        node = self.node(name, cls)
        m = node.metadata
        values = {}
        for field in ("tau_mem", "tau_syn", "r", "v_leak", "w_in") + (("v_threshold", "v_reset") if kind == "lif"
                                                                       else ()):
            value = np.asarray(getattr(node, field), dtype=np.float64)
            if value.ndim != 1 or (values and value.shape != values["tau_mem"].shape):
                self.fail(name, field, f"has shape {value.shape}, expected one value per neuron")
            values[field] = value
        taus_ms = {}
        for field in ("tau_mem", "tau_syn"):
            taus_ms[field] = np.asarray(m[f"{field}_ms"], dtype=np.float64)
            if taus_ms[field].shape != values[field].shape \
                    or not np.array_equal(ms_to_s(taus_ms[field]), values[field]):
                self.fail(name, field, f"disagrees with its metadata '{field}_ms' (edited file?)")
        for field, expected, wanted in (("r", np.ones_like(values["r"]), "1"),
                                        ("v_leak", np.zeros_like(values["r"]), "0"),
                                        ("w_in", values["tau_syn"], "tau_syn"),
                                        ("v_reset", np.zeros_like(values["r"]), "0")):
            if field in values and not np.array_equal(values[field], expected):
                self.fail(name, field, f"evprop's model needs {field} = {wanted} for every neuron")
        size = len(values["tau_mem"])
        if kind == "lif":
            thresholds = np.unique(values["v_threshold"])
            if len(thresholds) != 1:
                self.fail(name, "v_threshold", f"evprop's model needs one threshold per layer, got {thresholds}")
            layer = LIFLayer(name=name, size=size, tau_mem_ms=taus_ms["tau_mem"], tau_syn_ms=taus_ms["tau_syn"],
                             threshold=float(thresholds[0]))
        else:
            layer = LILayer(name=name, size=size, tau_mem_ms=taus_ms["tau_mem"], tau_syn_ms=taus_ms["tau_syn"])
        if fixed != ("du" in m):
            self.fail(name, "metadata", f"fixed-point integers {'present' if 'du' in m else 'missing'} although "
                      f"the graph metadata says fixed_point = {fixed}")
        return layer, (m if fixed else None)

    # ---- connections ----
    def _connection(self, src: str, tgt: str, fixed: bool):
        """Connection src -> tgt from its Linear branches (each fed by src, reaching tgt directly or through one
        Delay); returns (Connection, [(Linear name, delay d)])."""
        name = f"{src}->{tgt}"                       # Connection.name
        found = []
        for key, node in self.nodes.items():
            if type(node) is not nir.Linear or (src, key) not in self.edges:
                continue
            d, delay_node = self._branch_target(key, tgt)
            if d is None:
                continue
            m = node.metadata
            if str(m.get("connection", "")) != name:
                self.fail(key, "connection", f"metadata names connection {m.get('connection')!r}, its edges "
                          f"connect '{src}' to '{tgt}'")
            if int(m["delay_steps"]) != d:
                self.fail(key, "delay", f"metadata 'delay_steps' {int(m['delay_steps'])} but the Delay node on its "
                          f"path delays by {d} steps")
            self.node(key, nir.Linear)
            self.edge(src, key)
            if delay_node is None:
                self.edge(key, tgt)
            else:
                self.node(delay_node, nir.Delay)
                self.edge(key, delay_node)
                self.edge(delay_node, tgt)
            found.append((key, d, node))
        if not found:
            raise ValueError(f"{self.source}: no Linear node for connection '{name}'")
        weight = delay = owner = None                  # owner: index in `found` of the branch carrying each weight
        for index, (key, d, node) in enumerate(found):
            w = np.asarray(node.weight, dtype=np.float64).T          # [pre, post]
            if weight is not None and w.shape != weight.shape:
                self.fail(key, "weight", f"has shape {w.shape[::-1]}, the other branches {weight.shape[::-1]}")
            fd = np.asarray(node.metadata["delay_float"], dtype=np.float64).T
            if fd.shape != w.shape:
                self.fail(key, "delay_float", f"metadata shape {fd.shape[::-1]}, weight {w.shape[::-1]}")
            if owner is None:
                weight, delay, owner = np.zeros_like(w), np.zeros_like(w), np.full(w.shape, -1)
            carried = w != 0
            clash = carried & (owner >= 0)
            if np.any(clash):
                i, j = np.argwhere(clash)[0]
                self.fail(key, "weight", f"synapse {i} -> {j} of '{name}' already has a weight on branch "
                          f"'{found[owner[i, j]][0]}' (one synapse, one weight)")
            owner[carried] = index
            weight, delay = weight + w, delay + fd
        max_delays = {int(node.metadata["max_delay_steps"]) for _, _, node in found}
        if len(max_delays) != 1:
            self.fail(found[0][0], "max_delay_steps", f"branches of '{name}' disagree: {sorted(max_delays)}")
        try:
            conn = Connection(source=src, target=tgt, weight=weight, delay=delay, max_delay_steps=max_delays.pop())
        except ValueError as err:
            self.fail(found[0][0], "weight/delay_float", str(err))
        used = conn.delay_steps()
        for index, (key, d, _) in enumerate(found):
            carried = owner == index
            if np.any(used[carried] != d):
                self.fail(key, "delay", f"metadata 'delay_float' of synapses with a weight on this branch round to "
                          f"{sorted(set(used[carried].tolist()) - {d})} steps, its Delay is {d}")
        return conn, [(key, d) for key, d, _ in found]

    def _branch_target(self, key: str, tgt: str):
        """(delay steps, Delay node or None) if Linear `key` reaches `tgt`, (None, None) if it goes elsewhere."""
        post = [b for a, b in self.edges if a == key]
        if len(post) != 1:
            self.fail(key, "edges", f"a Linear branch must feed exactly one node, it feeds {post}")
        if post[0] == tgt:
            return 0, None
        delay_node = post[0]
        node = self.nodes[delay_node]
        if not isinstance(node, nir.Delay):
            return None, None
        after = [b for a, b in self.edges if a == delay_node]
        if after != [tgt]:
            return None, None
        value = np.asarray(node.delay, dtype=np.float64).reshape(-1)
        d = int(np.rint(s_to_ms(value[0]) / self.dt_ms)) if value.size else -1
        if d < 1 or not np.array_equal(value, np.full(value.shape, ms_to_s(d * self.dt_ms))):
            self.fail(delay_node, "delay", f"must be one whole number >= 1 of steps of dt for every element "
                      f"(d * dt = {d} * {self.dt_ms} ms in seconds), got {np.unique(value)} s")
        return d, delay_node

    # ---- fixed point ----
    def _fixed_point(self, spec: NetworkSpec, stated: dict, branches: dict) -> FixedPointSpec:
        """The integers derived from the standard fields at the file's scales, checked against those stated."""
        exps = {}
        for conn in spec.connections:
            values = {int(self.nodes[key].metadata["weight_exp"]) for key, _ in branches[conn.name]}
            if len(values) != 1:
                self.fail(branches[conn.name][0][0], "weight_exp", f"branches of '{conn.name}' disagree: {values}")
            exps[conn.name] = values.pop()
        v_lsbs = {name: float(m["v_lsb"]) for name, m in stated.items()}
        fp = quantise_at(spec, v_lsbs, exps)
        for layer in fp.layers:
            m = stated[layer.name]
            for key, field, value in (("du", "tau_syn", layer.du), ("dv", "tau_mem", layer.dv),
                                      ("vth", "v_threshold", layer.vth), ("kind", "type", layer.kind)):
                mine = np.asarray(m[key])
                if mine.dtype.kind in "SUO":
                    mine = str(m[key])
                if not np.array_equal(mine, value):
                    self.fail(layer.name, field, f"its metadata '{key}' is not the quantisation of the standard "
                              f"fields at v_lsb {layer.v_lsb:g} (states {_brief(mine)}, expected {_brief(value)})")
        for conn in fp.connections:
            used = spec.connection(conn.name).delay_steps().T
            for key, d in branches[conn.name]:
                m = self.nodes[key].metadata
                expected = np.where(used == d, conn.weight, 0)
                mant = np.asarray(m["weight_mant"])
                if mant.shape != expected.shape or not np.array_equal(mant, expected):
                    self.fail(key, "weight", f"its metadata 'weight_mant' is not the quantisation of the standard "
                              f"weights at weight_exp {conn.weight_exp} ({_first_mismatch(mant, expected)})")
                for meta_key, value in (("sign_mode", conn.sign_mode), ("num_weight_bits", conn.num_weight_bits)):
                    mine = str(m[meta_key]) if meta_key == "sign_mode" else int(m[meta_key])
                    if mine != value:
                        self.fail(key, "weight", f"metadata '{meta_key}' states {mine!r}, the standard weights "
                                  f"give {value!r}")
        return fp


def _brief(value) -> str:
    """A scalar, or the first four values of an array, for an error message."""
    array = np.asarray(value)
    if array.ndim == 0:
        return str(value)
    return "[" + ", ".join(map(str, array.reshape(-1)[:4])) + (", ...]" if array.size > 4 else "]")


def _first_mismatch(mine: np.ndarray, expected: np.ndarray) -> str:
    if mine.shape != expected.shape:
        return f"shape {mine.shape}, expected {expected.shape}"
    i, j = np.argwhere(mine != expected)[0]
    return f"first difference at [{i}, {j}]: states {mine[i, j]}, expected {expected[i, j]}"
