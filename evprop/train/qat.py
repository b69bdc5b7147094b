"""Quantisation-aware fine-tuning: EventProp with the forward pass in the target's integer arithmetic.

Each batch: quantise the current float network (evprop.export.quantise, with fixed calibration bounds), run the
fixed-point emulator (Lava's integer arithmetic) and turn its spikes into an EventProp spike tape in float units
(u = g J and V = v * v_lsb, so the tape's I - V is u v_lsb / g - v v_lsb), take the loss of the emulated output
voltages, and run the float backward pass on that tape: the gradient of the target's forward pass with the
rounding treated as the identity (straight-through), applied to the float weights (and delays, taus if learned).
The network kept is the one with the best fixed-point validation accuracy.
"""

from __future__ import annotations

import logging

import numpy as np

from ..data.spikes import SpikeData
from ..export.quantise import quantise
from ..hw_sim.emulator import emulate
from ..model.spec import NetworkSpec
from .compiled import CompiledNetwork
from .engine import ForwardResult, backward
from .trainer import TrainSettings, Trainer, batches

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


def fixed_point_accuracy(spec: NetworkSpec, bounds: dict, quant: dict, data: SpikeData) -> float:
    fixed, _ = quantise(spec, bounds, **quant)
    emulated = emulate(fixed, data, record_hidden=False)
    return float(np.mean(spec.scores(emulated.v_out_float).argmax(axis=1) == data.labels))


def finetune(spec: NetworkSpec, settings: TrainSettings, bounds: dict, quant: dict, train_data: SpikeData,
             val_data: SpikeData, epochs: int) -> tuple[NetworkSpec, list]:
    """Quantisation-aware fine-tuning for `epochs` epochs (module docstring). `bounds` and `quant` (percentile,
    lif_negative_range) are the quantiser's calibration and options, kept fixed. Returns (the float network whose
    quantisation validates best, history with the fixed-point validation accuracy of each epoch)."""
    trainer = Trainer(spec, settings)
    loss_fn, out = trainer.loss_fn, trainer.output
    best = (fixed_point_accuracy(spec, bounds, quant, val_data), spec, -1)
    history = [{"epoch": -1, "fixed_point_validation_accuracy": best[0]}]
    for epoch in range(epochs):
        rng = np.random.default_rng([settings.seed, 10_000 + epoch])
        losses = 0.0
        for idx in batches(len(train_data), settings.batch_size, rng):
            batch = train_data.subset(idx)
            fixed, _ = quantise(trainer.net.to_spec(), bounds, **quant)
            fwd = fixed_point_forward(fixed, trainer.net, batch)
            terms = loss_fn.evaluate(trainer.spec, fwd, out, batch.labels)
            grads = backward(trainer.net, batch, fwd, terms.dl_dv, tape_dl_dt=terms.tape_dl_dt,
                             need_delays=settings.delay_learning_rate > 0, need_taus=settings.tau_learning_rate > 0)
            trainer.step(grads, settings.lr_decay_per_epoch ** epoch)
            losses += terms.loss * len(idx)
        current = trainer.net.to_spec()
        accuracy = fixed_point_accuracy(current, bounds, quant, val_data)
        history.append({"epoch": epoch, "loss": losses / len(train_data),
                        "fixed_point_validation_accuracy": accuracy})
        log.info("fine-tuning epoch %d/%d: loss %.4f, fixed-point validation %.2f%%", epoch + 1, epochs,
                 losses / len(train_data), 100 * accuracy)
        if accuracy > best[0]:
            best = (accuracy, current, epoch)
    return best[1], history
