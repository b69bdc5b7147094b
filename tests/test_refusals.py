"""Values and files evprop refuses in one line naming the key, option or node: non-finite numbers anywhere in a
config or `--set`, negative seeds, `--timeout` that is not a finite positive time, a structurally broken NIR file;
and the one atomic writer's file mode."""

from pathlib import Path

import pytest

from evprop.pipeline.cli import main
from evprop.pipeline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.toml"


@pytest.mark.parametrize("table, key, value", [
    ("train", "learning_rate", "inf"), ("network", "duration_ms", "inf"), ("network", "tau_mem_ms", "nan"),
    ("data", "t_late_ms", "-inf"), ("quantise", "percentile", "nan"), ("verify", "timeout_s", "inf"),
    ("train", "reg_lambda_upper", "[0.5, nan]"), ("network", "readout_params", "[0.0, inf, 4.4, 0.4]"),
    ("network", "input_delays_ms", "[[1.0, 2.0], [nan, 0.0]]"), ("train", "loss_params", "{delta_ms = inf}"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, table, key, value):
    path = tmp_path / "c.toml"
    path.write_text(f"[{table}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: key '{table}.{key}' must be a finite number, got {_python(value)}"
    with pytest.raises(ConfigError, match=rf"^--set {table}.{key}: key '{table}.{key}' must be a finite number"):
        load_config(DEFAULT, [f"{table}.{key}={value}"])


def _python(toml_value: str) -> str:
    import tomli
    return repr(tomli.loads(f"v = {toml_value}")["v"])


@pytest.mark.parametrize("override, fragment", [
    ("train.seed=-1", "key 'train.seed' expects an integer >= 0, got -1"),
    ("data.seeds=[42, -1, 40]", "key 'data.seeds' expects three integer seeds >= 0"),
])
def test_negative_seeds_are_refused_naming_the_key(tmp_path, capsys, override, fragment):
    assert main(["train", str(DEFAULT), "--out", str(tmp_path / "r"), "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["verify", "{run}", "--timeout", "nan"], "--timeout nan: expected a finite number of seconds > 0"),
    (["verify", "{run}", "--timeout", "-1"], "--timeout -1.0: expected a finite number of seconds > 0"),
    (["verify", "{run}", "--timeout", "inf"], "--timeout inf: expected a finite number of seconds > 0"),
    (["verify", "{run}", "--samples", "-3"], "--samples -3: expected at least 1"),
    (["bench", "--seed", "-2"], "--seed -2: expected an integer >= 0"),
])
def test_bad_options_are_refused_naming_the_option(tmp_path, capsys, argv, message):
    assert main([a.format(run=tmp_path) for a in argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"evprop: error: {message}"]


def _exported(tmp_path, change):
    """A fixed-point NIR file of a network with delays, `change`d: returns (path, the name change reports)."""
    import nir
    from deploy_helpers import make_network
    from evprop.export.nir import export_nir
    from evprop.fixed_point.quantise import quantise
    spec = make_network(seed=2, max_delay=5)
    fixed, _ = quantise(spec)
    path = tmp_path / "net.nir"
    export_nir(path, spec, fixed)
    graph = nir.read(str(path))
    name = change(graph)
    nir.write(str(path), graph)
    return path, name


def _fractional_delay(graph):
    """A Delay node of 2.3 steps: no Lava synapse delays by a fraction of a step."""
    key, node = next((k, n) for k, n in graph.nodes.items() if type(n).__name__ == "Delay")
    node.delay = node.delay + 0.3e-3                       # seconds; dt = 1 ms
    return key


def _no_weight_exp(graph):
    key, node = next((k, n) for k, n in graph.nodes.items() if type(n).__name__ == "Linear")
    node.metadata.pop("weight_exp")
    return "weight_exp"


@pytest.mark.parametrize("change", [_fractional_delay, _no_weight_exp])
def test_structural_nir_error_is_one_line_from_the_parent(tmp_path, change):
    """Found before the Lava child starts: one line naming the file and the node or field, not the child's
    traceback."""
    from deploy_helpers import make_data
    from evprop.hw_sim.lava_sim import run_lava
    path, name = _exported(tmp_path, change)
    with pytest.raises(ValueError) as err:
        run_lava(path, make_data(n_samples=1), timeout_s=60.0)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{path}: ") and name in message, message


def test_a_crashing_lava_child_is_reported_by_its_exception_line():
    from evprop.hw_sim.lava_sim import _last_error
    log = ["INFO starting", "Traceback (most recent call last):", '  File "x.py", line 3, in <module>',
           "    raise ValueError('bad vth')", "ValueError: bad vth"]
    assert _last_error(log) == "ValueError: bad vth"
    assert _last_error([]) == "no output"


def test_gate_json_is_written_0644(tmp_path):
    from evprop.pipeline.gate import GateCriteria, evaluate_gate, write_summary_json
    summary = {"n_samples": 1, "bit_exact": True, "spikes_identical_fraction": 1.0,
               "outputs_identical_fraction": 1.0}
    write_summary_json(tmp_path / "gate.json", evaluate_gate(summary, GateCriteria()))
    assert (tmp_path / "gate.json").stat().st_mode & 0o777 == 0o644
