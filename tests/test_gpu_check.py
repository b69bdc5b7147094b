"""scripts/gpu_check.sh, the check for a GPU machine where nothing can be installed, run here as it would run there:
from the source tree, nir from the wheel folder, in numba's CUDA simulator on tiny sizes (~25 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(simulator: bool):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_ENABLE_CUDASIM")}
    env["PYTHON"] = sys.executable
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run(["bash", str(SCRIPT), "--tiny"], cwd="/", env=env, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_gpu_check_in_the_cuda_simulator_prints_agreement_speed_and_target():
    code, out, err = _run(simulator=True)
    assert code == 0, err[-3000:]
    assert out["mode"] == "tiny" and out["environment"]["cuda_simulator"] is True and out["passed"] is True
    cases = out["agreement"]["cases"]
    assert [(c["precision"], c["max_delay_steps"] > 0) for c in cases] == \
        [("float64", False), ("float64", True), ("float32", False), ("float32", True)]
    for case in cases:
        assert case["spikes_identical"] and case["hidden_spikes_cpu"] == case["hidden_spikes_cuda"] > 10
        limit = 1e-12 if case["precision"] == "float64" else 1e-5
        assert 0 <= max(case["gradient_max_rel_diff"].values()) < limit, case
    assert set(cases[1]["gradient_max_rel_diff"]) == {"weights", "delays", "tau_mem", "tau_syn"}
    core = out["core"]
    assert core["nir_round_trip_identical"] and core["emulator_hidden_spikes"] > 0
    assert "scripts/gpu_check_wheels/nir-" in core["nir_imported_from"]        # from the committed wheel
    speed = out["speed"]
    assert [(s["hidden"], s["batch"]) for s in speed] == [(4, 2), (4, 4), (8, 2), (8, 4)]
    for entry in speed:
        for device in ("cuda", "cpu"):
            assert entry[device]["samples_per_s"] > 0 and len(entry[device]["update_seconds"]) == 1
    target = out["target"]
    assert target["samples_per_s"] == 6300 and target["hidden"] == 256 and target["batch"] == 32
    assert target["met"] is None and target["measured_samples_per_s"] is None      # nothing measured at 256 here
    assert out["seconds"] < 300


def test_gpu_check_without_a_gpu_says_so_and_fails():
    code, out, _ = _run(simulator=False)
    assert code == 1 and out["passed"] is False
    assert out["environment"]["cuda_available"] is False and "no CUDA device" in out["error"]
