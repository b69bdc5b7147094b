"""Import lava-dl's NetX loader (`lava.lib.dl.netx.hdf5`) without torch.

lava-dl 0.6.0 declares torch (and torchvision, opencv, ...) as dependencies, but `hdf5.Network` uses only lava,
numpy, h5py and scipy. evprop installs it with `pip install --no-deps lava-dl==0.6.0` (Makefile; pyproject.toml
cannot say --no-deps). Two package-level imports still reach torch:

    lava/lib/dl/netx/__init__.py     `from . import sequential_modules`  (torch helpers hdf5.Network never uses)
    lava/lib/dl/netx/hdf5.py         `from lava.lib.dl.slayer.neuron.rf import neuron_params`, which runs
                                     slayer/__init__.py -> slayer/neuron/cuba.py -> `import torch`

When torch is not installed, `netx_hdf5` first registers stand-ins for these modules in `sys.modules`: empty
packages `lava.lib.dl.slayer` and `lava.lib.dl.slayer.neuron`, `lava.lib.dl.slayer.neuron.rf` holding a numpy
copy of `neuron_params` (used only for RF neurons), and an empty `lava.lib.dl.netx.sequential_modules`. Each
stand-in's `__file__` is the real file it stands for: Lava's compiler calls `inspect.getfile` on every module of
a Process's package while it looks for ProcessModels (lava/magma/compiler/compiler_graphs.py, _find_proc_models)
and fails on a module without a file; with it, the compiler only warns that it cannot import
sequential_modules.py (filtered here). Lava's child processes (fork) inherit the stand-ins. With torch
installed, nothing is replaced.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np

LAVA_DL_INSTALL = "pip install --no-deps lava-dl==0.6.0"


def rf_neuron_params(device_params, scale=1 << 6, p_scale=1 << 12) -> dict:
    """numpy copy of lava-dl 0.6.0 slayer/neuron/rf.py `neuron_params` (BSD-3-Clause, Intel): RF device
    parameters -> neuron parameters."""
    sin_decay = device_params["sinDecay"] / p_scale
    cos_decay = device_params["cosDecay"] / p_scale
    decay = 1 - np.sqrt(sin_decay ** 2 + cos_decay ** 2)
    frequency = np.arctan2(sin_decay, cos_decay) / 2 / np.pi
    return {"threshold": device_params["vThMant"] / scale, "period": 1 / frequency, "decay": decay}


def _stand_in(name: str, file: Path, package: bool, **attrs) -> None:
    if name in sys.modules:
        return
    module = types.ModuleType(name, f"evprop stand-in for {file.name} (evprop.hw_sim.netx_import)")
    module.__file__ = str(file)
    if package:
        module.__path__ = []          # nothing else can be imported from it
    module.__dict__.update(attrs)
    sys.modules[name] = module


def netx_package_dir() -> Path:
    """lava-dl's netx folder, found without importing it; a one-line RuntimeError if lava-dl is not installed."""
    spec = importlib.util.find_spec("lava.lib.dl.netx")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"lava-dl is not installed (needed by the NetX runtime): {LAVA_DL_INSTALL}")
    return Path(spec.origin).parent


def install_stand_ins() -> None:
    """Register the torch-free stand-ins (module docstring); a RuntimeError if lava-dl is not installed."""
    netx_dir = netx_package_dir()
    slayer_dir = netx_dir.parent / "slayer"
    _stand_in("lava.lib.dl.slayer", slayer_dir / "__init__.py", package=True)
    _stand_in("lava.lib.dl.slayer.neuron", slayer_dir / "neuron" / "__init__.py", package=True)
    _stand_in("lava.lib.dl.slayer.neuron.rf", slayer_dir / "neuron" / "rf.py", package=False,
              neuron_params=rf_neuron_params)
    _stand_in("lava.lib.dl.netx.sequential_modules", netx_dir / "sequential_modules.py", package=False)
    warnings.filterwarnings("ignore", message=r"Cannot import module '<module 'sequential_modules'")


def netx_hdf5():
    """The module `lava.lib.dl.netx.hdf5` (its `Network` loads a NetX file), imported without torch."""
    if importlib.util.find_spec("torch") is None:
        install_stand_ins()
    try:
        from lava.lib.dl.netx import hdf5
    except ImportError as err:
        raise RuntimeError(f"lava-dl's NetX loader cannot be imported ({err}); {LAVA_DL_INSTALL}") from None
    return hdf5
