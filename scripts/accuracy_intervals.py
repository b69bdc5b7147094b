"""95% intervals of the accuracies and accuracy differences the README quotes from stored results that hold only
accuracies (no per-sample predictions): benchmarks/deploy_check.json, benchmarks/yinyang_delays.json, and the
default run's table (DEFAULT_RUN below: the README's numbers of commit 411b9c8, whose run directory was not stored;
scripts/job_results.py configs/default.toml stores the next measurement in benchmarks/default.json).

- one accuracy of n test samples: Wilson score interval;
- two accuracies on n test samples each: Newcombe's hybrid score interval from the counts (it ignores the pairing
  of the samples, so it is wider than a paired interval would be);
- means over seeds: Welch's t interval of the difference of the two means (the seed-to-seed spread).

    .venv/bin/python scripts/accuracy_intervals.py      # -> benchmarks/accuracy_intervals.json (seconds)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evprop.pipeline.stats import difference_interval_counts, excludes_zero, wilson_interval  # noqa: E402

YINYANG_TEST_SAMPLES = 1000     # configs/yinyang_delays.toml and yinyang_nodelay.toml: data.test_size default
DEPLOY_TEST_SAMPLES = 1000      # scripts/deploy_check.py: the whole Yin-Yang test set
DEFAULT_RUN = {"float_test": 0.967, "fixed_point_test": 0.964, "n_test": 1000, "lava_test": 0.95, "lava_samples": 20}


def pct(interval) -> list:
    return [round(100 * x, 2) for x in interval]


def counted(accuracy: float, n: int) -> int:
    return int(round(accuracy * n))


def difference(acc_a: float, acc_b: float, n: int) -> dict:
    """accuracy_b - accuracy_a [pp] with Newcombe's 95% interval."""
    interval = difference_interval_counts(counted(acc_a, n), n, counted(acc_b, n), n)
    return {"pp": round(100 * (acc_b - acc_a), 2), "ci95_pp": pct(interval), "beyond_noise": excludes_zero(interval)}


def deploy_check(path: Path) -> list:
    n = DEPLOY_TEST_SAMPLES
    rows = []
    for run in json.loads(path.read_text())["runs"]:
        rows.append({
            "seed": run["seed"],
            "float_test_ci95_pct": pct(wilson_interval(counted(run["float_test"], n), n)),
            "fixed_point_before_finetuning_ci95_pct": pct(wilson_interval(
                counted(run["fixed_point_before_finetuning"], n), n)),
            "fixed_point_after_finetuning_ci95_pct": pct(wilson_interval(counted(run["fixed_point_test"], n), n)),
            "finetuning_gain": difference(run["fixed_point_before_finetuning"], run["fixed_point_test"], n),
            "fixed_point_after_minus_float": difference(run["float_test"], run["fixed_point_test"], n),
        })
    return rows


def welch(a, b) -> dict:
    """mean(b) - mean(a) with Welch's 95% t interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = scipy_stats.t.ppf(0.975, dof) * np.sqrt(va + vb)
    diff = b.mean() - a.mean()
    return {"pp": round(100 * diff, 2), "ci95_pp": pct([diff - half, diff + half]),
            "beyond_noise": bool(diff - half > 0 or diff + half < 0), "welch_dof": round(float(dof), 2)}


def yinyang_delays(path: Path) -> dict:
    data = json.loads(path.read_text())
    n = YINYANG_TEST_SAMPLES
    out = {name: [{"accuracy_pct": round(100 * a, 2), "ci95_pct": pct(wilson_interval(counted(a, n), n))}
                  for a in data[name]["accuracies"]] for name in ("delays_half_width", "no_delays_full_width")}
    out["delays_minus_no_delays_mean"] = welch(data["no_delays_full_width"]["accuracies"],
                                               data["delays_half_width"]["accuracies"])
    return out


def default_run() -> dict:
    run, n = DEFAULT_RUN, DEFAULT_RUN["n_test"]
    return {"source": "README default-run table, measured in commit 411b9c8 (not stored)",
            "float_test_ci95_pct": pct(wilson_interval(counted(run["float_test"], n), n)),
            "fixed_point_test_ci95_pct": pct(wilson_interval(counted(run["fixed_point_test"], n), n)),
            "fixed_point_minus_float": difference(run["float_test"], run["fixed_point_test"], n),
            "lava_test_ci95_pct": pct(wilson_interval(counted(run["lava_test"], run["lava_samples"]),
                                                      run["lava_samples"]))}


def main() -> int:
    bench = ROOT / "benchmarks"
    result = {"method": __doc__.split("\n\n")[1],
              "deploy_check": deploy_check(bench / "deploy_check.json"),
              "yinyang_delays": yinyang_delays(bench / "yinyang_delays.json"),
              "default_run": default_run()}
    (bench / "accuracy_intervals.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
