"""How evprop's gradients relate to mlGeNN's (docs/gradients_vs_mlgenn.md), pinned with a numpy statement of
mlGeNN's backward schedule (tests/mlgenn_schedule.py):

- the statement reproduces mlGeNN's own gradients (tests/data/mlgenn/tiny_cases.json) to float32 precision;
- with evprop's two conventions in place of mlGeNN's (exact adjoint of the discrete step instead of the
  continuous-time solution; credit for a target spike in the step of the arrival) it is evprop's backward pass,
  to rounding, times 1 / tau_mem_out;
- so the whole difference between evprop and mlGeNN is those two conventions; it grows as tau_syn shrinks
  (measured here: hidden-weight cosines 0.998 / 0.997 at tau_syn = 5 ms, 0.982 / 0.979 at tau_syn = 1 ms) and
  shrinks with dt;
- the regulariser's strengths are in mlGeNN's units: Lam_V jump = tau_mem_hidden * tau_mem_out * mlGeNN's jump.
"""

from dataclasses import replace

import numpy as np
import pytest

from conftest import MLGENN
from evprop.data.spikes import SpikeData
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import backward, forward
from evprop.train.losses import get_loss
from evprop.train.reference import _CONNECTIONS, case_data, case_network, hidden_spike_lists, load_cases
from evprop.train.trainer import Trainer, TrainSettings
from mlgenn_schedule import mlgenn_gradients

CASES = load_cases(MLGENN / "tiny_cases.json")
PARAMS = CASES["_meta"]["params"]


def _cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _relative(a, b):
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(b))


def _case(name):
    spec = case_network(PARAMS, CASES[name])
    return spec, case_data(PARAMS, CASES[name], spec.input.size)


def _with_taus(spec, tau_syn_ms, tau_mem_hidden_ms=None, tau_mem_out_ms=None):
    """Every tau_syn set to tau_syn_ms and the weights scaled by 5 / tau_syn_ms (the same charge per spike as at
    5 ms, so the hidden neurons still fire); optionally other tau_mem."""
    hidden, out = spec.layer("hidden"), spec.output
    layers = (spec.layers[0],
              replace(hidden, tau_syn_ms=tau_syn_ms, tau_mem_ms=tau_mem_hidden_ms or hidden.tau_mem_ms),
              replace(out, tau_syn_ms=tau_syn_ms, tau_mem_ms=tau_mem_out_ms or out.tau_mem_ms))
    spec = replace(spec, layers=layers)
    return spec.with_weights({c.name: c.weight * 5.0 / tau_syn_ms for c in spec.connections})


def _evprop(spec, data, jump=None):
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=100)
    _, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grads = backward(net, data, fwd, dl_dv, jump)
    return net.per_connection(grads.weights), net.per_connection(grads.delays), fwd


@pytest.mark.parametrize("name", ["A_ff_nodelay", "D_rec_nodelay", "B_rec_delay"])
def test_the_numpy_schedule_is_mlgenn(name):
    """Same hidden spikes, and every gradient matrix within 1e-6 relative of mlGeNN's (float32; measured
    4.5e-7 - 8.6e-7)."""
    spec, data = _case(name)
    ours = mlgenn_gradients(spec, data)
    case = CASES[name]
    for b, example in enumerate(("example0", "example1")):
        spikes = case["forward"][example]["hidden_spikes_(time_ms,neuron)"]
        reference = sorted((int(t / spec.dt_ms), n) for t, n in spikes)
        assert ours.hidden_spikes[b] == reference
    readout = np.array([case["forward"][e]["VAvg_readout"] for e in ("example0", "example1")])
    assert np.max(np.abs(ours.readout - readout) / np.abs(readout)) < 1.2e-6
    for key in case["grad_per_example"][0]:
        kind, matrix = key.split("/")[1].split("_", 1)                   # 'dL/dW_ih' -> ('dW', 'ih')
        src, dst = _CONNECTIONS[f"W_{matrix}"]
        reference = np.mean([np.asarray(g[key]) for g in case["grad_per_example"]], axis=0)
        mine = (ours.weights if kind == "dW" else ours.delays)[f"{src}->{dst}"]
        assert _relative(mine, reference) < 1e-6, key


@pytest.mark.parametrize("name", ["D_rec_nodelay", "B_rec_delay"])
@pytest.mark.parametrize("tau_syn_ms", [5.0, 1.0])
def test_with_evprops_two_conventions_the_schedule_is_evprop(name, tau_syn_ms):
    """Exact discrete adjoint + same-step credit: evprop's weight and delay gradients to rounding (x tau_mem_out)."""
    spec, data = _case(name)
    spec = _with_taus(spec, tau_syn_ms)
    weights, delays, fwd = _evprop(spec, data)
    ours = mlgenn_gradients(spec, data, adjoint_step="discrete", same_step_credit=True, last_step_quirk=False)
    assert ours.hidden_spikes == hidden_spike_lists(fwd, 0, spec.layer("hidden").size, 1.0)
    for conn in spec.connections:
        assert _relative(ours.weights[conn.name] * 20.0, weights[conn.name]) < 1e-12, conn.name
        if conn.max_delay_steps:
            assert _relative(ours.delays[conn.name] * 20.0, delays[conn.name]) < 1e-12, conn.name


def test_short_tau_syn_pins_the_difference_to_the_two_conventions():
    """Case D at tau_syn = 1 ms: evprop against mlGeNN's schedule. The output gradient is the same up to mlGeNN's
    weighting of its loss drive (cosine > 0.99999: the two conventions act on hidden neurons only); the hidden ones
    differ (cosines 0.9823 input, 0.9786 recurrent),
    far more than at tau_syn = 5 ms (>= 0.9966), and each convention alone leaves part of the difference."""
    cosines = {}
    for tau_syn_ms in (5.0, 1.0):
        spec, data = _case("D_rec_nodelay")
        spec = _with_taus(spec, tau_syn_ms)
        weights, _, _ = _evprop(spec, data)
        variants = {"mlgenn": {}, "continuous+credit": {"same_step_credit": True},
                    "discrete, no credit": {"adjoint_step": "discrete"}}
        for label, flags in variants.items():
            ours = mlgenn_gradients(spec, data, last_step_quirk=False, **flags)
            cosines[tau_syn_ms, label] = {k: _cosine(ours.weights[k], weights[k]) for k in weights}
    short, long = cosines[1.0, "mlgenn"], cosines[5.0, "mlgenn"]
    assert short["hidden->output"] > 0.99999 and long["hidden->output"] > 0.99999
    assert short["input->hidden"] == pytest.approx(0.9823, abs=5e-4)
    assert short["hidden->hidden"] == pytest.approx(0.9786, abs=5e-4)
    assert min(long["input->hidden"], long["hidden->hidden"]) >= 0.9966
    for label in ("continuous+credit", "discrete, no credit"):
        alone = cosines[1.0, label]
        assert alone["hidden->hidden"] > short["hidden->hidden"] and alone["hidden->hidden"] < 0.9999, label


def test_the_difference_shrinks_with_dt():
    """Case D at tau_syn = 1 ms on a 4x finer grid (dt = 0.25 ms, same spike times in ms, delays in ms): evprop and
    mlGeNN's schedule agree better, as both approach the continuous-time gradient."""
    coarse_spec, coarse_data = _case("D_rec_nodelay")
    coarse_spec = _with_taus(coarse_spec, 1.0)
    fine_spec = replace(coarse_spec, dt_ms=0.25, n_steps=4 * coarse_spec.n_steps)
    events = [(list(4 * np.asarray(coarse_data.sample(b)[0])), list(coarse_data.sample(b)[1]))
              for b in range(len(coarse_data))]
    fine_data = SpikeData.from_event_lists(coarse_spec.input.size, fine_spec.n_steps, events, coarse_data.labels)
    agreement = {}
    for label, spec, data in (("coarse", coarse_spec, coarse_data), ("fine", fine_spec, fine_data)):
        weights, _, _ = _evprop(spec, data)
        ours = mlgenn_gradients(spec, data, last_step_quirk=False)
        agreement[label] = min(_cosine(ours.weights[k], weights[k]) for k in ("input->hidden", "hidden->hidden"))
    assert agreement["fine"] > agreement["coarse"] + 0.005, agreement


def test_regulariser_strength_is_in_mlgenn_units_with_different_taus():
    """Hidden tau_mem 20 ms, output tau_mem 10 ms, one example (B = 1, as mlGeNN's CPU backend), reg_lambda 1e-4
    above and below nu = 2: the regulariser's part of evprop's gradient (with minus without) equals the part
    mlGeNN's jump `LambdaV -= RegLambda (count - nu)` gives in the same schedule, times tau_mem_out. With the
    old conversion tau_mem_hidden^2 it was 2x too large."""
    spec, data = _case("D_rec_nodelay")
    spec = _with_taus(spec, 5.0, tau_mem_hidden_ms=20.0, tau_mem_out_ms=10.0)
    data = data.subset([0])
    settings = TrainSettings(reg_lambda_upper=1e-4, reg_lambda_lower=1e-4, reg_nu_upper=2.0)
    trainer = Trainer(spec, settings)
    _, _, fwd = _evprop(spec, data)
    jump = trainer.regulariser_jump(fwd.spike_count)
    assert np.any(jump != 0)
    with_reg, _, _ = _evprop(spec, data, jump)
    without, _, _ = _evprop(spec, data)
    flags = {"adjoint_step": "discrete", "same_step_credit": True, "last_step_quirk": False}
    ml_with = mlgenn_gradients(spec, data, reg_lambda=(1e-4, 1e-4), reg_nu=2, **flags)
    ml_without = mlgenn_gradients(spec, data, **flags)
    for name in ("input->hidden", "hidden->hidden"):
        ours = with_reg[name] - without[name]
        theirs = (ml_with.weights[name] - ml_without.weights[name]) * 10.0       # x tau_mem_out
        assert np.linalg.norm(ours) > 1e-3 * np.linalg.norm(without[name])       # the regulariser acts
        assert _relative(ours, theirs) < 1e-10, name
