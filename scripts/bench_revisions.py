"""Throughput of two revisions of evprop measured in one run: `evprop bench` of each revision, interleaved (A B A B
...), so both see the same machine state. Used to show that a rearrangement kept the speed (issue 12).

    .venv/bin/python scripts/bench_revisions.py BASE_REV NEW_REV [--rounds 3] [--delays]
        [--out benchmarks/bench_revisions.json]

Each revision is checked out with `git worktree add --detach` into a temporary folder and run with that folder
first on PYTHONPATH (the venv's other packages are shared). Prints and stores one JSON object: per revision every
round's samples/s and the median; the ratio new / base of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_once(tree: Path, hidden: int, steps: int, batch: int, delays: bool) -> dict:
    command = [sys.executable, "-m", "evprop.pipeline.cli", "bench", "--json", "--hidden", str(hidden),
               "--steps", str(steps), "--batch", str(batch)] + (["--delays"] if delays else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--delays", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "bench_revisions.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from evprop.pipeline.measure import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for label in ("base", "new"):
            rev = getattr(args, label)
            trees[label] = Path(tmp) / label
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[label]), rev], cwd=ROOT, check=True)
        try:
            rounds = {"base": [], "new": []}
            for _ in range(args.rounds):
                for label in ("base", "new"):
                    result = bench_once(trees[label], args.hidden, args.steps, args.batch, args.delays)
                    rounds[label].append(result["samples_per_s"])
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    medians = {label: statistics.median(values) for label, values in rounds.items()}
    result = {"base": args.base, "new": args.new, "hidden": args.hidden, "steps": args.steps, "batch": args.batch,
              "delays": args.delays, "samples_per_s": rounds, "median_samples_per_s": medians,
              "ratio_new_over_base": medians["new"] / medians["base"], "machine": machine_info(),
              "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
