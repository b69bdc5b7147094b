"""A corpus of bad inputs (configs, data files, checkpoints, fixed-point and NIR files): each gives one line
`evprop: error: ...` naming the problem and exit code 2, and leaves nothing half-written in the run directory."""

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from deploy_helpers import add_recurrent_path, zero_standard_weights
from evprop.data.hsd import synthetic_samples, write_hsd_file
from evprop.export.nir import export_nir, import_nir
from evprop.fixed_point.quantise import quantise
from evprop.pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.toml"
SMALL = ["--set", "data.train_size=60", "--set", "data.validation_size=20", "--set", "data.test_size=20",
         "--set", "train.epochs=1", "--set", "network.hidden=10", "--set", "verify.lava_samples=2"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A trained, quantised and exported run (no Lava needed: the cases fail before Lava would run)."""
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["--quiet", "train", str(DEFAULT), "--out", str(run), *SMALL]) == 0
    assert main(["--quiet", "quantise", str(run)]) == 0
    assert main(["--quiet", "export", str(run)]) == 0
    return run


def _config(tmp, text):
    path = tmp / "bad.toml"
    path.write_text(text)
    return ["train", str(path), "--out", str(tmp / "out")]


def _shd_root(tmp, mutate):
    """An SHD folder whose training file `mutate(path)` spoiled; returns train args with the shd config."""
    folder = tmp / "data" / "SHD"
    folder.mkdir(parents=True)
    samples, labels, speakers = synthetic_samples(8, 4, duration_ms=100.0, rate_hz=10)
    for split in ("train", "test"):
        write_hsd_file(folder / f"shd_{split}.h5", samples, labels, speakers, [f"k{i}" for i in range(4)])
    mutate(folder / "shd_train.h5")
    return ["train", str(ROOT / "configs" / "shd.toml"), "--out", str(tmp / "out"), "--set",
            f"data.root='{tmp / 'data'}'", "--set", "network.duration_ms=100.0", "--set", "network.hidden=8"]


def _rewrite(key, value):
    def mutate(path):
        with h5py.File(path, "r+") as f:
            del f[key]
            f.create_dataset(key, data=value)
    return mutate


def _edit_first(key, value):
    """Set the first event of sample 0 of a vlen dataset to `value`, keeping every length."""
    def mutate(path):
        with h5py.File(path, "r+") as f:
            rows = [np.array(row) for row in f[key][:]]
            rows[0][0] = value
            dtype = rows[0].dtype
            del f[key]
            f.create_dataset(key, data=_vlen(rows, dtype), dtype=h5py.vlen_dtype(dtype))
    return mutate


def _delete(key):
    def mutate(path):
        with h5py.File(path, "r+") as f:
            del f[key]
    return mutate


def _vlen(values, dtype):
    data = np.empty(len(values), dtype=object)
    data[:] = [np.asarray(v, dtype=dtype) for v in values]
    return data


def _export_other_network(run):
    """model.nir of the run's network with its output weights x1.5, quantised: a file consistent in itself."""
    spec, _ = import_nir(run / "model.nir")
    other = spec.with_weights({"hidden->output": spec.connection("hidden->output").weight * 1.5})
    export_nir(run / "model.nir", other, quantise(other)[0])


def _run_copy(good_run, tmp, spoil):
    run = tmp / "run"
    shutil.copytree(good_run, run)
    spoil(run)
    return run


CASES = {
    # configs
    "unknown key": (lambda t, g: _config(t, "[train]\nepochz = 1\n"), "unknown key 'train.epochz'"),
    "wrong type": (lambda t, g: _config(t, "[network]\nhidden = 'many'\n"), "key 'network.hidden'"),
    "negative tau": (lambda t, g: _config(t, "[network]\ntau_syn_ms = -5.0\n"), "network.tau_syn_ms"),
    "batch of 0": (lambda t, g: _config(t, "[train]\nbatch_size = 0\n"), "train.batch_size"),
    "delay above maximum": (lambda t, g: _config(t, "[network]\nff_delay_init_ms = 30.0\nmax_delay_ms = 10.0\n"),
                            "network.max_delay_ms"),
    "not TOML": (lambda t, g: _config(t, "[train\nepochs = 3"), "not valid TOML"),
    "missing config": (lambda t, g: ["train", str(t / "absent.toml")], "absent.toml: config file not found"),
    "unknown dataset": (lambda t, g: _config(t, "[data]\ndataset = 'mnist'\n"), "key 'data.dataset'"),
    "bad override": (lambda t, g: ["train", str(DEFAULT), "--set", "train.epochs=-1"], "key 'train.epochs'"),
    "step grid": (lambda t, g: _config(t, "[network]\ndt_ms = 0.3\n"), "whole number of steps"),
    # data files
    "corrupt HDF5": (lambda t, g: _shd_root(t, lambda p: p.write_bytes(b"\x89HDF garbage")), "shd_train.h5"),
    "truncated HDF5": (lambda t, g: _shd_root(t, lambda p: p.write_bytes(p.read_bytes()[:3000])), "shd_train.h5"),
    "missing key": (lambda t, g: _shd_root(t, _delete("labels")), "missing dataset 'labels'"),
    "label out of range": (lambda t, g: _shd_root(t, _rewrite("labels", np.array([0, 1, 2, 9, 0, 1, 2, 3],
                                                                                  np.uint16))), "label 9"),
    "NaN spike time": (lambda t, g: _shd_root(t, _edit_first("spikes/times", np.nan)), "non-finite spike time"),
    "negative spike time": (lambda t, g: _shd_root(t, _edit_first("spikes/times", -0.01)), "negative spike time"),
    "channel beyond count": (lambda t, g: _shd_root(t, _edit_first("spikes/units", 900)), "unit 900"),
    "missing data file": (lambda t, g: _shd_root(t, lambda p: p.unlink()), "shd_train.h5: file not found"),
    # checkpoints, fixed-point files, NIR files
    "checkpoint garbage": (lambda t, g: ["quantise", str(_run_copy(g, t, lambda r: (r / "checkpoint.npz")
                                                                      .write_bytes(b"garbage")))],
                           "not a readable checkpoint"),
    "checkpoint foreign npz": (lambda t, g: ["quantise", str(_run_copy(g, t, lambda r: np.savez(
        r / "checkpoint.npz", x=np.zeros(3))))], "not an evprop checkpoint"),
    "checkpoint truncated": (lambda t, g: ["quantise", str(_run_copy(g, t, lambda r: (r / "checkpoint.npz")
                                                                      .write_bytes((r / "checkpoint.npz")
                                                                                   .read_bytes()[:500])))],
                             "checkpoint.npz"),
    "not a run directory": (lambda t, g: ["quantise", str(t)], "not an evprop run directory"),
    "fixed point garbage": (lambda t, g: ["export", str(_run_copy(g, t, lambda r: (r / "fixed_point.npz")
                                                                   .write_bytes(b"garbage")))], "fixed_point.npz"),
    "NIR garbage": (lambda t, g: ["verify", str(_run_copy(g, t, lambda r: (r / "model.nir")
                                                           .write_bytes(b"garbage")))], "model.nir"),
    "NIR missing": (lambda t, g: ["verify", str(_run_copy(g, t, lambda r: (r / "model.nir").unlink()))],
                    "model.nir"),
    "verify zero samples": (lambda t, g: ["verify", str(g), "--samples", "0"], "--samples 0"),
    # edited model.nir files that once passed verify bit-exact (issue 13), and a consistent file of another network
    "NIR standard weights zeroed": (lambda t, g: ["verify", str(_run_copy(g, t, lambda r: zero_standard_weights(
        r / "model.nir")))], "node 'input->hidden' field 'weight'"),
    "NIR x50 recurrent path": (lambda t, g: ["verify", str(_run_copy(g, t, lambda r: add_recurrent_path(
        r / "model.nir")))], "node 'hidden.x50' field 'weight'"),
    "NIR of another network": (lambda t, g: ["verify", str(_run_copy(g, t, _export_other_network))],
                               "Connection 'hidden->output' field 'weight' differs from the trained network"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing_half_written(name, tmp_path, good_run, capsys):
    build, fragment = CASES[name]
    argv = build(tmp_path, good_run)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("evprop: error: "), err
    assert fragment in err[0], err[0]
    after = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in after if p.name.endswith((".tmp", ".part"))]            # nothing half-written
    for run_file in ("checkpoint.npz", "fixed_point.npz", "model.nir", "report.json"):
        for path in after:                                                          # no stage wrote its output
            if path.name == run_file and path not in before:
                pytest.fail(f"{path} was written by a failing command")


@pytest.mark.slow
def test_verify_and_run_without_lava_name_the_extra_and_python(good_run, tmp_path, capsys, monkeypatch):
    """As on Python 3.12: `import lava` fails. Both commands stop before doing any work, in one line that says
    Lava is the [lava] extra for Python 3.10; verify writes no gate.json, run creates no run directory."""
    for name in ["lava"] + [m for m in sys.modules if m.startswith("lava.")]:    # conftest imported some of Lava
        monkeypatch.setitem(sys.modules, name, None)
    run = _run_copy(good_run, tmp_path, lambda r: None)
    before = sorted(p.name for p in run.iterdir())
    for argv in (["verify", str(run)], ["run", str(DEFAULT), "--out", str(tmp_path / "new"), *SMALL]):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert f"evprop {argv[0]}" in err[0] and "needs Lava" in err[0], err[0]
        assert "[lava]" in err[0] and "needs Python 3.10" in err[0], err[0]
    assert sorted(p.name for p in run.iterdir()) == before
    assert not (tmp_path / "new").exists()
