"""NetX (lava-dl 0.6.0's HDF5 network format): the netx quantisation profile, the exporter's refusals, the defects
of netx 0.6.0 pinned against the installed lava-dl, and files that lava-dl's own loader runs in Lava bit-exactly
with the emulator (Lava in a child process with a hard timeout)."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from deploy_helpers import make_data, make_network, two_hidden_with_skip
from evprop.export.netx import NetxError, export_netx, netx_layers, read_netx_header, weight_problem
from evprop.fixed_point.calibrate import state_bounds
from evprop.fixed_point.emulator import emulate
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.spec import FixedConnection, FixedPointSpec
from evprop.hw_sim.netx_sim import netx_stream, run_netx
from evprop.model.spec import Connection

TIMEOUT_S = 240.0


def netx_quantised(spec, data):
    return quantise(spec, state_bounds(spec, data), profile="netx")


# ---- the profile ----

def test_netx_profile_uses_exponent_zero_and_one_scale_per_layer():
    spec = make_network(seed=1)
    data = make_data(seed=1, n_samples=10)
    fp, report = netx_quantised(spec, data)
    assert report["profile"] == "netx"
    assert all(c.weight_exp == 0 for c in fp.connections)
    units = {name: c["weight_unit"] for name, c in report["connections"].items()}
    assert units["input->hidden"] == units["hidden->hidden"]
    lava, lava_report = quantise(spec, state_bounds(spec, data))
    assert lava_report["connections"]["input->hidden"]["weight_unit"] \
        != lava_report["connections"]["hidden->hidden"]["weight_unit"]     # the default profile scales each alone
    # the integers still stand for the float weights: W * unit = g * w within half a (mixed: even) step
    for conn in fp.connections:
        entry = report["connections"][conn.name]
        assert entry["max_abs_error_unclipped"] <= entry["weight_unit"] * (1 + 1e-9)
    netx_layers(fp)                                   # exportable as it stands


def test_netx_profile_refuses_delays_above_62():
    spec = make_network(recurrent=False)
    conn = spec.connections[0]
    delayed = Connection(conn.source, conn.target, conn.weight, np.full(conn.weight.shape, 63.0), 63)
    spec = spec.replace_connection(delayed)
    with pytest.raises(ValueError, match="delay 63 steps exceeds the target's maximum of 62"):
        quantise(spec, profile="netx")
    assert quantise(spec)[0].connections[0].max_delay == 63          # the default target holds 63
    with pytest.raises(ValueError, match="quantisation profile 'loihi' unknown"):
        quantise(spec, profile="loihi")


# ---- refusals: one line each, nothing written ----

def _fp_with(conns, fp):
    return FixedPointSpec(fp.dt_ms, fp.n_steps, fp.input_name, fp.input_size, fp.layers, conns, fp.readout)


def test_export_refuses_what_netx_cannot_hold(tmp_path):
    spec = make_network(seed=1, n_steps=40)
    data = make_data(seed=1, n_samples=6, n_steps=40)
    fp, _ = netx_quantised(spec, data)
    path = tmp_path / "model.net"
    export_netx(path, fp)
    before = path.read_bytes()
    ff, rec, out = fp.connections
    delayed = FixedConnection(ff.source, ff.target, ff.weight, 0, "mixed", np.ones_like(ff.delay))
    assert np.any(out.weight % 4)
    cases = {
        "recurrent and has delays": _fp_with((delayed, rec, out), fp),
        "are not integers": _fp_with((ff, rec, FixedConnection(out.source, out.target, out.weight, -2, "mixed",
                                                               out.delay)), fp),
        "outside \\[-256, 254\\]": _fp_with((FixedConnection(ff.source, ff.target, ff.weight, 1, "mixed", ff.delay),
                                             rec, out), fp),
        "no positive weight": _fp_with((ff, rec, FixedConnection(out.source, out.target,
                                                                 np.maximum(-np.abs(out.weight), -255), 0,
                                                                 "inhibitory", out.delay)), fp),
        "delay 63 steps exceeds NetX's 62": _fp_with(
            (FixedConnection(ff.source, ff.target, ff.weight, 0, "mixed", np.full_like(ff.delay, 63)), out), fp),
    }
    for reason, bad in cases.items():
        with pytest.raises(NetxError, match=reason) as err:
            export_netx(path, bad)
        assert "\n" not in str(err.value)
        assert path.read_bytes() == before                     # a refused export leaves the old file
    assert not list(tmp_path.glob(".*tmp"))


def test_export_refuses_a_graph_that_is_not_a_chain():
    spec = two_hidden_with_skip()
    fp, _ = quantise(spec, profile="netx")
    with pytest.raises(NetxError, match="not a chain: layer 'out' must be fed by exactly 'h2'"):
        netx_layers(fp)


def test_default_profile_network_is_refused_with_the_profile_named():
    spec = make_network(seed=1)
    fp, _ = quantise(spec, state_bounds(spec, make_data(seed=1, n_samples=10)))
    assert {c.weight_exp for c in fp.connections} != {0}
    with pytest.raises(NetxError, match='quantise.profile = "netx"'):
        netx_layers(fp)


def test_written_file_follows_the_netx_schema(tmp_path):
    spec = make_network(seed=2, recurrent=False, max_delay=5, per_neuron_taus=True)
    fp, _ = netx_quantised(spec, make_data(seed=2, n_samples=6))
    export_netx(tmp_path / "m.net", fp)
    with h5py.File(tmp_path / "m.net", "r") as f:
        assert f["layer/0/type"][0] == b"input" and list(f["layer/0/shape"][()]) == [5]
        hidden, out = f["layer/1"], f["layer/2"]
        assert hidden["type"][0] == b"dense" and list(hidden["shape"][()]) == [30]
        np.testing.assert_array_equal(hidden["weight"][()], fp.connections[0].weight)      # exponent 0
        np.testing.assert_array_equal(hidden["delay"][()], fp.connections[0].delay)
        np.testing.assert_array_equal(hidden["neuron/iDecay"][()], fp.layers[0].du + 1)
        np.testing.assert_array_equal(hidden["neuron/vDecay"][()], fp.layers[0].dv)
        assert hidden["neuron/vThMant"][()] == fp.layers[0].vth and out["neuron/vThMant"][()] == 131071
        assert "delay" not in out and out["neuron/type"][0] == b"CUBA"
    header = read_netx_header(tmp_path / "m.net")
    assert header["layers"] == ["hidden", "output"] and header["output_v_lsb"] == fp.output.v_lsb


# ---- netx 0.6.0 defects, pinned against the installed lava-dl (a change there makes these fail) ----

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def lava_dl(lava):
    """Tests that load NetX files in lava-dl request this: without Lava or lava-dl they are skipped, saying why."""
    from evprop.hw_sim.netx_import import netx_package_dir
    try:
        netx_package_dir()
    except RuntimeError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def pins(tmp_path_factory, lava_dl):
    """tests/netx_pins.py's measurements, made in a child process (Lava stays out of the pytest process)."""
    probe = subprocess.run([sys.executable, str(HERE / "netx_pins.py"), str(tmp_path_factory.mktemp("netx"))],
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    assert probe.returncode == 0, probe.stderr[-2000:]
    return json.loads(probe.stdout.strip().splitlines()[-1])


def test_weights_the_exporter_accepts_reach_lava_unchanged(pins):
    assert pins["accepted"]["checked"] > 300
    assert pins["accepted"]["wrong"] == []


def test_defect_all_positive_weights_above_255_become_zero(pins):
    assert pins["excitatory_over_255"]["effective"] == [[0, 0, 0]]
    assert "above 255" in pins["excitatory_over_255"]["problem"]


def test_defect_all_negative_matrix_with_a_zero_is_halved(pins):
    assert pins["negative_with_zero"]["effective"] == [[-64, -64, 0]]
    assert "no positive weight" in pins["negative_with_zero"]["problem"]


def test_defect_mixed_weights_above_254_are_clipped_with_only_a_print(pins):
    assert sum(pins["mixed_over_254"]["effective"][0]) == 249          # 254 - 10 + 5 instead of 295
    assert "clipped to 254" in pins["mixed_over_254"]["printed"]
    assert "outside [-256, 254]" in pins["mixed_over_254"]["problem"]


def test_defect_float_weights_are_truncated(pins):
    assert pins["float_weights"] == [[1, -2, 3]]                       # file: 1.7, -2.9, 3.0
    assert "non-integer" in weight_problem(np.array([[1.7, -2.9, 3.0]]))


def test_defect_delays_above_62_are_clamped_with_only_a_warning(pins):
    assert pins["delay_over_62"]["delays"] == [[62, 1], [2, 62]]        # file: 70
    assert any("Clamping the delays" in w for w in pins["delay_over_62"]["warnings"])


def test_defect_recurrent_layer_with_delays(pins):
    rec = pins["recurrent_delays"]
    assert rec["plain_weight_exp"] == -1                  # without delays: weights stored << 1 with exponent -1
    assert rec["delayed_synapse_kind"] == "DelayDense"
    assert rec["delayed_rec_delays"] == rec["file_delay"] != rec["file_delay_rec"]    # delay_rec never read
    assert rec["delayed_has_weight_exp"] == [False, False]                         # the exponent is dropped ...
    assert np.array_equal(rec["delayed_rec_weights"], 2 * np.array(rec["file_weight_rec"]))  # ... weights x 2
    assert "same shape" in rec["five_inputs"]             # with 5 inputs and 4 neurons it does not even build


def test_stand_ins_keep_torch_out(pins):
    assert pins["torch_imported"] is False and pins["stand_in_files"] == [True, True]


def test_netx_needs_torch_without_the_stand_ins(lava_dl):
    """lava-dl 0.6.0's package imports reach torch (evprop.hw_sim.netx_import's stand-ins avoid it)."""
    code = ("import importlib.util, sys\n"
            "assert importlib.util.find_spec('torch') is None\n"
            "try:\n    import lava.lib.dl.netx\nexcept ModuleNotFoundError as e:\n    print('missing', e.name)\n")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if "AssertionError" in probe.stderr:
        pytest.skip("torch is installed: netx imports without stand-ins")
    assert probe.stdout.strip() == "missing torch", probe.stderr[-500:]      # what the stand-ins are for


# ---- bit-exact through lava-dl's loader in Lava ----

def run_through_netx(fp, data, tmp_path, **options):
    export_netx(tmp_path / "model.net", fp)
    return run_netx(tmp_path / "model.net", fp, data, timeout_s=TIMEOUT_S, **options)


@pytest.mark.slow
def test_feed_forward_network_with_delays_is_bit_exact_through_netx(tmp_path, lava_dl):
    spec = make_network(seed=2, recurrent=False, max_delay=5, per_neuron_taus=True)
    data = make_data(seed=2, n_samples=6, n_steps=60)
    fp, _ = netx_quantised(spec, data)
    assert fp.connections[0].max_delay == 5 and len(np.unique(fp.layer("hidden").du)) > 1
    result, eq = run_through_netx(fp, data, tmp_path, reset="schedule")
    assert eq["bit_exact"] and eq["stream"]["identical"] and eq["n_samples"] == 6
    assert eq["fresh_state"]["bit_exact"]                   # each sample as the fixed-point model computes it
    assert result.hidden_spikes["hidden"].sum() > 6 * 10 and np.abs(result.v_out).max() > 2 ** 14
    np.testing.assert_array_equal(result.v_out, emulate(fp, data).v_out)
    state, eq = run_through_netx(fp, data, tmp_path)          # reset="state": DelayDense buffers zeroed too
    assert eq["reset"] == "state" and eq["bit_exact"]
    np.testing.assert_array_equal(state.v_out, result.v_out)


@pytest.mark.slow
def test_recurrent_network_is_bit_exact_through_netx_including_the_reset_between_samples(tmp_path, lava_dl):
    spec = make_network(seed=3)
    data = make_data(seed=3, n_samples=6, n_steps=60, rate=0.15)
    fp, _ = netx_quantised(spec, data)
    result, eq = run_through_netx(fp, data, tmp_path, reset="schedule", settle_steps=0)
    assert eq["bit_exact"] and eq["stream"]["identical"], eq["stream"]
    assert result.hidden_spikes["hidden"].sum() > 6 * 30
    # the resets matter: without them the emulated stream is not what netx computes
    stream = netx_stream(len(data), data.n_steps, 2, 0, 0)
    no_reset = emulate(fp, stream.data(data))
    assert not np.array_equal(stream.windows(no_reset.v_out[0]), result.v_out)
    # reset="state" (the default): u, v and pending messages zeroed between samples, each sample fresh
    state, eq = run_through_netx(fp, data, tmp_path)
    assert eq["reset"] == "state" and eq["bit_exact"] and eq["n_samples"] == 6
    fresh = emulate(fp, data)
    np.testing.assert_array_equal(state.v_out, fresh.v_out)
    np.testing.assert_array_equal(state.hidden_spikes["hidden"], fresh.hidden_spikes["hidden"])


# ---- the commands ----

CONFIG = str(HERE.parent / "configs" / "default.toml")
SMALL = ["--set", "data.train_size=300", "--set", "data.validation_size=200", "--set", "data.test_size=200",
         "--set", "train.epochs=3", "--set", "network.hidden=40", "--set", "verify.lava_samples=5",
         "--set", "quantise.calibration_samples=100"]


@pytest.fixture(scope="module")
def netx_run(tmp_path_factory, lava_dl):
    from evprop.pipeline.cli import main
    run_dir = tmp_path_factory.mktemp("run") / "netx"
    code = main(["--quiet", "run", CONFIG, "--out", str(run_dir), *SMALL, "--set", "quantise.profile=netx"])
    return run_dir, code


@pytest.mark.slow
def test_run_export_verify_through_netx(netx_run, capsys):
    from evprop.pipeline.cli import main
    run_dir, code = netx_run
    assert code == 0
    quant = json.loads((run_dir / "quantise.json").read_text())
    assert quant["quantisation"]["profile"] == "netx"
    cost = quant["quantisation"]["profile_cost"]
    assert cost["unrestricted_profile"] == "lava"
    assert np.isclose(cost["cost_pp"], 100 * (cost["unrestricted_fixed_point_test_accuracy"]
                                              - quant["fixed_point_test_accuracy"]))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["quantisation"]["summary"]["profile"] == "netx"
    assert "the lava profile reaches" in (run_dir / "report.html").read_text()
    assert main(["--quiet", "export", str(run_dir), "--format", "netx"]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "model.net")
    assert main(["--quiet", "verify", str(run_dir), "--runtime", "netx", "--samples", "8"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runtime"] == "netx" and summary["n_samples"] == 8 and summary["bit_exact"] is True
    assert summary["reset"] == "state" and summary["fresh_state"]["bit_exact"] and summary["gate"]["passed"]
    assert json.loads((run_dir / "verify_netx.json").read_text())["bit_exact"] is True
    assert json.loads((run_dir / "gate_netx.json").read_text())["passed"] is True
    assert json.loads((run_dir / "verify.json").read_text())["n_samples"] == 5     # the NIR check is kept


@pytest.mark.slow
def test_commands_refuse_with_one_line_and_leave_files(netx_run, tmp_path, capsys):
    import shutil
    from evprop.pipeline.cli import main
    run_dir, _ = netx_run
    other = tmp_path / "lava_profile"
    shutil.copytree(run_dir, other)
    (other / "model.net").unlink(missing_ok=True)
    assert main(["--quiet", "verify", str(other), "--runtime", "netx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evprop: error: ") and "--format netx` first" in err and "\n" not in err
    config = (other / "config.toml").read_text()
    assert 'profile = "netx"' in config
    (other / "config.toml").write_text(config.replace('profile = "netx"', 'profile = "lava"'))
    assert main(["--quiet", "quantise", str(other)]) == 0
    (other / "model.net").write_bytes(b"left as it was")
    capsys.readouterr()
    assert main(["--quiet", "export", str(other), "--format", "netx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evprop: error: NetX export: ") and 'quantise.profile = "netx"' in err and "\n" not in err
    assert (other / "model.net").read_bytes() == b"left as it was"
    (other / "config.toml").write_text(config.replace('profile = "netx"', 'profile = "loihi3"'))
    assert main(["--quiet", "quantise", str(other)]) == 2
    assert "key 'quantise.profile' expects one of ['lava', 'netx']" in capsys.readouterr().err
