"""Uncertainty of accuracies measured on a finite test set: 95% intervals for an accuracy and for a difference.

- One accuracy, k correct of n: the Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it
  over the normal approximation for proportions near 0 or 1).
- The difference of two accuracies on the same samples (float against fixed point): a percentile bootstrap over
  the samples of the per-sample difference (correct_b - correct_a), fixed seed so a report is reproducible.
- The difference of two accuracies known only as counts: Newcombe's hybrid score interval (Newcombe 1998,
  method 10), built from the two Wilson intervals; it ignores the pairing and so is wider than the paired one.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054          # two-sided 95% quantile of the standard normal
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval (fractions) of an accuracy of `correct` out of `n`."""
    if n <= 0:
        raise ValueError(f"n = {n}: an accuracy interval needs at least one sample")
    if not 0 <= correct <= n:
        raise ValueError(f"correct = {correct} is not between 0 and n = {n}")
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, n: int) -> list:
    """[low, high] for an accuracy given as a fraction of n samples (rounded to the nearest count)."""
    return list(wilson_interval(int(round(accuracy * n)), n))


def difference_interval_counts(correct_a: int, n_a: int, correct_b: int, n_b: int) -> list:
    """[low, high] of accuracy_b - accuracy_a (fractions) from counts alone: Newcombe's hybrid score interval."""
    p_a, p_b = correct_a / n_a, correct_b / n_b
    low_a, high_a = wilson_interval(correct_a, n_a)
    low_b, high_b = wilson_interval(correct_b, n_b)
    diff = p_b - p_a
    return [diff - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2),
            diff + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)]


def paired_difference_interval(correct_a: np.ndarray, correct_b: np.ndarray) -> list:
    """[low, high] of mean(correct_b) - mean(correct_a) on the same samples: percentile bootstrap over samples."""
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired correctness arrays must be 1-D and of one length, got {a.shape} and {b.shape}")
    per_sample = b - a
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = np.empty(BOOTSTRAP_RESAMPLES)
    for start in range(0, BOOTSTRAP_RESAMPLES, 1000):
        idx = rng.integers(0, len(per_sample), (min(1000, BOOTSTRAP_RESAMPLES - start), len(per_sample)))
        means[start:start + len(idx)] = per_sample[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def excludes_zero(interval) -> bool:
    """True when a difference's interval lies wholly above or below 0 (the difference is beyond the noise)."""
    return interval[0] > 0 or interval[1] < 0
