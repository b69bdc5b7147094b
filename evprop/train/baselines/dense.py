"""Dense-in-time forward pass of evprop's discrete model, for the BPTT-family baselines.

The SAME network and discrete step as the EventProp engine (docs/architecture.md §2), with zero delays, so a spike
emitted in step k arrives in step k + 1:

    A_k = sum over connections  S_src,k-1 W            (input spikes X_k-1 for the input connections)
    J_k = beta J_k-1 + A_k                              (J_k = I_k-1 + arrivals, I_k = beta J_k)
    V_k = alpha U_k-1 + g J_k                           (V_k: the voltage before the reset)
    S_k = H(V_k - theta);  U_k = V_k (1 - S_k)          (reset to zero; LI outputs: S = 0, U = V)

Unlike the engine, every per-step voltage V_k is kept in dense [B, T, n] arrays (the O(T) state BPTT, SLAYER and
EXODUS all need; the spikes are recomputed from it as S = V >= theta). The network is processed one strongly
connected component of its layer graph at a time, in topological order: the drive from the inputs and from earlier
components is computed for all steps at once (one matrix product over B*T rows, as SLAYER and EXODUS vectorise
over time), and only connections inside a component (recurrence) need a matrix product per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ...data.spikes import SpikeData
from ..compiled import CompiledNetwork


@dataclass(frozen=True)
class LayerInfo:
    """One neuron layer in the compiled network: its slice of the neuron index space and its constants."""

    name: str
    neurons: slice
    alpha: np.ndarray
    beta: np.ndarray
    g: np.ndarray
    theta: np.ndarray          # +inf for LI outputs
    spiking: bool

    @property
    def size(self) -> int:
        return self.neurons.stop - self.neurons.start


@dataclass(frozen=True)
class Link:
    """A connection of the compiled network: source layer name (or None for the input), target, weight view."""

    name: str
    source: str | None
    target: str
    weight: np.ndarray          # [n_pre, n_post] view into CompiledNetwork.w_flat (current values)
    flat: slice                 # slice of the flat weight vector


class Topology:
    """Layers, connections and the order the dense passes visit them in (strongly connected components)."""

    def __init__(self, net: CompiledNetwork):
        spec = net.spec
        self.layers = {}
        for layer in spec.neuron_layers:
            sl = net.layer_slices[layer.name]
            self.layers[layer.name] = LayerInfo(layer.name, sl, net.alpha[sl], net.beta[sl], net.g[sl],
                                                net.theta[sl], bool(np.all(np.isfinite(net.theta[sl]))))
        self.links = []
        for conn in spec.connections:
            source = None if conn.source == spec.input.name else conn.source
            if source is not None and not self.layers[source].spiking:
                continue            # LI layers never spike: their outgoing connections carry nothing
            flat = net.conn_slices[conn.name]
            self.links.append(Link(conn.name, source, conn.target, net.w_flat[flat].reshape(conn.weight.shape),
                                   flat))
        self.components = _components_in_order(list(self.layers), self.links)

    def incoming(self, layer: str) -> list:
        return [link for link in self.links if link.target == layer]

    def outgoing(self, layer: str) -> list:
        return [link for link in self.links if link.source == layer]


def _components_in_order(names: list, links: list) -> list:
    """Strongly connected components of the layer graph (edges: neuron-to-neuron connections), in topological
    order (every edge between components points forward). Tiny graphs: transitive closure by Warshall."""
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    reach = np.eye(n, dtype=bool)
    for link in links:
        if link.source is not None:
            reach[index[link.source], index[link.target]] = True
    for k in range(n):
        reach |= reach[:, [k]] & reach[[k], :]
    components, seen = [], set()
    for name in names:
        if name not in seen:
            comp = [other for other in names if reach[index[name], index[other]] and reach[index[other], index[name]]]
            seen.update(comp)
            components.append(comp)
    # a component comes after every component that reaches it
    return sorted(components, key=lambda comp: sum(reach[:, index[comp[0]]]))


def validate_for_baselines(net: CompiledNetwork) -> None:
    """The baselines support zero delays only (any recurrent or feed-forward topology)."""
    if np.any(net.d_flat != 0):
        bad = [name for name, sl in net.conn_slices.items() if np.any(net.d_flat[sl] != 0)]
        raise ValueError(f"the BPTT-family baselines support only zero delays; connections {bad} have non-zero "
                         f"delays (use train.algorithm = 'eventprop' for delays)")


def shifted_input(data: SpikeData) -> sparse.csr_matrix:
    """Input spikes as a sparse [B*T, n_in] matrix whose row b*T + k holds the spikes ARRIVING in step k, i.e.
    those emitted in step k - 1 (spikes of the last step arrive after the trial and are dropped)."""
    n_batch, n_steps = len(data), data.n_steps
    sample = np.repeat(np.arange(n_batch), np.diff(data.offsets))
    arrive = data.steps.astype(np.int64) + 1
    keep = arrive < n_steps
    rows = sample[keep] * n_steps + arrive[keep]
    return sparse.csr_matrix((np.ones(int(keep.sum())), (rows, data.channels[keep])),
                             shape=(n_batch * n_steps, data.n_channels))


def spikes_of(v: np.ndarray, layer: LayerInfo) -> np.ndarray:
    """S = H(V - theta) as float64 (zeros for LI layers)."""
    return (v >= layer.theta).astype(np.float64)


@dataclass(frozen=True, eq=False)
class DenseForward:
    """Per-step state of a batch. v[layer]: [B, T, n] voltages before the reset; j[layer]: [B, T, n] currents J_k
    (only when kept for time-constant gradients); x: the shifted input (see `shifted_input`)."""

    topology: Topology
    v: dict
    j: dict | None
    x: sparse.csr_matrix

    @property
    def v_out(self) -> np.ndarray:
        return self.v[list(self.topology.layers)[-1]]

    scores = None        # the loss computes the scores from v_out (engine.ForwardResult's compact form has them)
    dropped = {}         # dense arrays drop no spikes (engine.ForwardResult counts tape overflows)

    @property
    def spike_count(self) -> np.ndarray:
        """[B, n_neurons] spikes per neuron, in the compiled neuron order."""
        parts = [spikes_of(self.v[name], layer).sum(axis=1) for name, layer in self.topology.layers.items()]
        return np.concatenate(parts, axis=1).astype(np.int64)


def dense_forward(net: CompiledNetwork, data: SpikeData, keep_current: bool = False) -> DenseForward:
    """Simulate a batch with dense per-step arrays (module docstring equations)."""
    if data.n_channels != net.n_in or data.n_steps != net.spec.n_steps:
        raise ValueError(f"data has {data.n_channels} channels x {data.n_steps} steps, the network expects "
                         f"{net.n_in} x {net.spec.n_steps}")
    validate_for_baselines(net)
    topo = Topology(net)
    x = shifted_input(data)
    n_batch, n_steps = len(data), data.n_steps
    v, j = {}, ({} if keep_current else None)
    for comp in topo.components:
        for name in comp:
            # v[name] first holds the drive from outside the component, then is overwritten step by step with V
            v[name] = _external_drive(topo, name, comp, x, v, n_batch, n_steps)
            if keep_current:
                j[name] = np.empty_like(v[name])
        _run_component(topo, comp, v, j)
    return DenseForward(topo, v, j, x)


def _external_drive(topo: Topology, name: str, comp: list, x, v: dict, n_batch: int, n_steps: int) -> np.ndarray:
    """Arrivals A_k from the inputs and from layers of earlier components, for all steps at once."""
    layer = topo.layers[name]
    drive = np.zeros((n_batch, n_steps, layer.size))
    for link in topo.incoming(name):
        if link.source is None:
            drive += (x @ link.weight).reshape(n_batch, n_steps, layer.size)
        elif link.source not in comp:
            s_prev = spikes_of(v[link.source][:, :-1], topo.layers[link.source])
            drive[:, 1:] += s_prev @ link.weight
    return drive


def _run_component(topo: Topology, comp: list, v: dict, j: dict | None) -> None:
    """Step the layers of one component through time; recurrent links need the previous step's spikes."""
    inner = [link for name in comp for link in topo.incoming(name) if link.source in comp]
    n_batch, n_steps = v[comp[0]].shape[:2]
    cur = {name: np.zeros((n_batch, topo.layers[name].size)) for name in comp}
    u = {name: np.zeros((n_batch, topo.layers[name].size)) for name in comp}
    s = {name: np.zeros((n_batch, topo.layers[name].size)) for name in comp}
    for k in range(n_steps):
        arrivals = {name: v[name][:, k].copy() for name in comp}
        if k > 0:
            for link in inner:
                arrivals[link.target] += s[link.source] @ link.weight
        for name in comp:
            layer = topo.layers[name]
            cur[name] = layer.beta * cur[name] + arrivals[name]
            vk = layer.alpha * u[name] + layer.g * cur[name]
            v[name][:, k] = vk
            if j is not None:
                j[name][:, k] = cur[name]
            if layer.spiking:
                s[name] = spikes_of(vk, layer)
                u[name] = vk * (1.0 - s[name])
            else:
                u[name] = vk
