"""NetworkSpec <-> arrays: one npz file holding a JSON description plus the arrays (no pickles).

Writes are atomic (temporary file, fsync, rename), so a killed process never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np

from .spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec

FORMAT = "evprop-network"
FORMAT_VERSION = 1
_LAYER_KINDS = {"input": InputLayer, "lif": LIFLayer, "li": LILayer}


STRUCTURE = ("layers", "connections")          # NetworkSpec fields that hold the layer and connection objects


def plain(value):
    """A field value as JSON: tuples become lists, numpy scalars Python numbers."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def network_settings(spec: NetworkSpec) -> dict:
    """Every NetworkSpec field except the layers and connections, as JSON values (dt_ms, n_steps, readout, ...)."""
    return {f.name: plain(getattr(spec, f.name)) for f in fields(spec) if f.name not in STRUCTURE}


def network_from_parts(settings: dict, layers, connections) -> NetworkSpec:
    """Inverse of `network_settings`: a NetworkSpec from its settings, layers and connections (keyword
    construction; a missing setting without a default is a KeyError naming it)."""
    return NetworkSpec(layers=tuple(layers), connections=tuple(connections),
                       **_keywords(NetworkSpec, settings, lambda name: None, exclude=STRUCTURE))


def _keywords(cls, entry: dict, array, exclude=()) -> dict:
    """Constructor keywords of dataclass `cls`: each field from `entry` (JSON lists -> tuples) or else from
    array(field name) (None if absent); fields absent from both keep their defaults, required ones raise KeyError."""
    kwargs = {}
    for f in fields(cls):
        if f.name in exclude:
            continue
        if f.name in entry:
            value = entry[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
            continue
        value = array(f.name)
        if value is not None:
            kwargs[f.name] = value
        elif f.default is MISSING and f.default_factory is MISSING:
            raise KeyError(f.name)
    unknown = sorted(set(entry) - {f.name for f in fields(cls)} - {"kind"})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
    return kwargs


def _record(obj, arrays: dict, key: str) -> dict:
    """The JSON entry of one layer or connection: array fields go to arrays[f'{key}/{field}'], the rest here."""
    entry = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            arrays[f"{key}/{f.name}"] = value
        else:
            entry[f.name] = plain(value)
    return entry


def network_to_arrays(spec: NetworkSpec, prefix: str = "net") -> dict:
    """Flatten a spec into {name: array}; the structure goes into a JSON string under f'{prefix}/spec'. Every
    dataclass field is written (arrays as arrays, the rest as JSON), so a new field needs no change here."""
    arrays = {}
    layers = []
    for layer in spec.layers:
        kind = next(k for k, cls in _LAYER_KINDS.items() if type(layer) is cls)
        layers.append({"kind": kind, **_record(layer, arrays, f"{prefix}/{layer.name}")})
    conns = [_record(conn, arrays, f"{prefix}/{conn.name}") for conn in spec.connections]
    header = {"format": FORMAT, "version": FORMAT_VERSION, **network_settings(spec), "layers": layers,
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

    def optional(key):
        return lambda name: np.asarray(arrays[f"{prefix}/{key}/{name}"]) \
            if f"{prefix}/{key}/{name}" in arrays else None

    try:
        layers = []
        for entry in header["layers"]:
            if entry["kind"] not in _LAYER_KINDS:
                raise ValueError(f"layer kind {entry['kind']!r} unknown, expected one of {tuple(_LAYER_KINDS)}")
            cls = _LAYER_KINDS[entry["kind"]]
            layers.append(cls(**_keywords(cls, entry, optional(entry["name"]))))
        conns = [Connection(**_keywords(Connection, entry, optional(f"{entry['source']}->{entry['target']}")))
                 for entry in header["connections"]]
        settings = {k: v for k, v in header.items() if k not in ("format", "version", *STRUCTURE)}
        return network_from_parts(settings, layers, conns)
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
