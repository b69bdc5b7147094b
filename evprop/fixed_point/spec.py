"""The fixed-point target: Lava 0.10's bit-accurate ("fixed_pt") LIF/Dense arithmetic as data (docs/architecture.md
section "The fixed-point target").

This module holds the target's bit widths and shifts (one named constant per width, as Lava declares
``LavaPyType(np.ndarray, np.int32, precision=24)`` beside each variable), the `FixedPointSpec` that describes one
quantised network in target integers, and its file format. The arithmetic that runs it is `evprop.fixed_point.emulator`
(Lava's process vs process model: data here, arithmetic there); the float -> integer mapping is
`evprop.fixed_point.quantise`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evprop.model.io import array_reader, load_arrays, read_header, save_arrays
from evprop.model.spec import _ValueEquality

# ---- Lava 0.10 fixed-point constants (lava/proc/lif/models.py, lava/proc/dense/models.py) ----
DECAY_BITS = 12                      # du, dv: unsigned 12-bit (0..4095)
DECAY_SHIFT = 12                     # decays are applied as x * (4096 - d) >> 12
DECAY_UNITY = 1 << DECAY_SHIFT       # 4096
DS_OFFSET = 1                        # Lava adds 1 to du ("ds_offset"): u decays by (4096 - du - 1) / 4096
DM_OFFSET = 0                        # ... and 0 to dv ("dm_offset"): v decays by (4096 - dv) / 4096
DECAY_MAX = (1 << DECAY_BITS) - 1    # 4095
VTH_BITS = 17                        # vth: unsigned 17-bit
VTH_MAX = (1 << VTH_BITS) - 1        # 131071
VTH_SHIFT = 6                        # spike if v > vth << 6 (MSB alignment of the threshold)
ACT_SHIFT = 6                        # u receives a_in << 6 (MSB alignment of the synaptic input)
UV_BITS = 24                         # u and v are 24-bit values held in int32
UV_HALF = 1 << (UV_BITS - 1)         # 2**23: u wraps by 2**24 when > 2**23 or <= -2**23
V_MAX = UV_HALF - 1                  # v saturates to [-(2**23 - 1), 2**23 - 1]
V_MIN = -UV_HALF + 1
MESSAGE_BITS = 16                    # Dense a_out is declared 16-bit ("precision=16"); Lava does not enforce it
MESSAGE_MAX = (1 << (MESSAGE_BITS - 1)) - 1
WEIGHT_BITS = 8                      # num_weight_bits: 8-bit weights
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7   # Loihi's signed 4-bit weight exponent (Lava itself does not check)
MAX_DELAY = 63                       # DelayDense fixed_pt: delays are 6-bit (0..63); Lava raises above 63
HEADROOM_BITS = 1                    # LIF: calibrated max |u|, |v| must stay below 2**(23 - 1)
LI_HEADROOM_BITS = 3                 # LI: calibrated max |v| below 2**(23 - 3), far from vth << 6 ~ 2**23
FIXED_POINT_FORMAT = "evprop-fixed-point"
FIXED_POINT_VERSION = 1

# Integer weight range per sign mode, after Lava's clip_weights(num_bits=8) and truncate_weights(8 bits):
# mixed-sign weights lose one LSB (sign bit), so they are the even values in [-256, 254].
SIGN_MODES = {"mixed": (-256, 254, 2), "excitatory": (0, 255, 1), "inhibitory": (-255, 0, 1)}


def _int_array(owner: str, name: str, value, shape: tuple, lo: int, hi: int, step: int = 1) -> np.ndarray:
    array = np.array(value)
    if array.shape != shape or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{owner}: field '{name}' must be an integer array of shape {shape}, "
                         f"got {array.dtype} {array.shape}")
    array = array.astype(np.int32)
    if array.size and (array.min() < lo or array.max() > hi or np.any(array % step)):
        raise ValueError(f"{owner}: field '{name}' must lie in [{lo}, {hi}]" + (f" in steps of {step}" if step > 1
                                                                                  else "")
                         + f", got [{array.min()}, {array.max()}]")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FixedLayer(_ValueEquality):
    """One neuron population in Lava fixed-point units.

    kind:  'lif' (spiking hidden layer) or 'li' (readout: a LIF whose threshold its v never reaches)
    du:    int32 [n], 12-bit (0..4095): u <- trunc(u * (4095 - du) / 4096) + (a_in << 6)
    dv:    int32 [n], 12-bit (0..4095): v <- trunc(v * (4096 - dv) / 4096) + u
    vth:   17-bit (0..131071): spike if v > vth << 6
    v_lsb: float value [V units, threshold theta of the float model] of one integer LSB of u and v
    """

    name: str
    kind: str
    du: np.ndarray
    dv: np.ndarray
    vth: int
    v_lsb: float

    def __post_init__(self):
        owner = f"fixed-point layer '{self.name}'"
        if self.kind not in ("lif", "li"):
            raise ValueError(f"{owner}: kind {self.kind!r}, expected 'lif' or 'li'")
        n = np.shape(self.du)
        if len(n) != 1:
            raise ValueError(f"{owner}: du must be a 1-D array, got shape {n}")
        object.__setattr__(self, "du", _int_array(owner, "du", self.du, n, 0, DECAY_MAX))
        object.__setattr__(self, "dv", _int_array(owner, "dv", self.dv, n, 0, DECAY_MAX))
        if not isinstance(self.vth, (int, np.integer)) or not 0 <= self.vth <= VTH_MAX:
            raise ValueError(f"{owner}: vth {self.vth!r} must be an integer in [0, {VTH_MAX}]")
        object.__setattr__(self, "vth", int(self.vth))
        if not (np.isfinite(self.v_lsb) and self.v_lsb > 0):
            raise ValueError(f"{owner}: v_lsb {self.v_lsb!r} must be > 0")
        object.__setattr__(self, "v_lsb", float(self.v_lsb))

    @property
    def size(self) -> int:
        return len(self.du)


@dataclass(frozen=True, eq=False)
class FixedConnection(_ValueEquality):
    """Dense synapses in Lava units. Layout [post, pre] = Lava Dense `weights` (n_out, n_in) = NIR Linear (out, in).

    weight:      int32 [n_post, n_pre], exactly representable (Lava's clip/truncate leave it unchanged):
                 mixed: even values in [-256, 254]; excitatory: [0, 255]; inhibitory: [-255, 0]
    weight_exp:  a_out = (sum of arriving weights) << weight_exp  (>> -weight_exp if negative, floor)
    sign_mode:   'mixed' | 'excitatory' | 'inhibitory' (passed to Lava explicitly, never auto-detected)
    delay:       int32 [n_post, n_pre] in steps, 0..63: a spike in step s arrives in step s + 1 + delay
    """

    source: str
    target: str
    weight: np.ndarray
    weight_exp: int
    sign_mode: str
    delay: np.ndarray
    num_weight_bits: int = WEIGHT_BITS

    def __post_init__(self):
        owner = f"fixed-point connection '{self.name}'"
        if self.sign_mode not in SIGN_MODES:
            raise ValueError(f"{owner}: sign_mode {self.sign_mode!r}, expected one of {tuple(SIGN_MODES)}")
        if self.num_weight_bits != WEIGHT_BITS:
            raise ValueError(f"{owner}: num_weight_bits {self.num_weight_bits}, only {WEIGHT_BITS} is supported")
        lo, hi, step = SIGN_MODES[self.sign_mode]
        shape = np.shape(self.weight)
        if len(shape) != 2:
            raise ValueError(f"{owner}: weight must be 2-D [post, pre], got shape {shape}")
        object.__setattr__(self, "weight", _int_array(owner, "weight", self.weight, shape, lo, hi, step))
        object.__setattr__(self, "delay", _int_array(owner, "delay", self.delay, shape, 0, MAX_DELAY))
        if not isinstance(self.weight_exp, (int, np.integer)) \
                or not WEIGHT_EXP_MIN <= self.weight_exp <= WEIGHT_EXP_MAX:
            raise ValueError(f"{owner}: weight_exp {self.weight_exp!r} must be an integer in "
                             f"[{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]")
        object.__setattr__(self, "weight_exp", int(self.weight_exp))

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def max_delay(self) -> int:
        return int(self.delay.max()) if self.delay.size else 0


@dataclass(frozen=True, eq=False)
class FixedPointSpec(_ValueEquality):
    """A quantised network: the input, the neuron layers (hidden LIF..., LI output) and the connections.

    dt_ms, n_steps, readout: copied from the NetworkSpec (scores: `NetworkSpec.scores(v_out_float)`).
    """

    dt_ms: float
    n_steps: int
    input_name: str
    input_size: int
    layers: tuple
    connections: tuple
    readout: str = "sum_exp"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "connections", tuple(self.connections))
        sizes = {self.input_name: self.input_size}
        for layer in self.layers:
            sizes[layer.name] = layer.size
        if len(sizes) != len(self.layers) + 1:
            raise ValueError("fixed-point network: layer names must be unique")
        if not self.layers or self.layers[-1].kind != "li" or any(l.kind != "lif" for l in self.layers[:-1]):
            raise ValueError("fixed-point network: layers must be (lif..., li)")
        for conn in self.connections:
            if conn.source not in sizes or conn.target not in sizes or conn.target == self.input_name:
                raise ValueError(f"fixed-point connection '{conn.name}': bad endpoints (layers {list(sizes)})")
            if conn.weight.shape != (sizes[conn.target], sizes[conn.source]):
                raise ValueError(f"fixed-point connection '{conn.name}': weight shape {conn.weight.shape}, "
                                 f"expected {(sizes[conn.target], sizes[conn.source])} = (post, pre)")

    @property
    def output(self) -> FixedLayer:
        return self.layers[-1]

    def layer(self, name: str) -> FixedLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"fixed-point network has no layer '{name}'")

    def incoming(self, name: str) -> tuple:
        return tuple(c for c in self.connections if c.target == name)

    def outgoing(self, name: str) -> tuple:
        return tuple(c for c in self.connections if c.source == name)


# ---------------------------------------------------------------------------------------------------------------
# Files


def fixed_point_to_arrays(fp: FixedPointSpec, prefix: str = "fixed") -> dict:
    arrays = {}
    layers = []
    for layer in fp.layers:
        arrays[f"{prefix}/{layer.name}/du"] = layer.du
        arrays[f"{prefix}/{layer.name}/dv"] = layer.dv
        layers.append({"name": layer.name, "kind": layer.kind, "vth": layer.vth, "v_lsb": layer.v_lsb})
    conns = []
    for conn in fp.connections:
        arrays[f"{prefix}/{conn.name}/weight"] = conn.weight
        arrays[f"{prefix}/{conn.name}/delay"] = conn.delay
        conns.append({"source": conn.source, "target": conn.target, "weight_exp": conn.weight_exp,
                      "sign_mode": conn.sign_mode, "num_weight_bits": conn.num_weight_bits})
    header = {"format": FIXED_POINT_FORMAT, "version": FIXED_POINT_VERSION, "dt_ms": fp.dt_ms, "n_steps": fp.n_steps,
              "input_name": fp.input_name, "input_size": fp.input_size, "readout": fp.readout, "layers": layers,
              "connections": conns}
    arrays[f"{prefix}/spec"] = np.array(json.dumps(header))
    return arrays


def fixed_point_from_arrays(arrays: dict, prefix: str = "fixed", source: str = "<arrays>") -> FixedPointSpec:
    header = read_header(arrays, prefix, source, FIXED_POINT_FORMAT, FIXED_POINT_VERSION, "fixed-point file")
    array = array_reader(arrays, prefix, source)

    try:
        layers = tuple(FixedLayer(e["name"], e["kind"], array(f"{e['name']}/du"), array(f"{e['name']}/dv"),
                                  e["vth"], e["v_lsb"]) for e in header["layers"])
        conns = tuple(FixedConnection(e["source"], e["target"], array(f"{e['source']}->{e['target']}/weight"),
                                      e["weight_exp"], e["sign_mode"], array(f"{e['source']}->{e['target']}/delay"),
                                      e["num_weight_bits"]) for e in header["connections"])
        return FixedPointSpec(header["dt_ms"], header["n_steps"], header["input_name"], header["input_size"],
                              layers, conns, header["readout"])
    except KeyError as err:
        raise ValueError(f"{source}: fixed-point description lacks key {err}") from None
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def save_fixed_point(path, fp: FixedPointSpec) -> None:
    """Write `fp` as an npz (atomic)."""
    save_arrays(Path(path), fixed_point_to_arrays(fp))


def load_fixed_point(path) -> FixedPointSpec:
    """Read a file written by `save_fixed_point`; anything else is a one-line ValueError naming the path."""
    return fixed_point_from_arrays(load_arrays(Path(path), "fixed-point file"), source=str(path))
