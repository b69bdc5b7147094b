"""Check and time RingDelayDense against Lava's DelayDense (absolute imports only; Lava's compiler re-executes
every module of this package, so nothing runs at import time).

`compare_connections` (parent side) writes the case to an npz and runs `python -m
evprop.hw_sim.lava_procs.delay_check CASE OUT_DIR KIND...` in a child process with a hard timeout (Lava hangs
when a process model fails). The child builds, per KIND ('lava' = lava.proc.dense.process.DelayDense, 'ring' =
RingDelayDense, 'dense' = Dense ignoring the delays, a framework baseline), one Lava network

    EventSource (input raster) -> connection -> MessageRecorder

runs it for n_steps + max_delay + 2 time steps under Loihi2SimCfg(select_tag="fixed_pt") and records every
message the connection sent (int32 [time steps, n_out]) and the wall time of `run` [s].
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from evprop.model.io import atomic_write

KINDS = ("lava", "ring", "dense")
DRAIN_STEPS = 2                   # extra time steps after the last possible arrival


class MessageRecorder(AbstractProcess):
    """Records every int32 message on a_in for n_steps time steps; writes npz 'messages' [n_steps, n] to
    out_path (atomic) at the last step."""

    def __init__(self, *, size: int, n_steps: int, out_path: str, name: str = None):
        super().__init__(size=size, n_steps=n_steps, out_path=out_path, name=name)
        self.a_in = InPort(shape=(size,))


@implements(proc=MessageRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyMessageRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._messages = np.zeros((proc_params["n_steps"], proc_params["size"]), np.int32)

    def run_spk(self):
        self._messages[self.time_step - 1] = self.a_in.recv()
        if self.time_step == len(self._messages):
            atomic_write(self.proc_params["out_path"], lambda handle: np.savez(handle, messages=self._messages))


# ---------------------------------------------------------------------------------------------------------------
# parent side


def compare_connections(weights, delays, raster, weight_exp=0, sign_mode="mixed", kinds=("lava", "ring"),
                        timeout_s=120.0, workdir=None) -> dict:
    """Run `raster` (bool [n_steps, n_in]) through each connection kind. weights, delays: (n_out, n_in) ints.
    Returns {kind: {'messages': int32 [time steps, n_out], 'run_s': wall time of Lava's run [s]}}."""
    from evprop.hw_sim.lava_sim import _run_child

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"compare_connections: unknown kinds {sorted(unknown)}, expected some of {KINDS}")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="evprop-delay-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "case.npz", weights=np.asarray(weights, np.int64), delays=np.asarray(delays, np.int64),
                 raster=np.asarray(raster, bool), weight_exp=int(weight_exp), sign_mode=str(sign_mode))
        _run_child([sys.executable, "-m", "evprop.hw_sim.lava_procs.delay_check", str(tmp / "case.npz"),
                    str(tmp), *kinds], timeout_s, tmp)
        times = json.loads((tmp / "times.json").read_text())
        out = {}
        for kind in kinds:
            with np.load(tmp / f"messages_{kind}.npz") as rec:
                out[kind] = {"messages": rec["messages"], "run_s": times[kind]}
    return out


# ---------------------------------------------------------------------------------------------------------------
# child side


def _connection(kind: str, weights, delays, weight_exp: int, sign_mode: str):
    from lava.proc.dense.process import DelayDense, Dense
    from lava.utils.weightutils import SignMode
    from evprop.hw_sim.lava_procs.delay_dense import RingDelayDense

    kwargs = dict(weights=weights, weight_exp=weight_exp, num_weight_bits=8, sign_mode=SignMode[sign_mode.upper()])
    if kind == "lava":
        return DelayDense(delays=delays.astype(int), max_delay=int(delays.max()), **kwargs)
    if kind == "ring":
        return RingDelayDense(delays=delays, **kwargs)
    return Dense(**kwargs)


def _run_kind(kind: str, case: dict, out_dir: Path) -> float:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from evprop.hw_sim.lava_procs.procs import EventSource

    weights, delays, raster = case["weights"], case["delays"], case["raster"]
    n_steps = raster.shape[0] + int(delays.max(initial=0)) + DRAIN_STEPS
    k, channel = np.nonzero(raster)
    events = out_dir / f"events_{kind}.npz"
    np.savez(events, time_step=(k + 1).astype(np.int64), channel=channel.astype(np.int64))
    source = EventSource(size=raster.shape[1], events_path=str(events))
    conn = _connection(kind, weights, delays, int(case["weight_exp"]), str(case["sign_mode"]))
    sink = MessageRecorder(size=weights.shape[0], n_steps=n_steps, out_path=str(out_dir / f"messages_{kind}.npz"))
    source.s_out.connect(conn.s_in)
    conn.a_out.connect(sink.a_in)
    started = time.perf_counter()
    sink.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    elapsed = time.perf_counter() - started
    sink.stop()
    return elapsed


def _child(case_path: str, out_dir: str, *kinds: str) -> None:
    with np.load(case_path) as data:
        case = {key: data[key] for key in data.files}
    out = Path(out_dir)
    times = {kind: _run_kind(kind, case, out) for kind in kinds}
    (out / "times.json").write_text(json.dumps(times))


if __name__ == "__main__":
    _child(*sys.argv[1:])
