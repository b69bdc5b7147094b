"""Training-speed benchmark: EventProp against the BPTT-family baselines on an SHD-shaped workload.

Workload (the SHD setting of Nowotny et al. 2025 and Meszaros et al. 2025): 700 inputs firing Poisson spikes at 10 Hz
(dt = 1 ms), one recurrent hidden
LIF layer (tau_mem 20 ms, tau_syn 5 ms), 20 LI outputs, L_sum_exp cross-entropy ('sum_exp' readout), batch 32,
Adam. Initial weights: input N(mu, 0.01) with mu tuned by bisection so the hidden layer fires at ~14 Hz (the
measured rate is reported), recurrent N(0, 0.02), output N(0, 0.03). The delay variant (EventProp only) adds
learned feed-forward delays U(0, 150) ms, max_delay 150 steps, learned with their own Adam.

Reported per configuration (one JSON-able dict):
    samples_per_s           batch / median time of one whole update (forward + loss + backward + Adam), i.e. one
                            Trainer.run_epoch on one batch (EventProp: evprop's own Trainer)
    forward_samples_per_s   batch / median time of the forward pass alone
    backward_samples_per_s  batch / median time of loss + backward pass alone
    peak_state_mb           peak memory of forward + loss + backward of one batch by tracemalloc (`traced_peak_bytes`):
                            grows with T for the dense baselines (O(B T N) state), for EventProp with the spike
                            capacity (and only the output traces grow with T)
    peak_update_mb          the same over the whole update (adds the Adam step's temporaries, O(parameters))
Warm-up (numba compilation, first-touch allocations) is one update that is not timed.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
import tracemalloc
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data.spikes import SpikeData
from ..model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from ..train.baselines import ALGORITHMS, DEFAULT_SURROGATE_BETA, dense_backward, dense_forward
from ..train.engine import backward, forward
from ..train.losses import get_loss
from ..train.trainer import TrainSettings, make_trainer
from .measure import machine_info

log = logging.getLogger(__name__)

N_INPUTS, N_OUTPUTS = 700, 20
INPUT_RATE_HZ = 10.0
TARGET_RATE_HZ = 14.0
TAU_MEM_MS, TAU_SYN_MS, DT_MS = 20.0, 5.0, 1.0
MAX_DELAY_STEPS = 150
BENCH_ALGORITHMS = ("eventprop",) + ALGORITHMS
BENCH_DIR = Path("benchmarks")
PEAK_METHOD = ("tracemalloc peak (numpy, scipy and numba allocations); peak_state_mb: forward + loss + backward "
               "of one batch (the training state), peak_update_mb: the whole update incl. the Adam step's "
               "temporaries; parameters and optimiser state allocated before are excluded")


# ---- workload ----

def poisson_batch(batch: int, steps: int, rng: np.random.Generator, rate_hz: float = INPUT_RATE_HZ) -> SpikeData:
    """`batch` samples of N_INPUTS Poisson channels (at most one spike per channel and step), random labels."""
    p = rate_hz * DT_MS / 1000.0
    events = []
    for _ in range(batch):
        steps_, channels = np.nonzero(rng.random((steps, N_INPUTS)) < p)
        events.append((steps_, channels))
    return SpikeData.from_event_lists(N_INPUTS, steps, events, rng.integers(0, N_OUTPUTS, batch))


class ShdNetwork:
    """The benchmark network with fixed random draws; only the input weight mean changes (`spec(mu)`)."""

    def __init__(self, hidden: int, steps: int, delays: bool, rng: np.random.Generator):
        self.hidden, self.steps, self.delays = hidden, steps, delays
        self.z_in = rng.normal(0.0, 0.01, (N_INPUTS, hidden))
        self.w_rec = rng.normal(0.0, 0.02, (hidden, hidden))
        self.w_out = rng.normal(0.0, 0.03, (hidden, N_OUTPUTS))
        self.d_in = rng.uniform(0.0, MAX_DELAY_STEPS, (N_INPUTS, hidden)) if delays else None

    def spec(self, input_mean: float) -> NetworkSpec:
        layers = (InputLayer("input", N_INPUTS), LIFLayer("hidden", self.hidden, TAU_MEM_MS, TAU_SYN_MS),
                  LILayer("output", N_OUTPUTS, TAU_MEM_MS, TAU_SYN_MS))
        conns = (Connection("input", "hidden", input_mean + self.z_in, self.d_in,
                            MAX_DELAY_STEPS if self.delays else 0),
                 Connection("hidden", "hidden", self.w_rec),
                 Connection("hidden", "output", self.w_out))
        return NetworkSpec(dt_ms=DT_MS, n_steps=self.steps, layers=layers, connections=conns, readout="sum_exp")


def hidden_rate_hz(spec: NetworkSpec, data: SpikeData, max_spikes: int) -> float:
    """Mean firing rate of the hidden layer on `data` [Hz] (EventProp engine forward pass)."""
    from ..train.compiled import CompiledNetwork
    fwd = forward(CompiledNetwork.from_spec(spec), data, max_spikes, allow_overflow=True)
    hidden = spec.layers[1].size
    return float(fwd.spike_count[:, :hidden].mean()) / (spec.n_steps * spec.dt_ms / 1000.0)


def tune_input_mean(network: ShdNetwork, data: SpikeData, max_spikes: int, target_hz: float = TARGET_RATE_HZ,
                    iterations: int = 14) -> tuple[float, float]:
    """Bisection on the input weight mean for a hidden rate of `target_hz`; returns (mean, measured rate)."""
    lo, hi = 0.0, 0.1
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if hidden_rate_hz(network.spec(mid), data, max_spikes) < target_hz:
            lo = mid
        else:
            hi = mid
    mean = 0.5 * (lo + hi)
    return mean, hidden_rate_hz(network.spec(mean), data, max_spikes)


# ---- measurements ----

def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _passes(trainer, algorithm: str, data: SpikeData, surrogate_beta: float):
    """(forward(), loss_and_backward(fwd)) callables for timing the two passes separately."""
    spec, net, settings = trainer.spec, trainer.net, trainer.settings
    loss_fn = get_loss(settings.loss)
    if algorithm == "eventprop":       # exactly what Trainer.update does, in two timed halves
        def run_forward():
            return forward(net, data, settings.max_spikes, settings.allow_overflow,
                           compact=trainer.loss_fn.compact(spec))

        def run_backward(fwd):
            terms = trainer.loss_fn.evaluate(spec, fwd, trainer.output, data.labels)
            return backward(net, data, fwd, terms.dl_dv, tape_dl_dt=terms.tape_dl_dt, dl_dscore=terms.dl_dscore,
                            need_delays=settings.delay_learning_rate > 0, need_taus=settings.tau_learning_rate > 0)
    else:
        def run_forward():
            return dense_forward(net, data, keep_current=settings.tau_learning_rate > 0)

        def run_backward(fwd):
            return dense_backward(algorithm, net, fwd, loss_fn(spec, fwd.v_out, data.labels)[2], None,
                                  surrogate_beta)
    return run_forward, run_backward


def traced_peak_bytes(fn) -> int:
    """Peak memory allocated while `fn()` runs, by tracemalloc: numpy and scipy allocations, and numba's (its
    runtime allocates through PyMem_RawMalloc, which tracemalloc traces: the spike tapes and the backward
    kernel's per-chunk buffers show up). Memory allocated before (parameters, optimiser state) is not counted."""
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def run_bench(hidden: int = 256, delays: bool = False, steps: int = 1000, batch: int = 32,
              algorithm: str = "eventprop", repeats: int = 3, seed: int = 0, max_spikes: int = 100,
              input_mean: float | None = None, surrogate_beta: float = DEFAULT_SURROGATE_BETA,
              measure_memory: bool = True, precision: str = "float32") -> dict:
    """Benchmark one configuration (module docstring); returns one JSON-able dict."""
    if algorithm not in BENCH_ALGORITHMS:
        raise ValueError(f"bench: algorithm '{algorithm}' unknown, expected one of {BENCH_ALGORITHMS}")
    if delays and algorithm != "eventprop":
        raise ValueError(f"bench: delays are only supported by eventprop, not '{algorithm}'")
    if repeats < 1 or hidden < 1 or steps < 1 or batch < 1:
        raise ValueError("bench: hidden, steps, batch and repeats must be >= 1")
    rng = np.random.default_rng(seed)
    network = ShdNetwork(hidden, steps, delays, rng)
    data = poisson_batch(batch, steps, rng)
    if input_mean is None:
        input_mean, rate = tune_input_mean(network, data, max_spikes)
    else:
        rate = hidden_rate_hz(network.spec(input_mean), data, max_spikes)
    log.info("bench %s hidden=%d steps=%d: input mean %.5f -> hidden rate %.2f Hz", algorithm, hidden, steps,
             input_mean, rate)
    # precision applies to eventprop's kernels; the numpy baselines compute in float64 whatever it says
    settings = TrainSettings(batch_size=batch, learning_rate=1e-3, delay_learning_rate=0.1 if delays else 0.0,
                             max_spikes=max_spikes, seed=seed, precision=precision)
    trainer = make_trainer(network.spec(input_mean), replace(settings, algorithm=algorithm,
                                                           surrogate_beta=surrogate_beta))
    warm = trainer.run_epoch(0, data)                       # numba compilation, not timed
    run_forward, run_backward = _passes(trainer, algorithm, data, surrogate_beta)
    run_backward(run_forward())
    update_s, forward_s, backward_s = [], [], []
    for _ in range(repeats):
        update_s.append(_timed(lambda: trainer.run_epoch(0, data)))
        holder = {}
        forward_s.append(_timed(lambda: holder.setdefault("fwd", run_forward())))
        backward_s.append(_timed(lambda: run_backward(holder["fwd"])))
    result = {
        "algorithm": algorithm, "hidden": hidden, "steps": steps, "batch": batch, "delays": delays,
        "repeats": repeats, "seed": seed, "precision": precision if algorithm == "eventprop" else "float64",
        "samples_per_s": batch / statistics.median(update_s),
        "forward_samples_per_s": batch / statistics.median(forward_s),
        "backward_samples_per_s": batch / statistics.median(backward_s),
        "update_seconds": update_s, "forward_seconds": forward_s, "backward_seconds": backward_s,
        "hidden_spikes_per_sample": warm["hidden_spikes_per_sample"],
        "hidden_rate_hz": warm["hidden_spikes_per_sample"] / hidden / (steps * DT_MS / 1000.0),
        "input_rate_hz": data.n_events / batch / N_INPUTS / (steps * DT_MS / 1000.0),
        "input_weight_mean": input_mean, "max_spikes": max_spikes,
        "surrogate_beta": surrogate_beta if algorithm != "eventprop" else None,
    }
    if measure_memory:
        result.update({
            "peak_state_mb": traced_peak_bytes(lambda: run_backward(run_forward())) / 2 ** 20,
            "peak_update_mb": traced_peak_bytes(lambda: trainer.run_epoch(0, data)) / 2 ** 20,
            "peak_state_method": PEAK_METHOD})
    result.update({"machine": machine_info(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return result


# ---- command line (the lead wires these into evprop/pipeline/cli.py) ----

def add_bench_arguments(parser) -> None:
    parser.add_argument("--hidden", type=int, default=256, help="hidden recurrent LIF neurons (default 256)")
    parser.add_argument("--delays", action="store_true",
                        help="learned feed-forward delays U(0, 150) ms (eventprop only)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps of 1 ms (default 1000)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--algorithm", choices=BENCH_ALGORITHMS, default="eventprop")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates (default 3; warm-up excluded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-spikes", type=int, default=100, help="EventProp spike tape capacity per neuron")
    parser.add_argument("--precision", choices=["float32", "float64"], default="float32",
                        help="eventprop kernel precision (default float32; the numpy baselines use float64)")
    parser.add_argument("--json", action="store_true", help="print compact JSON on one line")
    parser.add_argument("--out", type=Path, default=None,
                        help="append the JSON line to this file (a bare file name goes into benchmarks/)")


def bench_output_path(out: Path) -> Path:
    return BENCH_DIR / out if out.parent == Path(".") else out


def cmd_bench(args) -> int:
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: expected an integer >= 0")
    result = run_bench(hidden=args.hidden, delays=args.delays, steps=args.steps, batch=args.batch,
                       algorithm=args.algorithm, repeats=args.repeats, seed=args.seed, max_spikes=args.max_spikes,
                       precision=args.precision)
    line = json.dumps(result, separators=(",", ":"))
    print(line if args.json else json.dumps(result, indent=2))
    if args.out is not None:
        path = bench_output_path(Path(args.out))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(line + "\n")
    return 0
