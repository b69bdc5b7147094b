"""NetworkSpec validation and files, SpikeData, the Yin-Yang generator and a short training run."""

import numpy as np
import pytest

from evprop.data.spikes import SpikeData
from evprop.data.yinyang import encode_latency, yinyang_numpy
from evprop.model.io import load_network, save_network
from evprop.model.spec import (Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, discretise,
                               discretise_backward)
from evprop.train.trainer import TrainSettings, evaluate, load_checkpoint, train

from conftest import random_inputs, random_network


def test_discretise_matches_mlgenn_constants():
    alpha, beta, g = discretise(20.0, 5.0, 1.0)
    # mlGeNN's constants for dt 1, tau_syn 5, tau_mem 20 (tests/data/mlgenn/README.md): IScale = 0.9063462,
    # beta = 0.8187308, alpha = 0.9512294
    assert abs(beta - 0.8187308) < 1e-7 and abs(alpha - 0.9512294) < 1e-7
    assert abs(g - (1 - alpha) * 0.9063462) < 1e-8


def test_discretise_backward_matches_finite_differences():
    """L = a.alpha + b.beta + c.g for random a, b, c: the chain rule equals central differences of discretise."""
    rng = np.random.default_rng(0)
    tau_m, tau_s, dt = rng.uniform(3, 40, 5), rng.uniform(1, 10, 5), 0.5
    a, b, c = rng.normal(size=(3, 5))

    def loss(tm, ts):
        alpha, beta, g = discretise(tm, ts, dt)
        return a * alpha + b * beta + c * g          # per neuron: neurons do not interact

    alpha, beta, _ = discretise(tau_m, tau_s, dt)
    grad_m, grad_s = discretise_backward(a, b, c, tau_m, tau_s, dt, alpha, beta)
    eps = 1e-6
    fd_m = (loss(tau_m + eps, tau_s) - loss(tau_m - eps, tau_s)) / (2 * eps)
    fd_s = (loss(tau_m, tau_s + eps) - loss(tau_m, tau_s - eps)) / (2 * eps)
    np.testing.assert_allclose(grad_m, fd_m, rtol=1e-6)
    np.testing.assert_allclose(grad_s, fd_s, rtol=1e-6)


def test_network_file_round_trip(tmp_path):
    spec = random_network(seed=4, max_delay=5)
    save_network(tmp_path / "net.npz", spec)
    assert load_network(tmp_path / "net.npz") == spec
    other = spec.with_weights({"hidden->output": spec.connection("hidden->output").weight * 2})
    assert other != spec
    assert list(tmp_path.iterdir()) == [tmp_path / "net.npz"]      # no temporary file left behind


@pytest.mark.parametrize("build, message", [
    (lambda: LIFLayer("h", 3, -1.0, 5.0), "tau_mem_ms must be > 0"),
    (lambda: LIFLayer("h", 0, 20.0, 5.0), "size 0 must be an integer >= 1"),
    (lambda: LIFLayer("h", 3, [20.0, 20.0], 5.0), "tau_mem_ms' has shape \\(2,\\), expected \\(3,\\)"),
    (lambda: Connection("a", "b", np.ones((2, 2)), np.full((2, 2), 9.0), 4), "delays must lie in \\[0, "),
    (lambda: Connection("a", "b", np.array([[np.nan]])), "non-finite"),
    (lambda: NetworkSpec(1.0, 10, (InputLayer("in", 2), LILayer("out", 2, 20.0, 5.0)),
                         (Connection("in", "out", np.ones((3, 2))),)), "weight shape \\(3, 2\\), expected \\(2, 2\\)"),
    (lambda: NetworkSpec(1.0, 10, (InputLayer("in", 2), LILayer("out", 2, 20.0, 5.0)), (), "mean"),
     "readout 'mean' unknown"),
])
def test_spec_errors_name_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_yinyang_matches_published_class_counts():
    # class counts of the published Yin-Yang sets (Kriener et al. 2022; train seed 42, test seed 40), which the
    # regenerated sets reproduce
    _, train_labels = yinyang_numpy(5000, 42)
    _, test_labels = yinyang_numpy(1000, 40)
    assert np.bincount(train_labels).tolist() == [1681, 1702, 1617]
    assert np.bincount(test_labels).tolist() == [350, 316, 334]


def test_latency_encoding_bins_times_up():
    features = np.array([[0.0, 0.5, 1.0, 0.25]])
    data = encode_latency(features, np.array([1]), dt_ms=0.5, n_steps=80, t_early_ms=2.0, t_late_ms=27.0,
                          bias_time_ms=0.0)
    steps, channels = data.sample(0)
    by_channel = dict(zip(channels.tolist(), steps.tolist()))
    # t = 2 + v * 25 ms, step = ceil(t / 0.5): 4, 29, 54, 16.5 -> 17; bias at 0
    assert by_channel == {0: 4, 1: 29, 2: 54, 3: 17, 4: 0}
    with pytest.raises(ValueError, match="do not fit the trial"):
        encode_latency(features, np.array([1]), 0.5, 40, 2.0, 27.0, 0.0)


def test_spike_data_subset_and_dense():
    spec = random_network()
    data = random_inputs(spec, n_samples=4)
    sub = data.subset([2, 0])
    assert np.array_equal(sub.dense(0), data.dense(2)) and np.array_equal(sub.dense(1), data.dense(0))
    again = SpikeData.from_dense(np.stack([data.dense(i) for i in range(4)]), data.labels)
    assert np.array_equal(again.steps, data.steps) and np.array_equal(again.channels, data.channels)
    with pytest.raises(ValueError, match="two spikes in one"):
        SpikeData.from_event_lists(2, 5, [([1, 1], [0, 0])], [0])


def test_training_reduces_loss_and_checkpoints(tmp_path):
    spec = random_network(seed=5, n_hidden=20, n_out=2)
    spec = spec.with_weights({"input->hidden": 4 * spec.connection("input->hidden").weight})
    rng = np.random.default_rng(0)
    # two classes: channels 0-2 or channels 2-4 fire, at random times
    events, labels = [], []
    for i in range(64):
        label = i % 2
        events.append((rng.integers(0, 30, 3), np.arange(3) + 2 * label))
        labels.append(label)
    data = SpikeData.from_event_lists(5, spec.n_steps, events, labels)
    before = evaluate(spec, data)
    assert before["spikes_per_sample"]["hidden"] > 5
    best, history = train(spec, data, data, TrainSettings(epochs=8, batch_size=16, learning_rate=0.05), tmp_path)
    after = evaluate(best, data)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] == 1.0
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 8
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    assert checkpoint["best"] == best
    assert checkpoint["meta"]["epoch"] == 7


def test_learned_time_constants_move_and_respect_clamps(tmp_path):
    from evprop.pipeline.build import initial_taus
    rng = np.random.default_rng(0)
    tau_mem, tau_syn = initial_taus({"tau_mem_ms": 20.0, "tau_syn_ms": 5.0, "heterogeneous_taus": True}, 5000, rng)
    assert abs(tau_mem.mean() - 20.0) < 0.8 and tau_mem.min() >= 3.0 and tau_mem.max() <= 60.0
    assert abs(tau_syn.mean() - 5.0) < 0.2 and tau_syn.min() >= 1.0 and tau_syn.max() <= 15.0
    spec = random_network(seed=5, n_hidden=20, n_out=2)
    spec = spec.with_weights({"input->hidden": 4 * spec.connection("input->hidden").weight})
    data = random_inputs(spec, n_samples=32, rate=0.05)
    settings = TrainSettings(epochs=3, batch_size=8, learning_rate=0.0, tau_learning_rate=2.0, min_tau_mem_ms=15.0)
    before = evaluate(spec, data)
    best, history = train(spec, data, data, settings, tmp_path)
    hidden = best.layer("hidden")
    assert not np.allclose(hidden.tau_mem_ms, 20.0)                   # time constants alone were trained
    assert hidden.tau_mem_ms.min() >= 15.0 and hidden.tau_syn_ms.min() >= 1.0
    assert np.array_equal(best.connection("input->hidden").weight, spec.connection("input->hidden").weight)
    assert evaluate(best, data)["loss"] < before["loss"]
    assert load_checkpoint(tmp_path / "checkpoint.npz")["best"] == best


def test_regulariser_pushes_spike_counts_towards_the_target(tmp_path):
    """A strong upper strength lowers the hidden spike count relative to the same run without it."""
    spec = random_network(seed=5, n_hidden=20, n_out=2)
    spec = spec.with_weights({"input->hidden": 4 * spec.connection("input->hidden").weight})
    data = random_inputs(spec, n_samples=32, rate=0.08)
    base = dict(epochs=4, batch_size=8, learning_rate=0.02, reg_nu_upper=1.0)
    plain = train(spec, data, data, TrainSettings(**base))[1]
    regular = train(spec, data, data, TrainSettings(**base, reg_lambda_upper=1e-3))[1]
    assert regular[-1]["hidden_spikes_per_sample"] < 0.7 * plain[-1]["hidden_spikes_per_sample"]


def test_silent_neurons_are_rescued_and_schedule_eases_in():
    from evprop.train.trainer import LearningRates, Trainer
    spec = random_network(seed=5, n_hidden=20, n_out=2)
    spec = spec.with_weights({"input->hidden": -np.abs(spec.connection("input->hidden").weight)})  # all silent
    data = random_inputs(spec, n_samples=8)
    trainer = Trainer(spec, TrainSettings(batch_size=4, learning_rate=0.0, silent_rescue=0.002))
    record = trainer.run_epoch(0, data)
    assert record["silent_hidden_neurons"] == 20
    np.testing.assert_allclose(trainer.net.to_spec().connection("input->hidden").weight,
                               spec.connection("input->hidden").weight + 0.002)
    np.testing.assert_allclose(trainer.net.to_spec().connection("hidden->output").weight,
                               spec.connection("hidden->output").weight)          # outputs are not hidden
    schedule = LearningRates(TrainSettings(lr_ease_in_start=0.01, ema_halving=True, ema_min_epochs=2))
    for _ in range(50):
        schedule.end_batch()
    assert schedule.factor(0) == pytest.approx(0.01 * 1.05 ** 50)
    for _ in range(100):
        schedule.end_batch()
    assert schedule.factor(0) == 1.0
    for epoch, acc in enumerate([0.5, 0.6, 0.7, 0.8, 0.2, 0.2]):
        schedule.end_epoch(epoch, {"validation_accuracy": acc})
    assert schedule.factor(0) == 0.5                      # accuracy dropped: fast EMA below slow EMA
