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
    """Call write(file_object) on a temporary file beside `path` (opened "w+b"), fsync it, make it mode 0644 and
    rename it over `path`: readers see the old file or the whole new one, never half of it."""
    atomic_write_all({path: write})


def atomic_write_all(writers: dict, remove=()) -> None:
    """Replace several files as one set: every `write(file_object)` of {path: write} goes to a temporary file
    beside its path (fsync'd, mode 0644); only when all of them are complete are they renamed into place, then the
    files in `remove` are deleted (those the new set no longer has). If any write fails, no file is touched and
    the temporary files are deleted. The one atomic-write helper of evprop; files meant to be shared are 0644."""
    temps = {}
    try:
        for path, write in writers.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f".{path.name}.*.tmp"):      # left by a process killed mid-write
                stale.unlink(missing_ok=True)
            fd, temps[path] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w+b") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temps[path], 0o644)      # mkstemp makes 0600 files; results are meant to be shared
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    for path in remove:
        Path(path).unlink(missing_ok=True)
    for folder in {Path(p).parent for p in [*writers, *remove]}:
        fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX: a rename is on disk once its directory is fsync'd)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def npz_writer(arrays: dict):
    """write(file_object) for `atomic_write`: the arrays as an uncompressed npz (no pickles)."""
    return lambda handle: np.savez(handle, **arrays)


def save_arrays(path: Path, arrays: dict) -> None:
    atomic_write(path, npz_writer(arrays))


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
