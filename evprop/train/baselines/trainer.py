"""Training with a BPTT-family baseline: evprop's Trainer (Adam groups, schedule, regulariser, rescue) with the
engine's forward/backward replaced by the dense passes, so one config trains with
train.algorithm = "eventprop" | "bptt" | "slayer" | "exodus".
"""

from __future__ import annotations

from ...data.spikes import SpikeData
from ...model.spec import NetworkSpec
from ..losses import VoltageLoss
from ..trainer import Trainer, TrainSettings
from .backward import dense_backward
from .dense import dense_forward, validate_for_baselines


class BaselineTrainer(Trainer):
    """A Trainer whose batches go through `dense_forward` / `dense_backward` of settings.algorithm."""

    def __init__(self, spec: NetworkSpec, settings: TrainSettings, current: NetworkSpec | None = None):
        if settings.delay_learning_rate > 0:
            raise ValueError(f"train.delay_learning_rate = {settings.delay_learning_rate}: the "
                             f"'{settings.algorithm}' baseline cannot learn delays (use train.algorithm = 'eventprop')")
        super().__init__(spec, settings, current)
        if not isinstance(self.loss_fn, VoltageLoss):
            raise ValueError(f"train.loss '{settings.loss}': the baselines train voltage losses only")
        validate_for_baselines(self.net)

    def forward_pass(self, batch: SpikeData):
        return dense_forward(self.net, batch, keep_current=self.settings.tau_learning_rate > 0)

    def gradients(self, batch: SpikeData, fwd, terms, regulariser_jump):
        return dense_backward(self.settings.algorithm, self.net, fwd, terms.dl_dv, regulariser_jump,
                              self.settings.surrogate_beta)
