"""Measured energy where the machine can tell: host CPU packages from RAPL, NVIDIA GPUs from NVML.

    with EnergyMeter() as meter:
        train(...)
    meter.result()  # {"joules": 812.4 | None, "seconds": 289.3, "source": "RAPL package-0" | "not measurable here: ..."}

RAPL (/sys/class/powercap/intel-rapl:N/energy_uj, also on AMD under the same name) counts the energy of the whole
CPU package, every process on it included, in microjoules; the counter wraps at max_energy_range_uj. A background
thread reads the counters every `poll_s` seconds so that a long run sees every wrap (one wrap between two reads is
detected; at a few hundred watts a counter wraps after tens of minutes at the earliest). NVML's total energy counter
(Volta and newer) is read the same way, only when `pynvml` can be imported.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

RAPL_ROOT = Path("/sys/class/powercap")
NOT_MEASURABLE = "not measurable here"


# ---- RAPL ----

def rapl_packages(root: Path = RAPL_ROOT) -> tuple:
    """([(name, zone directory)] of the readable top-level RAPL zones, reason text when there are none)."""
    root = Path(root)
    if not root.is_dir():
        return [], f"no RAPL counters ({root} absent)"
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not zones:
        return [], f"no RAPL package zones under {root}"
    readable = []
    for zone in zones:
        try:
            read_counter(zone / "energy_uj")
            name = (zone / "name").read_text().strip() if (zone / "name").is_file() else zone.name
            readable.append((name, zone))
        except (OSError, ValueError):
            continue
    return readable, "" if readable else f"RAPL counters under {root} not readable (needs root)"


def read_counter(path: Path) -> int:
    return int(Path(path).read_text().strip())


def wrapped_delta(before: int, after: int, max_range: int) -> int:
    """Counter increase from `before` to `after`, one wrap-around at `max_range` allowed."""
    return after - before if after >= before else after + max_range - before


class _Counter:
    """An accumulating wrap-aware reader of one monotonically increasing energy counter."""

    def __init__(self, name: str, read, max_range: int | None, unit_j: float):
        self.name, self._read, self.max_range, self.unit_j = name, read, max_range, unit_j
        self.last = read()
        self.total = 0

    def poll(self) -> None:
        value = self._read()
        if self.max_range:
            self.total += wrapped_delta(self.last, value, self.max_range)
        else:
            self.total += max(value - self.last, 0)
        self.last = value

    @property
    def joules(self) -> float:
        return self.total * self.unit_j


def rapl_counters(root: Path = RAPL_ROOT) -> tuple:
    zones, why = rapl_packages(root)
    counters = []
    for name, zone in zones:
        max_range = read_counter(zone / "max_energy_range_uj") if (zone / "max_energy_range_uj").is_file() else None
        counters.append(_Counter(f"RAPL {name}", lambda z=zone: read_counter(z / "energy_uj"), max_range, 1e-6))
    return counters, why


# ---- NVML ----

def nvml_counters() -> tuple:
    """([_Counter per GPU], reason text when there are none). Never raises."""
    try:
        import pynvml
    except ImportError:
        return [], "GPU: pynvml not installed"
    try:
        pynvml.nvmlInit()
        counters = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            read = lambda h=handle: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h))  # noqa: E731 (mJ)
            counters.append(_Counter(f"NVML GPU {i}", read, None, 1e-3))
        return counters, "" if counters else "GPU: no NVIDIA GPU found"
    except Exception as err:   # NVMLError and its many subclasses; no GPU, no driver, unsupported counter
        return [], f"GPU: NVML unavailable ({type(err).__name__}: {err})"


# ---- the meter ----

class EnergyMeter:
    """Context manager measuring the energy the host's CPU packages (RAPL) and GPUs (NVML) use while it is open.

    result(): {"joules": float | None, "seconds": float, "source": "RAPL package-0" | "not measurable here: <why>",
               "parts": {source: joules}, "scope": str, "unavailable": [reasons]}
    """

    def __init__(self, rapl_root: Path = RAPL_ROOT, use_gpu: bool = True, poll_s: float = 60.0):
        self.rapl_root, self.use_gpu, self.poll_s = Path(rapl_root), use_gpu, poll_s
        self._counters, self._missing = [], []
        self._stop = threading.Event()
        self._thread = None
        self._t0 = self._t1 = None

    def __enter__(self) -> "EnergyMeter":
        cpu, why_cpu = rapl_counters(self.rapl_root)
        gpu, why_gpu = nvml_counters() if self.use_gpu else ([], "GPU: not asked for")
        self._counters = cpu + gpu
        self._missing = [why for why in (why_cpu, why_gpu) if why]
        self._t0 = time.perf_counter()
        if self._counters and self.poll_s > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="EnergyMeter", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._poll_all()
        self._t1 = time.perf_counter()
        return False

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll_all()

    def _poll_all(self) -> None:
        for counter in self._counters:
            try:
                counter.poll()
            except (OSError, ValueError):
                pass   # a counter that stops being readable keeps what it had

    def result(self) -> dict:
        if self._t0 is None:
            raise RuntimeError("EnergyMeter.result() before the `with` block ran")
        seconds = (self._t1 if self._t1 is not None else time.perf_counter()) - self._t0
        if not self._counters:
            return {"joules": None, "seconds": seconds,
                    "source": f"{NOT_MEASURABLE}: " + "; ".join(self._missing), "parts": {}, "scope": "",
                    "unavailable": self._missing}
        parts = {c.name: c.joules for c in self._counters}
        return {"joules": sum(parts.values()), "seconds": seconds, "source": " + ".join(parts), "parts": parts,
                "scope": "whole CPU package(s) / GPU(s): every process on them, idle power included",
                "unavailable": self._missing}


def per_inference(measured: dict | None, n_inferences: int, what: str) -> dict:
    """A meter result (or None: nothing stored) labelled with what it measured and divided per inference."""
    if not measured:
        return {"joules": None, "seconds": None, "source": f"{NOT_MEASURABLE}: no measurement stored for this run",
                "what": what, "n_inferences": n_inferences, "joules_per_inference": None}
    joules = measured.get("joules")
    return {**measured, "what": what, "n_inferences": n_inferences,
            "joules_per_inference": joules / n_inferences if joules is not None and n_inferences else None}


# ---- the host ----

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpus() -> list:
    try:
        import pynvml
        pynvml.nvmlInit()
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
                 for i in range(pynvml.nvmlDeviceGetCount())]
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception:   # no pynvml, no driver, no GPU
        return []


def host_info() -> dict:
    """The machine this runs on: CPU model, cores usable, memory, GPUs, OS."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    gpus = _gpus()
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "cpus_usable": usable,
            "memory_gib": _memory_gib(), "gpus": gpus or "none found (NVML unavailable or no NVIDIA GPU)",
            "os": platform.platform()}


def software_versions() -> dict:
    """Versions of evprop and the packages that decide its numbers (Lava: None when it is not installed)."""
    import numba
    import scipy

    from .. import __version__
    versions = {"evprop": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "numba": numba.__version__, "scipy": scipy.__version__}
    for package in ("nir", "lava-nc"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def machine_info() -> dict:
    """Everything a stored measurement names about where it ran: the host, the software, the numba threads and
    the load when it started (1-minute load average)."""
    import numba
    return {**host_info(), **software_versions(), "machine": platform.machine(),
            "numba_threads": numba.config.NUMBA_NUM_THREADS, "load_average_1min": os.getloadavg()[0]}
