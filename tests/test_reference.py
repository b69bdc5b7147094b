"""accuracy.reference_linear: logistic regression on binned input spike counts."""

import numpy as np

from evprop.data.spikes import SpikeData
from evprop.pipeline.reference import binned_counts, reference_linear


def timing_classes(n, seed):
    """Class 0: channel 0 fires early, channel 1 late; class 1 the reverse (same counts, different bins), with
    spikes jittered by a few steps. Only time bins separate them."""
    rng = np.random.default_rng(seed)
    events, labels = [], []
    for i in range(n):
        label = i % 2
        early, late = rng.integers(0, 20, 3), rng.integers(60, 80, 3)
        steps = np.concatenate([np.unique(early), np.unique(late)])
        channels = np.concatenate([np.full(len(np.unique(early)), label), np.full(len(np.unique(late)), 1 - label)])
        events.append((steps, channels))
        labels.append(label)
    return SpikeData.from_event_lists(2, 100, events, labels)


def test_binned_counts_sum_to_the_spikes_and_keep_time():
    data = timing_classes(10, 0)
    counts = binned_counts(data, 5)
    assert counts.shape == (10, 10) and counts.sum() == data.n_events
    assert counts[0, 0] > 0 and counts[0, 1] == 0 and counts[0, 7] > 0      # sample 0: ch 0 early, ch 1 late


def test_reference_separates_timing_classes_and_is_at_chance_on_random_labels():
    train, test = timing_classes(60, 1), timing_classes(40, 2)
    result = reference_linear(train, test, n_bins=5)
    assert result["test"] == 1.0 and result["n_test"] == 40 and "logistic regression" in result["model"]
    assert reference_linear(train, test, n_bins=1)["test"] <= 0.65        # one bin: counts alone cannot tell
    shuffled = SpikeData(2, 100, test.steps, test.channels, test.offsets, np.random.default_rng(3).permutation(
        test.labels))
    assert 0.2 <= reference_linear(train, shuffled, n_bins=5)["test"] <= 0.8
