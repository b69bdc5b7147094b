"""configs/speech_digits.toml on the Free Spoken Digit Dataset (FSDD; Zohar Jackson, CC BY-SA 4.0,
github.com/Jakobovski/free-spoken-digit-dataset): the data set's own split (takes 0-4 test, 5-49 train; the whole
pipeline: float, fixed point, Lava) and leave-one-speaker-out (float and the linear reference per fold). Accuracies
with binomial 95% confidence intervals (Wilson). Writes benchmarks/speech_digits.json.

    .venv/bin/python scripts/speech_digits_fsdd.py MANIFEST.csv [--folds all|none|george,lucas] [--out runs/fsdd]

MANIFEST: path,label,speaker,take (FSDD's recordings/{digit}_{speaker}_{take}.wav). Nothing is tuned per split
or speaker: every run uses the recipe as it is, only the split keys change.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from evprop.pipeline.stats import accuracy_interval as wilson

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "speech_digits.toml"
TEST_TAKES = [0, 1, 2, 3, 4]


def evprop_command(command: str, run_dir: Path, overrides: list) -> list:
    args = [sys.executable, "-m", "evprop.pipeline.cli", "--quiet", command, str(CONFIG), "--out", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    return args


def speakers_of(manifest: Path) -> list:
    from evprop.data.manifest import read_manifest
    m = read_manifest(manifest)
    return [m.speaker_names[i] for i in sorted(set(m.speakers.tolist()))]


def take_split_result(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    acc, n = report["accuracy"], report["accuracy"]["float"]["n_test"]
    return {"test_takes": TEST_TAKES, "n_test": n, "train_s": report["timing"]["train_s"],
            "epochs": report["training"]["epochs"], "best_epoch": report["training"]["best_epoch"],
            "best_validation_accuracy": report["training"]["best_validation_accuracy"],
            "float": acc["float"]["test"], "float_ci95": wilson(acc["float"]["test"], n),
            "fixed_point": acc["fixed_point"]["test"], "fixed_point_ci95": wilson(acc["fixed_point"]["test"], n),
            "fixed_minus_float_pp": 100 * (acc["fixed_point"]["test"] - acc["float"]["test"]),
            "lava": acc["lava"]["test"], "lava_samples": acc["lava"]["n_samples"],
            "lava_bit_exact": report["equivalence"]["emulator_vs_lava"]["bit_exact"],
            "reference_linear": acc["reference_linear"]["test"],
            "reference_linear_ci95": wilson(acc["reference_linear"]["test"], n)}


def fold_result(run_dir: Path) -> dict:
    train = json.loads((run_dir / "train.json").read_text())
    n = train["n_test"]
    return {"n_test": n, "float": train["float_test_accuracy"], "float_ci95": wilson(train["float_test_accuracy"], n),
            "reference_linear": train["reference_linear"]["test"], "train_s": train["train_s"],
            "epochs": train["epochs"], "best_epoch": train["best_epoch"],
            "best_validation_accuracy": train["best_validation_accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--folds", default="all", help="leave-one-speaker-out folds: all, none, or speaker names")
    parser.add_argument("--skip-take-split", action="store_true", help="only the speaker folds")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each is one process)")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: collect the finished runs under --out (an unfinished one is left out)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fsdd")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "speech_digits" / "cache")
    parser.add_argument("--result", type=Path, default=ROOT / "benchmarks" / "speech_digits.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = [f"data.manifest='{args.manifest.resolve()}'", "data.test_manifest=''", f"data.cache_dir='{args.cache}'"]
    folds = [] if args.folds == "none" else speakers_of(args.manifest) if args.folds == "all" \
        else args.folds.split(",")
    runs = [] if args.skip_take_split else [("takes", "run", common + [f"data.test_takes={TEST_TAKES}"])]
    runs += [(f"loso_{s}", "train", common + [f"data.test_speakers=['{s}']"]) for s in folds]
    unfinished = []
    if args.collect:
        unfinished = [name for name, command, _ in runs
                      if not (args.out / name / ("report.json" if command == "run" else "train.json")).is_file()]
        runs = []
    if runs:      # encode once (cached) before the runs start in parallel
        from evprop.pipeline.build import load_splits
        from evprop.pipeline.config import load_config
        load_splits(load_config(CONFIG, runs[0][2]))
    start, pending, failed = time.perf_counter(), list(runs), list(unfinished)
    active = []
    while pending or active:
        while pending and len(active) < args.jobs:
            name, command, overrides = pending.pop(0)
            log = open(args.out / f"{name}.log", "w")
            active.append((name, subprocess.Popen(evprop_command(command, args.out / name, overrides), cwd=ROOT,
                                                  stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for item in list(active):
            if item[1].poll() is not None:
                active.remove(item)
                if item[1].returncode != 0:
                    failed.append(item[0])
    result = json.loads(args.result.read_text()) if args.result.is_file() else {}
    result.update({"config": "configs/speech_digits.toml", "data": "FSDD (Zohar Jackson, CC BY-SA 4.0, "
                   "github.com/Jakobovski/free-spoken-digit-dataset), " + str(args.manifest.name),
                   "command": " ".join(["scripts/speech_digits_fsdd.py", "<FSDD folder>/" + args.manifest.name]
                                       + sys.argv[2:]),
                   "wall_s": time.perf_counter() - start, "failed": failed})
    if not args.skip_take_split and "takes" not in failed:
        result["take_split"] = take_split_result(args.out / "takes")
    per_fold = result.get("leave_one_speaker_out", {}).get("folds", {})
    per_fold.update({s: fold_result(args.out / f"loso_{s}") for s in folds if f"loso_{s}" not in failed})
    if per_fold:
        done = list(per_fold.values())
        pooled = sum(f["float"] * f["n_test"] for f in done) / sum(f["n_test"] for f in done)
        result["leave_one_speaker_out"] = {
            "folds": per_fold, "n_folds": len(done), "mean_float": sum(f["float"] for f in done) / len(done),
            "mean_reference_linear": sum(f["reference_linear"] for f in done) / len(done),
            "pooled_float_ci95": wilson(pooled, sum(f["n_test"] for f in done))}
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
