"""Seed 003 figure 4 on evprop: Yin-Yang with learned delays and HALF the hidden neurons against the same network
without delays at full width, mean +- sd over 3 seeds each (the bar of issue 4). Writes
benchmarks/yinyang_delays.json and prints the comparison.

    .venv/bin/python scripts/yinyang_delays.py [--seeds 3] [--jobs 2]      (about 10 minutes on 2 cores)
"""

import argparse
import json
import logging
from pathlib import Path

from evprop.pipeline.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "yinyang_delays")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = {}
    for name in ("yinyang_nodelay", "yinyang_delays"):
        summary = run_sweep(ROOT / "configs" / f"{name}.toml", [], args.seeds, args.out / name, args.jobs)
        rows[name] = summary["summary"][0] | {"accuracies": [r["float_test_accuracy"] for r in summary["runs"]]}
    result = {"delays_half_width": rows["yinyang_delays"], "no_delays_full_width": rows["yinyang_nodelay"],
              "delays_at_least_as_good": rows["yinyang_delays"]["test_accuracy_mean"]
              >= rows["yinyang_nodelay"]["test_accuracy_mean"]}
    (ROOT / "benchmarks" / "yinyang_delays.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name}: test {100 * row['test_accuracy_mean']:.2f} +- {100 * row['test_accuracy_sd']:.2f}% "
              f"(n = {row['n']}: {', '.join(f'{100 * a:.1f}' for a in row['accuracies'])})")
    print("delays with half the neurons >= no delays at full width:", result["delays_at_least_as_good"])


if __name__ == "__main__":
    main()
