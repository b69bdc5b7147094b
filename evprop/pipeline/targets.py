"""Where a run's network goes: export formats (`evprop export RUN --format NAME`) and verification runtimes
(`evprop verify RUN --runtime NAME`), one registry each. The stages look names up here; adding a target is one
entry, not a branch in the CLI.

    format   file         what
    nir      model.nir    the float network plus the fixed-point integers in node metadata (default)
    onnx     model.onnx   the fixed-point network as an ONNX graph of one time step
    netx     model.net    lava-dl's NetX HDF5 (quantise with quantise.profile = "netx")

    runtime  reads        what
    nir      model.nir    evprop builds the Lava network from the NIR file (evprop.hw_sim.lava_sim)
    netx     model.net    lava-dl's own loader builds it (evprop.hw_sim.netx_sim), netx's reset between samples
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..fixed_point.emulator import emulate
from ..hw_sim.lava_sim import run_lava
from ..hw_sim.verify import compare


@dataclass(frozen=True)
class ExportFormat:
    """name: --format value;  file_name: written into the run directory;  write(path, spec, fixed_point)."""

    name: str
    file_name: str
    help: str
    write: Callable


@dataclass(frozen=True)
class Runtime:
    """name: --runtime value;  reads: the ExportFormat whose file it runs;  summary_name / gate_name: the files
    `evprop verify` writes;  check(model_path, spec, fixed_point): one-line ValueError unless the file holds
    exactly the deployed network;  run(model_path, fixed_point, data, timeout_s, on_wait) -> (per-sample result
    with hidden_spikes / v_out / v_out_float, equivalence dict of `evprop.hw_sim.verify.compare`)."""

    name: str
    reads: str
    summary_name: str
    gate_name: str
    help: str
    check: Callable
    run: Callable


def _write_nir(path, spec, fixed_point):
    from ..export.nir import export_nir
    export_nir(path, spec, fixed_point)


def _write_onnx(path, spec, fixed_point):
    from ..export.onnx_export import export_onnx
    export_onnx(path, fixed_point)


def _write_netx(path, spec, fixed_point):
    from ..export.netx import export_netx
    export_netx(path, fixed_point)


def _check_nir(path, spec, fixed_point):
    from ..export.nir import check_export
    check_export(path, spec, fixed_point)


def _check_netx(path, spec, fixed_point):
    from ..export.netx import check_netx
    check_netx(path, fixed_point)


def _run_nir(path, fixed_point, data, timeout_s, on_wait):
    lava = run_lava(path, data, timeout_s=timeout_s, on_wait=on_wait)
    return lava, compare(emulate(fixed_point, data), lava)


def _run_netx(path, fixed_point, data, timeout_s, on_wait):
    from ..hw_sim.netx_sim import run_netx
    return run_netx(path, fixed_point, data, timeout_s=timeout_s, on_wait=on_wait)


FORMATS = {f.name: f for f in (
    ExportFormat("nir", "model.nir", "float network + fixed-point integers (default)", _write_nir),
    ExportFormat("onnx", "model.onnx", "the fixed-point network as an ONNX graph of one time step", _write_onnx),
    ExportFormat("netx", "model.net", "lava-dl NetX HDF5 (needs quantise.profile = \"netx\")", _write_netx),
)}

RUNTIMES = {r.name: r for r in (
    Runtime("nir", "nir", "verify.json", "gate.json", "Lava network built by evprop from model.nir (default)",
            _check_nir, _run_nir),
    Runtime("netx", "netx", "verify_netx.json", "gate_netx.json",
            "Lava network built by lava-dl's NetX loader from model.net", _check_netx, _run_netx),
)}
