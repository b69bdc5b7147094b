"""evprop sweep: every (combination, seed) trained in parallel processes and summarised as mean +- sd."""

import json
from pathlib import Path

import numpy as np
import pytest

from evprop.pipeline.cli import main
from evprop.pipeline.config import ConfigError
from evprop.pipeline.sweep import combinations, parse_grid

ROOT = Path(__file__).resolve().parents[1]


def test_grid_expansion():
    grid = parse_grid(["network.hidden=10,20", "network.readout=sum,max"])
    assert grid == {"network.hidden": [10, 20], "network.readout": ["sum", "max"]}
    combos = combinations(grid)
    assert len(combos) == 4 and ["network.hidden=10", 'network.readout="max"'] in combos
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        parse_grid(["network.hidden"])


@pytest.mark.slow
def test_sweep_runs_seeds_in_parallel_and_summarises(tmp_path, capsys):
    config = tmp_path / "small.toml"
    config.write_text((ROOT / "configs" / "default.toml").read_text().replace("train_size = 5000", "train_size = 80")
                      .replace("validation_size = 1000", "validation_size = 20")
                      .replace("test_size = 1000", "test_size = 30").replace("epochs = 40", "epochs = 1"))
    code = main(["--quiet", "sweep", str(config), "--grid", "network.hidden=6,8", "--seeds", "2", "--jobs", "2",
                 "--out", str(tmp_path / "sweep")])
    assert code == 0
    summary = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert len(summary["runs"]) == 4 and {r["seed"] for r in summary["runs"]} == {0, 1}
    for row in summary["summary"]:
        accs = [r["float_test_accuracy"] for r in summary["runs"] if r["overrides"] == row["overrides"]]
        assert row["n"] == 2 and row["test_accuracy_mean"] == pytest.approx(np.mean(accs))
        assert row["test_accuracy_sd"] == pytest.approx(np.std(accs, ddof=1))
    assert (tmp_path / "sweep" / "network-hidden_6" / "seed1" / "checkpoint.npz").is_file()
    assert "+-" in capsys.readouterr().out
    assert main(["sweep", str(config), "--grid", "network.hidden=6,-1"]) == 2         # validated up front
