"""Latency-coded 8x8 digits: scikit-learn's bundled `load_digits` (1797 samples, 10 classes, pixel values 0..16,
offline), the offline stand-in for the latency MNIST of Nowotny et al. 2025 (section 4).

Encoding (Nowotny et al. 2025's MNIST rule t = ((255 - x) / 255)(T - 4 ms) + 2 ms, scaled to 0..16 pixels):
    t = t_min + (1 - v / 16) (t_max - t_min)  [ms]  for v > 0;  pixels with v = 0 do not spike.
So the brightest pixels (v = 16) fire first, at t_min; one channel per pixel (64), at most one spike each.
Times are binned as every other evprop input: step = floor(t / dt).
"""

from __future__ import annotations

import numpy as np

from .events import bin_times_numpy, spikedata_from_flat
from .spikes import SpikeData

PIXEL_MAX = 16.0


def latency_times_numpy(images, t_min_ms: float, t_max_ms: float):
    """(sample, times_ms, channels) of pixel values `images` [n, 64] in 0..16; zero pixels give no spike.

    >>> s, t, c = latency_times_numpy(np.array([[0, 16, 8, 1]]), 2.0, 18.0)
    >>> t.tolist(), c.tolist()
    ([2.0, 10.0, 17.0], [1, 2, 3])
    """
    images = np.asarray(images, dtype=np.float64)
    if images.min(initial=0) < 0 or images.max(initial=0) > PIXEL_MAX:
        raise ValueError(f"digit pixels must lie in [0, {PIXEL_MAX:g}]")
    sample, channels = np.nonzero(images > 0)
    times = t_min_ms + (1.0 - images[sample, channels] / PIXEL_MAX) * (t_max_ms - t_min_ms)
    return sample, times, channels


def encode_digits(images, labels, dt_ms: float, n_steps: int, t_min_ms: float, t_max_ms: float) -> SpikeData:
    """Latency-code images [n, 64] (values 0..16) into SpikeData with 64 channels."""
    if not 0 <= t_min_ms < t_max_ms or t_max_ms >= n_steps * dt_ms:
        raise ValueError(f"digits: need 0 <= t_min_ms ({t_min_ms}) < t_max_ms ({t_max_ms}) < the trial "
                         f"({n_steps} steps of {dt_ms} ms)")
    images = np.asarray(images).reshape(len(labels), -1)
    sample, times, channels = latency_times_numpy(images, t_min_ms, t_max_ms)
    s, t, c, _ = bin_times_numpy(times, channels, sample, dt_ms, n_steps, images.shape[1])
    return spikedata_from_flat(s, t, c, labels, n_steps, images.shape[1])


def split_indices(n: int, n_validation: int, n_test: int, seed: int):
    """{'train', 'validation', 'test'}: sorted indices of a seeded random permutation of n samples."""
    if n_validation < 0 or n_test < 0 or n_validation + n_test >= n:
        raise ValueError(f"digits: validation ({n_validation}) + test ({n_test}) must be >= 0 and < {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(order[n_validation + n_test:]), "validation": np.sort(order[:n_validation]),
            "test": np.sort(order[n_validation:n_validation + n_test])}


def load_latency_digits(dt_ms: float = 1.0, n_steps: int = 20, t_min_ms: float = 2.0, t_max_ms: float = 18.0,
                        n_validation: int = 300, n_test: int = 300, seed: int = 0) -> dict:
    """{'train', 'validation', 'test'} SpikeData of the 1797 bundled digits (1197 / 300 / 300 by default)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits data set needs scikit-learn (`pip install scikit-learn`)") from None
    bunch = load_digits()
    data = encode_digits(bunch.data, bunch.target, dt_ms, n_steps, t_min_ms, t_max_ms)
    return {name: data.subset(idx) for name, idx in split_indices(len(data), n_validation, n_test, seed).items()}
