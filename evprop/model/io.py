"""NetworkSpec <-> arrays: one npz file holding a JSON description plus the arrays (no pickles).

Writes are atomic (temporary file, fsync, rename), so a killed process never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec

FORMAT = "evprop-network"
FORMAT_VERSION = 1
_LAYER_KINDS = {"input": InputLayer, "lif": LIFLayer, "li": LILayer}


def network_to_arrays(spec: NetworkSpec, prefix: str = "net") -> dict:
    """Flatten a spec into {name: array}; the structure goes into a JSON string under f'{prefix}/spec'."""
    arrays = {}
    layers = []
    for layer in spec.layers:
        kind = next(k for k, cls in _LAYER_KINDS.items() if isinstance(layer, cls))
        entry = {"kind": kind, "name": layer.name, "size": layer.size}
        if kind != "input":
            arrays[f"{prefix}/{layer.name}/tau_mem_ms"] = layer.tau_mem_ms
            arrays[f"{prefix}/{layer.name}/tau_syn_ms"] = layer.tau_syn_ms
        if kind == "lif":
            entry["threshold"] = layer.threshold
        layers.append(entry)
    conns = []
    for conn in spec.connections:
        arrays[f"{prefix}/{conn.name}/weight"] = conn.weight
        arrays[f"{prefix}/{conn.name}/delay"] = conn.delay
        conns.append({"source": conn.source, "target": conn.target, "max_delay_steps": conn.max_delay_steps})
    header = {"format": FORMAT, "version": FORMAT_VERSION, "dt_ms": spec.dt_ms, "n_steps": spec.n_steps,
              "readout": spec.readout, "readout_params": list(spec.readout_params), "layers": layers,
              "connections": conns}
    arrays[f"{prefix}/spec"] = np.array(json.dumps(header))
    return arrays


def read_header(arrays, prefix: str, source: str, fmt: str, version: int, what: str) -> dict:
    """The JSON description under f'{prefix}/spec', checked to be `fmt` version `version`; one-line errors."""
    key = f"{prefix}/spec"
    if key not in arrays:
        raise ValueError(f"{source}: not an evprop {what} (no '{key}' entry)")
    try:
        header = json.loads(str(arrays[key]))
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: '{key}' is not valid JSON ({err})") from None
    if header.get("format") != fmt or header.get("version") != version:
        raise ValueError(f"{source}: format {header.get('format')!r} version {header.get('version')!r}, "
                         f"expected {fmt!r} version {version}")
    return header


def array_reader(arrays, prefix: str, source: str):
    """name -> arrays[f'{prefix}/{name}'], a missing one a one-line ValueError."""
    def array(name):
        full = f"{prefix}/{name}"
        if full not in arrays:
            raise ValueError(f"{source}: missing array '{full}'")
        return np.asarray(arrays[full])
    return array


def network_from_arrays(arrays, prefix: str = "net", source: str = "<arrays>") -> NetworkSpec:
    """Inverse of `network_to_arrays`. Errors name `source` and the missing or bad key."""
    header = read_header(arrays, prefix, source, FORMAT, FORMAT_VERSION, "network")
    array = array_reader(arrays, prefix, source)

    try:
        layers = []
        for entry in header["layers"]:
            cls = _LAYER_KINDS[entry["kind"]]
            if cls is InputLayer:
                layers.append(InputLayer(entry["name"], entry["size"]))
            else:
                kwargs = {"threshold": entry["threshold"]} if cls is LIFLayer else {}
                layers.append(cls(entry["name"], entry["size"], array(f"{entry['name']}/tau_mem_ms"),
                                  array(f"{entry['name']}/tau_syn_ms"), **kwargs))
        conns = []
        for entry in header["connections"]:
            name = f"{entry['source']}->{entry['target']}"
            conns.append(Connection(entry["source"], entry["target"], array(f"{name}/weight"),
                                    array(f"{name}/delay"), entry["max_delay_steps"]))
        return NetworkSpec(header["dt_ms"], header["n_steps"], tuple(layers), tuple(conns), header["readout"],
                           tuple(header.get("readout_params", ())))
    except KeyError as err:
        raise ValueError(f"{source}: network description lacks key {err}") from None
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):      # left by a process killed mid-write (SIGKILL)
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)          # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_arrays(path: Path, arrays: dict) -> None:
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_arrays(path: Path, what: str = "file") -> dict:
    """Read an npz written by `save_arrays`; a missing or unreadable file is a one-line ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from None


def save_network(path: Path, spec: NetworkSpec) -> None:
    save_arrays(path, network_to_arrays(spec))


def load_network(path: Path) -> NetworkSpec:
    return network_from_arrays(load_arrays(path, "network file"), source=str(path))
