"""Time per Lava step of evprop's RingDelayDense against Lava 0.10's own DelayDense (fixed_pt), SHD-sized.

A 700 -> 256 connection with integer delays 0..62 and random 8-bit weights, 700 inputs spiking at 10 Hz (dt 1 ms).
Both processes run in one Lava child (evprop.hw_sim.lava_procs.delay_check, which also records every message: the
script checks the two message streams are identical). Lava's `run` includes compiling and starting the processes,
so every kind runs twice, each time alone in a fresh child, for a short and a long input, and the time per step is the difference of the two wall
times divided by the difference of the step counts (RingDelayDense needs a much longer run to be timed).

    nice .venv/bin/python scripts/bench_delay_dense.py [--out benchmarks/delay_dense.json]

Prints one JSON object and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evprop.hw_sim.lava_procs.delay_check import DRAIN_STEPS, compare_connections  # noqa: E402
from evprop.pipeline.measure import machine_info  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-in", type=int, default=700)
    parser.add_argument("--n-out", type=int, default=256)
    parser.add_argument("--max-delay", type=int, default=62)
    parser.add_argument("--rate", type=float, default=0.01, help="spike probability per input and step")
    parser.add_argument("--lava-steps", type=int, nargs=2, default=(10, 40),
                        help="short and long input for Lava's DelayDense [steps]")
    parser.add_argument("--ring-steps", type=int, nargs=2, default=(10, 1000),
                        help="short and long input for RingDelayDense [steps] (it needs many steps to be timed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "delay_dense.json")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    weights = rng.integers(-128, 128, (args.n_out, args.n_in))
    delays = rng.integers(0, args.max_delay + 1, (args.n_out, args.n_in))
    delays[0, 0] = args.max_delay
    steps = {"lava": tuple(args.lava_steps), "ring": tuple(args.ring_steps)}
    long_raster = rng.random((max(max(v) for v in steps.values()), args.n_in)) < args.rate
    # the same input through both: every message identical
    check = compare_connections(weights, delays, long_raster[:min(args.lava_steps)], 0, "mixed",
                                timeout_s=args.timeout)
    if not np.array_equal(check["lava"]["messages"], check["ring"]["messages"]):
        raise SystemExit("RingDelayDense and DelayDense sent different messages")
    runs, ms_per_step = {}, {}
    for kind, (short, long) in steps.items():
        run_s = {n: compare_connections(weights, delays, long_raster[:n], 0, "mixed", kinds=(kind,),
                                        timeout_s=args.timeout)[kind]["run_s"] for n in (short, long)}
        ms_per_step[kind] = 1e3 * (run_s[long] - run_s[short]) / (long - short)
        runs[kind] = {str(n + args.max_delay + DRAIN_STEPS): t for n, t in run_s.items()}
    result = {
        "what": "Lava 0.10 fixed_pt wall time per time step of one delayed connection (difference of two run lengths)",
        "n_in": args.n_in, "n_out": args.n_out, "max_delay": args.max_delay, "input_rate_per_step": args.rate,
        "messages_identical": True,
        "ms_per_step": {"lava_delay_dense": ms_per_step["lava"], "ring_delay_dense": ms_per_step["ring"]},
        "speedup": ms_per_step["lava"] / ms_per_step["ring"],
        "run_s_by_lava_steps": runs,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
