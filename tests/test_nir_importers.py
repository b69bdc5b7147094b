"""NIR for third-party importers (docs/nir_importers.md, evprop/export/nir_targets.py).

The first tests need only numpy: the written values make NIR's forward-Euler step equal evprop's step, and what
cannot run as trained is refused. The others import the file with the library itself and run when it is installed
(`pip install -e '.[importers]'`: snntorch 1.0.0, norse 1.1.0, nirtorch 2.6 and torch, ~6 GB with its CUDA
libraries from PyPI, so `make test` leaves them out and they skip, saying so). Last run with them: Python 3.11,
torch 2.14.1, numpy 2.4.6 (scripts/nir_importers.py). A library release that changes the behaviour shows up as a
failing test here.
"""

import json

import numpy as np
import pytest

from deploy_helpers import make_data, make_network
from evprop.export.nir import export_nir
from evprop.export.nir_targets import IMPORTERS, export_nir_for, layer_depths
from evprop.model.io import save_network
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, discretise
from evprop.pipeline.cli import EXIT_BAD_INPUT, main

INSTALL = "pip install -e '.[importers]' (torch from PyPI is ~6 GB, so make test leaves it out)"


def chain_network():
    """in -> h1 -> h2 (recurrent) -> out: two hidden layers, per-neuron taus, dt 0.5 ms, two thresholds."""
    rng = np.random.default_rng(5)
    layers = (InputLayer("in", 4), LIFLayer("h1", 6, rng.uniform(10, 30, 6), 5.0, threshold=1.5),
              LIFLayer("h2", 5, 20.0, rng.uniform(2, 8, 5)), LILayer("out", 2, rng.uniform(10, 30, 2), 4.0))
    conns = (Connection("in", "h1", rng.normal(1.2, 0.3, (4, 6))), Connection("h1", "h2", rng.normal(1.0, 0.3, (6, 5))),
             Connection("h2", "h2", rng.normal(0, 0.1, (5, 5))), Connection("h2", "out", rng.normal(0, 0.3, (5, 2))))
    return NetworkSpec(0.5, 80, layers, conns, "max")


CASES = {"recurrent": lambda: (make_network(n_hidden=8), make_data(n_samples=20, rate=0.2)),
         "chain": lambda: (chain_network(), make_data(n_samples=20, n_steps=80, n_in=4, rate=0.2))}


def evprop_run(spec, data):
    """The training engine's float forward pass: ({LIF layer: bool [B, T, n]}, output voltages [B, T, n_out])."""
    from evprop.train.compiled import CompiledNetwork
    from evprop.train.engine import forward
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=1000)
    return {l.name: fwd.spike_raster(net.layer_slices[l.name]) for l in spec.neuron_layers[:-1]}, fwd.v_out


def rasters(data):
    return np.stack([data.dense(i) for i in range(len(data.labels))])


# ---- numpy only ----


@pytest.mark.parametrize("target", sorted(IMPORTERS))
def test_euler_step_of_written_values_is_evprops_step(tmp_path, target):
    """Step NIR's CubaLIF by forward Euler at the importer's dt, current first, with the file's values, on random
    input for 200 steps: the voltage equals evprop's exact-exponential step to 1e-12 (per-neuron taus)."""
    import nir
    layer = LIFLayer("h", 4, [10.0, 20.0, 30.0, 40.0], [2.0, 5.0, 8.0, 3.0])
    spec = NetworkSpec(0.5, 10, (InputLayer("i", 3), layer), (Connection("i", "h", np.ones((3, 4))),), "first_spike")
    meta = export_nir_for(tmp_path / "n.nir", spec, target)
    graph = nir.read(str(tmp_path / "n.nir"))
    node, k = graph.nodes["h"], graph.nodes["i->h"].weight[:, 0]       # weights were ones: row = k per neuron
    dt = meta["importer_dt_s"]
    alpha, beta, g = discretise(layer.tau_mem_ms, layer.tau_syn_ms, spec.dt_ms)
    a = np.random.default_rng(0).normal(0, 1, (200, 4))             # summed weights arriving each step
    I_ev = V_ev = I = v = np.zeros(4)
    for t in range(200):
        J = I_ev + a[t]
        V_ev, I_ev = alpha * V_ev + g * J, beta * J
        I = I + dt / node.tau_syn * (-I + node.w_in * k * a[t])
        v = v + dt / node.tau_mem * (-v + node.r * I)
        np.testing.assert_allclose(v, V_ev, rtol=1e-12, atol=1e-12)
    if IMPORTERS[target].unit_gains:   # snnTorch asserts r == tau_mem/dt and reads w_in only as w_in dt/tau_syn
        np.testing.assert_allclose(node.r, node.tau_mem / dt, rtol=1e-12)
        np.testing.assert_allclose(node.w_in * dt / node.tau_syn, 1.0, rtol=1e-12)
    np.testing.assert_array_equal(node.v_threshold, 1.0)


def test_readout_becomes_cubalif_that_cannot_fire(tmp_path):
    import nir
    spec = make_network(n_hidden=8)
    for target in IMPORTERS:
        export_nir_for(tmp_path / f"{target}.nir", spec, target)
        graph = nir.read(str(tmp_path / f"{target}.nir"))
        assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Linear", "CubaLIF", "Output"}
        assert graph.nodes["output"].v_threshold.min() >= 1e30
        assert "dt_ms" not in graph.metadata      # evprop's run_nir/import_nir must not read it as a plain file


def test_layer_depths_and_refusals():
    assert layer_depths(chain_network(), "norse") == {"in": 0, "h1": 1, "h2": 2, "out": 3}
    skip = make_network(n_hidden=4)
    skip = NetworkSpec(skip.dt_ms, skip.n_steps, skip.layers,
                       skip.connections + (Connection("input", "output", np.ones((5, 3))),), skip.readout)
    with pytest.raises(ValueError, match="'input->output' skips or goes back between layers"):
        layer_depths(skip, "norse")
    back = chain_network()
    back = NetworkSpec(back.dt_ms, back.n_steps, back.layers,
                       back.connections + (Connection("h2", "h1", np.ones((5, 6))),), back.readout)
    with pytest.raises(ValueError, match="'h2->h1' skips or goes back"):
        layer_depths(back, "snntorch")
    li_rec = make_network(n_hidden=4)
    li_rec = NetworkSpec(li_rec.dt_ms, li_rec.n_steps, li_rec.layers,
                         li_rec.connections + (Connection("output", "output", np.ones((3, 3))),), li_rec.readout)
    with pytest.raises(ValueError, match="'output->output' is recurrent onto a non-spiking layer"):
        layer_depths(li_rec, "norse")


def _run_dir(tmp_path, spec):
    run = tmp_path / "run"
    run.mkdir()
    save_network(run / "finetuned.npz", spec)      # what `trained_network` deploys
    return run


def test_cli_export_for_writes_its_own_file(tmp_path, capsys):
    run = _run_dir(tmp_path, make_network(n_hidden=8))
    assert main(["export", str(run), "--for", "norse"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "model.norse.nir")
    assert sorted(p.name for p in run.iterdir()) == ["finetuned.npz", "model.norse.nir"]


@pytest.mark.parametrize("argv, fragment", [
    (["--for", "snntorch"], "connection 'input->hidden' has delays (up to"),
    (["--for", "norse", "--format", "onnx"], "--for norse: applies to --format nir only"),
])
def test_cli_export_for_refuses_in_one_line(tmp_path, capsys, argv, fragment):
    run = _run_dir(tmp_path, make_network(n_hidden=8, max_delay=3))
    assert main(["export", str(run)] + argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    assert sorted(p.name for p in run.iterdir()) == ["finetuned.npz"]


# ---- with the libraries installed ----


@pytest.fixture
def library(request):
    name = request.param
    pytest.importorskip(name, reason=f"{name} not installed: {INSTALL}")
    return name


@pytest.mark.parametrize("library", sorted(IMPORTERS), indirect=True)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("float64, atol", [(False, 1e-5), (True, 1e-12)])
def test_library_runs_export_as_trained(tmp_path, library, case, float64, atol):
    """The library's own importer and step: every hidden spike identical to evprop's training engine, the readout
    voltage within 1e-5 in the library's float32 (measured max 1e-6) and within 1e-12 with the library's
    parameters and state in float64 (the mapping is exact; what is left is rounding), in evprop's time frame."""
    from evprop.export.nir_targets import run_imported
    spec, data = CASES[case]()
    spikes_ev, v_ev = evprop_run(spec, data)
    export_nir_for(tmp_path / "m.nir", spec, library)
    spikes, v = run_imported(tmp_path / "m.nir", rasters(data), float64=float64)
    assert spikes.keys() == spikes_ev.keys()
    for name in spikes:
        assert spikes_ev[name].sum() > 300                         # the layers do fire
        np.testing.assert_array_equal(spikes[name], spikes_ev[name])
    np.testing.assert_allclose(v, v_ev, rtol=0, atol=atol)
    assert np.abs(v_ev).max() > 0.5


@pytest.mark.parametrize("library", ["snntorch"], indirect=True)
def test_snntorch_two_node_recurrence_sends_input_through_recurrent_weights(tmp_path, library, monkeypatch):
    """Why the snnTorch file relays recurrence through an identity Linear: snnTorch 1.0.0 wraps a LIF <-> Linear
    cycle into a subgraph whose input edge goes into the recurrent Linear, and nirtorch 2.6 runs it as
    LIF(W_rec (x + s)). With W_rec = 0 the hidden layer then never fires, though evprop's does."""
    import dataclasses
    from evprop.export import nir_targets
    spec = make_network(n_hidden=8)
    spec = spec.replace_connection(Connection("hidden", "hidden", np.zeros((8, 8))))
    data = make_data(n_samples=20, rate=0.2)
    spikes_ev, _ = evprop_run(spec, data)
    monkeypatch.setitem(nir_targets.IMPORTERS, "snntorch",
                        dataclasses.replace(nir_targets.SNNTORCH, relay_recurrence=False))
    export_nir_for(tmp_path / "m.nir", spec, "snntorch")
    spikes, _ = nir_targets.run_imported(tmp_path / "m.nir", rasters(data))
    assert spikes_ev["hidden"].sum() > 300 and spikes["hidden"].sum() == 0


@pytest.fixture
def default_export(tmp_path):
    """evprop's default export (recurrent CubaLIF hidden, CubaLI output)."""
    path = tmp_path / "net.nir"
    export_nir(path, make_network(n_hidden=8))
    return path


@pytest.mark.parametrize("library", ["snntorch"], indirect=True)
def test_snntorch_rejects_the_default_export(default_export, library):
    """The default export is not for snnTorch: CubaLI has no mapping, and r = 1 fails its r == tau_mem / 1e-4.
    (The importer rewrites the graph it is given in place, hence the second read.)"""
    import nir
    from snntorch.import_nir import import_from_nir
    with pytest.raises(ValueError, match="Unknown node type.*CubaLI"):
        import_from_nir(nir.read(str(default_export)))
    evprop_graph = nir.read(str(default_export))
    output = evprop_graph.nodes["output"]
    evprop_graph.nodes["output"] = nir.CubaLIF(tau_syn=output.tau_syn, tau_mem=output.tau_mem, r=output.tau_mem / 1e-4,
                                               v_leak=output.v_leak, w_in=output.tau_syn / 1e-4,
                                               v_threshold=np.full(3, 1e30), v_reset=np.zeros(3))
    with pytest.raises(AssertionError, match="r not supported in CubaLIF"):
        import_from_nir(evprop_graph)


@pytest.mark.parametrize("library", ["norse"], indirect=True)
def test_norse_silently_drops_cubali_of_the_default_export(default_export, library):
    """norse.torch.from_nir imports the default export without an error but creates no module for CubaLI: what
    the model returns each step is the Linear output of that step's hidden spikes, not a voltage."""
    import nir
    import norse.torch
    import torch
    evprop_graph = nir.read(str(default_export))
    model = norse.torch.from_nir(evprop_graph, dt=1e-3)
    names = dict(model.named_modules())
    assert "output" not in names and type(names["hidden"]).__name__ == "CubaLIF"
    spikes = []
    names["hidden"].register_forward_hook(lambda module, args, result: spikes.append(result[0].detach()))
    w_out = torch.as_tensor(evprop_graph.nodes["hidden->output"].weight, dtype=torch.float32)
    state, any_spike = None, False
    for _ in range(40):
        out, state = model(torch.full((1, 5), 1000.0), state)
        np.testing.assert_allclose(out.detach().numpy(), (spikes[-1] @ w_out.T).numpy(), atol=1e-6)
        any_spike |= bool(spikes[-1].any())
    assert any_spike


def test_metadata_names_target_and_latency(tmp_path):
    meta = export_nir_for(tmp_path / "c.nir", chain_network(), "snntorch")
    assert (meta["target"], meta["target_version"], meta["importer_dt_s"]) == ("snntorch", "1.0.0", 1e-4)
    assert json.loads(meta["layer_latency_steps"]) == {"h1": 1, "h2": 2, "out": 3}
