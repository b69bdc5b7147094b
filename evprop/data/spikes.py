"""SpikeData: binned input spikes of many samples, stored as event lists (memory grows with spikes, not steps).

A sample is a list of (step, channel) events sorted by step, at most one spike per channel per step (the
authors bin this way, genn_eventprop). An input spike in step s reaches its targets in step s + 1 + delay
(docs/architecture.md §2), exactly like a spike of a hidden neuron emitted in step s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SpikeData:
    """Events of `n_samples` samples, concatenated; sample i is events offsets[i]:offsets[i+1].

    n_channels: input channels
    n_steps:    time steps per sample
    steps:      int32 [n_events], step of each event (sorted within a sample)
    channels:   int32 [n_events], channel of each event
    offsets:    int64 [n_samples + 1]
    labels:     int64 [n_samples], class of each sample
    """

    n_channels: int
    n_steps: int
    steps: np.ndarray
    channels: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "steps", np.ascontiguousarray(self.steps, dtype=np.int32))
        object.__setattr__(self, "channels", np.ascontiguousarray(self.channels, dtype=np.int32))
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.int64))
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, dtype=np.int64))
        if len(self.offsets) != len(self.labels) + 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.steps) or len(self.steps) != len(self.channels) \
                or np.any(np.diff(self.offsets) < 0):
            raise ValueError("SpikeData: offsets, labels, steps and channels are inconsistent")
        if len(self.steps) and (self.steps.min() < 0 or self.steps.max() >= self.n_steps):
            raise ValueError(f"SpikeData: event steps must lie in [0, {self.n_steps})")
        if len(self.channels) and (self.channels.min() < 0 or self.channels.max() >= self.n_channels):
            raise ValueError(f"SpikeData: event channels must lie in [0, {self.n_channels})")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_events(self) -> int:
        return len(self.steps)

    def sample(self, index: int):
        """(steps, channels) of one sample."""
        lo, hi = self.offsets[index], self.offsets[index + 1]
        return self.steps[lo:hi], self.channels[lo:hi]

    def dense(self, index: int) -> np.ndarray:
        """One sample as a bool raster [n_steps, n_channels]."""
        raster = np.zeros((self.n_steps, self.n_channels), dtype=bool)
        steps, channels = self.sample(index)
        raster[steps, channels] = True
        return raster

    def subset(self, indices) -> "SpikeData":
        """The samples `indices` (in that order) as a new SpikeData."""
        indices = np.asarray(indices, dtype=np.int64)
        counts = self.offsets[indices + 1] - self.offsets[indices]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        take = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in indices]) \
            if len(indices) else np.zeros(0, dtype=np.int64)
        return SpikeData(self.n_channels, self.n_steps, self.steps[take], self.channels[take], offsets,
                         self.labels[indices])

    @classmethod
    def from_dense(cls, rasters, labels) -> "SpikeData":
        """From bool/0-1 rasters [n_samples, n_steps, n_channels]."""
        rasters = np.asarray(rasters)
        samples = [np.nonzero(r) for r in rasters]
        offsets = np.concatenate([[0], np.cumsum([len(s[0]) for s in samples])])
        steps = np.concatenate([s[0] for s in samples]) if samples else np.zeros(0)
        channels = np.concatenate([s[1] for s in samples]) if samples else np.zeros(0)
        return cls(rasters.shape[2], rasters.shape[1], steps, channels, offsets, labels)

    @classmethod
    def from_event_lists(cls, n_channels: int, n_steps: int, events, labels) -> "SpikeData":
        """From a list of (steps, channels) pairs, one per sample; sorts by step and drops nothing (duplicates
        within a (step, channel) bin are an error: bin first)."""
        all_steps, all_channels, offsets = [], [], [0]
        for i, (steps, channels) in enumerate(events):
            steps = np.asarray(steps, dtype=np.int64)
            channels = np.asarray(channels, dtype=np.int64)
            order = np.lexsort((channels, steps))
            steps, channels = steps[order], channels[order]
            if len(steps) > 1 and np.any((np.diff(steps) == 0) & (np.diff(channels) == 0)):
                raise ValueError(f"SpikeData: sample {i} has two spikes in one (step, channel) bin")
            all_steps.append(steps)
            all_channels.append(channels)
            offsets.append(offsets[-1] + len(steps))
        cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        return cls(n_channels, n_steps, cat(all_steps), cat(all_channels), np.array(offsets), labels)
