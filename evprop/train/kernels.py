"""EventProp kernels (numba): forward pass with spike tapes, backward pass with adjoint history buffers.

The hot loops of training live here and nowhere else. Everything runs on a flattened network (see
`evprop.train.compiled.CompiledNetwork`): neurons of all non-input layers share one index space
(output neurons last), presynaptic sources are inputs [0, n_in) followed by neurons, and each source owns
"segments": (first flat weight index, number of targets, first target neuron). The weights of one source
towards one layer are contiguous (the [pre, post] row), so propagating a spike reads one row.

Forward, per trial, per step k (docs/architecture.md §2, §7 'Forward pass'):

    J_n   = I_n + ring[n, k]                 # arrivals scheduled for step k
    V_n   = alpha_n V_n + g_n J_n
    I_n   = beta_n J_n
    if V_n >= theta_n: tape (k, n, J_n - V_n); V_n = 0      (theta = +inf for LI outputs)
    every source spiking in step k (inputs, neurons): ring[target, k + 1 + d] += w

Backward (reverse steps), with Lam_V(k) = dL/dV_k (before reset) and Lam_J(k) = dL/dJ_k. Between spikes this is
the exact adjoint of the linear discrete step, so output-layer weight gradients equal finite differences of the
forward pass:

    Lam_V(k) = dl/dV_k + alpha Lam_V(k+1)          (dl/dV_k: the readout's drive, outputs only)
    Lam_J(k) = g Lam_V(k) + beta Lam_J(k+1)
    dL/dw_mn += Lam_J,m(a)         for each spike of n in step s, arrival a = s + 1 + d_mn

At a stored spike of neuron n in step k the discrete reset carries no gradient; EventProp's jump (Wunderlich & Pehle
2021, eq. 11;
docs/architecture.md §7 'Hidden LIF jump') gives it instead, written in these adjoints (lambda_V = -Lam_V / tau_mem,
lambda_I = -Lam_J / tau_syn relate them to the papers'):

    Lam_V(k) = Lam_V^+ + [theta Lam_V^+ + tau_mem,n sum_m w_mn H_m(a)] / (I - V)_stored + spike_jump_n
    H_m(a)   = Lam_V,m(a) / tau_mem,m - Lam_J,m(a) / tau_syn,m          (per-neuron history, length max_delay + 1)
    dL/dd_mn += -w_mn H_m(a)    [per ms of delay]                       (Meszaros et al. 2025 eq. (6): -w (lambda_I -
    lambda_V))

Time constants (Nowotny et al. 2025 App. C in discrete form): alpha, beta and g depend on tau_mem and tau_syn, so
with the same
adjoints dL/dalpha = sum_k Lam_V(k) V_{k-1}^+, dL/dbeta = sum_k Lam_J(k) J_{k-1}, dL/dg = sum_k Lam_V(k) J_k. No
per-step state is stored: J is a sum of arrivals and V^+ a sum of J since the last reset, so the sums regroup into
backward recursions read at the arrival steps a, exactly like the weight gradient (memory per neuron, not per step):

    R(k) = Lam_J(k+1) + beta R(k+1)                       dL/dbeta  = sum_arrivals w R(a)
    P(k) = 0 if n spiked in step k else Lam_V(k+1) + alpha P(k+1)
    M(k) = P(k) + beta M(k+1)                             dL/dalpha = g sum_arrivals w M(a)
    dL/dg = sum_arrivals w Lam_J(a) / g = (1/g) sum_in w dL/dw

Parallelism: trials are split into `n_chunks` fixed chunks run in parallel (prange); each chunk owns its state and
gradient buffers, so results do not depend on thread scheduling and no two threads write one cache line.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernel_args import ForwardArrays, KernelGradients, SpikeTape

OVERFLOW_NONE = -1


@njit(cache=True, parallel=True)
def forward_kernel(net, inputs, options):
    """Run a batch forward: net (kernel_args.NetworkArrays), inputs (SpikeInputs), options (ForwardOptions).
    Returns ForwardArrays: v_out [B, T, n_out], the tape (step, neuron, imv [B, C], length [B]), spike_count [B, n],
    overflow_neuron [B], state_max [B, n, 4], scores [B, n_out]. `overflow_neuron[b]` is the first neuron whose
    spike count exceeded `max_spikes` (its later spikes still act on the network but are not taped), or -1.
    With track_state, state_max[b, n] holds max |g * arrivals of one step|, max |g * J|, max V and max -V (V before
    the reset): the ranges the fixed-point target must represent (Lava's a_in, u and v).
    record_v: keep v_out [B, T, n_out] (else [B, 0, n_out]: memory that would grow with T); readout_w [T] (or
    empty): also accumulate the weighted-sum readout scores [B, n_out] = sum_k readout_w[k] V_out(k).

    current_cut_step: -1 normally; mlGeNN zeroes every synaptic current and delay buffer at the start of the last
    step (docs/architecture.md §7 'Last step quirk'); giving that step here reproduces it for comparisons with its
    output."""
    in_steps, in_channels, in_offsets = inputs.steps, inputs.channels, inputs.offsets
    n_steps, n_in, n_out, ring_len = net.n_steps, net.n_in, net.n_out, net.ring_len
    alpha, beta, g, theta, w_flat = net.alpha, net.beta, net.g, net.theta, net.w_flat
    max_spikes, n_chunks, current_cut_step = options.max_spikes, options.n_chunks, options.cut_step
    track_state, record_v, readout_w = options.track_state, options.record_v, options.readout_w
    n_batch = len(in_offsets) - 1
    n_neurons = len(alpha)
    capacity = max_spikes * n_neurons
    fdt = w_flat.dtype          # float64, or float32 for speed: every state and buffer follows the weights
    v_out = np.zeros((n_batch, n_steps if record_v else 0, n_out), dtype=fdt)
    scores = np.zeros((n_batch, n_out))
    # tapes are not zeroed: only the first tape_len[b] entries are ever read, and untouched pages cost nothing
    tape_step = np.empty((n_batch, capacity), dtype=np.int32)
    tape_neuron = np.empty((n_batch, capacity), dtype=np.int32)
    tape_imv = np.empty((n_batch, capacity), dtype=fdt)
    tape_len = np.zeros(n_batch, dtype=np.int64)
    spike_count = np.zeros((n_batch, n_neurons), dtype=np.int32)
    overflow_neuron = np.full(n_batch, OVERFLOW_NONE, dtype=np.int32)
    state_max = np.zeros((n_batch, n_neurons, 4), dtype=fdt)
    out0 = n_neurons - n_out
    # neurons that can spike: every one with a finite threshold (hidden LIF, and LIF outputs)
    out0_spiking = n_neurons if np.any(np.isfinite(theta[out0:])) else out0
    for chunk in prange(n_chunks):
        v = np.zeros(n_neurons, dtype=fdt)
        cur = np.zeros(n_neurons, dtype=fdt)
        ring = np.zeros((ring_len, n_neurons), dtype=fdt)   # [slot, neuron]: a row's targets are contiguous
        cur_j = np.zeros(n_neurons, dtype=fdt)       # J of this step (for the tape's I - V)
        spiked = np.zeros(n_neurons, dtype=np.int32)
        for b in range(chunk, n_batch, n_chunks):
            v[:] = 0.0
            cur[:] = 0.0
            ring[:, :] = 0.0
            ev = in_offsets[b]
            ev_end = in_offsets[b + 1]
            n_tape = 0
            for k in range(n_steps):
                slot = k % ring_len
                if k == current_cut_step:
                    cur[:] = 0.0
                # neuron update: branch-free, so it vectorises (docs/architecture.md §2)
                row = ring[slot]
                if track_state:
                    for n in range(n_neurons):
                        j = cur[n] + row[n]
                        vn = alpha[n] * v[n] + g[n] * j
                        state_max[b, n, 0] = max(state_max[b, n, 0], abs(g[n] * row[n]))
                        state_max[b, n, 1] = max(state_max[b, n, 1], abs(g[n] * j))
                        state_max[b, n, 2] = max(state_max[b, n, 2], vn)
                        state_max[b, n, 3] = max(state_max[b, n, 3], -vn)
                for n in range(n_neurons):
                    j = cur[n] + row[n]
                    v[n] = alpha[n] * v[n] + g[n] * j
                    cur_j[n] = j
                    cur[n] = beta[n] * j
                    row[n] = 0.0
                # threshold: V >= theta (theta = +inf for LI outputs) -> tape (k, n, J - V), reset V = 0
                n_spiked = 0
                for n in range(out0_spiking):
                    if v[n] >= theta[n]:
                        spike_count[b, n] += 1
                        if spike_count[b, n] <= max_spikes:
                            tape_step[b, n_tape] = k
                            tape_neuron[b, n_tape] = n
                            tape_imv[b, n_tape] = cur_j[n] - v[n]
                            n_tape += 1
                        elif overflow_neuron[b] == OVERFLOW_NONE:
                            overflow_neuron[b] = n
                        v[n] = 0.0
                        spiked[n_spiked] = n
                        n_spiked += 1
                if record_v:
                    for i in range(n_out):
                        v_out[b, k, i] = v[out0 + i]
                if len(readout_w) > 0:
                    for i in range(n_out):
                        scores[b, i] += readout_w[k] * v[out0 + i]
                # propagate this step's spikes: inputs first, then neurons (order does not matter: sums)
                if k + 1 == current_cut_step:
                    ring[(k + 1) % ring_len, :] = 0.0     # drop arrivals of earlier, delayed spikes
                while ev < ev_end and in_steps[ev] == k:
                    _propagate(in_channels[ev], k, net, ring)
                    ev += 1
                for i in range(n_spiked):
                    _propagate(n_in + spiked[i], k, net, ring)
            tape_len[b] = n_tape
    return ForwardArrays(v_out, SpikeTape(tape_step, tape_neuron, tape_imv, tape_len), spike_count, overflow_neuron,
                         state_max, scores)


@njit(inline="always")
def _propagate(source, k, net, ring):
    """ring[(k + 1 + d) mod R, target] += w over every synapse of `source` (one contiguous row per segment)."""
    seg_ptr, seg_w0, seg_len, seg_tgt0 = net.seg_ptr, net.seg_w0, net.seg_len, net.seg_tgt0
    seg_delayed = net.seg_delayed
    w_flat, d_flat, ring_len = net.w_flat, net.d_flat, net.ring_len
    base = (k + 1) % ring_len
    for s in range(seg_ptr[source], seg_ptr[source + 1]):
        w0 = seg_w0[s]
        t0 = seg_tgt0[s]
        if not seg_delayed[s]:                    # one arrival step for the whole row: a contiguous (SIMD) add
            n = seg_len[s]
            ring[base, t0:t0 + n] += w_flat[w0:w0 + n]
            continue
        for i in range(seg_len[s]):
            slot = base + d_flat[w0 + i]          # d <= R - 1, so one subtraction replaces the modulo
            if slot >= ring_len:
                slot -= ring_len
            ring[slot, t0 + i] += w_flat[w0 + i]


@njit(cache=True, parallel=True)
def backward_kernel(net, inputs, tape, drive, options):
    """Adjoint pass of a batch (equations in the module docstring): net (kernel_args.NetworkArrays), inputs
    (SpikeInputs), tape (SpikeTape of the forward pass), drive (BackwardDrive), options (BackwardOptions).
    drive.dl_dv_out [B, T, n_out] is the loss's
    derivative with respect to each output voltage (already divided by the batch size), or [B, 0, n_out] with the
    same drive in separable form, readout_w[k] * dl_dscore[b, j] (weighted-sum readouts); spike_jump [B, n] is added
    to Lam_V at each taped spike of neuron n (the spike-count regulariser's heuristic, Nowotny et al. 2025, eq. 7);
    tape_dl_dt
    [B, C] (or [B, 0]: none) is a spike-time loss's dl_p/dt_k [per ms] of each taped spike, entering the jump as
    -tau_mem dl_p/dt_k / (I - V) (Wunderlich & Pehle 2021, eq. 11: a later spike by dt_k = -dV / Vdot^-).
    Returns KernelGradients (dL/dw, dL/dd [per ms of delay], each [n_weights]; dL/dalpha, dL/dbeta, each
    [n_neurons]), summed over the batch; the delay gradient stays zero unless need_delays, alpha/beta unless
    need_taus (less work per spike)."""
    in_steps, in_channels, in_offsets = inputs.steps, inputs.channels, inputs.offsets
    n_steps, n_in, n_out, ring_len = net.n_steps, net.n_in, net.n_out, net.ring_len
    alpha, beta, g, theta, w_flat = net.alpha, net.beta, net.g, net.theta, net.w_flat
    tau_mem, tau_syn = net.tau_mem, net.tau_syn
    tape_step, tape_neuron, tape_imv, tape_len = tape.step, tape.neuron, tape.imv, tape.length
    dl_dv_out, readout_w, dl_dscore = drive.dl_dv_out, drive.readout_w, drive.dl_dscore
    spike_jump, tape_dl_dt = drive.spike_jump, drive.tape_dl_dt
    n_chunks, current_cut_step = options.n_chunks, options.cut_step
    need_delays, need_taus = options.need_delays, options.need_taus
    n_batch = len(in_offsets) - 1
    n_neurons = len(alpha)
    n_w = len(w_flat)
    fdt = w_flat.dtype
    out0 = n_neurons - n_out
    grad_w = np.zeros((n_chunks, n_w), dtype=fdt)
    grad_d = np.zeros((n_chunks, n_w), dtype=fdt)
    grad_alpha = np.zeros((n_chunks, n_neurons), dtype=fdt)
    grad_beta = np.zeros((n_chunks, n_neurons), dtype=fdt)
    inv_tau_mem = (1.0 / tau_mem).astype(fdt)
    inv_tau_syn = (1.0 / tau_syn).astype(fdt)
    for chunk in prange(n_chunks):
        lam_v = np.zeros(n_neurons, dtype=fdt)      # alpha * Lam_V(k+1) = dL/dV_k after reset
        lam_j = np.zeros(n_neurons, dtype=fdt)      # beta * Lam_J(k+1)
        prev_lv = np.zeros(n_neurons, dtype=fdt)    # Lam_V(k+1)
        prev_lj = np.zeros(n_neurons, dtype=fdt)    # Lam_J(k+1)
        rec_r = np.zeros(n_neurons, dtype=fdt)      # R(k+1)
        rec_p = np.zeros(n_neurons, dtype=fdt)      # P(k+1)
        rec_m = np.zeros(n_neurons, dtype=fdt)      # M(k+1)
        jump = np.zeros(n_neurons, dtype=fdt)
        cur_lv = np.zeros(n_neurons, dtype=fdt)     # Lam_V(k)
        spiked = np.zeros(n_neurons, dtype=np.bool_)
        hist_j = np.zeros((ring_len, n_neurons), dtype=fdt)     # [slot, neuron], like the forward ring
        hist_h = np.zeros((ring_len, n_neurons), dtype=fdt)
        hist_r = np.zeros((ring_len, n_neurons), dtype=fdt)
        hist_m = np.zeros((ring_len, n_neurons), dtype=fdt)
        gw = grad_w[chunk]
        gd = grad_d[chunk]
        ga = grad_alpha[chunk]
        gb = grad_beta[chunk]
        for b in range(chunk, n_batch, n_chunks):
            lam_v[:] = 0.0
            lam_j[:] = 0.0
            prev_lv[:] = 0.0
            prev_lj[:] = 0.0
            rec_r[:] = 0.0
            rec_p[:] = 0.0
            rec_m[:] = 0.0
            jump[:] = 0.0
            spiked[:] = False
            hist_j[:, :] = 0.0
            hist_h[:, :] = 0.0
            hist_r[:, :] = 0.0
            hist_m[:, :] = 0.0
            p = tape_len[b] - 1
            ev = in_offsets[b + 1] - 1
            ev_start = in_offsets[b]
            for k in range(n_steps - 1, -1, -1):
                # 1. spikes of step k: gradients and jumps read the (already computed) future arrival steps
                while p >= 0 and tape_step[b, p] == k:
                    n = tape_neuron[b, p]
                    rev = _gather(n_in + n, k, net, hist_j, hist_h, hist_r, hist_m, gw, gd, ga, gb,
                                  current_cut_step, need_delays, need_taus, True)
                    dl_dt = tape_dl_dt[b, p] if tape_dl_dt.shape[1] > 0 else 0.0
                    jump[n] = (theta[n] * lam_v[n] + tau_mem[n] * (rev - dl_dt)) / tape_imv[b, p] \
                        + spike_jump[b, n]
                    spiked[n] = True
                    p -= 1
                while ev >= ev_start and in_steps[ev] == k:
                    _gather(in_channels[ev], k, net, hist_j, hist_h, hist_r, hist_m, gw, gd, ga, gb,
                            current_cut_step, need_delays, need_taus, False)
                    ev -= 1
                # 2. adjoint step of every neuron (branch-free, vectorises); history for the delayed reads
                slot = k % ring_len
                if dl_dv_out.shape[1] > 0:
                    for i in range(n_out):
                        jump[out0 + i] += dl_dv_out[b, k, i]
                else:
                    for i in range(n_out):
                        jump[out0 + i] += readout_w[k] * dl_dscore[b, i]
                row_j = hist_j[slot]
                row_h = hist_h[slot]
                for n in range(n_neurons):
                    lv = lam_v[n] + jump[n]
                    lj = g[n] * lv + lam_j[n]
                    jump[n] = 0.0
                    cur_lv[n] = lv
                    row_j[n] = lj
                    row_h[n] = lv * inv_tau_mem[n] - lj * inv_tau_syn[n]
                    lam_j[n] = beta[n] * lj
                    lam_v[n] = alpha[n] * lv
                if k == current_cut_step:
                    lam_j[:] = 0.0          # the cut current carries nothing back to earlier steps
                if need_taus:
                    # time-constant recursions (module docstring); the cut step has no link to step k
                    link = 0.0 if k + 1 == current_cut_step else 1.0
                    for n in range(n_neurons):
                        rec_r[n] = link * (prev_lj[n] + beta[n] * rec_r[n])
                        rec_p[n] = 0.0 if spiked[n] else prev_lv[n] + alpha[n] * rec_p[n]
                        rec_m[n] = rec_p[n] + link * beta[n] * rec_m[n]
                        hist_r[slot, n] = rec_r[n]
                        hist_m[slot, n] = rec_m[n]
                        prev_lv[n] = cur_lv[n]
                        prev_lj[n] = row_j[n]
                        spiked[n] = False
    return KernelGradients(grad_w.sum(axis=0), grad_d.sum(axis=0), grad_alpha.sum(axis=0) * g,
                           grad_beta.sum(axis=0))


@njit(inline="always")
def _gather(source, k, net, hist_j, hist_h, hist_r, hist_m, gw, gd, ga, gb, cut, need_delays, need_taus,
            with_rev):
    """For a spike of `source` in step k: accumulate weight, delay and (per target) alpha/beta gradients at the
    arrival steps and return sum_m w_m H_m(arrival) for the presynaptic jump. Arrivals the forward pass dropped at
    the cut step (delayed spikes emitted before step cut-1) carry no gradient."""
    seg_ptr, seg_w0, seg_len, seg_tgt0 = net.seg_ptr, net.seg_w0, net.seg_len, net.seg_tgt0
    seg_delayed = net.seg_delayed
    w_flat, d_flat, ring_len = net.w_flat, net.d_flat, net.ring_len
    rev = 0.0
    base = (k + 1) % ring_len
    for s in range(seg_ptr[source], seg_ptr[source + 1]):
        w0 = seg_w0[s]
        t0 = seg_tgt0[s]
        if not seg_delayed[s] and not need_delays and not need_taus:
            n = seg_len[s]                        # one arrival step for the whole row: contiguous (SIMD, BLAS)
            gw[w0:w0 + n] += hist_j[base, t0:t0 + n]
            if with_rev:
                rev += np.dot(w_flat[w0:w0 + n], hist_h[base, t0:t0 + n])
            continue
        for i in range(seg_len[s]):
            idx = w0 + i
            d = d_flat[idx]
            if cut >= 0 and k + 1 + d == cut and d > 0:
                continue
            slot = base + d
            if slot >= ring_len:
                slot -= ring_len
            w = w_flat[idx]
            h = hist_h[slot, t0 + i]
            gw[idx] += hist_j[slot, t0 + i]
            rev += w * h
            if need_delays:
                gd[idx] -= w * h
            if need_taus:
                ga[t0 + i] += w * hist_m[slot, t0 + i]
                gb[t0 + i] += w * hist_r[slot, t0 + i]
    return rev
