"""NetworkSpec -> the flat arrays the kernels run on, and back (gradients and weights per connection).

mlGeNN's split (style notes): the NetworkSpec describes, this module compiles. Neuron index space: the non-input
layers in spec order, so the output layer is last. Source index space: input channels, then neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..model.spec import LIFLayer, NetworkSpec, discretise, used_delay_steps
from .kernel_args import NetworkArrays


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    spec: NetworkSpec
    n_in: int
    n_out: int
    layer_slices: dict          # layer name -> slice of the neuron index space
    alpha: np.ndarray
    beta: np.ndarray
    g: np.ndarray
    theta: np.ndarray           # +inf for LI outputs
    tau_mem: np.ndarray
    tau_syn: np.ndarray
    seg_ptr: np.ndarray         # [n_sources + 1]
    seg_w0: np.ndarray          # first flat weight index of each segment
    seg_len: np.ndarray         # number of targets of each segment
    seg_tgt0: np.ndarray        # first target neuron of each segment
    seg_delayed: np.ndarray     # bool per segment: its connection may have non-zero delays
    conn_slices: dict           # connection name -> slice of the flat weight vector ([pre, post] row-major)
    w_flat: np.ndarray
    delay_flat: np.ndarray      # float delays [steps] (learned ones move)
    max_delay_flat: np.ndarray  # max_delay_steps of each synapse's connection
    d_flat: np.ndarray          # used integer delays: clip(round(delay_flat), 0, max_delay_flat)
    ring_len: int               # largest max_delay_steps + 1 (delays may grow up to it while learning)
    device: str = "cpu"         # "cpu" (numba prange kernels) or "cuda" (numba.cuda kernels, same structure)
    arrays: NetworkArrays = field(init=False, repr=False)   # the kernels' bundle of the arrays above (same objects)

    def __post_init__(self):
        # built once; parameters are updated in place (optimisers, clamp_*), so the bundle stays current
        object.__setattr__(self, "arrays", NetworkArrays(
            n_steps=int(self.spec.n_steps), n_in=int(self.n_in), n_out=int(self.n_out), ring_len=int(self.ring_len),
            alpha=self.alpha, beta=self.beta, g=self.g, theta=self.theta, tau_mem=self.tau_mem, tau_syn=self.tau_syn,
            seg_ptr=self.seg_ptr, seg_w0=self.seg_w0, seg_len=self.seg_len, seg_tgt0=self.seg_tgt0,
            seg_delayed=self.seg_delayed, w_flat=self.w_flat, d_flat=self.d_flat))

    @classmethod
    def from_spec(cls, spec: NetworkSpec, dtype=np.float64, device: str = "cpu") -> "CompiledNetwork":
        """dtype: float64 (default: exact gradients, the tests) or float32 (training speed: half the memory traffic;
        the kernels run in the weights' precision). device: 'cpu' or 'cuda'."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device '{device}': expected 'cpu' or 'cuda'")
        layer_slices, start = {}, 0
        for layer in spec.neuron_layers:
            layer_slices[layer.name] = slice(start, start + layer.size)
            start += layer.size
        n_in = spec.input.size
        taus_m = np.concatenate([layer.tau_mem_ms for layer in spec.neuron_layers])
        taus_s = np.concatenate([layer.tau_syn_ms for layer in spec.neuron_layers])
        alpha, beta, g = discretise(taus_m, taus_s, spec.dt_ms)
        theta = np.concatenate([np.full(layer.size, layer.threshold if isinstance(layer, LIFLayer) else np.inf)
                                for layer in spec.neuron_layers])

        def source_index(layer_name, i):
            return i if layer_name == spec.input.name else n_in + layer_slices[layer_name].start + i

        conn_slices, w_parts, d_parts, max_parts, segments, offset = {}, [], [], [], [], 0
        for conn in spec.connections:
            n_pre, n_post = conn.weight.shape
            conn_slices[conn.name] = slice(offset, offset + n_pre * n_post)
            w_parts.append(conn.weight.ravel())
            d_parts.append(conn.delay.ravel())
            max_parts.append(np.full(n_pre * n_post, conn.max_delay_steps))
            tgt0 = layer_slices[conn.target].start
            delayed = int(conn.max_delay_steps > 0)
            segments += [(source_index(conn.source, i), offset + i * n_post, n_post, tgt0, delayed)
                         for i in range(n_pre)]
            offset += n_pre * n_post
        n_sources = n_in + start
        segments.sort(key=lambda s: s[0])
        counts = np.bincount([s[0] for s in segments], minlength=n_sources) if segments \
            else np.zeros(n_sources, dtype=np.int64)
        seg = np.array(segments, dtype=np.int64).reshape(-1, 5)
        delay_flat = np.concatenate(d_parts) if d_parts else np.zeros(0)
        max_delay_flat = np.concatenate(max_parts) if max_parts else np.zeros(0)
        return cls(spec=spec, n_in=n_in, n_out=spec.output.size, layer_slices=layer_slices,
                   alpha=alpha.astype(dtype), beta=beta.astype(dtype), g=g.astype(dtype), theta=theta.astype(dtype),
                   tau_mem=taus_m.astype(dtype), tau_syn=taus_s.astype(dtype),
                   seg_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   seg_w0=seg[:, 1].copy(), seg_len=seg[:, 2].copy(), seg_tgt0=seg[:, 3].copy(),
                   seg_delayed=seg[:, 4].astype(np.bool_),
                   conn_slices=conn_slices,
                   w_flat=(np.concatenate(w_parts) if w_parts else np.zeros(0)).astype(dtype),
                   delay_flat=delay_flat, max_delay_flat=max_delay_flat,
                   d_flat=used_delay_steps(delay_flat, max_delay_flat),
                   ring_len=max((c.max_delay_steps for c in spec.connections), default=0) + 1, device=device)

    def clamp_delays(self) -> None:
        """After a delay update: clamp the float delays to [0, max_delay] and refresh the used integer delays
        (mlGeNN clamps after each optimiser step, docs/architecture.md §7 'Learned delays')."""
        np.clip(self.delay_flat, 0, self.max_delay_flat, out=self.delay_flat)
        self.d_flat[:] = used_delay_steps(self.delay_flat, self.max_delay_flat)

    def clamp_taus(self, min_tau_mem: float, min_tau_syn: float) -> None:
        """After a time-constant update: apply the lower clamps (Nowotny et al. 2025, section 4.9: tau_mem >= 3 ms,
        tau_syn >= 1 ms,
        no upper limit) and recompute alpha, beta, g in place."""
        np.maximum(self.tau_mem, min_tau_mem, out=self.tau_mem)
        np.maximum(self.tau_syn, min_tau_syn, out=self.tau_syn)
        self.alpha[:], self.beta[:], self.g[:] = discretise(self.tau_mem, self.tau_syn, self.spec.dt_ms)

    def to_spec(self) -> NetworkSpec:
        """The spec with the current weights, float delays and time constants."""
        layers = [self.spec.input]
        for layer in self.spec.neuron_layers:
            sl = self.layer_slices[layer.name]
            layers.append(replace(layer, tau_mem_ms=self.tau_mem[sl].copy(), tau_syn_ms=self.tau_syn[sl].copy()))
        spec = replace(self.spec, layers=tuple(layers))        # every other field (readout_params, ...) kept
        return spec.with_weights(self.per_connection(self.w_flat.copy()), self.per_connection(self.delay_flat.copy()))

    @property
    def n_neurons(self) -> int:
        return len(self.alpha)

    def per_connection(self, flat: np.ndarray) -> dict:
        """Split a flat [n_weights] vector (weights or gradients) into {connection name: [pre, post] matrix}."""
        return {conn.name: flat[self.conn_slices[conn.name]].reshape(conn.weight.shape)
                for conn in self.spec.connections}

    def per_layer(self, per_neuron: np.ndarray) -> dict:
        """Split [..., n_neurons] into {layer name: [..., layer size]}."""
        return {name: per_neuron[..., sl] for name, sl in self.layer_slices.items()}

    def layer_of_neuron(self, neuron: int) -> str:
        return next(name for name, sl in self.layer_slices.items() if sl.start <= neuron < sl.stop)
