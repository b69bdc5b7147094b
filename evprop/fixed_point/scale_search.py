"""Per-layer choice of the quantisation scale searched to minimise the fixed-point loss on training data.

The published exporter maps the 99th percentile of |g w| near the top of the 8-bit range (one rule for every layer).
Here each layer's percentile is chosen from `CANDIDATES` by coordinate descent: layer by layer, keep the candidate
whose quantised network (run in the emulator, i.e. in the target's arithmetic) has the lowest cross-entropy on the
calibration samples; two sweeps over the layers. Then, per connection with a negative weight exponent, keep Lava's
floored message shift or round the weights at exponent 0 instead (`quantise(round_messages=...)`), whichever
quantised network has the lower loss.
"""

from __future__ import annotations

import logging

from .quantise import quantise
from ..train.losses import get_loss
from .emulator import emulate

log = logging.getLogger(__name__)
CANDIDATES = (95.0, 99.0, 99.5, 99.9, 100.0)


def fixed_point_loss(spec, bounds, percentiles: dict, data, lif_negative_range: float,
                     round_messages: frozenset = frozenset()) -> float:
    """Cross-entropy of the spec's readout of the quantised network's output voltages on `data`."""
    fixed, _ = quantise(spec, bounds, dict(percentiles), lif_negative_range=lif_negative_range,
                        round_messages=round_messages)
    v_out = emulate(fixed, data, record_hidden=False).v_out_float
    return get_loss("cross_entropy")(spec, v_out, data.labels)[0]


def search_percentiles(spec, bounds, data, start: float = 99.0, lif_negative_range: float = 16.0,
                       candidates=CANDIDATES, sweeps: int = 2) -> tuple[dict, float, frozenset]:
    """({layer name: percentile}, its fixed-point loss on `data`, the connections to quantise with
    round_messages), starting from `start` everywhere."""
    chosen = {layer.name: start for layer in spec.neuron_layers}
    best = fixed_point_loss(spec, bounds, chosen, data, lif_negative_range)
    for _ in range(sweeps):
        for name in chosen:
            for candidate in candidates:
                trial = {**chosen, name: candidate}
                loss = fixed_point_loss(spec, bounds, trial, data, lif_negative_range)
                if loss < best - 1e-12:
                    chosen, best = trial, loss
    rounded = frozenset()
    fixed, _ = quantise(spec, bounds, dict(chosen), lif_negative_range=lif_negative_range)
    for conn in fixed.connections:
        if conn.weight_exp < 0:
            trial = rounded | {conn.name}
            loss = fixed_point_loss(spec, bounds, chosen, data, lif_negative_range, trial)
            if loss < best - 1e-12:
                rounded, best = trial, loss
    log.info("scale search: percentiles %s, rounded messages %s, fixed-point calibration loss %.4f", chosen,
             sorted(rounded), best)
    return chosen, best, rounded
