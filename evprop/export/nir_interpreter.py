"""Reference NIR interpreter in numpy: runs a NIR 1.0.8 graph of CubaLIF / CubaLI neurons on SpikeData with
evprop's discretisation, reading only the graph's standard fields (never evprop's private node metadata).

    hidden, outputs = run_nir("net.nir", data)      # {CubaLIF node: bool [B, T, n]}, {CubaLI node: [B, T, n]}

What it reads: nodes' tau_syn, tau_mem, r, v_leak, v_threshold, v_reset, w_in; Linear weights; Scale factors;
Delay values; the edges. NIR has no time step, so dt comes from the `dt_ms` argument or, failing that,
graph.metadata['dt_ms'] (written by evprop.export.nir). NIR times are taken to be in SECONDS (evprop's export).

Supported node types: Input (exactly one: the data's channels), Output, Linear, Affine with a zero bias, Scale,
Delay, CubaLIF, CubaLI. Anything else (LIF, LI, IF, Conv, nested graphs, ...) is a ValueError naming the node.
A CubaLI's output is a voltage, not spikes: it may only feed Output nodes.

Discretisation (docs/architecture.md §2, generalised to NIR's r, w_in and v_leak). NIR's equations

    tau_syn dI/dt = -I + w_in S,   tau_mem dv/dt = (v_leak - v) + r I,   spike if v > v_threshold, v <- v_reset

with S the weighted Dirac train arriving on the node's input (a presynaptic spike through a Linear weight w is a
Dirac of area w). In the variables

    V = v - v_leak,   J = r I

they become evprop's model  tau_syn dJ/dt = -J (+ jumps),  tau_mem dV/dt = -V + J  where a Dirac of area x makes J
jump by  c x,  c = r w_in / tau_syn  (per neuron), the threshold is  theta = v_threshold - v_leak  and the reset
value  V_reset = v_reset - v_leak. evprop's discrete step, per neuron and step of dt, is then

    J <- J + c * (sum of the areas x arriving this step)
    V <- alpha V + g J          alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn),
    J <- beta J                 g = (1 - alpha) (tau_syn/dt) (1 - beta)
    CubaLIF: if V >= theta: spike, V <- V_reset          (evprop's >=; NIR's > differs on a set of measure zero)
    reported voltage v = V + v_leak;  initial state V = 0 (v = v_leak, at rest), J = 0

(the v_leak term is integrated exactly: v <- v_leak + alpha (v - v_leak) + g J). evprop's export writes r = 1,
v_leak = 0, v_reset = 0, w_in = tau_syn, so c = 1, V = v, theta = v_threshold and the step is evprop's step
(spec.discretise, train.kernels) operation for operation.

Timing: a spike emitted in step s (an input spike in data step s, or a CubaLIF spike in step s) arrives in step
s + 1 + sum over the Delay nodes on its path of round(delay / dt) (per element of the signal each Delay sits on);
without a Delay, in step s + 1. Linear/Affine/Scale/Delay nodes form the (acyclic) wiring between the spike sources
and the neurons; several edges into one node are summed; recurrence is any cycle through a neuron node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import nir

MS_PER_S = 1000.0
SUPPORTED = ("Input", "Output", "Linear", "Affine (zero bias)", "Scale", "Delay", "CubaLIF", "CubaLI")


@dataclass(frozen=True)
class NeuronParams:
    """One CubaLIF / CubaLI node in evprop's discrete form (module docstring), arrays of [n]."""

    name: str
    spiking: bool
    alpha: np.ndarray
    beta: np.ndarray
    g: np.ndarray
    c: np.ndarray           # jump of J per unit Dirac area: r * w_in / tau_syn
    theta: np.ndarray       # v_threshold - v_leak (inf for CubaLI)
    v_reset: np.ndarray     # v_reset - v_leak
    v_leak: np.ndarray

    @property
    def size(self) -> int:
        return len(self.alpha)


def discretise_node(name: str, node, dt_s: float) -> NeuronParams:
    """evprop's discrete constants of a NIR CubaLIF / CubaLI node (times in seconds)."""
    spiking = isinstance(node, nir.CubaLIF)
    fields = {f: np.atleast_1d(np.asarray(getattr(node, f), dtype=np.float64))
              for f in ("tau_syn", "tau_mem", "r", "v_leak", "w_in")
              + (("v_threshold", "v_reset") if spiking else ())}
    try:
        arrays = np.broadcast_arrays(*fields.values())
    except ValueError:
        raise ValueError(f"NIR node '{name}' ({type(node).__name__}): fields have inconsistent shapes "
                         f"{ {k: v.shape for k, v in fields.items()} }") from None
    f = {k: a.reshape(-1).copy() for k, a in zip(fields, arrays)}
    for key in ("tau_syn", "tau_mem"):
        if not np.all(np.isfinite(f[key]) & (f[key] > 0)):
            raise ValueError(f"NIR node '{name}': {key} must be finite and > 0 (seconds)")
    for key, value in f.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"NIR node '{name}': field {key} holds non-finite values")
    tau_mem, tau_syn = f["tau_mem"], f["tau_syn"]
    alpha = np.exp(-dt_s / tau_mem)
    beta = np.exp(-dt_s / tau_syn)
    g = (1.0 - alpha) * (tau_syn / dt_s) * (1.0 - beta)
    c = f["r"] * f["w_in"] / tau_syn
    if spiking:
        theta, v_reset = f["v_threshold"] - f["v_leak"], f["v_reset"] - f["v_leak"]
    else:
        theta, v_reset = np.full(len(alpha), np.inf), np.zeros(len(alpha))
    return NeuronParams(name, spiking, alpha, beta, g, c, theta, v_reset, f["v_leak"])


def _unsupported(name: str, node) -> ValueError:
    return ValueError(f"NIR node '{name}' has type {type(node).__module__}.{type(node).__name__}, which the evprop "
                      f"NIR interpreter does not support (supported: {', '.join(SUPPORTED)})")


class _Plan:
    """The graph split into spike sources, wiring (Linear/Scale/Delay in topological order) and neurons."""

    def __init__(self, graph: nir.NIRGraph, dt_s: float):
        self.nodes = dict(graph.nodes)
        edges = [(str(a), str(b)) for a, b in graph.edges]
        for a, b in edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise ValueError(f"NIR edge ({a!r}, {b!r}) names a node that is not in the graph")
        self.pre = {k: [a for a, b in edges if b == k] for k in self.nodes}
        self.neurons, self.wiring, self.outputs = {}, [], []
        inputs = []
        for name, node in self.nodes.items():
            if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                self.neurons[name] = discretise_node(name, node, dt_s)
            elif isinstance(node, nir.Input):
                inputs.append(name)
            elif isinstance(node, nir.Output):
                self.outputs.append(name)
            elif isinstance(node, nir.Affine):
                if np.any(np.asarray(node.bias) != 0):
                    raise ValueError(f"NIR node '{name}' is an Affine with a non-zero bias, which has no spike "
                                     f"(Dirac) meaning; the evprop NIR interpreter supports only a zero bias")
            elif not isinstance(node, (nir.Linear, nir.Scale, nir.Delay)):
                raise _unsupported(name, node)
        if len(inputs) != 1:
            raise ValueError(f"NIR graph has {len(inputs)} Input nodes ({inputs}); the interpreter needs exactly 1")
        self.input = inputs[0]
        self.input_size = int(np.prod(np.asarray(self.nodes[self.input].input_type["input"])))
        for name in self.nodes:
            for src in self.pre[name]:
                if isinstance(self.nodes[src], nir.Output):
                    raise ValueError(f"NIR node '{src}' is an Output but feeds '{name}'")
                if isinstance(self.nodes[src], nir.CubaLI) and not isinstance(self.nodes[name], nir.Output):
                    raise ValueError(f"NIR node '{src}' (CubaLI) feeds '{name}': a CubaLI's voltage output may only "
                                     f"feed Output nodes in the evprop interpreter")
            if isinstance(self.nodes[name], nir.Input) and self.pre[name]:
                raise ValueError(f"NIR Input node '{name}' has incoming edges {self.pre[name]}")
        self.wiring = self._topological_wiring()
        self.delay_steps = {}
        for name in self.wiring:
            node = self.nodes[name]
            if isinstance(node, nir.Delay):
                steps = np.asarray(node.delay, dtype=np.float64).reshape(-1) / dt_s
                if not np.all(np.isfinite(steps)) or np.any(steps < -1e-9):
                    raise ValueError(f"NIR Delay node '{name}' has negative or non-finite delays")
                self.delay_steps[name] = np.floor(steps + 0.5).astype(np.int64)

    def _topological_wiring(self) -> list:
        wiring = [k for k, n in self.nodes.items() if isinstance(n, (nir.Linear, nir.Affine, nir.Scale, nir.Delay))]
        order, state = [], {}

        def visit(name, stack):
            if state.get(name) == "done":
                return
            if state.get(name) == "active":
                raise ValueError(f"NIR graph has a cycle without a neuron: {' -> '.join(stack + [name])} (every "
                                 f"recurrent loop must pass through a CubaLIF node)")
            state[name] = "active"
            for src in self.pre[name]:
                if src in wiring_set:
                    visit(src, stack + [name])
            state[name] = "done"
            order.append(name)

        wiring_set = set(wiring)
        for name in wiring:
            visit(name, [])
        return order


def _as_graph(path_or_graph):
    if isinstance(path_or_graph, nir.NIRGraph):
        return path_or_graph, "<graph>"
    path = Path(path_or_graph)
    if not path.is_file():
        raise ValueError(f"{path}: NIR file not found")
    try:
        return nir.read(str(path)), str(path)
    except Exception as err:          # h5py / nir raise many kinds
        raise ValueError(f"{path}: not a readable NIR graph ({type(err).__name__}: {err})") from None


def _dense_input(data) -> np.ndarray:
    raster = np.zeros((len(data), data.n_steps, data.n_channels), dtype=np.float64)
    sample = np.repeat(np.arange(len(data)), np.diff(data.offsets))
    raster[sample, data.steps, data.channels] = 1.0
    return raster


def run_nir(path_or_graph, spikes, dt_ms: float | None = None):
    """Run a NIR graph (path or nir.NIRGraph) on `spikes` (evprop SpikeData: the Input node's channels) for
    spikes.n_steps steps of dt. Returns ({CubaLIF node: bool [B, T, n] spikes}, {CubaLI node: float64 [B, T, n]
    voltages v after each step}). dt_ms: the time step [ms]; default graph.metadata['dt_ms']."""
    graph, source = _as_graph(path_or_graph)
    if dt_ms is None:
        meta = getattr(graph, "metadata", None) or {}
        if "dt_ms" not in meta:
            raise ValueError(f"{source}: NIR has no time step and the graph metadata has no 'dt_ms'; pass dt_ms")
        dt_ms = float(np.asarray(meta["dt_ms"]))
    if not (np.isfinite(dt_ms) and dt_ms > 0):
        raise ValueError(f"run_nir: dt_ms {dt_ms} must be > 0")
    try:
        plan = _Plan(graph, dt_ms / MS_PER_S)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    if spikes.n_channels != plan.input_size:
        raise ValueError(f"{source}: data has {spikes.n_channels} channels, NIR Input '{plan.input}' has "
                         f"{plan.input_size}")
    return _simulate(plan, _dense_input(spikes), source)


def _apply(name: str, node, x: np.ndarray, source: str) -> np.ndarray:
    """A Linear / Affine / Scale node on x [B, n_in] (Delay is handled by the caller)."""
    if isinstance(node, (nir.Linear, nir.Affine)):
        w = np.asarray(node.weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != x.shape[1]:
            raise ValueError(f"{source}: {type(node).__name__} '{name}' weight {w.shape} does not take a signal of "
                             f"{x.shape[1]} elements")
        active = np.flatnonzero(x.any(axis=0))          # spikes are sparse: only the columns that carry any
        if len(active) == x.shape[1]:
            return x @ w.T
        return x[:, active] @ w[:, active].T
    scale = np.asarray(node.scale, dtype=np.float64).reshape(-1)
    return x * scale


def _simulate(plan: _Plan, raster: np.ndarray, source: str):
    n_batch, n_steps, _ = raster.shape
    neurons = plan.neurons
    v = {k: np.zeros((n_batch, p.size)) for k, p in neurons.items()}       # V = v - v_leak
    cur = {k: np.zeros((n_batch, p.size)) for k, p in neurons.items()}     # J = r I
    arrivals = {k: np.zeros((n_batch, p.size)) for k, p in neurons.items()}
    spiked = {k: np.zeros((n_batch, p.size)) for k, p in neurons.items()}
    rec_spikes = {k: np.zeros((n_batch, n_steps, p.size), dtype=bool) for k, p in neurons.items() if p.spiking}
    rec_v = {k: np.zeros((n_batch, n_steps, p.size)) for k, p in neurons.items() if not p.spiking}
    delay_buf = {}
    for k in range(n_steps):
        # neuron update with the arrivals scheduled for step k (emitted up to step k-1)
        for name, p in neurons.items():
            j = cur[name] + p.c * arrivals[name]
            v[name] = p.alpha * v[name] + p.g * j
            cur[name] = p.beta * j
            if p.spiking:
                fired = v[name] >= p.theta
                v[name] = np.where(fired, p.v_reset, v[name])
                spiked[name] = fired.astype(np.float64)
                rec_spikes[name][:, k] = fired
            else:
                rec_v[name][:, k] = v[name] + p.v_leak
        # propagate this step's spikes through the wiring: they arrive in step k + 1 (+ delays)
        signal = {plan.input: raster[:, k]}
        signal.update(spiked)
        for name in plan.wiring:
            node = plan.nodes[name]
            x = _summed_input(plan, name, signal, source)
            if x is None:
                x = np.zeros((n_batch, _width(node, name, source)))
            if isinstance(node, nir.Delay):
                d = plan.delay_steps[name]
                if len(d) not in (1, x.shape[1]):
                    raise ValueError(f"{source}: Delay '{name}' has {len(d)} values for a signal of {x.shape[1]}")
                d = np.broadcast_to(d, (x.shape[1],))
                length = int(d.max(initial=0)) + 1
                buf = delay_buf.setdefault(name, np.zeros((length, n_batch, x.shape[1])))
                buf[k % length] = x
                signal[name] = buf[(k - d) % length, :, np.arange(x.shape[1])].T
            else:
                signal[name] = _apply(name, node, x, source)
        for name, p in neurons.items():
            x = _summed_input(plan, name, signal, source)
            if x is None:
                arrivals[name] = np.zeros((n_batch, p.size))
            elif x.shape[1] != p.size:
                raise ValueError(f"{source}: node '{name}' has {p.size} neurons but receives {x.shape[1]} inputs")
            else:
                arrivals[name] = x
    return rec_spikes, rec_v


def _summed_input(plan: _Plan, name: str, signal: dict, source: str):
    """Sum of the signals on the edges into `name` (None if it has none)."""
    total = None
    for src in plan.pre[name]:
        x = signal[src]
        if total is not None and x.shape != total.shape:
            raise ValueError(f"{source}: edges into '{name}' carry signals of different sizes")
        total = x if total is None else total + x
    return total


def _width(node, name: str, source: str) -> int:
    if isinstance(node, (nir.Linear, nir.Affine)):
        return int(np.asarray(node.weight).shape[1])
    if isinstance(node, nir.Scale):
        return int(np.asarray(node.scale).size)
    return int(np.asarray(node.delay).size)
