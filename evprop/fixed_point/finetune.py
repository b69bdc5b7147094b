"""Quantisation-aware fine-tuning: EventProp with the forward pass in the target's integer arithmetic.

Each batch: quantise the current float network (evprop.fixed_point.quantise, with fixed calibration bounds), run the
fixed-point emulator (Lava's integer arithmetic) and turn its spikes into an EventProp spike tape in float units
(u = g J and V = v * v_lsb, so the tape's I - V is u v_lsb / g - v v_lsb), take the loss of the emulated output
voltages, and run the float backward pass on that tape: the gradient of the target's forward pass with the
rounding treated as the identity (straight-through), applied to the float weights (and delays, taus if learned).
The network kept is the one with the best fixed-point validation accuracy.

Every learned group moves at the same fraction of its training rate (`finetune_settings`): at the training delay
rate (0.05 ms per step on Yin-Yang) the delays crossed rounding boundaries within a few batches and fine-tuning
never beat its start; scaled with the weights, 3 epochs raise the fixed-point test accuracy by 0.9-1.6 pp on
3 seeds, to 0.2-0.9 pp above float (benchmarks/deploy_check.json).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..data.spikes import SpikeData
from ..model.spec import NetworkSpec
from ..train.compiled import CompiledNetwork
from ..train.engine import ForwardResult
from ..train.trainer import TrainSettings, Trainer
from .emulator import emulate, readout_accuracy
from .quantise import quantise

log = logging.getLogger(__name__)


def fixed_point_forward(fixed, net: CompiledNetwork, data: SpikeData) -> ForwardResult:
    """The emulator's run of `fixed` on `data` as a ForwardResult of the float network `net` (tapes in emission
    order per sample, output voltages in V units)."""
    emulated = emulate(fixed, data, record_hidden=False, record_tape=True)
    tape = emulated.tape
    v_lsb = np.concatenate([np.full(layer.size, layer.v_lsb) for layer in fixed.layers])
    n_batch = len(data)
    order = np.lexsort((tape["step"], tape["sample"]))           # per sample, in step order
    sample, step, neuron = tape["sample"][order], tape["step"][order], tape["neuron"][order]
    imv = (tape["u"][order] * v_lsb[neuron] / net.g[neuron] - tape["v"][order] * v_lsb[neuron])
    tape_len = np.bincount(sample, minlength=n_batch).astype(np.int64)
    capacity = max(int(tape_len.max(initial=0)), 1)
    position = np.arange(len(sample)) - np.concatenate([[0], np.cumsum(tape_len)[:-1]])[sample]
    tape_step = np.zeros((n_batch, capacity), np.int32)
    tape_neuron = np.zeros((n_batch, capacity), np.int32)
    tape_imv = np.zeros((n_batch, capacity), net.w_flat.dtype)
    tape_step[sample, position], tape_neuron[sample, position], tape_imv[sample, position] = step, neuron, imv
    spike_count = np.zeros((n_batch, net.n_neurons), np.int32)
    np.add.at(spike_count, (sample, neuron), 1)
    return ForwardResult(emulated.v_out_float, tape_step, tape_neuron, tape_imv, tape_len, spike_count, {},
                         np.zeros((n_batch, net.n_neurons, 4)))


def finetune_settings(train: TrainSettings, learning_rate: float) -> TrainSettings:
    """The training settings for fine-tuning at weight rate `learning_rate`: the delay and tau rates scaled by
    the same factor (learning_rate / train.learning_rate), no ease-in, no decay."""
    factor = learning_rate / train.learning_rate if train.learning_rate > 0 else 0.0
    return replace(train, learning_rate=learning_rate, delay_learning_rate=train.delay_learning_rate * factor,
                   tau_learning_rate=train.tau_learning_rate * factor, lr_ease_in_start=1.0, lr_decay_per_epoch=1.0)


def fixed_point_accuracy(spec: NetworkSpec, bounds: dict, quant: dict, data: SpikeData) -> float:
    fixed, _ = quantise(spec, bounds, **quant)
    return readout_accuracy(spec, emulate(fixed, data, record_hidden=False), data)


class QuantisedForwardTrainer(Trainer):
    """A Trainer whose forward pass is the target's: every batch quantises the current float network (with the
    fixed calibration `bounds` and options `quant`) and runs it in the emulator; the EventProp backward pass and the
    optimiser steps act on the float parameters (straight-through)."""

    def __init__(self, spec: NetworkSpec, settings: TrainSettings, bounds: dict, quant: dict):
        super().__init__(spec, settings)
        self.bounds, self.quant = bounds, quant

    def forward_pass(self, batch: SpikeData) -> ForwardResult:
        fixed, _ = quantise(self.net.to_spec(), self.bounds, **self.quant)
        return fixed_point_forward(fixed, self.net, batch)


def finetune(spec: NetworkSpec, settings: TrainSettings, bounds: dict, quant: dict, train_data: SpikeData,
             val_data: SpikeData, epochs: int) -> tuple[NetworkSpec, list]:
    """Quantisation-aware fine-tuning for `epochs` epochs (module docstring). `bounds` and `quant` (percentile,
    lif_negative_range) are the quantiser's calibration and options, kept fixed. Returns (the float network whose
    quantisation validates best, history with the fixed-point validation accuracy of each epoch)."""
    trainer = QuantisedForwardTrainer(spec, settings, bounds, quant)
    best = (fixed_point_accuracy(spec, bounds, quant, val_data), spec, -1)
    history = [{"epoch": -1, "fixed_point_validation_accuracy": best[0]}]
    for epoch in range(epochs):
        record = trainer.run_epoch(epoch, train_data)
        current = trainer.net.to_spec()
        accuracy = fixed_point_accuracy(current, bounds, quant, val_data)
        history.append({"epoch": epoch, "loss": record["loss"], "fixed_point_validation_accuracy": accuracy})
        log.info("fine-tuning epoch %d/%d: loss %.4f, fixed-point validation %.2f%%", epoch + 1, epochs,
                 record["loss"], 100 * accuracy)
        if accuracy > best[0]:
            best = (accuracy, current, epoch)
    return best[1], history
