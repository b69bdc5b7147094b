"""evprop's engine against the authors' mlGeNN (tiny_cases.json) and against finite differences."""

import numpy as np
import pytest

from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import SpikeTapeOverflow, backward, forward
from evprop.train.losses import get_loss
from evprop.train.reference import case_data, case_network, gradcheck

from conftest import central_differences, random_inputs, random_network


@pytest.mark.parametrize("case", ["A_ff_nodelay", "D_rec_nodelay", "B_rec_delay"])
def test_matches_mlgenn(reference_cases, case):
    result = gradcheck(reference_cases, case)
    assert result["hidden_spikes_identical"]
    assert result["max_spike_time_diff_ms"] == 0.0
    # the README's claims: readouts within 1.2e-6 relative (mlGeNN runs in float32), every cosine >= 0.996
    assert result["readout_max_rel_diff"] < 1.2e-6
    assert abs(result["loss"] - result["loss_reference"]) < 1e-7
    for key, m in result["matrices"].items():
        assert m["cosine"] >= 0.996, (key, m)
    # mlGeNN's output gradient is ~0.96/tau_mem times the true one (its output drive is divided by tau_mem;
    # tests/data/mlgenn/README.md)
    assert 0.045 < result["matrices"]["dL/dW_ho"]["scale_ratio_ref_over_evprop"] < 0.05


def test_last_step_quirk_matters(reference_cases):
    """Without mlGeNN's last-step zeroing the readout differs from the reference by more than 1e-3."""
    assert gradcheck(reference_cases, "D_rec_nodelay", mlgenn_last_step=False)["readout_max_rel_diff"] > 1e-3


def _loss(spec, data, quirk=False):
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200, mlgenn_last_step=quirk)
    return get_loss("cross_entropy")(spec, fwd.v_out, data.labels)[0]


def _output_gradient_vs_fd(spec, data, quirk, eps=1e-5):
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200, mlgenn_last_step=quirk)
    _, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grad = net.per_connection(backward(net, data, fwd, dl_dv, mlgenn_last_step=quirk).weights)["hidden->output"]
    fd = central_differences(lambda w: _loss(spec.with_weights({"hidden->output": w}), data, quirk),
                             spec.connection("hidden->output").weight, eps)
    return grad, fd


@pytest.mark.parametrize("case", ["A_ff_nodelay", "D_rec_nodelay"])
def test_output_gradient_equals_finite_differences_reference(reference_cases, case):
    params, c = reference_cases["_meta"]["params"], reference_cases[case]
    spec = case_network(params, c)
    data = case_data(params, c, spec.input.size)
    for quirk in (True, False):
        grad, fd = _output_gradient_vs_fd(spec, data, quirk)
        assert np.max(np.abs(grad - fd)) <= 1e-4 * np.max(np.abs(fd))
        assert np.allclose(grad, fd, rtol=1e-4, atol=1e-4 * np.max(np.abs(fd)))


@pytest.mark.parametrize("readout", ["sum_exp", "sum", "last"])
def test_output_gradient_equals_finite_differences_delays(readout):
    """Delayed output synapses and the other weighted-sum readouts: still the exact discrete gradient."""
    spec = random_network(seed=3, max_delay=6, readout=readout)
    data = random_inputs(spec, n_samples=3)
    grad, fd = _output_gradient_vs_fd(spec, data, quirk=False)
    assert np.max(np.abs(grad - fd)) <= 1e-4 * np.max(np.abs(fd))


def test_spike_times_follow_delays():
    """A single input spike in step 0 with delay d and a strong weight makes the hidden neuron fire; the spike
    arrives in step 1 + d, so the first hidden spike moves by exactly the delay."""
    first = []
    for d in (0, 3, 7):
        spec = random_network(seed=0, n_in=1, n_hidden=1, n_out=1, recurrent=False, max_delay=7)
        spec = spec.replace_connection(Connection("input", "hidden", np.array([[30.0]]), np.array([[d]]), 7))
        data = SpikeData.from_event_lists(1, spec.n_steps, [([0], [0])], [0])
        fwd = forward(CompiledNetwork.from_spec(spec), data, max_spikes=10)
        first.append(int(fwd.tape_step[0, 0]))
    assert first[1] - first[0] == 3 and first[2] - first[0] == 7
    assert first[0] == 1      # arrival in step 1 and V = g * 30 > 1 at once


def test_overflow_is_an_error_naming_layer():
    spec = random_network(seed=0)
    data = random_inputs(spec, rate=0.3)
    with pytest.raises(SpikeTapeOverflow, match="layer 'hidden'.*max_spikes=1"):
        forward(CompiledNetwork.from_spec(spec), data, max_spikes=1)
    fwd = forward(CompiledNetwork.from_spec(spec), data, max_spikes=1, allow_overflow=True)
    assert fwd.dropped["hidden"] == int(np.maximum(fwd.spike_count - 1, 0).sum())
    assert fwd.dropped["hidden"] > 0


def test_batch_results_do_not_depend_on_batch_composition():
    spec = random_network(seed=2, max_delay=4)
    data = random_inputs(spec, n_samples=5)
    net = CompiledNetwork.from_spec(spec)
    whole = forward(net, data, max_spikes=200)
    one = forward(net, data.subset([3]), max_spikes=200)
    assert np.array_equal(whole.v_out[3], one.v_out[0])
    assert np.array_equal(whole.spike_count[3], one.spike_count[0])


def test_output_time_constant_gradients_equal_finite_differences():
    """LI outputs never spike, so their tau_mem / tau_syn gradients are exact gradients of the discrete forward
    pass (per-neuron time constants, delayed output synapses)."""
    from evprop.model.spec import LILayer
    spec = random_network(seed=6, max_delay=4)
    out = spec.output
    out = LILayer(out.name, out.size, [18.0, 21.0, 25.0], [4.0, 5.5, 7.0])
    spec = type(spec)(spec.dt_ms, spec.n_steps, spec.layers[:-1] + (out,), spec.connections, spec.readout)
    data = random_inputs(spec, n_samples=3)
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200)
    _, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grads = backward(net, data, fwd, dl_dv)
    sl = net.layer_slices["output"]
    eps = 1e-5
    for field, ours in (("tau_mem_ms", grads.tau_mem[sl]), ("tau_syn_ms", grads.tau_syn[sl])):
        fd = np.zeros(out.size)
        for j in range(out.size):
            for sign in (1, -1):
                taus = {"tau_mem_ms": out.tau_mem_ms.copy(), "tau_syn_ms": out.tau_syn_ms.copy()}
                taus[field][j] += sign * eps
                layer = LILayer(out.name, out.size, taus["tau_mem_ms"], taus["tau_syn_ms"])
                perturbed = type(spec)(spec.dt_ms, spec.n_steps, spec.layers[:-1] + (layer,), spec.connections,
                                       spec.readout)
                fd[j] += sign * _loss(perturbed, data) / (2 * eps)
        assert np.max(np.abs(ours - fd)) <= 1e-4 * np.max(np.abs(fd)), (field, ours, fd)


def test_float32_kernels_agree_with_float64():
    """Single precision (train.precision = "float32") gives the same spikes and gradients to ~1e-5 relative."""
    spec = random_network(seed=8, max_delay=4)
    data = random_inputs(spec, n_samples=4)
    results = {}
    for dtype in (np.float64, np.float32):
        net = CompiledNetwork.from_spec(spec, dtype)
        fwd = forward(net, data, max_spikes=200)
        _, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
        results[dtype] = (fwd, backward(net, data, fwd, dl_dv))
    (f64, g64), (f32, g32) = results[np.float64], results[np.float32]
    assert np.array_equal(f64.spike_count, f32.spike_count)
    assert f32.v_out.dtype == np.float32 and g32.weights.dtype == np.float32
    for name in ("weights", "delays", "tau_mem", "tau_syn"):
        a, b = getattr(g64, name), getattr(g32, name)
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a), name


def test_kernels_allocate_nothing_per_step_or_spike():
    """numba runtime allocations of one forward and one backward pass do not grow with the trial length or the
    number of spikes (issue 7: no per-step allocations; buffers are allocated once per call and chunk)."""
    from numba.core.runtime import _nrt_python, rtsys
    _nrt_python.memsys_enable_stats()
    counts = {}
    for steps in (40, 80):
        spec = random_network(seed=1, max_delay=3, n_steps=steps)
        data = random_inputs(spec, n_samples=4)
        net = CompiledNetwork.from_spec(spec)
        loss = get_loss("cross_entropy")
        forward(net, data, 100, compact=True)                   # compile outside the count
        before = rtsys.get_allocation_stats().alloc
        fwd = forward(net, data, 100, compact=True)
        middle = rtsys.get_allocation_stats().alloc
        terms = loss.evaluate(spec, fwd, net.layer_slices["output"], data.labels)
        backward(net, data, fwd, None, dl_dscore=terms.dl_dscore)
        counts[steps] = (middle - before, rtsys.get_allocation_stats().alloc - middle, int(fwd.spike_count.sum()))
    assert counts[80][2] > counts[40][2]                         # more steps, more spikes ...
    assert counts[80][:2] == counts[40][:2]                      # ... the same allocations


def test_kernel_bundle_shares_the_networks_arrays():
    """CompiledNetwork.arrays holds the network's own arrays, by name: in-place updates (optimisers, clamps) reach
    the kernels, and each field is the array of that name (nothing swapped by position)."""
    from evprop.train.kernel_args import NetworkArrays
    net = CompiledNetwork.from_spec(random_network(seed=3, max_delay=4))
    bundle = net.arrays
    for name in NetworkArrays._fields:
        value = getattr(bundle, name)
        if isinstance(value, np.ndarray):
            assert value is getattr(net, name), name
    assert (bundle.n_steps, bundle.n_in, bundle.n_out, bundle.ring_len) == (net.spec.n_steps, net.n_in, net.n_out, 5)
    net.tau_mem[:] = 3.0
    net.clamp_taus(4.0, 1.0)
    np.testing.assert_array_equal(bundle.alpha, np.exp(-1.0 / 4.0))
    net.delay_flat[:] = 2.6
    net.clamp_delays()
    assert np.all(bundle.d_flat == 3)
