"""Comparison with reference gradients in the format of tests/data/mlgenn/tiny_cases.json (origin: its README.md).

A case holds a network (W_ih, W_hh, W_ho and optional D_ih, D_hh as [pre][post]), input spike times per example
[ms], labels, mlGeNN's forward results and its per-example gradients (`dL/dW_ih`, ...). The file's `_meta.params`
gives dt, T, the taus, the threshold and max_delay_steps. `gradcheck` runs evprop on a case and returns, per
parameter matrix, the cosine similarity and the least-squares scale ratio to the reference gradient, the largest
hidden spike-time difference and the loss.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..data.spikes import SpikeData
from ..model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from .compiled import CompiledNetwork
from .engine import backward, forward
from .losses import get_loss

# reference matrix name -> (source, target) of the evprop connection
_CONNECTIONS = {"W_ih": ("input", "hidden"), "W_hh": ("hidden", "hidden"), "W_ho": ("hidden", "output")}
_DELAYS = {"W_ih": "D_ih", "W_hh": "D_hh", "W_ho": "D_ho"}


def load_cases(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: reference file not found")
    try:
        cases = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(cases, dict) or "_meta" not in cases or "params" not in cases["_meta"]:
        raise ValueError(f"{path}: expected a JSON object with '_meta.params' and cases (tiny_cases.json format)")
    return cases


def case_network(params: dict, case: dict) -> NetworkSpec:
    net = case["network"]
    w_ih = np.asarray(net["W_ih"], dtype=np.float64)
    n_in, n_hidden = w_ih.shape
    n_out = np.asarray(net["W_ho"]).shape[1]
    max_delay = int(params.get("max_delay_steps", 0))
    conns = []
    for key, (src, dst) in _CONNECTIONS.items():
        if key in net:
            delay = np.asarray(net[_DELAYS[key]], dtype=np.float64) if _DELAYS[key] in net else None
            conns.append(Connection(src, dst, np.asarray(net[key], dtype=np.float64), delay,
                                    max_delay if delay is not None else 0))
    layers = (InputLayer("input", n_in),
              LIFLayer("hidden", n_hidden, params["tau_mem_hidden"], params["tau_syn"], params["v_thresh"]),
              LILayer("output", n_out, params["tau_mem_out"], params["tau_syn"]))
    return NetworkSpec(dt_ms=params["dt"], n_steps=params["T_steps"], layers=layers, connections=tuple(conns),
                       readout="sum_exp")


def spike_time_to_step(t_ms: float, dt_ms: float) -> int:
    """mlGeNN SpikeInput fires in step k when k*dt >= t (docs/architecture.md §7 'Forward pass')."""
    return int(math.ceil(t_ms / dt_ms - 1e-9))


def case_data(params: dict, case: dict, n_in: int) -> SpikeData:
    events = []
    examples = sorted(case["input_spike_times_ms"], key=lambda name: int(name.replace("example", "")))
    for name in examples:
        steps, channels = [], []
        for channel in range(n_in):
            for t in case["input_spike_times_ms"][name].get(f"input{channel}", []):
                steps.append(spike_time_to_step(t, params["dt"]))
                channels.append(channel)
        events.append((steps, channels))
    return SpikeData.from_event_lists(n_in, params["T_steps"], events, case["labels"])


def _cosine(a, b):
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a.ravel() @ b.ravel() / denom) if denom > 0 else float("nan")


def _scale(ours, ref):
    """Least-squares s with ref ~ s * ours."""
    denom = ours.ravel() @ ours.ravel()
    return float(ours.ravel() @ ref.ravel() / denom) if denom > 0 else float("nan")


def hidden_spike_lists(fwd, n_hidden_start: int, n_hidden: int, dt: float):
    """[(time_ms, neuron)] per example, sorted like the reference."""
    out = []
    for b in range(len(fwd.tape_len)):
        n = fwd.tape_len[b]
        sel = (fwd.tape_neuron[b, :n] >= n_hidden_start) & (fwd.tape_neuron[b, :n] < n_hidden_start + n_hidden)
        spikes = sorted((float(s * dt), int(nn - n_hidden_start))
                        for s, nn in zip(fwd.tape_step[b, :n][sel], fwd.tape_neuron[b, :n][sel]))
        out.append(spikes)
    return out


def gradcheck(cases: dict, name: str, mlgenn_last_step: bool = True) -> dict:
    """Run evprop on case `name` and compare with the reference (per-example gradients averaged over the batch)."""
    if name not in cases or name == "_meta":
        raise ValueError(f"case '{name}' not in the reference file (cases: "
                         f"{sorted(k for k in cases if k != '_meta')})")
    params, case = cases["_meta"]["params"], cases[name]
    spec = case_network(params, case)
    net = CompiledNetwork.from_spec(spec)
    data = case_data(params, case, spec.input.size)
    fwd = forward(net, data, max_spikes=int(params.get("max_spikes", 100)), mlgenn_last_step=mlgenn_last_step)
    loss, scores, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grads = backward(net, data, fwd, dl_dv, mlgenn_last_step=mlgenn_last_step)
    ours = {"W": net.per_connection(grads.weights), "D": net.per_connection(grads.delays)}

    examples = sorted(case["forward"], key=lambda e: int(e.replace("example", "")))
    hidden = net.layer_slices["hidden"]
    spikes = hidden_spike_lists(fwd, hidden.start, hidden.stop - hidden.start, spec.dt_ms)
    max_dt = 0.0
    spike_sets_equal = True
    for b, example in enumerate(examples):
        ref = sorted((float(t), int(n)) for t, n in case["forward"][example]["hidden_spikes_(time_ms,neuron)"])
        spike_sets_equal &= ref == spikes[b]
        if len(ref) == len(spikes[b]):
            max_dt = max([max_dt] + [abs(a[0] - c[0]) for a, c in zip(ref, spikes[b])])
        else:
            max_dt = float("inf")
    readout_ref = np.array([case["forward"][e]["VAvg_readout"] for e in examples])
    result = {"case": name, "loss": float(loss), "loss_reference": case.get("loss_batch_mean"),
              "hidden_spikes_identical": bool(spike_sets_equal), "max_spike_time_diff_ms": max_dt,
              "readout_max_rel_diff": float(np.max(np.abs(scores - readout_ref) / np.abs(readout_ref))),
              "matrices": {}}
    ref_grads = [case["grad_per_example"][b] for b in range(len(examples))]
    for key in ref_grads[0]:
        kind, matrix = key.split("/")[1].split("_", 1)          # 'dL/dW_ih' -> ('dW', 'ih')
        conn_key = f"W_{matrix}"
        src, dst = _CONNECTIONS[conn_key]
        ref = np.mean([np.asarray(g[key], dtype=np.float64) for g in ref_grads], axis=0)
        mine = ours[kind[1]][f"{src}->{dst}"]
        result["matrices"][key] = {"cosine": _cosine(mine, ref), "scale_ratio_ref_over_evprop": _scale(mine, ref)}
    return result
