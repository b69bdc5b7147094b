"""BPTT-family baselines on evprop's discrete model: plain BPTT, SLAYER and EXODUS (Bauer et al. 2023) with surrogate
gradients, dense per-step state (O(T) memory), zero delays only. See `backward` for the equations.

    grads = baseline_gradients("exodus", spec, batch, lambda v: get_loss("cross_entropy")(spec, v, batch.labels)[2])
    trainer = evprop.train.trainer.make_trainer(spec, TrainSettings(algorithm="bptt"))   # the same Trainer API
"""

from .backward import (ALGORITHMS, DEFAULT_SURROGATE_BETA, baseline_gradients, dense_backward,
                       surrogate_derivative)
from .dense import DenseForward, dense_forward, validate_for_baselines
from .trainer import BaselineTrainer

__all__ = ["ALGORITHMS", "DEFAULT_SURROGATE_BETA", "BaselineTrainer", "DenseForward", "baseline_gradients",
           "dense_backward", "dense_forward", "surrogate_derivative",
           "validate_for_baselines"]
