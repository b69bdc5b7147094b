"""report.json (schema, energy, quantisation), report.html (self-contained, looked at in a headless browser),
energy estimates and the energy meter."""

import copy
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from evprop.pipeline.energy import (HOROWITZ, conventional_estimates, dense_counts, loihi1_estimate,
                                    neuromorphic_estimates, sram_read_pj)
from evprop.pipeline.measure import EnergyMeter, per_inference, wrapped_delta
from evprop.pipeline.report_schema import validate_report

from conftest import random_network, require_tool
from test_pipeline_e2e import REQUIRED_KEYS, lookup

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.toml"
TINY = ["data.train_size=100", "data.validation_size=50", "data.test_size=60", "train.epochs=2",
        "network.hidden=20", "verify.lava_samples=3", "quantise.calibration_samples=50"]
COUNTS = {"spikes_per_layer": {"input": 5.0, "hidden": 1000.0, "output": 0.0}, "synaptic_ops": 200000.0,
          "neuron_updates": 16000.0, "active_neuron_updates": 15000.0}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, lava):
    """A real run (every stage, Lava included) of a tiny Yin-Yang job: about 10 s."""
    from evprop.pipeline.config import load_config
    from evprop.pipeline.stages import run_pipeline
    run_dir = tmp_path_factory.mktemp("report") / "tiny"
    report = run_pipeline(load_config(CONFIG, TINY), run_dir)
    return run_dir, report


# ---- report.json ----

def test_real_report_is_valid_against_the_schema_and_keeps_the_readme_keys(tiny_run):
    run_dir, report = tiny_run
    on_disk = json.loads((run_dir / "report.json").read_text())
    assert validate_report(on_disk) == []
    for key in REQUIRED_KEYS:
        lookup(on_disk, key)
    assert on_disk["energy"]["kind"] == "estimate" and "Davies" in on_disk["energy"]["source"]


def test_every_energy_number_carries_estimate_and_its_model(tiny_run):
    energy = tiny_run[1]["energy"]
    models = {e["model"] for e in energy["estimates"]}
    assert {"loihi1-table2", "spinnaker2-2019", "truenorth-2014", "horowitz45-dense-fp32-sram",
            "horowitz45-dense-int8-dram"} <= models
    for e in energy["estimates"]:
        assert e["kind"] == "estimate" and "estimate" in e["note"].lower() and e["source"]
        assert e["estimated_uj_per_inference"] == pytest.approx(sum(t["estimated_uj"] for t in e["terms"]))
        for t in e["terms"]:
            assert t["kind"] == "estimate" and t["model"] == e["model"] and t["source"]
    loihi = next(e for e in energy["estimates"] if e["model"] == "loihi1-table2")
    assert energy["estimated_uj_per_inference"] == loihi["estimated_uj_per_inference"]


def test_measured_energy_is_not_measurable_here_or_a_number(tiny_run):
    measured = tiny_run[1]["energy"]["measured"]
    assert set(measured) >= {"training", "verification", "float_inference", "emulator_inference"}
    for m in measured.values():
        assert (m["joules"] is None and m["source"].startswith("not measurable here")) or m["joules"] >= 0


def test_quantisation_summary_and_confusion(tiny_run):
    report = tiny_run[1]
    summary = report["quantisation"]["summary"]
    assert summary["accuracy_change_pp"] == pytest.approx(
        100 * (report["accuracy"]["fixed_point"]["test"] - report["accuracy"]["float"]["test"]))
    confusion = report["confusion"]
    for name, accuracy in (("float", report["accuracy"]["float"]["test"]),
                           ("fixed_point", report["accuracy"]["fixed_point"]["test"])):
        matrix = np.array(confusion[name])
        assert matrix.sum() == confusion["n_test"] == 60
        assert np.trace(matrix) / matrix.sum() == pytest.approx(accuracy)


def test_stored_measurements_of_the_stages_are_shown(tiny_run, tmp_path):
    from evprop.pipeline.stages import report_stage
    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run[0], run_dir)
    train = json.loads((run_dir / "train.json").read_text())
    train["measured_energy"] = {"joules": 123.5, "seconds": 4.0, "source": "RAPL package-0"}
    (run_dir / "train.json").write_text(json.dumps(train))
    report = report_stage(run_dir)
    assert report["energy"]["measured"]["training"]["joules"] == 123.5
    assert report["energy"]["measured"]["verification"]["joules"] is None
    page = (run_dir / "report.html").read_text()
    assert "123.5 J" in page and "RAPL package-0" in page and "not measurable here" in page


def test_schema_names_what_is_wrong(tiny_run):
    report = copy.deepcopy(tiny_run[1])
    del report["accuracy"]["lava"]["n_samples"]
    report["energy"]["estimates"][0]["kind"] = "measurement"
    report["spikes"]["per_layer"]["hidden"]["mean_per_sample"] = "many"
    report["quantisation"]["summary"]["prediction_agreement"] = 1.5
    problems = validate_report(report)
    assert any(p.startswith("report.accuracy.lava.n_samples: missing") for p in problems)
    assert any(p.startswith("report.energy.estimates[0].kind:") for p in problems)
    assert any(p.startswith("report.spikes.per_layer.hidden.mean_per_sample: expected number") for p in problems)
    assert any("prediction_agreement: 1.5 above" in p for p in problems)
    assert len(problems) == 4


# ---- report.html ----

def test_html_is_self_contained_with_every_section(tiny_run):
    page = (tiny_run[0] / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"](?!data:|#)""", page), "external resource in report.html"
    assert page.count("data:image/png;base64,") >= 7
    for title in ("Accuracy per stage", "Learning curves", "Confusion matrices", "Spike rasters", "Spike counts",
                  "Learned parameters", "Quantisation", "Energy", "Versions, hardware and timing", "Configuration"):
        assert f">{title}</h2>" in page, title
    for e in tiny_run[1]["energy"]["estimates"]:
        assert f"ESTIMATE, {e['model']}" in page


def test_report_renders_in_a_headless_browser(tiny_run, tmp_path):
    import matplotlib.image
    chromium = require_tool("chromium", "chromium-browser")
    png = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
                        "--window-size=1200,6000", (tiny_run[0] / "report.html").resolve().as_uri()],
                       capture_output=True, timeout=120, check=False)
    assert png.is_file() and png.stat().st_size > 100_000
    image = matplotlib.image.imread(png)[..., :3]
    assert image.shape[:2] == (6000, 1200)
    inked = (image < 0.9).any(axis=2)
    assert inked.mean() > 0.05                               # not a blank page
    assert inked[:1000].any() and inked[-2000:].any() or inked[3000:].mean() > 0.01   # content down the page
    assert len(np.unique((image * 15).astype(int).reshape(-1, 3), axis=0)) > 50       # figures, not just text


# ---- energy estimates ----

def test_estimates_are_counts_times_published_constants():
    loihi = loihi1_estimate(COUNTS)
    expected = 200000 * 23.6 + 15000 * 81 + 1000 * 52 + 1005 * 1.7
    assert loihi["estimated_uj_per_inference"] == pytest.approx(expected * 1e-6)
    by_model = {e["model"]: e for e in neuromorphic_estimates(COUNTS)}
    assert by_model["spinnaker2-2019"]["estimated_uj_per_inference"] == pytest.approx(
        (200000 * 450 + 16000 * 2190) * 1e-6)
    assert by_model["truenorth-2014"]["estimated_uj_per_inference"] == pytest.approx(200000 * 26 * 1e-6)
    assert "hops are missing" in loihi1_estimate(COUNTS, n_neurons=5000)["assumptions"]


def test_dense_baseline_counts_every_synapse_every_step_and_the_weight_reads():
    spec = random_network(n_in=5, n_hidden=12, n_out=3, n_steps=60)
    dense = dense_counts(spec)
    assert dense["synapses"] == 5 * 12 + 12 * 12 + 12 * 3
    assert dense["macs_per_inference"] == 60 * dense["synapses"]
    by_model = {e["model"]: e for e in conventional_estimates(dense)}
    fp32 = by_model["horowitz45-dense-fp32-sram"]
    reads = next(t for t in fp32["terms"] if t["what"].startswith("64-bit weight reads"))
    assert reads["count"] == 60 * dense["synapses"] * 4 / 8 and reads["pj_each"] == 10.0   # 960 B: 8 KB SRAM
    assert by_model["horowitz45-dense-fp32-dram"]["estimated_uj_per_inference"] > fp32["estimated_uj_per_inference"]
    macs = next(t for t in by_model["horowitz45-dense-int8-sram"]["terms"] if "multiply" in t["what"])
    assert macs["pj_each"] == HOROWITZ["pj_per_mac_int8"] == 0.23
    assert sram_read_pj(40_000) == (100.0, "1 MB SRAM") and sram_read_pj(2 ** 21)[0] == 1300.0


# ---- energy meter ----

def _fake_rapl(root: Path, value: int, max_range: int = 1000) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    (zone / "energy_uj").write_text(f"{value}\n")
    sub = root / "intel-rapl:0:0"                 # a subzone (core) is not counted twice
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("5\n")
    return zone


def test_energy_meter_reads_rapl_across_a_wrap(tmp_path):
    zone = _fake_rapl(tmp_path, 900)
    with EnergyMeter(rapl_root=tmp_path, use_gpu=False, poll_s=0) as meter:
        (zone / "energy_uj").write_text("300\n")        # wrapped: 900 -> 1000 == 0 -> 300
    result = meter.result()
    assert result["joules"] == pytest.approx(400e-6) and result["source"] == "RAPL package-0"
    assert result["seconds"] >= 0
    assert wrapped_delta(100, 250, 1000) == 150 and wrapped_delta(900, 300, 1000) == 400


def test_energy_meter_says_not_measurable_without_counters(tmp_path):
    with EnergyMeter(rapl_root=tmp_path / "absent", use_gpu=False) as meter:
        pass
    result = meter.result()
    assert result["joules"] is None and result["source"].startswith("not measurable here: no RAPL counters")
    assert per_inference(None, 10, "x")["source"].startswith("not measurable here")
    assert per_inference({"joules": 2.0, "seconds": 1.0, "source": "RAPL package-0"}, 4, "x")[
        "joules_per_inference"] == 0.5


# ---- uncertainty of accuracies ----

def test_wilson_and_newcombe_intervals_match_published_values():
    """Newcombe (1998), Table I: 81/263 -> Wilson [0.2553, 0.3662]; Table II, example (e) 56/70 vs 48/80:
    difference 0.2 with hybrid score interval [0.0524, 0.3339]."""
    from evprop.pipeline.stats import difference_interval_counts, wilson_interval
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = difference_interval_counts(48, 80, 56, 70)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_paired_interval_sees_one_way_disagreements():
    """5 of 1000 samples lost and none gained: the paired interval excludes 0, the unpaired one from the counts
    does not (it ignores that the other 995 answers are identical)."""
    from evprop.pipeline.stats import (difference_interval_counts, excludes_zero, paired_difference_interval)
    before = np.r_[np.ones(967), np.zeros(33)]
    after = before.copy()
    after[:5] = 0
    paired = paired_difference_interval(before, after)
    assert excludes_zero(paired) and paired[1] < 0 and paired[0] >= -0.011
    assert not excludes_zero(difference_interval_counts(967, 1000, 962, 1000))


def test_report_accuracies_carry_their_intervals(tiny_run):
    from evprop.pipeline.stats import wilson_interval
    report = tiny_run[1]
    for key, n_key in (("float", "n_test"), ("fixed_point", "n_test"), ("lava", "n_samples")):
        entry = report["accuracy"][key]
        assert entry["test_ci95"] == pytest.approx(list(wilson_interval(round(entry["test"] * entry[n_key]),
                                                                        entry[n_key])))
        assert entry["test_ci95"][0] <= entry["test"] <= entry["test_ci95"][1]
    summary = report["quantisation"]["summary"]
    low, high = summary["accuracy_change_pp_ci95"]
    assert low <= summary["accuracy_change_pp"] + 1e-9 and summary["accuracy_change_pp"] - 1e-9 <= high
    assert summary["accuracy_change_interval"] == "paired bootstrap over the test samples"
    page = (tiny_run[0] / "report.html").read_text()
    assert "95% CI" in page
