"""Quantisation-aware fine-tuning: the emulator's spikes as an EventProp tape, and fine-tuning on it."""

import numpy as np

from deploy_helpers import make_data, make_network
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.emulator import emulate
from evprop.train.compiled import CompiledNetwork
from evprop.fixed_point.calibrate import state_bounds
from evprop.train.engine import forward
from evprop.fixed_point.finetune import finetune, finetune_settings, fixed_point_accuracy, fixed_point_forward
from evprop.train.trainer import TrainSettings


def test_emulator_tape_matches_its_spikes_and_the_float_tape():
    spec, data = make_network(), make_data(n_samples=6)
    fixed, _ = quantise(spec, state_bounds(spec, data))
    net = CompiledNetwork.from_spec(spec)
    fx = fixed_point_forward(fixed, net, data)
    emulated = emulate(fixed, data)
    hidden = net.layer_slices["hidden"]
    assert np.array_equal(fx.spike_raster(hidden), emulated.hidden_spikes["hidden"])
    for b in range(len(data)):
        steps = fx.tape_step[b, :fx.tape_len[b]]
        assert np.all(np.diff(steps) >= 0)                       # emission order, as the backward pass needs
    fl = forward(net, data, max_spikes=200)
    # where the float network spikes at the same step, I - V agrees up to the quantisation error
    same = fx.spike_raster(hidden) & fl.spike_raster(hidden)
    assert same.sum() > 0.8 * fl.spike_count[:, hidden].sum()
    imv_fixed = {(b, s, n): i for b in range(len(data)) for s, n, i in
                 zip(fx.tape_step[b, :fx.tape_len[b]], fx.tape_neuron[b, :fx.tape_len[b]], fx.tape_imv[b])}
    diffs = [abs(imv_fixed[(b, s, n)] - i) for b in range(len(data)) for s, n, i in
             zip(fl.tape_step[b, :fl.tape_len[b]], fl.tape_neuron[b, :fl.tape_len[b]], fl.tape_imv[b])
             if (b, s, n) in imv_fixed]
    assert np.median(diffs) < 0.05
    # the tape's output voltages (V units) against the float network's: quantisation error only (measured: relative
    # L2 difference 0.036, median absolute 5e-4, output range ~1)
    assert np.linalg.norm(fx.v_out - fl.v_out) < 0.05 * np.linalg.norm(fl.v_out)
    assert np.median(np.abs(fx.v_out - fl.v_out)) < 2e-3


def test_finetuning_keeps_the_best_fixed_point_network():
    """Labels = the float network's own predictions: float accuracy 100%, a coarse quantisation (percentile 50:
    many weights saturate) loses some of it, and fine-tuning in the fixed-point forward pass wins it back."""
    from dataclasses import replace
    from evprop.train.trainer import evaluate
    spec, data = make_network(), make_data(n_samples=60)
    data = replace(data, labels=evaluate(spec, data)["predictions"])
    bounds = state_bounds(spec, data)
    quant = {"percentile": 50.0, "lif_negative_range": 16.0}
    before = fixed_point_accuracy(spec, bounds, quant, data)
    assert before < 1.0
    tuned, history = finetune(spec, TrainSettings(batch_size=10, learning_rate=5e-3), bounds, quant, data, data, 3)
    assert len(history) == 4 and history[0]["fixed_point_validation_accuracy"] == before
    best = max(h["fixed_point_validation_accuracy"] for h in history)
    assert fixed_point_accuracy(tuned, bounds, quant, data) == best >= before
    assert any(h["fixed_point_validation_accuracy"] > before for h in history[1:])   # it learned something


def test_finetuning_scales_every_learning_rate_alike():
    train = TrainSettings(learning_rate=2e-3, delay_learning_rate=0.05, tau_learning_rate=0.1,
                          lr_ease_in_start=0.01, lr_decay_per_epoch=0.95)
    tuned = finetune_settings(train, 2e-4)
    assert (tuned.learning_rate, tuned.lr_ease_in_start, tuned.lr_decay_per_epoch) == (2e-4, 1.0, 1.0)
    assert np.isclose(tuned.delay_learning_rate, 0.005) and np.isclose(tuned.tau_learning_rate, 0.01)
    assert finetune_settings(TrainSettings(learning_rate=0.0, delay_learning_rate=0.05), 1e-4).delay_learning_rate == 0
