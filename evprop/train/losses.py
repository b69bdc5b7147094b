"""Losses: small objects that turn output voltages into a loss and its derivative per output voltage.

A loss never touches the kernels: the forward kernel records the output voltages V[b, k, j], the loss returns
dL/dV[b, k, j], and the backward kernel adds that as the drive of the output adjoints (DIGEST 3.7: the source
term S_k(t) of each loss, here in discrete form). Losses are registered by name.
"""

from __future__ import annotations

import numpy as np

from ..model.spec import NetworkSpec

LOSSES = {}


def register(cls):
    LOSSES[cls.name] = cls
    return cls


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"loss '{name}' unknown, expected one of {sorted(LOSSES)}")
    return LOSSES[name]()


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@register
class CrossEntropy:
    """Cross-entropy of the softmax of the network's readout scores (L_sum, L_sum_exp, L_max of DIGEST 3.7.1,
    depending on NetworkSpec.readout), averaged over the batch:

        X_bj = readout(V_bj),  L = -(1/B) sum_b log softmax(X_b)[label_b]
        dL/dX_bj = (softmax(X_b)_j - [j == label_b]) / B
        weighted-sum readouts X_bj = sum_k c_k V_bjk:  dL/dV_bjk = c_k dL/dX_bj
        max readout:  dL/dV_bjk = dL/dX_bj at the step of the maximum (000 App. B eqs. (29)-(33))
    """

    name = "cross_entropy"

    def __call__(self, spec: NetworkSpec, v_out: np.ndarray, labels: np.ndarray):
        """Returns (loss, scores [B, n_out], dL/dV [B, T, n_out])."""
        n_batch = len(labels)
        scores = spec.scores(v_out)
        prob = softmax(scores)
        loss = -np.mean(np.log(prob[np.arange(n_batch), labels] + 1e-300))
        dl_dx = prob.copy()
        dl_dx[np.arange(n_batch), labels] -= 1.0
        dl_dx /= n_batch
        if spec.readout == "max":
            dl_dv = np.zeros_like(v_out)
            t_max = v_out.argmax(axis=1)
            b, j = np.meshgrid(np.arange(n_batch), np.arange(v_out.shape[2]), indexing="ij")
            dl_dv[b, t_max, j] = dl_dx
        else:
            dl_dv = spec.readout_weights()[None, :, None] * dl_dx[:, None, :]
        return loss, scores, dl_dv
