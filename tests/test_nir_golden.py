"""A stored NIR file and its expected spikes (tests/data/golden.nir, golden_expected.npz, note in golden_nir.md; made by
tests/data/make_golden_nir.py from literal numbers): a change that the NIR writer and reader make together, or one
in how the file is run, fails here instead of passing every write-then-read round trip."""

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

from evprop.export.nir import export_nir, import_nir
from evprop.export.nir_interpreter import run_nir
from evprop.fixed_point.emulator import emulate
from evprop.fixed_point.quantise import quantise
from evprop.hw_sim.lava_sim import run_lava

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden.nir"


def _maker():
    spec = importlib.util.spec_from_file_location("make_golden_nir", DATA / "make_golden_nir.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "golden_expected.npz") as f:
        return {k: f[k] for k in f.files}


def _datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, item: out.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
    return out


def test_reader_gives_the_network_the_file_was_made_from():
    spec = MAKER.golden_network()
    spec_back, fixed_back = import_nir(GOLDEN)
    assert spec_back == spec
    assert fixed_back == quantise(spec)[0]


def test_writer_still_writes_the_stored_file(tmp_path):
    spec = MAKER.golden_network()
    export_nir(tmp_path / "now.nir", spec, quantise(spec)[0])
    now, stored = _datasets(tmp_path / "now.nir"), _datasets(GOLDEN)
    assert sorted(now) == sorted(stored)
    for key, value in stored.items():
        assert np.array_equal(np.asarray(now[key]), np.asarray(value)), key


def test_standard_fields_run_to_the_stored_float_spikes(expected):
    """A NIR interpreter reading only the standard fields reproduces the float engine's stored results."""
    spikes, volts = run_nir(GOLDEN, MAKER.golden_inputs())
    assert expected["float_hidden_spikes"].sum() == 30
    np.testing.assert_array_equal(spikes["hidden"], expected["float_hidden_spikes"])
    np.testing.assert_allclose(volts["output"], expected["float_v_out"], rtol=0, atol=1e-9)


def test_fixed_point_from_the_file_emulates_to_the_stored_integers(expected):
    _, fixed = import_nir(GOLDEN)
    result = emulate(fixed, MAKER.golden_inputs())
    np.testing.assert_array_equal(result.hidden_spikes["hidden"], expected["fixed_hidden_spikes"])
    np.testing.assert_array_equal(result.v_out, expected["fixed_v_out"])


@pytest.mark.slow
@pytest.mark.usefixtures("lava")
def test_lava_runs_the_file_to_the_stored_integers(expected):
    lava = run_lava(GOLDEN, MAKER.golden_inputs(), timeout_s=240.0)
    np.testing.assert_array_equal(lava.hidden_spikes["hidden"], expected["fixed_hidden_spikes"])
    np.testing.assert_array_equal(lava.v_out, expected["fixed_v_out"])
