"""What third-party NIR importers do with an evprop export (docs/nir_importers.md). Each test runs only where the
library is importable: `pip install -e '.[importers]'` (snntorch 1.0.0, norse 1.1.0 and torch from PyPI, ~6 GB with
its CUDA libraries, so `make test` does not install them and they skip there). Last run with them: Python 3.10,
torch 2.14.1, nir 1.0.8, all passed. If a newer release changes the behaviour these tests fail and
docs/nir_importers.md needs updating."""

import numpy as np
import pytest

from deploy_helpers import make_network
from evprop.export.nir import export_nir


@pytest.fixture
def evprop_graph(tmp_path):
    """An evprop export without delays (recurrent CubaLIF hidden, CubaLI output) read back with nir."""
    import nir
    path = tmp_path / "net.nir"
    export_nir(path, make_network(n_hidden=8))
    return nir.read(str(path))


SNNTORCH_DT = 1e-4      # seconds, hard-coded in snntorch.import_nir


def _cubalif_for_snntorch(node, threshold):
    """The doc's recipe for one neuron node: snntorch's CubaLIF at its hard-coded dt = 1e-4 s needs
    r = tau_mem / dt, w_in = tau_syn / dt (one weight per spike) and v_leak = 0."""
    import nir
    n = len(node.tau_mem)
    return nir.CubaLIF(tau_syn=node.tau_syn, tau_mem=node.tau_mem, r=node.tau_mem / SNNTORCH_DT,
                       v_leak=np.zeros(n), w_in=node.tau_syn / SNNTORCH_DT, v_threshold=np.full(n, threshold),
                       v_reset=np.zeros(n))


def _with_nodes(graph, **replacements):
    import nir
    return nir.NIRGraph(nodes={**graph.nodes, **replacements}, edges=list(graph.edges),
                        metadata=dict(graph.metadata))


def test_snntorch_rejects_evprop_export(evprop_graph):
    """snntorch.import_nir.import_from_nir has no mapping for CubaLI."""
    import_nir = pytest.importorskip("snntorch.import_nir")
    with pytest.raises(ValueError, match="Unknown node type.*CubaLI"):
        import_nir.import_from_nir(evprop_graph)


def test_snntorch_needs_r_equal_tau_mem_over_its_dt(evprop_graph):
    """With the readout rewritten, evprop's hidden CubaLIF (r = 1) still fails snntorch's r == tau_mem / 1e-4."""
    import_nir = pytest.importorskip("snntorch.import_nir")
    graph = _with_nodes(evprop_graph, output=_cubalif_for_snntorch(evprop_graph.nodes["output"], 1e9))
    with pytest.raises(AssertionError, match="r not supported in CubaLIF"):
        import_nir.import_from_nir(graph)


def test_snntorch_accepts_the_documented_workaround(evprop_graph):
    """The doc's recipe (every neuron node rewritten, CubaLI -> CubaLIF with an unreachable threshold) imports.
    What it runs: snntorch Synaptic neurons with forward-Euler decays at dt = 1e-4 s, alpha = 1 - dt/tau_syn,
    beta = 1 - dt/tau_mem (not evprop's exp(-dt/tau) at the file's dt), state kept inside the modules between
    calls, the readout voltage in `model.output.mem`."""
    import_nir = pytest.importorskip("snntorch.import_nir")
    import torch
    hidden, output = evprop_graph.nodes["hidden"], evprop_graph.nodes["output"]
    model = import_nir.import_from_nir(_with_nodes(evprop_graph, hidden=_cubalif_for_snntorch(hidden, 1.0),
                                                   output=_cubalif_for_snntorch(output, 1e9)))
    neurons = {name: type(m).__name__ for name, m in model.named_modules() if type(m).__module__.startswith("snntorch")}
    assert neurons == {"hidden.hidden": "Synaptic", "output": "Synaptic"}
    np.testing.assert_allclose(float(model.output.alpha), 1 - SNNTORCH_DT / output.tau_syn[0], rtol=1e-6)
    np.testing.assert_allclose(float(model.output.beta), 1 - SNNTORCH_DT / output.tau_mem[0], rtol=1e-6)
    n_in = int(evprop_graph.nodes["input"].input_type["input"][0])
    state, voltages = None, []
    for _ in range(3):
        _, state = model(torch.ones(1, n_in), state)
        voltages.append(model.output.mem.detach().numpy().copy())
    assert not np.allclose(voltages[2], voltages[1])        # the readout integrates across calls


def test_norse_silently_drops_cubali(evprop_graph):
    """norse.torch.from_nir imports without an error, but the CubaLI readout becomes no module at all: what the
    model returns each step is the raw Linear output of that step's hidden spikes, not a voltage."""
    norse_torch = pytest.importorskip("norse.torch")
    import torch
    model = norse_torch.from_nir(evprop_graph, dt=1e-3)
    names = dict(model.named_modules())
    assert "output" not in names and type(names["hidden"]).__name__ == "CubaLIF"
    spikes = []
    names["hidden"].register_forward_hook(lambda module, args, result: spikes.append(result[0].detach()))
    w_out = torch.as_tensor(evprop_graph.nodes["hidden->output"].weight, dtype=torch.float32)
    n_in = int(evprop_graph.nodes["input"].input_type["input"][0])
    state, any_spike = None, False
    for _ in range(40):
        out, state = model(torch.full((1, n_in), 1000.0), state)
        np.testing.assert_allclose(out.detach().numpy(), (spikes[-1] @ w_out.T).numpy(), atol=1e-6)
        any_spike |= bool(spikes[-1].any())
    assert any_spike
