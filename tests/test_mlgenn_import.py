"""mlGeNN checkpoint arrays (Numpy serialiser layout) + TOML map -> NetworkSpec: a checkpoint laid out as mlGeNN writes
it, round trips and one-line errors."""

import numpy as np
import pytest

from conftest import MLGENN
from deploy_helpers import make_network
from evprop.export.mlgenn_import import MapError, array_file, export_mlgenn_arrays, import_mlgenn, map_toml_text
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import forward
from evprop.train.losses import get_loss
from evprop.train.reference import case_data, hidden_spike_lists, load_cases

KEYS = {"input->hidden": "Conn_Pop0_Pop1", "hidden->hidden": "Conn_Pop1_Pop1", "hidden->output": "Conn_Pop1_Pop2"}


def write_case(tmp_path, spec, prefix="e49"):
    export_mlgenn_arrays(spec, tmp_path / "ckpt", KEYS, prefix)
    (tmp_path / "map.toml").write_text(map_toml_text(spec, KEYS, prefix))
    return tmp_path / "ckpt", tmp_path / "map.toml"


@pytest.mark.parametrize("kwargs", [{}, {"max_delay": 7, "per_neuron_taus": True, "seed": 3}])
def test_round_trip(tmp_path, kwargs):
    spec = make_network(**kwargs)
    directory, map_path = write_case(tmp_path, spec)
    assert (directory / "e49-Conn_Pop0_Pop1-g.npy").is_file()
    assert (directory / "e49-Conn_Pop0_Pop1-d.npy").is_file() == bool(kwargs)
    assert import_mlgenn(directory, map_path) == spec


def test_flat_weights_are_accepted(tmp_path):
    spec = make_network()
    directory, map_path = write_case(tmp_path, spec, prefix="")
    path = array_file(directory, "", KEYS["hidden->output"], "g")
    np.save(path, np.load(path).ravel())                   # [pre][post] flattened, as GeNN holds it
    assert path.name == "Conn_Pop1_Pop2-g.npy"
    assert import_mlgenn(directory, map_path) == spec


def test_missing_npy_names_the_file(tmp_path):
    directory, map_path = write_case(tmp_path, make_network())
    (directory / "e49-Conn_Pop1_Pop1-g.npy").unlink()
    with pytest.raises(ValueError, match=r"e49-Conn_Pop1_Pop1-g.npy: missing \(weights of connection "
                                         r"'Conn_Pop1_Pop1'\)"):
        import_mlgenn(directory, map_path)


def test_wrong_shape_names_the_file_and_the_expected_shape(tmp_path):
    directory, map_path = write_case(tmp_path, make_network())
    np.save(directory / "e49-Conn_Pop0_Pop1-g.npy", np.zeros((30, 5)))
    with pytest.raises(ValueError, match=r"e49-Conn_Pop0_Pop1-g.npy: weight g has shape \(30, 5\), expected "
                                         r"\(5, 30\) = \(pre, post\) or \(150,\)"):
        import_mlgenn(directory, map_path)


def test_unknown_key_in_the_map(tmp_path):
    directory, map_path = write_case(tmp_path, make_network())
    text = map_path.read_text().replace('kind = "lif"', 'kind = "lif"\ntau_ref_ms = 2.0')
    map_path.write_text(text)
    with pytest.raises(MapError, match=r"map.toml: unknown key 'tau_ref_ms' in \[\[layers\]\] #1 \('hidden'\)"):
        import_mlgenn(directory, map_path)
    map_path.write_text("dt = 1.0\n")
    with pytest.raises(MapError, match="unknown key 'dt' in the top level"):
        import_mlgenn(directory, map_path)


def test_other_map_errors(tmp_path):
    directory, map_path = write_case(tmp_path, make_network())
    good = map_path.read_text()
    map_path.write_text(good.replace('target = "output"', 'target = "readout"'))
    with pytest.raises(MapError, match="target 'readout' is not a layer"):
        import_mlgenn(directory, map_path)
    map_path.write_text(good.replace("n_steps = 60\n", ""))
    with pytest.raises(MapError, match="the top level lacks key 'n_steps'"):
        import_mlgenn(directory, map_path)
    with pytest.raises(MapError, match="nothing.toml: map file not found"):
        import_mlgenn(directory, tmp_path / "nothing.toml")


def test_a_checkpoint_in_mlgenn_layout_gives_mlgenn_hidden_spikes():
    """tests/data/mlgenn/checkpoint/ holds network B of tiny_cases.json as mlGeNN's Checkpoint callback and Numpy
    serialiser write it (tests/data/mlgenn/make_checkpoint.py: <epoch>-Conn_PopA_PopB-g.npy, flat float32
    [pre][post]; -d.npy for learned delays), not as export_mlgenn_arrays does. Imported with a hand-written map, the
    network reproduces the hidden spike times mlGeNN recorded for that case and its readouts to 1.2e-6."""
    directory = MLGENN / "checkpoint"
    spec = import_mlgenn(directory, directory / "map.toml")
    assert np.load(directory / "49-Conn_Pop0_Pop1-g.npy").shape == (20,)           # the flat layout GeNN holds
    cases = load_cases(MLGENN / "tiny_cases.json")
    params, case = cases["_meta"]["params"], cases["B_rec_delay"]
    assert spec.connection("input->hidden").weight[2, 3] == np.float32(case["network"]["W_ih"][2][3])
    assert np.array_equal(spec.connection("hidden->hidden").delay, case["network"]["D_hh"])
    assert spec.connection("hidden->output").max_delay_steps == 0
    data = case_data(params, case, spec.input.size)
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=100, mlgenn_last_step=True)
    hidden = net.layer_slices["hidden"]
    spikes = hidden_spike_lists(fwd, hidden.start, hidden.stop - hidden.start, spec.dt_ms)
    for b, example in enumerate(("example0", "example1")):
        reference = case["forward"][example]
        assert spikes[b] == sorted((float(t), int(n)) for t, n in reference["hidden_spikes_(time_ms,neuron)"])
        assert len(spikes[b]) >= 8
    _, scores, _ = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    readout = np.array([case["forward"][e]["VAvg_readout"] for e in ("example0", "example1")])
    assert np.max(np.abs(scores - readout) / np.abs(readout)) < 1.2e-6
