"""Backward passes of the BPTT-family baselines: BPTT, SLAYER and EXODUS with a surrogate spike derivative.

Notation (forward in `dense.py`): A_k arrivals, J_k current, V_k voltage before the reset, S_k = H(V_k - theta),
U_k = V_k (1 - S_k). Adjoints: Lam_V(k) = dL/dV_k, Lam_J(k) = dL/dJ_k = dL/dA_k, e_k = dL/dS_k from the
layers the spikes reach. The spike's derivative is replaced by a surrogate (SuperSpike / fast sigmoid):

    f'(V) = 1 / (1 + beta_s |V - theta|)^2

One reverse step, for every neuron (the LI outputs have f' = 0 and rho = 1):

    e_k      = sum over outgoing connections  Lam_J,target(k+1) W^T        (Bauer et al. 2023 eq. (12): e = d W)
    Lam_V(k) = dl/dV_k + f'(V_k) e_k + alpha rho_k Lam_V(k+1)
    Lam_J(k) = g Lam_V(k) + beta Lam_J(k+1)
    dL/dW    = sum_k S_src,k-1^T Lam_J,target(k)                             (Bauer et al. 2023 eq. (14))

where rho_k = dU_k/dV_k is where the three algorithms differ:

    bptt:    U = V (1 - S)  differentiated through the surrogate:   rho_k = (1 - S_k) - V_k f'(V_k)
    slayer:  the reset kernel is dropped from the gradient (Bauer et al. 2023: "SLAYER = EXODUS with reset kernel 0"):
             the membrane is treated as the filtered input alone, rho_k = 1
    exodus:  rho_k as BPTT, obtained through the implicit function theorem (below)

BPTT runs this recursion over the whole network jointly, one reverse step at a time, with a matrix product per
connection per step. EXODUS (Bauer et al. 2023 eqs. (9)-(16)) instead visits one layer (strongly connected component)
at a
time, downstream first: e for all steps at once is one matrix product over B*T rows (eq. (12)), and the reset is
handled per neuron by the closed-form recursion of eqs. (15)-(16), a diagonal scan in reverse time with no matrix
product. Only recurrent connections inside a component keep a product per step (the paper is feed-forward only).

Adaptation of EXODUS to reset-to-zero (the paper uses subtract-reset):
    The paper's IFT system per layer is Phi_u[n] = u[n] - z[n] - (nu * s)[n-1] = 0, Phi_s[n] = s[n] - f_s(u[n]) = 0
    with nu_n = -theta alpha^n (subtract theta). Its solution sigma_m[n] = ds[n]/dz[m] (eq. (9)) has the LIF
    closed form (eqs. (15)-(16)) sigma_m[n] = f'[n] chi_m[n] with chi_m[m] = 1, chi_m[n+1] = chi_m[n] (alpha - theta
    f'[n]): the factor (alpha - theta f'[n]) is du[n+1]/du[n] along the graph, leak plus the reset's derivative.
    evprop resets to zero: u[n+1] = alpha u[n] (1 - s[n]) + g J[n+1]. The reset "kernel" subtracts the state
    itself (u[n] s[n], not theta s[n]) and stops the leak across a spike, so the IFT system becomes
    Phi_u[n] = u[n] - alpha u[n-1] (1 - s[n-1]) - z[n] = 0. Its Jacobian in (u, s) is still lower triangular with
    unit diagonal (det = 1, the IFT applies), and the same derivation gives
        chi_m[n+1] = chi_m[n] * alpha ((1 - s[n]) - u[n] f'[n])       (state-dependent instead of alpha - theta f')
    i.e. exactly BPTT's local Jacobian alpha rho_n. EXODUS's d[n] = sum_{m>=n} sigma_n[m] (eps (.) e)[m] (eq. (13))
    with this chi is evaluated in Horner form as the reverse scan Lam_V(n) = f'_n e~_n + alpha rho_n Lam_V(n+1),
    so EXODUS and BPTT agree to float rounding (only the order of the sums differs). Using the paper's factor
    (alpha - theta f') unchanged would NOT reproduce BPTT for reset-to-zero: V >= theta at a spike, and the leak
    does not survive the reset.
"""

from __future__ import annotations

import numpy as np

from ...data.spikes import SpikeData
from ...model.spec import discretise_backward
from ..compiled import CompiledNetwork
from ..engine import Gradients
from .dense import DenseForward, LayerInfo, Topology, dense_forward, spikes_of

ALGORITHMS = ("bptt", "slayer", "exodus")
DEFAULT_SURROGATE_BETA = 10.0


def surrogate_derivative(v: np.ndarray, theta, beta_s: float) -> np.ndarray:
    """SuperSpike / fast-sigmoid derivative f'(V) = 1 / (1 + beta_s |V - theta|)^2."""
    return 1.0 / (1.0 + beta_s * np.abs(v - theta)) ** 2


def local_factors(vk: np.ndarray, layer: LayerInfo, algorithm: str, beta_s: float):
    """(f'(V_k), alpha rho_k, S_k) of one step; f' and S are None for LI layers (no spikes, rho = 1)."""
    if not layer.spiking:
        return None, layer.alpha, None
    sk = spikes_of(vk, layer)
    fprime = surrogate_derivative(vk, layer.theta, beta_s)
    if algorithm == "slayer":
        return fprime, layer.alpha, sk
    return fprime, layer.alpha * ((1.0 - sk) - vk * fprime), sk


def adjoint_step(layer: LayerInfo, vk, drive, e, lv_next, lj_next, jump, algorithm: str, beta_s: float):
    """One reverse step (module docstring): returns (Lam_V(k), Lam_J(k)). `drive` is dl/dV_k or None, `e` is
    dL/dS_k or None, `jump` [B, n] an extra Lam_V jump at each spike (regulariser) or None."""
    fprime, decay, sk = local_factors(vk, layer, algorithm, beta_s)
    lv = decay * lv_next
    if drive is not None:
        lv = lv + drive
    if fprime is not None:
        if e is not None:
            lv = lv + fprime * e
        if jump is not None:
            lv = lv + jump * sk
    return lv, layer.g * lv + layer.beta * lj_next


def bptt_adjoints(topo: Topology, fwd: DenseForward, dl_dv_out, jumps: dict, algorithm: str, beta_s: float):
    """Plain BPTT: the whole network one reverse step at a time, a matrix product per connection per step.
    Returns {layer: Lam_J [B, T, n]}."""
    names = list(topo.layers)
    n_batch, n_steps = dl_dv_out.shape[:2]
    out = names[-1]
    lam_j = {name: np.empty((n_batch, n_steps, topo.layers[name].size)) for name in names}
    lv_next = {name: np.zeros((n_batch, topo.layers[name].size)) for name in names}
    lj_next = {name: np.zeros((n_batch, topo.layers[name].size)) for name in names}
    for k in range(n_steps - 1, -1, -1):
        lv_now, lj_now = {}, {}
        for name, layer in topo.layers.items():
            e = None
            if k + 1 < n_steps:
                for link in topo.outgoing(name):
                    term = lj_next[link.target] @ link.weight.T
                    e = term if e is None else e + term
            drive = dl_dv_out[:, k] if name == out else None
            lv_now[name], lj_now[name] = adjoint_step(layer, fwd.v[name][:, k], drive, e, lv_next[name],
                                                      lj_next[name], jumps.get(name), algorithm, beta_s)
            lam_j[name][:, k] = lj_now[name]
        lv_next, lj_next = lv_now, lj_now
    return lam_j


def exodus_adjoints(topo: Topology, fwd: DenseForward, dl_dv_out, jumps: dict, algorithm: str, beta_s: float):
    """EXODUS (and SLAYER, its reset-free special case): one component at a time, downstream first; e over all
    steps by one product per outgoing connection (eq. (12)), the reset by the per-neuron chi scan (eqs. (15)-(16),
    reset-to-zero form in the module docstring). Returns {layer: Lam_J [B, T, n]}."""
    names = list(topo.layers)
    n_batch, n_steps = dl_dv_out.shape[:2]
    out = names[-1]
    lam_j = {}
    for comp in reversed(topo.components):
        e_all = {name: _downstream_e(topo, name, comp, lam_j, n_batch, n_steps) for name in comp}
        inner = {name: [link for link in topo.outgoing(name) if link.target in comp] for name in comp}
        for name in comp:
            lam_j[name] = np.empty((n_batch, n_steps, topo.layers[name].size))
        lv_next = {name: np.zeros((n_batch, topo.layers[name].size)) for name in comp}
        lj_next = {name: np.zeros((n_batch, topo.layers[name].size)) for name in comp}
        for k in range(n_steps - 1, -1, -1):
            lv_now, lj_now = {}, {}
            for name in comp:
                e = None if e_all[name] is None else e_all[name][:, k]
                if k + 1 < n_steps:
                    for link in inner[name]:
                        term = lj_next[link.target] @ link.weight.T
                        e = term if e is None else e + term
                drive = dl_dv_out[:, k] if name == out else None
                lv_now[name], lj_now[name] = adjoint_step(topo.layers[name], fwd.v[name][:, k], drive, e,
                                                          lv_next[name], lj_next[name], jumps.get(name),
                                                          algorithm, beta_s)
                lam_j[name][:, k] = lj_now[name]
            lv_next, lj_next = lv_now, lj_now
    return lam_j


def _downstream_e(topo: Topology, name: str, comp: list, lam_j: dict, n_batch: int, n_steps: int):
    """e_k = dL/dS_k from layers outside the component, for all steps at once: e[:, k] = Lam_J,target(k+1) W^T."""
    links = [link for link in topo.outgoing(name) if link.target not in comp]
    if not links:
        return None
    e = np.zeros((n_batch, n_steps, topo.layers[name].size))
    for link in links:
        e[:, :-1] += lam_j[link.target][:, 1:] @ link.weight.T
    return e


def weight_gradients(topo: Topology, fwd: DenseForward, lam_j: dict, n_weights: int) -> np.ndarray:
    """dL/dW = sum_k S_src,k-1^T Lam_J,target(k) (eq. (14)), one product over B*T rows per connection, in the
    flat layout of CompiledNetwork.w_flat (connections out of LI layers carry no spikes: zero gradient)."""
    grad = np.zeros(n_weights)
    for link in topo.links:
        lj = lam_j[link.target]
        n_post = lj.shape[2]
        if link.source is None:
            g = fwd.x.T @ lj.reshape(-1, n_post)
        else:
            s_prev = spikes_of(fwd.v[link.source][:, :-1], topo.layers[link.source])
            g = s_prev.reshape(-1, s_prev.shape[2]).T @ lj[:, 1:].reshape(-1, n_post)
        grad[link.flat] = np.asarray(g).ravel()
    return grad


def tau_gradients(net: CompiledNetwork, topo: Topology, fwd: DenseForward, lam_j: dict):
    """dL/dtau_mem, dL/dtau_syn [n_neurons] from the same adjoints (Nowotny et al. 2025 App. C in discrete form):
        dL/dalpha = sum_k Lam_V(k) U_k-1,  dL/dbeta = sum_k Lam_J(k) J_k-1,  dL/dg = sum_k Lam_V(k) J_k,
    with Lam_V(k) = (Lam_J(k) - beta Lam_J(k+1)) / g, then alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn),
    g = (1 - alpha)(tau_syn/dt)(1 - beta) (model.spec.discretise_backward). Zeros when the forward pass did not
    keep J."""
    grad_m, grad_s = np.zeros(net.n_neurons), np.zeros(net.n_neurons)
    if fwd.j is None:
        return grad_m, grad_s
    dt = net.spec.dt_ms
    for name, layer in topo.layers.items():
        lj, v, j = lam_j[name], fwd.v[name], fwd.j[name]
        lj_next = np.zeros_like(lj)
        lj_next[:, :-1] = lj[:, 1:]
        lv = (lj - layer.beta * lj_next) / layer.g
        u_prev = v[:, :-1] * (1.0 - spikes_of(v[:, :-1], layer)) if layer.spiking else v[:, :-1]
        d_alpha = np.einsum("bkn,bkn->n", lv[:, 1:], u_prev)
        d_beta = np.einsum("bkn,bkn->n", lj[:, 1:], j[:, :-1])
        d_g = np.einsum("bkn,bkn->n", lv, j)
        sl = layer.neurons
        grad_m[sl], grad_s[sl] = discretise_backward(d_alpha, d_beta, d_g, net.tau_mem[sl], net.tau_syn[sl], dt,
                                                     layer.alpha, layer.beta)
    return grad_m, grad_s


def dense_backward(algorithm: str, net: CompiledNetwork, fwd: DenseForward, dl_dv_out: np.ndarray,
                   spike_jump: np.ndarray | None = None,
                   surrogate_beta: float = DEFAULT_SURROGATE_BETA) -> Gradients:
    """Gradients of one batch by `algorithm` in ALGORITHMS, summed over the batch like the engine's (the loss's
    drive carries the 1/B). spike_jump [B, n_neurons]: Lam_V jump at each spike (the engine's regulariser hook).
    Delay gradients are zero (the baselines support zero delays only)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"baseline algorithm '{algorithm}' unknown, expected one of {ALGORITHMS}")
    topo = fwd.topology
    dl_dv_out = np.asarray(dl_dv_out, dtype=np.float64)
    jumps = {} if spike_jump is None else \
        {name: spike_jump[:, layer.neurons] for name, layer in topo.layers.items() if layer.spiking}
    adjoints = bptt_adjoints if algorithm == "bptt" else exodus_adjoints
    lam_j = adjoints(topo, fwd, dl_dv_out, jumps, algorithm, surrogate_beta)
    grad_w = weight_gradients(topo, fwd, lam_j, len(net.w_flat))
    grad_m, grad_s = tau_gradients(net, topo, fwd, lam_j)
    return Gradients(grad_w, np.zeros(len(net.delay_flat)), grad_m, grad_s)


def baseline_gradients(algorithm: str, spec_or_net, data: SpikeData, dl_dv_fn, spike_jump=None,
                       surrogate_beta: float = DEFAULT_SURROGATE_BETA, keep_current: bool = True) -> Gradients:
    """Uniform entry point: forward the batch densely, ask `dl_dv_fn(v_out [B, T, n_out])` for dL/dV_out (e.g.
    `lambda v: get_loss('cross_entropy')(spec, v, data.labels)[2]`), and return the gradients of `algorithm`
    ('bptt', 'slayer', 'exodus') as an engine `Gradients` (weights flat in CompiledNetwork.w_flat layout;
    `CompiledNetwork.per_connection` splits them)."""
    net = spec_or_net if isinstance(spec_or_net, CompiledNetwork) else CompiledNetwork.from_spec(spec_or_net)
    fwd = dense_forward(net, data, keep_current=keep_current)
    return dense_backward(algorithm, net, fwd, dl_dv_fn(fwd.v_out), spike_jump, surrogate_beta)
