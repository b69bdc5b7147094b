"""Two recording processes for networks that Lava builds from someone else's description (netx), absolute imports
only (Lava's compiler re-executes this file when it searches for process models).

SpikeRecorder   receives a layer's spikes on `a_in` every time step
VarRecorder     reads a Var (e.g. the readout's v) through a RefPort after every time step (management phase,
                after the step's update and spike reset, as lava.proc.monitor does)

Both keep the values of time steps 1..n_steps in memory and write them to `out_path` (npz with array 'data'
[n_steps, *shape], atomic rename) after the last one: no Monitor and no Var.get (40-70 us per element).
"""

import os

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


def _save(out_path: str, data: np.ndarray) -> None:
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, data=data)
    os.replace(tmp, out_path)


class SpikeRecorder(AbstractProcess):
    """Records the spikes arriving on `a_in` (bool [n_steps, *shape])."""

    def __init__(self, *, shape: tuple, n_steps: int, out_path: str, name: str = None):
        super().__init__(shape=shape, n_steps=n_steps, out_path=out_path, name=name)
        self.a_in = InPort(shape=shape)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._n_steps = proc_params["n_steps"]
        self._out_path = proc_params["out_path"]
        self._data = np.zeros((self._n_steps,) + tuple(proc_params["shape"]), dtype=bool)

    def run_spk(self):
        spikes = self.a_in.recv()
        if self.time_step <= self._n_steps:
            self._data[self.time_step - 1] = spikes != 0
        if self.time_step == self._n_steps:
            _save(self._out_path, self._data)


class VarRecorder(AbstractProcess):
    """Records the Var `var` (int32 [n_steps, *var.shape]) after every time step."""

    def __init__(self, *, var, n_steps: int, out_path: str, name: str = None):
        super().__init__(shape=var.shape, n_steps=n_steps, out_path=out_path, name=name)
        self.ref = RefPort(shape=var.shape)
        self.ref.connect_var(var)


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyVarRecorderModel(PyLoihiProcessModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._n_steps = proc_params["n_steps"]
        self._out_path = proc_params["out_path"]
        self._data = np.zeros((self._n_steps,) + tuple(proc_params["shape"]), dtype=np.int32)

    def post_guard(self):
        return True

    def run_post_mgmt(self):
        if self.time_step <= self._n_steps:
            self._data[self.time_step - 1] = self.ref.read()
        if self.time_step == self._n_steps:
            _save(self._out_path, self._data)

    def run_spk(self):
        pass
