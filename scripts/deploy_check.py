"""Issue 8's deployment bar: a Yin-Yang network with learned delays and time constants, quantised with
quantisation-aware fine-tuning and verified in Lava, over 3 seeds: every verified sample bit-exact, and the
fixed-point accuracy after fine-tuning against the float accuracy. Writes benchmarks/deploy_check.json.

    .venv/bin/python scripts/deploy_check.py [--seeds 3] [--jobs 2] [--lava-samples N]
    (about 10 minutes on 2 cores; --lava-samples 1000 verifies the whole test set in Lava, 85 s more per seed)
"""

import argparse
import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def one_seed(args):
    seed, out, lava_samples = args
    from evprop.pipeline.config import load_config
    from evprop.pipeline.stages import run_pipeline
    overrides = [f"train.seed={seed}"] + ([f"verify.lava_samples={lava_samples}"] if lava_samples else [])
    config = load_config(ROOT / "configs" / "yinyang_deploy.toml", overrides)
    report = run_pipeline(config, Path(out) / f"seed{seed}")
    acc, eq = report["accuracy"], report["equivalence"]["emulator_vs_lava"]
    return {"seed": seed, "float_test": acc["float"]["test"], "fixed_point_test": acc["fixed_point"]["test"],
            "fixed_point_before_finetuning": acc["fixed_point"].get("before_finetuning"),
            "float_after_finetuning": acc["fixed_point"].get("float_after_finetuning"),
            "lava_bit_exact": eq["bit_exact"], "lava_samples": eq["n_samples"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "deploy_check")
    parser.add_argument("--lava-samples", type=int, default=None,
                        help="test samples verified in Lava (default: the config's verify.lava_samples)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(one_seed, [(seed, args.out, args.lava_samples) for seed in range(args.seeds)])
    gap = [100 * (r["float_test"] - r["fixed_point_test"]) for r in rows]
    result = {"runs": rows, "mean_float_minus_fixed_pp": float(np.mean(gap)),
              "all_bit_exact": all(r["lava_bit_exact"] for r in rows)}
    (ROOT / "benchmarks" / "deploy_check.json").write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"seed {r['seed']}: float {100 * r['float_test']:.2f}%, fixed point {100 * r['fixed_point_test']:.2f}% "
              f"(before fine-tuning {100 * r['fixed_point_before_finetuning']:.2f}%), Lava bit-exact "
              f"{r['lava_bit_exact']} on {r['lava_samples']} samples")
    print(f"mean float - fixed point: {result['mean_float_minus_fixed_pp']:.2f} pp; all bit-exact: "
          f"{result['all_bit_exact']}")


if __name__ == "__main__":
    main()
