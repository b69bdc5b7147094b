"""Training with a BPTT-family baseline: evprop's Trainer (Adam groups, schedule, regulariser, rescue) with the
engine's forward/backward replaced by the dense passes, so one config trains with
train.algorithm = "eventprop" | "bptt" | "slayer" | "exodus".
"""

from __future__ import annotations

from ...data.spikes import SpikeData
from ...model.spec import NetworkSpec
from ..losses import VoltageLoss
from ..trainer import Trainer, TrainSettings
from .backward import ALGORITHMS, dense_backward
from .dense import dense_forward, validate_for_baselines


class BaselineTrainer(Trainer):
    """A Trainer whose batches go through `dense_forward` / `dense_backward` of settings.algorithm."""

    def __init__(self, spec: NetworkSpec, settings: TrainSettings, current: NetworkSpec | None = None):
        if settings.algorithm not in ALGORITHMS:
            raise ValueError(f"train.algorithm '{settings.algorithm}' unknown, expected 'eventprop' or one of "
                             f"{ALGORITHMS}")
        if settings.delay_learning_rate > 0:
            raise ValueError(f"train.delay_learning_rate = {settings.delay_learning_rate}: the "
                             f"'{settings.algorithm}' baseline cannot learn delays (use train.algorithm = 'eventprop')")
        super().__init__(spec, settings, current)
        if not isinstance(self.loss_fn, VoltageLoss):
            raise ValueError(f"train.loss '{settings.loss}': the baselines train voltage losses only")
        validate_for_baselines(self.net)

    def update(self, batch: SpikeData, epoch: int):
        """Forward, loss, backward and the Adam step of one batch; returns (loss, scores, spike_count, {})."""
        settings, net = self.settings, self.net
        fwd = dense_forward(net, batch, keep_current=settings.tau_learning_rate > 0)
        loss, scores, dl_dv = self.loss_fn(self.spec, fwd.v_out, batch.labels)
        counts = fwd.spike_count()
        grads = dense_backward(settings.algorithm, net, fwd, dl_dv, self.regulariser_jump(counts),
                               settings.surrogate_beta)
        self.step(grads, self.schedule.factor(epoch))
        self.schedule.end_batch()
        return loss, scores, counts, {}
