"""Evaluation protocols of Nowotny et al. 2025, section 4.10: SHD 10-fold leave-one-speaker-out cross-validation on
the training file plus the official test file; SSC's official train / valid / test files.

    protocol "loso"        (SHD) train/validation: training file without / with the speakers of fold k; test file.
    protocol "train_test"  (SHD) train: training file (minus an optional seeded random hold-out); test file.
    protocol "official"    (SSC) the three official files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hsd import HSDSplit, load_hsd

PROTOCOLS = {"shd": ("loso", "train_test"), "ssc": ("official",)}


@dataclass(frozen=True, eq=False)
class Fold:
    """One leave-one-speaker-out fold: indices into the training file."""

    speaker: int
    train: np.ndarray
    validation: np.ndarray


def leave_one_speaker_out(speakers) -> list:
    """One Fold per distinct speaker (ascending id), validating on that speaker and training on the rest.

    >>> [(f.speaker, f.train.tolist(), f.validation.tolist()) for f in leave_one_speaker_out([3, 1, 3])]
    [(1, [0, 2], [1]), (3, [1], [0, 2])]
    """
    speakers = np.asarray(speakers)
    return [Fold(int(s), np.flatnonzero(speakers != s), np.flatnonzero(speakers == s)) for s in np.unique(speakers)]


def random_holdout(n: int, n_validation: int, seed: int):
    """(train, validation) sorted index arrays: a seeded random hold-out of n_validation of n samples.

    >>> [a.tolist() for a in random_holdout(5, 2, 0)]
    [[0, 1, 3], [2, 4]]
    """
    if not 0 <= n_validation <= n:
        raise ValueError(f"validation size {n_validation} must lie in [0, {n}]")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def subset_split(split: HSDSplit, indices) -> HSDSplit:
    """The samples `indices` of a split (its binning counts stay those of the whole file)."""
    indices = np.asarray(indices, dtype=np.int64)
    return HSDSplit(split.spikes.subset(indices), split.speakers[indices], split.class_names, split.counts,
                    split.source, split.dt_ms)


def load_protocol(root, dataset: str, protocol: str, dt_ms: float, n_steps: int, fold: int = 0,
                  validation_size: int = 0, seed: int = 0, channel_factor: int = 1, cache_dir=None) -> dict:
    """{'train', 'validation', 'test'} HSDSplits of SHD or SSC under `root` (tonic's layout).

    fold: index into the sorted speakers of the SHD training file (loso); validation_size / seed: a random
    hold-out for train_test (0: empty validation set, the authors then early-stop on the training error).
    """
    if dataset not in PROTOCOLS or protocol not in PROTOCOLS[dataset]:
        raise ValueError(f"protocol '{protocol}' unknown for dataset '{dataset}'; expected one of "
                         f"{PROTOCOLS.get(dataset, sorted(PROTOCOLS))}")
    load = (lambda split: load_hsd(root, dataset, split, dt_ms, n_steps, channel_factor, cache_dir))
    if dataset == "ssc":
        return {"train": load("train"), "validation": load("valid"), "test": load("test")}
    train = load("train")
    if protocol == "loso":
        folds = leave_one_speaker_out(train.speakers)
        if not 0 <= fold < len(folds):
            raise ValueError(f"{train.source}: fold {fold} does not exist; the training file has "
                             f"{len(folds)} speakers, so folds 0..{len(folds) - 1}")
        train_idx, val_idx = folds[fold].train, folds[fold].validation
    elif protocol == "train_test":
        train_idx, val_idx = random_holdout(len(train.spikes), validation_size, seed)
    else:
        raise ValueError(f"protocol '{protocol}' unknown")
    return {"train": subset_split(train, train_idx), "validation": subset_split(train, val_idx),
            "test": load("test")}
