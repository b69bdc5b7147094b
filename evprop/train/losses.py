"""Losses: small objects that turn a forward pass into a loss and its derivatives (Nowotny et al. 2025, section 2
and App. B).

A loss never touches the kernels. The forward kernel records the output voltages V[b, k, j] and the spike tape;
a loss returns dL/dV[b, k, j] (the drive of the output adjoints, the source term S_k(t) of Nowotny et al. 2025, App.
B, in discrete
form) and, for spike-time losses, dl_p/dt of taped output spikes (entering EventProp's jump, Wunderlich & Pehle 2021,
eq. 11).
Every loss has `evaluate(spec, fwd, out, labels) -> LossTerms`; voltage losses also `__call__(spec, v_out,
labels) -> (loss, scores, dL/dV)`. Losses are registered by name; all are batch means.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from ..model.spec import NetworkSpec

LOSSES = {}


class LossTerms(NamedTuple):
    loss: float
    scores: np.ndarray              # [B, n_out] class scores (argmax = prediction)
    dl_dv: np.ndarray | None        # [B, T, n_out], or None when the drive is separable (dl_dscore)
    tape_dl_dt: np.ndarray | None   # [B, C] per taped spike [per ms], or None
    dl_dscore: np.ndarray | None = None   # [B, n_out]: dL/dV_bjk = readout_w[k] dl_dscore[b, j]


def register(cls):
    LOSSES[cls.name] = cls
    return cls


def get_loss(name: str, **params):
    """The loss registered as `name`, built with its keyword parameters; an unknown name or parameter is a one-line
    ValueError."""
    if name not in LOSSES:
        raise ValueError(f"loss '{name}' unknown, expected one of {sorted(LOSSES)}")
    accepted = loss_parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"loss '{name}' has no parameter {unknown[0]!r}, expected "
                         f"{'one of ' + str(sorted(accepted)) if accepted else 'none'}")
    return LOSSES[name](**params)


def loss_parameters(name: str) -> dict:
    """{parameter: default} of the loss registered as `name` (its constructor's keyword arguments)."""
    signature = inspect.signature(LOSSES[name].__init__)
    return {key: p.default for key, p in signature.parameters.items() if key != "self"
            and p.kind is p.POSITIONAL_OR_KEYWORD}


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _cross_entropy(scores: np.ndarray, labels: np.ndarray):
    """(-(1/B) sum_b log softmax(X_b)[label_b], dL/dX = (softmax(X) - onehot) / B)."""
    n_batch = len(labels)
    prob = softmax(scores)
    loss = -np.mean(np.log(prob[np.arange(n_batch), labels] + 1e-300))
    dl_dx = prob.copy()
    dl_dx[np.arange(n_batch), labels] -= 1.0
    return float(loss), dl_dx / n_batch


class Loss:
    """What every loss offers the trainer."""

    @staticmethod
    def compact(spec: NetworkSpec) -> bool:
        """Whether the forward pass may keep only accumulated scores (see CrossEntropy)."""
        return False


class VoltageLoss(Loss):
    """A loss of the output voltages only."""

    def evaluate(self, spec: NetworkSpec, fwd, out: slice, labels: np.ndarray) -> LossTerms:
        loss, scores, dl_dv = self(spec, fwd.v_out, labels)
        return LossTerms(loss, scores, dl_dv, None)


@register
class CrossEntropy(VoltageLoss):
    """Cross-entropy of the softmax of the network's readout scores, L_sum / L_sum_exp / L_sum_gaus / L_max of
    Nowotny et al. 2025, eqs. 2-4 and App. B, depending on NetworkSpec.readout:

        X_bj = readout(V_bj),  L = -(1/B) sum_b log softmax(X_b)[label_b],  dL/dX_bj = (p_bj - [j == label_b]) / B
        weighted-sum readouts X_bj = sum_k c_k V_bjk:  dL/dV_bjk = c_k dL/dX_bj
        max readout:  dL/dV_bjk = dL/dX_bj at the step of the maximum (Nowotny et al. 2025 App. B eqs. (29)-(33))
    """

    name = "cross_entropy"

    @staticmethod
    def compact(spec: NetworkSpec) -> bool:
        """Weighted-sum readouts need only the kernel's accumulated scores, not every output voltage."""
        return spec.readout_rule.is_weighted_sum

    def evaluate(self, spec: NetworkSpec, fwd, out: slice, labels: np.ndarray) -> LossTerms:
        if fwd.scores is None:
            return super().evaluate(spec, fwd, out, labels)
        loss, dl_dx = _cross_entropy(fwd.scores, labels)
        return LossTerms(loss, fwd.scores, None, None, dl_dx)

    def __call__(self, spec: NetworkSpec, v_out: np.ndarray, labels: np.ndarray):
        """Returns (loss, scores [B, n_out], dL/dV [B, T, n_out])."""
        scores = spec.scores(v_out)
        loss, dl_dx = _cross_entropy(scores, labels)
        return loss, scores, spec.readout_rule.voltage_gradient(v_out, spec.dt_ms, dl_dx)


@register
class PerTimestepCrossEntropy(VoltageLoss):
    """L_x-entropy (Nowotny et al. 2025, eq. 1): cross-entropy of softmax(V(t)) at every step, averaged over time:

        L = -(1/B) sum_b (1/T) sum_k log softmax(V_bk)[label_b],  dL/dV_bjk = (softmax(V_bk)_j - [j == label]) / (T B)

    Predictions use the network's readout (NetworkSpec.scores)."""

    name = "x_entropy"

    def __call__(self, spec: NetworkSpec, v_out: np.ndarray, labels: np.ndarray):
        n_batch, n_steps, _ = v_out.shape
        prob = softmax(v_out)
        picked = prob[np.arange(n_batch), :, labels]                    # [B, T]
        loss = -np.mean(np.log(picked + 1e-300))
        dl_dv = prob.copy()
        dl_dv[np.arange(n_batch), :, labels] -= 1.0
        return float(loss), spec.scores(v_out), dl_dv / (n_steps * n_batch)


class SpikeTimeLoss(Loss):
    """A loss of the first output spike times t_j (LIF outputs; silent outputs count as t = T)."""

    def evaluate(self, spec: NetworkSpec, fwd, out: slice, labels: np.ndarray) -> LossTerms:
        first_step, first_index = fwd.first_spikes(out)
        t = first_step * spec.dt_ms
        loss, dl_dt = self.loss_and_gradient(t, labels, spec.n_steps * spec.dt_ms)
        tape_dl_dt = np.zeros(fwd.tape_imv.shape)
        spiked = first_index >= 0
        b_idx = np.nonzero(spiked)[0]
        tape_dl_dt[b_idx, first_index[spiked]] = dl_dt[spiked]
        dl_dv = np.zeros_like(fwd.v_out)
        self.silent_drive(dl_dv, spiked, labels, spec)
        return LossTerms(loss, spec.scores(fwd.v_out, first_step), dl_dv, tape_dl_dt)

    def silent_drive(self, dl_dv, spiked, labels, spec) -> None:
        """Extra drive for silent outputs (none by default)."""


@register
class FirstSpikeTime(SpikeTimeLoss):
    """L_time (Wunderlich & Pehle 2021, eq. 3; parameters Nowotny et al. 2025, Table 3):

        L = -(1/B) sum_b [ log softmax(-t_b / tau0)[l] - alpha (exp(t_l / tau1) - 1) ]
        dL/dt_k = (1/B) [ ([k == l] - softmax(-t/tau0)_k) / tau0 + [k == l] (alpha/tau1) exp(t_l/tau1) ]

    Phantom spike (Nowotny et al. 2025 section 4.1): if the correct output stays silent, its adjoint gets the drive
    it would get
    from a spike at T (the authors' code adds (alpha/tau1) exp(T/tau1) / B to its lambda_V at T; here that is the
    matching push on V at the last step, dL/dV = -(alpha/tau1) exp(T/tau1) / B)."""

    name = "first_spike_time"

    def __init__(self, tau0_ms: float = 1.0, tau1_ms: float = 100.0, alpha: float = 5e-5):
        self.tau0, self.tau1, self.alpha = tau0_ms, tau1_ms, alpha

    def loss_and_gradient(self, t: np.ndarray, labels: np.ndarray, duration: float):
        n_batch = len(labels)
        rows = np.arange(n_batch)
        prob = softmax(-t / self.tau0)
        t_label = t[rows, labels]
        loss = -np.mean(np.log(prob[rows, labels] + 1e-300) - self.alpha * (np.exp(t_label / self.tau1) - 1))
        dl_dt = -prob / self.tau0
        dl_dt[rows, labels] += 1.0 / self.tau0 + self.alpha / self.tau1 * np.exp(t_label / self.tau1)
        return float(loss), dl_dt / n_batch

    def silent_drive(self, dl_dv, spiked, labels, spec) -> None:
        rows = np.arange(len(labels))
        silent = ~spiked[rows, labels]
        duration = spec.n_steps * spec.dt_ms
        dl_dv[rows[silent], -1, labels[silent]] -= self.alpha / self.tau1 * np.exp(duration / self.tau1) \
            / len(labels)


@register
class DeltaMSE(SpikeTimeLoss):
    """L_dMSE (Meszaros et al. 2025 eqs. (71)-(72)): the correct output c should fire delta before every other output:

        L = (1/B) sum_b (1/2) sum_{i != c} (t_i - t_c - delta)^2
        dL/dt_i = (t_i - t_c - delta) / B (i != c),  dL/dt_c = -sum_{i != c} (t_i - t_c - delta) / B"""

    name = "delta_mse"

    def __init__(self, delta_ms: float = 2.0):
        self.delta = delta_ms

    def loss_and_gradient(self, t: np.ndarray, labels: np.ndarray, duration: float):
        n_batch = len(labels)
        rows = np.arange(n_batch)
        gap = t - t[rows, labels][:, None] - self.delta
        gap[rows, labels] = 0.0
        dl_dt = gap.copy()
        dl_dt[rows, labels] = -gap.sum(axis=1)
        return float(0.5 * np.mean(np.sum(gap ** 2, axis=1))), dl_dt / n_batch
