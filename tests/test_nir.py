"""NIR export/import: exact round trips over layer kinds, recurrence, delays and fixed point; units; bad files."""

import json

import h5py
import nir
import numpy as np
import pytest

from deploy_helpers import make_data, make_network, quantise_calibrated, two_hidden_with_skip
from evprop.export.nir import FORMAT, export_nir, import_nir, ms_to_s, s_to_ms
from evprop.fixed_point.quantise import quantise
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec


NETWORKS = {
    "feedforward": lambda: make_network(recurrent=False),
    "recurrent": lambda: make_network(),
    "recurrent_delays": lambda: make_network(max_delay=4),
    "per_neuron_taus": lambda: make_network(per_neuron_taus=True, readout="last"),
    "two_hidden_skip_delays": two_hidden_with_skip,
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("with_fixed_point", [False, True])
def test_round_trip_is_exact(tmp_path, name, with_fixed_point):
    spec = NETWORKS[name]()
    fp = quantise(spec)[0] if with_fixed_point else None
    export_nir(tmp_path / "net.nir", spec, fp)
    spec_back, fp_back = import_nir(tmp_path / "net.nir")
    assert spec_back == spec
    assert fp_back == fp


def test_graph_structure_units_and_metadata(tmp_path):
    spec = make_network(max_delay=3)
    fp, _ = quantise_calibrated(spec, make_data())
    export_nir(tmp_path / "net.nir", spec, fp)
    graph = nir.read(tmp_path / "net.nir")
    hidden, out = graph.nodes["hidden"], graph.nodes["output"]
    assert isinstance(hidden, nir.CubaLIF) and isinstance(out, nir.CubaLI)
    assert isinstance(graph.nodes["input"], nir.Input) and isinstance(graph.nodes["output.readout"], nir.Output)
    np.testing.assert_allclose(hidden.tau_syn, 0.005)                # seconds
    np.testing.assert_allclose(hidden.tau_mem, 0.020)
    np.testing.assert_allclose(hidden.w_in, hidden.tau_syn)        # I jumps by w per Dirac spike
    assert np.all(hidden.r == 1) and np.all(hidden.v_leak == 0) and np.all(hidden.v_threshold == 1.0)
    # one Linear (out, in) per used delay, then a Delay of d * dt seconds
    conn = spec.connection("input->hidden")
    used = conn.delay_steps()
    branches = sorted(k for k in graph.nodes if k.startswith("input->hidden.d") and not k.endswith(".delay"))
    assert branches == [f"input->hidden.d{d}" for d in np.unique(used)]
    total = sum(graph.nodes[k].weight for k in branches)
    np.testing.assert_array_equal(total, conn.weight.T)
    d = int(np.unique(used)[-1])
    np.testing.assert_allclose(graph.nodes[f"input->hidden.d{d}.delay"].delay, d * 1e-3)
    assert ("input->hidden.d0", "hidden") in graph.edges and ("hidden", "hidden->hidden.d0") in graph.edges
    meta = graph.metadata
    assert meta["format"] == FORMAT and meta["dt_ms"] == 1.0 and meta["dt_s"] == 0.001
    assert meta["time_unit"] == "s" and "s+1+d" in meta["discretisation"] and json.loads(meta["network"])["readout"] == "sum_exp"
    np.testing.assert_array_equal(hidden.metadata["du"], fp.layer("hidden").du)
    assert int(hidden.metadata["vth"]) == fp.layer("hidden").vth
    assert graph.nodes["hidden->output"].metadata["weight_mant"].shape == (3, 30)


def test_time_conversion_is_ms_to_seconds():
    assert ms_to_s(20.0) == 0.02 and s_to_ms(0.005) == 5.0
    np.testing.assert_allclose(s_to_ms(ms_to_s([1.0, 2.5, 37.3])), [1.0, 2.5, 37.3], rtol=1e-15)


def write_foreign(path):
    graph = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([2])),
                                "l": nir.Linear(weight=np.ones((2, 2))),
                                "o": nir.Output(output_type=np.array([2]))},
                         edges=[("i", "l"), ("l", "o")])
    nir.write(str(path), graph)


def write_edited(path):
    spec = make_network()
    export_nir(path, spec)
    with h5py.File(path, "r+") as f:
        f["node/nodes/hidden/tau_mem"][...] = 0.5


@pytest.mark.parametrize("make_file, expected", [
    (None, "not found"),
    (lambda p: p.write_text("hello"), "not a readable NIR graph"),
    (lambda p: h5py.File(p, "w").close(), "not a readable NIR graph"),
    (write_foreign, "expected 'evprop-nir'"),
    (write_edited, "disagrees with its metadata"),
])
def test_bad_files_give_one_line_value_errors(tmp_path, make_file, expected):
    path = tmp_path / "bad.nir"
    if make_file is not None:
        make_file(path)
    with pytest.raises(ValueError, match=expected) as err:
        import_nir(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_layer_names_that_collide_with_node_names_are_refused(tmp_path):
    layers = (InputLayer("in", 2), LIFLayer("out.readout", 2, 20.0, 5.0), LILayer("out", 2, 20.0, 5.0))
    conns = (Connection("in", "out.readout", np.ones((2, 2))), Connection("out.readout", "out", np.ones((2, 2))))
    with pytest.raises(ValueError, match="collide"):
        export_nir(tmp_path / "x.nir", NetworkSpec(1.0, 10, layers, conns))
