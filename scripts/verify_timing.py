"""How long does hardware verification take at SHD scale? (the issue's bar: 100 samples x 1000 steps in < 10 min
on 2 cores).

Builds the benchmark's 700 -> 256 (recurrent) -> 20 network (evprop.pipeline.bench.ShdNetwork: tau_mem 20 ms,
tau_syn 5 ms, dt 1 ms, random weights with the input mean bisected for ~14 Hz hidden firing on 10 Hz Poisson
inputs), calibrates and quantises it (state_bounds + quantise), exports NIR with the fixed-point integers, then
times `run_lava` (Lava 0.10 fixed_pt, one run over all samples in a child process) and the numpy emulator on the
same samples and compares them bit for bit (evprop.hw_sim.verify.compare).

    nice .venv/bin/python scripts/verify_timing.py [--samples 100] [--steps 1000] [--out benchmarks/verify_timing.json]

Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evprop.export.nir import export_nir  # noqa: E402
from evprop.fixed_point.quantise import quantise  # noqa: E402
from evprop.fixed_point.emulator import emulate  # noqa: E402
from evprop.hw_sim.lava_sim import run_lava  # noqa: E402
from evprop.hw_sim.verify import compare  # noqa: E402
from evprop.pipeline.measure import machine_info  # noqa: E402
from evprop.pipeline.bench import ShdNetwork, hidden_rate_hz, poisson_batch, tune_input_mean  # noqa
from evprop.fixed_point.calibrate import state_bounds  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="hard timeout of the Lava child [s]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "verify_timing.json")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    network = ShdNetwork(args.hidden, args.steps, False, rng)
    tune_data = poisson_batch(16, args.steps, rng)
    input_mean, _ = tune_input_mean(network, tune_data, max_spikes=1000)
    spec = network.spec(input_mean)
    data = poisson_batch(args.samples, args.steps, rng)
    rate = hidden_rate_hz(spec, data, max_spikes=1000)
    fp, _ = quantise(spec, state_bounds(spec, data))
    build_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="evprop-verify-timing-") as tmp:
        path = Path(tmp) / "net.nir"
        export_nir(path, spec, fp)
        t1 = time.perf_counter()
        lava = run_lava(path, data, timeout_s=args.timeout)
        lava_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    emu = emulate(fp, data, record_hidden=True)
    emu_s = time.perf_counter() - t2
    result = compare(emu, lava)
    emu_rate = float(np.mean([s.sum() for s in emu.hidden_spikes.values()])) / len(data) / args.hidden \
        / (args.steps / 1000.0)
    out = {
        "what": "run_lava (Lava 0.10 fixed_pt) + numpy emulator on the same samples, bit-exact comparison",
        "network": f"700-{args.hidden}(recurrent)-20, dt 1 ms, tau_mem 20 ms, tau_syn 5 ms, no delays",
        "samples": args.samples, "steps": args.steps, "input_weight_mean": input_mean,
        "float_hidden_rate_hz": rate, "quantised_hidden_rate_hz": emu_rate,
        "input_rate_hz": data.n_events / len(data) / 700 / (args.steps / 1000.0),
        "build_and_quantise_seconds": build_s,
        "lava_seconds_total": lava_s, "lava_seconds_run": lava.run_time_s,
        "emulator_seconds": emu_s, "verify_seconds": lava_s + emu_s,
        "under_10_minutes": lava_s + emu_s < 600.0,
        "bit_exact": result["bit_exact"], "spikes_identical_fraction": result["spikes_identical_fraction"],
        "outputs_identical_fraction": result["outputs_identical_fraction"],
        "machine": machine_info(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if result["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
