"""What the kernels read and return, as named bundles of arrays (one NamedTuple per role).

The CPU kernels (`kernels.forward_kernel`, `kernels.backward_kernel`) and their CUDA twins (`cuda_kernels.forward_cuda`,
`cuda_kernels.backward_cuda`) take the same bundles and return the same ones, so the network's ~16 arrays are named
once, here, and fields are read by name everywhere: two arrays of one type (alpha and beta) cannot be swapped by
position. numba compiles NamedTuples of arrays and scalars into plain structs, so the bundles cost nothing in the
kernels.

    NetworkArrays   the compiled network (CompiledNetwork.arrays, built once; its arrays are the network's own and
                    are updated in place by the optimisers, so the bundle always sees the current parameters)
    SpikeInputs     one batch of input events (SpikeData's CSR layout)
    ForwardOptions  per-call switches of the forward pass
    SpikeTape       what the forward pass records for the backward pass
    ForwardArrays   everything the forward kernel returns
    BackwardDrive   the loss's derivatives that drive the adjoint pass
    BackwardOptions per-call switches of the backward pass
    KernelGradients everything the backward kernel returns
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class NetworkArrays(NamedTuple):
    """The flat network of CompiledNetwork (neuron index space: non-input layers in spec order, outputs last;
    source index space: inputs, then neurons; each source owns segments of contiguous weights)."""

    n_steps: int                # time steps of a trial
    n_in: int                   # input channels
    n_out: int                  # output neurons (the last n_out of the neuron index space)
    ring_len: int               # largest max_delay_steps + 1: slots of the delay ring and history buffers
    alpha: np.ndarray           # [n_neurons] exp(-dt/tau_mem)
    beta: np.ndarray            # [n_neurons] exp(-dt/tau_syn)
    g: np.ndarray               # [n_neurons] input scale (1 - alpha)(tau_syn/dt)(1 - beta)
    theta: np.ndarray           # [n_neurons] threshold, +inf for LI outputs
    tau_mem: np.ndarray         # [n_neurons] ms
    tau_syn: np.ndarray         # [n_neurons] ms
    seg_ptr: np.ndarray         # [n_sources + 1] int64: segments of source s are seg_ptr[s]:seg_ptr[s + 1]
    seg_w0: np.ndarray          # [n_segments] int64: first flat weight index
    seg_len: np.ndarray         # [n_segments] int64: number of targets
    seg_tgt0: np.ndarray        # [n_segments] int64: first target neuron
    seg_delayed: np.ndarray     # [n_segments] bool: the segment's connection may have non-zero delays
    w_flat: np.ndarray          # [n_weights] weights; its dtype is the kernels' precision
    d_flat: np.ndarray          # [n_weights] int32 used delays in steps


class SpikeInputs(NamedTuple):
    """Input events of a batch: trial b's events are steps/channels[offsets[b]:offsets[b + 1]], in step order."""

    steps: np.ndarray
    channels: np.ndarray
    offsets: np.ndarray         # [B + 1]


class ForwardOptions(NamedTuple):
    max_spikes: int             # spike tape capacity per neuron and trial
    n_chunks: int               # parallel chunks of the batch (CPU; the GPU ignores it)
    cut_step: int               # -1, or mlGeNN's last-step quirk: currents and delay buffers zeroed at this step
    track_state: bool           # record the largest |g arrivals|, |g J|, V, -V per neuron (calibration)
    record_v: bool              # keep the output voltages of every step
    readout_w: np.ndarray       # [T] weighted-sum readout weights, or empty: no scores accumulated


class SpikeTape(NamedTuple):
    step: np.ndarray            # [B, C] int32 step of each taped spike
    neuron: np.ndarray          # [B, C] int32 neuron
    imv: np.ndarray             # [B, C] J - V just before the reset
    length: np.ndarray          # [B] int64 taped spikes per trial


class ForwardArrays(NamedTuple):
    v_out: np.ndarray           # [B, T, n_out] (or [B, 0, n_out] without record_v)
    tape: SpikeTape
    spike_count: np.ndarray     # [B, n_neurons] int32, taped or not
    overflow_neuron: np.ndarray  # [B] int32: first neuron past max_spikes, or -1
    state_max: np.ndarray       # [B, n_neurons, 4]
    scores: np.ndarray          # [B, n_out] weighted-sum readout scores (zeros without readout_w)


class BackwardDrive(NamedTuple):
    """dL/dV_out per step [B, T, n_out], or [B, 0, n_out] with the separable form readout_w[k] * dl_dscore[b, j];
    spike_jump [B, n_neurons] added to Lam_V at each taped spike; tape_dl_dt [B, C] (or [B, 0]) dL/dt of each taped
    spike [per ms]. All in the kernels' precision."""

    dl_dv_out: np.ndarray
    readout_w: np.ndarray
    dl_dscore: np.ndarray
    spike_jump: np.ndarray
    tape_dl_dt: np.ndarray


class BackwardOptions(NamedTuple):
    n_chunks: int
    cut_step: int
    need_delays: bool
    need_taus: bool


class KernelGradients(NamedTuple):
    """Summed over the batch: dL/dw, dL/dd [per ms of delay] (each [n_weights]); dL/dalpha, dL/dbeta [n_neurons]."""

    weights: np.ndarray
    delays_per_ms: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
