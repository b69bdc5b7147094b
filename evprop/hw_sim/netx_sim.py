"""Run a NetX file (evprop.export.netx) with lava-dl's own loader, `lava.lib.dl.netx.hdf5.Network`, on Lava 0.10's
bit-accurate CPU models (`Loihi2SimCfg(select_tag="fixed_pt")`) in a child process with a hard timeout, and
compare it with the fixed-point emulator bit for bit.

Samples and resets: two ways (`reset`), both in ONE Lava process for all samples.

reset="state" (default; what ml_genn_netx does between samples on Loihi 2): `Network()` with plain LIF neurons;
the samples run back to back, n_steps Lava time steps each, and between two samples the run pauses and every
layer's neuron u and v and every synapse's message buffer (`a_buff` of Dense / DelayDense, pending delayed
messages included) are set to zero (`Var.set`). Every sample then starts from the state the emulator starts
from, so the comparison is with `emulate(fp, data)` sample by sample: `bit_exact`.

reset="schedule": netx's own reset schedule, one Lava run of `Network(reset_interval=window)`: netx
builds every layer's neurons as Lava `LIFReset`, and layer j (0-based, in file order) zeroes its u and v at the
start of Lava time steps t with t % window == (1 + j) % window, then adds that step's input (netx/hdf5.py
`_create`: reset_offset starts at 1 and grows by one per layer; proc/lif/models.py PyLifResetModelBitAcc).
Pending synaptic messages are not cleared, and neurons keep running (and may spike) in the padding between
samples. The stream (`Stream`) is laid out so that the readout (last layer) resets at the first step of every
sample and layer j resets (n_layers - 1 - j) steps earlier:

    stream step k = Lava time step k + 1 (input spikes of step k are sent in time step k + 1, as in
                    evprop.hw_sim.lava_sim, and arrive in step k + 1 + delay)
    sample i      = stream steps lead + i * window ... + n_steps - 1, with lead = n_layers - 1
    window        = n_steps + max_delay + 1 + settle_steps (input messages drain, the network settles)

The emulator runs the same stream with the same resets (`emulate(..., resets=Stream.resets(...))`), so the
comparison is exact over the whole stream, padding included: `bit_exact`. A sample of the stream equals the
fresh-state emulation of that sample (what the fixed-point accuracy is measured on) when the hidden layers are
silent at the end of the previous padding; `fresh_state` reports how many samples do. A recurrent network
whose activity sustains itself (the default Yin-Yang network) keeps firing through the padding and its resets:
there the schedule is exact against its emulation but not a per-sample classifier (measured in
benchmarks/netx_check.json), hence reset="state" by default.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evprop.data.spikes import SpikeData
from evprop.export.netx import read_netx_header
from evprop.fixed_point.emulator import emulate
from evprop.fixed_point.spec import FixedPointSpec
from evprop.hw_sim.lava_sim import DEFAULT_TIMEOUT_S, LavaResult, _run_child
from evprop.hw_sim.netx_import import netx_package_dir
from evprop.hw_sim.verify import compare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    """n_samples samples of n_steps steps in one run: sample i starts at stream step lead + i * window."""

    n_samples: int
    n_steps: int
    window: int
    lead: int

    @property
    def total_steps(self) -> int:
        return self.lead + self.n_samples * self.window

    @property
    def starts(self) -> np.ndarray:
        return self.lead + self.window * np.arange(self.n_samples)

    def resets(self, layer_names: list) -> dict:
        """{layer name: bool [total_steps]}: netx's LIFReset schedule, layer j at stream steps k % window == j."""
        k = np.arange(self.total_steps)
        return {name: k % self.window == j % self.window for j, name in enumerate(layer_names)}

    def data(self, data: SpikeData) -> SpikeData:
        """`data`'s samples as one sample of total_steps steps."""
        sample = np.repeat(np.arange(len(data)), np.diff(data.offsets))
        steps = self.starts[sample] + data.steps
        return SpikeData(data.n_channels, self.total_steps, steps, data.channels, np.array([0, len(steps)]),
                         np.zeros(1, np.int64))

    def windows(self, array: np.ndarray) -> np.ndarray:
        """[total_steps, ...] -> [n_samples, n_steps, ...]: each sample's own steps."""
        index = self.starts[:, None] + np.arange(self.n_steps)[None, :]
        return array[index]


def netx_stream(n_samples: int, n_steps: int, n_layers: int, max_delay: int, settle_steps: int) -> Stream:
    """The layout of the module docstring."""
    if settle_steps < 0:
        raise ValueError(f"settle_steps {settle_steps}: expected >= 0")
    return Stream(n_samples, n_steps, n_steps + max_delay + 1 + settle_steps, n_layers - 1)


# ---------------------------------------------------------------------------------------------------------------
# parent side


RESETS = ("state", "schedule")


def run_netx(netx_path, fp: FixedPointSpec, data: SpikeData, timeout_s: float = DEFAULT_TIMEOUT_S,
             settle_steps: int | None = None, workdir=None, on_wait=None, reset: str = "state") -> tuple:
    """Run every sample of `data` through the NetX file in Lava (module docstring) and compare with the emulator
    of `fp` (the network the file was written from). reset: 'state' or 'schedule' (module docstring);
    settle_steps: extra padding per sample with 'schedule' (default n_steps).
    Returns (LavaResult of the samples' own steps, equivalence: `evprop.hw_sim.verify.compare` of the samples plus
    {'reset', 'stream', 'fresh_state'})."""
    if reset not in RESETS:
        raise ValueError(f"reset {reset!r}: expected one of {RESETS}")
    netx_package_dir()                        # lava-dl missing: say so here, not in the child's traceback
    netx_path = Path(netx_path)
    header = read_netx_header(netx_path)
    names = [layer.name for layer in fp.layers]
    if header["layers"] != names or header["n_steps"] != fp.n_steps:
        raise ValueError(f"{netx_path}: layers {header['layers']} / {header['n_steps']} steps do not match the "
                         f"fixed-point network ({names} / {fp.n_steps} steps); export it again")
    max_delay = max([c.max_delay for c in fp.connections], default=0)
    stream = netx_stream(len(data), data.n_steps, len(names), max_delay,
                         data.n_steps if settle_steps is None else settle_steps) if reset == "schedule" \
        else Stream(len(data), data.n_steps, data.n_steps, 0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="evprop-netx-") as tmp:
        tmp = Path(tmp)
        flat = stream.data(data)
        np.savez(tmp / "events.npz", time_step=flat.steps.astype(np.int64) + 1, channel=flat.channels.astype(np.int64))
        plan = {"window": stream.window, "total_steps": stream.total_steps, "n_in": fp.input_size,
                "layers": names, "reset": reset, "n_samples": len(data)}
        (tmp / "plan.json").write_text(json.dumps(plan))
        _run_child([sys.executable, "-m", "evprop.hw_sim.netx_sim", str(netx_path.resolve()), str(tmp)],
                   timeout_s, tmp, on_wait)
        done = json.loads((tmp / "done.json").read_text())
        hidden = {name: _load(tmp / f"spikes_{j}.npz") for j, name in enumerate(names[:-1])}
        v_out = _load(tmp / "v_out.npz")
    netx_windows = _windows_result(stream, hidden, v_out, fp, done["run_time_s"], time.perf_counter() - started)
    fresh = compare(emulate(fp, data), netx_windows)
    if reset == "state":
        log.info("netx: %d samples x %d steps in %.2f s (Lava run), bit-exact with the emulator: %s", len(data),
                 data.n_steps, done["run_time_s"], fresh["bit_exact"])
        return netx_windows, {**fresh, "reset": reset,
                              "fresh_state": {k: fresh[k] for k in ("bit_exact", "spikes_identical_fraction",
                                                                    "outputs_identical_fraction")}}
    emulated = emulate(fp, flat, resets=stream.resets(names))
    emu_windows = _windows_result(stream, {n: s[0] for n, s in emulated.hidden_spikes.items()}, emulated.v_out[0],
                                  fp, 0.0, 0.0)
    equivalence = compare(emu_windows, netx_windows)
    stream_diff = (emulated.v_out[0] != v_out).any(axis=1)
    for name, spikes in hidden.items():
        stream_diff |= (emulated.hidden_spikes[name][0] != spikes).any(axis=1)
    bad = np.nonzero(stream_diff)[0]
    equivalence.update({
        "bit_exact": bool(equivalence["bit_exact"] and not bad.size), "reset": reset,
        "stream": {"window": stream.window, "lead": stream.lead, "total_steps": stream.total_steps,
                   "identical": not bad.size, "first_mismatch_step": int(bad[0]) if bad.size else None},
        "fresh_state": {"bit_exact": fresh["bit_exact"],
                        "spikes_identical_fraction": fresh["spikes_identical_fraction"],
                        "outputs_identical_fraction": fresh["outputs_identical_fraction"]}})
    log.info("netx: %d samples x %d steps (window %d) in %.2f s (Lava run), bit-exact with the emulator: %s",
             len(data), data.n_steps, stream.window, done["run_time_s"], equivalence["bit_exact"])
    return netx_windows, equivalence


def _load(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data["data"]


def _windows_result(stream: Stream, hidden: dict, v_out: np.ndarray, fp: FixedPointSpec, run_time_s: float,
                    total_time_s: float) -> LavaResult:
    v = stream.windows(v_out)
    return LavaResult({name: stream.windows(s) for name, s in hidden.items()}, v,
                      v.astype(np.float64) * fp.output.v_lsb, run_time_s, total_time_s)


# ---------------------------------------------------------------------------------------------------------------
# child side: lava-dl builds the network from the file; evprop only adds the input and the recorders


def _child(netx_path: str, out_dir: str) -> None:
    from evprop.hw_sim.netx_import import netx_hdf5
    hdf5 = netx_hdf5()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from evprop.hw_sim.lava_procs.procs import EventSource
    from evprop.hw_sim.lava_procs.recorders import SpikeRecorder, VarRecorder

    out = Path(out_dir)
    plan = json.loads((out / "plan.json").read_text())
    total = plan["total_steps"]
    schedule = plan["reset"] == "schedule"
    net = hdf5.Network(net_config=netx_path, reset_interval=plan["window"] if schedule else None)
    if len(net.layers) != len(plan["layers"]):
        raise RuntimeError(f"netx built {len(net.layers)} layers, the file's header names {len(plan['layers'])}")
    source = EventSource(size=plan["n_in"], events_path=str(out / "events.npz"), name="input")
    source.s_out.connect(net.inp)
    for j, layer in enumerate(net.layers[:-1]):
        recorder = SpikeRecorder(shape=layer.out.shape, n_steps=total, out_path=str(out / f"spikes_{j}.npz"))
        layer.out.connect(recorder.a_in)
    VarRecorder(var=net.layers[-1].neuron.v, n_steps=total, out_path=str(out / "v_out.npz"))
    started = time.perf_counter()
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    if schedule:
        net.run(condition=RunSteps(num_steps=total), run_cfg=run_cfg)
    else:
        for _ in range(plan["n_samples"]):
            net.run(condition=RunSteps(num_steps=plan["window"]), run_cfg=run_cfg)
            _zero_state(net)
    net.stop()
    (out / "done.json").write_text(json.dumps({"run_time_s": time.perf_counter() - started}))


def _zero_state(net) -> None:
    """Every neuron's u and v and every synapse's pending messages (a_buff) to zero, between two runs."""
    for layer in net.layers:
        for var in (layer.neuron.u, layer.neuron.v, layer.synapse.a_buff,
                    *((layer.synapse_rec.a_buff,) if hasattr(layer, "synapse_rec") else ())):
            var.set(np.zeros(var.shape, dtype=np.int32))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    _child(*sys.argv[1:3])
