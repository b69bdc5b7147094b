"""Exact continuous-time reference of the EventProp network model (pure numpy/scipy, test utility).

evprop simulates and differentiates a *discrete-time* model (docs/architecture.md, the discrete step). This
module simulates the *continuous-time* model it approximates, exactly (event-driven, closed forms between events,
threshold crossings root-found to ~1e-13 ms), and differentiates it by central finite differences. The gradients
of evprop must converge to these as dt -> 0.

Model (times in ms; Wunderlich & Pehle 2021, eqs. (1)-(2); Nowotny, Turner & Knight 2025, Table 1). Hidden LIF
neurons and LI output neurons, each with its own tau_mem and tau_syn (tau_syn belongs to the postsynaptic neuron):

    tau_mem dV/dt = -V + I,    tau_syn dI/dt = -I
    a spike of presynaptic neuron i at time t_k adds w[i, j] to I_j at time t_k + d[i, j]   (d >= 0, continuous)
    LIF (hidden): spike when V reaches theta (= 1), then V = 0 (no refractory period, I unchanged)
    LI (output):  never spikes

Connections input->hidden, hidden->hidden (recurrent) and hidden->output, each a weight and a delay matrix
[pre, post]. Readout of output j, the continuous limit of evprop's 'sum_exp' readout
`sum_k exp(-k dt/T) V_j(k) / n_steps`:

    X_j = (1/T) * integral_0^T exp(-t/T) V_j(t) dt

Loss of a trial: cross-entropy of softmax(X) with the trial's label; the loss of a batch is the mean over trials.

Closed forms used between events (interval of length s starting at V0, I0):

    I(s) = I0 e^{-s/tau_s}
    V(s) = V0 e^{-s/tau_m} + I0 K(s),  K(s) = tau_s/(tau_m - tau_s) (e^{-s/tau_m} - e^{-s/tau_s})
         = (s/tau_m) e^{-s/tau_m} h(r s),  r = 1/tau_s - 1/tau_m,  h(x) = (1 - e^{-x})/x,  h(0) = 1
    (the second form is the one computed: it is exact and numerically stable for tau_m == tau_s, where
     K(s) = (s/tau) e^{-s/tau}).

    V has at most one extremum per interval (dV/dt = (I - V)/tau_m = 0 has at most one root), at
        s* = tau_s (I0 - V0)/I0 * q(x),  x = r tau_s (V0 - I0)/I0,  q(x) = log(1 + x)/x,  q(0) = 1,
    so [0, s*, s] splits an interval into pieces on which V is monotone: the first piece whose end reaches
    theta brackets the (unique, first) crossing, which brentq then finds.

    Readout integral over an interval, from integrating d(e^{-t/tau_r} V)/dt = e^{-t/tau_r}((I - V)/tau_m - V/tau_r)
    (no cancellation for tau_m == tau_s):
        int_{t0}^{t1} e^{-t/tau_r} V dt = [ (1/tau_m) int_{t0}^{t1} e^{-t/tau_r} I dt
                                            - (e^{-t1/tau_r} V(t1) - e^{-t0/tau_r} V(t0)) ] / (1/tau_m + 1/tau_r)
        int_{t0}^{t1} e^{-t/tau_r} I dt = e^{-t0/tau_r} I0 s h((1/tau_r + 1/tau_s) s),  s = t1 - t0
    (tau_r = T for the readout; tau_r = inf gives the plain integral, used by the self-tests).

API
---
    ContinuousNetwork(w_ih, w_hh, w_ho, d_ih, d_hh, d_ho, tau_mem_hidden, tau_syn_hidden, tau_mem_out,
                      tau_syn_out, T, theta=1.0)                       parameters; arrays are [pre, post] / [n]
    PARAM_GROUPS                                                       names of the differentiable fields
    simulate(net, trial, record_times=None, readout_tau=None) -> TrialResult   one trial, exactly
        .spikes [(t, hidden neuron)], .spike_count, .X, .v_rec, .arrivals, and the conditioning monitors
        .min_margin (closest sub-threshold peak), .min_slope (flattest crossing), .min_arrival_to_spike_gap()
    readouts(net, inputs) -> [B, n_out]                                X of every trial
    loss(net, inputs, labels) -> float                                 mean cross-entropy
    fd_gradients(net, inputs, labels, eps=1e-5, groups=PARAM_GROUPS) -> FDResult
        .grads {group: array like the field}, .spike_count_changes [(group, index, sign)], .spikes_changed,
        .base (unperturbed TrialResults), .min_margin, .min_slope
    psp_kernel(s, tau_m, tau_s), extremum_time(v0, i0, tau_m, tau_s)   the closed forms below

A trial (`inputs[b]`) is a pair (times_ms, channels) of equal-length sequences (the continuous counterpart of
`SpikeData.from_event_lists`).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import brentq

PARAM_GROUPS = ("w_ih", "w_hh", "w_ho", "d_ih", "d_hh", "d_ho",
                "tau_mem_hidden", "tau_syn_hidden", "tau_mem_out", "tau_syn_out")

_BRENTQ_XTOL = 1e-14


# ----------------------------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContinuousNetwork:
    """input -> hidden (LIF, recurrent) -> output (LI). Weights/delays [pre, post], delays in ms (>= 0),
    time constants in ms per neuron, trial length T in ms, threshold theta of the hidden neurons."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    w_ho: np.ndarray
    d_ih: np.ndarray
    d_hh: np.ndarray
    d_ho: np.ndarray
    tau_mem_hidden: np.ndarray
    tau_syn_hidden: np.ndarray
    tau_mem_out: np.ndarray
    tau_syn_out: np.ndarray
    T: float
    theta: float = 1.0

    def __post_init__(self):
        for name in PARAM_GROUPS:
            object.__setattr__(self, name, np.array(getattr(self, name), dtype=np.float64))
        n_in, n_h = self.w_ih.shape
        n_out = self.w_ho.shape[1]
        shapes = {"w_ih": (n_in, n_h), "w_hh": (n_h, n_h), "w_ho": (n_h, n_out), "d_ih": (n_in, n_h),
                  "d_hh": (n_h, n_h), "d_ho": (n_h, n_out), "tau_mem_hidden": (n_h,), "tau_syn_hidden": (n_h,),
                  "tau_mem_out": (n_out,), "tau_syn_out": (n_out,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"ContinuousNetwork.{name} has shape {getattr(self, name).shape}, expected {shape}")
        for name in ("d_ih", "d_hh", "d_ho"):
            if np.any(getattr(self, name) < 0):
                raise ValueError(f"ContinuousNetwork.{name}: delays must be >= 0 ms")
        for name in ("tau_mem_hidden", "tau_syn_hidden", "tau_mem_out", "tau_syn_out"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"ContinuousNetwork.{name}: time constants must be > 0 ms")

    @property
    def n_in(self) -> int:
        return self.w_ih.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.w_ih.shape[1]

    @property
    def n_out(self) -> int:
        return self.w_ho.shape[1]

    def with_value(self, group: str, value) -> "ContinuousNetwork":
        """A copy with parameter group `group` replaced by `value`."""
        return replace(self, **{group: value})


# ----------------------------------------------------------------------------------------------------------------
# Closed forms between events
# ----------------------------------------------------------------------------------------------------------------

def _h(x):
    """h(x) = (1 - e^{-x}) / x with h(0) = 1 (numpy, elementwise)."""
    x = np.asarray(x, dtype=np.float64)
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, -np.expm1(-safe) / safe)


def _h_scalar(x: float) -> float:
    return 1.0 if x == 0.0 else -math.expm1(-x) / x


def psp_kernel(s, tau_m, tau_s):
    """K(s) = tau_s/(tau_m - tau_s) (e^{-s/tau_m} - e^{-s/tau_s}): V at time s after a unit current step I(0) = 1
    with V(0) = 0 (stable form, exact for tau_m == tau_s)."""
    s = np.asarray(s, dtype=np.float64)
    r = 1.0 / tau_s - 1.0 / tau_m
    return (s / tau_m) * np.exp(-s / tau_m) * _h(r * s)


def _evolve(v0, i0, s, tau_m, tau_s):
    """(V(s), I(s)) of the free dynamics from (v0, i0), elementwise."""
    return v0 * np.exp(-s / tau_m) + i0 * psp_kernel(s, tau_m, tau_s), i0 * np.exp(-s / tau_s)


def _v_scalar(s: float, v0: float, i0: float, tau_m: float, tau_s: float) -> float:
    r = 1.0 / tau_s - 1.0 / tau_m
    em = math.exp(-s / tau_m)
    return v0 * em + i0 * (s / tau_m) * em * _h_scalar(r * s)


def extremum_time(v0: float, i0: float, tau_m: float, tau_s: float) -> float:
    """The unique s* where dV/dt = 0 (I(s*) = V(s*)), or nan if V has no extremum for s > -inf."""
    if i0 == 0.0:
        return math.nan
    r = 1.0 / tau_s - 1.0 / tau_m
    x = r * tau_s * (v0 - i0) / i0
    if x <= -1.0:
        return math.nan
    q = 1.0 if x == 0.0 else math.log1p(x) / x
    return tau_s * (i0 - v0) / i0 * q


# ----------------------------------------------------------------------------------------------------------------
# Event-driven simulation of one trial
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class TrialResult:
    """spikes:       [(time_ms, hidden neuron)] in time order
    spike_count:  [n_hidden]
    X:            [n_out] readout (1/T) int_0^T e^{-t/tau_r} V dt (tau_r = T unless readout_tau was given)
    v_rec:        [len(record_times), n_hidden + n_out] V at the record times (hidden first; V(t^-) at a spike)
    min_margin:   theta - (highest local maximum of a hidden V that stayed below theta); inf if none.
                  A small margin means a spike could appear under a small perturbation.
    min_slope:    smallest tau_mem dV/dt = I - theta at a hidden spike; inf if none. A small slope means a
                  spike could disappear (grazing threshold crossing).
    arrivals:     [(time_ms, target neuron)] of every processed synaptic arrival (hidden first, then outputs)
    """

    spikes: list
    spike_count: np.ndarray
    X: np.ndarray
    v_rec: np.ndarray
    min_margin: float = math.inf
    min_slope: float = math.inf
    arrivals: list = field(default_factory=list)

    def min_arrival_to_spike_gap(self) -> float:
        """Smallest |t_arrival - t_spike| over arrivals onto a hidden neuron and that neuron's spikes (inf if none):
        an input arriving within a time step of the spike it should influence is a near-coincidence that a
        discrete-time simulation resolves only once dt is well below the gap."""
        gap = math.inf
        for t_s, k in self.spikes:
            for t_a, j in self.arrivals:
                if j == k:
                    gap = min(gap, abs(t_a - t_s))
        return gap


def simulate(net: ContinuousNetwork, trial, record_times=None, readout_tau: float | None = None) -> TrialResult:
    """Simulate one trial exactly. `trial` = (input times [ms], input channels). Arrivals at or after T are
    ignored; the readout integrates over [0, T]."""
    times, channels = (np.asarray(a) for a in trial)
    if len(times) != len(channels):
        raise ValueError("trial: times and channels must have the same length")
    if len(channels) and (channels.min() < 0 or channels.max() >= net.n_in):
        raise ValueError(f"trial: input channels must lie in [0, {net.n_in})")
    n_h, n_out = net.n_hidden, net.n_out
    n = n_h + n_out
    T, theta = float(net.T), float(net.theta)
    tau_m = np.concatenate([net.tau_mem_hidden, net.tau_mem_out])
    tau_s = np.concatenate([net.tau_syn_hidden, net.tau_syn_out])
    tau_r = T if readout_tau is None else float(readout_tau)
    inv_r = 0.0 if tau_r == math.inf else 1.0 / tau_r     # readout weight e^{-t inv_r}
    out = slice(n_h, n)
    record_times = np.zeros(0) if record_times is None else np.asarray(record_times, dtype=np.float64)
    if np.any(np.diff(record_times) < 0):
        raise ValueError("record_times must be sorted")
    v_rec = np.zeros((len(record_times), n))
    rec = 0
    while rec < len(record_times) and record_times[rec] <= 0.0:
        rec += 1                                     # V(0) = 0

    # arrival queue: (time, sequence number, target neuron, weight); the sequence number makes ties deterministic
    queue, seq = [], 0

    def schedule(t_emit, w_row, d_row, target0):
        nonlocal seq
        for j in range(len(w_row)):
            t_arr = t_emit + d_row[j]
            if t_arr < T:
                heapq.heappush(queue, (t_arr, seq, target0 + j, w_row[j]))
                seq += 1

    for t_in, c in zip(times, channels):
        schedule(float(t_in), net.w_ih[c], net.d_ih[c], 0)

    v = np.zeros(n)
    cur = np.zeros(n)
    readout_acc = np.zeros(n_out)                    # int e^{-t inv_r} V dt of the outputs
    spikes, spike_count = [], np.zeros(n_h, dtype=np.int64)
    min_margin, min_slope = math.inf, math.inf
    tau_m_h, tau_s_h = tau_m[:n_h], tau_s[:n_h]
    t = 0.0
    arrivals = []

    while True:
        t_next = min(queue[0][0], T) if queue else T
        span = t_next - t
        # 1. the earliest threshold crossing of a hidden neuron in (t, t_next]
        crossing = _first_crossing(v[:n_h], cur[:n_h], span, tau_m_h, tau_s_h, theta) if span > 0 else None
        step = crossing[0] if crossing is not None else span
        # local maxima of hidden V inside the advanced piece (grazing monitor)
        if step > 0:
            v_end, i_end = _evolve(v[:n_h], cur[:n_h], step, tau_m_h, tau_s_h)
            for k in np.nonzero((cur[:n_h] - v[:n_h] > 0) & (i_end - v_end < 0))[0]:
                s_star = extremum_time(v[k], cur[k], tau_m_h[k], tau_s_h[k])
                if 0.0 <= s_star <= step:
                    min_margin = min(min_margin, theta - _v_scalar(s_star, v[k], cur[k], tau_m_h[k], tau_s_h[k]))
        # 2. advance every neuron by `step`: record, integrate the readout
        while rec < len(record_times) and record_times[rec] <= t + step:
            v_rec[rec], _ = _evolve(v, cur, record_times[rec] - t, tau_m, tau_s)
            rec += 1
        if step > 0:
            v1, i1 = _evolve(v, cur, step, tau_m, tau_s)
            e0, e1 = math.exp(-t * inv_r), math.exp(-(t + step) * inv_r)
            int_i = e0 * cur[out] * step * _h((inv_r + 1.0 / tau_s[out]) * step)
            readout_acc += (int_i / tau_m[out] - (e1 * v1[out] - e0 * v[out])) / (1.0 / tau_m[out] + inv_r)
            v, cur = v1, i1
        t += step
        # 3. the event at the end of the piece
        if crossing is not None:
            k = crossing[1]
            spikes.append((t, k))
            spike_count[k] += 1
            min_slope = min(min_slope, cur[k] - theta)
            v[k] = 0.0
            schedule(t, net.w_hh[k], net.d_hh[k], 0)
            schedule(t, net.w_ho[k], net.d_ho[k], n_h)
            continue
        if t >= T:
            break
        while queue and queue[0][0] <= t:
            _, _, j, w = heapq.heappop(queue)
            if j < n_h:
                # a kink maximum: V rising before the arrival, not after (an inhibitory arrival)
                if cur[j] - v[j] > 0 and cur[j] + w - v[j] <= 0:
                    min_margin = min(min_margin, theta - v[j])
            cur[j] += w
            arrivals.append((t, j))

    return TrialResult(spikes=spikes, spike_count=spike_count, X=readout_acc / T, v_rec=v_rec,
                       min_margin=min_margin, min_slope=min_slope, arrivals=arrivals)


def _first_crossing(v0, i0, span, tau_m, tau_s, theta):
    """(s, neuron) of the earliest threshold crossing within (0, span] over the given neurons, or None.

    V is monotone on [0, s*] and [s*, span] (s* the single extremum, if it lies inside), so the first of the
    points 0, s*, span at which V >= theta closes a bracket holding exactly the first crossing."""
    v1, i1 = _evolve(v0, i0, span, tau_m, tau_s)
    d0, d1 = i0 - v0, i1 - v1                       # sign of dV/dt at both ends
    interior_max = (d0 > 0) & (d1 < 0)
    candidates = np.nonzero((v1 >= theta) | interior_max)[0]
    best = None
    for k in candidates:
        args = (v0[k], i0[k], tau_m[k], tau_s[k])
        points = [0.0]
        if d0[k] * d1[k] < 0:
            s_star = extremum_time(*args)
            if 0.0 < s_star < span:
                points.append(s_star)
        points.append(span)
        values = [_v_scalar(p, *args) for p in points]
        first = next((i for i, val in enumerate(values) if val >= theta), None)
        if first is None:
            continue
        if first == 0:
            s_cross = 0.0                            # already at threshold (rounding): fire now
        else:
            lo, hi = points[first - 1], points[first]
            if best is not None and lo >= best[0]:
                continue
            s_cross = brentq(lambda s: _v_scalar(s, *args) - theta, lo, hi, xtol=_BRENTQ_XTOL,
                             rtol=4 * np.finfo(float).eps, maxiter=200)
        if best is None or s_cross < best[0]:
            best = (s_cross, int(k))
    return best


# ----------------------------------------------------------------------------------------------------------------
# Loss and finite-difference gradients
# ----------------------------------------------------------------------------------------------------------------

def softmax(x):
    z = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _batch(net, inputs):
    return [simulate(net, trial) for trial in inputs]


def readouts(net: ContinuousNetwork, inputs) -> np.ndarray:
    """X [B, n_out] of every trial."""
    return np.array([r.X for r in _batch(net, inputs)])


def _loss_from_results(results, labels) -> float:
    x = np.array([r.X for r in results])
    p = softmax(x)
    labels = np.asarray(labels)
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def loss(net: ContinuousNetwork, inputs, labels) -> float:
    """Mean over trials of the cross-entropy of softmax(X) with the label."""
    return _loss_from_results(_batch(net, inputs), labels)


@dataclass
class FDResult:
    """grads:                {group: dL/dparam, shaped like the parameter}
    spike_count_changes:  [(group, index, sign)] perturbations that changed a hidden spike count (FD invalid there)
    base:                 TrialResults of the unperturbed network
    one_sided:            [(group, index)] delays at 0 that got a forward difference (d - eps < 0 is not allowed)
    """

    grads: dict
    spike_count_changes: list
    base: list
    one_sided: list

    @property
    def spikes_changed(self) -> bool:
        return bool(self.spike_count_changes)

    @property
    def min_margin(self) -> float:
        return min(r.min_margin for r in self.base)

    @property
    def min_slope(self) -> float:
        return min(r.min_slope for r in self.base)


def fd_gradients(net: ContinuousNetwork, inputs, labels, eps: float = 1e-5, groups=PARAM_GROUPS) -> FDResult:
    """Central finite differences (L(p + eps) - L(p - eps)) / (2 eps) of `loss` for every element of every
    parameter group in `groups` (weights, delays [ms], time constants [ms]). Every perturbed run's hidden spike
    counts are compared with the unperturbed run; a change means a spike appeared or disappeared and the finite
    difference is not a derivative (listed in `spike_count_changes`)."""
    base = _batch(net, inputs)
    base_counts = [r.spike_count for r in base]
    grads, changes, one_sided = {}, [], []
    f0 = _loss_from_results(base, labels)
    for group in groups:
        if group not in PARAM_GROUPS:
            raise ValueError(f"unknown parameter group '{group}', expected one of {PARAM_GROUPS}")
        value = getattr(net, group)
        grad = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            values = {}
            signs = (1, -1)
            if group.startswith("d_") and value[idx] - eps < 0:
                signs = (1,)
                one_sided.append((group, idx))
            for sign in signs:
                perturbed = value.copy()
                perturbed[idx] += sign * eps
                results = _batch(net.with_value(group, perturbed), inputs)
                if any(not np.array_equal(r.spike_count, c) for r, c in zip(results, base_counts)):
                    changes.append((group, idx, sign))
                values[sign] = _loss_from_results(results, labels)
            grad[idx] = (values[1] - values[-1]) / (2 * eps) if -1 in values else (values[1] - f0) / eps
        grads[group] = grad
    return FDResult(grads=grads, spike_count_changes=changes, base=base, one_sided=one_sided)
