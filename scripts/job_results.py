"""The README's results of a whole job: `evprop run CONFIG` in a fresh run directory, its report.json boiled down to
the numbers the README quotes, with 95% intervals of every accuracy (evprop/pipeline/stats.py), the machine and
the evprop commit.

    nice .venv/bin/python scripts/job_results.py configs/default.toml        # -> benchmarks/default.json
    nice .venv/bin/python scripts/job_results.py configs/digits.toml         # -> benchmarks/digits.json
    nice .venv/bin/python scripts/job_results.py configs/spoken_digits.toml --spoken-digits
        # first synthesises the spoken digits with espeak-ng into a temporary folder (never into the repository)

Prints one JSON object and writes it to --out (default benchmarks/<config stem>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evprop.pipeline.measure import machine_info  # noqa: E402
from evprop.pipeline.stats import accuracy_interval, excludes_zero  # noqa: E402


def evprop(*args: str) -> None:
    """One evprop command in a child process (the same as the command line); a failure stops the script."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "evprop.pipeline.cli", "--quiet", *args], check=True, env=env, cwd=ROOT)


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    return proc.stdout.strip() + ("-dirty" if dirty else "") if proc.returncode == 0 else "unknown"


def summary(report: dict, wall_s: float) -> dict:
    acc, quant = report["accuracy"], report["quantisation"]["summary"]
    out = {
        "float_test_accuracy": acc["float"]["test"], "float_test_ci95": acc["float"]["test_ci95"],
        "float_train_accuracy": acc["float"]["train"], "n_test": acc["float"]["n_test"],
        "best_epoch": report["training"]["best_epoch"] + 1, "epochs": report["training"]["epochs"],
        "best_validation_accuracy": report["training"]["best_validation_accuracy"],
        "fixed_point_test_accuracy": acc["fixed_point"]["test"],
        "fixed_point_test_ci95": acc["fixed_point"]["test_ci95"],
        "fixed_minus_float_pp": quant["accuracy_change_pp"],
        "fixed_minus_float_pp_ci95": quant["accuracy_change_pp_ci95"],
        "fixed_minus_float_interval": quant["accuracy_change_interval"],
        "fixed_minus_float_beyond_noise": excludes_zero(quant["accuracy_change_pp_ci95"]),
        "v_saturations_seen": quant["v_saturations_seen"],
        "lava_test_accuracy": acc["lava"]["test"], "lava_samples": acc["lava"]["n_samples"],
        "lava_test_ci95": accuracy_interval(acc["lava"]["test"], acc["lava"]["n_samples"]),
        "lava_bit_exact": report["equivalence"]["emulator_vs_lava"]["bit_exact"],
        "hidden_spikes_per_sample": {k: v["mean_per_sample"] for k, v in report["spikes"]["per_layer"].items()},
        "synaptic_ops_per_sample": report["spikes"]["synaptic_ops_per_sample"],
        "estimated_uj_per_inference": report["energy"]["estimated_uj_per_inference"],
        "train_s": report["timing"]["train_s"], "verify_s": report["timing"]["verify_s"], "wall_s": wall_s,
    }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--spoken-digits", action="store_true",
                        help="synthesise the spoken digits first (espeak-ng) and point data.root at them")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or ROOT / "benchmarks" / f"{args.config.stem}.json"
    with tempfile.TemporaryDirectory(prefix="evprop-job-") as tmp:
        extra, data_s = [], None
        if args.spoken_digits:
            t0 = time.perf_counter()
            evprop("data", "spoken-digits", "--out", f"{tmp}/spoken_digits")
            data_s = time.perf_counter() - t0
            extra = ["--set", f"data.root={tmp}/spoken_digits"]
        t0 = time.perf_counter()
        evprop("run", str(args.config.resolve()), "--out", f"{tmp}/run", *extra)
        wall_s = time.perf_counter() - t0
        report = json.loads(Path(f"{tmp}/run/report.json").read_text())
    result = {"config": str(args.config), "command": f"evprop run {args.config}",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "evprop_commit": git_commit(),
              "machine": machine_info(), **summary(report, wall_s)}
    if data_s is not None:
        result["data_synthesis_s"] = data_s
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
