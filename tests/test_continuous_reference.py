"""evprop's EventProp gradients converge to the exact gradients of the continuous-time model as dt -> 0.

Part 1 checks the continuous reference (`continuous_reference.py`) against closed forms that do not share its
code: PSP shape and area, spike times found by direct root finding, the readout's derivative with respect to an
output weight, and the loss gradients of a one-spike network with respect to every time constant, delay and
feed-forward weight.

Part 2 runs evprop on the same small recurrent network with delays at dt = 0.1 and 0.01 ms and compares its
weight and delay gradients with the reference's central finite differences, per parameter group:
relative error ||g_evprop - g_ref|| / ||g_ref|| < 0.25 % at dt = 0.01 ms (the README's 0.005-0.23 %) and larger
at 0.1 ms than at 0.01 ms.

Units: evprop's `backward` returns delay gradients per step of delay (dL/d(d_steps)), the unit `Connection.delay`
is stored in: a one-step change of a delay changes the loss by grad_d (checked by
`test_evprop_delay_gradient_is_per_step`); dividing by dt gives dL/d(d_ms). Time-constant gradients (per neuron,
hidden and output) converge the same way.
"""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

import continuous_reference as cr

# ----------------------------------------------------------------------------------------------------------------
# Independent closed forms (naive difference-of-exponentials forms, tau_m != tau_s unless stated)
# ----------------------------------------------------------------------------------------------------------------


def psp(s, w, tau_m, tau_s):
    """V at time s after a weight-w arrival at s = 0 (V = I = 0 before), the PSP of tau_mem dV/dt = -V + I,
    tau_syn dI/dt = -I (Wunderlich & Pehle 2021, eq. (1)); 0 for s < 0."""
    s = np.asarray(s, dtype=np.float64)
    if tau_m == tau_s:
        val = w * (s / tau_m) * np.exp(-s / tau_m)
    else:
        val = w * tau_s / (tau_m - tau_s) * (np.exp(-s / tau_m) - np.exp(-s / tau_s))
    return np.where(s > 0, val, 0.0)


def kernel_derivatives(s, tau_m, tau_s):
    """(K, dK/ds, dK/dtau_m, dK/dtau_s) of K(s) = tau_s/(tau_m - tau_s)(e^{-s/tau_m} - e^{-s/tau_s})."""
    em, es, dtau = math.exp(-s / tau_m), math.exp(-s / tau_s), tau_m - tau_s
    k = tau_s / dtau * (em - es)
    dk_ds = (es - k) / tau_m
    dk_dtm = -tau_s / dtau ** 2 * (em - es) + tau_s / dtau * (s / tau_m ** 2) * em
    dk_dts = tau_m / dtau ** 2 * (em - es) - tau_s / dtau * (s / tau_s ** 2) * es
    return k, dk_ds, dk_dtm, dk_dts


def readout_kernel(a, tau_m, tau_s, T):
    """F(a) = (1/T) int_a^T e^{-t/T} K(t - a) dt for a unit arrival at time a, and (dF/da, dF/dtau_m, dF/dtau_s)."""
    span = T - a
    c = tau_s / (tau_m - tau_s)
    b1, b2 = 1 / T + 1 / tau_m, 1 / T + 1 / tau_s

    def G(b):
        return (1 - math.exp(-b * span)) / b

    def dG(b):
        return (b * span * math.exp(-b * span) - (1 - math.exp(-b * span))) / b ** 2

    pre = math.exp(-a / T) / T
    f = pre * c * (G(b1) - G(b2))
    df_da = -f / T - math.exp(-1.0) * kernel_derivatives(span, tau_m, tau_s)[0] / T
    df_dtm = pre * (-tau_s / (tau_m - tau_s) ** 2 * (G(b1) - G(b2)) - c * dG(b1) / tau_m ** 2)
    df_dts = pre * (tau_m / (tau_m - tau_s) ** 2 * (G(b1) - G(b2)) + c * dG(b2) / tau_s ** 2)
    return f, df_da, df_dtm, df_dts


def _net(**fields):
    """A 1-input, 1-hidden, 2-output network; `fields` override the defaults."""
    base = dict(w_ih=[[6.0]], w_hh=[[0.0]], w_ho=[[0.8, -0.5]], d_ih=[[1.5]], d_hh=[[0.0]], d_ho=[[2.0, 3.5]],
                tau_mem_hidden=[15.0], tau_syn_hidden=[5.0], tau_mem_out=[12.0, 18.0], tau_syn_out=[4.0, 6.0],
                T=40.0)
    base.update(fields)
    return cr.ContinuousNetwork(**base)


# ----------------------------------------------------------------------------------------------------------------
# Part 1: the reference against closed forms
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tau_m, tau_s", [(20.0, 5.0), (10.0, 10.0), (4.0, 9.0)])
def test_psp_of_li_neuron(tau_m, tau_s):
    """theta = inf makes the hidden neuron an LI neuron: one input spike gives the closed-form PSP."""
    w, t_in, d = 0.7, 3.0, 1.5
    net = _net(w_ih=[[w]], d_ih=[[d]], tau_mem_hidden=[tau_m], tau_syn_hidden=[tau_s], theta=math.inf, T=100.0)
    times = np.linspace(0.0, 100.0, 401)
    result = cr.simulate(net, ([t_in], [0]), record_times=times)
    assert np.max(np.abs(result.v_rec[:, 0] - psp(times - t_in - d, w, tau_m, tau_s))) < 1e-13
    assert np.max(np.abs(result.v_rec[:, 0])) > 0.1 * w      # the PSP is really there
    if tau_m == 20.0:                                         # the PSP's closed form: peak 0.1575 w at t = 9.24 ms
        assert abs(result.v_rec[:, 0].max() / w - 0.1575) < 1e-3


@pytest.mark.parametrize("tau_out", [(12.0, 4.0), (8.0, 8.0)])
def test_output_psp_and_area(tau_out):
    """Output PSP after the hidden spike (delay d_ho), and its area int V dt = w tau_s (readout_tau = inf)."""
    tau_m, tau_s = tau_out
    T = 800.0
    net = _net(w_ho=[[0.8, -0.5]], tau_mem_out=[tau_m, 18.0], tau_syn_out=[tau_s, 6.0], T=T)
    times = np.linspace(0.0, 60.0, 241)
    result = cr.simulate(net, ([2.0], [0]), record_times=times)
    assert result.spike_count.tolist() == [1]
    arrival = result.spikes[0][0] + 2.0
    assert np.max(np.abs(result.v_rec[:, 1] - psp(times - arrival, 0.8, tau_m, tau_s))) < 1e-13
    area = cr.simulate(net, ([2.0], [0]), readout_tau=math.inf).X * T      # X = (1/T) int V dt
    assert area[0] == pytest.approx(0.8 * tau_s, rel=1e-10)
    assert area[1] == pytest.approx(-0.5 * 6.0, rel=1e-10)


def test_spike_times_match_direct_root_finding():
    """Two input spikes drive a LIF neuron to fire several times. By linearity, V(t) = sum_i w_i K(t - a_i) minus
    theta e^{-(t - t_k)/tau_m} for each earlier spike t_k (the reset), so the spike times are roots of an explicit
    function, found here by a fine grid scan + brentq."""
    tau_m, tau_s, theta = 12.0, 4.0, 1.0
    w = [7.0, 9.0]
    t_in, d_ih = [1.0, 4.2], [0.7, 1.3]
    net = cr.ContinuousNetwork(
        w_ih=[[w[0]], [w[1]]], w_hh=[[0.0]], w_ho=[[0.0]], d_ih=[[d_ih[0]], [d_ih[1]]], d_hh=[[0.0]], d_ho=[[0.0]],
        tau_mem_hidden=[tau_m], tau_syn_hidden=[tau_s], tau_mem_out=[10.0], tau_syn_out=[5.0], T=40.0)
    arrivals = [t + d for t, d in zip(t_in, d_ih)]

    def v_free(t, spikes):
        v = sum(psp(t - a, wi, tau_m, tau_s) for a, wi in zip(arrivals, w))
        return v - sum(np.where(t > tk, theta * np.exp(-(t - tk) / tau_m), 0.0) for tk in spikes)

    expected, start = [], 0.0
    grid = np.arange(0.0, 40.0, 1e-3)
    while True:
        later = grid[grid > start]
        above = np.nonzero(v_free(later, expected) >= theta)[0]
        if len(above) == 0:
            break
        hi = later[above[0]]
        expected.append(brentq(lambda t: float(v_free(t, expected)) - theta, hi - 1e-3, hi, xtol=1e-14))
        start = expected[-1] + 1e-9
    result = cr.simulate(net, (t_in, [0, 1]))
    assert len(expected) >= 2
    assert [k for _, k in result.spikes] == [0] * len(expected)
    assert np.max(np.abs(np.array([t for t, _ in result.spikes]) - expected)) < 1e-11


@pytest.mark.parametrize("v0, i0, tau_m, tau_s", [(0.0, 1.0, 20.0, 5.0), (0.5, 2.0, 10.0, 10.0),
                                                  (0.1, -1.0, 10.0, 3.0), (-0.4, -1.5, 5.0, 12.0),
                                                  (0.2, -0.8, 15.0, 15.0)])
def test_extremum_time_is_where_dv_dt_vanishes(v0, i0, tau_m, tau_s):
    s_star = cr.extremum_time(v0, i0, tau_m, tau_s)
    assert s_star > 0
    v, i = cr._evolve(np.array(v0), np.array(i0), s_star, tau_m, tau_s)
    assert abs(float(i - v)) < 1e-13 * max(1.0, abs(i0))      # tau_m dV/dt = I - V = 0


def test_extremum_absent_when_v_decays_monotonically():
    # V above I and I decaying faster: dV/dt < 0 for all s > 0 (the formula's root lies in the past)
    s_star = cr.extremum_time(1.0, 0.5, 20.0, 5.0)
    assert math.isnan(s_star) or s_star < 0


def test_readout_derivative_wrt_output_weight_is_psp_integral(convergence_case):
    """X_j is linear in w_ho[k, j]: dX_j/dw_ho[k, j] = sum over spikes t of k of F_j(t + d_ho[k, j]) (closed-form
    integral of the PSP), checked by central differences of X on the recurrent test network."""
    net, inputs, _ = convergence_case
    eps = 1e-4
    for trial in inputs:
        spikes = cr.simulate(net, trial).spikes
        for k, j in [(0, 1), (2, 0), (3, 1)]:
            expected = sum(readout_kernel(t + net.d_ho[k, j], net.tau_mem_out[j], net.tau_syn_out[j], net.T)[0]
                           for t, n in spikes if n == k)
            x = []
            for sign in (1, -1):
                w = net.w_ho.copy()
                w[k, j] += sign * eps
                x.append(cr.simulate(net.with_value("w_ho", w), trial).X[j])
            assert expected != 0.0
            assert (x[0] - x[1]) / (2 * eps) == pytest.approx(expected, rel=1e-8)


def test_one_spike_network_gradients_match_closed_form():
    """One hidden neuron fires once at t_h (w_ih K_h(t_h - a_in) = theta); output j sees a weight-w_j arrival at
    t_h + d_ho[j]: X_j = w_j F_j(t_h + d_ho[j]). Every finite-difference gradient of the loss (time constants of
    both layers, delays, feed-forward weights) must match the chain rule through these closed forms, with
    dt_h/dp = -(dV/dp)/(dV/dt) at the spike."""
    net = _net()
    trial, label = ([2.0], [0]), 0
    fd = cr.fd_gradients(net, [trial], [label], eps=1e-5,
                         groups=("w_ih", "w_ho", "d_ih", "d_ho", "tau_mem_hidden", "tau_syn_hidden",
                                 "tau_mem_out", "tau_syn_out"))
    assert not fd.spikes_changed
    assert [k for _, k in fd.base[0].spikes] == [0]

    w_in, a_in, theta = 6.0, 2.0 + 1.5, 1.0
    tm_h, ts_h = 15.0, 5.0
    s_h = brentq(lambda s: w_in * kernel_derivatives(s, tm_h, ts_h)[0] - theta, 1e-6,
                 math.log(tm_h / ts_h) * tm_h * ts_h / (tm_h - ts_h), xtol=1e-14)
    t_h = a_in + s_h
    assert fd.base[0].spikes[0][0] == pytest.approx(t_h, abs=1e-11)
    k, dk_ds, dk_dtm, dk_dts = kernel_derivatives(s_h, tm_h, ts_h)
    dth = {"tau_mem_hidden": -dk_dtm / dk_ds, "tau_syn_hidden": -dk_dts / dk_ds, "d_ih": 1.0,
           "w_ih": -k / (w_in * dk_ds)}

    w_out = net.w_ho[0]
    forms = [readout_kernel(t_h + net.d_ho[0, j], net.tau_mem_out[j], net.tau_syn_out[j], net.T) for j in (0, 1)]
    x = np.array([w_out[j] * forms[j][0] for j in (0, 1)])
    assert np.allclose(fd.base[0].X, x, rtol=1e-12, atol=0)
    dl_dx = cr.softmax(x) - np.eye(2)[label]

    expected = {
        "w_ho": np.array([[dl_dx[j] * forms[j][0] for j in (0, 1)]]),
        "d_ho": np.array([[dl_dx[j] * w_out[j] * forms[j][1] for j in (0, 1)]]),
        "tau_mem_out": np.array([dl_dx[j] * w_out[j] * forms[j][2] for j in (0, 1)]),
        "tau_syn_out": np.array([dl_dx[j] * w_out[j] * forms[j][3] for j in (0, 1)]),
    }
    dl_dth = sum(dl_dx[j] * w_out[j] * forms[j][1] for j in (0, 1))
    expected.update({"tau_mem_hidden": np.array([dl_dth * dth["tau_mem_hidden"]]),
                     "tau_syn_hidden": np.array([dl_dth * dth["tau_syn_hidden"]]),
                     "d_ih": np.array([[dl_dth * dth["d_ih"]]]), "w_ih": np.array([[dl_dth * dth["w_ih"]]])})
    for group, value in expected.items():
        assert np.all(np.abs(value) > 1e-5), group
        np.testing.assert_allclose(fd.grads[group], value, rtol=2e-6, err_msg=group)


def test_fd_reports_a_spike_that_appears():
    """A hidden neuron whose PSP peak sits 1e-7 below threshold: perturbing its input weight by 1e-5 creates a
    spike, which fd_gradients must report (and its margin monitor must show the near-miss)."""
    tau_m, tau_s = 15.0, 5.0
    peak = (tau_s / (tau_m - tau_s)) * ((tau_s / tau_m) ** (tau_s / (tau_m - tau_s))
                                        - (tau_s / tau_m) ** (tau_m / (tau_m - tau_s)))
    net = _net(w_ih=[[(1.0 - 1e-7) / peak]])
    fd = cr.fd_gradients(net, [([2.0], [0])], [0], eps=1e-5, groups=("w_ih", "w_ho"))
    assert fd.base[0].spike_count.tolist() == [0]
    assert 0 < fd.min_margin < 1e-6
    assert fd.spikes_changed
    assert fd.spike_count_changes == [("w_ih", (0, 0), 1)]


# ----------------------------------------------------------------------------------------------------------------
# Part 2: evprop against the reference
# ----------------------------------------------------------------------------------------------------------------

CONVERGENCE_GROUPS = ("w_ih", "w_hh", "w_ho", "d_ih", "d_hh", "d_ho",
                      "tau_mem_hidden", "tau_syn_hidden", "tau_mem_out", "tau_syn_out")


@pytest.fixture(scope="module")
def convergence_case():
    """3 inputs -> 4 recurrent LIF (delays 0.7-4 ms, each neuron firing 1-2 times) -> 2 LI outputs, T = 40 ms,
    two trials. Weights have two decimals and delays/input times one, so every dt used here represents delays
    and input times exactly. Chosen so that no hidden V peaks within 0.08 of threshold without crossing, every
    crossing has tau_m dV/dt >= 1, and no arrival lies within 0.24 ms of a spike of its target neuron."""
    net = cr.ContinuousNetwork(
        w_ih=[[1.37, 1.21, 1.81, 1.88], [0.98, 2.40, 1.20, 2.47], [1.91, 1.84, 1.58, 1.49]],
        w_hh=[[0.20, 0.07, 0.44, 0.51], [0.17, 0.03, 0.46, 0.52], [-0.08, 0.28, 0.12, -0.23],
              [-0.49, -0.11, -0.41, 0.14]],
        w_ho=[[-0.35, 0.96], [-0.70, 0.18], [-0.26, 0.91], [-1.26, -0.51]],
        d_ih=[[2.8, 0.8, 1.5, 1.2], [1.3, 2.8, 4.0, 3.9], [3.3, 2.2, 1.9, 1.7]],
        d_hh=[[1.7, 3.6, 2.9, 4.0], [0.7, 3.6, 4.0, 3.1], [1.1, 0.8, 2.3, 2.3], [1.5, 3.1, 3.0, 2.5]],
        d_ho=[[2.7, 2.3], [2.7, 2.1], [1.3, 1.4], [0.8, 3.4]],
        tau_mem_hidden=[19.6, 17.2, 17.6, 17.7], tau_syn_hidden=[6.1, 5.3, 6.9, 4.0],
        tau_mem_out=[11.7, 14.9], tau_syn_out=[3.6, 4.3], T=40.0)
    inputs = [([8.6, 7.9, 12.2, 0.7, 8.1], [2, 1, 0, 0, 2]),
              ([17.1, 13.0, 6.0, 6.6, 7.1], [2, 0, 0, 1, 0])]
    labels = [0, 1]
    return net, inputs, labels


@pytest.fixture(scope="module")
def reference_gradients(convergence_case):
    net, inputs, labels = convergence_case
    return cr.fd_gradients(net, inputs, labels, eps=1e-5)       # every group, time constants included


def evprop_run(net, inputs, labels, dt):
    """evprop forward + backward on the discretised network. Returns (loss, hidden spike counts [B, n_h],
    {group: gradient}) with delay gradients per ms of delay."""
    from evprop.data.spikes import SpikeData
    from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
    from evprop.train.compiled import CompiledNetwork
    from evprop.train.engine import backward, forward
    from evprop.train.losses import get_loss
    from evprop.train.reference import spike_time_to_step

    n_steps = int(round(net.T / dt))
    max_delay = int(math.ceil(max(net.d_ih.max(), net.d_hh.max(), net.d_ho.max()) / dt)) + 1
    spec = NetworkSpec(
        dt_ms=dt, n_steps=n_steps,
        layers=(InputLayer("input", net.n_in),
                LIFLayer("hidden", net.n_hidden, net.tau_mem_hidden, net.tau_syn_hidden, net.theta),
                LILayer("output", net.n_out, net.tau_mem_out, net.tau_syn_out)),
        connections=(Connection("input", "hidden", net.w_ih, net.d_ih / dt, max_delay),
                     Connection("hidden", "hidden", net.w_hh, net.d_hh / dt, max_delay),
                     Connection("hidden", "output", net.w_ho, net.d_ho / dt, max_delay)),
        readout="sum_exp")
    # an input spike at t is emitted in step ceil(t/dt) (mlGeNN's SpikeInput) and arrives in step ceil(t/dt)+1+d
    events = [([spike_time_to_step(t, dt) for t in times], list(channels)) for times, channels in inputs]
    data = SpikeData.from_event_lists(net.n_in, n_steps, events, labels)
    compiled = CompiledNetwork.from_spec(spec)
    fwd = forward(compiled, data, max_spikes=50)
    loss, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grads_all = backward(compiled, data, fwd, dl_dv)
    gw, gd = compiled.per_connection(grads_all.weights), compiled.per_connection(grads_all.delays)
    names = {"ih": "input->hidden", "hh": "hidden->hidden", "ho": "hidden->output"}
    grads = {f"w_{k}": gw[v] for k, v in names.items()}
    grads.update({f"d_{k}": gd[v] / dt for k, v in names.items()})   # dL/d(delay in ms), see module doc
    hidden = compiled.layer_slices["hidden"]
    out = compiled.layer_slices["output"]
    grads.update({"tau_mem_hidden": grads_all.tau_mem[hidden], "tau_syn_hidden": grads_all.tau_syn[hidden],
                  "tau_mem_out": grads_all.tau_mem[out], "tau_syn_out": grads_all.tau_syn[out]})
    return loss, fwd.spike_count[:, hidden], grads


@pytest.fixture(scope="module")
def evprop_results(convergence_case):
    net, inputs, labels = convergence_case
    return {dt: evprop_run(net, inputs, labels, dt) for dt in (0.1, 0.01)}


def relative_errors(evprop_grads, reference):
    return {g: float(np.linalg.norm(evprop_grads[g] - reference.grads[g]) / np.linalg.norm(reference.grads[g]))
            for g in CONVERGENCE_GROUPS}


def test_convergence_case_is_well_conditioned(convergence_case, reference_gradients, evprop_results):
    """The finite differences are derivatives (no spike appears or disappears under any perturbation, no
    near-threshold peak or grazing crossing), the network is the one the test claims, and evprop fires the same
    number of spikes per neuron at both dt."""
    net, inputs, _ = convergence_case
    ref = reference_gradients
    assert not ref.spikes_changed, ref.spike_count_changes
    assert not ref.one_sided
    assert ref.min_margin > 0.05 and ref.min_slope > 0.5
    assert min(r.min_arrival_to_spike_gap() for r in ref.base) > 0.2
    counts = np.array([r.spike_count for r in ref.base])
    assert counts.min() >= 1 and counts.max() <= 3
    assert np.all(net.w_hh != 0) and np.all(net.d_hh > 0) and np.all(net.d_ih > 0) and np.all(net.d_ho > 0)
    for dt, (loss, evprop_counts, _) in evprop_results.items():
        assert np.array_equal(evprop_counts, counts), dt
        assert loss == pytest.approx(cr.loss(*convergence_case), rel=1e-2)
    for group in cr.PARAM_GROUPS:
        assert np.all(np.isfinite(ref.grads[group])) and np.linalg.norm(ref.grads[group]) > 0, group


@pytest.mark.parametrize("group", CONVERGENCE_GROUPS)
def test_evprop_gradient_converges_to_continuous_gradient(group, reference_gradients, evprop_results):
    coarse = relative_errors(evprop_results[0.1][2], reference_gradients)[group]
    fine = relative_errors(evprop_results[0.01][2], reference_gradients)[group]
    assert fine < 0.0025, (group, coarse, fine)
    assert coarse > fine, (group, coarse, fine)


def test_evprop_delay_gradient_is_per_step(convergence_case, evprop_results):
    """grad_d of evprop.train.engine.backward is dL/d(delay in steps): moving a delay by one step (dt ms) changes
    evprop's own discrete loss by grad_d (output delays, where the discrete loss is smooth enough). The grads
    of `evprop_run` are per ms, hence dt * grad below."""
    net, inputs, labels = convergence_case
    dt = 0.01
    grad = evprop_results[dt][2]["d_ho"]
    for idx in [(1, 0), (2, 1)]:
        losses = []
        for sign in (1, -1):
            delays = net.d_ho.copy()
            delays[idx] += sign * dt
            losses.append(evprop_run(net.with_value("d_ho", delays), inputs, labels, dt)[0])
        per_step = (losses[0] - losses[1]) / 2
        assert per_step == pytest.approx(dt * grad[idx], rel=0.02)
