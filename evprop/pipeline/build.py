"""Configuration -> the objects the stages exchange: the data splits and the initial NetworkSpec."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.delay_line import delay_line
from ..data.spikes import SpikeData
from ..data.yinyang import encode_latency, yinyang_numpy
from ..model.readouts import get_readout
from ..model.spec import Connection, InputLayer, LIFLayer, LILayer, NetworkSpec
from .config import n_steps
from .progress import terminal_bar


def load_splits(config: dict) -> dict:
    """{'train', 'validation', 'test'} SpikeData for the configured data set, through the input delay line."""
    splits = LOADERS[config["data"]["dataset"]](config)
    net = config["network"]
    return {name: delay_line(data, net["input_delay_copies"], net["input_delay_spacing_ms"], net["dt_ms"])
            for name, data in splits.items()}


def _yinyang(config: dict) -> dict:
    data, net = config["data"], config["network"]
    bias = data["bias_time_ms"] if data["bias_time_ms"] >= 0 else None
    sizes = (data["train_size"], data["validation_size"], data["test_size"])
    splits = {}
    for name, size, seed in zip(("train", "validation", "test"), sizes, data["seeds"]):
        features, labels = yinyang_numpy(size, seed)
        splits[name] = encode_latency(features, labels, net["dt_ms"], n_steps(config), data["t_early_ms"],
                                      data["t_late_ms"], bias)
    return splits


def _sequence_detection(config: dict) -> dict:
    """Meszaros et al. 2025 section 2.1: class 0 = input 0 at 0 ms then input 1 at 10 ms, class 1 the reverse."""
    dt = config["network"]["dt_ms"]
    late = int(round(10.0 / dt))
    data = SpikeData.from_event_lists(2, n_steps(config), [([0, late], [0, 1]), ([0, late], [1, 0])], [0, 1])
    return {"train": data, "validation": data, "test": data}


def _digits(config: dict) -> dict:
    from ..data.digits import load_latency_digits
    data = config["data"]
    return load_latency_digits(config["network"]["dt_ms"], n_steps(config), data["t_early_ms"], data["t_late_ms"],
                               data["validation_size"], data["test_size"], data["seeds"][0])


def _hsd(config: dict) -> dict:
    from ..data.protocols import load_protocol
    data = config["data"]
    splits = load_protocol(data["root"], data["dataset"], data["protocol"], config["network"]["dt_ms"],
                           n_steps(config), data["fold"], data["validation_size"], data["seeds"][0],
                           data["channel_factor"], data["cache_dir"] or None)
    return {name: split.spikes for name, split in splits.items()}


def _spoken_digits(config: dict) -> dict:
    from ..data.hsd import load_hsd_file
    from ..data.protocols import random_holdout, subset_split
    data = config["data"]
    root = Path(data["root"]).expanduser()

    def load(split):
        return load_hsd_file(root / f"digits_{split}.h5", config["network"]["dt_ms"], n_steps(config),
                             data["channel_factor"], data["cache_dir"] or None)

    train = load("train")
    train_idx, val_idx = random_holdout(len(train.spikes), data["validation_size"], data["seeds"][0])
    return {"train": subset_split(train, train_idx).spikes, "validation": subset_split(train, val_idx).spikes,
            "test": load("test").spikes}


def split_settings(config: dict):
    """The data.* keys that choose test and validation parts of recordings (evprop.data.recordings)."""
    from ..data.recordings import SplitSettings
    data = config["data"]
    return SplitSettings(test_manifest=data["test_manifest"], test_speakers=tuple(data["test_speakers"]),
                         test_takes=tuple(data["test_takes"]), test_fraction=data["test_fraction"],
                         validation_size=data["validation_size"], validation_split=data["validation_split"],
                         seed=data["seeds"][0])


def front_end(config: dict):
    from ..data.audio import FrontEnd
    return FrontEnd(**config["audio"])


def _audio(config: dict) -> dict:
    """Recordings of data.manifest, encoded by the front end of [audio] (cached), split per data.test_* keys."""
    from ..data.recordings import load_audio_splits
    data = config["data"]
    bar = terminal_bar("encoding recordings", 1, unit="clips")

    def on_progress(done, total):
        bar.total = total
        bar.update(done - bar.done)
        if done >= total:
            bar.close()

    splits = load_audio_splits(data["manifest"], front_end(config), split_settings(config),
                               config["network"]["dt_ms"], n_steps(config), data["cache_dir"] or None, on_progress)
    return splits.data


def _hsd_files(config: dict) -> dict:
    """Two SHD-format files (data.train_file, data.test_file); validation from the training file."""
    from ..data.recordings import hsd_file_splits
    data = config["data"]
    return hsd_file_splits(data["train_file"], data["test_file"], split_settings(config), config["network"]["dt_ms"],
                           n_steps(config), data["channel_factor"], data["cache_dir"] or None)


# data.dataset -> loader(config) -> {'train', 'validation', 'test'} SpikeData
LOADERS = {"yinyang": _yinyang, "sequence_detection": _sequence_detection, "digits": _digits, "shd": _hsd,
           "ssc": _hsd, "spoken_digits": _spoken_digits, "audio": _audio, "hsd": _hsd_files}


def hidden_sizes(net: dict) -> list:
    sizes = net["hidden"] if isinstance(net["hidden"], list) else [net["hidden"]]
    return [size for size in sizes if size > 0]


def initial_network(config: dict, n_inputs: int, n_classes: int) -> NetworkSpec:
    """Input -> LIF hidden layers (each optionally recurrent) -> output (LI, or LIF for the first-spike readout).
    Weights N(mean, sd) per connection and delays U(0, init) seeded by train.seed (the authors' schemes, Nowotny et
    al. 2025 and
    14.3 and 14.6); the input connection's delays may be given explicitly (network.input_delays_ms)."""
    net = config["network"]
    rng = np.random.default_rng(config["train"]["seed"])
    dt = net["dt_ms"]
    max_delay = int(math.ceil(net["max_delay_ms"] / dt - 1e-9))

    def delays(init_ms, shape):
        return rng.uniform(0.0, init_ms / dt, shape) if init_ms > 0 else None

    layers = [InputLayer("input", n_inputs)]
    conns = []
    previous, n_previous = "input", n_inputs
    for i, size in enumerate(hidden_sizes(net)):
        name = "hidden" if len(hidden_sizes(net)) == 1 else f"hidden{i + 1}"
        layers.append(LIFLayer(name, size, *initial_taus(net, size, rng), net["threshold"]))
        mean, sd = (net["input_weight_mean"], net["input_weight_sd"]) if i == 0 \
            else (net["hidden_weight_mean"], net["hidden_weight_sd"])
        conns.append(Connection(previous, name, rng.normal(mean, sd, (n_previous, size)),
                                delays(net["ff_delay_init_ms"], (n_previous, size)), max_delay))
        if net["recurrent"]:
            conns.append(Connection(name, name, rng.normal(0.0, net["recurrent_weight_sd"], (size, size)),
                                    delays(net["recurrent_delay_init_ms"], (size, size)), max_delay))
        previous, n_previous = name, size
    if get_readout(net["readout"], net["readout_params"]).spiking_output:
        layers.append(LIFLayer("output", n_classes, *initial_taus(net, n_classes, rng), net["threshold"]))
    else:
        layers.append(LILayer("output", n_classes, *initial_taus(net, n_classes, rng)))
    out_mean, out_sd = (net["input_weight_mean"], net["input_weight_sd"]) if previous == "input" \
        else (net["output_weight_mean"], net["output_weight_sd"])
    conns.append(Connection(previous, "output", rng.normal(out_mean, out_sd, (n_previous, n_classes)), None,
                            max_delay))
    if net["input_delays_ms"]:
        first = conns[0]
        conns[0] = Connection(first.source, first.target, first.weight,
                              _explicit_delays(net, *first.weight.shape, dt), max_delay)
    return NetworkSpec(dt_ms=dt, n_steps=n_steps(config), layers=tuple(layers), connections=tuple(conns),
                       readout=net["readout"], readout_params=tuple(net["readout_params"]))


def _explicit_delays(net: dict, n_pre: int, n_post: int, dt: float):
    if not net["input_delays_ms"]:
        return None
    delays = np.asarray(net["input_delays_ms"], dtype=np.float64)
    if delays.shape != (n_pre, n_post):
        raise ValueError(f"network.input_delays_ms has shape {delays.shape}, expected [pre][post] = "
                         f"{(n_pre, n_post)}")
    return delays / dt


def initial_taus(net: dict, size: int, rng: np.random.Generator):
    """(tau_mem, tau_syn) per neuron [ms]: the configured values, or with network.heterogeneous_taus
    Gamma(3, tau/3) draws clipped to [3, 3 tau_mem] and [1, 3 tau_syn] (Nowotny et al. 2025 section 4.8, after
    Perez-Nieves)."""
    tau_mem, tau_syn = net["tau_mem_ms"], net["tau_syn_ms"]
    if not net["heterogeneous_taus"]:
        return np.full(size, tau_mem), np.full(size, tau_syn)
    return (np.clip(rng.gamma(3.0, tau_mem / 3.0, size), 3.0, 3 * tau_mem),
            np.clip(rng.gamma(3.0, tau_syn / 3.0, size), 1.0, 3 * tau_syn))


def n_classes(splits: dict) -> int:
    return int(max(int(s.labels.max()) for s in splits.values() if len(s)) + 1)
