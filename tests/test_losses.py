"""Losses: every voltage loss gives the exact discrete gradient; spike-time losses give EventProp's exact
continuous-time gradient as dt shrinks."""

import numpy as np
import pytest
from scipy.optimize import brentq

from conftest import central_differences, random_inputs, random_network
from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection, InputLayer, LIFLayer, NetworkSpec
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import backward, forward
from evprop.train.losses import get_loss


def _grad_and_fd(spec, data, loss_name, eps=1e-5):
    loss = get_loss(loss_name)
    net = CompiledNetwork.from_spec(spec)
    out = net.layer_slices["output"]
    fwd = forward(net, data, 200)
    terms = loss.evaluate(spec, fwd, out, data.labels)
    grads = backward(net, data, fwd, terms.dl_dv, tape_dl_dt=terms.tape_dl_dt)
    ours = net.per_connection(grads.weights)["hidden->output"]

    def loss_of(w):
        shifted = spec.with_weights({"hidden->output": w})
        return loss.evaluate(shifted, forward(CompiledNetwork.from_spec(shifted), data, 200), out, data.labels).loss
    return ours, central_differences(loss_of, spec.connection("hidden->output").weight, eps)


@pytest.mark.parametrize("loss_name, readout", [("x_entropy", "sum_exp"), ("cross_entropy", "sum_gaus"),
                                                ("cross_entropy", "max"), ("cross_entropy", "sum")])
def test_voltage_losses_give_exact_output_gradients(loss_name, readout):
    spec = random_network(seed=7, max_delay=3, readout=readout)
    data = random_inputs(spec, n_samples=3)
    ours, fd = _grad_and_fd(spec, data, loss_name)
    assert np.max(np.abs(ours - fd)) <= 1e-4 * np.max(np.abs(fd))


def test_sum_gaus_weighting_is_the_thesis_function():
    spec = random_network(readout="sum_gaus", n_steps=100)
    w = spec.readout_weights() * spec.n_steps
    # w(x) = 2 (0.4 + 4.4 x exp(-x^2 / (2 * 0.2^2))): 0.8 at x = 0, peak ~1.87 near x = 0.2
    # (Klotins 2025, eqs. (26)-(27))
    assert w[0] == pytest.approx(0.8)
    assert w.max() == pytest.approx(2 * (0.4 + 4.4 * 0.2 * np.exp(-0.5)), rel=1e-3)
    assert abs(np.argmax(w) / 100 - 0.2) <= 0.01


def _single_layer(weights, dt):
    """1 input -> 2 LIF outputs (tau_mem 20, tau_syn 5), first-spike readout."""
    layers = (InputLayer("input", 1), LIFLayer("output", 2, 20.0, 5.0))
    return NetworkSpec(dt, int(round(40 / dt)), layers, (Connection("input", "output", np.array([weights])),),
                       "first_spike")


def _analytic_first_spike(w, tau_m=20.0, tau_s=5.0):
    """Continuous time: one input spike at t = 0 of weight w; V(t) = w K(t), K = tau_s/(tau_m - tau_s)
    (e^{-t/tau_m} - e^{-t/tau_s}). Returns (t*, dt*/dw = -K(t*) / (w K'(t*)))."""
    def kernel(t):
        return tau_s / (tau_m - tau_s) * (np.exp(-t / tau_m) - np.exp(-t / tau_s))

    def slope(t):
        return tau_s / (tau_m - tau_s) * (-np.exp(-t / tau_m) / tau_m + np.exp(-t / tau_s) / tau_s)
    t_peak = np.log(tau_m / tau_s) * tau_m * tau_s / (tau_m - tau_s)
    t = brentq(lambda x: w * kernel(x) - 1.0, 1e-9, t_peak)
    return t, -kernel(t) / (w * slope(t))


@pytest.mark.parametrize("loss_name", ["delta_mse", "first_spike_time"])
def test_spike_time_losses_converge_to_continuous_gradient(loss_name):
    weights = [9.0, 8.0]
    (t0, dt0), (t1, dt1) = (_analytic_first_spike(w) for w in weights)
    loss = get_loss(loss_name)
    _, dl_dt = loss.loss_and_gradient(np.array([[t0, t1]]), np.array([0]), 40.0)
    expected = dl_dt[0] * np.array([dt0, dt1])                     # dL/dw_j = dL/dt_j dt_j/dw_j
    errors = []
    for dt in (0.1, 0.01):
        spec = _single_layer(weights, dt)
        data = SpikeData.from_event_lists(1, spec.n_steps, [([0], [0])], [0])
        net = CompiledNetwork.from_spec(spec)
        fwd = forward(net, data, 10)
        terms = loss.evaluate(spec, fwd, net.layer_slices["output"], data.labels)
        first, _ = fwd.first_spikes(net.layer_slices["output"])
        assert np.all(np.abs(first[0] * dt - np.array([t0, t1])) < 2 * dt + 1e-9)
        grads = backward(net, data, fwd, terms.dl_dv, tape_dl_dt=terms.tape_dl_dt)
        errors.append(np.linalg.norm(grads.weights - expected) / np.linalg.norm(expected))
    assert errors[1] < 0.03 and errors[1] < errors[0], errors


def test_phantom_spike_pushes_a_silent_correct_output():
    spec = _single_layer([0.5, 9.0], 1.0)          # output 0 stays silent, output 1 fires
    data = SpikeData.from_event_lists(1, spec.n_steps, [([0], [0])], [0])
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, 10)
    terms = get_loss("first_spike_time").evaluate(spec, fwd, net.layer_slices["output"], data.labels)
    assert terms.scores[0, 0] == -40.0 and terms.scores[0, 1] > -40.0
    grads = backward(net, data, fwd, terms.dl_dv, tape_dl_dt=terms.tape_dl_dt)
    assert grads.weights[0] < 0          # gradient descent raises the silent correct output's weight
    assert grads.weights[1] > 0          # ... and lowers the weight of the wrong output that fired first
