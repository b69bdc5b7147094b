"""NIR files that a forward-Euler importer runs as trained: `evprop export RUN --format nir --for LIBRARY`.

evprop's own NIR file (`evprop.export.nir`) states the continuous model and evprop's exact-exponential step in its
metadata. Third-party importers ignore that metadata: they step NIR's CubaLIF equations

    tau_syn dI/dt = -I + w_in x,   tau_mem dv/dt = (v_leak - v) + r I,   spike if v > v_threshold, v <- 0

by forward Euler at their own time step dt_i, the current first (snnTorch 1.0.0 `Synaptic`, Norse 1.1.0 `CubaLIF`):

    I' = I + (dt_i/tau_syn) (-I + w_in x)        x = the Linear output of this call (sum of w * spikes)
    v' = v + (dt_i/tau_mem) (-v + r I')

evprop's step (seed 000, Wunderlich & Pehle 2021, eq. 1-2 discretised as mlGeNN does; `evprop.model.spec`), with
a = sum of the weights of the spikes arriving this step:

    J = I + a;   V' = alpha V + g J;   I' = beta J
    alpha = exp(-dt/tau_mem),  beta = exp(-dt/tau_syn),  g = (1 - alpha) (tau_syn/dt) (1 - beta)

The file written here holds, per neuron, values for which the Euler step IS evprop's step. With

    tau_syn' = dt_i / (1 - beta),   tau_mem' = dt_i / (1 - alpha)        (Euler decays 1 - dt_i/tau' = beta, alpha)

and incoming Linear weights scaled by k per target neuron, the importer's current is c * (evprop's I after the
step) = c beta J and its voltage is V exactly when

    w_in k (1 - beta) = c beta        and        r (1 - alpha) c beta = g.

Each library fixes some of these (`EulerImporter`):
  * free gains (Norse): k = 1, c = 1, so  w_in = beta / (1 - beta),  r = g / ((1 - alpha) beta);
  * unit gains (snnTorch asserts r = tau_mem'/dt_i and reads w_in only as w_in dt_i / tau_syn' = 1): r (1 - alpha)
    = 1 and w_in (1 - beta) = 1, so c = g / beta and the weights absorb k = g.
v_leak = 0, v_reset = 0, v_threshold = evprop's threshold (an LIF readout keeps its threshold). evprop's LI readout
is written as a CubaLIF with v_threshold = UNREACHABLE_THRESHOLD, since neither library imports CubaLI.
evprop fires on V >= threshold, the importers on v > threshold: they differ only where V equals the threshold
exactly.

Timing. In evprop every connection takes one step (a spike emitted in step s arrives in step s + 1); the imported
torch graph passes a call's spikes through feed-forward Linears within the same call and through a recurrent
Linear one call later. For a layered network the difference is a fixed shift: a layer at depth L (L feed-forward
connections from the input) computes in the importer's call t what evprop computes in step t + L, and evprop's
first L steps of that layer are zero. A skip connection, a backward connection between layers or any delay would
need per-connection latencies that no importer reads (neither imports NIR `Delay`), so such networks are refused.

The written file is target-flavoured NIR: its taus are not physical time constants. It carries no `dt_ms`, so
evprop's `run_nir`/`import_nir` refuse it; use evprop's default export for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import nir

from evprop.model.spec import LIFLayer, NetworkSpec, discretise

from .nir import ms_to_s, write_graph

FORMAT = "evprop-nir-euler"
FORMAT_VERSION = 1
# No float32 voltage of an evprop readout comes near it; finite so every library's arithmetic stays finite.
UNREACHABLE_THRESHOLD = 1e30


@dataclass(frozen=True)
class EulerImporter:
    """One library's NIR importer convention (module docstring).

    name:          the library, as in `--for`
    version:       the release these values were measured with (tests/test_nir_importers.py)
    fixed_dt_s:    the importer's own, hard-coded time step [s]; None: the caller passes it (evprop's dt)
    unit_gains:    the importer requires r = tau_mem'/dt_i and w_in = tau_syn'/dt_i (the weights absorb g)
    relay_recurrence: write recurrence as LIF -> Linear(W) -> Linear(identity) -> LIF: snnTorch 1.0.0 rewrites a
                   two-node cycle LIF <-> Linear into a subgraph that nirtorch 2.6 runs as LIF(W (x + s)), the
                   feed-forward input x passing through the recurrent weights; a three-node cycle is left alone
                   and runs as LIF(x + W s_previous)
    how_to_run:    one line: how to import the file and where the readout voltage is
    load:          (graph, importer dt [s], float64) -> the library's torch model (imports the library); float64:
                   every parameter and state in float64 instead of the library's float32 (to tell rounding apart
                   from a wrong mapping)
    voltage:       (neuron module, what its forward returned) -> its voltage v after the call
    """

    name: str
    version: str
    fixed_dt_s: float | None
    unit_gains: bool
    relay_recurrence: bool
    how_to_run: str
    load: Callable
    voltage: Callable

    def dt_s(self, spec: NetworkSpec) -> float:
        return self.fixed_dt_s if self.fixed_dt_s is not None else float(ms_to_s(spec.dt_ms))

    def neuron_values(self, layer, dt_ms: float, dt_i_s: float) -> tuple:
        """(NIR CubaLIF fields except the threshold, per-target weight factor k) for one evprop layer."""
        alpha, beta, g = (np.broadcast_to(x, (layer.size,)).astype(np.float64)
                          for x in discretise(layer.tau_mem_ms, layer.tau_syn_ms, dt_ms))
        if self.unit_gains:
            r, w_in, k = 1.0 / (1.0 - alpha), 1.0 / (1.0 - beta), g
        else:
            r, w_in, k = g / ((1.0 - alpha) * beta), beta / (1.0 - beta), np.ones(layer.size)
        fields = dict(tau_syn=dt_i_s / (1.0 - beta), tau_mem=dt_i_s / (1.0 - alpha), r=r, w_in=w_in,
                      v_leak=np.zeros(layer.size), v_reset=np.zeros(layer.size))
        return fields, k


def _load_snntorch(graph: nir.NIRGraph, dt_s: float, float64: bool):
    from functools import partial
    from unittest import mock
    import nirtorch
    import torch
    from snntorch import import_nir
    if not float64:
        return import_nir.import_from_nir(graph)
    # snnTorch makes a layer-wide alpha/beta/threshold with torch.as_tensor(python float), i.e. in the default
    # dtype, and nirtorch.nir_to_torch casts the finished model to its dtype argument (float32 unless given)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with mock.patch.object(import_nir.nirtorch, "nir_to_torch",
                               partial(nirtorch.nir_to_torch, dtype=torch.float64)):
            return import_nir.import_from_nir(graph)
    finally:
        torch.set_default_dtype(default)


def _load_norse(graph: nir.NIRGraph, dt_s: float, float64: bool):
    from unittest import mock
    import torch
    from norse.torch import from_nir
    from norse.torch.utils import import_nir
    if not float64:
        return from_nir(graph, dt=dt_s)
    # norse keeps w_in, r and the neuron parameters in plain tensors that .double() does not reach; all of them
    # are made by import_nir._to_tensor (float32), so it is swapped for a float64 one while importing
    as_float64 = lambda value: torch.as_tensor(np.asarray(value), dtype=torch.float64)
    with mock.patch.object(import_nir, "_to_tensor", as_float64):
        return from_nir(graph, dt=dt_s)


SNNTORCH = EulerImporter(
    name="snntorch", version="1.0.0", fixed_dt_s=1e-4, unit_gains=True, relay_recurrence=True,
    how_to_run="snntorch.import_nir.import_from_nir(nir.read(path)); out, state = model(x_t, state) once per "
               "step, x_t [batch, n_in] (the recurrent input travels in state; the neurons also keep state "
               "inside the modules: import afresh for a new batch); readout voltage: model.<readout>.mem",
    load=_load_snntorch, voltage=lambda module, result: module.mem)
NORSE = EulerImporter(
    name="norse", version="1.1.0", fixed_dt_s=None, unit_gains=False, relay_recurrence=False,
    how_to_run="norse.torch.from_nir(nir.read(path), dt=metadata['importer_dt_s']); out, state = "
               "model(x_t, state) once per step; readout voltage: state.state['<readout>'][0][1].v",
    load=_load_norse, voltage=lambda module, result: result[1][1].v)
IMPORTERS = {importer.name: importer for importer in (SNNTORCH, NORSE)}


def importer(name: str) -> EulerImporter:
    if name not in IMPORTERS:
        raise ValueError(f"--for {name!r}: no NIR importer convention for it, expected one of {sorted(IMPORTERS)}")
    return IMPORTERS[name]


def layer_depths(spec: NetworkSpec, target: str) -> dict:
    """{layer name: number of feed-forward connections from the input}; ValueError for what no shift can match:
    delays, a layer reachable by paths of different lengths, recurrence other than onto the same LIF layer."""
    for conn in spec.connections:
        delays = conn.delay_steps()
        if np.any(delays > 0):
            raise ValueError(f"export --for {target}: connection '{conn.name}' has delays (up to "
                             f"{int(delays.max())} steps) and no {target} NIR importer reads Delay; export "
                             f"without --for, or train with delays off")
        if conn.source == conn.target and not isinstance(spec.layer(conn.target), LIFLayer):
            raise ValueError(f"export --for {target}: connection '{conn.name}' is recurrent onto a non-spiking "
                             f"layer; only LIF layers may be recurrent")
    depths = {spec.input.name: 0}
    forward = [c for c in spec.connections if c.source != c.target]
    for _ in spec.layers:
        for conn in forward:
            if conn.source in depths and conn.target not in depths:
                depths[conn.target] = depths[conn.source] + 1
    for conn in forward:
        if conn.source not in depths or depths.get(conn.target) != depths[conn.source] + 1:
            raise ValueError(f"export --for {target}: connection '{conn.name}' skips or goes back between layers; "
                             f"the importer has no per-connection latency, so only layered networks "
                             f"(each connection from depth L to L + 1, plus self-recurrence) run as trained")
    return depths


def export_nir_for(path, spec: NetworkSpec, target: str) -> dict:
    """Write `spec` as NIR whose forward-Euler step in library `target` is evprop's step. Returns the metadata."""
    convention = importer(target)
    depths = layer_depths(spec, target)
    names = [layer.name for layer in spec.layers] + [f"{spec.output.name}.readout"] + [
        n for c in spec.connections for n in (c.name, f"{c.name}.relay")]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: NIR node names collide ({sorted(names)}); rename the layers")
    dt_i_s = convention.dt_s(spec)
    nodes = {spec.input.name: nir.Input(input_type=np.array([spec.input.size]))}
    gains = {}
    for layer in spec.neuron_layers:
        fields, gains[layer.name] = convention.neuron_values(layer, spec.dt_ms, dt_i_s)
        threshold = float(layer.threshold) if isinstance(layer, LIFLayer) else UNREACHABLE_THRESHOLD
        nodes[layer.name] = nir.CubaLIF(v_threshold=np.full(layer.size, threshold), **fields)
    output_node = f"{spec.output.name}.readout"
    nodes[output_node] = nir.Output(output_type=np.array([spec.output.size]))
    edges = [(spec.output.name, output_node)]
    for conn in spec.connections:
        # NIR Linear weight is (out, in); evprop's is [pre, post]; k scales each target neuron's inputs
        nodes[conn.name] = nir.Linear(weight=(conn.weight * gains[conn.target][None, :]).T)
        edges.append((conn.source, conn.name))
        if conn.source == conn.target and convention.relay_recurrence:
            relay = f"{conn.name}.relay"
            nodes[relay] = nir.Linear(weight=np.eye(conn.weight.shape[1]))
            edges += [(conn.name, relay), (relay, conn.target)]
        else:
            edges.append((conn.name, conn.target))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "target": convention.name,
                "target_version": convention.version, "importer_dt_s": dt_i_s, "evprop_dt_ms": float(spec.dt_ms),
                "n_steps": spec.n_steps, "readout": spec.readout, "readout_node": spec.output.name,
                "layer_latency_steps": json.dumps({k: v for k, v in depths.items() if k != spec.input.name}),
                "how_to_run": convention.how_to_run,
                "timing": "a layer at latency L computes in the importer's call t what evprop computes in step "
                          "t + L; evprop's steps 0..L-1 of that layer are 0"}
    write_graph(path, nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata))
    return metadata


def run_imported(path, rasters: np.ndarray, float64: bool = False) -> tuple:
    """Import the file written by `export_nir_for` with its library (torch and the library must be installed) and
    run it on input rasters [B, T, n_in], all samples as one batch, one call per step, in the library's float32
    (or, float64=True, in float64 throughout). Returns
    ({LIF layer: bool spikes [B, T, n]}, readout voltages [B, T, n_out]) in evprop's time frame (module docstring:
    a layer at latency L is shifted by L steps, its first L steps zero), comparable with evprop's own run."""
    import torch
    path = Path(path)
    graph = nir.read(str(path))
    meta = graph.metadata
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: NIR metadata format {meta.get('format')!r}, expected {FORMAT!r} "
                         f"(written by `evprop export --for`)")
    convention = importer(str(meta["target"]))
    latency = json.loads(str(meta["layer_latency_steps"]))
    readout = str(meta["readout_node"])
    model = convention.load(graph, float(meta["importer_dt_s"]), float64)
    calls = {name: [] for name in latency}
    voltages = []

    def record(name):
        def hook(module, args, result):
            calls[name].append((result[0] if isinstance(result, tuple) else result).detach().numpy().copy())
            if name == readout:
                voltages.append(convention.voltage(module, result).detach().numpy().astype(np.float64))
        return hook

    for name in latency:
        model.get_submodule(name).register_forward_hook(record(name))
    if float64:     # snnTorch's spike function returns float32 0/1 whatever its input: exact in float64
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_pre_hook(lambda module, args: tuple(a.double() for a in args))
    x = torch.as_tensor(np.asarray(rasters), dtype=torch.float64 if float64 else torch.float32)
    state = None
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = model(x[:, t], state)
    spikes = {name: _to_evprop_frame(np.stack(calls[name], axis=1) > 0, latency[name]) for name in latency
              if name != readout or meta["readout"] == "first_spike"}
    return spikes, _to_evprop_frame(np.stack(voltages, axis=1), latency[readout])


def _to_evprop_frame(per_call: np.ndarray, latency_steps: int) -> np.ndarray:
    """The importer's call t is evprop's step t + L: shift right by L along time, zeros before."""
    out = np.zeros_like(per_call)
    n_steps = per_call.shape[1]
    if latency_steps < n_steps:
        out[:, latency_steps:] = per_call[:, :n_steps - latency_steps]
    return out
