"""Configuration validation and the CLI's one-line errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evprop.pipeline.cli import main
from evprop.pipeline.config import ConfigError, defaults, dump_toml, load_config, n_steps

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_config_is_valid_and_round_trips(tmp_path):
    config = load_config(ROOT / "configs" / "default.toml")
    assert config["name"] == "default"
    assert n_steps(config) == 80
    again = load_config(write(tmp_path, dump_toml(config)))
    assert again == config


@pytest.mark.parametrize("text, message", [
    ("[train]\nepochz = 3\n", "unknown key 'train.epochz'"),
    ("[train]\nepochs = 'many'\n", "key 'train.epochs' expects an integer >= 1, got str"),
    ("[train]\nbatch_size = 0\n", "key 'train.batch_size' expects an integer >= 1, got 0"),
    ("[network]\ntau_mem_ms = -20.0\n", "key 'network.tau_mem_ms' expects a time constant > 0 ms"),
    ("[network]\nrecurrent = 1\n", "key 'network.recurrent' expects true or false"),
    ("[train]\nepochs = true\n", "key 'train.epochs' expects an integer >= 1, got bool"),
    ("[network]\nreadout = 'mean'\n", "key 'network.readout' expects one of"),
    ("[data]\nseeds = [1, 2]\n", "key 'data.seeds' expects three integer seeds"),
    ("[network]\nduration_ms = 10.0\n", "'network.duration_ms' (10.0) must exceed the last input spike time"),
    ("[network]\ndt_ms = 0.3\n", "must be a whole number of steps"),
    ("train = 3\n", "key 'train' must be a table"),
    ("[train\n", "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(write(tmp_path, text))


def test_overrides_are_validated():
    assert load_config(None, ["train.epochs=5"])["train"]["epochs"] == 5
    assert load_config(None, ["network.readout=sum"])["network"]["readout"] == "sum"
    with pytest.raises(ConfigError, match="--set train.epochs: key 'train.epochs' expects an integer"):
        load_config(None, ["train.epochs=0.5"])
    with pytest.raises(ConfigError, match="unknown key 'train.nope'"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])


def _cli_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("argv_factory, fragment", [
    (lambda t: ["train", str(t / "missing.toml")], "missing.toml: config file not found"),
    (lambda t: ["train", str(write(t, "[train]\nbogus = 1\n")), "--out", str(t / "r")], "unknown key 'train.bogus'"),
    (lambda t: ["train", str(write(t, "[network]\nhidden = 'x'\n")), "--out", str(t / "r")], "'network.hidden'"),
    (lambda t: ["quantise", str(t / "norun")], "not an evprop run directory (no config.toml"),
    (lambda t: ["quantise", str(_bad_checkpoint(t))], "not a readable checkpoint"),
    (lambda t: ["gradcheck", "--reference", str(t / "none.json"), "--case", "A"], "reference file not found"),
    (lambda t: ["gradcheck", "--reference", str(write(t, "[1, 2]", "r.json")), "--case", "A"], "tiny_cases.json format"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv_factory, fragment):
    code, err = _cli_error(capsys, argv_factory(tmp_path))
    assert code == 2
    assert len(err) == 1 and err[0].startswith("evprop: error: ")
    assert fragment in err[0]
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def _bad_checkpoint(tmp_path):
    run = tmp_path / "badrun"
    run.mkdir()
    (run / "config.toml").write_text(dump_toml(defaults()))
    (run / "checkpoint.npz").write_bytes(b"this is not a zip file")
    return run


def test_gradcheck_command_prints_one_json_object(reference_cases):
    from conftest import REFERENCE
    out = subprocess.run([sys.executable, "-m", "evprop.pipeline.cli", "gradcheck", "--reference", str(REFERENCE),
                          "--case", "D_rec_nodelay"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    result = json.loads(out)
    assert set(result["matrices"]) == {"dL/dW_ih", "dL/dW_hh", "dL/dW_ho"}
    assert all(m["cosine"] > 0.99 for m in result["matrices"].values())
    assert result["max_spike_time_diff_ms"] == 0.0
    assert np.isfinite(result["loss"])


def test_every_command_has_help_with_an_example(capsys):
    from evprop.pipeline.cli import COMMANDS
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out


def test_json_lines_log_for_ci(tmp_path, capsys):
    log_file = tmp_path / "log.jsonl"
    code = main(["--quiet", "--log-json", str(log_file), "train", str(ROOT / "configs" / "default.toml"), "--out",
                 str(tmp_path / "run"), "--set", "data.train_size=60", "--set", "data.validation_size=20",
                 "--set", "data.test_size=20", "--set", "train.epochs=2", "--set", "network.hidden=10"])
    assert code == 0
    assert capsys.readouterr().err == ""                       # --quiet: nothing on the terminal
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    epochs = [r for r in records if r.get("event") == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1] and all("eta_s" in r and "loss" in r for r in epochs)
    assert main(["--log-json", str(log_file), "train", str(tmp_path / "nope.toml")]) == 2
    assert json.loads(log_file.read_text().splitlines()[-1])["event"] == "error"


def test_progress_bar_shows_rate_and_eta():
    import io
    from evprop.pipeline.progress import ProgressBar
    stream = io.StringIO()
    bar = ProgressBar("epoch 1/3", 100, stream=stream, enabled=True)
    bar.update(40)
    line = stream.getvalue()
    assert "40/100" in line and "samples/s" in line and "ETA" in line and "#" * 12 in line
    silent = io.StringIO()
    ProgressBar("x", 10, stream=silent, enabled=False).update(5)
    assert silent.getvalue() == ""
