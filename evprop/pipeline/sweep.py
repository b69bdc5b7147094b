"""Sweeps: configurations x seeds trained in parallel processes on one machine, summarised as mean +- sd, the way
the papers report (e.g. 93.5 +- 0.7%, n = 8).

`evprop sweep CONFIG --grid train.learning_rate=0.001,0.002 --grid network.hidden=128,256 --seeds 8` trains every
combination of the grid values with train.seed = 0..7, each in its own run directory
<out>/<combination>/seed<k>, and writes <out>/sweep.json.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np

from ..model.io import atomic_write
from .config import ConfigError, load_config, parse_override

log = logging.getLogger("evprop")


def parse_grid(entries: list) -> dict:
    """['key=v1,v2', ...] -> {key: [v1, v2]} (values read as TOML, like --set)."""
    grid = {}
    for entry in entries:
        if "=" not in entry:
            raise ConfigError(f"--grid {entry!r}: expected KEY=V1,V2,... with a dotted key")
        key, values = entry.split("=", 1)
        grid[key.strip()] = [parse_override(f"{key}={value}")[1] for value in values.split(",")]
    return grid


def combinations(grid: dict) -> list:
    """Every combination as a list of 'key=value' overrides."""
    keys = list(grid)
    return [[f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in zip(keys, values)]
            for values in itertools.product(*(grid[k] for k in keys))] or [[]]


def _label(overrides: list) -> str:
    return "_".join(o.replace(".", "-").replace("=", "_").replace('"', "") for o in overrides) or "base"


def _job(args):
    config_path, overrides, seed, run_dir = args
    from .stages import train_stage
    config = load_config(config_path, [*overrides, f"train.seed={seed}"])
    summary = train_stage(config, run_dir)
    return {"overrides": overrides, "seed": seed, "run_dir": str(run_dir),
            "float_test_accuracy": summary["float_test_accuracy"],
            "best_validation_accuracy": summary["best_validation_accuracy"], "train_s": summary["train_s"]}


def run_sweep(config_path: Path, grid_entries: list, seeds: int, out: Path, jobs: int | None = None,
              fixed: tuple = ()) -> dict:
    """Train every (combination, seed) in `jobs` parallel processes (default: one per core, numba pinned to one
    thread each) and summarise the test accuracy per combination; `fixed` overrides apply to every run."""
    grid = parse_grid(grid_entries)
    combos = combinations(grid)
    for overrides in combos:                      # validate every combination before any work starts
        load_config(config_path, [*fixed, *overrides])
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: expected at least 1")
    tasks = [(str(config_path), [*fixed, *overrides], seed, Path(out) / _label(overrides) / f"seed{seed}")
             for overrides in combos for seed in range(seeds)]
    jobs = jobs or os.cpu_count() or 1
    log.info("sweep: %d combinations x %d seeds = %d runs, %d in parallel", len(combos), seeds, len(tasks), jobs)
    os.environ["NUMBA_NUM_THREADS"] = "1"         # inherited by the workers: one core each
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        results = pool.map(_job, tasks)
    summary = {"config": str(config_path), "grid": grid, "seeds": seeds, "runs": results,
               "summary": [summarise(overrides, [r for r in results if r["overrides"] == [*fixed, *overrides]])
                           for overrides in combos]}
    atomic_write(Path(out) / "sweep.json", lambda handle: handle.write(json.dumps(summary, indent=2).encode()))
    return summary


def summarise(overrides: list, runs: list) -> dict:
    acc = np.array([r["float_test_accuracy"] for r in runs])
    val = np.array([r["best_validation_accuracy"] for r in runs])
    sd = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
    return {"overrides": overrides, "n": len(runs), "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_sd": sd, "validation_accuracy_mean": float(np.nanmean(val)) if len(val) else None}


def summary_table(summary: dict) -> str:
    lines = []
    for row in summary["summary"]:
        lines.append(f"{' '.join(row['overrides']) or '(config as is)'}: test {100 * row['test_accuracy_mean']:.2f}"
                     f" +- {100 * row['test_accuracy_sd']:.2f}% (n = {row['n']})")
    return "\n".join(lines)
