"""The whole pipeline through the CLI on a small Yin-Yang job: every stage real, Lava included."""

import json
from pathlib import Path

import numpy as np
import pytest

from evprop.export.nir import import_nir
from evprop.fixed_point.spec import load_fixed_point
from evprop.pipeline.cli import main
from evprop.train.trainer import load_checkpoint

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "default.toml")
SMALL = ["--set", "data.train_size=300", "--set", "data.validation_size=200", "--set", "data.test_size=200",
         "--set", "train.epochs=3", "--set", "network.hidden=40", "--set", "verify.lava_samples=20",
         "--set", "quantise.calibration_samples=100"]

REQUIRED_KEYS = ["accuracy.float.train", "accuracy.float.test", "accuracy.fixed_point.test", "accuracy.lava.test",
                 "accuracy.float.test_ci95", "accuracy.fixed_point.test_ci95", "accuracy.lava.test_ci95",
                 "quantisation.summary.accuracy_change_pp_ci95",
                 "accuracy.lava.n_samples", "equivalence.emulator_vs_lava.n_samples",
                 "equivalence.emulator_vs_lava.bit_exact", "equivalence.emulator_vs_lava.spikes_identical_fraction",
                 "equivalence.emulator_vs_lava.outputs_identical_fraction", "spikes.per_layer.hidden.mean_per_sample",
                 "spikes.synaptic_ops_per_sample", "energy.kind", "energy.source", "energy.estimated_uj_per_inference",
                 "energy.counts_per_inference.synaptic_ops", "quantisation.layers.hidden.v_lsb", "timing.train_s",
                 "timing.verify_s", "versions.lava-nc", "versions.nir"]


pytestmark = pytest.mark.usefixtures("lava")


def lookup(report, dotted):
    value = report
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, lava):
    run_dir = tmp_path_factory.mktemp("run") / "small"
    code = main(["--quiet", "run", CONFIG, "--out", str(run_dir), *SMALL])
    return run_dir, code


@pytest.mark.slow
def test_run_leaves_every_file_and_a_complete_report(small_run):
    run_dir, code = small_run
    assert code == 0
    for name in ("config.toml", "checkpoint.npz", "history.jsonl", "fixed_point.npz", "model.nir", "report.json",
                 "report.html"):
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text())
    for key in REQUIRED_KEYS:
        lookup(report, key)
    eq = report["equivalence"]["emulator_vs_lava"]
    assert eq["bit_exact"] is True and eq["n_samples"] == 20
    assert eq["spikes_identical_fraction"] == 1.0 and eq["outputs_identical_fraction"] == 1.0
    assert report["energy"]["kind"] == "estimate" and "Davies" in report["energy"]["source"]
    assert report["spikes"]["synaptic_ops_per_sample"] > report["spikes"]["per_layer"]["hidden"]["mean_per_sample"]
    assert 0.4 < report["accuracy"]["float"]["test"] <= 1.0
    assert abs(report["accuracy"]["fixed_point"]["test"] - report["accuracy"]["float"]["test"]) < 0.1
    linear = report["accuracy"]["reference_linear"]            # Yin-Yang: 3 classes, well above chance (1/3)
    assert 0.45 < linear["test"] <= 1.0 and linear["n_test"] == report["accuracy"]["float"]["n_test"]
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 3
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "ESTIMATE" in html


@pytest.mark.slow
def test_nir_file_gives_back_the_trained_network(small_run):
    run_dir, _ = small_run
    spec, fixed = import_nir(run_dir / "model.nir")
    assert spec == load_checkpoint(run_dir / "checkpoint.npz")["best"]
    assert fixed == load_fixed_point(run_dir / "fixed_point.npz")


@pytest.mark.slow
def test_stage_commands_rerun_on_the_run_directory(small_run, capsys):
    run_dir, _ = small_run
    before = json.loads((run_dir / "report.json").read_text())
    assert main(["--quiet", "verify", str(run_dir), "--samples", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_samples"] == 5 and summary["bit_exact"] is True
    assert main(["--quiet", "report", str(run_dir)]) == 0
    after = json.loads((run_dir / "report.json").read_text())
    assert after["accuracy"]["lava"]["n_samples"] == 5
    assert after["accuracy"]["float"] == before["accuracy"]["float"]
    assert np.isclose(after["energy"]["estimated_uj_per_inference"], before["energy"]["estimated_uj_per_inference"])


@pytest.mark.slow
def test_evaluate_command_matches_the_report(small_run, capsys):
    run_dir, _ = small_run
    assert main(["--quiet", "evaluate", str(run_dir), "--split", "test"]) == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads((run_dir / "report.json").read_text())
    assert summary["float_accuracy"] == report["accuracy"]["float"]["test"]
    assert summary["fixed_point_accuracy"] == report["accuracy"]["fixed_point"]["test"]
    assert summary["n_samples"] == 200


@pytest.mark.slow
def test_verify_gate_and_onnx_export_commands(small_run, tmp_path, capsys):
    import xml.etree.ElementTree as ET
    run_dir, _ = small_run
    junit = tmp_path / "verify.xml"
    assert main(["--quiet", "verify", str(run_dir), "--samples", "3", "--junit", str(junit)]) == 0
    suites = ET.parse(junit).getroot()
    assert int(suites.get("failures", suites[0].get("failures"))) == 0
    assert json.loads((run_dir / "gate.json").read_text())["passed"] is True
    report = json.loads((run_dir / "report.json").read_text())
    drop = 100 * (report["accuracy"]["float"]["test"] - report["accuracy"]["fixed_point"]["test"])
    code = main(["--quiet", "verify", str(run_dir), "--samples", "3", "--max-accuracy-drop", str(drop - 0.5)])
    assert code == 1                                   # the drop exceeds the allowed one by 0.5 pp
    assert json.loads((run_dir / "gate.json").read_text())["passed"] is False
    capsys.readouterr()
    pytest.importorskip("onnxruntime")
    assert main(["--quiet", "export", str(run_dir), "--format", "onnx"]) == 0
    assert (run_dir / "model.onnx").stat().st_size > 1000
