"""Float NetworkSpec -> FixedPointSpec in Lava 0.10's bit-accurate ("fixed_pt") conventions (DESIGN section 4).

The target (``lava.proc.lif.models.PyLifModelBitAcc`` fed by ``lava.proc.dense.models.PyDenseModelBitAcc`` /
``PyDelayDenseModelBitAcc``; measured in ../shared/notes/lava-nir-deps.md section 2) runs per neuron and step

    a_in  = sum over arriving spikes of (W_L << weight_exp)      # Dense: accumulate, then shift (>> if exp < 0)
    u     = wrap24( trunc(u * (4096 - (du + 1)) / 4096) + (a_in << 6) )
    v     = clip24( trunc(v * (4096 - dv) / 4096) + u )
    spike = v > (vth << 6);  v[spike] = 0                        # u is not reset

with trunc = round toward zero, wrap24 = one subtraction/addition of 2**24 (see `evprop.hw_sim.emulator`), clip24
to [-(2**23 - 1), 2**23 - 1]. Our float step (DESIGN section 2) is u = g*I: u <- beta*u + g*arrivals,
V <- alpha*V + u. So with one float scale `v_lsb` per population (the float value, in V units, of one integer LSB
of u and v):

    beta  = (4095 - du) / 4096       alpha = (4096 - dv) / 4096
    g * w = W_L * 2**(weight_exp + 6) * v_lsb = W_L * unit        (unit: float value of one integer weight step)
    theta = (vth << 6) * v_lsb

All connections into a population share its v units (`v_lsb`); each connection has its own weight scale
(`unit`, a power of two from the published exporter's percentile rule, ../shared/notes/anchors.md section 2) and
so its own `weight_exp`. (The published exporter gives feedforward and recurrent weights one shared scale; their
ranges differ by 10x or more here, and a shared scale saturated ~6% of the input weights.) `device_params` is the one
place where float parameters become target integers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evprop.model.io import array_reader, load_arrays, read_header, save_arrays
from evprop.model.spec import LIFLayer, LILayer, NetworkSpec, _ValueEquality, discretise, used_delay_steps

log = logging.getLogger(__name__)

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
# The float -> target mapping


@dataclass(frozen=True)
class DeviceParams:
    """What `device_params` returns for one population: the target layer, its incoming connections, and the
    float weights they stand for (for the report)."""

    layer: FixedLayer
    connections: tuple
    clipped: dict = field(default_factory=dict)        # connection name -> number of saturated weights
    max_error: dict = field(default_factory=dict)      # connection name -> max |W_L * unit - g*w| (unclipped)
    decays_clipped: int = 0                            # du/dv values outside 0..4095 that were clipped


def device_params(layer, incoming: tuple, dt_ms: float, v_lsb: float, weight_exps: dict) -> DeviceParams:
    """The one float -> Lava fixed-point mapping (cf. lava-dl's `device_params`), for one population.

    layer:       LIFLayer or LILayer (taus [ms], threshold theta [V])
    incoming:    Connections into it (float weights w [pre, post], float delays [steps])
    v_lsb:       float value [V] of one LSB of the population's u and v
    weight_exps: {connection name: weight_exp}; one integer weight step of connection c is worth
                 unit_c = 2**(weight_exp_c + 6) * v_lsb [V]
    """
    alpha, beta, g = discretise(layer.tau_mem_ms, layer.tau_syn_ms, dt_ms)
    # u decays by (DECAY_UNITY - (du + DS_OFFSET)) / 4096 = (4095 - du) / 4096 := beta
    du = DECAY_UNITY - DS_OFFSET - np.rint(DECAY_UNITY * beta)
    # v decays by (DECAY_UNITY - (dv + DM_OFFSET)) / 4096 = (4096 - dv) / 4096 := alpha
    dv = DECAY_UNITY - DM_OFFSET - np.rint(DECAY_UNITY * alpha)
    du_int = np.clip(du, 0, DECAY_MAX).astype(np.int32)          # beta > 4095.5/4096 is not representable
    dv_int = np.clip(dv, 0, DECAY_MAX).astype(np.int32)          # alpha < 0.5/4096 is not representable
    decays_clipped = int(np.sum(du != du_int) + np.sum(dv != dv_int))
    for name, raw, used in (("du", du, du_int), ("dv", dv, dv_int)):
        if np.any(raw != used):
            log.warning("layer '%s': %d %s values outside 0..%d were clipped", layer.name,
                        int(np.sum(raw != used)), name, DECAY_MAX)
    if isinstance(layer, LIFLayer):
        # spike if v > vth << VTH_SHIFT, i.e. V > vth * 64 * v_lsb ~ theta (one LSB above, V >= theta in float)
        vth = int(np.rint(layer.threshold / (v_lsb * (1 << VTH_SHIFT))))
        if vth < 1:
            raise ValueError(f"layer '{layer.name}': threshold {layer.threshold} is below one threshold step "
                             f"({v_lsb * (1 << VTH_SHIFT):g}); the weights are too large relative to it")
        kind = "lif"
    else:
        vth, kind = VTH_MAX, "li"    # readout: the largest threshold; the exponent keeps |v| far below it
    fixed_layer = FixedLayer(layer.name, kind, du_int, dv_int, vth, v_lsb)
    conns, clipped, errors = [], {}, {}
    for conn in incoming:
        weight_exp = weight_exps[conn.name]
        unit = v_lsb * 2.0 ** (weight_exp + ACT_SHIFT)           # a spike adds W_L << weight_exp << 6 LSBs to u
        gw = conn.weight * g[None, :]                            # [pre, post], V units per spike
        mode = sign_mode(conn.weight)
        lo, hi, step = SIGN_MODES[mode]
        mant = np.rint(gw / (unit * step)) * step                # nearest representable (mixed: even) value
        sat = (mant < lo) | (mant > hi)
        clipped[conn.name] = int(sat.sum())
        errors[conn.name] = float(np.abs(mant * unit - gw)[~sat].max()) if np.any(~sat) else 0.0
        delay = used_delay_steps(conn.delay, conn.max_delay_steps)
        conns.append(FixedConnection(conn.source, conn.target, np.clip(mant, lo, hi).astype(np.int32).T,
                                     weight_exp, mode, delay.T.astype(np.int32)))
    return DeviceParams(fixed_layer, tuple(conns), clipped, errors, decays_clipped)


def sign_mode(weight: np.ndarray) -> str:
    """Lava's sign mode of a float weight matrix (as lava.utils.weightutils.determine_sign_mode)."""
    if np.min(weight) >= 0:
        return "excitatory"
    if np.max(weight) <= 0:
        return "inhibitory"
    return "mixed"


def weight_unit(scaled_weights: list, percentile: float) -> float:
    """Float value of one integer weight step for a population (the published exporter's rule,
    ../shared/notes/anchors.md section 2): max_val = max(P-th percentile of the positive g*w, of |negative g*w|),
    unit = 2**(floor(log2 max_val) - 7), so max_val maps to [128, 256) integer steps: every sign mode represents
    it (mixed: even values up to 254, excitatory: up to 255), with 1x-2x headroom for weights beyond the
    percentile; larger ones saturate and are counted."""
    values = np.concatenate([w.ravel() for w in scaled_weights]) if scaled_weights else np.zeros(0)
    pos, neg = values[values > 0], -values[values < 0]
    max_val = max(np.percentile(pos, percentile) if pos.size else 0.0,
                  np.percentile(neg, percentile) if neg.size else 0.0)
    if max_val <= 0:
        return 2.0 ** -20          # no weights at all: any unit will do
    return 2.0 ** (np.floor(np.log2(max_val)) - (WEIGHT_BITS - 1))


# ---------------------------------------------------------------------------------------------------------------
# Exponent choice


def _worst_case_arrival(incoming: tuple, g: np.ndarray) -> float:
    """Largest |g * (sum of weights)| [V] one post neuron can receive in one step if every presynaptic neuron
    spiked (per sign)."""
    total_pos = np.zeros_like(g)
    total_neg = np.zeros_like(g)
    for conn in incoming:
        w = conn.weight * g[None, :]
        total_pos += np.clip(w, 0, None).sum(axis=0)
        total_neg += np.clip(-w, 0, None).sum(axis=0)
    return float(max(total_pos.max(initial=0.0), total_neg.max(initial=0.0)))


def choose_v_lsb(layer, units: dict, arrival_bound: float, max_abs_u: float, max_abs_v: float) -> tuple:
    """The population's v units and each incoming connection's exponent.

    units: {connection name: float value of one integer weight step} (powers of two, `weight_unit`). A spike
    adds W_L << (weight_exp + 6) LSBs of u, worth W_L * unit, so with v_lsb = 2**m every connection gets
    weight_exp = log2(unit) - m - 6, which must lie in [-8, 7]. Among those m, the smallest (finest v resolution)
    such that
      - LIF: vth = theta / (64 v_lsb) fits 17 bits;
      - the largest per-step input arrival_bound / (64 v_lsb) fits the 16-bit message (hardware; Lava does not check);
      - max |u|, |v| [V] stay below 2**(23 - HEADROOM_BITS) LSBs (LI: |v| below 2**(23 - 3)).
    Returns (v_lsb, {connection name: weight_exp}, names of the constraints that stop a finer v_lsb)."""
    log_units = {name: int(round(np.log2(unit))) for name, unit in units.items()}
    lowest = max(log_units.values(), default=0) - ACT_SHIFT - WEIGHT_EXP_MAX
    highest = min(log_units.values(), default=0) - ACT_SHIFT - WEIGHT_EXP_MIN
    if lowest > highest:
        raise ValueError(f"layer '{layer.name}': the weight scales of its incoming connections differ by more than "
                         f"the {WEIGHT_EXP_MAX - WEIGHT_EXP_MIN} octaves the weight exponents can span")
    for m in range(lowest, highest + 1):
        checks = _checks_at(layer, 2.0 ** m, arrival_bound, max_abs_u, max_abs_v)
        if all(checks.values()):
            finer = _checks_at(layer, 2.0 ** (m - 1), arrival_bound, max_abs_u, max_abs_v) if m > lowest \
                else {"weight_exp_max": False}
            return 2.0 ** m, {name: lu - m - ACT_SHIFT for name, lu in log_units.items()}, \
                [name for name, ok in finer.items() if not ok]
    if isinstance(layer, LIFLayer) and layer.threshold / (2.0 ** highest * (1 << VTH_SHIFT)) > VTH_MAX:
        raise ValueError(f"layer '{layer.name}': threshold {layer.threshold} is not representable: weights are "
                         f"too small relative to it (vth would exceed {VTH_MAX})")
    log.warning("layer '%s': no weight exponent meets every headroom constraint; using the coarsest", layer.name)
    return 2.0 ** highest, {name: lu - highest - ACT_SHIFT for name, lu in log_units.items()}, ["unsatisfiable"]


def _checks_at(layer, v_lsb, arrival_bound, max_abs_u, max_abs_v) -> dict:
    """Which constraints of `choose_v_lsb` hold at this v_lsb."""
    v_limit = 2.0 ** (UV_BITS - 1 - (LI_HEADROOM_BITS if isinstance(layer, LILayer) else HEADROOM_BITS))
    return {"vth_17bit": not isinstance(layer, LIFLayer)
            or layer.threshold / (v_lsb * (1 << VTH_SHIFT)) <= VTH_MAX,
            "message_16bit": arrival_bound / (v_lsb * (1 << ACT_SHIFT)) <= MESSAGE_MAX,
            "u_headroom": max_abs_u / v_lsb <= 2.0 ** (UV_BITS - 1 - HEADROOM_BITS),
            "v_headroom": max_abs_v / v_lsb <= v_limit}


# ---------------------------------------------------------------------------------------------------------------
# quantise


def quantise(spec: NetworkSpec, bounds: dict | None = None, percentile: float | dict = 99.0, li_v_range: float = 8.0,
             lif_negative_range: float = 16.0, round_messages: frozenset = frozenset()):
    """Quantise `spec` to Lava fixed point. Returns (FixedPointSpec, report).

    bounds: None, or {layer name: {'max_abs_arrival', 'max_abs_u', 'max_v', 'max_neg_v'}} [V units] of the float
        network on
        calibration data (`evprop.train.engine.state_bounds`): they bound |u|, |V| and the per-step input of every
        population. Without them, messages are bounded by the worst case (every presynaptic neuron spiking at
        once) and the LI output is assumed to stay within +-li_v_range [V].
    percentile: the weight percentile mapped near the top of the 8-bit range (published exporter: 99), one for
        all layers or {layer name: percentile} (see evprop.hw_sim.scale_search).
    round_messages: connection names whose weight exponent is raised to 0 when it would be negative: Lava
        floors a_in = sum >> -exp, a bias on every message; at exponent 0 the weights are rounded to a coarser
        step instead (unbiased). Which is better depends on the network (scale search decides).
    lif_negative_range: how far below zero a LIF's v must be representable, in thresholds; a deeper (inhibited)
        v saturates there (Lava clips v; counted by `add_headroom`), which buys threshold resolution: on the
        default Yin-Yang network, V reaches -39 thresholds and representing all of it cost 2 pp of accuracy.
    report: {'layers': {name: {...}}, 'connections': {name: {...}}, 'calibrated': bool}; `add_headroom` adds
        what the quantised network did on calibration data.
    """
    layers, conns, report = [], [], {"calibrated": bounds is not None, "percentile": percentile,
                                     "lif_negative_range": lif_negative_range,
                                     "layers": {}, "connections": {}}
    for layer in spec.neuron_layers:
        incoming = tuple(c for c in spec.connections if c.target == layer.name)
        _check_delays(incoming, spec.dt_ms)
        _, _, g = discretise(layer.tau_mem_ms, layer.tau_syn_ms, spec.dt_ms)
        layer_percentile = percentile[layer.name] if isinstance(percentile, dict) else percentile
        units = {c.name: weight_unit([c.weight * g[None, :]], layer_percentile) for c in incoming}
        if bounds is not None:
            s = bounds[layer.name]
            # A LIF's v above threshold spikes and resets whether or not it saturated first, so only its negative
            # range needs headroom (up to lif_negative_range thresholds); the LI readout needs both signs.
            max_v = min(s["max_neg_v"], lif_negative_range * layer.threshold) if isinstance(layer, LIFLayer) \
                else max(s["max_v"], s["max_neg_v"])
            arrival, max_u = s["max_abs_arrival"], s["max_abs_u"]
        else:
            arrival = _worst_case_arrival(incoming, g)
            max_u, max_v = 0.0, (li_v_range if isinstance(layer, LILayer) else 0.0)
        v_lsb, exps, bound_by = choose_v_lsb(layer, units, arrival, max_u, max_v)
        exps = {name: max(exp, 0) if name in round_messages else exp for name, exp in exps.items()}
        params = device_params(layer, incoming, spec.dt_ms, v_lsb, exps)
        layers.append(params.layer)
        conns.extend(params.connections)
        report["layers"][layer.name] = {
            "kind": params.layer.kind, "v_lsb": params.layer.v_lsb,
            "vth": params.layer.vth, "vth_bits": VTH_BITS, "decay_bits": DECAY_BITS, "uv_bits": UV_BITS,
            "weight_bits": WEIGHT_BITS, "clipped": sum(params.clipped.values()),
            "decays_clipped": params.decays_clipped,
            "clipped_fraction": sum(params.clipped.values()) / max(sum(c.weight.size for c in incoming), 1),
            "v_lsb_bound_by": bound_by, "message_bound_int": arrival / (v_lsb * (1 << ACT_SHIFT)),
            "assumed_max_abs_v": None if bounds is not None else max_v}
        for conn in params.connections:
            n = conn.weight.size
            report["connections"][conn.name] = {
                "bits": conn.num_weight_bits, "weight_exp": conn.weight_exp, "weight_unit": units[conn.name],
                "sign_mode": conn.sign_mode,
                "clipped": params.clipped[conn.name], "clipped_fraction": params.clipped[conn.name] / max(n, 1),
                "max_abs_error_unclipped": params.max_error[conn.name], "max_delay": conn.max_delay}
            if params.clipped[conn.name]:
                log.info("connection %s: %d of %d weights saturated", conn.name, params.clipped[conn.name], n)
    fixed = FixedPointSpec(spec.dt_ms, spec.n_steps, spec.input.name, spec.input.size, tuple(layers),
                           tuple(conns), spec.readout)
    for name, entry in _wrap_possible(fixed).items():
        report["layers"][name]["u_wrap_possible"] = entry
    return fixed, report


def _check_delays(incoming: tuple, dt_ms: float) -> None:
    """Refuse delays the target cannot hold; training with network.max_delay_ms <= MAX_DELAY * dt keeps learned
    delays within it from the start (the trainer clamps them there)."""
    for conn in incoming:
        steps = used_delay_steps(conn.delay, conn.max_delay_steps)
        if steps.size and steps.max() > MAX_DELAY:
            raise ValueError(f"connection '{conn.name}': delay {int(steps.max())} steps exceeds the target's "
                             f"maximum of {MAX_DELAY}; train with network.max_delay_ms <= {MAX_DELAY * dt_ms:g} "
                             f"to keep delays in range")


def _wrap_possible(fixed: FixedPointSpec) -> dict:
    """Worst case: every presynaptic neuron spiking every step drives |u| to |a_in << 6| / (1 - decay).
    True if that can exceed 2**23 (a 24-bit wrap of u can happen)."""
    out = {}
    for layer in fixed.layers:
        pos = np.zeros(layer.size)
        neg = np.zeros(layer.size)
        for conn in fixed.incoming(layer.name):
            scale = 2.0 ** conn.weight_exp
            pos += np.clip(conn.weight, 0, None).sum(axis=1) * scale
            neg += np.clip(-conn.weight, 0, None).sum(axis=1) * scale
        keep = (DECAY_UNITY - DS_OFFSET - layer.du) / DECAY_UNITY
        bound = np.maximum(pos, neg) * (1 << ACT_SHIFT) / np.maximum(1.0 - keep, 1e-12)
        out[layer.name] = bool(np.any(bound > UV_HALF))
    return out


def add_headroom(report: dict, fixed: FixedPointSpec, result) -> None:
    """Add to the quantisation report what the quantised network did on calibration data (`result`: the
    emulator's result): largest |u|, |v| against their 24-bit limits, wraps, saturations, message overflows."""
    for layer in fixed.layers:
        entry = report["layers"][layer.name]
        entry.update({
            "max_abs_u": int(result.max_abs_u[layer.name]), "max_abs_v": int(result.max_abs_v[layer.name]),
            "u_limit": UV_HALF, "v_limit": V_MAX, "vth_shifted": layer.vth << VTH_SHIFT,
            "u_headroom_bits": float(np.log2(UV_HALF / max(result.max_abs_u[layer.name], 1))),
            "v_headroom_bits": float(np.log2(V_MAX / max(result.max_abs_v[layer.name], 1))),
            "u_wraps_seen": int(result.u_wraps[layer.name].sum()),
            "v_saturations_seen": int(result.v_saturations[layer.name].sum()),
            "message_overflows_seen": int(result.message_overflows[layer.name].sum()),
            "spikes_seen": int(result.spike_counts[layer.name].sum())})


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
