"""What third-party NIR importers do with an evprop export (docs/nir_importers.md). Each test runs only where the
library is importable (none is a dependency of evprop; in the project's 3.10 deploy venv they all skip).

The expected behaviour is what /work/shared/notes/lava-nir-deps.md section 4 measured (snntorch 1.0.0, norse 1.1.0,
nir 1.0.8, Python 3.11): if a newer release changes it, these tests fail and the doc needs updating."""

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


def test_snntorch_rejects_evprop_export(evprop_graph):
    """snntorch.import_from_nir: CubaLIF needs r == tau_mem/dt (its dt = 1e-4 s is hard-coded), so evprop's
    r = 1 fails an assertion, and CubaLI has no mapping (ValueError 'Unknown node type')."""
    snntorch = pytest.importorskip("snntorch")
    with pytest.raises((AssertionError, ValueError), match=r"r not supported|Unknown node type"):
        snntorch.import_from_nir(evprop_graph)


def test_snntorch_accepts_the_documented_workaround(evprop_graph):
    """The doc's recipe: CubaLI -> CubaLIF with an unreachable threshold, r = tau_mem / 1e-4, v_leak = 0.
    Only that it imports is asserted: snntorch's dynamics (alpha = 1 - dt/tau at dt = 1e-4) are not evprop's."""
    snntorch = pytest.importorskip("snntorch")
    import nir
    nodes = dict(evprop_graph.nodes)
    for name, node in nodes.items():
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            n = len(node.tau_mem)
            nodes[name] = nir.CubaLIF(tau_syn=node.tau_syn, tau_mem=node.tau_mem, r=node.tau_mem / 1e-4,
                                      v_leak=np.zeros(n), w_in=node.tau_syn / 1e-4,
                                      v_threshold=np.full(n, 1.0 if isinstance(node, nir.CubaLIF) else 1e9),
                                      v_reset=np.zeros(n))
    graph = nir.NIRGraph(nodes=nodes, edges=list(evprop_graph.edges), metadata=dict(evprop_graph.metadata))
    assert snntorch.import_from_nir(graph) is not None


def test_norse_silently_drops_cubali(evprop_graph):
    """norse.torch.from_nir imports without an error, but the CubaLI output becomes no module at all: only the
    CubaLIF hidden layer is a norse neuron module (the output is the raw Linear output)."""
    norse_torch = pytest.importorskip("norse.torch")
    model = norse_torch.from_nir(evprop_graph, dt=1e-3)
    neuron_modules = [m for m in model.modules() if type(m).__module__.startswith("norse.")]
    assert len(neuron_modules) == 1, [type(m).__name__ for m in neuron_modules]
