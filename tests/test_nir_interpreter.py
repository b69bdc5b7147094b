"""Reference NIR interpreter: from the file alone it reproduces the float engine's hidden spikes exactly and its
output voltages to 1e-9 (evprop.export.nir_interpreter module docstring: the discretisation mapping)."""

from dataclasses import replace

import nir
import numpy as np
import pytest

from conftest import random_inputs, random_network
from deploy_helpers import make_data, make_network, two_hidden_with_skip
from evprop.export.nir import export_nir
from evprop.export.nir_interpreter import discretise_node, run_nir
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, discretise
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import forward


def lif_output():
    """LIF output layer (first-spike readout): the output is a CubaLIF too."""
    spec = make_network(seed=3, max_delay=2)
    out = spec.output
    return replace(spec, layers=spec.layers[:-1] + (LIFLayer(out.name, out.size, 20.0, 5.0, 0.5),),
                   readout="first_spike")


NETWORKS = {
    "feedforward": lambda: make_network(recurrent=False),
    "recurrent": lambda: make_network(),
    "recurrent_delays": lambda: make_network(seed=1, max_delay=4),
    "per_neuron_taus_delays": lambda: make_network(seed=2, max_delay=3, per_neuron_taus=True),
    "conftest_all_delayed": lambda: random_network(seed=4, max_delay=5),
    "two_hidden_skip_delays": two_hidden_with_skip,
    "lif_output": lif_output,
}


def engine_run(spec, data):
    """The float engine: ({LIF layer: bool [B, T, n]}, {LI layer: [B, T, n]})."""
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=1000)
    spikes = {l.name: fwd.spike_raster(net.layer_slices[l.name]) for l in spec.neuron_layers
              if isinstance(l, LIFLayer)}
    volts = {} if isinstance(spec.output, LIFLayer) else {spec.output.name: fwd.v_out}
    return spikes, volts


def data_for(spec, seed=0):
    if spec.input.size == 5:
        return make_data(seed=seed, n_samples=6, n_steps=spec.n_steps, n_in=5, rate=0.1)
    return random_inputs(spec, n_samples=6, rate=0.15, seed=seed)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_interpreter_reproduces_engine_from_file(tmp_path, name):
    spec = NETWORKS[name]()
    data = data_for(spec)
    export_nir(tmp_path / "net.nir", spec)
    # the file alone: strip every node's private metadata, keep only the graph's dt
    graph = nir.read(str(tmp_path / "net.nir"))
    for node in graph.nodes.values():
        node.metadata = {}
    graph.metadata = {"dt_ms": spec.dt_ms}
    spikes, volts = run_nir(graph, data)
    want_spikes, want_volts = engine_run(spec, data)
    assert sorted(spikes) == sorted(want_spikes) and sorted(volts) == sorted(want_volts)
    for layer, raster in want_spikes.items():
        assert raster.sum() > 0, f"{name}: layer {layer} is silent (test network too weak)"
        np.testing.assert_array_equal(spikes[layer], raster, err_msg=f"{name}: layer {layer}")
    for layer, v in want_volts.items():
        np.testing.assert_allclose(volts[layer], v, rtol=0, atol=1e-9, err_msg=f"{name}: layer {layer}")
    # the path form (dt from the file's metadata) gives the same
    spikes2, volts2 = run_nir(tmp_path / "net.nir", data)
    for layer in spikes:
        np.testing.assert_array_equal(spikes2[layer], spikes[layer])
    for layer in volts:
        np.testing.assert_array_equal(volts2[layer], volts[layer])


def test_evprop_export_reduces_to_evprop_constants():
    """r = 1, v_leak = 0, w_in = tau_syn: c = 1, theta = v_threshold, and alpha, beta, g equal spec.discretise."""
    tau_m, tau_s = np.array([20.0, 13.0]), np.array([5.0, 2.5])
    node = nir.CubaLIF(tau_syn=tau_s / 1000, tau_mem=tau_m / 1000, r=np.ones(2), v_leak=np.zeros(2),
                       v_threshold=np.full(2, 1.25), v_reset=np.zeros(2), w_in=tau_s / 1000)
    p = discretise_node("h", node, 1e-3)
    alpha, beta, g = discretise(tau_m, tau_s, 1.0)
    np.testing.assert_array_equal(p.c, 1.0)
    np.testing.assert_array_equal(p.theta, 1.25)
    np.testing.assert_allclose(p.alpha, alpha, rtol=1e-14)
    np.testing.assert_allclose(p.beta, beta, rtol=1e-14)
    np.testing.assert_allclose(p.g, g, rtol=1e-13)


def test_general_r_w_in_v_leak_mapping(tmp_path):
    """NIR's r, w_in, v_leak and v_reset enter as derived: r = 2 with halved weights, w_in = tau_syn, and every
    voltage (v_leak, v_threshold, v_reset) shifted by 0.3 is the same network with outputs shifted by 0.3."""
    spec = make_network(seed=7, max_delay=2)
    data = data_for(spec, seed=3)
    export_nir(tmp_path / "net.nir", spec)
    graph = nir.read(str(tmp_path / "net.nir"))
    for name, node in list(graph.nodes.items()):
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            n = len(node.tau_syn)
            node.r = np.full(n, 2.0)
            node.v_leak = np.full(n, 0.3)
            if isinstance(node, nir.CubaLIF):
                node.v_threshold = node.v_threshold + 0.3
                node.v_reset = np.full(n, 0.3)
        elif isinstance(node, nir.Linear):
            graph.nodes[name] = nir.Linear(weight=node.weight / 2)
    spikes, volts = run_nir(graph, data, dt_ms=spec.dt_ms)
    want_spikes, want_volts = engine_run(spec, data)
    np.testing.assert_array_equal(spikes["hidden"], want_spikes["hidden"])
    np.testing.assert_allclose(volts["output"], want_volts["output"] + 0.3, rtol=0, atol=1e-9)


def test_generic_graph_delay_before_linear_scale_and_fan_in():
    """A hand-written (non-evprop) graph: a per-input Delay before the Linear, a Scale stage, two edges summed
    into one neuron node; equals an evprop spec whose delays depend only on the presynaptic channel."""
    rng = np.random.default_rng(11)
    n_in, n_h, n_out, dt = 4, 7, 2, 1.0
    w_in = rng.normal(0.7, 0.3, (n_in, n_h))
    w_rec = rng.normal(0, 0.1, (n_h, n_h))
    w_out = rng.normal(0, 0.4, (n_h, n_out))
    d_pre = np.array([0, 1, 3, 2])
    spec = NetworkSpec(dt, 50, (InputLayer("i", n_in), LIFLayer("h", n_h, 20.0, 5.0), LILayer("o", n_out, 10.0, 3.0)),
                       (Connection("i", "h", w_in, np.repeat(d_pre[:, None], n_h, axis=1).astype(float), 3),
                        Connection("h", "h", w_rec), Connection("h", "o", w_out)))
    data = random_inputs(spec, n_samples=5, rate=0.15, seed=2)

    def cuba(cls, n, tm, ts, **kw):
        return cls(tau_syn=np.full(n, ts), tau_mem=np.full(n, tm), r=np.ones(n), v_leak=np.zeros(n),
                   w_in=np.full(n, ts), **kw)

    half = w_rec / 2
    nodes = {"x": nir.Input(input_type=np.array([n_in])),
             "dly": nir.Delay(delay=d_pre * dt / 1000),
             "lin": nir.Linear(weight=w_in.T),
             "h": cuba(nir.CubaLIF, n_h, 0.02, 0.005, v_threshold=np.ones(n_h), v_reset=np.zeros(n_h)),
             "rec_a": nir.Linear(weight=half.T), "rec_b": nir.Linear(weight=np.eye(n_h)),
             "rec_scale": nir.Scale(scale=np.ones(n_h)),
             "rec_b_w": nir.Linear(weight=(w_rec - half).T),
             "ro": nir.Affine(weight=w_out.T, bias=np.zeros(n_out)),
             "o": cuba(nir.CubaLI, n_out, 0.01, 0.003), "y": nir.Output(output_type=np.array([n_out]))}
    edges = [("x", "dly"), ("dly", "lin"), ("lin", "h"), ("h", "rec_a"), ("rec_a", "h"), ("h", "rec_b"),
             ("rec_b", "rec_scale"), ("rec_scale", "rec_b_w"), ("rec_b_w", "h"), ("h", "ro"), ("ro", "o"),
             ("o", "y")]
    spikes, volts = run_nir(nir.NIRGraph(nodes=nodes, edges=edges), data, dt_ms=dt)
    want_spikes, want_volts = engine_run(spec, data)
    assert want_spikes["h"].sum() > 0
    np.testing.assert_array_equal(spikes["h"], want_spikes["h"])
    np.testing.assert_allclose(volts["o"], want_volts["o"], rtol=0, atol=1e-9)


def _tiny_graph(out_node):
    return nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([3])), "lin": nir.Linear(weight=np.ones((2, 3))),
                               "mystery": out_node, "y": nir.Output(output_type=np.array([2]))},
                        edges=[("x", "lin"), ("lin", "mystery"), ("mystery", "y")], type_check=False)


@pytest.mark.parametrize("node", [nir.LIF(tau=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2),
                                          v_threshold=np.ones(2)),
                                  nir.LI(tau=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2))],
                         ids=["LIF", "LI"])
def test_unsupported_node_type_is_a_clear_error(node):
    data = make_data(n_samples=1, n_steps=5, n_in=3)
    with pytest.raises(ValueError, match=rf"'mystery'.*{type(node).__name__}.*does not support"):
        run_nir(_tiny_graph(node), data, dt_ms=1.0)


def test_missing_dt_and_bad_wiring_are_clear_errors(tmp_path):
    data = make_data(n_samples=1, n_steps=5, n_in=3)
    li = nir.CubaLI(tau_syn=np.full(2, 0.005), tau_mem=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2))
    with pytest.raises(ValueError, match="dt_ms"):
        run_nir(_tiny_graph(li), data)
    with pytest.raises(ValueError, match="channels"):
        run_nir(_tiny_graph(li), make_data(n_samples=1, n_steps=5, n_in=4), dt_ms=1.0)
    loop = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([3])), "a": nir.Linear(weight=np.eye(3)),
                               "b": nir.Linear(weight=np.eye(3))},
                        edges=[("x", "a"), ("a", "b"), ("b", "a")], type_check=False)
    with pytest.raises(ValueError, match="cycle without a neuron"):
        run_nir(loop, data, dt_ms=1.0)
    with pytest.raises(ValueError, match="not found"):
        run_nir(tmp_path / "missing.nir", data, dt_ms=1.0)
