"""Run a NIR file (written by evprop.export.nir.export_nir with a FixedPointSpec) on Lava 0.10's bit-accurate CPU
models (`Loihi2SimCfg(select_tag="fixed_pt")`), in a child process with a hard timeout.

The Lava network is built from the file alone, through `evprop.export.nir.import_nir`: the network its standard
fields describe (Linear weights, tau_*, v_threshold, Delay values), with the target integers derived from them at
the file's scales and checked against those stated in its metadata; an edited file is refused with a one-line
error before Lava starts. Per neuron layer a `RecordingLIF` (Lava's fixed-point LIF arithmetic; the LI readout is
a LIF with vth = 131071), per connection one `Dense` (all delays 0) or `RingDelayDense` (Lava's DelayDense
arithmetic bit for bit, but only touching the rows of spiking neurons: evprop.hw_sim.lava_procs.delay_dense) with
the exact integer weights, weight_exp and an explicit sign_mode, and an `EventSource` for the input. All samples
run in ONE Lava run: sample i occupies a window of n_steps + max_delay + 1 time steps; the padding holds neurons at
zero so the synapse buffers drain (evprop.hw_sim.lava_procs.procs). Every layer writes its spikes and v to an npz
at the last step; nothing is read through Var.get or Monitor.

Alignment (measured): a spike sent in Lava time step t reaches u in t + 1 + d (Dense adds one step), so our
step k of sample i is time step i*window + 1 + k for inputs and neurons alike: the step of docs/architecture.md §2
"emitted in s,
arrives in s + 1 + d" holds without any offset.

Why a child process: Lava hangs instead of raising when a process model fails (notes 2b). On timeout the
child's whole process group is killed and a TimeoutError names the limit.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evprop.fixed_point.spec import FixedPointSpec

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class LavaResult:
    """Per-sample Lava results in the emulator's layout.

    hidden_spikes: {LIF layer: bool [B, T, n]};  v_out: int32 [B, T, n_out];  v_out_float = v_out * v_lsb
    run_time_s: Lava compile + run (inside the child);  total_time_s: including process start and I/O
    """

    hidden_spikes: dict
    v_out: np.ndarray
    v_out_float: np.ndarray
    run_time_s: float
    total_time_s: float

    @property
    def n_samples(self) -> int:
        return self.v_out.shape[0]


class LavaNotInstalled(RuntimeError):
    """Lava cannot be imported in this Python; the message names the extra to install and where."""


def lava_missing() -> str | None:
    """None when Lava (lava-nc) can be imported here, else one line saying why it cannot and what to install."""
    try:
        # the top-level package first: find_spec of an already imported submodule does not look at its parent,
        # so a blocked `lava` (sys.modules["lava"] = None, as an uninstalled one) would go unseen
        if all(importlib.util.find_spec(name) is not None for name in ("lava", "lava.magma.core")):
            return None
    except (ImportError, ValueError):
        pass
    return (f"Lava (lava-nc 0.10) is not installed in this Python {platform.python_version()}; it is the [lava] "
            f"extra, which needs Python 3.10 (Lava 0.10 supports only Python 3.10 and numpy < 2): "
            f"pip install -e '.[lava]' in a Python 3.10 environment, or `make env`")


def require_lava(command: str) -> None:
    """Raise LavaNotInstalled naming `command` when Lava is missing (before any work is done)."""
    reason = lava_missing()
    if reason is not None:
        raise LavaNotInstalled(f"{command} needs Lava for bit-exact verification: {reason} (train, evaluate, "
                               f"quantise and export work without it)")


# ---------------------------------------------------------------------------------------------------------------
# parent side


def run_lava(nir_path, data, n_samples: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
             workdir=None, on_wait=None) -> LavaResult:
    """Run the first `n_samples` samples of `data` (SpikeData; all if None) through the network in `nir_path`
    on Lava fixed_pt, in a child process killed after `timeout_s` seconds. `on_wait(elapsed_s)` is called about
    once a second while the child runs (progress for people)."""
    try:                    # bad or edited files fail here, in the parent, as one-line ValueErrors
        lava_network(nir_path)
    except (KeyError, IndexError, TypeError) as err:
        message = f"a node lacks field or metadata {err}" if isinstance(err, KeyError) \
            else f"{type(err).__name__}: {err}"
        raise ValueError(f"{nir_path}: {message}") from None
    require_lava("evprop verify")
    n = len(data) if n_samples is None else min(int(n_samples), len(data))
    subset = data.subset(np.arange(n))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="evprop-lava-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "data.npz", steps=subset.steps, channels=subset.channels, offsets=subset.offsets,
                 n_steps=subset.n_steps, n_channels=subset.n_channels)
        _run_child([sys.executable, "-m", "evprop.hw_sim.lava_sim", str(Path(nir_path).resolve()),
                    str(tmp / "data.npz"), str(tmp)], timeout_s, tmp, on_wait)
        result = _collect(tmp)
    log.info("Lava fixed_pt: %d samples x %d steps in %.2f s (run), %.2f s (total)", n, subset.n_steps,
             result["run_time_s"], time.perf_counter() - started)
    return LavaResult(result["hidden"], result["v_out"], result["v_out_float"], result["run_time_s"],
                      time.perf_counter() - started)


def _run_child(cmd: list, timeout_s: float, tmp: Path, on_wait=None) -> None:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(tmp / "child.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        started = time.perf_counter()
        try:
            rc = None
            while rc is None:
                remaining = timeout_s - (time.perf_counter() - started)
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(cmd, timeout_s)
                try:
                    rc = proc.wait(timeout=min(1.0, remaining))
                except subprocess.TimeoutExpired:
                    if on_wait is not None:
                        on_wait(time.perf_counter() - started)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"Lava run did not finish within its hard timeout of {timeout_s:g} s (child process "
                               f"group killed); a failing Lava process model hangs instead of raising") from None
    if rc != 0:
        lines = (tmp / "child.log").read_text(errors="replace").strip().splitlines()
        log.debug("Lava child log (last 40 lines):\n%s", "\n".join(lines[-40:]))
        raise RuntimeError(f"Lava child process failed (exit code {rc}): {_last_error(lines)}")


def _last_error(lines: list) -> str:
    """The exception line of a child's traceback (its last line that starts a word, e.g. 'ValueError: ...')."""
    for line in reversed(lines):
        if line and not line[0].isspace() and not line.startswith(("Traceback", "During handling")):
            return line.strip()
    return "no output"


def _collect(tmp: Path) -> dict:
    plan = json.loads((tmp / "done.json").read_text())
    hidden, v_out = {}, None
    for entry in plan["layers"]:
        with np.load(tmp / entry["file"]) as rec:
            if entry["kind"] == "lif":
                hidden[entry["name"]] = rec["spikes"]
            else:
                v_out = rec["v"]
                v_lsb = entry["v_lsb"]
    return {"hidden": hidden, "v_out": v_out, "v_out_float": v_out.astype(np.float64) * v_lsb,
            "run_time_s": plan["run_time_s"]}


# ---------------------------------------------------------------------------------------------------------------
# child side: NIR graph -> Lava processes


def lava_network(nir_path) -> FixedPointSpec:
    """The fixed-point network Lava runs: the one the NIR file's standard fields describe (`import_nir`)."""
    from evprop.export.nir import import_nir

    _, fixed = import_nir(nir_path)
    if fixed is None:
        raise ValueError(f"{nir_path}: NIR graph holds no fixed-point integers (export it with fixed_point=...)")
    return fixed


def _child(nir_path: str, data_path: str, out_dir: str) -> None:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.utils.weightutils import SignMode

    from evprop.hw_sim.lava_procs.delay_dense import RingDelayDense
    from evprop.hw_sim.lava_procs.procs import EventSource, RecordingLIF

    fixed = lava_network(nir_path)
    with np.load(data_path) as data:
        steps, channels, offsets = data["steps"], data["channels"], data["offsets"]
        n_steps = int(data["n_steps"])
    n_samples = len(offsets) - 1
    # a zero weight carries nothing: its delay neither needs a ring slot nor lengthens the window
    delays = {c.name: np.where(c.weight != 0, c.delay, 0) for c in fixed.connections}
    max_delay = max([int(d.max(initial=0)) for d in delays.values()], default=0)
    window = n_steps + max_delay + 1
    sample = np.repeat(np.arange(n_samples), np.diff(offsets))
    time_step = sample * window + 1 + steps.astype(np.int64)
    order = np.argsort(time_step, kind="stable")
    np.savez(Path(out_dir) / "events.npz", time_step=time_step[order], channel=channels[order].astype(np.int64))
    total = n_samples * window
    procs = {fixed.input_name: EventSource(size=fixed.input_size, events_path=str(Path(out_dir) / "events.npz"),
                                           name=fixed.input_name)}
    layers = []
    for i, layer in enumerate(fixed.layers):
        file = f"layer{i}.npz"
        procs[layer.name] = RecordingLIF(shape=(layer.size,), du=layer.du.copy(), dv=layer.dv.copy(), vth=layer.vth,
                                         name=layer.name, window=window, n_active=n_steps, n_samples=n_samples,
                                         out_path=str(Path(out_dir) / file))
        layers.append({"name": layer.name, "kind": layer.kind, "file": file, "v_lsb": layer.v_lsb})
    for syn in fixed.connections:
        delay = delays[syn.name]
        kwargs = dict(weights=syn.weight.copy(), weight_exp=syn.weight_exp, num_weight_bits=syn.num_weight_bits,
                      sign_mode=SignMode[syn.sign_mode.upper()], name=syn.name)
        conn = Dense(**kwargs) if not delay.any() else \
            RingDelayDense(delays=delay.astype(int), max_delay=int(delay.max()), **kwargs)
        procs[syn.source].s_out.connect(conn.s_in)
        conn.a_out.connect(procs[syn.target].a_in)
    started = time.perf_counter()
    first = procs[fixed.layers[0].name]
    first.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    first.stop()
    run_time = time.perf_counter() - started
    missing = [e["file"] for e in layers if not (Path(out_dir) / e["file"]).is_file()]
    if missing:
        raise RuntimeError(f"Lava run ended without the recordings {missing}")
    (Path(out_dir) / "done.json").write_text(json.dumps({"layers": layers, "run_time_s": run_time,
                                                         "window": window, "n_samples": n_samples}))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    _child(*sys.argv[1:4])
