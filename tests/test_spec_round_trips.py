"""Every field of NetworkSpec survives every format (issue 13 section 4): the compiled form, the npz file and NIR.

The spec below sets a non-default value in every field of NetworkSpec, its layers and its connections; the check
iterates `dataclasses.fields`, so a field added later fails here until it is set, and then each round trip
compares it."""

from dataclasses import MISSING, fields

import numpy as np
import pytest

from evprop.export.nir import export_nir, import_nir
from evprop.fixed_point.quantise import quantise
from evprop.fixed_point.spec import load_fixed_point, save_fixed_point
from evprop.model.io import load_network, network_from_arrays, network_to_arrays, save_network
from evprop.model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, first_difference
from evprop.train.compiled import CompiledNetwork


def every_field_set() -> NetworkSpec:
    rng = np.random.default_rng(7)
    layers = (InputLayer(name="in", size=3),
              LIFLayer(name="h", size=4, tau_mem_ms=rng.uniform(10, 30, 4), tau_syn_ms=rng.uniform(2, 8, 4),
                       threshold=1.25),
              LILayer(name="out", size=2, tau_mem_ms=rng.uniform(10, 30, 2), tau_syn_ms=rng.uniform(2, 8, 2)))
    conns = (Connection(source="in", target="h", weight=rng.normal(1.0, 0.3, (3, 4)),
                        delay=rng.uniform(0, 3, (3, 4)), max_delay_steps=3),
             Connection(source="h", target="h", weight=rng.normal(0, 0.1, (4, 4)),
                        delay=rng.uniform(0, 2, (4, 4)), max_delay_steps=2),
             Connection(source="h", target="out", weight=rng.normal(0, 0.4, (4, 2)),
                        delay=rng.uniform(0, 1, (4, 2)), max_delay_steps=1))
    return NetworkSpec(dt_ms=0.5, n_steps=37, layers=layers, connections=conns, readout="sum_gaus",
                       readout_params=(0.1, 0.3, 2.5, 0.6))


def _is_default(field, value) -> bool:
    if field.default is MISSING:
        return False
    if field.default is None and isinstance(value, np.ndarray):        # None stands for zeros (Connection.delay)
        return not np.any(value)
    return value == field.default


def test_the_spec_sets_every_field_away_from_its_default():
    spec = every_field_set()
    for obj in (spec, *spec.layers, *spec.connections):
        for field in fields(obj):
            assert not _is_default(field, getattr(obj, field.name)), \
                f"{type(obj).__name__}.{field.name} is at its default: set it in every_field_set()"


def _via_compiled(spec, tmp_path):
    return CompiledNetwork.from_spec(spec).to_spec()


def _via_npz(spec, tmp_path):
    save_network(tmp_path / "net.npz", spec)
    return load_network(tmp_path / "net.npz")


def _via_checkpoint_prefix(spec, tmp_path):
    return network_from_arrays(network_to_arrays(spec, "best"), "best")


def _via_nir(spec, tmp_path):
    export_nir(tmp_path / "net.nir", spec)
    back, fixed = import_nir(tmp_path / "net.nir")
    assert fixed is None
    return back


def _via_nir_with_fixed_point(spec, tmp_path):
    fp, _ = quantise(spec)
    export_nir(tmp_path / "net.nir", spec, fp)
    back, fp_back = import_nir(tmp_path / "net.nir")
    assert first_difference(fp_back, fp) is None
    save_fixed_point(tmp_path / "fixed.npz", fp_back)
    assert first_difference(load_fixed_point(tmp_path / "fixed.npz"), fp) is None
    return back


ROUND_TRIPS = {"compiled": _via_compiled, "npz": _via_npz, "npz prefix": _via_checkpoint_prefix, "nir": _via_nir,
               "nir + fixed point": _via_nir_with_fixed_point}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_every_field_survives(tmp_path, name):
    spec = every_field_set()
    back = ROUND_TRIPS[name](spec, tmp_path)
    assert first_difference(back, spec) is None, first_difference(back, spec)
    assert back == spec


def test_compiled_form_keeps_trained_values_and_readout_params():
    """to_spec returns the compiled (trained) weights, delays and taus and keeps every other field."""
    spec = every_field_set()
    net = CompiledNetwork.from_spec(spec)
    net.w_flat[:] += 0.25
    net.tau_mem[:] += 1.0
    back = net.to_spec()
    assert back.readout_params == (0.1, 0.3, 2.5, 0.6) and back.readout == "sum_gaus"
    np.testing.assert_array_equal(back.connection("h->out").weight, spec.connection("h->out").weight + 0.25)
    np.testing.assert_array_equal(back.layer("h").tau_mem_ms, spec.layer("h").tau_mem_ms + 1.0)
    np.testing.assert_array_equal(back.readout_weights(), spec.readout_weights())


def test_first_difference_names_the_field():
    spec = every_field_set()
    other = spec.with_weights({"h->h": spec.connection("h->h").weight * 2})
    assert first_difference(other, spec) == "Connection 'h->h' field 'weight'"
    from dataclasses import replace
    assert first_difference(replace(spec, readout_params=(0.0, 0.2, 4.4, 0.4)), spec) == \
        "NetworkSpec field 'readout_params'"
    assert first_difference(spec, spec) is None


def test_training_keeps_readout_params_in_network_and_checkpoint(tmp_path):
    """The to_spec bug's symptom (issue 13 section 4): custom sum_gaus parameters reached validation, checkpoints,
    quantisation and NIR as the defaults. After one epoch every copy still has them and scores with them."""
    from dataclasses import replace

    from conftest import random_inputs, random_network
    from evprop.train.trainer import TrainSettings, evaluate, load_checkpoint, train

    params = (0.2, 0.15, 3.0, 0.3)
    spec = replace(random_network(seed=3, n_out=2), readout="sum_gaus", readout_params=params)
    data = random_inputs(spec, n_samples=8)
    best, _ = train(spec, data, data, TrainSettings(epochs=1, batch_size=4, learning_rate=0.01), tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    for network in (best, checkpoint["best"], checkpoint["network"]):
        assert network.readout_params == params
    default = replace(best, readout_params=())
    assert evaluate(best, data)["loss"] != evaluate(default, data)["loss"]       # the parameters are used
