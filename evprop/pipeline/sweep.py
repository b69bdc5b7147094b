"""Sweeps: configurations x seeds trained in parallel processes on one machine, summarised as mean +- sd, the way
the papers report (e.g. 93.5 +- 0.7%, n = 8).

`evprop sweep CONFIG --grid train.learning_rate=0.001,0.002 --grid network.hidden=128,256 --seeds 8` trains every
combination of the grid values with train.seed = 0..7, each in its own run directory
<out>/<combination>/seed<k>, and writes <out>/sweep.json.

With `--ray ADDRESS` (optional extra: pip install -e '.[ray]') the same jobs run as Ray tasks on a cluster instead of
local processes: ADDRESS is a cluster address ("HOST:PORT" of the head, or "auto") or "local" for a new Ray
instance on this machine. Only the executor differs: the job function, the results and sweep.json are the same.
Every worker runs the job in the driver's working directory, so on a multi-node cluster evprop must be installed on
every node and the config, the data and --out must be on a filesystem shared by all nodes. A cluster with Ray's token
authentication needs RAY_AUTH_MODE=token (and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN) in the environment:
Ray enables it by itself for "local" and "auto" only.
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


def _ray_job(args, cwd: str):
    """_job inside a Ray worker, run in the driver's working directory (relative paths mean the same there)."""
    if not os.path.isdir(cwd):
        import socket
        raise ConfigError(f"sweep on Ray: the driver's working directory {cwd} does not exist on node "
                          f"{socket.gethostname()}; the config, the data and --out must be on a filesystem shared "
                          "by every node of the cluster")
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return _job(args)
    finally:
        os.chdir(previous)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install -e '.[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """A HOST:PORT nobody listens on: a one-line error now (ray.init would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return                                    # "local", "auto", "ray://...": Ray's own handling
    import socket
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConnectionError(f"--ray {address}: no Ray cluster reachable there ({err}); start one with "
                              f"`ray start --head --port={port}` or pass --ray local") from None


def _map_processes(tasks: list, jobs: int | None) -> list:
    jobs = jobs or os.cpu_count() or 1
    log.info("sweep: %d runs, %d in parallel processes", len(tasks), jobs)
    os.environ["NUMBA_NUM_THREADS"] = "1"         # inherited by the workers: one core each
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return pool.map(_job, tasks)


def _map_ray(tasks: list, address: str, jobs: int | None) -> list:
    """_job for every task as a Ray task (one CPU each, numba pinned to one thread), results in task order; at most
    `jobs` in flight when given (on "local": the new instance gets `jobs` CPUs)."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:                                   # an already connected driver (e.g. a notebook) is used as is
        _check_reachable(address)
        ray.init(address=address, num_cpus=jobs if address == "local" else None, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"NUMBA_NUM_THREADS": "1"}})
    try:
        log.info("sweep: %d runs as Ray tasks on %s (%d CPUs)", len(tasks), address,
                 int(ray.cluster_resources().get("CPU", 0)))
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_job)
        cwd = os.getcwd()
        pending, refs = list(range(len(tasks))), {}
        results = [None] * len(tasks)
        while pending or refs:
            while pending and (not jobs or len(refs) < jobs):
                index = pending.pop(0)
                refs[remote.remote(tasks[index], cwd)] = index
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                results[refs.pop(ref)] = ray.get(ref)
        return results
    finally:
        if started:
            ray.shutdown()


def run_sweep(config_path: Path, grid_entries: list, seeds: int, out: Path, jobs: int | None = None,
              fixed: tuple = (), ray_address: str | None = None) -> dict:
    """Train every (combination, seed) in `jobs` parallel processes (default: one per core, numba pinned to one
    thread each) and summarise the test accuracy per combination; `fixed` overrides apply to every run.
    With `ray_address` every (combination, seed) runs as a Ray task on that cluster ("local": a new local
    instance) instead; `jobs` then caps the tasks in flight (default: as many as the cluster's CPUs take)."""
    grid = parse_grid(grid_entries)
    combos = combinations(grid)
    for overrides in combos:                      # validate every combination before any work starts
        load_config(config_path, [*fixed, *overrides])
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: expected at least 1")
    tasks = [(str(config_path), [*fixed, *overrides], seed, Path(out) / _label(overrides) / f"seed{seed}")
             for overrides in combos for seed in range(seeds)]
    if ray_address is not None:
        _import_ray()                             # fail before any work starts
    log.info("sweep: %d combinations x %d seeds = %d runs", len(combos), seeds, len(tasks))
    results = _map_ray(tasks, ray_address, jobs) if ray_address is not None else _map_processes(tasks, jobs)
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
