"""RingDelayDense: Lava 0.10's fixed-point `DelayDense` semantics with a cost per step proportional to the
number of presynaptic spikes (absolute imports only: Lava's compiler re-executes this file on its own).

Lava's `PyDelayDenseModelBitAcc` (lava/proc/dense/models.py) rebuilds a (n_out * (max_delay + 1), n_in) matrix
from `weights` and `delays` every time step and multiplies it by s_in: a cost of n_out * (max_delay + 1) * n_in per
step, whatever the spikes. Per step t it does

    send a_buff[:, 0];  a_buff[:, 0] = 0;  roll a_buff left by one column
    a_accum[j, k] = sum of weights[j, i] over spiking pre neurons i (s_in[i] != 0) with delays[j, i] == k  (int64)
    a_buff += a_accum << weight_exp   (>> -weight_exp if negative: floor)  into int32 (wraps at 32 bits)

so a spike of pre i in step t reaches post j in step t + 1 + delays[j, i]; weights are first clipped to 8 bits
and truncated per sign mode (`clip_weights`, `truncate_weights`), exactly as Dense. The 16-bit message width is
declared, not enforced.

`PyRingDelayDenseModelBitAcc` computes the same integers: ring buffer `a_buff` of max_delay + 1 rows of n_out
int32 (row (head + k) % (max_delay + 1) is sent k + 1 steps from now); per step it sends and clears row `head`,
advances `head`, and only if some pre neuron spiked gathers those neurons' rows of the transposed weight/delay
matrices, sums them per (delay, post) with one `np.bincount` (exact: |sums| < 2**53), shifts each (delay, post)
sum once (as Lava shifts a_accum) and adds the result into the ring rows (int32 wrap, as Lava's in-place add).
Note: the `a_buff` Var therefore has shape (max_delay + 1, n_out) in ring order, not Lava's (n_out, max_delay + 1).
Binary and graded input both count as "spiked" where s_in != 0 (Lava's fixed model declares s_in as bool).
"""

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

MAX_DELAY_LOIHI = 63            # Loihi 2: 6-bit synaptic delays (Lava's DelayDense fixed model raises above)
WEIGHT_BITS_STORED = 8          # Lava clips every weight to 8 bits before truncating to num_weight_bits


class RingDelayDense(AbstractProcess):
    """Dense, delayed synapses (same constructor arguments and semantics as lava.proc.dense.process.DelayDense).

    weights:     (n_out, n_in) integer weights (fixed_pt: clipped/truncated as Lava's Dense)
    delays:      (n_out, n_in) integer delays [time steps], 0..63, or one int for all synapses
    max_delay:   ring depth - 1 [time steps]; 0 = max(delays)
    weight_exp, num_weight_bits, sign_mode: as Dense (sign_mode None = detected from the weights)
    Invalid delays raise here, in the parent, never inside the process model (Lava would hang).
    """

    def __init__(self, *, weights: np.ndarray, delays, max_delay: int = 0, weight_exp: int = 0,
                 num_weight_bits: int = 8, sign_mode: SignMode = None, num_message_bits: int = 0,
                 name: str = None):
        weights = np.asarray(weights)
        if weights.ndim != 2:
            raise ValueError(f"RingDelayDense: weights must be 2-D (n_out, n_in), got shape {weights.shape}")
        delays = np.broadcast_to(np.asarray(delays), weights.shape)
        if not np.issubdtype(delays.dtype, np.integer):
            raise ValueError(f"RingDelayDense: delays must be integers, got dtype {delays.dtype}")
        if delays.size and (delays.min() < 0 or delays.max() > MAX_DELAY_LOIHI):
            raise ValueError(f"RingDelayDense: delays must lie in [0, {MAX_DELAY_LOIHI}] time steps, got "
                             f"[{delays.min()}, {delays.max()}]")
        max_delay = int(max_delay) or int(delays.max(initial=0))
        if max_delay < int(delays.max(initial=0)) or max_delay > MAX_DELAY_LOIHI:
            raise ValueError(f"RingDelayDense: max_delay {max_delay} must lie in [max(delays), {MAX_DELAY_LOIHI}]")
        super().__init__(weights=weights, delays=delays, max_delay=max_delay, weight_exp=int(weight_exp),
                         num_weight_bits=int(num_weight_bits), sign_mode=sign_mode,
                         num_message_bits=num_message_bits, name=name)
        n_out, n_in = weights.shape
        self.s_in = InPort(shape=(n_in,))
        self.a_out = OutPort(shape=(n_out,))
        self.weights = Var(shape=weights.shape, init=weights)
        self.delays = Var(shape=weights.shape, init=np.array(delays))
        self.a_buff = Var(shape=(max_delay + 1, n_out), init=0)
        self.num_message_bits = Var(shape=(1,), init=num_message_bits)

    def __del__(self):
        # AbstractProcess.__del__ fails on an instance whose __init__ raised before super().__init__
        if hasattr(self, "_runtime"):
            super().__del__()


def clipped_weights(weights: np.ndarray, sign_mode, num_weight_bits: int) -> np.ndarray:
    """Lava's Dense fixed-point weight preparation (first time step): clip to 8 bits, truncate LSBs."""
    sign_mode = sign_mode or determine_sign_mode(weights)
    weights = clip_weights(weights, sign_mode, num_bits=WEIGHT_BITS_STORED)
    return truncate_weights(weights, sign_mode, num_weight_bits)


def shift_accumulated(acc: np.ndarray, weight_exp: int) -> np.ndarray:
    """Dense's a_out from the int64 accumulation: acc << weight_exp, or floor(acc / 2**-weight_exp)."""
    return np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)


@implements(proc=RingDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyRingDelayDenseModelBitAcc(PyLoihiProcessModel):
    """Bit-accurate model of RingDelayDense (module docstring)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._prepared = False
        self._head = 0

    def _prepare(self) -> None:
        """First step: Lava's weight clipping, then pre-major (n_in, n_out) tables for row gathers."""
        self.weights = clipped_weights(self.weights, self.proc_params.get("sign_mode"),
                                       self.proc_params.get("num_weight_bits", 8))
        n_out = self.weights.shape[0]
        self._weight_exp = int(self.proc_params.get("weight_exp", 0))
        self._depth = self.a_buff.shape[0]
        self._w_rows = np.ascontiguousarray(self.weights.T, dtype=np.float64)          # exact for 8-bit ints
        # flat (delay, post) index of every synapse, pre-major: delays[j, i] * n_out + j
        self._slot_rows = np.ascontiguousarray(self.delays.T.astype(np.int64) * n_out + np.arange(n_out))
        self._prepared = True

    def run_spk(self):
        if not self._prepared:
            self._prepare()
        self.a_out.send(self.a_buff[self._head])
        self.a_buff[self._head] = 0
        self._head = (self._head + 1) % self._depth
        active = np.flatnonzero(self.s_in.recv())
        if active.size:
            self._deliver(active)

    def _deliver(self, active: np.ndarray) -> None:
        """Add the messages of the spiking pre neurons `active` to the ring rows (delay k -> head + k)."""
        n_out = self.a_buff.shape[1]
        acc = np.bincount(self._slot_rows[active].ravel(), weights=self._w_rows[active].ravel(),
                          minlength=self._depth * n_out)
        acc = shift_accumulated(acc.astype(np.int64).reshape(self._depth, n_out), self._weight_exp)
        used = np.flatnonzero(acc.any(axis=1))
        rows = (self._head + used) % self._depth
        self.a_buff[rows] = self.a_buff[rows] + acc[used]          # int64 -> int32 store wraps like Lava's +=
