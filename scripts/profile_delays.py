"""Where the time of learned delays goes: forward and backward pass per sample, without delays, with feed-forward
and with recurrent delays, split by what the backward pass is asked for.

The bench's network (evprop.pipeline.bench.ShdNetwork: 700 Poisson inputs at 10 Hz -> 256 recurrent LIF -> 20 LI,
1000 steps, delays U(0, 150) steps on input->hidden ('ff') or hidden->hidden ('recurrent')), float32, one kernel
thread. Times are the process's CPU time (user + system, best of `--repeats`), not wall time, so that a profile
taken on a shared machine still compares the passes with each other; they are not throughput figures
(`evprop bench --suite` gives those). Per configuration it also reports the synapse events per sample (spikes of a
delayed connection's sources times their fan-out) and the extra CPU time per delayed synapse event.

    PYTHONPATH=. NUMBA_NUM_THREADS=1 python scripts/profile_delays.py --out benchmarks/delay_profile.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evprop.pipeline.bench import N_INPUTS, ShdNetwork, poisson_batch, thread_info  # noqa: E402
from evprop.pipeline.measure import machine_info  # noqa: E402
from evprop.train.compiled import CompiledNetwork  # noqa: E402
from evprop.train.engine import backward, forward  # noqa: E402

INPUT_MEAN = 0.0295         # the bench's tuned input weight mean at 256 hidden (hidden layer at ~14 Hz)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_cpu_ms(fn, repeats: int) -> float:
    fn()                                                    # compilation, first touch
    times = []
    for _ in range(repeats):
        start = cpu_seconds()
        fn()
        times.append(cpu_seconds() - start)
    return 1e3 * min(times)


def profile(kind: str, hidden: int, steps: int, batch: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    network = ShdNetwork(hidden, steps, kind, rng)
    data = poisson_batch(batch, steps, rng)
    net = CompiledNetwork.from_spec(network.spec(INPUT_MEAN), dtype=np.float32)
    fwd = forward(net, data, 100, compact=True)
    hidden_spikes = float(fwd.spike_count[:, :hidden].sum()) / batch
    dl_dscore = np.random.default_rng(1).normal(size=(batch, net.n_out)) * 1e-3

    def run_backward(need_delays):
        return lambda: backward(net, data, fwd, None, dl_dscore=dl_dscore, need_delays=need_delays,
                                need_taus=False)

    per_sample = {"forward_ms": best_cpu_ms(lambda: forward(net, data, 100, compact=True), repeats) / batch,
                  "backward_ms": best_cpu_ms(run_backward(kind != "none"), repeats) / batch,
                  "backward_without_delay_gradients_ms": best_cpu_ms(run_backward(False), repeats) / batch}
    events = {"none": 0.0, "ff": data.n_events / batch * hidden, "recurrent": hidden_spikes * hidden}[kind]
    return {"delays": kind, "hidden_spikes_per_sample": hidden_spikes,
            "input_events_per_sample": data.n_events / batch, "delayed_synapse_events_per_sample": events,
            "cpu_ms_per_sample": per_sample}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (else print it)")
    args = parser.parse_args()
    rows = [profile(kind, args.hidden, args.steps, args.batch, args.repeats) for kind in ("none", "ff", "recurrent")]
    base = rows[0]["cpu_ms_per_sample"]
    for row in rows[1:]:
        ms = row["cpu_ms_per_sample"]
        extra = {key: ms[key] - base[key] for key in ("forward_ms", "backward_ms")}
        row["extra_over_no_delays_ms"] = extra
        row["extra_ns_per_delayed_synapse_event"] = {
            key: 1e6 * value / row["delayed_synapse_events_per_sample"] for key, value in extra.items()}
        row["cpu_time_ratio_to_no_delays"] = (ms["forward_ms"] + ms["backward_ms"]) / \
            (base["forward_ms"] + base["backward_ms"])
    out = {"what": "CPU ms per sample (best of repeats), one kernel thread, float32; see the script's docstring",
           "hidden": args.hidden, "steps": args.steps, "batch": args.batch, "inputs": N_INPUTS, "profile": rows,
           "machine": {**machine_info(), **thread_info()},
           "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    text = json.dumps(out, indent=1)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
