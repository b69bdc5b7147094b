"""Training-set augmentations of Nowotny et al. 2025 (section 4.4, Table 5): random channel shift, same-class
blend, ID jitter and random dilation.

Each is a pure `<op>_numpy` function on flat event arrays (steps, channels, ... all int) that takes its random
draws as arguments, plus a thin frozen dataclass that draws them from a numpy Generator and applies the op to a
whole SpikeData. `augment_epoch` seeds one Generator per (seed, epoch, transform), so an epoch's training set is
a deterministic function of (data, seed, epoch) and switching one transform off does not change the others' draws.

Nothing is lost silently: every op returns an EventCounts of merged spikes (two spikes moved into one
(step, channel) bin), spikes moved beyond the trial (dropped_late) and beyond the channels (dropped_range).

Differences from the authors' code (tnowotny/genn_eventprop utils.py), on purpose:
* shift: an integer uniform in [-max_shift, max_shift] (the code's int(uniform(-40, 40)) truncates towards 0,
  so +-40 never occur and 0 is twice as likely);
* blend: two *different* samples of the class (the code draws both with replacement, so a sample can be blended
  with itself), and duplicates in a bin are merged (the code warns that it "does not ensure one spike per
  timestep"). Centres of mass are aligned in time and, as in the code (not the paper's text), also in channel;
  `align_channels=False` follows the paper's text. Shifts are truncated towards 0 as the code's int().
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import EventCounts, sample_ids, spikedata_from_flat, unique_events
from .spikes import SpikeData


# ------------------------------------------------------------------------------------------ pure functions

def shift_channels_numpy(sample, steps, channels, shift, n_channels: int):
    """Add `shift` (scalar or one per event) to each channel; drop spikes outside [0, n_channels).

    Returns (sample, steps, channels, n_dropped). Order within a sample is kept (one shift per sample).

    >>> _, s, c, dropped = shift_channels_numpy([0, 0, 0], [0, 1, 2], [0, 5, 8], 3, 10)
    >>> c.tolist(), dropped
    ([3, 8], 1)
    """
    channels = np.asarray(channels, dtype=np.int64) + np.asarray(shift, dtype=np.int64)
    inside = (channels >= 0) & (channels < n_channels)
    return (np.asarray(sample)[inside], np.asarray(steps)[inside], channels[inside],
            int(len(channels) - np.count_nonzero(inside)))


def _clean(sample, steps, channels, n_steps: int, n_channels: int):
    """Drop out-of-range events, merge duplicates: (sample, steps, channels, EventCounts), sorted."""
    late = (steps < 0) | (steps >= n_steps)
    outside = ~late & ((channels < 0) | (channels >= n_channels))
    keep = ~(late | outside)
    sample, steps, channels, merged = unique_events(sample[keep], steps[keep], channels[keep], n_steps, n_channels)
    return sample, steps, channels, EventCounts(len(steps), merged, int(late.sum()), int(outside.sum()))


def id_jitter_numpy(sample, steps, channels, offsets, n_steps: int, n_channels: int):
    """Move each spike by its own integer channel offset (Cramer et al.'s ID jitter: offsets = round(N(0, sigma))).

    Returns (sample, steps, channels, EventCounts), re-sorted, duplicates merged.

    >>> out = id_jitter_numpy([0, 0], [4, 4], [1, 2], [1, 0], 10, 3)
    >>> out[2].tolist(), out[3].merged
    ([2], 1)
    """
    channels = np.asarray(channels, dtype=np.int64) + np.asarray(offsets, dtype=np.int64)
    return _clean(np.asarray(sample, dtype=np.int64), np.asarray(steps, dtype=np.int64), channels, n_steps,
                  n_channels)


def dilate_numpy(sample, steps, channels, factor, n_steps: int, n_channels: int):
    """Scale spike times by `factor` (scalar or one per event): step -> floor(step * factor).

    Returns (sample, steps, channels, EventCounts); spikes beyond the trial are dropped_late.

    >>> out = dilate_numpy([0, 0, 0], [2, 3, 6], [0, 0, 1], 1.5, 8, 2)
    >>> out[1].tolist(), out[3].merged, out[3].dropped_late
    ([3, 4], 0, 1)
    """
    steps = np.floor(np.asarray(steps, dtype=np.float64) * np.asarray(factor, dtype=np.float64)).astype(np.int64)
    return _clean(np.asarray(sample, dtype=np.int64), steps, np.asarray(channels, dtype=np.int64), n_steps,
                  n_channels)


def blend_numpy(pair, source, steps, channels, keep, n_pairs: int, n_steps: int, n_channels: int,
                align_channels: bool = True):
    """Blend pairs of samples: each event belongs to pair `pair` and comes from sample `source` (0 or 1) of it.

    Both samples of a pair are moved so that their centres of mass (mean step, and mean channel if
    align_channels) meet at the mean of the two (shift truncated towards 0); then events with keep == True are
    united. Returns (pair, steps, channels, EventCounts) for the `n_pairs` new samples, sorted, merged.

    >>> out = blend_numpy([0, 0], [0, 1], [10, 20], [3, 3], [True, True], 1, 40, 8)
    >>> out[1].tolist(), out[2].tolist(), out[3].merged
    ([15], [3], 1)
    """
    pair, source = np.asarray(pair, dtype=np.int64), np.asarray(source, dtype=np.int64)
    steps, channels = np.asarray(steps, dtype=np.int64), np.asarray(channels, dtype=np.int64)
    group = 2 * pair + source
    steps = steps + _centre_shift(group, steps, n_pairs)
    if align_channels:
        channels = channels + _centre_shift(group, channels, n_pairs)
    keep = np.asarray(keep, dtype=bool)
    return _clean(pair[keep], steps[keep], channels[keep], n_steps, n_channels)


def _centre_shift(group, values, n_pairs: int):
    """Per event: trunc(mean of the pair's two centres - centre of the event's sample); 0 for a lone sample."""
    counts = np.bincount(group, minlength=2 * n_pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.bincount(group, weights=values, minlength=2 * n_pairs) / counts
    pair_centre = np.nanmean(np.where(counts > 0, centre, np.nan).reshape(n_pairs, 2), axis=1) \
        if n_pairs else np.zeros(0)
    shift = np.trunc(np.repeat(pair_centre, 2) - centre)
    shift = np.where(np.isfinite(shift), shift, 0).astype(np.int64)
    return shift[group]


# ------------------------------------------------------------------------------------------ transforms

@dataclass(frozen=True)
class RandomShift:
    """Shift all channels of a sample by one integer uniform in [-max_shift, max_shift] (f_shift = 40)."""

    max_shift: int = 40
    name = "shift"

    def __call__(self, data: SpikeData, rng: np.random.Generator):
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, len(data))
        ids = sample_ids(data)
        ids, steps, channels, dropped = shift_channels_numpy(ids, data.steps, data.channels, shifts[ids],
                                                             data.n_channels)
        out = spikedata_from_flat(ids, steps, channels, data.labels, data.n_steps, data.n_channels)
        return out, EventCounts(len(steps), 0, 0, dropped)


@dataclass(frozen=True)
class IdJitter:
    """Move every spike by round(N(0, sigma)) channels, independently (Cramer et al.)."""

    sigma: float
    name = "id_jitter"

    def __call__(self, data: SpikeData, rng: np.random.Generator):
        offsets = np.round(rng.standard_normal(data.n_events) * self.sigma).astype(np.int64)
        s, t, c, counts = id_jitter_numpy(sample_ids(data), data.steps, data.channels, offsets, data.n_steps,
                                          data.n_channels)
        return spikedata_from_flat(s, t, c, data.labels, data.n_steps, data.n_channels), counts


@dataclass(frozen=True)
class RandomDilate:
    """Scale all spike times of a sample by one factor, log-uniform in [min_factor, max_factor] (as the code)."""

    min_factor: float
    max_factor: float
    name = "dilate"

    def __call__(self, data: SpikeData, rng: np.random.Generator):
        factors = np.exp(rng.uniform(np.log(self.min_factor), np.log(self.max_factor), len(data)))
        ids = sample_ids(data)
        s, t, c, counts = dilate_numpy(ids, data.steps, data.channels, factors[ids], data.n_steps, data.n_channels)
        return spikedata_from_flat(s, t, c, data.labels, data.n_steps, data.n_channels), counts


def draw_blend_pairs(labels, n_new: int, rng: np.random.Generator):
    """(first, second) sample indices of `n_new` blends: a random anchor's class, then two different samples of
    it (the same one twice only if the class has one sample)."""
    labels = np.asarray(labels)
    classes = labels[rng.integers(0, len(labels), n_new)]
    first, second = np.empty(n_new, np.int64), np.empty(n_new, np.int64)
    for label in np.unique(classes):
        members = np.flatnonzero(labels == label)
        where = np.flatnonzero(classes == label)
        a = rng.integers(0, len(members), len(where))
        b = (a + rng.integers(1, len(members), len(where))) % len(members) if len(members) > 1 else a
        first[where], second[where] = members[a], members[b]
    return first, second


@dataclass(frozen=True)
class Blend:
    """Append `n_new` (default: as many as there are samples, doubling the set) blends of two samples of the same
    class; each spike of each source is kept with probability p (p_blend = 0.5)."""

    p: float = 0.5
    align_channels: bool = True
    n_new: int | None = None
    name = "blend"

    def __call__(self, data: SpikeData, rng: np.random.Generator):
        n_new = len(data) if self.n_new is None else self.n_new
        first, second = draw_blend_pairs(data.labels, n_new, rng)
        both = data.subset(np.stack([first, second], axis=1).ravel())     # a0 b0 a1 b1 ...: sorted runs
        ids = sample_ids(both)
        keep = rng.random(both.n_events) < self.p
        s, t, c, counts = blend_numpy(ids // 2, ids % 2, both.steps, both.channels, keep, n_new, data.n_steps,
                                      data.n_channels, self.align_channels)
        s = s + len(data)
        ids = np.concatenate([sample_ids(data), s])
        out = spikedata_from_flat(ids, np.concatenate([data.steps, t]), np.concatenate([data.channels, c]),
                                  np.concatenate([data.labels, data.labels[first]]), data.n_steps, data.n_channels)
        return out, counts


def augment_epoch(data: SpikeData, transforms, seed: int, epoch: int):
    """Apply `transforms` in order to the training set of epoch `epoch`.

    Returns (SpikeData, {transform name: EventCounts}). Deterministic per (data, seed, epoch); transform i draws
    from np.random.default_rng([seed, epoch, i]).
    """
    counts = {}
    for index, transform in enumerate(transforms):
        data, counts[transform.name] = transform(data, np.random.default_rng([seed, epoch, index]))
    return data, counts


AUGMENT_DEFAULTS = {"blend_p": 0.0, "blend_align_channels": True, "shift": 0, "id_jitter_sigma": 0.0,
                    "dilate_min": 1.0, "dilate_max": 1.0}


def transforms_from_config(section: dict) -> list:
    """Transforms for a config section (keys of AUGMENT_DEFAULTS; 0 / 1.0 switches one off), in the authors'
    order: blend the set, then jitter, dilate and shift every sample. Unknown keys are a ValueError.

    >>> [t.name for t in transforms_from_config({"blend_p": 0.5, "shift": 40})]
    ['blend', 'shift']
    """
    unknown = set(section) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"augment: unknown keys {sorted(unknown)}; expected {sorted(AUGMENT_DEFAULTS)}")
    c = {**AUGMENT_DEFAULTS, **section}
    if not 0.0 <= c["blend_p"] <= 1.0 or c["shift"] < 0 or c["id_jitter_sigma"] < 0 \
            or not 0 < c["dilate_min"] <= c["dilate_max"]:
        raise ValueError(f"augment: need 0 <= blend_p <= 1, shift >= 0, id_jitter_sigma >= 0 and "
                         f"0 < dilate_min <= dilate_max; got {c}")
    out = []
    if c["blend_p"] > 0:
        out.append(Blend(c["blend_p"], bool(c["blend_align_channels"])))
    if c["id_jitter_sigma"] > 0:
        out.append(IdJitter(c["id_jitter_sigma"]))
    if (c["dilate_min"], c["dilate_max"]) != (1.0, 1.0):
        out.append(RandomDilate(c["dilate_min"], c["dilate_max"]))
    if c["shift"] > 0:
        out.append(RandomShift(int(c["shift"])))
    return out
