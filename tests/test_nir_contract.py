"""The NIR file is the contract (issue 13): the network is what its standard fields say. evprop's private metadata
may only state their exact quantisation; every disagreement, unknown node or unused edge is refused with one line
naming the node and the field, by `import_nir` and so by the Lava builder, before Lava starts."""

import shutil

import h5py
import nir
import numpy as np
import pytest

from deploy_helpers import add_recurrent_path, make_data, make_network, zero_standard_weights
from evprop.export.nir import check_export, export_nir, import_nir
from evprop.fixed_point.quantise import quantise
from evprop.hw_sim.lava_sim import run_lava


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A recurrent network with delays up to 3 steps and its fixed point, exported once."""
    spec = make_network(max_delay=3, n_hidden=8)
    fp, _ = quantise(spec)
    path = tmp_path_factory.mktemp("nir") / "net.nir"
    export_nir(path, spec, fp)
    return path, spec, fp


def edited(exported, tmp_path, edit):
    path = tmp_path / "edited.nir"
    shutil.copy(exported[0], path)
    edit(path)
    return path


def h5(key, change):
    """Edit dataset `key` (below node/) in place: value <- change(value)."""
    def edit(path):
        with h5py.File(path, "r+") as f:
            data = f[f"node/{key}"]
            value = change(data[()])
            if np.shape(value) == data.shape:
                data[...] = value
            else:
                del f[f"node/{key}"]
                f[f"node/{key}"] = value
    return edit


def both(*edits):
    def edit(path):
        for e in edits:
            e(path)
    return edit


def graph_edit(change):
    """Edit the graph with nir: change(nodes dict, edges list, metadata dict)."""
    def edit(path):
        graph = nir.read(str(path))
        nodes, edges, meta = dict(graph.nodes), list(graph.edges), dict(graph.metadata)
        change(nodes, edges, meta)
        nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta))
    return edit


def one_more(value):
    value = np.array(value)
    value.reshape(-1)[0] *= 3.0
    return value


def set_first(new):
    def change(value):
        value = np.array(value)
        value.reshape(-1)[0] = new
        return value
    return change


# (edit, node named, field named, words of the reason)
EDITS = {
    # the two files that passed `evprop verify` bit-exact before
    "standard weights zeroed": (zero_standard_weights, "input->hidden.d0", "weight", "weight_mant"),
    "x50 recurrent path (copied branch)": (lambda p: add_recurrent_path(p, how="copy"), "hidden.x50", "weight",
                                           "already has a weight on branch"),
    "x50 recurrent path (bare Linear)": (lambda p: add_recurrent_path(p, how="plain"), "hidden.x50", "connection",
                                         "metadata names connection None"),
    "x50 recurrent path (Scale node)": (lambda p: add_recurrent_path(p, how="scale"), "hidden.x50", None,
                                        "unknown node"),
    # neuron fields against the ms metadata and the model
    "tau_mem": (h5("nodes/hidden/tau_mem", lambda v: v * 1.5), "hidden", "tau_mem", "tau_mem_ms"),
    "tau_syn": (h5("nodes/output/tau_syn", lambda v: v * 1.5), "output", "tau_syn", "tau_syn_ms"),
    "r": (h5("nodes/hidden/r", lambda v: v * 2), "hidden", "r", "r = 1"),
    "v_leak": (h5("nodes/output/v_leak", lambda v: v + 0.1), "output", "v_leak", "v_leak = 0"),
    "w_in": (h5("nodes/hidden/w_in", lambda v: v * 2), "hidden", "w_in", "w_in = tau_syn"),
    "v_reset": (h5("nodes/hidden/v_reset", lambda v: v - 0.5), "hidden", "v_reset", "v_reset = 0"),
    "one v_threshold": (h5("nodes/hidden/v_threshold", set_first(2.0)), "hidden", "v_threshold",
                        "one threshold per layer"),
    # standard fields edited consistently with their float metadata: the integers no longer follow from them
    "all v_threshold": (h5("nodes/hidden/v_threshold", lambda v: v * 1.5), "hidden", "v_threshold", "'vth'"),
    "tau_mem with its ms": (both(h5("nodes/hidden/tau_mem", lambda v: v * 2),
                                 h5("nodes/hidden/metadata/tau_mem_ms", lambda v: v * 2)), "hidden", "tau_mem",
                            "'dv'"),
    "one standard weight": (h5("nodes/hidden->output/weight", one_more), "hidden->output", "weight",
                            "weight_mant"),
    # metadata integers edited
    "du": (h5("nodes/hidden/metadata/du", lambda v: v + 1), "hidden", "tau_syn", "'du'"),
    "vth": (h5("nodes/hidden/metadata/vth", lambda v: v + 1), "hidden", "v_threshold", "'vth'"),
    "kind": (h5("nodes/output/metadata/kind", lambda v: "lif"), "output", "type", "'kind'"),
    "weight_mant": (h5("nodes/hidden->output/metadata/weight_mant", lambda v: v + 2), "hidden->output", "weight",
                    "weight_mant"),
    "sign_mode": (h5("nodes/hidden->output/metadata/sign_mode", lambda v: "excitatory"), "hidden->output",
                  "weight", "sign_mode"),
    "weight_exp of one branch": (h5("nodes/input->hidden.d1/metadata/weight_exp", lambda v: v - 1),
                                 "input->hidden.d0", "weight_exp", "disagree"),
    "weight_exp of the only branch": (h5("nodes/hidden->output/metadata/weight_exp", lambda v: v - 1),
                                      "hidden->output", "weight", "weight_mant"),
    # delays
    "Delay value": (h5("nodes/input->hidden.d2.delay/delay", lambda v: v * 1.25), "input->hidden.d2.delay", "delay",
                    "whole number"),
    "Delay of another branch": (h5("nodes/input->hidden.d2.delay/delay", lambda v: v / 2), "input->hidden.d2",
                                "delay", "delays by 1 steps"),
    "float delay of a weighted synapse": (h5("nodes/input->hidden.d0/metadata/delay_float",
                                             lambda v: np.where(v != 0, v + 1.0, v)),
                                          "input->hidden.d0", "delay", "round to"),
    # structure
    "unknown node": (graph_edit(lambda n, e, m: n.update(extra=nir.Scale(scale=np.ones(3)))), "extra", None,
                     "unknown node"),
    "unused edge": (graph_edit(lambda n, e, m: e.append(("hidden", "hidden"))), None, None,
                    "('hidden', 'hidden') is not used"),
    "edge twice": (h5("edges", lambda v: np.concatenate([v, v[:1]])), None, None, "Duplicate edge"),
    "missing edge": (graph_edit(lambda n, e, m: e.remove(("hidden->output", "output"))), None, None,
                     "no Linear node for connection 'hidden->output'"),
    "fixed-point flag off": (h5("metadata/fixed_point", lambda v: False), "hidden", "metadata",
                             "fixed-point integers present"),
    "dt disagrees": (h5("metadata/dt_s", lambda v: v * 2), None, None, "disagree"),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_disagreement_is_one_line_naming_node_and_field(exported, tmp_path, name):
    edit, node, field, reason = EDITS[name]
    path = edited(exported, tmp_path, edit)
    with pytest.raises(ValueError) as err:
        import_nir(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert reason in message, message
    if node is not None:
        assert f"node '{node}'" in message, message
    if field is not None:
        assert f"field '{field}'" in message, message


def test_the_unedited_file_reads_back_exactly(exported):
    path, spec, fp = exported
    assert import_nir(path) == (spec, fp)
    check_export(path, spec, fp)


@pytest.mark.parametrize("edit", [zero_standard_weights, lambda p: add_recurrent_path(p, how="copy")])
def test_lava_refuses_the_two_edited_files_before_it_starts(exported, tmp_path, edit):
    path = edited(exported, tmp_path, edit)
    with pytest.raises(ValueError, match="field 'weight'"):
        run_lava(path, make_data(n_samples=1, n_in=5), timeout_s=60)


def test_a_consistent_file_of_another_network_fails_the_export_check(exported, tmp_path):
    """`evprop verify` checks model.nir against the network and fixed_point.npz it was exported from."""
    path, spec, fp = exported
    other = spec.with_weights({"hidden->output": spec.connection("hidden->output").weight * 1.5})
    export_nir(tmp_path / "other.nir", other, quantise(other)[0])
    with pytest.raises(ValueError, match=r"other.nir: Connection 'hidden->output' field 'weight' differs from "
                                         r"the trained network"):
        check_export(tmp_path / "other.nir", spec, fp)
    with pytest.raises(ValueError, match=r"Fixed\w+ '[^']+' field '\w+' differs from fixed_point.npz"):
        check_export(tmp_path / "other.nir", other, fp)


def test_export_refuses_integers_that_are_not_the_quantisation_of_the_floats(exported, tmp_path):
    path, spec, fp = exported
    other = spec.with_weights({"input->hidden": spec.connection("input->hidden").weight * 2})
    with pytest.raises(ValueError, match="not the quantisation of spec at its own scales.*'input->hidden' "
                                         "field 'weight'"):
        export_nir(tmp_path / "x.nir", other, fp)
    assert not (tmp_path / "x.nir").exists()
