"""Issue 16's NetX check, the three commands as a user types them:

    evprop run configs/default.toml --out R --set quantise.profile=netx
    evprop export R --format netx
    evprop verify R --runtime netx --samples 20

Records each command's exit code and wall time, the float and fixed-point (NetX profile) test accuracies with
their binomial standard errors and the paired standard error of their difference (same 1000 test samples), what
the default (lava) profile reaches on the same network, and netx's verification (bit-exactness over the whole
stream, per sample, and against fresh-state emulation). Writes benchmarks/netx_check.json.

    .venv/bin/python scripts/netx_check.py [--run-dir runs/netx_check] [--samples 20] [--after-training]
    (about 2 minutes on 2 idle cores: the default run trains 40 epochs)

--after-training keeps the training of an earlier `evprop run` in --run-dir and runs the stages `evprop run` runs
after it (`evprop quantise`, `export`, `verify`, `report`) instead; the JSON lists the commands that ran.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def evprop(*args) -> dict:
    """Run one evprop command as a user would; its exit code and wall time."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evprop.pipeline.cli", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
    return {"command": "evprop " + " ".join(args), "exit_code": proc.returncode,
            "wall_s": round(time.perf_counter() - started, 1)}


def accuracy(correct: np.ndarray) -> dict:
    """Fraction correct and its binomial standard error."""
    p = float(np.mean(correct))
    return {"value": p, "standard_error": float(np.sqrt(p * (1 - p) / len(correct))), "n": int(len(correct))}


def paired_difference_pp(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """100 * (mean a - mean b) on the same samples, with the standard error of a paired difference."""
    d = a_correct.astype(float) - b_correct.astype(float)
    return {"value": float(100 * d.mean()), "standard_error": float(100 * d.std(ddof=1) / np.sqrt(len(d)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "netx_check")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "netx_check.json")
    parser.add_argument("--note", default="", help="stored with the result (e.g. where the training came from)")
    parser.add_argument("--after-training", action="store_true",
                        help="keep the run's training, run only the stages after it (see the module docstring)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if args.after_training:
        commands = [evprop(stage, str(run_dir)) for stage in ("quantise", "export", "verify", "report")]
    else:
        commands = [evprop("run", "configs/default.toml", "--out", str(run_dir), "--set", "quantise.profile=netx")]
    commands += [evprop("export", str(run_dir), "--format", "netx"),
                evprop("verify", str(run_dir), "--runtime", "netx", "--samples", str(args.samples))]

    sys.path.insert(0, str(ROOT))
    from evprop.fixed_point.profiles import get_profile
    from evprop.pipeline.config import load_config
    from evprop.pipeline.report import analyse_run
    from evprop.pipeline.measure import machine_info, software_versions

    config = load_config(run_dir / "config.toml")
    analysis = analyse_run(run_dir, config)
    schedule = reset_schedule_check(run_dir, config, args.samples)
    float_ok = analysis.float_predictions == analysis.labels
    fixed_ok = analysis.fixed_predictions == analysis.labels
    quant = json.loads((run_dir / "quantise.json").read_text())
    netx = json.loads((run_dir / "verify_netx.json").read_text())
    nir = json.loads((run_dir / "verify.json").read_text())
    cost = quant["quantisation"]["profile_cost"]
    result = {
        "what": "default Yin-Yang run quantised with quantise.profile = netx, exported as NetX, run in Lava "
                "fixed_pt by lava-dl 0.6.0's loader and compared with the emulator",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True).stdout.strip(),
        "note": args.note,
        "commands": commands,
        "all_exit_zero": all(c["exit_code"] == 0 for c in commands),
        "profile": {key: value for key, value in vars(get_profile("netx")).items()},
        "float_test_accuracy": accuracy(float_ok),
        "fixed_point_test_accuracy_netx_profile": accuracy(fixed_ok),
        "fixed_point_minus_float_pp": paired_difference_pp(fixed_ok, float_ok),
        "fixed_point_test_accuracy_lava_profile": cost["unrestricted_fixed_point_test_accuracy"],
        "netx_profile_cost_pp": cost["cost_pp"],
        "netx_verify": {key: netx[key] for key in ("runtime", "reset", "n_samples", "bit_exact",
                                                   "spikes_identical_fraction", "outputs_identical_fraction",
                                                   "fresh_state", "lava_test_accuracy", "verify_s")},
        "nir_verify": {key: nir[key] for key in ("n_samples", "bit_exact", "lava_test_accuracy")},
        "netx_reset_schedule": schedule,
        "weight_exps": sorted({c["weight_exp"] for c in quant["quantisation"]["connections"].values()}),
        "clipped_weights": {name: c["clipped"] for name, c in quant["quantisation"]["connections"].items()},
        "versions": {**software_versions(), "lava-dl": _version("lava-dl")},
        "machine": machine_info(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["all_exit_zero"] else 1


def reset_schedule_check(run_dir: Path, config: dict, samples: int) -> dict:
    """The same samples through the same file with netx's own reset schedule (run_netx(reset="schedule")):
    bit-exactness against the emulated stream, agreement with fresh-state emulation, accuracy."""
    from evprop.fixed_point.emulator import readout_accuracy
    from evprop.fixed_point.spec import load_fixed_point
    from evprop.hw_sim.netx_sim import run_netx
    from evprop.pipeline.build import load_splits
    from evprop.pipeline.stages import trained_network
    test = load_splits(config)["test"]
    subset = test.subset(np.arange(min(samples, len(test))))
    result, eq = run_netx(run_dir / "model.net", load_fixed_point(run_dir / "fixed_point.npz"), subset,
                          timeout_s=config["verify"]["timeout_s"], reset="schedule")
    return {"n_samples": eq["n_samples"], "stream_bit_exact": eq["bit_exact"], "stream": eq["stream"],
            "fresh_state": eq["fresh_state"], "test_accuracy": readout_accuracy(trained_network(run_dir), result,
                                                                                subset)}


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
