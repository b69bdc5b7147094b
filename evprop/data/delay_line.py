"""Input delay line (Nowotny et al. 2025, section 2.3, Table 5): copy n of every input channel fires n * spacing
later, so a
feed-forward network sees its recent input history (N_delay = 10 copies 30 ms apart: 700 -> 7000 inputs)."""

from __future__ import annotations

import logging

import numpy as np

from .spikes import SpikeData

log = logging.getLogger(__name__)


def delay_line_numpy(steps, channels, n_copies: int, spacing_steps: int, n_channels: int, n_steps: int):
    """Events of one sample -> (steps, channels, dropped): copy n of channel c is channel c + n * n_channels at
    step + n * spacing_steps; copies falling after the trial (step >= n_steps) are dropped and counted.

    >>> delay_line_numpy(np.array([0, 5]), np.array([1, 0]), 2, 3, 2, 8)
    (array([0, 3, 5]), array([1, 3, 0]), 1)
    """
    copy = np.repeat(np.arange(n_copies), len(steps))
    new_steps = np.tile(steps, n_copies) + copy * spacing_steps
    new_channels = np.tile(channels, n_copies) + copy * n_channels
    keep = new_steps < n_steps
    order = np.lexsort((new_channels[keep], new_steps[keep]))
    return new_steps[keep][order], new_channels[keep][order], int(np.sum(~keep))


def delay_line(data: SpikeData, n_copies: int, spacing_ms: float, dt_ms: float) -> SpikeData:
    """The whole data set through the delay line; the number of copies dropped at the trial end is logged."""
    if n_copies == 1:
        return data
    spacing = int(round(spacing_ms / dt_ms))
    events, dropped = [], 0
    for i in range(len(data)):
        steps, channels, lost = delay_line_numpy(*data.sample(i), n_copies, spacing, data.n_channels,
                                                 data.n_steps)
        events.append((steps, channels))
        dropped += lost
    log.info("input delay line: %d copies %g ms apart; %d delayed spikes fell after the trial end and were "
             "dropped", n_copies, spacing_ms, dropped)
    return SpikeData.from_event_lists(data.n_channels * n_copies, data.n_steps, events, data.labels)
