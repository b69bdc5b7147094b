"""The Yin-Yang data set (Kriener et al., lkriener/yin_yang_data_set, MIT), generated offline, and its spike-time
encoding (Kriener et al. 2022, section 2; Meszaros et al. 2025, section 2.3).

Points (x, y) in the unit square are drawn by rejection sampling inside the big circle until their class equals
a class drawn first; features are [x, y, 1-x, 1-y]. Seeds 42/41/40 with sizes 5000/1000/1000 reproduce the
published train/validation/test sets exactly.
"""

from __future__ import annotations

import numpy as np

from .spikes import SpikeData

R_SMALL = 0.1
R_BIG = 0.5
CLASS_NAMES = ("yin", "yang", "dot")
PUBLISHED_SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}


def _which_class(x: float, y: float) -> int:
    d_right = np.hypot(x - 1.5 * R_BIG, y - R_BIG)
    d_left = np.hypot(x - 0.5 * R_BIG, y - R_BIG)
    if d_right < R_SMALL or d_left < R_SMALL:
        return 2
    is_yang = d_right <= R_SMALL or R_SMALL < d_left <= 0.5 * R_BIG or (y > R_BIG and d_right > 0.5 * R_BIG)
    return 1 if is_yang else 0


def yinyang_numpy(size: int, seed: int):
    """(features [size, 4], labels [size]) exactly as the reference generator with np.random.RandomState(seed).

    >>> features, labels = yinyang_numpy(3, 42)
    >>> features.shape, labels.dtype.kind
    ((3, 4), 'i')
    """
    rng = np.random.RandomState(seed)
    points, labels = [], []
    for _ in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * R_BIG
            if np.hypot(x - R_BIG, y - R_BIG) > R_BIG:
                continue
            if _which_class(x, y) == goal:
                break
        points.append((x, y, 1.0 - x, 1.0 - y))
        labels.append(goal)
    return np.array(points, dtype=np.float64), np.array(labels, dtype=np.int64)


def encode_latency(features: np.ndarray, labels: np.ndarray, dt_ms: float, n_steps: int, t_early_ms: float,
                   t_late_ms: float, bias_time_ms: float | None) -> SpikeData:
    """One spike per feature at t = t_early + v (t_late - t_early) [ms] (fastAndDeep encoding), plus an optional
    bias channel firing at bias_time_ms; times are binned to the step k with k*dt >= t (mlGeNN's SpikeInput)."""
    times = t_early_ms + features * (t_late_ms - t_early_ms)
    if bias_time_ms is not None:
        times = np.concatenate([times, np.full((len(times), 1), bias_time_ms)], axis=1)
    steps = np.ceil(times / dt_ms - 1e-9).astype(np.int64)
    if steps.min() < 0 or steps.max() >= n_steps:
        raise ValueError(f"spike times [{times.min()}, {times.max()}] ms do not fit the trial of "
                         f"{n_steps} steps of {dt_ms} ms")
    n_channels = times.shape[1]
    events = [(steps[i], np.arange(n_channels)) for i in range(len(steps))]
    return SpikeData.from_event_lists(n_channels, n_steps, events, labels)
