"""Readouts: how a network's output layer becomes class scores, one small object per rule, registered by name.

`NetworkSpec.readout` names one of them (files store the name and `readout_params`); `NetworkSpec.readout_rule`
is the object. A readout says which output layer it reads (LI voltages or LIF spike times), how it scores a trial,
how a gradient of the scores flows back to the output voltages, and which loss reports a network by default. A new
readout is a new class here and a test: the config takes its choices from `READOUTS`.

The voltage readouts follow mlGeNN's readout classes (Nowotny et al. 2025, section 2.3; mlGeNN
`ml_genn/readouts/*.py`); V[..., k, j] is the output voltage of class j in step k, t_k = k dt and T = n_steps dt.
"""

from __future__ import annotations

import numpy as np

READOUTS = {}


def register(cls):
    READOUTS[cls.name] = cls
    return cls


def get_readout(name: str, params: tuple = ()) -> "Readout":
    """The readout registered as `name` with its parameters; unknown names and wrong parameter counts are a
    one-line ValueError."""
    if name not in READOUTS:
        raise ValueError(f"network: readout '{name}' unknown, expected one of {sorted(READOUTS)}")
    return READOUTS[name](tuple(float(p) for p in params))


class Readout:
    """What every readout offers. `params` are its numbers (a readout without parameters takes none)."""

    name = ""
    spiking_output = False        # True: the output layer is LIF and scores come from its spike times
    default_loss = "cross_entropy"
    n_params = (0,)               # allowed numbers of parameters

    def __init__(self, params: tuple = ()):
        if len(params) not in self.n_params:
            raise ValueError(f"network: readout '{self.name}' takes {' or '.join(map(str, self.n_params))} "
                             f"parameters, got {params}")
        self.params = params

    def step_weights(self, n_steps: int, dt_ms: float) -> np.ndarray | None:
        """Per-step weights c_k when score_j = sum_k c_k V_j(k) (a weighted sum), else None."""
        return None

    @property
    def is_weighted_sum(self) -> bool:
        """Weighted sums are separable: the forward kernel may keep only accumulated scores (CrossEntropy)."""
        return False

    def scores(self, v_out: np.ndarray, dt_ms: float, first_spike_step: np.ndarray | None = None) -> np.ndarray:
        """Class scores [..., n_out] from output voltages v_out [..., n_steps, n_out]."""
        n_steps = v_out.shape[-2]
        return np.einsum("...kj,k->...j", v_out, self.step_weights(n_steps, dt_ms))

    def voltage_gradient(self, v_out: np.ndarray, dt_ms: float, dl_dscore: np.ndarray) -> np.ndarray:
        """dL/dV [B, n_steps, n_out] from dL/dscore [B, n_out]; weighted sums: dL/dV_bkj = c_k dL/dscore_bj."""
        weights = self.step_weights(v_out.shape[1], dt_ms)
        return weights[None, :, None] * dl_dscore[:, None, :]


class WeightedSum(Readout):
    """score_j = sum_k c_k V_j(k) with per-step weights c_k (`weights`)."""

    @property
    def is_weighted_sum(self) -> bool:
        return True

    def step_weights(self, n_steps: int, dt_ms: float) -> np.ndarray:
        return self.weights(np.arange(n_steps), n_steps, dt_ms)

    def weights(self, steps: np.ndarray, n_steps: int, dt_ms: float) -> np.ndarray:
        raise NotImplementedError


@register
class SumExp(WeightedSum):
    """L_sum_exp's readout (mlGeNN AvgVarExpWeight): score = sum_k exp(-t_k / T) V(k) / n_steps."""

    name = "sum_exp"

    def weights(self, steps, n_steps, dt_ms):
        return np.exp(-steps * dt_ms / (n_steps * dt_ms)) / n_steps


@register
class Sum(WeightedSum):
    """L_sum's readout (mlGeNN AvgVar): score = mean_k V(k)."""

    name = "sum"

    def weights(self, steps, n_steps, dt_ms):
        return np.full(n_steps, 1.0 / n_steps)


@register
class Last(WeightedSum):
    """score = V at the last step (mlGeNN Var)."""

    name = "last"

    def weights(self, steps, n_steps, dt_ms):
        return (steps == n_steps - 1).astype(np.float64)


@register
class SumGaus(WeightedSum):
    """L_sum_gaus's readout (Klotins 2025, thesis code): score = sum_k w(t_k / T) V(k) / n_steps with
    w(x) = 2 (o + d (x - m) exp(-(x - m)^2 / (2 s^2))); params (m, s, d, o), default the thesis code's."""

    name = "sum_gaus"
    n_params = (0, 4)
    DEFAULT = (0.0, 0.2, 4.4, 0.4)

    def weights(self, steps, n_steps, dt_ms):
        m, s, d, o = self.params or self.DEFAULT
        x = steps / n_steps
        return 2.0 * (o + d * (x - m) * np.exp(-(x - m) ** 2 / (2 * s ** 2))) / n_steps


@register
class Max(Readout):
    """L_max's readout: score = max_k V(k); its gradient reaches only the step of the maximum (Wunderlich & Pehle
    2021, App. B eqs. (29)-(33))."""

    name = "max"

    def scores(self, v_out, dt_ms, first_spike_step=None):
        return v_out.max(axis=-2)

    def voltage_gradient(self, v_out, dt_ms, dl_dscore):
        dl_dv = np.zeros_like(v_out)
        t_max = v_out.argmax(axis=1)
        b, j = np.meshgrid(np.arange(v_out.shape[0]), np.arange(v_out.shape[2]), indexing="ij")
        dl_dv[b, t_max, j] = dl_dscore
        return dl_dv


@register
class FirstSpike(Readout):
    """LIF outputs: score = -(first spike time) [ms], silent outputs at the trial length; trained with L_time
    (Wunderlich & Pehle 2021, eq. 3) or L_dMSE."""

    name = "first_spike"
    spiking_output = True
    default_loss = "first_spike_time"

    def scores(self, v_out, dt_ms, first_spike_step=None):
        if first_spike_step is None:
            raise ValueError("readout 'first_spike' scores need the output spike times")
        return -np.asarray(first_spike_step, dtype=np.float64) * dt_ms

    def voltage_gradient(self, v_out, dt_ms, dl_dscore):
        raise ValueError("readout 'first_spike' has no voltage gradient: use a spike-time loss")
