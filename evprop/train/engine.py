"""Python face of the kernels: one forward and one backward pass of a batch on a CompiledNetwork."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..data.spikes import SpikeData
from ..model.spec import discretise_backward
from .compiled import CompiledNetwork
from .kernel_args import BackwardDrive, BackwardOptions, ForwardOptions, SpikeInputs, SpikeTape
from .kernels import OVERFLOW_NONE, backward_kernel, forward_kernel

NO_CUT = -1


class SpikeTapeOverflow(RuntimeError):
    """A neuron fired more spikes in one trial than its spike tape holds."""


def _kernels(net: CompiledNetwork):
    """(forward, backward) kernels of the network's device: 'cpu' (numba prange) or 'cuda' (numba.cuda, one thread
    per (trial, neuron) and per (trial, spike, synapse); evprop/train/cuda_kernels.py)."""
    if net.device == "cuda":
        from .cuda_kernels import backward_cuda, forward_cuda      # numba.cuda only when asked for
        return forward_cuda, backward_cuda
    return forward_kernel, backward_kernel


def n_chunks_for(batch_size: int) -> int:
    """Parallel chunks of a batch: one per core (fixed, so results do not depend on scheduling)."""
    return max(1, min(batch_size, os.cpu_count() or 1))


@dataclass(frozen=True, eq=False)
class ForwardResult:
    v_out: np.ndarray           # [B, T, n_out] output voltages after each step
    tape_step: np.ndarray       # [B, C] step of each taped spike (emission order)
    tape_neuron: np.ndarray     # [B, C] neuron of each taped spike
    tape_imv: np.ndarray        # [B, C] I - V just before the reset
    tape_len: np.ndarray        # [B]
    spike_count: np.ndarray     # [B, n_neurons] spikes per neuron (taped or not)
    dropped: dict               # layer name -> spikes not taped (only with allow_overflow)
    state_max: np.ndarray       # [B, n_neurons, 4] max |g*arrivals|, |g*J|, V, -V (zeros unless track_state)
    scores: np.ndarray | None = None   # [B, n_out] weighted-sum readout accumulated in the kernel (compact mode)

    def first_spikes(self, neurons: slice):
        """(first spike step [B, n] (n_steps where silent), its tape index [B, n] (-1 where silent)) of the
        neurons in `neurons`."""
        n_batch, n_steps = self.v_out.shape[:2]
        size = neurons.stop - neurons.start
        step = np.full((n_batch, size), n_steps, dtype=np.int64)
        index = np.full((n_batch, size), -1, dtype=np.int64)
        for b in range(n_batch):
            who = self.tape_neuron[b, :self.tape_len[b]]
            for p in np.nonzero((who >= neurons.start) & (who < neurons.stop))[0][::-1]:   # last write: first
                step[b, who[p] - neurons.start] = self.tape_step[b, p]
                index[b, who[p] - neurons.start] = p
        return step, index

    def spike_raster(self, neurons: slice) -> np.ndarray:
        """Taped spikes of the neurons in `neurons` as bool [B, T, n]."""
        n_batch, n_steps = self.v_out.shape[:2]
        raster = np.zeros((n_batch, n_steps, neurons.stop - neurons.start), dtype=bool)
        for b in range(n_batch):
            steps, who = self.tape_step[b, :self.tape_len[b]], self.tape_neuron[b, :self.tape_len[b]]
            sel = (who >= neurons.start) & (who < neurons.stop)
            raster[b, steps[sel], who[sel] - neurons.start] = True
        return raster


def forward(net: CompiledNetwork, data: SpikeData, max_spikes: int, allow_overflow: bool = False,
            mlgenn_last_step: bool = False, track_state: bool = False, compact: bool = False) -> ForwardResult:
    """Simulate every sample of `data` (one batch). A neuron firing more than `max_spikes` times is an error
    naming its layer and the capacity, unless `allow_overflow`, in which case the untaped spikes are counted.
    track_state records the largest input, current and voltage of every neuron (quantiser calibration).
    compact (weighted-sum readouts): accumulate the readout scores in the kernel instead of keeping the output
    voltages of every step, so memory does not grow with the trial length (v_out is then [B, 0, n_out])."""
    if data.n_channels != net.n_in or data.n_steps != net.spec.n_steps:
        raise ValueError(f"data has {data.n_channels} channels x {data.n_steps} steps, the network expects "
                         f"{net.n_in} x {net.spec.n_steps}")
    cut = int(net.spec.n_steps) - 1 if mlgenn_last_step else NO_CUT
    readout_w = net.spec.readout_weights() if compact else np.zeros(0)
    options = ForwardOptions(max_spikes=int(max_spikes), n_chunks=n_chunks_for(len(data)), cut_step=cut,
                             track_state=bool(track_state), record_v=not compact, readout_w=readout_w)
    out = _kernels(net)[0](net.arrays, spike_inputs(data), options)
    counts, overflow = out.spike_count, out.overflow_neuron
    dropped = {}
    if np.any(overflow != OVERFLOW_NONE):
        if not allow_overflow:
            b = int(np.nonzero(overflow != OVERFLOW_NONE)[0][0])
            neuron = int(overflow[b])
            layer = net.layer_of_neuron(neuron)
            raise SpikeTapeOverflow(
                f"spike tape overflow in layer '{layer}': neuron {neuron - net.layer_slices[layer].start} fired "
                f"{counts[b, neuron]} spikes in one trial, capacity is max_spikes={max_spikes} "
                f"(raise train.max_spikes or set train.allow_overflow = true)")
        excess = np.maximum(counts - max_spikes, 0).sum(axis=0)
        dropped = {name: int(v.sum()) for name, v in net.per_layer(excess).items()}
    tape = out.tape
    return ForwardResult(out.v_out, tape.step, tape.neuron, tape.imv, tape.length, counts, dropped, out.state_max,
                         out.scores if compact else None)


def spike_inputs(data: SpikeData) -> SpikeInputs:
    """The kernels' view of a batch's input events."""
    return SpikeInputs(steps=data.steps, channels=data.channels, offsets=data.offsets)



class Gradients(NamedTuple):
    """dL/d(parameter), summed over the batch (the loss's drive already carries the 1/B of the batch mean)."""

    weights: np.ndarray         # [n_weights], flat like CompiledNetwork.w_flat
    delays: np.ndarray          # [n_weights], per step of delay (the unit Connection.delay is stored in)
    tau_mem: np.ndarray         # [n_neurons], per ms
    tau_syn: np.ndarray         # [n_neurons], per ms


def backward(net: CompiledNetwork, data: SpikeData, fwd: ForwardResult, dl_dv_out: np.ndarray,
             spike_jump: np.ndarray | None = None, mlgenn_last_step: bool = False,
             tape_dl_dt: np.ndarray | None = None, need_delays: bool = True, need_taus: bool = True,
             dl_dscore: np.ndarray | None = None) -> Gradients:
    """EventProp gradients of the batch. dl_dv_out [B, T, n_out]: the loss's derivative per output voltage.
    spike_jump [B, n_neurons]: extra Lam_V jump at each taped spike (regulariser). tape_dl_dt [B, C]: a spike-time
    loss's derivative per taped spike [per ms]. need_delays / need_taus: compute those gradients (else zeros).
    dl_dscore [B, n_out] instead of dl_dv_out (None): the drive of a weighted-sum readout in separable form,
    dL/dV_bjk = readout_w[k] dl_dscore[b, j] (after a compact forward pass)."""
    if spike_jump is None:
        spike_jump = np.zeros((len(data), net.n_neurons))
    if tape_dl_dt is None:
        tape_dl_dt = np.zeros((len(data), 0))
    cut = int(net.spec.n_steps) - 1 if mlgenn_last_step else NO_CUT
    if dl_dscore is not None:
        readout_w, dl_dv_out = net.spec.readout_weights(), np.zeros((len(data), 0, net.n_out))
    else:
        readout_w, dl_dscore = np.zeros(0), np.zeros((len(data), 0))
    fdt = net.w_flat.dtype
    drive = BackwardDrive(dl_dv_out=np.ascontiguousarray(dl_dv_out, dtype=fdt), readout_w=readout_w.astype(fdt),
                          dl_dscore=np.ascontiguousarray(dl_dscore, dtype=fdt),
                          spike_jump=np.ascontiguousarray(spike_jump, dtype=fdt),
                          tape_dl_dt=np.ascontiguousarray(tape_dl_dt, dtype=fdt))
    tape = SpikeTape(step=fwd.tape_step, neuron=fwd.tape_neuron, imv=fwd.tape_imv, length=fwd.tape_len)
    options = BackwardOptions(n_chunks=n_chunks_for(len(data)), cut_step=cut, need_delays=bool(need_delays),
                              need_taus=bool(need_taus))
    grads = _kernels(net)[1](net.arrays, spike_inputs(data), tape, drive, options)
    grad_w, grad_d_per_ms, grad_alpha, grad_beta = grads
    grad_tau_mem, grad_tau_syn = _tau_gradients(net, grad_w, grad_alpha, grad_beta) if need_taus \
        else (np.zeros(net.n_neurons), np.zeros(net.n_neurons))
    # the kernel's delay gradient is per ms of delay (Meszaros et al. 2025, eq. 6); delays are parameters in
    # steps of dt
    return Gradients(grad_w, grad_d_per_ms * net.spec.dt_ms, grad_tau_mem, grad_tau_syn)


def _tau_gradients(net: CompiledNetwork, grad_w, grad_alpha, grad_beta):
    """Chain rule from the discrete constants to the time constants (kernels module docstring; model.spec
    discretise_backward), with dL/dg_n = (1/g_n) sum over the synapses into n of w dL/dw (scaling g scales every
    incoming weight)."""
    w_times_grad = net.w_flat * grad_w
    grad_g = np.zeros(net.n_neurons)
    for conn in net.spec.connections:
        post = net.layer_slices[conn.target]
        grad_g[post] += w_times_grad[net.conn_slices[conn.name]].reshape(conn.weight.shape).sum(axis=0)
    grad_g /= net.g
    return discretise_backward(grad_alpha, grad_beta, grad_g, net.tau_mem, net.tau_syn, net.spec.dt_ms, net.alpha,
                               net.beta)
