"""Lava 0.10's bit-accurate LIF + Dense/DelayDense arithmetic in vectorised numpy (over samples; loop over steps).

Per neuron and step k (one step of `lava.proc.lif.models.AbstractPyLifModelFixed.subthr_dynamics`, same dtypes,
so overflows wrap exactly as in Lava; constants from evprop.fixed_point.spec):

    a_in  (int32)  = sum over connections c of the int32 message of c arriving in step k
    u_dec (int32)  = sign(u*(4096-du-1)) * (|u*(4096-du-1)| >> 12)          # int64 product, toward zero
    u'    (int32)  = u_dec + (a_in << 6)                                      # both int32: wraps at 32 bits
    u     (int32)  = u' - 2**24 if u' > 2**23, u' + 2**24 if u' <= -2**23     # ONE wrap (Lava: not modulo)
    v_dec (int32)  = sign(v*(4096-dv)) * (|v*(4096-dv)| >> 12)
    v     (int32)  = clip(v_dec + u, -(2**23-1), 2**23-1)                      # saturates
    spike = v > vth << 6;  v[spike] = 0                                       # u not reset; LI: vth = 131071

Messages (Dense / DelayDense fixed_pt): a spike of pre neuron i in step s sends, per connection and per delay
value d, acc = sum of W_L[post, i] over the spiking pre neurons with that delay, shifted once per group
(acc << weight_exp, or floor(acc / 2**-weight_exp)), and it arrives in step s + 1 + d (input spikes too).
Measured in Lava 0.10 (evprop.hw_sim.lava_sim, tests/test_lava.py): the 16-bit message width is NOT enforced
(a_in = 65024 reached u unchanged), and u > 2**23 is wrapped by a single subtraction of 2**24 (a value beyond
3 * 2**23 stays out of the 24-bit range). Both are counted here (`message_overflows`, `u_wraps`), never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import (ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, MESSAGE_MAX, UV_HALF, V_MAX, V_MIN,
                   VTH_SHIFT,
                   FixedPointSpec)

CHUNK_SAMPLES = 512      # samples emulated at once (memory ~ chunk * neurons * (max_delay + 1) * 8 bytes)


@dataclass(frozen=True)
class EmulatorResult:
    """Per-sample results of `emulate` (B samples, T steps).

    hidden_spikes:     {LIF layer name: bool [B, T, n]} (empty if record_hidden=False)
    v_out:             int32 [B, T, n_out], output v after each step (Lava's `v` Var)
    v_out_float:       float64 [B, T, n_out] = v_out * v_lsb [V units]; scores = NetworkSpec.scores(v_out_float)
    spike_counts:      {layer name (input included): int64 [B]}
    synops:            int64 [B], sum over spikes of the spiking neuron's fan-out (non-zero quantised weights)
    neuron_updates:    int64 [B], T * number of neurons
    active_neuron_updates: int64 [B], neuron-steps with a non-zero u or v (Loihi's "active" updates)
    u_wraps:           {layer: int64 [B]} neuron-steps where u left (-2**23, 2**23] and was wrapped
    v_saturations:     {layer: int64 [B]} neuron-steps where v was clipped to +-(2**23 - 1)
    message_overflows: {layer: int64 [B]} neuron-steps where |a_in| exceeded the 16-bit message range
    max_abs_u, max_abs_v: {layer: int} over all samples and steps (v before the spike reset)
    tape:              with record_tape, every spike of a LIF layer in emission order: {'sample', 'step',
                       'neuron' (index over fp.layers concatenated), 'u', 'v' (v before the reset)} int64 arrays
    """

    hidden_spikes: dict
    v_out: np.ndarray
    v_out_float: np.ndarray
    spike_counts: dict
    synops: np.ndarray
    neuron_updates: np.ndarray
    active_neuron_updates: np.ndarray
    u_wraps: dict
    v_saturations: dict
    message_overflows: dict
    max_abs_u: dict
    max_abs_v: dict
    tape: dict | None = None

    @property
    def n_samples(self) -> int:
        return self.v_out.shape[0]


def input_raster(data, lo: int, hi: int) -> np.ndarray:
    """Input spikes of samples lo..hi-1 as bool [hi-lo, n_steps, n_channels]."""
    raster = np.zeros((hi - lo, data.n_steps, data.n_channels), dtype=bool)
    a, b = data.offsets[lo], data.offsets[hi]
    sample = np.repeat(np.arange(hi - lo), np.diff(data.offsets[lo:hi + 1]))
    raster[sample, data.steps[a:b], data.channels[a:b]] = True
    return raster


def delay_groups(weight: np.ndarray, delay: np.ndarray, dtype) -> list:
    """[(d, W_d [pre, post])] for every distinct delay d, W_d holding the weights with that delay."""
    return [(int(d), np.where(delay == d, weight, 0).T.astype(dtype)) for d in np.unique(delay)]


def shift_message(acc: np.ndarray, weight_exp: int) -> np.ndarray:
    """Dense's a_out: acc << weight_exp, or arithmetic (floor) acc >> -weight_exp."""
    return np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)


def _decay(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """int32 x * keep / 4096 rounded toward zero, via int64 (Lava: sign(p) * (|p| >> 12), then np.int32)."""
    product = x.astype(np.int64) * keep
    return (np.sign(product) * (np.abs(product) >> DECAY_SHIFT)).astype(np.int32)


def lif_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du_keep: np.ndarray, dv_keep: np.ndarray,
             vth_shifted: int):
    """One Lava fixed-point LIF step on int32 [B, n] state (module docstring). Returns
    (u, v, spikes, wrapped, saturated, v_before_reset)."""
    total = _decay(u, du_keep) + np.left_shift(a_in, ACT_SHIFT)          # int32 + int32, wraps like Lava
    over, under = total > UV_HALF, total <= -UV_HALF
    u = np.where(over, total - 2 * UV_HALF, np.where(under, total + 2 * UV_HALF, total)).astype(np.int32)
    updated = _decay(v, dv_keep) + u                                      # int32 (bias is 0)
    saturated = (updated > V_MAX) | (updated < V_MIN)
    v = np.clip(updated, V_MIN, V_MAX).astype(np.int32)
    spikes = v > vth_shifted
    v_before = v
    v = np.where(spikes, 0, v).astype(np.int32)
    return u, v, spikes, over | under, saturated, v_before


def emulate(fp: FixedPointSpec, data, record_hidden: bool = True, chunk: int = CHUNK_SAMPLES,
            record_tape: bool = False) -> EmulatorResult:
    """Run `fp` on every sample of `data` (SpikeData) with Lava's integer arithmetic; state starts at zero for
    every sample. Steps: data.n_steps."""
    if data.n_channels != fp.input_size:
        raise ValueError(f"emulate: data has {data.n_channels} input channels, network input "
                         f"'{fp.input_name}' has {fp.input_size}")
    parts = [_emulate_chunk(fp, input_raster(data, lo, min(lo + chunk, len(data))), record_hidden, record_tape, lo)
             for lo in range(0, len(data), chunk)] \
        or [_emulate_chunk(fp, input_raster(data, 0, 0), record_hidden, record_tape, 0)]
    return _concat(fp, parts)


def _emulate_chunk(fp: FixedPointSpec, raster: np.ndarray, record_hidden: bool, record_tape: bool = False,
                   first_sample: int = 0) -> dict:
    n_batch, n_steps, _ = raster.shape
    offsets = np.cumsum([0] + [layer.size for layer in fp.layers])
    tape = {key: [] for key in ("sample", "step", "neuron", "u", "v")}
    # float32 matmuls are exact while |sums| < 2**24 (n_pre * 256 < 2**24)
    sizes = {fp.input_name: fp.input_size, **{layer.name: layer.size for layer in fp.layers}}
    groups = {c.name: delay_groups(c.weight, c.delay,
                                   np.float32 if sizes[c.source] * 256 < 2 ** 24 else np.float64)
              for c in fp.connections}
    depth = {layer.name: 1 + max([c.max_delay for c in fp.incoming(layer.name)], default=0) for layer in fp.layers}
    ring = {layer.name: np.zeros((depth[layer.name], n_batch, layer.size), np.int64) for layer in fp.layers}
    u = {layer.name: np.zeros((n_batch, layer.size), np.int32) for layer in fp.layers}
    v = {layer.name: np.zeros((n_batch, layer.size), np.int32) for layer in fp.layers}
    du_keep = {l.name: (DECAY_UNITY - (l.du.astype(np.int64) + DS_OFFSET)) for l in fp.layers}
    dv_keep = {l.name: (DECAY_UNITY - (l.dv.astype(np.int64) + DM_OFFSET)) for l in fp.layers}
    counts = {name: np.zeros((n_batch, size), np.int64) for name, size in sizes.items()}
    events = {key: {l.name: np.zeros(n_batch, np.int64) for l in fp.layers} for key in ("wrap", "sat", "msg")}
    max_u = {l.name: 0 for l in fp.layers}
    max_v = {l.name: 0 for l in fp.layers}
    hidden = {l.name: np.zeros((n_batch, n_steps, l.size), bool) for l in fp.layers[:-1]} if record_hidden else {}
    v_out = np.zeros((n_batch, n_steps, fp.output.size), np.int32)
    active = np.zeros(n_batch, np.int64)
    for k in range(n_steps):
        spikes = {fp.input_name: raster[:, k]}
        for layer in fp.layers:
            slot = ring[layer.name][k % depth[layer.name]]
            message = slot.copy()
            slot[:] = 0
            events["msg"][layer.name] += (np.abs(message) > MESSAGE_MAX).sum(axis=1)
            name = layer.name
            u[name], v[name], s, wrapped, saturated, v_before = lif_step(
                u[name], v[name], message.astype(np.int32), du_keep[name], dv_keep[name], layer.vth << VTH_SHIFT)
            active += ((u[name] != 0) | (v_before != 0)).sum(axis=1)
            events["wrap"][name] += wrapped.sum(axis=1)
            events["sat"][name] += saturated.sum(axis=1)
            max_u[name] = max(max_u[name], int(np.abs(u[name]).max(initial=0)))
            max_v[name] = max(max_v[name], int(np.abs(v_before).max(initial=0)))
            spikes[name] = s
            if name in hidden:
                hidden[name][:, k] = s
            if record_tape and layer.kind == "lif" and s.any():
                b_idx, n_idx = np.nonzero(s)
                tape["sample"].append(b_idx + first_sample)
                tape["step"].append(np.full(len(b_idx), k))
                tape["neuron"].append(n_idx + offsets[fp.layers.index(layer)])
                tape["u"].append(u[name][b_idx, n_idx].astype(np.int64))
                tape["v"].append(v_before[b_idx, n_idx].astype(np.int64))
        v_out[:, k] = v[fp.output.name]
        for name, s in spikes.items():
            counts[name] += s
        for conn in fp.connections:
            s = spikes[conn.source]
            if not s.any():
                continue
            target = ring[conn.target]
            for d, w in groups[conn.name]:
                acc = np.rint(s.astype(w.dtype) @ w).astype(np.int64)
                target[(k + 1 + d) % depth[conn.target]] += shift_message(acc, conn.weight_exp)
    synops = np.zeros(n_batch, np.int64)
    for conn in fp.connections:
        synops += counts[conn.source] @ (conn.weight != 0).sum(axis=0).astype(np.int64)
    return {"hidden": hidden, "v_out": v_out, "counts": {n: c.sum(axis=1) for n, c in counts.items()},
            "synops": synops, "events": events, "max_u": max_u, "max_v": max_v,
            "tape": {key: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
                     for key, parts in tape.items()} if record_tape else None,
            "neuron_updates": np.full(n_batch, n_steps * sum(l.size for l in fp.layers), np.int64),
            "active_neuron_updates": active}


def _concat(fp: FixedPointSpec, parts: list) -> EmulatorResult:
    def cat(get):
        return np.concatenate([get(p) for p in parts], axis=0)

    names = [l.name for l in fp.layers]
    v_out = cat(lambda p: p["v_out"])
    return EmulatorResult(
        hidden_spikes={n: cat(lambda p, n=n: p["hidden"][n]) for n in parts[0]["hidden"]},
        v_out=v_out,
        v_out_float=v_out.astype(np.float64) * fp.output.v_lsb,
        spike_counts={n: cat(lambda p, n=n: p["counts"][n]) for n in parts[0]["counts"]},
        synops=cat(lambda p: p["synops"]),
        neuron_updates=cat(lambda p: p["neuron_updates"]),
        active_neuron_updates=cat(lambda p: p["active_neuron_updates"]),
        u_wraps={n: cat(lambda p, n=n: p["events"]["wrap"][n]) for n in names},
        v_saturations={n: cat(lambda p, n=n: p["events"]["sat"][n]) for n in names},
        message_overflows={n: cat(lambda p, n=n: p["events"]["msg"][n]) for n in names},
        max_abs_u={n: max(p["max_u"][n] for p in parts) for n in names},
        max_abs_v={n: max(p["max_v"][n] for p in parts) for n in names},
        tape=None if parts[0]["tape"] is None else
        {key: np.concatenate([p["tape"][key] for p in parts]) for key in parts[0]["tape"]})


def readout_accuracy(spec, result, data) -> float:
    """Accuracy of a fixed-point run (emulator or Lava result) on `data`: the spec's readout of its output
    voltages."""
    return float(np.mean(spec.scores(result.v_out_float).argmax(axis=1) == data.labels))
