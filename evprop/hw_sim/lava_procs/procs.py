"""Two small Lava processes for running many samples in one Lava run (absolute imports only: Lava's compiler
re-executes this file on its own when it searches for process models).

Time line: Lava's time_step starts at 1. Sample i occupies time steps i*window + 1 ... (i+1)*window; its step k
(0-based) is time_step i*window + 1 + k for k < n_active; the remaining window - n_active steps are padding in
which every neuron is held at u = v = 0 and silent, so the connections' buffers (Dense: 1 step, DelayDense:
max_delay + 1 steps) drain before the next sample starts from zero state.

EventSource      sends the input spikes of step k in time step i*window + 1 + k (zeros in the padding).
RecordingLIF     a LIF whose fixed_pt model is Lava's bit-accurate LIF arithmetic
                 (lava.proc.lif.models.AbstractPyLifModelFixed.subthr_dynamics and PyLifModelBitAcc's
                 scale_threshold / spiking_activation, reused unchanged), plus: the padding clamp above, and
                 recording of spikes (bool) and v (int32, after the reset) of the active steps into arrays that
                 are written to `out_path` (npz, atomic rename) after the last time step. No Monitor, no
                 Var.get (40-70 us per element).
"""

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, PyLifModelBitAcc
from lava.proc.lif.process import LIF

from evprop.model.io import atomic_write


class EventSource(AbstractProcess):
    """Input spikes of many samples. proc_params: events_path (npz with int64 'time_step' and 'channel', sorted
    by time_step): channel c spikes in Lava time step t."""

    def __init__(self, *, size: int, events_path: str, name: str = None):
        super().__init__(size=size, events_path=events_path, name=name)
        self.s_out = OutPort(shape=(size,))


@implements(proc=EventSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyEventSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        with np.load(proc_params["events_path"]) as events:
            self._time_step = events["time_step"]
            self._channel = events["channel"]
        self._size = proc_params["size"]

    def run_spk(self):
        lo, hi = np.searchsorted(self._time_step, [self.time_step, self.time_step + 1])
        spikes = np.zeros(self._size, dtype=bool)
        spikes[self._channel[lo:hi]] = True
        self.s_out.send(spikes)


class RecordingLIF(LIF):
    """LIF (same Vars and ports) with the sample window and recording described in the module docstring.
    Extra proc_params: window, n_active, n_samples, out_path."""

    def __init__(self, *, window: int, n_active: int, n_samples: int, out_path: str, **kwargs):
        super().__init__(window=window, n_active=n_active, n_samples=n_samples, out_path=out_path, **kwargs)


@implements(proc=RecordingLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyRecordingLifModelBitAcc(AbstractPyLifModelFixed):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    # Lava's own bit-accurate threshold handling, unchanged
    scale_threshold = PyLifModelBitAcc.scale_threshold
    spiking_activation = PyLifModelBitAcc.spiking_activation

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.effective_vth = 0
        self._window = proc_params["window"]
        self._n_active = proc_params["n_active"]
        self._n_samples = proc_params["n_samples"]
        self._out_path = proc_params["out_path"]
        shape = (self._n_samples, self._n_active) + tuple(proc_params["shape"])
        self._spikes = np.zeros(shape, dtype=bool)
        self._v = np.zeros(shape, dtype=np.int32)

    def run_spk(self):
        a_in_data = self.a_in.recv()
        sample, k = divmod(self.time_step - 1, self._window)
        if k >= self._n_active:                      # padding: clamp, stay silent
            self.u[:] = 0
            self.v[:] = 0
            self.s_out.send(np.zeros(self.v.shape, dtype=bool))
        else:
            # the body of PyLifModelBitAcc.run_spk (AbstractPyLifModelFixed.run_spk)
            self.scale_bias()
            if not self.isthrscaled:
                self.scale_threshold()
            self.subthr_dynamics(activation_in=a_in_data)
            self.s_out_buff = self.spiking_activation()
            self.reset_voltage(spike_vector=self.s_out_buff)
            self.s_out.send(self.s_out_buff)
            if sample < self._n_samples:
                self._spikes[sample, k] = self.s_out_buff
                self._v[sample, k] = self.v
        if self.time_step == self._n_samples * self._window:
            atomic_write(self._out_path, lambda handle: np.savez(handle, spikes=self._spikes, v=self._v))
