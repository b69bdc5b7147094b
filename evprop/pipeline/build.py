"""Configuration -> the objects the stages exchange: the initial NetworkSpec and the data splits."""

from __future__ import annotations

import numpy as np

from ..data.spikes import SpikeData
from ..data.yinyang import encode_latency, yinyang_numpy
from ..model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from .config import n_steps


def load_splits(config: dict) -> dict:
    """{'train', 'validation', 'test'} SpikeData for the configured data set."""
    data = config["data"]
    if data["dataset"] != "yinyang":
        raise ValueError(f"data.dataset '{data['dataset']}' is not supported")
    net = config["network"]
    bias = data["bias_time_ms"] if data["bias_time_ms"] >= 0 else None
    sizes = (data["train_size"], data["validation_size"], data["test_size"])
    splits = {}
    for name, size, seed in zip(("train", "validation", "test"), sizes, data["seeds"]):
        features, labels = yinyang_numpy(size, seed)
        splits[name] = encode_latency(features, labels, net["dt_ms"], n_steps(config), data["t_early_ms"],
                                      data["t_late_ms"], bias)
    return splits


def initial_network(config: dict, n_inputs: int, n_classes: int) -> NetworkSpec:
    """Input -> LIF hidden (optionally recurrent) -> LI output, weights drawn from normal distributions seeded by
    train.seed (the authors' init scheme: N(mean, sd) per connection, DIGEST 14.6)."""
    net = config["network"]
    rng = np.random.default_rng(config["train"]["seed"])
    n_hidden = net["hidden"]
    conns = [Connection("input", "hidden", rng.normal(net["input_weight_mean"], net["input_weight_sd"],
                                                      (n_inputs, n_hidden)))]
    if net["recurrent"]:
        conns.append(Connection("hidden", "hidden", rng.normal(0.0, net["recurrent_weight_sd"],
                                                               (n_hidden, n_hidden))))
    conns.append(Connection("hidden", "output", rng.normal(0.0, net["output_weight_sd"], (n_hidden, n_classes))))
    layers = (InputLayer("input", n_inputs),
              LIFLayer("hidden", n_hidden, *initial_taus(net, n_hidden, rng), net["threshold"]),
              LILayer("output", n_classes, *initial_taus(net, n_classes, rng)))
    return NetworkSpec(net["dt_ms"], n_steps(config), layers, tuple(conns), net["readout"])


def initial_taus(net: dict, size: int, rng: np.random.Generator):
    """(tau_mem, tau_syn) per neuron [ms]: the configured values, or with network.heterogeneous_taus
    Gamma(3, tau/3) draws clipped to [3, 3 tau_mem] and [1, 3 tau_syn] (000 section 4.8, after Perez-Nieves)."""
    tau_mem, tau_syn = net["tau_mem_ms"], net["tau_syn_ms"]
    if not net["heterogeneous_taus"]:
        return np.full(size, tau_mem), np.full(size, tau_syn)
    return (np.clip(rng.gamma(3.0, tau_mem / 3.0, size), 3.0, 3 * tau_mem),
            np.clip(rng.gamma(3.0, tau_syn / 3.0, size), 1.0, 3 * tau_syn))


def n_classes(splits: dict) -> int:
    return int(max(int(s.labels.max()) for s in splits.values() if len(s)) + 1)


__all__ = ["load_splits", "initial_network", "n_classes", "SpikeData"]
