"""The network description every stage shares (docs/architecture.md §2).

One frozen dataclass per layer kind and one per connection, each with its equations and the unit of every
field. Specs compare by value (arrays with `np.array_equal`), so round-trip tests can use `==`.

Continuous model (Wunderlich & Pehle 2021; Nowotny et al. 2025; Meszaros et al. 2025), times in ms:

    tau_mem dV/dt = -V + I          (per neuron)
    tau_syn dI/dt = -I              (per postsynaptic neuron: every synapse onto a neuron shares it)
    a presynaptic spike adds w to I of the target after the synapse's delay
    LIF: spike when V >= threshold, then V = 0 (absolute reset, no refractory period)
    LI:  the same without threshold (non-spiking readout; LIF outputs for first-spike losses)

Discrete step (docs/architecture.md §2, mlGeNN's step; `discretise` below gives the constants):

    I <- I + (weights of the spikes arriving this step)   # emitted in step s with delay d -> arrives in step s+1+d
    V <- alpha * V + g * I
    I <- beta * I
    LIF: if V >= threshold: spike, V <- 0
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from .readouts import Readout, get_readout



def discretise(tau_mem_ms, tau_syn_ms, dt_ms: float):
    """Per-neuron constants of the discrete step: alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn),
    g = (1 - alpha) * (tau_syn/dt) * (1 - beta)  (mlGeNN's scale_i: the step-average current;
    docs/architecture.md §2)."""
    tau_mem = np.asarray(tau_mem_ms, dtype=np.float64)
    tau_syn = np.asarray(tau_syn_ms, dtype=np.float64)
    alpha = np.exp(-dt_ms / tau_mem)
    beta = np.exp(-dt_ms / tau_syn)
    g = (1.0 - alpha) * (tau_syn / dt_ms) * (1.0 - beta)
    return alpha, beta, g


def discretise_backward(grad_alpha, grad_beta, grad_g, tau_mem_ms, tau_syn_ms, dt_ms: float, alpha, beta):
    """Chain rule through `discretise`: (dL/dtau_mem, dL/dtau_syn) [per ms] from dL/dalpha, dL/dbeta, dL/dg.
    alpha, beta are `discretise`'s values for these time constants, passed in so the caller's precision is kept:
        dalpha/dtau_mem = alpha dt / tau_mem^2,   dbeta/dtau_syn = beta dt / tau_syn^2,
        dg/dtau_mem = -dalpha/dtau_mem (tau_syn/dt)(1 - beta),
        dg/dtau_syn = (1 - alpha) [(1 - beta)/dt - (tau_syn/dt) dbeta/dtau_syn]."""
    tau_m, tau_s, dt = tau_mem_ms, tau_syn_ms, dt_ms
    dalpha_dtau_m = alpha * dt / tau_m ** 2
    dbeta_dtau_s = beta * dt / tau_s ** 2
    dg_dtau_m = -dalpha_dtau_m * (tau_s / dt) * (1 - beta)
    dg_dtau_s = (1 - alpha) * ((1 - beta) / dt - (tau_s / dt) * dbeta_dtau_s)
    return grad_alpha * dalpha_dtau_m + grad_g * dg_dtau_m, grad_beta * dbeta_dtau_s + grad_g * dg_dtau_s


def used_delay_steps(delay: np.ndarray, max_delay_steps: int) -> np.ndarray:
    """Float delays as both passes use them: clip(round(d), 0, max_delay), halves away from zero (C `round`,
    as mlGeNN does for learned delays; docs/architecture.md §7 'Forward pass')."""
    return np.clip(np.floor(np.asarray(delay, dtype=np.float64) + 0.5), 0, max_delay_steps).astype(np.int32)


def _frozen_array(owner: str, name: str, value, shape: tuple, dtype=np.float64) -> np.ndarray:
    array = np.array(value, dtype=dtype)
    if array.ndim == 0:
        array = np.full(shape, array, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{owner}: field '{name}' has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: field '{name}' holds non-finite values")
    array.setflags(write=False)
    return array


class _ValueEquality:
    """Value equality for frozen dataclasses holding numpy arrays."""

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
            and np.array_equal(a, b)
    return a == b


def first_difference(a, b) -> str | None:
    """Where two specs (or layers, connections, fixed-point specs) first differ, as "connection 'h->h' field
    'weight'"; None if they are equal (`==`)."""
    label = f"{type(a).__name__} '{a.name}'" if isinstance(getattr(a, "name", None), str) else type(a).__name__
    if type(a) is not type(b):
        return f"{label} (a {type(b).__name__} on the other side)"
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, tuple) and isinstance(y, tuple) and any(isinstance(v, _ValueEquality) for v in x + y):
            if len(x) != len(y):
                return f"{label} field '{f.name}' ({len(x)} vs {len(y)} entries)"
            inner = next((d for d in map(first_difference, x, y) if d), None)
            if inner:
                return inner
        elif not _same(x, y):
            return f"{label} field '{f.name}'"
    return None


@dataclass(frozen=True, eq=False)
class InputLayer(_ValueEquality):
    """Spike source: `size` channels whose spikes are given by the data (no dynamics)."""

    name: str
    size: int

    def __post_init__(self):
        _check_size(self.name, self.size)


@dataclass(frozen=True, eq=False)
class LIFLayer(_ValueEquality):
    """Leaky integrate-and-fire neurons with exponential current synapses.

    tau_mem dV/dt = -V + I;  tau_syn dI/dt = -I;  spike when V >= threshold, then V = 0.

    name:        layer name
    size:        number of neurons
    tau_mem_ms:  membrane time constant per neuron [ms] (scalar broadcast)
    tau_syn_ms:  synaptic time constant per neuron [ms], shared by all synapses onto it
    threshold:   firing threshold theta [dimensionless, V units]
    """

    name: str
    size: int
    tau_mem_ms: np.ndarray
    tau_syn_ms: np.ndarray
    threshold: float = 1.0

    def __post_init__(self):
        _check_size(self.name, self.size)
        _set_taus(self)
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"layer '{self.name}': threshold {self.threshold} must be a positive number")


@dataclass(frozen=True, eq=False)
class LILayer(_ValueEquality):
    """Leaky integrator readout (non-spiking), the LIF model without threshold (Meszaros et al. 2025 Table 1 caption).

    tau_mem dV/dt = -V + I;  tau_syn dI/dt = -I.
    tau_mem_ms, tau_syn_ms per neuron [ms].
    """

    name: str
    size: int
    tau_mem_ms: np.ndarray
    tau_syn_ms: np.ndarray

    def __post_init__(self):
        _check_size(self.name, self.size)
        _set_taus(self)


@dataclass(frozen=True, eq=False)
class Connection(_ValueEquality):
    """Dense synapses from `source` to `target`: a spike of pre neuron i adds weight[i, j] to I_j of post neuron j
    after delay[i, j] steps (used as clip(round(delay), 0, max_delay_steps)).

    weight:           [n_pre, n_post] (row of the presynaptic neuron contiguous, mlGeNN's [pre][post] layout)
    delay:            [n_pre, n_post] float delays [steps of dt]; all zero for an undelayed connection
    max_delay_steps:  largest delay the connection may use [steps]
    """

    source: str
    target: str
    weight: np.ndarray
    delay: np.ndarray | None = None
    max_delay_steps: int = 0

    def __post_init__(self):
        owner = f"connection '{self.source}->{self.target}'"
        weight = np.array(self.weight, dtype=np.float64)
        if weight.ndim != 2:
            raise ValueError(f"{owner}: field 'weight' must be a 2-D [pre, post] matrix, got shape {weight.shape}")
        object.__setattr__(self, "weight", _frozen_array(owner, "weight", weight, weight.shape))
        delay = np.zeros(weight.shape) if self.delay is None else self.delay
        object.__setattr__(self, "delay", _frozen_array(owner, "delay", delay, weight.shape))
        if not isinstance(self.max_delay_steps, (int, np.integer)) or self.max_delay_steps < 0:
            raise ValueError(f"{owner}: max_delay_steps {self.max_delay_steps!r} must be an integer >= 0")
        object.__setattr__(self, "max_delay_steps", int(self.max_delay_steps))
        if np.any(self.delay < 0) or np.any(self.delay > self.max_delay_steps + 0.5):
            raise ValueError(f"{owner}: delays must lie in [0, max_delay_steps={self.max_delay_steps}], "
                             f"got [{self.delay.min()}, {self.delay.max()}]")

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    def delay_steps(self) -> np.ndarray:
        return used_delay_steps(self.delay, self.max_delay_steps)


@dataclass(frozen=True, eq=False)
class NetworkSpec(_ValueEquality):
    """A whole network: one input layer, LIF hidden layers, one LI output layer, dense connections.

    dt_ms:    time step [ms]
    n_steps:  time steps per trial (trial length n_steps * dt_ms [ms])
    layers:   (InputLayer, LIFLayer..., LILayer or LIFLayer), in that order
    connections: any dense connections between them (feedforward, recurrent, skip); none into the input
    readout:  the name of a registered readout (evprop.model.readouts: 'sum_exp', 'sum', 'sum_gaus', 'max', 'last',
              'first_spike'): how the outputs become class scores
    readout_params: that readout's numbers (sum_gaus: (m, s, d, o); the others take none)
    """

    dt_ms: float
    n_steps: int
    layers: tuple
    connections: tuple
    readout: str = "sum_exp"
    readout_params: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "connections", tuple(self.connections))
        if not (np.isfinite(self.dt_ms) and self.dt_ms > 0):
            raise ValueError(f"network: dt_ms {self.dt_ms} must be > 0")
        if not isinstance(self.n_steps, (int, np.integer)) or self.n_steps < 1:
            raise ValueError(f"network: n_steps {self.n_steps!r} must be an integer >= 1")
        object.__setattr__(self, "n_steps", int(self.n_steps))
        object.__setattr__(self, "readout_params", tuple(float(p) for p in self.readout_params))
        rule = get_readout(self.readout, self.readout_params)
        if len(self.layers) < 2 or not isinstance(self.layers[0], InputLayer) \
                or not isinstance(self.layers[-1], (LILayer, LIFLayer)) \
                or not all(isinstance(layer, LIFLayer) for layer in self.layers[1:-1]):
            raise ValueError("network: layers must be (InputLayer, LIFLayer..., LILayer or LIFLayer)")
        if rule.spiking_output != isinstance(self.layers[-1], LIFLayer):
            raise ValueError(f"network: readout '{self.readout}' goes with "
                             f"{'a LIF' if rule.spiking_output else 'an LI'} output layer")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"network: layer names must be unique, got {names}")
        sizes = dict(zip(names, (layer.size for layer in self.layers)))
        seen = set()
        for conn in self.connections:
            if conn.source not in sizes or conn.target not in sizes:
                raise ValueError(f"connection '{conn.name}': unknown layer (layers are {names})")
            if conn.target == self.layers[0].name:
                raise ValueError(f"connection '{conn.name}': nothing may connect into the input layer")
            if conn.weight.shape != (sizes[conn.source], sizes[conn.target]):
                raise ValueError(f"connection '{conn.name}': weight shape {conn.weight.shape}, expected "
                                 f"{(sizes[conn.source], sizes[conn.target])} = (pre, post)")
            if conn.name in seen:
                raise ValueError(f"connection '{conn.name}' appears twice")
            seen.add(conn.name)

    # ---- lookups ----
    @property
    def input(self) -> InputLayer:
        return self.layers[0]

    @property
    def output(self) -> LILayer:
        return self.layers[-1]

    @property
    def neuron_layers(self) -> tuple:
        """The layers with dynamics (hidden LIF layers then the LI output), in order."""
        return self.layers[1:]

    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network has no layer '{name}'")

    def connection(self, name: str) -> Connection:
        for conn in self.connections:
            if conn.name == name:
                return conn
        raise KeyError(f"network has no connection '{name}'")

    def replace_connection(self, conn: Connection) -> "NetworkSpec":
        return replace(self, connections=tuple(conn if c.name == conn.name else c for c in self.connections))

    def with_weights(self, weights: dict, delays: dict | None = None) -> "NetworkSpec":
        """A copy with new weight (and delay) matrices, keyed by connection name."""
        delays = delays or {}
        conns = tuple(replace(c, weight=weights.get(c.name, c.weight), delay=delays.get(c.name, c.delay))
                      for c in self.connections)
        return replace(self, connections=conns)

    @property
    def readout_rule(self) -> Readout:
        """The readout object named by `readout` (evprop.model.readouts), with `readout_params`."""
        return get_readout(self.readout, self.readout_params)

    def readout_weights(self) -> np.ndarray:
        """Per-step weights c_k of a weighted-sum readout: score_j = sum_k c_k V_j(k)."""
        weights = self.readout_rule.step_weights(self.n_steps, self.dt_ms)
        if weights is None:
            raise ValueError(f"readout '{self.readout}' is not a weighted sum")
        return weights

    def scores(self, v_out: np.ndarray, first_spike_step: np.ndarray | None = None) -> np.ndarray:
        """Class scores from output voltages v_out [..., n_steps, n_out], or for spiking readouts from the first
        output spike steps [..., n_out] (n_steps where silent)."""
        return self.readout_rule.scores(v_out, self.dt_ms, first_spike_step)


def _check_size(name, size):
    if not isinstance(name, str) or not name:
        raise ValueError(f"layer name {name!r} must be a non-empty string")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"layer '{name}': size {size!r} must be an integer >= 1")


def _set_taus(layer):
    owner = f"layer '{layer.name}'"
    object.__setattr__(layer, "size", int(layer.size))
    for field_name in ("tau_mem_ms", "tau_syn_ms"):
        taus = _frozen_array(owner, field_name, getattr(layer, field_name), (layer.size,))
        if np.any(taus <= 0):
            raise ValueError(f"{owner}: {field_name} must be > 0 ms, got min {taus.min()}")
        object.__setattr__(layer, field_name, taus)
