"""Run the training-speed benchmark matrix and append one JSON line per configuration to benchmarks/results.jsonl.

    .venv/bin/python benchmarks/run_all.py            (from the repository root; ~10 min on 2 cores)
"""

import json
import logging
import sys
from pathlib import Path

from evprop.pipeline.bench import run_bench

MATRIX = [
    # (algorithm, hidden, steps, delays, repeats)
    ("eventprop", 256, 1000, False, 3), ("eventprop", 512, 1000, False, 3),
    ("eventprop", 256, 2000, False, 3), ("eventprop", 512, 2000, False, 3),
    ("eventprop", 256, 1000, True, 3), ("eventprop", 512, 1000, True, 3),
    ("bptt", 256, 1000, False, 3), ("exodus", 256, 1000, False, 3), ("slayer", 256, 1000, False, 3),
    ("bptt", 512, 1000, False, 3), ("exodus", 512, 1000, False, 3), ("slayer", 512, 1000, False, 3),
    ("bptt", 256, 2000, False, 1),
]


def main(out=Path(__file__).parent / "results.jsonl"):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    only = sys.argv[1:]
    for algorithm, hidden, steps, delays, repeats in MATRIX:
        if only and algorithm not in only:
            continue
        result = run_bench(hidden=hidden, steps=steps, delays=delays, algorithm=algorithm, repeats=repeats)
        with out.open("a") as handle:
            handle.write(json.dumps(result, separators=(",", ":")) + "\n")
        logging.info("%s hidden=%d steps=%d delays=%s: %.1f samples/s, peak %.0f MB", algorithm, hidden, steps,
                     delays, result["samples_per_s"], result["peak_state_mb"])


if __name__ == "__main__":
    main()
