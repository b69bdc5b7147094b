"""mlGeNN's EventProp schedule in plain numpy (test utility), written from its documented update equations.

Source: mlGeNN's `EventPropCompiler` (genn-team/ml_genn, the version of tests/data/mlgenn/README.md), read for this
file; the tests check the statement against that version's own gradients in tests/data/mlgenn/tiny_cases.json.
Network: inputs -> one LIF hidden layer (optionally recurrent) -> LI outputs, integer delays, readout
`avg_var_exp_weight` with cross-entropy, one example per batch (mlGeNN's CPU backend), taus one per layer.

Forward (GeNN's step, the same discrete model as evprop's): a spike in step s arrives in step a = s + 1 + d;
J = I + arrivals, V = alpha V + g J, I = beta J, spike when V >= theta (tape J - V), V = 0;
VAvg = sum_k exp(-k dt / T) V_out(k) / n_steps. With `last_step_quirk`, mlGeNN's ZeroOutPost: every synaptic
current and pending delayed arrival is zeroed at the start of the last step.

Backward. mlGeNN runs it during the next trial, one step of backward time backT = T - t - dt per simulation step;
written here per forward step f = backT / dt, from f = n_steps - 1 down to 0 (adjoints 0 at f = n_steps), in
mlGeNN's variables (Lambda = the papers' adjoints lambda divided by the output tau_mem, Wunderlich & Pehle 2021
eqs. (4)-(5)), each step in GeNN's order:

 1. synapse update: every spike emitted in step s = f (flagged "BackSpike" one step earlier) reads its target's
    adjoints at the arrival step a = s + 1 + d, as stored at the end of step a:
        Gradient      -= tau_syn LambdaI_post(a)
        DelayGradient -= w (LambdaI_post(a) - LambdaV_post(a))
        RevISyn_pre   += w (LambdaV_post(a) - LambdaI_post(a))            (hidden sources only)
 2. neuron update, `adjoint_step="continuous"` (mlGeNN: the exact solution of the continuous adjoint equations over
    dt, drive held constant):
        outputs: D = (1[k = y] - softmax_k) exp(-(f + 1) dt / T) / (tau_mem_out T)
                 LambdaI = D + (LambdaI - D) beta + A (LambdaV - D)(alpha - beta),  A = tau_m / (tau_m - tau_s)
                 LambdaV = D + (LambdaV - D) alpha
        hidden:  LambdaI = A LambdaV (beta - alpha) + LambdaI beta,  A = tau_m / (tau_s - tau_m);  LambdaV *= alpha
    `adjoint_step="discrete"` (evprop: the exact adjoint of the discrete step, in the same variables):
        LambdaV = alpha LambdaV + drive_k,  drive_k = -(dl/dV_k) / tau_mem_out^2 = (1[k = y] - softmax_k)
                  exp(-f dt / T) / (n_steps tau_mem_out^2)   (outputs; 0 for hidden)
        LambdaI = (g tau_m / tau_s) LambdaV + beta LambdaI    (LambdaV of this step, see 3)
 3. at each taped spike of a hidden neuron in step f (Wunderlich & Pehle 2021, eq. (5); the regulariser of
    Nowotny, Turner & Knight 2025, eq. (7), in mlGeNN's form):
        LambdaV += (theta LambdaV + RevISyn) / (J - V)
        LambdaV -= RegLambda (count - nu),  RegLambda = reg_lambda_upper if count > nu else reg_lambda_lower
    mlGeNN updates LambdaI in 2 before this jump, so an arrival in the step of a target spike gets no credit for
    it (`same_step_credit=False`); evprop's LambdaI of step f uses LambdaV after the jump (`same_step_credit=True`).

Gradients come out in mlGeNN's scale: about (1 / tau_mem_out) times dL/dw (exactly that with "discrete").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Gradients:
    weights: dict          # {"input->hidden": (n_pre, n_post), ...}
    delays: dict           # same keys, dL/d(delay steps) in mlGeNN's scale
    hidden_spikes: list    # per example: sorted (step, neuron)
    readout: np.ndarray    # [examples, n_out] VAvg


def _layer_constants(tau_mem: float, tau_syn: float, dt: float):
    alpha, beta = math.exp(-dt / tau_mem), math.exp(-dt / tau_syn)
    g = (1 - alpha) * (tau_syn / dt) * (1 - beta)
    return alpha, beta, g


def _scalar(x) -> float:
    values = np.asarray(x, dtype=np.float64).ravel()
    assert np.all(values == values[0]), "one tau per layer (mlGeNN)"
    return float(values[0])


def _integer_delays(conn) -> np.ndarray:
    if conn.delay is None or conn.max_delay_steps == 0:
        return np.zeros(conn.weight.shape, dtype=np.int64)
    return np.clip(np.floor(np.asarray(conn.delay) + 0.5), 0, conn.max_delay_steps).astype(np.int64)


def _forward(spec, conns, events, consts, last_step_quirk):
    """One example: hidden tape [(step, neuron, J - V)], V_out [n_steps, n_out]."""
    n_steps = spec.n_steps
    sizes = {"hidden": spec.layer("hidden").size, "output": spec.output.size}
    max_d = max(int(d.max(initial=0)) for _, d in conns.values())
    arrivals = {name: np.zeros((n_steps + max_d + 2, size)) for name, size in sizes.items()}
    state = {name: (np.zeros(size), np.zeros(size)) for name, size in sizes.items()}     # (I, V)
    theta = spec.layer("hidden").threshold
    tape, v_out = [], np.zeros((n_steps, sizes["output"]))
    in_steps, in_channels = events
    for k in range(n_steps):
        if last_step_quirk and k == n_steps - 1:
            for name in sizes:
                state[name][0][:] = 0.0
        spiking = {"input": in_channels[in_steps == k]}
        for name in ("hidden", "output"):
            alpha, beta, g = consts[name]
            current, v = state[name]
            j = current + arrivals[name][k]
            v[:] = alpha * v + g * j
            current[:] = beta * j
            if name == "hidden":
                fired = np.flatnonzero(v >= theta)
                tape += [(k, int(n), float(j[n] - v[n])) for n in fired]
                v[fired] = 0.0
                spiking["hidden"] = fired
            else:
                v_out[k] = v
        if last_step_quirk and k + 1 == n_steps - 1:
            for name in sizes:
                arrivals[name][k + 1:] = 0.0
        for (src, dst), (w, d) in conns.items():
            for i in spiking[src]:
                arrivals[dst][k + 1 + d[i], np.arange(w.shape[1])] += w[i]
    return tape, v_out


def mlgenn_gradients(spec, data, adjoint_step: str = "continuous", same_step_credit: bool = False,
                     last_step_quirk: bool = True, reg_lambda: tuple = (0.0, 0.0), reg_nu: int = 0) -> Gradients:
    """Mean over the examples of `data` (each run alone, as mlGeNN's CPU backend does) of mlGeNN's gradients for
    the NetworkSpec `spec` (layers named input, hidden, output), with the conventions chosen by the flags (module
    docstring). reg_lambda = (upper, lower) in mlGeNN's units, reg_nu its integer target count."""
    assert adjoint_step in ("continuous", "discrete")
    dt, n_steps = spec.dt_ms, spec.n_steps
    hidden, output = spec.layer("hidden"), spec.output
    taus = {"hidden": (_scalar(hidden.tau_mem_ms), _scalar(hidden.tau_syn_ms)),
            "output": (_scalar(output.tau_mem_ms), _scalar(output.tau_syn_ms))}
    consts = {name: _layer_constants(tm, ts, dt) for name, (tm, ts) in taus.items()}
    conns = {(c.source, c.target): (np.asarray(c.weight, dtype=np.float64), _integer_delays(c))
             for c in spec.connections}
    tau_mem_out = taus["output"][0]
    theta = hidden.threshold
    total_ms = n_steps * dt
    weights = {f"{s}->{t}": np.zeros(w.shape) for (s, t), (w, _) in conns.items()}
    delays = {f"{s}->{t}": np.zeros(w.shape) for (s, t), (w, _) in conns.items()}
    spikes_all, readouts = [], []
    n_examples = len(data)
    for b in range(n_examples):
        steps, channels = data.sample(b)
        tape, v_out = _forward(spec, conns, (np.asarray(steps), np.asarray(channels)), consts, last_step_quirk)
        spikes_all.append(sorted((k, n) for k, n, _ in tape))
        readout = (np.exp(-np.arange(n_steps) * dt / total_ms)[:, None] * v_out).sum(axis=0) / n_steps
        readouts.append(readout)
        softmax = np.exp(readout - readout.max())
        softmax /= softmax.sum()
        error = -softmax
        error[int(data.labels[b])] += 1.0                                   # 1[k = y] - softmax_k
        counts = np.bincount([n for _, n, _ in tape], minlength=hidden.size)
        tape_at = {}
        for k, n, imv in tape:
            tape_at.setdefault(k, []).append((n, imv))
        # history of (LambdaI, LambdaV) per layer at the end of each step; zero beyond the trial
        history = {name: np.zeros((n_steps + 64 + max(int(d.max(initial=0)) for _, d in conns.values()), 2,
                                   size)) for name, size in (("hidden", hidden.size), ("output", output.size))}
        lam = {name: np.zeros((2, size)) for name, size in (("hidden", hidden.size), ("output", output.size))}
        for f in range(n_steps - 1, -1, -1):
            # 1. synapse update: spikes emitted in step f read their targets at the arrival step
            rev = np.zeros(hidden.size)
            source_spikes = {"input": np.asarray(channels)[np.asarray(steps) == f],
                             "hidden": np.array([n for n, _ in tape_at.get(f, [])], dtype=np.int64)}
            for (src, dst), (w, d) in conns.items():
                tau_syn_post = taus[dst][1]
                for i in source_spikes[src]:
                    a = f + 1 + d[i]                                            # arrival step per target
                    lam_i, lam_v = history[dst][a, 0, np.arange(w.shape[1])], history[dst][a, 1,
                                                                                              np.arange(w.shape[1])]
                    weights[f"{src}->{dst}"][i] -= tau_syn_post * lam_i / n_examples
                    delays[f"{src}->{dst}"][i] -= w[i] * (lam_i - lam_v) / n_examples
                    if src == "hidden":
                        rev[i] += np.sum(w[i] * (lam_v - lam_i))
            # 2. neuron update: adjoint dynamics over one step
            for name in ("output", "hidden"):
                tau_m, tau_s = taus[name]
                alpha, beta, g = consts[name]
                lam_i, lam_v = lam[name]
                if adjoint_step == "continuous":
                    if name == "output":
                        drive = error * math.exp(-(f + 1) * dt / total_ms) / (tau_m * total_ms)
                        new_i = drive + (lam_i - drive) * beta + tau_m / (tau_m - tau_s) * (lam_v - drive) * (
                            alpha - beta)
                        lam_v[:] = drive + (lam_v - drive) * alpha
                    else:
                        new_i = tau_m / (tau_s - tau_m) * lam_v * (beta - alpha) + lam_i * beta
                        lam_v[:] = lam_v * alpha
                    lam_i[:] = new_i
                else:
                    drive = (error * math.exp(-f * dt / total_ms) / (n_steps * tau_mem_out ** 2)
                             if name == "output" else 0.0)
                    lam_v[:] = alpha * lam_v + drive
                    if not same_step_credit or name == "output":
                        lam_i[:] = g * tau_m / tau_s * lam_v + beta * lam_i
                # 3. jumps at taped hidden spikes of this step
                if name == "hidden":
                    before = lam_v.copy()
                    for n, imv in tape_at.get(f, []):
                        lam_v[n] += (theta * lam_v[n] + rev[n]) / imv
                        upper, lower = reg_lambda
                        lam_v[n] -= (upper if counts[n] > reg_nu else lower) * (counts[n] - reg_nu)
                    if adjoint_step == "discrete" and same_step_credit:
                        lam_i[:] = g * tau_m / tau_s * lam_v + beta * lam_i
                    elif adjoint_step == "continuous" and same_step_credit:
                        lam_i[:] += g * tau_m / tau_s * (lam_v - before)
                history[name][f] = lam[name]
    return Gradients(weights, delays, spikes_all, np.array(readouts))
