"""What "deterministic" means (README): results do not depend on the number of numba threads; the number of batch
chunks (os.cpu_count()) changes only the order of floating-point sums, i.e. the last bits."""

import numba
import numpy as np

from evprop.train import engine
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import backward, forward
from evprop.train.losses import get_loss

from conftest import random_inputs, random_network


def _run(spec, data):
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=200)
    _, _, dl_dv = get_loss("cross_entropy")(spec, fwd.v_out, data.labels)
    grads = backward(net, data, fwd, dl_dv)
    return fwd.v_out, grads.weights, grads.delays


def test_thread_count_does_not_change_a_bit():
    spec = random_network(seed=5, max_delay=4)
    data = random_inputs(spec, n_samples=8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(spec, data)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _run(spec, data)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many):
        assert np.array_equal(a, b)


def test_chunk_count_changes_only_rounding(monkeypatch):
    spec = random_network(seed=5, max_delay=4)
    data = random_inputs(spec, n_samples=8)
    monkeypatch.setattr(engine, "n_chunks_for", lambda batch_size: 1)
    one = _run(spec, data)
    monkeypatch.setattr(engine, "n_chunks_for", lambda batch_size: 8)
    eight = _run(spec, data)
    assert np.array_equal(one[0], eight[0])                    # the forward pass is per trial: identical
    for a, b in zip(one[1:], eight[1:]):                        # gradients: the same sum in another order
        assert np.allclose(a, b, rtol=1e-12, atol=1e-15 * np.abs(a).max())
