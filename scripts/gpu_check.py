"""GPU check of evprop's CUDA backend (run by scripts/gpu_check.sh, which sets PYTHONPATH): prints one JSON object.

Written for a machine with an NVIDIA GPU where Python 3.12, numpy 2, numba, numba-cuda, scipy and h5py are present
and nothing can be installed; under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) with --tiny it checks itself
on any machine (tests/test_gpu_check.py).

agreement   Small networks (recurrent hidden layer, with and without learned delays, float64 and float32): the
            engine's forward pass on device "cuda" against "cpu" (every spike (step, neuron) of every trial, the
            output voltages) and the EventProp gradients of the cross-entropy loss (weights, delays, tau_mem,
            tau_syn), as max |cuda - cpu| / max |cpu| per group. Passing: float64 spikes identical and gradients
            within 1e-9; float32 spikes identical and gradients within 1e-3 (a float32 voltage within rounding of
            the threshold may spike on one backend only: evprop/train/cuda_kernels.py).
speed       samples/s of one whole training update (forward, loss, backward, Adam: Trainer.run_epoch on one batch,
            as `evprop bench` measures it, float32) on the GPU and on the CPU, for the bench's SHD-shaped workload
            (700 Poisson inputs at 10 Hz, recurrent hidden layer at ~14 Hz, 20 outputs) at 256, 512 and 1024 hidden,
            T = 1000 steps, batch 32 and 256. Measurements that would overrun the time budget are skipped, saying so.
core        quantiser, fixed-point emulator and a NIR round trip of the small network (numpy 2 on that machine).
target      at least 6,300 samples/s on the GPU at 256 hidden, T = 1000, batch 32: 10x mlGeNN's wall-time figure
            (12.9 s per SHD epoch of 8,156 samples, ~631 samples/s, on an A100).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from evprop.pipeline.bench import ShdNetwork, poisson_batch, tune_input_mean
from evprop.train.trainer import TrainSettings, make_trainer

TARGET_SAMPLES_PER_S = 6300.0
TARGET_BASIS = ("10x mlGeNN's wall-time figure for EventProp on SHD at 256 recurrent hidden units: 12.9 s per "
                "epoch of 8,156 samples (~631 samples/s) on an A100, from the ml_genn_netx_paper timing files")
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}
FULL = {"agreement": dict(n_in=40, hidden=64, n_out=10, steps=200, batch=8, max_delay=20),
        "speed": dict(hidden=(256, 512, 1024), steps=1000, batch=(32, 256), repeats=3)}
TINY = {"agreement": dict(n_in=4, hidden=6, n_out=2, steps=20, batch=3, max_delay=3),
        "speed": dict(hidden=(4, 8), steps=8, batch=(2, 4), repeats=1)}


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment() -> dict:
    import numba
    from numba import cuda
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    info = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "numba_cuda": _package_version("numba-cuda"), "cuda_simulator": simulator,
            "cpu_cores": os.cpu_count(), "platform": platform.platform()}
    try:
        info["cuda_available"] = bool(cuda.is_available())
        if info["cuda_available"] and not simulator:
            device = cuda.get_current_device()
            name = device.name
            info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
            info["compute_capability"] = list(device.compute_capability)
    except Exception as err:                 # no driver or toolkit: said in the JSON, the check fails below
        info["cuda_available"] = False
        info["cuda_error"] = f"{type(err).__name__}: {err}"
    return info


# ---- agreement ----

def small_network(n_in: int, hidden: int, n_out: int, steps: int, max_delay: int, seed: int) -> NetworkSpec:
    """n_in -> hidden (recurrent LIF) -> n_out LI; weights drawn so the hidden neurons fire several times."""
    rng = np.random.default_rng(seed)

    def delays(shape):
        return rng.uniform(0, max_delay, shape) if max_delay else None

    conns = (Connection("input", "hidden", rng.normal(1.2, 0.6, (n_in, hidden)) * 8.0 / n_in,
                        delays((n_in, hidden)), max_delay),
             Connection("hidden", "hidden", rng.normal(0.0, 0.3, (hidden, hidden)) / hidden ** 0.5,
                        delays((hidden, hidden)), max_delay),
             Connection("hidden", "output", rng.normal(0.0, 0.5, (hidden, n_out)), None, 0))
    layers = (InputLayer("input", n_in), LIFLayer("hidden", hidden, 20.0, 5.0), LILayer("output", n_out, 20.0, 5.0))
    return NetworkSpec(1.0, steps, layers, conns, "sum_exp")


def random_inputs(n_in: int, steps: int, batch: int, n_out: int, seed: int, rate: float = 0.1) -> SpikeData:
    rng = np.random.default_rng(seed + 1)
    return SpikeData.from_dense(rng.random((batch, steps, n_in)) < rate, rng.integers(0, n_out, batch))


def _passes(spec: NetworkSpec, data: SpikeData, precision: str, device: str, learn: bool):
    """(forward result, gradients) of one batch, exactly as Trainer.update computes them (no optimiser step)."""
    settings = TrainSettings(batch_size=len(data), precision=precision, device=device, max_spikes=200,
                             delay_learning_rate=0.1 if learn else 0.0, tau_learning_rate=0.1 if learn else 0.0)
    trainer = make_trainer(spec, settings)
    fwd = trainer.forward_pass(data)
    terms = trainer.loss_fn.evaluate(spec, fwd, trainer.output, data.labels)
    return fwd, trainer.gradients(data, fwd, terms, trainer.regulariser_jump(fwd.spike_count))


def _spike_sets(fwd) -> list:
    return [set(zip(fwd.tape_step[b, :fwd.tape_len[b]].tolist(), fwd.tape_neuron[b, :fwd.tape_len[b]].tolist()))
            for b in range(len(fwd.tape_len))]


def _rel(cpu: np.ndarray, gpu: np.ndarray) -> float:
    scale = float(np.max(np.abs(cpu), initial=0.0))
    return float(np.max(np.abs(np.asarray(gpu, np.float64) - cpu), initial=0.0)) / scale if scale > 0 else 0.0


def agreement_case(sizes: dict, max_delay: int, precision: str, seed: int) -> dict:
    spec = small_network(sizes["n_in"], sizes["hidden"], sizes["n_out"], sizes["steps"], max_delay, seed)
    data = random_inputs(sizes["n_in"], sizes["steps"], sizes["batch"], sizes["n_out"], seed)
    learn = max_delay > 0
    fwd_cpu, grads_cpu = _passes(spec, data, precision, "cpu", learn)
    fwd_gpu, grads_gpu = _passes(spec, data, precision, "cuda", learn)
    cpu_sets, gpu_sets = _spike_sets(fwd_cpu), _spike_sets(fwd_gpu)
    n_cpu = sum(len(s) for s in cpu_sets)
    common = sum(len(a & b) for a, b in zip(cpu_sets, gpu_sets))
    spikes_identical = all(a == b for a, b in zip(cpu_sets, gpu_sets))
    gradients = {group: _rel(getattr(grads_cpu, group), getattr(grads_gpu, group))
                 for group in ("weights", "delays", "tau_mem", "tau_syn") if learn or group == "weights"}
    scores_cpu = fwd_cpu.scores if fwd_cpu.scores is not None else fwd_cpu.v_out
    scores_gpu = fwd_gpu.scores if fwd_gpu.scores is not None else fwd_gpu.v_out
    passed = spikes_identical and max(gradients.values()) <= TOLERANCE[precision] and n_cpu > 0
    return {"max_delay_steps": max_delay, "precision": precision, "hidden_spikes_cpu": n_cpu,
            "hidden_spikes_cuda": sum(len(s) for s in gpu_sets), "spikes_identical": spikes_identical,
            "spike_agreement": common / max(n_cpu, 1), "readout_max_rel_diff": _rel(scores_cpu, scores_gpu),
            "gradient_max_rel_diff": gradients, "tolerance": TOLERANCE[precision], "passed": bool(passed)}


def agreement(sizes: dict) -> dict:
    cases = [agreement_case(sizes, max_delay, precision, seed=3 + i)
             for i, (max_delay, precision) in enumerate([(0, "float64"), (sizes["max_delay"], "float64"),
                                                         (0, "float32"), (sizes["max_delay"], "float32")])]
    return {"network": {k: v for k, v in sizes.items()}, "cases": cases, "passed": all(c["passed"] for c in cases)}


# ---- speed ----

def samples_per_s(spec: NetworkSpec, data: SpikeData, device: str, repeats: int) -> dict:
    """One warm-up update (compilation), then `repeats` timed updates of the whole batch; median."""
    settings = TrainSettings(batch_size=len(data), learning_rate=1e-3, max_spikes=100, precision="float32",
                             device=device)
    trainer = make_trainer(spec, settings)
    trainer.run_epoch(0, data)
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainer.run_epoch(0, data)
        seconds.append(time.perf_counter() - t0)
    return {"samples_per_s": len(data) / statistics.median(seconds), "update_seconds": seconds}


def speed(sizes: dict, deadline: float) -> list:
    """Every configuration on the GPU first (what the check is for), then on the CPU, while the budget lasts."""
    workloads = []
    for hidden in sizes["hidden"]:
        network = ShdNetwork(hidden, sizes["steps"], False, np.random.default_rng(0))
        tune_data = poisson_batch(8, sizes["steps"], np.random.default_rng(1))
        input_mean, rate = tune_input_mean(network, tune_data, max_spikes=100, iterations=10)
        for batch in sizes["batch"]:
            workloads.append((network.spec(input_mean), poisson_batch(batch, sizes["steps"], np.random.default_rng(2)),
                              {"hidden": hidden, "steps": sizes["steps"], "batch": batch,
                               "input_weight_mean": input_mean, "hidden_rate_hz_tuning_batch": rate}))
    for device in ("cuda", "cpu"):
        for spec, data, entry in workloads:
            if time.perf_counter() > deadline:
                entry[device] = {"skipped": "time budget (--budget-s) spent"}
            else:
                entry[device] = samples_per_s(spec, data, device, sizes["repeats"])
    results = [entry for _, _, entry in workloads]
    for entry in results:
        if "samples_per_s" in entry["cuda"] and "samples_per_s" in entry["cpu"]:
            entry["speedup_cuda_over_cpu"] = entry["cuda"]["samples_per_s"] / entry["cpu"]["samples_per_s"]
    return results


def core(sizes: dict) -> dict:
    """The rest of the training core under this Python / numpy: quantise the small network, emulate it on the
    fixed-point target, write it to NIR (nir from the wheel folder) and read it back."""
    import tempfile
    from pathlib import Path

    import nir

    from evprop.export.nir import export_nir, import_nir
    from evprop.fixed_point.calibrate import state_bounds
    from evprop.fixed_point.emulator import emulate
    from evprop.fixed_point.quantise import quantise
    spec = small_network(sizes["n_in"], sizes["hidden"], sizes["n_out"], sizes["steps"], sizes["max_delay"], 3)
    data = random_inputs(sizes["n_in"], sizes["steps"], sizes["batch"], sizes["n_out"], 3)
    fixed, _ = quantise(spec, state_bounds(spec, data), 99.0)
    emulated = emulate(fixed, data)
    with tempfile.TemporaryDirectory() as tmp:
        export_nir(Path(tmp) / "net.nir", spec, fixed)
        spec_back, fixed_back = import_nir(Path(tmp) / "net.nir")
    round_trip = spec_back == spec and fixed_back == fixed
    return {"nir_version": nir.__version__, "nir_imported_from": nir.__file__,
            "emulator_hidden_spikes": int(emulated.hidden_spikes["hidden"].sum()),
            "nir_round_trip_identical": bool(round_trip), "passed": bool(round_trip)}


def target(results: list, simulator: bool) -> dict:
    at = [r for r in results if r["hidden"] == 256 and r["batch"] == 32 and "samples_per_s" in r["cuda"]]
    measured = at[0]["cuda"]["samples_per_s"] if at else None
    return {"samples_per_s": TARGET_SAMPLES_PER_S, "hidden": 256, "steps": 1000, "batch": 32,
            "basis": TARGET_BASIS, "measured_samples_per_s": measured,
            "met": None if simulator or measured is None else bool(measured >= TARGET_SAMPLES_PER_S)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes (for numba's CUDA simulator, NUMBA_ENABLE_CUDASIM=1): checks the script, "
                             "measures nothing meaningful")
    parser.add_argument("--budget-s", type=float, default=270.0,
                        help="wall-time budget [s]: speed measurements past it are skipped (default 270)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = TINY if args.tiny else FULL
    env = environment()
    out = {"check": "evprop gpu_check", "mode": "tiny" if args.tiny else "full", "environment": env}
    if not env.get("cuda_available") and not env["cuda_simulator"]:
        out.update({"passed": False, "error": "no CUDA device visible to numba (and NUMBA_ENABLE_CUDASIM is not 1)"})
        print(json.dumps(out, indent=1))
        return 1
    out["agreement"] = agreement(sizes["agreement"])
    out["core"] = core(sizes["agreement"])
    out["speed"] = speed(sizes["speed"], started + args.budget_s)
    out["target"] = target(out["speed"], env["cuda_simulator"])
    out["seconds"] = time.perf_counter() - started
    out["passed"] = out["agreement"]["passed"] and out["core"]["passed"]
    print(json.dumps(out, indent=1))
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
