"""BPTT-family baselines (evprop.train.baselines): EXODUS == BPTT, SLAYER != BPTT, output gradients == EventProp's,
BPTT == an independent forward-mode derivative, training runs, delays are refused."""

from dataclasses import replace

import numpy as np
import pytest

from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from evprop.train.baselines import (BaselineTrainer, baseline_gradients, dense_forward,
                                    surrogate_derivative)
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import backward, forward
from evprop.train.losses import get_loss
from evprop.train.trainer import Trainer, TrainSettings, make_trainer

from conftest import random_inputs, random_network

LOSS = get_loss("cross_entropy")


def _busy_recurrent(seed=0):
    """A small recurrent network whose hidden neurons fire often (many resets, so the reset term matters)."""
    spec = random_network(seed=seed, n_in=6, n_hidden=10, n_out=3, n_steps=80, recurrent=True)
    data = random_inputs(spec, n_samples=4, rate=0.15, seed=seed + 1)
    return spec, data


def _deep(cycle: bool):
    """input -> h1 -> h2 -> output, plus a skip h1 -> output and input -> h2; with `cycle`, also h2 -> h1."""
    rng = np.random.default_rng(3)
    n_in, n1, n2, n_out = 5, 8, 7, 3
    conns = [Connection("input", "h1", rng.normal(0.6, 0.3, (n_in, n1))),
             Connection("h1", "h2", rng.normal(0.5, 0.3, (n1, n2))),
             Connection("input", "h2", rng.normal(0.2, 0.2, (n_in, n2))),
             Connection("h2", "output", rng.normal(0.0, 0.5, (n2, n_out))),
             Connection("h1", "output", rng.normal(0.0, 0.5, (n1, n_out)))]
    if cycle:
        conns.append(Connection("h2", "h1", rng.normal(0.0, 0.2, (n2, n1))))
    layers = (InputLayer("input", n_in), LIFLayer("h1", n1, 20.0, 5.0), LIFLayer("h2", n2, 15.0, 4.0),
              LILayer("output", n_out, 20.0, 5.0))
    spec = NetworkSpec(1.0, 70, layers, tuple(conns), "sum_exp")
    return spec, random_inputs(spec, n_samples=3, rate=0.15, seed=4)


def _grads(spec, data, algorithm, **kw):
    return baseline_gradients(algorithm, spec, data, lambda v: LOSS(spec, v, data.labels)[2], **kw)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_dense_forward_is_the_engine_forward():
    spec, data = _busy_recurrent()
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200)
    dense = dense_forward(net, data)
    np.testing.assert_array_equal(dense.v_out, fwd.v_out)
    np.testing.assert_array_equal(dense.spike_count, fwd.spike_count)
    assert fwd.spike_count[:, :10].sum() > 100          # the reset is exercised


@pytest.mark.parametrize("network", ["recurrent", "deep_feedforward", "deep_cycle"])
def test_exodus_equals_bptt_and_slayer_differs(network):
    spec, data = _busy_recurrent() if network == "recurrent" else _deep(cycle=network == "deep_cycle")
    bptt, exodus, slayer = (_grads(spec, data, a) for a in ("bptt", "exodus", "slayer"))
    assert np.abs(bptt.weights).max() > 0
    np.testing.assert_allclose(exodus.weights, bptt.weights, rtol=1e-6, atol=1e-9 * np.abs(bptt.weights).max())
    np.testing.assert_allclose(exodus.tau_mem, bptt.tau_mem, rtol=1e-6, atol=1e-9 * np.abs(bptt.tau_mem).max())
    np.testing.assert_allclose(exodus.tau_syn, bptt.tau_syn, rtol=1e-6, atol=1e-9 * np.abs(bptt.tau_syn).max())
    # SLAYER drops the reset term: a real difference in the hidden-layer gradients
    net = CompiledNetwork.from_spec(spec)
    into_hidden = np.concatenate([np.arange(net.w_flat.size)[sl] for name, sl in net.conn_slices.items()
                                  if not name.endswith("->output")])
    assert _rel(slayer.weights[into_hidden], bptt.weights[into_hidden]) > 0.05


@pytest.mark.parametrize("algorithm", ["bptt", "slayer", "exodus"])
def test_output_gradients_equal_eventprop(algorithm):
    """LI outputs have no reset and no surrogate: every baseline's output-layer gradient (weights, tau_mem,
    tau_syn) is the exact discrete gradient, as EventProp's is."""
    spec, data = _busy_recurrent()
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200)
    ev = backward(net, data, fwd, LOSS(spec, fwd.v_out, data.labels)[2])
    ours = _grads(spec, data, algorithm)
    out_w = net.conn_slices["hidden->output"]
    out_n = net.layer_slices["output"]
    np.testing.assert_allclose(ours.weights[out_w], ev.weights[out_w], rtol=1e-9,
                               atol=1e-12 * np.abs(ev.weights[out_w]).max())
    np.testing.assert_allclose(ours.tau_mem[out_n], ev.tau_mem[out_n], rtol=1e-8)
    np.testing.assert_allclose(ours.tau_syn[out_n], ev.tau_syn[out_n], rtol=1e-8)


def _forward_mode_derivative(spec, data, direction, beta_s):
    """d loss / d(weights . direction) by forward-mode propagation of tangents through the discrete model with
    the surrogate dS = f'(V) dV and the reset dU = (1 - S) dV - V dS: an independent check of reverse-mode BPTT.
    Written for input -> hidden (recurrent) -> output."""
    net = CompiledNetwork.from_spec(spec)
    w = net.per_connection(net.w_flat)
    dw = net.per_connection(direction)
    hid, out = spec.layers[1], spec.layers[2]
    a_h, b_h, g_h = (x[net.layer_slices["hidden"]] for x in (net.alpha, net.beta, net.g))
    a_o, b_o, g_o = (x[net.layer_slices["output"]] for x in (net.alpha, net.beta, net.g))
    n_batch, n_steps = len(data), spec.n_steps
    x = np.stack([data.dense(b) for b in range(n_batch)]).astype(float)
    state = {k: np.zeros((n_batch, hid.size)) for k in ("j", "u", "s", "dj", "du", "ds")}
    jo, vo, djo, dvo = (np.zeros((n_batch, out.size)) for _ in range(4))
    v_out, dv_out = np.zeros((n_batch, n_steps, out.size)), np.zeros((n_batch, n_steps, out.size))
    for k in range(n_steps):
        x_prev = x[:, k - 1] if k > 0 else np.zeros_like(x[:, 0])
        s, ds = state["s"], state["ds"]
        a = x_prev @ w["input->hidden"] + s @ w["hidden->hidden"]
        da = x_prev @ dw["input->hidden"] + s @ dw["hidden->hidden"] + ds @ w["hidden->hidden"]
        ao = s @ w["hidden->output"]
        dao = s @ dw["hidden->output"] + ds @ w["hidden->output"]
        state["j"] = b_h * state["j"] + a
        state["dj"] = b_h * state["dj"] + da
        v = a_h * state["u"] + g_h * state["j"]
        dv = a_h * state["du"] + g_h * state["dj"]
        s_new = (v >= hid.threshold).astype(float)
        ds_new = surrogate_derivative(v, hid.threshold, beta_s) * dv
        state["u"], state["du"] = v * (1 - s_new), (1 - s_new) * dv - v * ds_new
        state["s"], state["ds"] = s_new, ds_new
        jo, djo = b_o * jo + ao, b_o * djo + dao
        vo, dvo = a_o * vo + g_o * jo, a_o * dvo + g_o * djo
        v_out[:, k], dv_out[:, k] = vo, dvo
    return float(np.sum(LOSS(spec, v_out, data.labels)[2] * dv_out))


def test_bptt_equals_forward_mode_derivative():
    spec, data = _busy_recurrent()
    net = CompiledNetwork.from_spec(spec)
    direction = np.random.default_rng(9).normal(size=net.w_flat.size)
    for beta_s in (2.0, 10.0):
        reverse = float(_grads(spec, data, "bptt", surrogate_beta=beta_s).weights @ direction)
        assert reverse == pytest.approx(_forward_mode_derivative(spec, data, direction, beta_s), rel=1e-9)


def test_delays_are_refused_with_a_clear_error():
    spec = random_network(max_delay=5)
    data = random_inputs(spec)
    with pytest.raises(ValueError, match="only zero delays.*input->hidden"):
        _grads(spec, data, "bptt")
    with pytest.raises(ValueError, match="cannot learn delays"):
        BaselineTrainer(random_network(), TrainSettings(delay_learning_rate=0.1, algorithm="exodus"))
    with pytest.raises(ValueError, match="unknown"):
        make_trainer(random_network(), TrainSettings(algorithm="rtrl"))


def test_baseline_trainer_learns_and_regulariser_runs():
    spec, data = _busy_recurrent()
    train = SpikeData.from_dense(np.stack([data.dense(b) for b in range(4)]), np.array([0, 1, 2, 0]))
    assert isinstance(make_trainer(spec, TrainSettings(algorithm="eventprop")), Trainer)
    for algorithm in ("bptt", "exodus", "slayer"):
        settings = TrainSettings(batch_size=4, learning_rate=6e-2, tau_learning_rate=1e-2, reg_lambda_upper=1e-9,
                                 reg_nu_upper=1.0)
        trainer = make_trainer(spec, replace(settings, algorithm=algorithm))
        first = trainer.run_epoch(0, train)
        for epoch in range(1, 20):
            last = trainer.run_epoch(epoch, train)
        assert last["algorithm"] == algorithm and first["hidden_spikes_per_sample"] > 0
        assert last["loss"] < 0.85 * first["loss"], algorithm
        assert not np.array_equal(trainer.net.tau_mem, CompiledNetwork.from_spec(spec).tau_mem)
