"""Flat event arrays: unit conversion at the border, binning to the dt grid, de-duplication and assembly into
SpikeData. Shared by the file readers (hsd.py), the augmentations (augment.py) and the audio front end.

Inside evprop times are ms. The two converters below are the only places seconds (SHD/SSC files) and
microseconds (tonic's structured events) are turned into ms.

Binning follows the authors (Nowotny et al. 2025 code, genn_eventprop): step = floor(t / dt); spikes at t >= n_steps
* dt are dropped;
at most one spike per (step, channel) is kept. Both losses are counted in an `EventCounts`, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .spikes import SpikeData

# floor(t / dt + FLOOR_EPS): guards k*dt computed as k*dt - 1 ulp (e.g. 0.3 / 0.1) against landing in step k-1.
FLOOR_EPS = 1e-9


def seconds_to_ms(times_s) -> np.ndarray:
    """Spike times in seconds (any float dtype, e.g. SHD's float16) -> float64 ms. Casts before scaling, so
    float16 cannot overflow (tonic issue #321).

    >>> seconds_to_ms(np.array([0.5, 1.25], dtype=np.float16)).tolist()
    [500.0, 1250.0]
    """
    return np.asarray(times_s).astype(np.float64) * 1000.0


def ms_to_seconds(times_ms) -> np.ndarray:
    """float64 ms -> float64 seconds (the writer then rounds to SHD's float16).

    >>> ms_to_seconds([250.0]).tolist()
    [0.25]
    """
    return np.asarray(times_ms, dtype=np.float64) / 1000.0


def microseconds_to_ms(times_us) -> np.ndarray:
    """tonic's integer microseconds (`events["t"]`) -> float64 ms.

    >>> microseconds_to_ms(np.array([1500, 2000000])).tolist()
    [1.5, 2000.0]
    """
    return np.asarray(times_us).astype(np.float64) / 1000.0


@dataclass(frozen=True)
class EventCounts:
    """What happened to the input spikes of a binning or augmentation step (numbers of spikes).

    kept:          spikes in the result
    merged:        removed because an earlier spike of the same sample already occupied its (step, channel) bin
    dropped_late:  removed because they fell at or after the end of the trial (t >= n_steps * dt), or before 0
    dropped_range: removed because an augmentation moved them outside [0, n_channels)
    """

    kept: int = 0
    merged: int = 0
    dropped_late: int = 0
    dropped_range: int = 0

    def __add__(self, other: "EventCounts") -> "EventCounts":
        return EventCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def total(self) -> int:
        return self.kept + self.merged + self.dropped_late + self.dropped_range

    def describe(self) -> str:
        """One line for logs and reports.

        >>> EventCounts(90, 8, 2, 0).describe()
        '100 spikes: 90 kept, 8 merged into an occupied bin, 2 beyond the trial, 0 outside the channel range'
        """
        return (f"{self.total} spikes: {self.kept} kept, {self.merged} merged into an occupied bin, "
                f"{self.dropped_late} beyond the trial, {self.dropped_range} outside the channel range")


def unique_events(sample, steps, channels, n_steps: int, n_channels: int):
    """Sort events by (sample, step, channel) and keep one per bin.

    Returns (sample, steps, channels, n_merged); all int64.

    >>> s, t, c, merged = unique_events([0, 0, 0], [3, 1, 3], [2, 2, 2], 10, 4)
    >>> t.tolist(), merged
    ([1, 3], 1)
    """
    sample = np.asarray(sample, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    channels = np.asarray(channels, dtype=np.int64)
    key = np.sort((sample * n_steps + steps) * n_channels + channels, kind="stable")   # timsort: fast on runs
    if len(key) > 1:
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    n_merged = len(sample) - len(key)
    channels = key % n_channels
    rest = key // n_channels
    return rest // n_steps, rest % n_steps, channels, n_merged


def bin_times_numpy(times_ms, channels, sample, dt_ms: float, n_steps: int, n_channels: int):
    """Bin spike times [ms] of one or many samples onto the dt grid: step = floor(t / dt).

    Spikes with step >= n_steps (t >= n_steps * dt) are dropped and counted; duplicates within a
    (sample, step, channel) bin are merged and counted. Times must be finite and >= 0 (check before).
    Returns (sample, steps, channels, EventCounts), sorted by (sample, step, channel).

    >>> s, t, c, counts = bin_times_numpy([0.2, 0.7, 5.0, 9.9], [1, 1, 0, 0], [0, 0, 0, 0], 1.0, 6, 2)
    >>> t.tolist(), c.tolist(), counts.merged, counts.dropped_late
    ([0, 5], [1, 0], 1, 1)
    """
    times_ms = np.asarray(times_ms, dtype=np.float64)
    steps = np.floor(times_ms / dt_ms + FLOOR_EPS).astype(np.int64)
    inside = (steps >= 0) & (steps < n_steps)
    n_late = int(len(steps) - np.count_nonzero(inside))
    sample, steps, channels, n_merged = unique_events(np.asarray(sample)[inside], steps[inside],
                                                      np.asarray(channels)[inside], n_steps, n_channels)
    return sample, steps, channels, EventCounts(len(steps), n_merged, n_late, 0)


def spikedata_from_flat(sample, steps, channels, labels, n_steps: int, n_channels: int) -> SpikeData:
    """SpikeData from flat events sorted by (sample, step) (as `unique_events` returns them)."""
    labels = np.asarray(labels)
    counts = np.bincount(np.asarray(sample, dtype=np.int64), minlength=len(labels))
    if len(counts) != len(labels):
        raise ValueError(f"events name sample {len(counts) - 1}, but only {len(labels)} labels were given")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return SpikeData(n_channels, n_steps, steps, channels, offsets, labels)


def sample_ids(data: SpikeData) -> np.ndarray:
    """int64 [n_events]: the sample index of each event of `data`."""
    return np.repeat(np.arange(len(data), dtype=np.int64), np.diff(data.offsets))


def reduce_channels(channels, factor: int) -> np.ndarray:
    """Merge groups of `factor` neighbouring channels (700 -> 70 with factor 10): channel // factor.

    >>> reduce_channels([0, 9, 10, 699], 10).tolist()
    [0, 0, 1, 69]
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"channel reduction factor must be an integer >= 1, got {factor}")
    return np.asarray(channels, dtype=np.int64) // int(factor)


def reduced_channel_count(n_channels: int, factor: int) -> int:
    """Channels left after `reduce_channels`: ceil(n_channels / factor)."""
    return -(-n_channels // int(factor))
