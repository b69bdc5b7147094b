import os
import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
MLGENN = DATA / "mlgenn"                          # mlGeNN's own numbers; origin in tests/data/mlgenn/README.md
REFERENCE = MLGENN / "tiny_cases.json"


def pytest_configure(config):
    """Lava's runtime sets multiprocessing's start method when it is imported (without force), and numba's parallel
    kernels fix the default start method when they first start their threads: a test importing Lava in this
    process after one that trained failed with 'context has already been set'. Import Lava's runtime first, when
    Lava is installed, so the order of tests does not matter."""
    import importlib.util
    try:
        if importlib.util.find_spec("lava.magma.runtime") is not None:
            import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except ImportError:
        pass


@pytest.fixture(scope="session")
def lava():
    """Tests and fixtures that run Lava request this (modules: `pytestmark = pytest.mark.usefixtures("lava")`):
    without Lava (the [lava] extra, Python 3.10 only) they are skipped, and the skip reason says why."""
    from evprop.hw_sim.lava_sim import lava_missing
    reason = lava_missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_cases():
    from evprop.train.reference import load_cases
    return load_cases(REFERENCE)


def require_tool(name: str, *alternatives: str) -> str:
    """Path of the system tool `name` (or of the first alternative found). Missing: the test skips, except under
    EVPROP_REQUIRE_TOOLS=1 (set by .ci/run after installing the tools), where it fails."""
    for candidate in (name,) + alternatives:
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not installed"
    if os.environ.get("EVPROP_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message}, and EVPROP_REQUIRE_TOOLS=1 says it must be", pytrace=False)
    pytest.skip(message)


def random_network(seed=0, n_in=5, n_hidden=12, n_out=3, n_steps=60, recurrent=True, max_delay=0,
                   readout="sum_exp"):
    """A small network whose hidden neurons fire several times on `random_inputs`."""
    from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
    rng = np.random.default_rng(seed)

    def delays(shape):
        return rng.uniform(0, max_delay, shape) if max_delay else None

    conns = [Connection("input", "hidden", rng.normal(0.6, 0.3, (n_in, n_hidden)), delays((n_in, n_hidden)),
                        max_delay)]
    if recurrent:
        conns.append(Connection("hidden", "hidden", rng.normal(0.0, 0.1, (n_hidden, n_hidden)),
                                delays((n_hidden, n_hidden)), max_delay))
    conns.append(Connection("hidden", "output", rng.normal(0.0, 0.5, (n_hidden, n_out)),
                            delays((n_hidden, n_out)), max_delay))
    layers = (InputLayer("input", n_in), LIFLayer("hidden", n_hidden, 20.0, 5.0), LILayer("output", n_out, 20.0, 5.0))
    return NetworkSpec(1.0, n_steps, layers, tuple(conns), readout)


def random_inputs(spec, n_samples=4, rate=0.08, seed=1):
    from evprop.data.spikes import SpikeData
    rng = np.random.default_rng(seed)
    rasters = rng.random((n_samples, spec.n_steps, spec.input.size)) < rate
    return SpikeData.from_dense(rasters, rng.integers(0, spec.output.size, n_samples))


def central_differences(loss_of, w, eps=1e-5):
    """Central finite differences of the scalar loss_of(w) for every entry of the array w."""
    fd = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        for sign in (1, -1):
            shifted = w.copy()
            shifted[idx] += sign * eps
            fd[idx] += sign * loss_of(shifted) / (2 * eps)
    return fd
