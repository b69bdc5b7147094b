"""Calibration: the float network's state ranges on data, from which the quantiser chooses each population's scale
(evprop.fixed_point.quantise, `bounds`)."""

from __future__ import annotations

import numpy as np

from ..data.spikes import SpikeData
from ..train.compiled import CompiledNetwork
from ..train.engine import forward

def state_bounds(spec, data: SpikeData, max_spikes: int = 1000, batch_size: int = 256) -> dict:
    """{layer name: {'max_abs_arrival', 'max_abs_u', 'max_v', 'max_neg_v'}} of the float network on `data`
    [V units]: the largest |g*arrivals| in one step, |g*J| (Lava's u), V and -V (before reset) over all samples,
    steps and neurons."""
    net = CompiledNetwork.from_spec(spec)
    worst = np.zeros((net.n_neurons, 4))
    for start in range(0, len(data), batch_size):
        batch = data.subset(np.arange(start, min(start + batch_size, len(data))))
        fwd = forward(net, batch, max_spikes, allow_overflow=True, track_state=True)
        worst = np.maximum(worst, fwd.state_max.max(axis=0))
    return {name: dict(zip(("max_abs_arrival", "max_abs_u", "max_v", "max_neg_v"), (float(x) for x in w.max(axis=1))))
            for name, w in net.per_layer(worst.T).items()}
