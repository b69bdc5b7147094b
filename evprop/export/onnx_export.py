"""FixedPointSpec -> ONNX graph of ONE time step, with the integer arithmetic of evprop.fixed_point.emulator (Lava 0.10
fixed_pt), and a driver that runs it step by step in onnxruntime.

Graph inputs (B = batch, symbolic), per neuron layer L in order (hidden LIF..., LI output):

    input_spikes   bool  [B, n_in]         input spikes of this step
    L.u, L.v       int32 [B, n_L]          state after the previous step
    L.ring         int64 [B, D_L, n_L]     messages in flight: row r arrives in step k + r (row 0: now);
                                           D_L = 1 + largest delay into L (Dense alone already takes one step)

Graph outputs: `L.u_next`, `L.v_next`, `L.ring_next` (same shapes; feed back in the next step) and
`L.spikes` bool [B, n_L]. Per step, exactly as `evprop.fixed_point.emulator._emulate_chunk`:

    a_in   = wrap32(ring[:, 0])
    total  = wrap32(trunc(u * (4096 - du - 1) / 4096) + a_in * 64)                 # int32 overflow wraps
    u      = total - 2**24 if total > 2**23, total + 2**24 if total <= -2**23, else total
    v      = clip(wrap32(trunc(v * (4096 - dv) / 4096) + u), -(2**23 - 1), 2**23 - 1)
    spikes = v > vth * 64;  v[spikes] = 0
    ring'  = ring shifted by one row (last row zero) + for each connection c into L and each of its delays d:
             row d += shift(spikes_source @ W_{c,d})          shift: * 2**e, or floor(/ 2**-e) for e < 0

trunc is computed as (|p| // 4096) with p's sign (Where, not Sign: see `_Builder.decay`) and
wrap32(x) = ((x + 2**31) mod 2**32) - 2**31 with ONNX Mod (fmod = 0: result has the divisor's sign), so nothing
relies on C++ overflow or division rounding. Products and sums are int64; the weight MatMul is int32 (exact:
|sum| <= n_pre * 256 < 2**31). Source spikes are the spikes of this step (inputs and every layer), so a spike
emitted in step k arrives in step k + 1 + d. Size: each connection stores one int32 [n_pre, K * n_post] matrix
(K = its number of distinct delays), e.g. 700 x 256 with 63 delays = 45 MB.

The step network's layer names, ring depths, sizes, dt and v_lsb are stored as JSON in the model's
metadata_props['evprop'] so `OnnxStepper` needs only the .onnx file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evprop.fixed_point.spec import (ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, DM_OFFSET, DS_OFFSET, UV_HALF, V_MAX, V_MIN,
                                     VTH_SHIFT, FixedPointSpec)
from evprop.model.io import atomic_write

OPSET = 17
IR_VERSION = 8                       # onnxruntime 1.23 reads IR <= 11; 8 is the IR of opset 17
METADATA_KEY = "evprop"
ONNX_FORMAT = "evprop-onnx-step"
ONNX_FORMAT_VERSION = 1
INPUT_SPIKES = "input_spikes"
INT32_SPAN = 1 << 32
INT32_HALF = 1 << 31


def state_names(layer: str) -> dict:
    """Graph tensor names of one layer's state: {'u', 'v', 'ring', 'u_next', 'v_next', 'ring_next', 'spikes'}."""
    return {key: f"{layer}.{key}" for key in ("u", "v", "ring", "u_next", "v_next", "ring_next", "spikes")}


def ring_depths(fp: FixedPointSpec) -> dict:
    """{layer: 1 + largest delay of its incoming connections} [time steps]."""
    return {l.name: 1 + max([c.max_delay for c in fp.incoming(l.name)], default=0) for l in fp.layers}


class _Builder:
    """Accumulates ONNX nodes and constant initializers with unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, dtype, hint: str = "c") -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list, hint: str = None, output: str = None, **attrs) -> str:
        output = output or self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], **attrs))
        return output

    # ---- integer helpers (int64 tensors) ----
    def wrap32(self, x: str) -> str:
        """((x + 2**31) mod 2**32) - 2**31: two's-complement int32 wrap, computed in int64."""
        shifted = self.op("Add", [x, self.const(INT32_HALF, np.int64)])
        wrapped = self.op("Mod", [shifted, self.const(INT32_SPAN, np.int64)], fmod=0)
        return self.op("Sub", [wrapped, self.const(INT32_HALF, np.int64)])

    def decay(self, x64: str, keep: np.ndarray) -> str:
        """trunc(x * keep / 4096) = (|p| // 4096) with p's sign, p = x * keep (int64). Not via Sign:
        onnxruntime 1.23's int64 Sign returned -1 for p = 2989144000 (measured)."""
        product = self.op("Mul", [x64, self.const(keep, np.int64, "keep")])
        magnitude = self.op("Div", [self.op("Abs", [product]), self.const(1 << DECAY_SHIFT, np.int64)])
        negative = self.op("Less", [product, self.const(0, np.int64)])
        return self.op("Where", [negative, self.op("Neg", [magnitude]), magnitude])

    def shift(self, acc64: str, weight_exp: int) -> str:
        """Dense's shift: acc * 2**e, or floor(acc / 2**-e) = (acc - (acc mod 2**-e)) / 2**-e."""
        if weight_exp >= 0:
            return self.op("Mul", [acc64, self.const(1 << weight_exp, np.int64)]) if weight_exp else acc64
        divisor = self.const(1 << -weight_exp, np.int64)
        exact = self.op("Sub", [acc64, self.op("Mod", [acc64, divisor], fmod=0)])
        return self.op("Div", [exact, divisor])


def _lif_step(b: _Builder, layer, names: dict) -> str:
    """Nodes of one layer's neuron update; writes u_next, v_next and spikes; returns the spikes (bool)."""
    i64 = 7                                                                 # onnx.TensorProto.INT64
    message = b.op("Gather", [names["ring"], b.const(0, np.int64)], axis=1)  # [B, n] row 0
    a_in = b.wrap32(message)
    u64 = b.op("Cast", [names["u"]], to=i64)
    du_keep = DECAY_UNITY - (layer.du.astype(np.int64) + DS_OFFSET)
    total = b.wrap32(b.op("Add", [b.decay(u64, du_keep), b.op("Mul", [a_in, b.const(1 << ACT_SHIFT, np.int64)])]))
    span = b.const(2 * UV_HALF, np.int64)
    half = b.const(UV_HALF, np.int64)
    over = b.op("Greater", [total, half])
    under = b.op("LessOrEqual", [total, b.op("Neg", [half])])
    u_new = b.op("Where", [over, b.op("Sub", [total, span]),
                           b.op("Where", [under, b.op("Add", [total, span]), total])])
    dv_keep = DECAY_UNITY - (layer.dv.astype(np.int64) + DM_OFFSET)
    v64 = b.op("Cast", [names["v"]], to=i64)
    updated = b.wrap32(b.op("Add", [b.decay(v64, dv_keep), u_new]))
    clipped = b.op("Max", [b.op("Min", [updated, b.const(V_MAX, np.int64)]), b.const(V_MIN, np.int64)])
    spikes = b.op("Greater", [clipped, b.const(layer.vth << VTH_SHIFT, np.int64)], output=names["spikes"])
    v_new = b.op("Where", [spikes, b.const(0, np.int64), clipped])
    b.op("Cast", [u_new], output=names["u_next"], to=6)                  # onnx.TensorProto.INT32
    b.op("Cast", [v_new], output=names["v_next"], to=6)
    return spikes


def _arrivals(b: _Builder, conn, spikes: str, depth: int, n_post: int) -> str:
    """int64 [B, depth, n_post]: row d holds shift(spikes @ W_d) for each delay d used by `conn`, zero elsewhere."""
    delays = [int(d) for d in np.unique(conn.delay)]
    blocks = [np.where(conn.delay == d, conn.weight, 0).T for d in delays]          # [pre, post] each
    w_cat = np.concatenate(blocks, axis=1).astype(np.int32)                          # [pre, K * post]
    s32 = b.op("Cast", [spikes], to=6)
    acc = b.op("Cast", [b.op("MatMul", [s32, b.const(w_cat, np.int32, "w")])], to=7)
    acc = b.shift(acc, conn.weight_exp)
    grouped = b.op("Reshape", [acc, b.const([0, len(delays), n_post], np.int64)])     # [B, K, post]
    zero_row = b.op("Mul", [b.op("Slice", [grouped, b.const([0], np.int64), b.const([1], np.int64),
                                          b.const([1], np.int64)]), b.const(0, np.int64)])
    padded = b.op("Concat", [grouped, zero_row], axis=1)                             # [B, K + 1, post]
    index = np.full(depth, len(delays), np.int64)                                    # ring row r <- group of delay r
    for k, d in enumerate(delays):
        index[d] = k
    return b.op("Gather", [padded, b.const(index, np.int64, "rows")], axis=1)


def _ring_next(b: _Builder, fp: FixedPointSpec, layer, names: dict, spikes: dict, depth: int) -> None:
    """ring_next = ring shifted up by one row (last row zero) + the arrivals of every incoming connection."""
    tail = b.op("Slice", [names["ring"], b.const([1], np.int64), b.const([depth], np.int64),
                          b.const([1], np.int64)])
    zero_row = b.op("Mul", [b.op("Slice", [names["ring"], b.const([0], np.int64), b.const([1], np.int64),
                                          b.const([1], np.int64)]), b.const(0, np.int64)])
    total = b.op("Concat", [tail, zero_row], axis=1)
    for conn in fp.incoming(layer.name):
        total = b.op("Add", [total, _arrivals(b, conn, spikes[conn.source], depth, layer.size)])
    b.op("Identity", [total], output=names["ring_next"])


def build_step_model(fp: FixedPointSpec):
    """The ONNX ModelProto of one time step of `fp` (module docstring)."""
    from onnx import TensorProto, checker, helper

    b = _Builder()
    depths = ring_depths(fp)
    inputs = [helper.make_tensor_value_info(INPUT_SPIKES, TensorProto.BOOL, ["B", fp.input_size])]
    outputs = []
    spikes = {fp.input_name: INPUT_SPIKES}
    for layer in fp.layers:
        names = state_names(layer.name)
        n, d = layer.size, depths[layer.name]
        inputs += [helper.make_tensor_value_info(names["u"], TensorProto.INT32, ["B", n]),
                   helper.make_tensor_value_info(names["v"], TensorProto.INT32, ["B", n]),
                   helper.make_tensor_value_info(names["ring"], TensorProto.INT64, ["B", d, n])]
        outputs += [helper.make_tensor_value_info(names["u_next"], TensorProto.INT32, ["B", n]),
                    helper.make_tensor_value_info(names["v_next"], TensorProto.INT32, ["B", n]),
                    helper.make_tensor_value_info(names["ring_next"], TensorProto.INT64, ["B", d, n]),
                    helper.make_tensor_value_info(names["spikes"], TensorProto.BOOL, ["B", n])]
        spikes[layer.name] = _lif_step(b, layer, names)
    for layer in fp.layers:
        _ring_next(b, fp, layer, state_names(layer.name), spikes, depths[layer.name])
    graph = helper.make_graph(b.nodes, "evprop_step", inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="evprop")
    model.ir_version = IR_VERSION
    meta = {"format": ONNX_FORMAT, "version": ONNX_FORMAT_VERSION, "dt_ms": fp.dt_ms, "n_steps": fp.n_steps,
            "input_name": fp.input_name, "input_size": fp.input_size, "readout": fp.readout,
            "layers": [{"name": l.name, "kind": l.kind, "size": l.size, "ring_depth": depths[l.name],
                        "v_lsb": l.v_lsb} for l in fp.layers]}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    checker.check_model(model)
    return model


def export_onnx(path, fp: FixedPointSpec) -> Path:
    """Write the one-step ONNX model of `fp` to `path` (atomic rename); returns the path."""
    path = Path(path)
    model = build_step_model(fp)
    atomic_write(path, lambda handle: handle.write(model.SerializeToString()))      # what onnx.save_model writes
    return path


# ---------------------------------------------------------------------------------------------------------------
# driver


@dataclass(frozen=True)
class OnnxResult:
    """hidden_spikes: {LIF layer: bool [B, T, n]}; v_out: int32 [B, T, n_out]; v_out_float = v_out * v_lsb."""

    hidden_spikes: dict
    v_out: np.ndarray
    v_out_float: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.v_out.shape[0]


class OnnxStepper:
    """Runs a model written by `export_onnx` step by step in onnxruntime (CPU)."""

    def __init__(self, path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ValueError(f"{path}: not an evprop step model (no metadata '{METADATA_KEY}')")
        self.meta = json.loads(props[METADATA_KEY])
        if self.meta.get("format") != ONNX_FORMAT or self.meta.get("version") != ONNX_FORMAT_VERSION:
            raise ValueError(f"{path}: format {self.meta.get('format')!r} version {self.meta.get('version')!r}, "
                             f"expected {ONNX_FORMAT!r} version {ONNX_FORMAT_VERSION}")

    def initial_state(self, batch: int) -> dict:
        """Zero state for `batch` samples: {tensor name: array}."""
        state = {}
        for layer in self.meta["layers"]:
            names, n = state_names(layer["name"]), layer["size"]
            state[names["u"]] = np.zeros((batch, n), np.int32)
            state[names["v"]] = np.zeros((batch, n), np.int32)
            state[names["ring"]] = np.zeros((batch, layer["ring_depth"], n), np.int64)
        return state

    def step(self, state: dict, input_spikes: np.ndarray) -> tuple:
        """One time step: (next state, {layer: spikes bool [B, n]})."""
        outputs = [o.name for o in self.session.get_outputs()]
        values = dict(zip(outputs, self.session.run(outputs, {**state, INPUT_SPIKES: input_spikes})))
        nxt, spikes = {}, {}
        for layer in self.meta["layers"]:
            names = state_names(layer["name"])
            for key in ("u", "v", "ring"):
                nxt[names[key]] = values[names[f"{key}_next"]]
            spikes[layer["name"]] = values[names["spikes"]]
        return nxt, spikes

    def run(self, raster: np.ndarray) -> OnnxResult:
        """raster: bool [B, T, n_in] input spikes; state starts at zero. Returns hidden spikes and output v."""
        raster = np.asarray(raster, dtype=bool)
        if raster.ndim != 3 or raster.shape[2] != self.meta["input_size"]:
            raise ValueError(f"OnnxStepper.run: raster shape {raster.shape}, expected (samples, steps, "
                             f"{self.meta['input_size']})")
        batch, n_steps, _ = raster.shape
        layers = self.meta["layers"]
        out_layer = layers[-1]
        hidden = {l["name"]: np.zeros((batch, n_steps, l["size"]), bool) for l in layers[:-1]}
        v_out = np.zeros((batch, n_steps, out_layer["size"]), np.int32)
        state = self.initial_state(batch)
        v_name = state_names(out_layer["name"])["v"]
        for k in range(n_steps):
            state, spikes = self.step(state, raster[:, k])
            for name in hidden:
                hidden[name][:, k] = spikes[name]
            v_out[:, k] = state[v_name]
        return OnnxResult(hidden, v_out, v_out.astype(np.float64) * out_layer["v_lsb"])


def run_onnx(path, data) -> OnnxResult:
    """Run every sample of `data` (SpikeData) through the step model at `path`."""
    from evprop.fixed_point.emulator import input_raster

    return OnnxStepper(path).run(input_raster(data, 0, len(data)))
