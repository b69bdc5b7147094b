"""Readouts are objects registered by name: every one's voltage gradient equals finite differences of its scores,
and the config's choices are the registry's."""

import numpy as np
import pytest

from evprop.model.readouts import READOUTS, get_readout
from evprop.pipeline.config import SCHEMA, ConfigError, load_config
from evprop.train.losses import LOSSES

DT_MS = 0.5


def voltage_readouts():
    return [name for name, cls in READOUTS.items() if not cls.spiking_output]


@pytest.mark.parametrize("name", voltage_readouts())
def test_voltage_gradient_is_the_derivative_of_the_scores(name):
    rng = np.random.default_rng(3)
    readout = get_readout(name)
    v_out = rng.normal(size=(2, 7, 3))
    dl_dscore = rng.normal(size=(2, 3))
    analytic = readout.voltage_gradient(v_out, DT_MS, dl_dscore)
    numeric = np.zeros_like(v_out)
    eps = 1e-6
    for index in np.ndindex(v_out.shape):
        up, down = v_out.copy(), v_out.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = np.sum(dl_dscore * (readout.scores(up, DT_MS) - readout.scores(down, DT_MS))) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, atol=1e-8)


def test_weighted_sums_match_their_closed_forms():
    n_steps = 4
    steps = np.arange(n_steps)
    expected = {"sum": np.full(n_steps, 0.25), "last": np.array([0.0, 0.0, 0.0, 1.0]),
                "sum_exp": np.exp(-steps / n_steps) / n_steps}
    for name, weights in expected.items():
        np.testing.assert_allclose(get_readout(name).step_weights(n_steps, DT_MS), weights, rtol=1e-15)
    assert get_readout("max").step_weights(n_steps, DT_MS) is None


def test_sum_gaus_parameters_change_the_weights():
    default = get_readout("sum_gaus").step_weights(10, DT_MS)
    custom = get_readout("sum_gaus", (0.5, 0.1, 1.0, 0.2)).step_weights(10, DT_MS)
    x = np.arange(10) / 10
    np.testing.assert_allclose(custom, 2 * (0.2 + (x - 0.5) * np.exp(-(x - 0.5) ** 2 / 0.02)) / 10)
    assert not np.allclose(default, custom)


def test_first_spike_scores_the_earliest_spike_highest():
    scores = get_readout("first_spike").scores(np.zeros((1, 5, 3)), DT_MS, np.array([[4, 1, 5]]))
    np.testing.assert_array_equal(scores, [[-2.0, -0.5, -2.5]])
    with pytest.raises(ValueError, match="need the output spike times"):
        get_readout("first_spike").scores(np.zeros((1, 5, 3)), DT_MS)


def test_unknown_readout_and_wrong_parameter_count_are_one_line_errors():
    with pytest.raises(ValueError, match=r"readout 'median' unknown, expected one of \['first_spike'"):
        get_readout("median")
    with pytest.raises(ValueError, match=r"readout 'sum' takes 0 parameters, got \(1.0,\)"):
        get_readout("sum", (1.0,))


def test_config_choices_come_from_the_registries():
    assert SCHEMA["network"]["readout"].check("median") is False
    assert all(SCHEMA["network"]["readout"].check(name) for name in READOUTS)
    assert all(SCHEMA["train"]["loss"].check(name) for name in LOSSES)
    with pytest.raises(ConfigError, match="key 'network.readout_params': network: readout 'sum_gaus' takes 0 or 4"):
        load_config(None, ["network.readout=\"sum_gaus\"", "network.readout_params=[1, 2]"])


def test_loss_parameters_are_checked_by_name():
    config = load_config(None, ["train.loss=\"delta_mse\"", "train.loss_params={delta_ms = 3.5}",
                                "network.readout=\"first_spike\""])
    assert config["train"]["loss_params"] == {"delta_ms": 3.5}
    with pytest.raises(ConfigError, match=r"key 'train.loss_params': loss 'delta_mse' has no parameter 'tau0_ms', "
                                          r"expected one of \['delta_ms'\]"):
        load_config(None, ["train.loss=\"delta_mse\"", "train.loss_params={tau0_ms = 1.0}"])
    from evprop.pipeline.config import dump_toml
    import tomli
    assert tomli.loads(dump_toml(config))["train"]["loss_params"] == {"delta_ms": 3.5}
