"""The CI gate on verification summaries: pass/fail per criterion, JSON summary, JUnit XML."""

import json
import xml.etree.ElementTree as ET

import pytest

from evprop.pipeline.gate import GateCriteria, evaluate_gate, gate_run_dir, junit_xml, write_junit, \
    write_summary_json


def sample(i, spikes=True, outputs=True):
    return {"index": i, "spikes_identical": spikes, "outputs_identical": outputs,
            "spike_mismatches": 0 if spikes else 3, "max_abs_v_difference": 0 if outputs else 7,
            "first_spike_mismatch_step": None if spikes else 12}


def summary(per_sample, lava_acc=0.9):
    n = len(per_sample)
    return {"n_samples": n,
            "bit_exact": bool(n) and all(p["spikes_identical"] and p["outputs_identical"] for p in per_sample),
            "spikes_identical_fraction": sum(p["spikes_identical"] for p in per_sample) / max(n, 1),
            "outputs_identical_fraction": sum(p["outputs_identical"] for p in per_sample) / max(n, 1),
            "lava_test_accuracy": lava_acc, "per_sample": per_sample}


def test_default_gate_demands_bit_exactness():
    good = summary([sample(i) for i in range(4)])
    result = evaluate_gate(good)
    assert result.passed and [c.name for c in result.criteria] == ["bit_exact"]
    bad = summary([sample(0), sample(1, spikes=False), sample(2), sample(3, outputs=False)])
    result = evaluate_gate(bad)
    assert not result.passed
    assert "2 of 4 samples" in result.failures[0].message and "sample_1" in result.failures[0].message
    assert [s.passed for s in result.samples] == [True, False, True, False]
    assert "first in step 12" in result.samples[1].message and "7 LSB" in result.samples[3].message


def test_zero_samples_never_pass():
    assert not evaluate_gate(summary([])).passed


def test_output_agreement_threshold():
    s = summary([sample(0), sample(1), sample(2), sample(3, outputs=False)])     # agreement 0.75
    relaxed = GateCriteria(bit_exact=False, min_output_agreement=0.75)
    assert evaluate_gate(s, relaxed).passed
    strict = GateCriteria(bit_exact=False, min_output_agreement=0.8)
    result = evaluate_gate(s, strict)
    assert not result.passed and "0.7500 < required 0.8000" in result.failures[0].message


def test_accuracy_drop_in_percentage_points():
    s = summary([sample(0)])
    crit = GateCriteria(max_accuracy_drop_pp=1.0)
    assert evaluate_gate(s, crit, float_accuracy=0.90, fixed_point_accuracy=0.895).passed      # 0.5 pp
    result = evaluate_gate(s, crit, float_accuracy=0.90, fixed_point_accuracy=0.88)            # 2 pp
    assert not result.passed and result.failures[0].value == pytest.approx(2.0)
    assert "2.00 pp > allowed 1.00 pp" in result.failures[0].message
    assert evaluate_gate(s, crit, float_accuracy=0.80, fixed_point_accuracy=0.85).passed       # a gain passes
    missing = evaluate_gate(s, crit, float_accuracy=0.9)
    assert not missing.passed and "fixed-point test accuracy is not available" in missing.failures[0].message


def test_bad_criteria_and_summaries_are_refused():
    with pytest.raises(ValueError, match="min_output_agreement 1.5"):
        GateCriteria(min_output_agreement=1.5)
    with pytest.raises(ValueError, match="max_accuracy_drop_pp -1"):
        GateCriteria(max_accuracy_drop_pp=-1)
    with pytest.raises(ValueError, match="lacks 'bit_exact'"):
        evaluate_gate({"n_samples": 1})


def test_junit_counts_and_failures(tmp_path):
    s = summary([sample(0), sample(1, spikes=False), sample(2)])
    crit = GateCriteria(min_output_agreement=0.5, max_accuracy_drop_pp=0.1)
    result = evaluate_gate(s, crit, float_accuracy=0.9, fixed_point_accuracy=0.85)
    path = tmp_path / "junit.xml"
    write_junit(path, result, duration_s=2.5)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "6" and root.get("failures") == "3"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    criteria, samples = suites["evprop.verify.criteria"], suites["evprop.verify.samples"]
    assert criteria.get("tests") == "3" and criteria.get("failures") == "2"
    assert samples.get("tests") == "3" and samples.get("failures") == "1"
    failed = {c.get("name"): c.find("failure") for c in root.iter("testcase") if c.find("failure") is not None}
    assert set(failed) == {"bit_exact", "max_accuracy_drop", "sample_1"}
    assert "5.00 pp" in failed["max_accuracy_drop"].get("message")
    ET.fromstring(junit_xml(evaluate_gate(summary([sample(0)]))))          # passing run parses too


def test_run_dir_and_json_summary(tmp_path):
    (tmp_path / "verify.json").write_text(json.dumps(summary([sample(0), sample(1)])))
    (tmp_path / "train.json").write_text(json.dumps({"float_test_accuracy": 0.91}))
    (tmp_path / "quantise.json").write_text(json.dumps({"fixed_point_test_accuracy": 0.90}))
    crit = GateCriteria(max_accuracy_drop_pp=2.0)
    result = gate_run_dir(tmp_path, crit)
    assert result.passed and result.accuracies == {"float": 0.91, "fixed_point": 0.90, "lava": 0.9}
    write_summary_json(tmp_path / "gate.json", result, crit)
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["passed"] and data["format"] == "evprop-gate" and len(data["samples"]) == 2
    assert data["settings"]["max_accuracy_drop_pp"] == 2.0 and data["failures"] == []
    with pytest.raises(ValueError, match="verify.json not found"):
        gate_run_dir(tmp_path / "nothing")


def test_failed_run_still_gives_a_junit_failure():
    from evprop.pipeline.gate import failed_run
    result = failed_run("Lava run did not finish within its hard timeout of 5 s")
    root = ET.fromstring(junit_xml(result))
    assert not result.passed and root.get("tests") == "1" and root.get("failures") == "1"
    assert "hard timeout of 5 s" in root.find(".//failure").get("message")
