"""EventProp kernels on a CUDA GPU (numba.cuda): drop-in twins of `kernels.forward_kernel` / `backward_kernel`.

`forward_cuda` and `backward_cuda` take exactly the bundles of the CPU kernels (evprop/train/kernel_args.py) and
return the same ones (host numpy arrays, same shapes and dtypes), so the engine can pick either with a `device`
switch. The equations, the
in-step order and the ring / history buffers are the CPU kernels' (see the `kernels` module docstring); only the
parallel decomposition differs (docs/architecture.md §3). The host loops over time steps and launches, per step:

forward, step k
    1. `_fwd_neuron`     one thread per (trial, neuron): J = I + ring[b, k mod R, n], the branch-free update, the
                         threshold; a spike is appended to the trial's tape (slot from `cuda.atomic.add` on
                         tape_len[b]) and to the per-step spike list of the trial (atomic counter).
    2. `_fwd_propagate`  one thread per (trial, spike of step k, synapse of the spiking source): inputs of step k
                         and neuron spikes of step k; ring[b, (k + 1 + d) mod R, target] += w with an atomic add.
backward, step k (reverse)
    1. `_bwd_gather`     one thread per (trial, taped spike or input event of step k, synapse): atomically adds
                         Lam_J at the arrival step into dL/dw (and -w H into dL/dd, w M / w R into the alpha / beta
                         sums when requested) and, for neuron spikes, w H into the per-(trial, spike) jump sum `rev`.
    2. `_bwd_neuron`     one thread per (trial, neuron): the EventProp jump of a neuron that spiked in step k (from
                         its `rev` slot), the readout's drive, the adjoint step, the history rows of step k and the
                         time-constant recursions.

"One thread per (trial, spike, synapse)" is written as grid-stride loops (blocks stride over the trials (y) and the
spikes of the step (x), the threads of a block over the synapses of one spike), so any launch geometry is correct;
`_geometry` picks large blocks on a GPU and tiny ones in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, which runs
every thread as a Python thread).

Differences from the CPU kernels
    * Tape order: the tape of each trial is in nondecreasing step order (all spikes of step k are appended after all
      of step k-1: one launch per step), which is all the backward pass needs; the order of the spikes *within* one
      step is arbitrary (atomics). Results do not depend on it except through floating-point summation order.
    * Sums (ring arrivals, gradients, `rev`) are accumulated with atomics in an unspecified order, so results equal
      the CPU's to rounding (~1e-15 relative in float64), not bit for bit, and are not bitwise reproducible run to
      run. In float32 a voltage within rounding of the threshold may therefore spike on one backend and not on the
      other.
    * `n_chunks` is accepted and ignored (the GPU parallelises over trials and neurons / synapses instead).
    * backward_cuda requires a step-ordered tape (the CPU forward's and forward_cuda's are) and raises ValueError
      otherwise.
Everything else the CPU kernels support is supported: delays (ring length R = max delay + 1), the mlGeNN cut step,
need_delays / need_taus, track_state, the compact readout (record_v False + readout_w), spike_jump, tape_dl_dt,
spike-tape overflow (same overflow_neuron: the first step's lowest neuron), float32 / float64 (the dtype of w_flat).
A GPU with compute capability >= 6.0 is needed for the float64 atomic adds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config as numba_config
from numba import cuda

from .kernel_args import ForwardArrays, KernelGradients, NetworkArrays, SpikeTape

OVERFLOW_NONE = -1
_NO_KEY = np.iinfo(np.int64).max        # overflow key k * n_neurons + n: atomic.min keeps the first step's lowest n


def _simulator() -> bool:
    return bool(numba_config.ENABLE_CUDASIM)


def _geometry(n_items: int, fanout: int, n_batch: int):
    """(blocks per grid (x = spikes, y = trials), threads per block) of a per-(trial, spike, synapse) launch."""
    if _simulator():
        threads = max(1, min(fanout, 4))
        blocks_x = max(1, min(n_items, 2))
    else:
        threads = min(256, 32 * max(1, math.ceil(fanout / 32)))
        blocks_x = max(1, min(n_items, 1024))
    return (blocks_x, max(1, min(n_batch, 65535))), threads


def _geometry_1d(n_threads: int):
    threads = 32 if _simulator() else 128
    return max(1, min(math.ceil(n_threads / threads), 65535)), threads


def _dev(a, dtype=None):
    """Host array -> device array; empty arrays become one zero element (zero-size device buffers are avoided)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.size == 0:
        a = np.zeros((1,) * max(a.ndim, 1), dtype=a.dtype)
    return cuda.to_device(a)


def _event_pointers(in_steps, in_offsets, n_steps):
    """[B, T + 1]: first input event of trial b with step >= k (events of a trial are in step order)."""
    n_batch = len(in_offsets) - 1
    ptr = np.empty((n_batch, n_steps + 1), dtype=np.int64)
    ks = np.arange(n_steps + 1)
    for b in range(n_batch):
        lo, hi = int(in_offsets[b]), int(in_offsets[b + 1])
        ptr[b] = lo + np.searchsorted(np.asarray(in_steps[lo:hi]), ks, side="left")
    return ptr


def _fanout(seg_ptr, seg_len):
    """Synapses of each source (sum of its segments' lengths)."""
    n_sources = len(seg_ptr) - 1
    owner = np.repeat(np.arange(n_sources), np.diff(seg_ptr))
    return np.bincount(owner, weights=np.asarray(seg_len, dtype=np.float64), minlength=n_sources).astype(np.int64)


# ------------------------------------------------------------------------------------------------ device code

@cuda.jit(device=True, inline=True)
def _synapse(src, t, net):
    """The t-th synapse of source `src` over its segments: (flat weight index, target neuron, delay in steps)."""
    s = net.seg_ptr[src]
    off = t
    while off >= net.seg_len[s]:
        off -= net.seg_len[s]
        s += 1
    idx = net.seg_w0[s] + off
    d = 0
    if net.seg_delayed[s]:
        d = net.d_flat[idx]
    return idx, net.seg_tgt0[s] + off, d


@cuda.jit
def _fwd_neuron(k, cut, out0, out0_spiking, max_spikes, net, v, cur, ring,
                spike_count, tape_step, tape_neuron, tape_imv, tape_len, ovf_key, step_spk, step_cnt,
                track_state, state_max, record_v, v_out, has_readout, readout_w, scores):
    n_batch, n_neurons = v.shape
    ring_len = ring.shape[1]
    alpha, beta, g, theta = net.alpha, net.beta, net.g, net.theta
    par = k % 2
    slot = k % ring_len
    start = cuda.grid(1)
    for tid in range(start, n_batch * n_neurons, cuda.gridsize(1)):
        b = tid // n_neurons
        n = tid - b * n_neurons
        if n == 0:
            step_cnt[b, 1 - par] = 0            # the previous step's list (its propagation has run)
        if k == cut:
            cur[b, n] = 0.0
        arrival = ring[b, slot, n]
        ring[b, slot, n] = 0.0
        j = cur[b, n] + arrival
        vn = alpha[n] * v[b, n] + g[n] * j
        if track_state:     # (no max / abs builtins: plain comparisons compile on every numba CUDA target)
            a_in = g[n] * arrival
            a_u = g[n] * j
            if a_in < 0:
                a_in = -a_in
            if a_u < 0:
                a_u = -a_u
            if a_in > state_max[b, n, 0]:
                state_max[b, n, 0] = a_in
            if a_u > state_max[b, n, 1]:
                state_max[b, n, 1] = a_u
            if vn > state_max[b, n, 2]:
                state_max[b, n, 2] = vn
            if -vn > state_max[b, n, 3]:
                state_max[b, n, 3] = -vn
        cur[b, n] = beta[n] * j
        v[b, n] = vn
        if n < out0_spiking and vn >= theta[n]:
            count = spike_count[b, n] + 1
            spike_count[b, n] = count
            if count <= max_spikes:
                p = cuda.atomic.add(tape_len, b, 1)
                tape_step[b, p] = k
                tape_neuron[b, p] = n
                tape_imv[b, p] = j - vn
            else:
                cuda.atomic.min(ovf_key, b, k * n_neurons + n)
            v[b, n] = 0.0
            q = cuda.atomic.add(step_cnt, (b, par), 1)
            step_spk[b, q] = n
        if n >= out0:
            if record_v:
                v_out[b, k, n - out0] = v[b, n]
            if has_readout:
                scores[b, n - out0] += readout_w[k] * v[b, n]
        if k + 1 == cut:
            ring[b, (k + 1) % ring_len, n] = 0.0    # drop arrivals of earlier, delayed spikes


@cuda.jit
def _fwd_propagate(k, in_ptr, in_channels, step_spk, step_cnt, net, fanout, ring):
    n_batch = ring.shape[0]
    n_in = net.n_in
    ring_len = ring.shape[1]
    par = k % 2
    for b in range(cuda.blockIdx.y, n_batch, cuda.gridDim.y):
        ev0 = in_ptr[b, k]
        n_ev = in_ptr[b, k + 1] - ev0
        for s in range(cuda.blockIdx.x, n_ev + step_cnt[b, par], cuda.gridDim.x):
            if s < n_ev:
                src = in_channels[ev0 + s]
            else:
                src = n_in + step_spk[b, s - n_ev]
            for t in range(cuda.threadIdx.x, fanout[src], cuda.blockDim.x):
                idx, tgt, d = _synapse(src, t, net)
                cuda.atomic.add(ring, (b, (k + 1 + d) % ring_len, tgt), net.w_flat[idx])


@cuda.jit
def _bwd_gather(k, cut, need_delays, need_taus, in_ptr, in_channels, tape_ptr, tape_neuron, net, fanout,
                hist_j, hist_h, hist_r, hist_m, gw, gd, ga, gb, rev, spike_slot):
    n_batch = hist_j.shape[0]
    n_in = net.n_in
    ring_len = hist_j.shape[1]
    for b in range(cuda.blockIdx.y, n_batch, cuda.gridDim.y):
        p0 = tape_ptr[b, k]
        n_sp = tape_ptr[b, k + 1] - p0
        ev0 = in_ptr[b, k]
        n_ev = in_ptr[b, k + 1] - ev0
        for s in range(cuda.blockIdx.x, n_sp + n_ev, cuda.gridDim.x):
            if s < n_sp:
                src = n_in + tape_neuron[b, p0 + s]
                if cuda.threadIdx.x == 0:
                    spike_slot[b, src - n_in] = s
            else:
                src = in_channels[ev0 + s - n_sp]
            for t in range(cuda.threadIdx.x, fanout[src], cuda.blockDim.x):
                idx, tgt, d = _synapse(src, t, net)
                if cut >= 0 and k + 1 + d == cut and d > 0:
                    continue                    # an arrival the forward pass dropped at the cut step
                slot = (k + 1 + d) % ring_len
                w = net.w_flat[idx]
                wh = w * hist_h[b, slot, tgt]
                cuda.atomic.add(gw, idx, hist_j[b, slot, tgt])
                if s < n_sp:
                    cuda.atomic.add(rev, (b, s), wh)
                if need_delays:
                    cuda.atomic.add(gd, idx, -wh)
                if need_taus:
                    cuda.atomic.add(ga, tgt, w * hist_m[b, slot, tgt])
                    cuda.atomic.add(gb, tgt, w * hist_r[b, slot, tgt])


@cuda.jit
def _bwd_neuron(k, cut, out0, need_taus, net, inv_tau_mem, inv_tau_syn,
                tape_ptr, tape_imv, has_dldt, tape_dl_dt, spike_jump, has_dv, dl_dv_out, has_readout, readout_w,
                dl_dscore, rev, spike_slot, jump, lam_v, lam_j, prev_lv, prev_lj, rec_r, rec_p, rec_m, spiked,
                hist_j, hist_h, hist_r, hist_m):
    n_batch, n_neurons = lam_v.shape
    ring_len = hist_j.shape[1]
    alpha, beta, g, theta, tau_mem = net.alpha, net.beta, net.g, net.theta, net.tau_mem
    slot = k % ring_len
    for tid in range(cuda.grid(1), n_batch * n_neurons, cuda.gridsize(1)):
        b = tid // n_neurons
        n = tid - b * n_neurons
        # 1. EventProp jump of a spike of n in step k (its rev slot is complete: the gather launch has finished)
        sl = spike_slot[b, n]
        if sl >= 0:
            p = tape_ptr[b, k] + sl
            dl_dt = 0.0
            if has_dldt:
                dl_dt = tape_dl_dt[b, p]
            jump[b, n] = (theta[n] * lam_v[b, n] + tau_mem[n] * (rev[b, sl] - dl_dt)) / tape_imv[b, p] \
                + spike_jump[b, n]
            rev[b, sl] = 0.0
            spike_slot[b, n] = -1
            spiked[b, n] = 1
        # 2. the readout's drive of the outputs
        if n >= out0:
            if has_dv:
                jump[b, n] += dl_dv_out[b, k, n - out0]
            elif has_readout:
                jump[b, n] += readout_w[k] * dl_dscore[b, n - out0]
        # 3. adjoint step and history rows of step k
        lv = lam_v[b, n] + jump[b, n]
        jump[b, n] = 0.0
        lj = g[n] * lv + lam_j[b, n]
        hist_j[b, slot, n] = lj
        hist_h[b, slot, n] = lv * inv_tau_mem[n] - lj * inv_tau_syn[n]
        lam_j[b, n] = beta[n] * lj
        lam_v[b, n] = alpha[n] * lv
        if k == cut:
            lam_j[b, n] = 0.0                   # the cut current carries nothing back to earlier steps
        # 4. time-constant recursions (the cut step has no link to step k)
        if need_taus:
            if k + 1 == cut:
                rec_r[b, n] = 0.0
            else:
                rec_r[b, n] = prev_lj[b, n] + beta[n] * rec_r[b, n]
            if spiked[b, n]:
                rec_p[b, n] = 0.0
            else:
                rec_p[b, n] = prev_lv[b, n] + alpha[n] * rec_p[b, n]
            if k + 1 == cut:
                rec_m[b, n] = rec_p[b, n]
            else:
                rec_m[b, n] = rec_p[b, n] + beta[n] * rec_m[b, n]
            hist_r[b, slot, n] = rec_r[b, n]
            hist_m[b, slot, n] = rec_m[b, n]
            prev_lv[b, n] = lv
            prev_lj[b, n] = hist_j[b, slot, n]
            spiked[b, n] = 0


# ------------------------------------------------------------------------------------------------ host functions

def forward_cuda(net, inputs, options):
    """`kernels.forward_kernel` on the GPU: same bundles in (kernel_args.NetworkArrays, SpikeInputs,
    ForwardOptions), same ForwardArrays out, as host arrays. The tape of a trial is in step order; within a step its
    order is arbitrary. `options.n_chunks` is ignored."""
    in_steps, in_channels, in_offsets = inputs.steps, inputs.channels, inputs.offsets
    n_steps, n_out, ring_len, theta = net.n_steps, net.n_out, net.ring_len, net.theta
    seg_ptr, seg_len, w_flat = net.seg_ptr, net.seg_len, net.w_flat
    max_spikes, current_cut_step = options.max_spikes, options.cut_step
    track_state, record_v, readout_w = options.track_state, options.record_v, options.readout_w
    n_batch = len(in_offsets) - 1
    n_neurons = len(net.alpha)
    n_steps = int(n_steps)
    ring_len = int(ring_len)
    fdt = np.asarray(w_flat).dtype
    capacity = int(max_spikes) * n_neurons
    out0 = n_neurons - n_out
    out0_spiking = n_neurons if np.any(np.isfinite(np.asarray(theta)[out0:])) else out0
    readout_w = np.asarray(readout_w)
    has_readout = len(readout_w) > 0
    if has_readout and len(readout_w) < n_steps:
        raise ValueError(f"readout_w has {len(readout_w)} entries for {n_steps} steps")
    scores_host = np.zeros((n_batch, n_out))
    v_out_shape = (n_batch, n_steps if record_v else 0, n_out)
    if n_batch == 0 or n_neurons == 0:
        tape = SpikeTape(np.empty((n_batch, capacity), dtype=np.int32), np.empty((n_batch, capacity), dtype=np.int32),
                         np.empty((n_batch, capacity), dtype=fdt), np.zeros(n_batch, dtype=np.int64))
        return ForwardArrays(np.zeros(v_out_shape, dtype=fdt), tape, np.zeros((n_batch, n_neurons), dtype=np.int32),
                             np.full(n_batch, OVERFLOW_NONE, dtype=np.int32),
                             np.zeros((n_batch, n_neurons, 4), dtype=fdt), scores_host)

    in_ptr = _event_pointers(in_steps, in_offsets, n_steps)
    fanout = _fanout(seg_ptr, seg_len)
    max_events = int(np.max(np.diff(in_ptr, axis=1))) if n_steps > 0 else 0
    # constants and inputs
    d_in_ptr, d_in_channels = _dev(in_ptr), _dev(in_channels, np.int64)
    d_net = _device_network(net)
    d_fanout = _dev(fanout)
    d_readout = _dev(readout_w)
    # state and outputs
    d_v = cuda.to_device(np.zeros((n_batch, n_neurons), dtype=fdt))
    d_cur = cuda.to_device(np.zeros((n_batch, n_neurons), dtype=fdt))
    d_ring = cuda.to_device(np.zeros((n_batch, ring_len, n_neurons), dtype=fdt))
    d_count = cuda.to_device(np.zeros((n_batch, n_neurons), dtype=np.int32))
    d_tape_step = cuda.device_array((n_batch, max(capacity, 1)), dtype=np.int32)
    d_tape_neuron = cuda.device_array((n_batch, max(capacity, 1)), dtype=np.int32)
    d_tape_imv = cuda.device_array((n_batch, max(capacity, 1)), dtype=fdt)
    d_tape_len = cuda.to_device(np.zeros(n_batch, dtype=np.int64))
    d_ovf = cuda.to_device(np.full(n_batch, _NO_KEY, dtype=np.int64))
    d_step_spk = cuda.device_array((n_batch, max(out0_spiking, 1)), dtype=np.int32)
    d_step_cnt = cuda.to_device(np.zeros((n_batch, 2), dtype=np.int64))
    d_state = cuda.to_device(np.zeros((n_batch, n_neurons, 4) if track_state else (1, 1, 4), dtype=fdt))
    d_v_out = cuda.to_device(np.zeros(v_out_shape if record_v else (1, 1, 1), dtype=fdt))
    d_scores = cuda.to_device(scores_host)

    grid_n, block_n = _geometry_1d(n_batch * n_neurons)
    grid_p, block_p = _geometry(max_events + out0_spiking, int(fanout.max(initial=0)), n_batch)
    cut = int(current_cut_step)
    for k in range(n_steps):
        _fwd_neuron[grid_n, block_n](k, cut, out0, out0_spiking, int(max_spikes), d_net, d_v, d_cur, d_ring,
                                     d_count, d_tape_step, d_tape_neuron, d_tape_imv, d_tape_len, d_ovf,
                                     d_step_spk, d_step_cnt, bool(track_state), d_state, bool(record_v), d_v_out,
                                     has_readout, d_readout, d_scores)
        _fwd_propagate[grid_p, block_p](k, d_in_ptr, d_in_channels, d_step_spk, d_step_cnt, d_net, d_fanout,
                                        d_ring)
    cuda.synchronize()

    v_out = d_v_out.copy_to_host() if record_v else np.zeros(v_out_shape, dtype=fdt)
    tape_step = d_tape_step.copy_to_host()[:, :capacity]
    tape_neuron = d_tape_neuron.copy_to_host()[:, :capacity]
    tape_imv = d_tape_imv.copy_to_host()[:, :capacity]
    ovf = d_ovf.copy_to_host()
    overflow = np.where(ovf == _NO_KEY, OVERFLOW_NONE, ovf % n_neurons).astype(np.int32)
    state_max = d_state.copy_to_host() if track_state else np.zeros((n_batch, n_neurons, 4), dtype=fdt)
    tape = SpikeTape(tape_step, tape_neuron, tape_imv, d_tape_len.copy_to_host())
    return ForwardArrays(v_out, tape, d_count.copy_to_host(), overflow, state_max, d_scores.copy_to_host())


def _device_network(net: NetworkArrays) -> NetworkArrays:
    """The same bundle with every array on the device (floats in the weights' precision, indices int64), passed
    whole to the kernels (numba.cuda flattens tuple arguments)."""
    fdt = np.asarray(net.w_flat).dtype
    floats = ("alpha", "beta", "g", "theta", "tau_mem", "tau_syn", "w_flat")
    ints = ("seg_ptr", "seg_w0", "seg_len", "seg_tgt0", "d_flat")
    return net._replace(**{name: _dev(getattr(net, name), fdt) for name in floats},
                        **{name: _dev(getattr(net, name), np.int64) for name in ints},
                        seg_delayed=_dev(net.seg_delayed, np.bool_),
                        n_steps=int(net.n_steps), n_in=int(net.n_in), n_out=int(net.n_out),
                        ring_len=int(net.ring_len))


def backward_cuda(net, inputs, tape, drive, options):
    """`kernels.backward_kernel` on the GPU: same bundles in (kernel_args.NetworkArrays, SpikeInputs, SpikeTape,
    BackwardDrive, BackwardOptions), same KernelGradients out, as host arrays. The tape of each trial must be in
    nondecreasing step order (any order within a step). `options.n_chunks` is ignored."""
    in_steps, in_channels, in_offsets = inputs.steps, inputs.channels, inputs.offsets
    n_steps, n_out, ring_len = net.n_steps, net.n_out, net.ring_len
    g, tau_mem, tau_syn = net.g, net.tau_mem, net.tau_syn
    seg_ptr, seg_len, w_flat = net.seg_ptr, net.seg_len, net.w_flat
    tape_step, tape_neuron, tape_imv, tape_len = tape.step, tape.neuron, tape.imv, tape.length
    dl_dv_out, readout_w, dl_dscore = drive.dl_dv_out, drive.readout_w, drive.dl_dscore
    spike_jump, tape_dl_dt = drive.spike_jump, drive.tape_dl_dt
    current_cut_step, need_delays, need_taus = options.cut_step, options.need_delays, options.need_taus
    n_batch = len(in_offsets) - 1
    n_neurons = len(g)
    n_steps = int(n_steps)
    ring_len = int(ring_len)
    fdt = np.asarray(w_flat).dtype
    n_w = len(w_flat)
    out0 = n_neurons - n_out
    tape_step = np.asarray(tape_step)
    tape_len = np.asarray(tape_len)
    grad_w = np.zeros(n_w, dtype=fdt)
    if n_batch == 0 or n_neurons == 0:
        return KernelGradients(grad_w, np.zeros(n_w, dtype=fdt), np.zeros(n_neurons, dtype=fdt),
                               np.zeros(n_neurons, dtype=fdt))

    # per-(trial, step) tape pointers; the tape must be step-ordered
    tape_ptr = np.empty((n_batch, n_steps + 1), dtype=np.int64)
    ks = np.arange(n_steps + 1)
    for b in range(n_batch):
        steps = tape_step[b, :int(tape_len[b])]
        if np.any(np.diff(steps) < 0):
            raise ValueError(f"backward_cuda: the spike tape of trial {b} is not in step order")
        tape_ptr[b] = np.searchsorted(steps, ks, side="left")
    in_ptr = _event_pointers(in_steps, in_offsets, n_steps)
    fanout = _fanout(seg_ptr, seg_len)
    max_items = int(np.max(np.diff(in_ptr, axis=1) + np.diff(tape_ptr, axis=1))) if n_steps > 0 else 0
    max_spikes_step = int(np.max(np.diff(tape_ptr, axis=1))) if n_steps > 0 else 0

    dl_dv_out = np.asarray(dl_dv_out)
    readout_w = np.asarray(readout_w)
    tape_dl_dt = np.asarray(tape_dl_dt)
    has_dv = dl_dv_out.ndim == 3 and dl_dv_out.shape[1] > 0
    has_readout = len(readout_w) > 0
    has_dldt = tape_dl_dt.ndim == 2 and tape_dl_dt.shape[1] > 0
    if has_dv and dl_dv_out.shape[1] < n_steps:
        raise ValueError(f"dl_dv_out has {dl_dv_out.shape[1]} steps, expected {n_steps}")
    if not has_dv and has_readout and len(readout_w) < n_steps:
        raise ValueError(f"readout_w has {len(readout_w)} entries for {n_steps} steps")

    d_in_ptr, d_in_channels = _dev(in_ptr), _dev(in_channels, np.int64)
    d_net = _device_network(net)
    d_inv_tm = _dev((1.0 / np.asarray(tau_mem)).astype(fdt))
    d_inv_ts = _dev((1.0 / np.asarray(tau_syn)).astype(fdt))
    d_fanout = _dev(fanout)
    d_tape_ptr, d_tape_neuron, d_tape_imv = _dev(tape_ptr), _dev(tape_neuron, np.int32), _dev(tape_imv, fdt)
    d_dldt = _dev(tape_dl_dt, fdt)
    d_spike_jump = _dev(spike_jump, fdt)
    d_dv = _dev(dl_dv_out, fdt)
    d_readout = _dev(readout_w, fdt)
    d_dscore = _dev(dl_dscore, fdt)

    def zeros(shape, dtype=fdt):
        return cuda.to_device(np.zeros(shape, dtype=dtype))

    per_neuron = (n_batch, n_neurons)
    hist = (n_batch, ring_len, n_neurons)
    d_lam_v, d_lam_j, d_prev_lv, d_prev_lj = (zeros(per_neuron) for _ in range(4))
    d_rec_r, d_rec_p, d_rec_m, d_jump = (zeros(per_neuron) for _ in range(4))
    d_spiked = zeros(per_neuron, np.int8)
    d_spike_slot = cuda.to_device(np.full(per_neuron, -1, dtype=np.int64))
    d_rev = zeros((n_batch, max(max_spikes_step, 1)), np.float64)
    d_hist_j, d_hist_h = zeros(hist), zeros(hist)
    d_hist_r, d_hist_m = (zeros(hist), zeros(hist)) if need_taus else (zeros((1, 1, 1)), zeros((1, 1, 1)))
    d_gw, d_gd = zeros(max(n_w, 1)), zeros(max(n_w, 1))
    d_ga, d_gb = zeros(n_neurons), zeros(n_neurons)

    grid_n, block_n = _geometry_1d(n_batch * n_neurons)
    grid_p, block_p = _geometry(max_items, int(fanout.max(initial=0)), n_batch)
    cut = int(current_cut_step)
    need_delays, need_taus = bool(need_delays), bool(need_taus)
    for k in range(n_steps - 1, -1, -1):
        if max_items > 0:
            _bwd_gather[grid_p, block_p](k, cut, need_delays, need_taus, d_in_ptr, d_in_channels, d_tape_ptr,
                                         d_tape_neuron, d_net, d_fanout, d_hist_j, d_hist_h, d_hist_r, d_hist_m,
                                         d_gw, d_gd, d_ga, d_gb, d_rev, d_spike_slot)
        _bwd_neuron[grid_n, block_n](k, cut, out0, need_taus, d_net, d_inv_tm, d_inv_ts, d_tape_ptr, d_tape_imv,
                                     has_dldt, d_dldt, d_spike_jump, has_dv, d_dv, has_readout, d_readout, d_dscore,
                                     d_rev, d_spike_slot, d_jump, d_lam_v, d_lam_j, d_prev_lv, d_prev_lj, d_rec_r,
                                     d_rec_p, d_rec_m, d_spiked, d_hist_j, d_hist_h, d_hist_r, d_hist_m)
    cuda.synchronize()
    grad_w = d_gw.copy_to_host()[:n_w]
    grad_d = d_gd.copy_to_host()[:n_w]
    return KernelGradients(grad_w, grad_d, d_ga.copy_to_host() * np.asarray(g, dtype=fdt), d_gb.copy_to_host())
