"""Training with a BPTT-family baseline: evprop's Trainer (Adam groups, schedule, regulariser, rescue) with the
engine's forward/backward replaced by the dense passes, so one config trains with
train.algorithm = "eventprop" | "bptt" | "slayer" | "exodus".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ...data.spikes import SpikeData
from ...model.spec import NetworkSpec
from ..trainer import (Trainer, TrainSettings, _append_history, batches, evaluate, save_checkpoint,
                       selection_key)
from .backward import ALGORITHMS, DEFAULT_SURROGATE_BETA, dense_backward
from .dense import dense_forward, validate_for_baselines

log = logging.getLogger(__name__)


class BaselineTrainer(Trainer):
    """A Trainer whose batches go through `dense_forward` / `dense_backward` of `algorithm`."""

    def __init__(self, spec: NetworkSpec, settings: TrainSettings, algorithm: str = "bptt",
                 surrogate_beta: float = DEFAULT_SURROGATE_BETA):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"train.algorithm '{algorithm}' unknown for the baselines, expected one of "
                             f"{ALGORITHMS} (or 'eventprop')")
        if settings.delay_learning_rate > 0:
            raise ValueError(f"train.delay_learning_rate = {settings.delay_learning_rate}: the '{algorithm}' "
                             f"baseline cannot learn delays (use train.algorithm = 'eventprop')")
        super().__init__(spec, settings)
        validate_for_baselines(self.net)
        self.algorithm, self.surrogate_beta = algorithm, surrogate_beta

    def update(self, batch: SpikeData, epoch: int):
        """Forward, loss, backward and the Adam step of one batch; returns (loss, scores, spike_count)."""
        net = self.net
        fwd = dense_forward(net, batch, keep_current=self.settings.tau_learning_rate > 0)
        loss, scores, dl_dv = self.loss_fn(self.spec, fwd.v_out, batch.labels)
        counts = fwd.spike_count()
        grads = dense_backward(self.algorithm, net, fwd, dl_dv, self.regulariser_jump(counts), self.surrogate_beta)
        self.step(grads, self.schedule.factor(epoch))
        self.schedule.end_batch()
        return loss, scores, counts

    def run_epoch(self, epoch: int, data: SpikeData) -> dict:
        """One epoch, the same record as Trainer.run_epoch (no spike tapes: dropped_spikes is always empty)."""
        t0 = time.perf_counter()
        settings, net = self.settings, self.net
        rng = np.random.default_rng([settings.seed, epoch])
        losses, correct = 0.0, 0
        epoch_counts = np.zeros(net.n_neurons, dtype=np.int64)
        for idx in batches(len(data), settings.batch_size, rng):
            batch = data.subset(idx)
            loss, scores, counts = self.update(batch, epoch)
            losses += loss * len(idx)
            correct += int(np.sum(scores.argmax(axis=1) == batch.labels))
            epoch_counts += counts.sum(axis=0)
        silent = self.rescue_silent(epoch_counts)
        n_hidden = net.n_neurons - net.n_out
        return {"epoch": epoch, "loss": losses / len(data), "train_accuracy": correct / len(data),
                "learning_rate": settings.learning_rate * self.schedule.factor(epoch),
                "hidden_spikes_per_sample": float(epoch_counts[:n_hidden].sum()) / len(data),
                "silent_hidden_neurons": silent, "dropped_spikes": {}, "seconds": time.perf_counter() - t0,
                "algorithm": self.algorithm}


def make_trainer(spec: NetworkSpec, settings: TrainSettings, algorithm: str = "eventprop",
                 surrogate_beta: float = DEFAULT_SURROGATE_BETA) -> Trainer:
    """The trainer for train.algorithm: evprop's own Trainer for 'eventprop', a BaselineTrainer otherwise."""
    if algorithm == "eventprop":
        return Trainer(spec, settings)
    return BaselineTrainer(spec, settings, algorithm, surrogate_beta)


def train_baseline(spec: NetworkSpec, train_data: SpikeData, val_data: SpikeData, settings: TrainSettings,
                   algorithm: str = "bptt", run_dir: Path | None = None, progress=None,
                   surrogate_beta: float = DEFAULT_SURROGATE_BETA) -> tuple[NetworkSpec, list]:
    """evprop.train.trainer.train with a baseline trainer: the same epochs, validation (the shared discrete
    forward pass), selection, history lines and checkpoints."""
    trainer = make_trainer(spec, settings, algorithm, surrogate_beta)
    best, history, since_best = None, [], 0
    for epoch in range(settings.epochs):
        record = trainer.run_epoch(epoch, train_data)
        current = trainer.net.to_spec()
        val = evaluate(current, val_data, max_spikes=settings.max_spikes, allow_overflow=settings.allow_overflow)
        record.update({"validation_accuracy": val["accuracy"], "validation_loss": val["loss"]})
        trainer.schedule.end_epoch(epoch, record)
        history.append(record)
        key = selection_key(record, settings.selection_metric)
        if best is None or key > best[0]:
            best, since_best = (key, current, epoch), 0
        else:
            since_best += 1
        if run_dir is not None:
            _append_history(Path(run_dir), record)
            save_checkpoint(Path(run_dir), current, best[1], trainer.optimisers, epoch, best[2],
                            history[best[2]]["validation_accuracy"], initial=spec)
        log.info("%s epoch %d: loss %.4f, train %.3f, validation %.3f", algorithm, epoch, record["loss"],
                 record["train_accuracy"], record["validation_accuracy"])
        if progress is not None:
            progress(epoch, record)
        if settings.early_stop_patience and since_best >= settings.early_stop_patience:
            break
    return best[1], history
