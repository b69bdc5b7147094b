"""A conventional reference for every run: logistic regression on binned spike counts of the same input.

Features: the spikes of each input channel counted in N_BINS equal time bins over the trial, log(1 + count),
standardised with the training part's mean and deviation; multinomial logistic regression (scikit-learn, L2,
C = C_REG) fit on the training part and scored on the test part: the very splits the spiking network sees. If it
beats the network, the network (or its training) limits accuracy; if both are low, the input encoding does.
"""

from __future__ import annotations

import numpy as np

from ..data.events import sample_ids
from ..data.spikes import SpikeData

N_BINS = 20
C_REG = 0.1
MAX_ITER = 500


def binned_counts(data: SpikeData, n_bins: int = N_BINS) -> np.ndarray:
    """[n_samples, n_bins * n_channels] spike counts per (time bin, channel); bin b covers steps
    [b n_steps / n_bins, (b + 1) n_steps / n_bins).

    >>> d = SpikeData.from_event_lists(2, 4, [([0, 1, 3], [1, 1, 0])], [0])
    >>> binned_counts(d, 2).tolist()
    [[0.0, 2.0, 1.0, 0.0]]
    """
    bins = np.minimum(data.steps.astype(np.int64) * n_bins // data.n_steps, n_bins - 1)
    flat = (sample_ids(data) * n_bins + bins) * data.n_channels + data.channels
    counts = np.bincount(flat, minlength=len(data) * n_bins * data.n_channels)
    return counts.reshape(len(data), n_bins * data.n_channels).astype(np.float64)


def reference_linear(train: SpikeData, test: SpikeData, n_bins: int = N_BINS) -> dict:
    """{'train', 'test', 'n_test', 'model'}: accuracies of the logistic regression described above."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    import warnings
    x_train, x_test = np.log1p(binned_counts(train, n_bins)), np.log1p(binned_counts(test, n_bins))
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd[sd == 0] = 1.0
    x_train, x_test = (x_train - mean) / sd, (x_test - mean) / sd
    if len(np.unique(train.labels)) < 2:
        raise ValueError("reference_linear: the training part holds fewer than 2 classes")
    model = LogisticRegression(C=C_REG, max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, train.labels)
    return {"train": float(model.score(x_train, train.labels)),
            "test": float(model.score(x_test, test.labels)) if len(test) else float("nan"),
            "n_test": len(test),
            "model": f"logistic regression (L2, C={C_REG}) on log(1 + spike counts) in {n_bins} time bins x "
                     f"{train.n_channels} input channels, standardised"}
