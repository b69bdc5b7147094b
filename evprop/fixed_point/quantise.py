"""Float NetworkSpec -> FixedPointSpec in Lava 0.10's bit-accurate ("fixed_pt") conventions (docs/architecture.md §4).

The target (``lava.proc.lif.models.PyLifModelBitAcc`` fed by ``lava.proc.dense.models.PyDenseModelBitAcc`` /
``PyDelayDenseModelBitAcc``; docs/architecture.md §4, read from Lava 0.10's models.py) runs per neuron and step

    a_in  = sum over arriving spikes of (W_L << weight_exp)      # Dense: accumulate, then shift (>> if exp < 0)
    u     = wrap24( trunc(u * (4096 - (du + 1)) / 4096) + (a_in << 6) )
    v     = clip24( trunc(v * (4096 - dv) / 4096) + u )
    spike = v > (vth << 6);  v[spike] = 0                        # u is not reset

with trunc = round toward zero, wrap24 = one subtraction/addition of 2**24 (see `evprop.fixed_point.emulator`), clip24
to [-(2**23 - 1), 2**23 - 1]. Our float step (docs/architecture.md §2) is u = g*I: u <- beta*u + g*arrivals,
V <- alpha*V + u. So with one float scale `v_lsb` per population (the float value, in V units, of one integer LSB
of u and v):

    beta  = (4095 - du) / 4096       alpha = (4096 - dv) / 4096
    g * w = W_L * 2**(weight_exp + 6) * v_lsb = W_L * unit        (unit: float value of one integer weight step)
    theta = (vth << 6) * v_lsb

All connections into a population share its v units (`v_lsb`); each connection has its own weight scale
(`unit`, a power of two from the published exporter's percentile rule: Shoesmith et al. 2025, ml_genn_netx) and
so its own `weight_exp`. (The published exporter gives feedforward and recurrent weights one shared scale; their
ranges differ by 10x or more here, and a shared scale saturated ~6% of the input weights.) `device_params` is the one
place where float parameters become target integers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from evprop.model.spec import LIFLayer, LILayer, NetworkSpec, discretise, used_delay_steps

from .spec import (ACT_SHIFT, DECAY_BITS, DECAY_MAX, DECAY_UNITY, DM_OFFSET, DS_OFFSET, HEADROOM_BITS, LI_HEADROOM_BITS,
                   MAX_DELAY, MESSAGE_MAX, SIGN_MODES, UV_BITS, UV_HALF, V_MAX, VTH_BITS, VTH_MAX, VTH_SHIFT,
                   WEIGHT_BITS, WEIGHT_EXP_MAX, WEIGHT_EXP_MIN, FixedConnection, FixedLayer, FixedPointSpec)

log = logging.getLogger(__name__)

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


def quantise_at(spec: NetworkSpec, v_lsbs: dict, weight_exps: dict) -> FixedPointSpec:
    """The FixedPointSpec `quantise` makes for `spec` once its scales are chosen: `device_params` per population
    with v_lsbs[layer name] and weight_exps[connection name]. A NIR file's integers follow from its float fields
    and these scales (evprop.export.nir)."""
    layers, conns = [], []
    for layer in spec.neuron_layers:
        incoming = tuple(c for c in spec.connections if c.target == layer.name)
        params = device_params(layer, incoming, spec.dt_ms, v_lsbs[layer.name], weight_exps)
        layers.append(params.layer)
        conns.extend(params.connections)
    return FixedPointSpec(dt_ms=spec.dt_ms, n_steps=spec.n_steps, input_name=spec.input.name,
                          input_size=spec.input.size, layers=tuple(layers), connections=tuple(conns),
                          readout=spec.readout)


def sign_mode(weight: np.ndarray) -> str:
    """Lava's sign mode of a float weight matrix (as lava.utils.weightutils.determine_sign_mode)."""
    if np.min(weight) >= 0:
        return "excitatory"
    if np.max(weight) <= 0:
        return "inhibitory"
    return "mixed"


def weight_unit(scaled_weights: list, percentile: float) -> float:
    """Float value of one integer weight step for a population (the published exporter's rule,
    Shoesmith et al. 2025, ml_genn_netx `export`): max_val = max(P-th percentile of the positive g*w, of |negative g*w|),
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


