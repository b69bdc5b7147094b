"""Latency-coded scikit-learn digits."""

import numpy as np
import pytest

from evprop.data.digits import encode_digits, latency_times_numpy, load_latency_digits, split_indices


def test_latency_code_bright_first_zero_silent():
    images = np.array([[0, 16, 8, 1], [4, 0, 0, 12]])
    data = encode_digits(images, [1, 0], dt_ms=1.0, n_steps=20, t_min_ms=2.0, t_max_ms=18.0)
    # t = 2 + (1 - v/16) * 16: v=16 -> 2, v=8 -> 10, v=1 -> 17, v=4 -> 14, v=12 -> 6
    assert data.sample(0)[0].tolist() == [2, 10, 17] and data.sample(0)[1].tolist() == [1, 2, 3]
    assert data.sample(1)[0].tolist() == [6, 14] and data.sample(1)[1].tolist() == [3, 0]
    data = encode_digits(images, [1, 0], dt_ms=4.0, n_steps=5, t_min_ms=2.0, t_max_ms=18.0)
    assert data.sample(0)[0].tolist() == [0, 2, 4]           # floor(t / dt)
    with pytest.raises(ValueError, match="pixels must lie in"):
        latency_times_numpy([[17]], 2.0, 18.0)
    with pytest.raises(ValueError, match="< the trial"):
        encode_digits(images, [1, 0], 1.0, 18, 2.0, 18.0)


def test_bundled_digits_split_and_spike_counts():
    splits = load_latency_digits(seed=3)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [1197, 300, 300]
    assert all(s.n_channels == 64 and s.n_steps == 20 for s in splits.values())
    from sklearn.datasets import load_digits
    bunch = load_digits()
    idx = split_indices(1797, 300, 300, 3)
    # one spike per non-zero pixel
    np.testing.assert_array_equal(np.diff(splits["test"].offsets), (bunch.data[idx["test"]] > 0).sum(axis=1))
    np.testing.assert_array_equal(splits["train"].labels, bunch.target[idx["train"]])
    assert len(np.intersect1d(idx["train"], idx["test"])) == 0 and len(np.intersect1d(idx["validation"], idx["test"])) == 0
    again = load_latency_digits(seed=3)
    np.testing.assert_array_equal(again["validation"].steps, splits["validation"].steps)
    assert not np.array_equal(load_latency_digits(seed=4)["test"].labels, splits["test"].labels)
