"""mlGeNN checkpoint arrays -> NetworkSpec.

mlGeNN's `Numpy` serialiser writes one .npy per variable, named `<keys joined by '-'>-<var>.npy`; for a
connection, `g` holds the weights as [pre][post] (a (n_pre, n_post) matrix or its flat row-major form) and `d`
its delays [time steps] (only for connections with (learned) delays). The checkpoint does not say which
population is which, nor the neuron parameters, so a small TOML map does:

    dt_ms = 1.0                 # time step [ms]
    n_steps = 1000              # time steps per trial
    readout = "sum_exp"         # evprop readout (NetworkSpec.readout)
    prefix = "e49"              # optional: leading keys (e.g. the checkpoint's epoch), joined by '-'

    [input]
    name = "input"
    size = 700

    [[layers]]                  # hidden LIF layers in order, then the output (li for voltage readouts)
    name = "hidden"
    kind = "lif"                # 'lif' | 'li'
    size = 256
    tau_mem_ms = 20.0           # [ms], a number or one per neuron
    tau_syn_ms = 5.0            # [ms], a number or one per neuron
    threshold = 1.0             # LIF only [V units]

    [[connections]]
    key = "Conn_Pop0_Pop1"      # mlGeNN keys of the connection joined by '-' -> <prefix>-<key>-g.npy
    source = "input"
    target = "hidden"
    max_delay_steps = 62        # optional [steps]; present -> also read <prefix>-<key>-d.npy

`export_mlgenn_arrays` writes a NetworkSpec in the same layout (for round trips and tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec

KEY_SEPARATOR = "-"
WEIGHT_VAR = "g"
DELAY_VAR = "d"
TOP_KEYS = {"dt_ms", "n_steps", "readout", "prefix", "input", "layers", "connections"}
INPUT_KEYS = {"name", "size"}
LAYER_KEYS = {"lif": {"name", "kind", "size", "tau_mem_ms", "tau_syn_ms", "threshold"},
              "li": {"name", "kind", "size", "tau_mem_ms", "tau_syn_ms"}}
CONNECTION_KEYS = {"key", "source", "target", "max_delay_steps"}
REQUIRED_TOP = ("dt_ms", "n_steps", "input", "layers", "connections")


class MapError(ValueError):
    """A problem with the TOML map (names the file and the key)."""


def array_file(directory, prefix: str, key: str, var: str) -> Path:
    """Path of one serialised variable: <dir>/<prefix>-<key>-<var>.npy (prefix may be empty)."""
    parts = [p for p in (prefix, key, var) if p]
    return Path(directory) / (KEY_SEPARATOR.join(parts) + ".npy")


def _check_keys(source: str, where: str, table: dict, allowed: set, required: tuple = ()) -> None:
    if not isinstance(table, dict):
        raise MapError(f"{source}: {where} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise MapError(f"{source}: unknown key '{unknown[0]}' in {where} (expected some of {sorted(allowed)})")
    missing = [k for k in required if k not in table]
    if missing:
        raise MapError(f"{source}: {where} lacks key '{missing[0]}'")


def load_map(path) -> dict:
    """Read and check the TOML map (module docstring); unknown or missing keys are MapErrors naming the key."""
    import tomli

    path = Path(path)
    try:
        mapping = tomli.loads(path.read_text())
    except FileNotFoundError:
        raise MapError(f"{path}: map file not found") from None
    except tomli.TOMLDecodeError as err:
        raise MapError(f"{path}: not valid TOML ({err})") from None
    source = str(path)
    _check_keys(source, "the top level", mapping, TOP_KEYS, REQUIRED_TOP)
    _check_keys(source, "[input]", mapping["input"], INPUT_KEYS, ("name", "size"))
    for i, layer in enumerate(mapping["layers"]):
        kind = layer.get("kind") if isinstance(layer, dict) else None
        if kind not in LAYER_KEYS:
            raise MapError(f"{source}: [[layers]] #{i + 1}: kind {kind!r}, expected one of {sorted(LAYER_KEYS)}")
        required = ("name", "kind", "size", "tau_mem_ms", "tau_syn_ms") + (("threshold",) if kind == "lif" else ())
        _check_keys(source, f"[[layers]] #{i + 1} ('{layer.get('name')}')", layer, LAYER_KEYS[kind], required)
    for i, conn in enumerate(mapping["connections"]):
        _check_keys(source, f"[[connections]] #{i + 1}", conn, CONNECTION_KEYS, ("key", "source", "target"))
    return mapping


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path}: missing ({what})")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npy file ({err})") from None


def _matrix(path: Path, array: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    """A (n_pre, n_post) matrix from [pre][post] data (2-D, or flat row-major)."""
    if array.shape == shape:
        return array
    if array.shape == (shape[0] * shape[1],):
        return array.reshape(shape)
    raise ValueError(f"{path}: {what} has shape {array.shape}, expected {shape} = (pre, post) "
                     f"or ({shape[0] * shape[1]},)")


def _layer(entry: dict):
    if entry["kind"] == "lif":
        return LIFLayer(entry["name"], entry["size"], entry["tau_mem_ms"], entry["tau_syn_ms"],
                        float(entry["threshold"]))
    return LILayer(entry["name"], entry["size"], entry["tau_mem_ms"], entry["tau_syn_ms"])


def _connection(directory: Path, prefix: str, entry: dict, sizes: dict, source: str) -> Connection:
    for end in ("source", "target"):
        if entry[end] not in sizes:
            raise MapError(f"{source}: connection '{entry['key']}': {end} '{entry[end]}' is not a layer "
                           f"(layers: {list(sizes)})")
    shape = (sizes[entry["source"]], sizes[entry["target"]])
    w_path = array_file(directory, prefix, entry["key"], WEIGHT_VAR)
    weight = _matrix(w_path, _load_npy(w_path, f"weights of connection '{entry['key']}'"), shape, "weight g")
    delay, max_delay = None, int(entry.get("max_delay_steps", 0))
    if "max_delay_steps" in entry:
        d_path = array_file(directory, prefix, entry["key"], DELAY_VAR)
        delay = _matrix(d_path, _load_npy(d_path, f"delays of connection '{entry['key']}'"), shape, "delay d")
    try:
        return Connection(entry["source"], entry["target"], weight, delay, max_delay)
    except ValueError as err:
        raise ValueError(f"{w_path.parent}: connection '{entry['key']}': {err}") from None


def import_mlgenn(directory, map_toml) -> NetworkSpec:
    """NetworkSpec from the mlGeNN checkpoint arrays in `directory`, as described by the TOML map `map_toml`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: checkpoint directory not found")
    mapping = load_map(map_toml)
    prefix = str(mapping.get("prefix", ""))
    inp = InputLayer(mapping["input"]["name"], mapping["input"]["size"])
    try:
        layers = [inp] + [_layer(e) for e in mapping["layers"]]
    except ValueError as err:
        raise MapError(f"{map_toml}: {err}") from None
    sizes = {layer.name: layer.size for layer in layers}
    conns = tuple(_connection(directory, prefix, e, sizes, str(map_toml)) for e in mapping["connections"])
    try:
        return NetworkSpec(dt_ms=float(mapping["dt_ms"]), n_steps=mapping["n_steps"], layers=tuple(layers),
                           connections=conns, readout=mapping.get("readout", "sum_exp"))
    except ValueError as err:
        raise MapError(f"{map_toml}: {err}") from None


# ---------------------------------------------------------------------------------------------------------------
# the other direction (tests, interop)


def export_mlgenn_arrays(spec: NetworkSpec, directory, keys: dict, prefix: str = "") -> None:
    """Write the connections of `spec` in the layout of mlGeNN's Numpy serialiser: <prefix>-<key>-g.npy (weights
    (n_pre, n_post); float64 so the round trip is exact, GeNN itself writes float32) and, for connections with
    max_delay_steps > 0, <prefix>-<key>-d.npy [steps]. keys: {connection name: mlGeNN key string}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for conn in spec.connections:
        key = keys[conn.name]
        np.save(array_file(directory, prefix, key, WEIGHT_VAR), np.asarray(conn.weight))
        if conn.max_delay_steps:
            np.save(array_file(directory, prefix, key, DELAY_VAR), np.asarray(conn.delay))


def map_toml_text(spec: NetworkSpec, keys: dict, prefix: str = "") -> str:
    """The TOML map describing `spec` with the connection keys `keys` ({connection name: key})."""
    def value(x):
        x = np.asarray(x)
        if x.ndim == 0 or np.all(x == x.flat[0]):
            return repr(float(x.flat[0]))
        return "[" + ", ".join(repr(float(v)) for v in x) + "]"

    lines = [f"dt_ms = {spec.dt_ms!r}", f"n_steps = {spec.n_steps}", f'readout = "{spec.readout}"']
    if prefix:
        lines.append(f'prefix = "{prefix}"')
    lines += ["", "[input]", f'name = "{spec.input.name}"', f"size = {spec.input.size}"]
    for layer in spec.neuron_layers:
        kind = "lif" if isinstance(layer, LIFLayer) else "li"
        lines += ["", "[[layers]]", f'name = "{layer.name}"', f'kind = "{kind}"', f"size = {layer.size}",
                  f"tau_mem_ms = {value(layer.tau_mem_ms)}", f"tau_syn_ms = {value(layer.tau_syn_ms)}"]
        if kind == "lif":
            lines.append(f"threshold = {float(layer.threshold)!r}")
    for conn in spec.connections:
        lines += ["", "[[connections]]", f'key = "{keys[conn.name]}"', f'source = "{conn.source}"',
                  f'target = "{conn.target}"']
        if conn.max_delay_steps:
            lines.append(f"max_delay_steps = {conn.max_delay_steps}")
    return "\n".join(lines) + "\n"
