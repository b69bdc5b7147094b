"""Run configuration: TOML files validated against one schema before any work starts.

Every key has a type, a default and a check; an unknown key, a wrong type or an impossible value is one
`ConfigError` line naming the file, the dotted key and what was expected. CLI overrides use the same dotted
names (`--set train.epochs=5`).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import tomli

from ..fixed_point.profiles import PROFILES
from ..model.readouts import READOUTS, get_readout
from ..train.losses import LOSSES, get_loss
from ..train.trainer import algorithm_names


class ConfigError(ValueError):
    """A configuration problem, already phrased as one line naming the key."""


@dataclass(frozen=True)
class Field:
    kind: type | tuple
    default: Any
    check: Callable[[Any], bool] | None = None
    expected: str = ""


def _positive(x):
    return x > 0


def _non_negative(x):
    return x >= 0


def _at_least_one(x):
    return x >= 1


def _layer_sizes(x):
    values = x if isinstance(x, list) else [x]
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _strengths(x):
    values = x if isinstance(x, list) else [x]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values)


def _one_of(*choices):
    return Field(str, choices[0], lambda x: x in choices, f"one of {list(choices)}")


NUMBER = (int, float)

SCHEMA = {
    "name": Field(str, "", None),
    "data": {
        "dataset": _one_of("yinyang", "sequence_detection", "digits", "shd", "ssc", "spoken_digits", "audio", "hsd"),
        "manifest": Field(str, "", None, "a CSV path,label[,speaker][,take] or a folder of class sub-folders "
                                         "(dataset 'audio')"),
        "test_manifest": Field(str, "", None, "a manifest of the test recordings ('' = split data.manifest)"),
        "test_speakers": Field(list, [], lambda x: all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                       for v in x), "a list of speaker names or integers"),
        "test_takes": Field(list, [], lambda x: all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                    for v in x), "a list of take numbers >= 0 (FSDD: [0, 1, 2, 3, 4])"),
        "test_fraction": Field(NUMBER, 0.2, lambda x: 0 < x < 1, "a fraction in (0, 1) (random test split)"),
        "validation_split": _one_of("random", "speakers"),
        "train_file": Field(str, "", None, "an SHD-format HDF5 file (dataset 'hsd')"),
        "test_file": Field(str, "", None, "an SHD-format HDF5 file (dataset 'hsd')"),
        "root": Field(str, "", None, "a folder (SHD/SSC in tonic's layout <root>/SHD, <root>/SSC; spoken digits: "
                                     "the folder `evprop data spoken-digits` wrote)"),
        "protocol": _one_of("train_test", "loso", "official"),
        "fold": Field(int, 0, _non_negative, "a fold index >= 0"),
        "channel_factor": Field(int, 1, _at_least_one, "an integer >= 1 (10: 700 -> 70 channels)"),
        "cache_dir": Field(str, "", None, "a folder ('' = beside the data files)"),
        "train_size": Field(int, 5000, _at_least_one, "an integer >= 1"),
        "validation_size": Field(int, 1000, _non_negative, "an integer >= 0 (0: no validation set; then "
                                                           "train.selection_metric must be a training metric)"),
        "test_size": Field(int, 1000, _at_least_one, "an integer >= 1"),
        "seeds": Field(list, [42, 41, 40], lambda x: len(x) == 3 and all(isinstance(i, int) and i >= 0 for i in x),
                       "three integer seeds >= 0 [train, validation, test]"),
        "t_early_ms": Field(NUMBER, 2.0, _non_negative, "a time >= 0 ms (latency codes: value 1 fires here)"),
        "t_late_ms": Field(NUMBER, 27.0, _positive, "a time > 0 ms"),
        "bias_time_ms": Field(NUMBER, 0.0, None, "a time in ms (negative: no bias spike)"),
    },
    "audio": {          # the cochlear front end of dataset 'audio' (evprop.data.audio.FrontEnd)
        "n_channels": Field(int, 700, _at_least_one, "an integer >= 1"),
        "f_low_hz": Field(NUMBER, 50.0, _positive, "a frequency > 0 Hz"),
        "f_high_hz": Field(NUMBER, 7200.0, _positive, "a frequency > 0 Hz below sample_rate_hz / 2"),
        "sample_rate_hz": Field(int, 16000, _positive, "a sample rate > 0 Hz"),
        "rms": Field(NUMBER, 0.3, _positive, "a level > 0 (full scale 1)"),
        "compression": Field(NUMBER, 0.25, _positive, "an exponent > 0"),
        "gain": Field(NUMBER, 3.0, _positive, "a gain > 0"),
        "tau_mem_ms": Field(NUMBER, 2.0, _positive, "a time constant > 0 ms"),
        "threshold": Field(NUMBER, 1.0, _positive, "a threshold > 0"),
        "refractory_ms": Field(NUMBER, 1.0, _non_negative, "a time >= 0 ms"),
        "level_percentile": Field(NUMBER, 95.0, lambda x: 0 <= x <= 100,
                                  "a percentile in [0, 100] of 10 ms frame levels (0: the whole clip's RMS)"),
        "silence_dbfs": Field(NUMBER, -60.0, lambda x: x < 0, "a level < 0 dB re full scale"),
    },
    "augment": {
        "blend_p": Field(NUMBER, 0.0, lambda x: 0 <= x <= 1, "a probability in [0, 1] (Nowotny et al.: 0.5; 0: off)"),
        "blend_align_channels": Field(bool, True),
        "shift": Field(int, 0, _non_negative, "a channel shift >= 0 (Nowotny et al. 2025: 40; 0: off)"),
        "id_jitter_sigma": Field(NUMBER, 0.0, _non_negative, "a standard deviation >= 0 channels"),
        "dilate_min": Field(NUMBER, 1.0, _positive, "a factor > 0"),
        "dilate_max": Field(NUMBER, 1.0, _positive, "a factor > 0"),
    },
    "network": {
        "dt_ms": Field(NUMBER, 0.5, _positive, "a time step > 0 ms"),
        "duration_ms": Field(NUMBER, 40.0, _positive, "a trial length > 0 ms"),
        "hidden": Field((int, list), 200, _layer_sizes, "a layer size >= 0 or a list of sizes (0 or []: none)"),
        "recurrent": Field(bool, True),
        "tau_mem_ms": Field(NUMBER, 20.0, _positive, "a time constant > 0 ms"),
        "tau_syn_ms": Field(NUMBER, 5.0, _positive, "a time constant > 0 ms"),
        "threshold": Field(NUMBER, 1.0, _positive, "a threshold > 0"),
        "heterogeneous_taus": Field(bool, False),
        "readout": _one_of(*READOUTS),
        "readout_params": Field(list, [], lambda x: all(isinstance(v, (int, float)) for v in x),
                                "a list of numbers (sum_gaus: [m, s, d, o] of w(x) = 2 (o + d (x - m) "
                                "exp(-(x - m)^2 / (2 s^2))); [] = the thesis code's [0, 0.2, 4.4, 0.4])"),
        "input_weight_mean": Field(NUMBER, 1.5, None, "a number"),
        "input_weight_sd": Field(NUMBER, 0.8, _non_negative, "a standard deviation >= 0"),
        "recurrent_weight_sd": Field(NUMBER, 0.05, _non_negative, "a standard deviation >= 0"),
        "hidden_weight_mean": Field(NUMBER, 0.0, None, "a number (hidden -> hidden feed-forward)"),
        "hidden_weight_sd": Field(NUMBER, 0.2, _non_negative, "a standard deviation >= 0"),
        "output_weight_mean": Field(NUMBER, 0.0, None, "a number"),
        "output_weight_sd": Field(NUMBER, 0.5, _non_negative, "a standard deviation >= 0"),
        "input_delay_copies": Field(int, 1, _at_least_one, "an integer >= 1 (Nowotny et al. 2025 delay line: 10)"),
        "input_delay_spacing_ms": Field(NUMBER, 30.0, _non_negative, "a time >= 0 ms (Nowotny et al. 2025: 30)"),
        "max_delay_ms": Field(NUMBER, 0.0, _non_negative, "a delay >= 0 ms (0: no synaptic delays)"),
        "ff_delay_init_ms": Field(NUMBER, 0.0, _non_negative, "a delay >= 0 ms: U(0, this) (Meszaros et al. SHD: 150)"),
        "recurrent_delay_init_ms": Field(NUMBER, 0.0, _non_negative, "a delay >= 0 ms: U(0, this)"),
        "input_delays_ms": Field(list, [], None, "an explicit [pre][post] matrix of initial input delays [ms]"),
    },
    "train": {
        "epochs": Field(int, 30, _at_least_one, "an integer >= 1"),
        "batch_size": Field(int, 32, _at_least_one, "an integer >= 1"),
        "learning_rate": Field(NUMBER, 2e-3, _non_negative, "a learning rate >= 0 (0: weights fixed)"),
        "delay_learning_rate": Field(NUMBER, 0.0, _non_negative, "a learning rate >= 0 in ms (0: delays fixed)"),
        "tau_learning_rate": Field(NUMBER, 0.0, _non_negative, "a learning rate >= 0 (0: time constants fixed)"),
        "min_tau_mem_ms": Field(NUMBER, 3.0, _positive, "a time constant > 0 ms"),
        "min_tau_syn_ms": Field(NUMBER, 1.0, _positive, "a time constant > 0 ms"),
        "lr_decay_per_epoch": Field(NUMBER, 1.0, lambda x: 0 < x <= 1, "a factor in (0, 1]"),
        "lr_ease_in_start": Field(NUMBER, 1.0, lambda x: 0 < x <= 1, "a fraction in (0, 1] (1: no ease-in)"),
        "ema_halving": Field(bool, False),
        "ema_min_epochs": Field(int, 50, _at_least_one, "an integer >= 1"),
        "reg_lambda_upper": Field(NUMBER + (list,), 0.0, _strengths, "a strength >= 0 or a list, one per hidden layer"),
        "reg_lambda_lower": Field(NUMBER + (list,), 0.0, _strengths, "a strength >= 0 or a list, one per hidden layer"),
        "reg_nu_upper": Field(NUMBER, 14.0, _non_negative, "a spike count >= 0 per neuron and trial"),
        "silent_rescue": Field(NUMBER, 0.0, _non_negative, "a weight increment >= 0 (Nowotny et al. 2025: 0.002)"),
        "selection_metric": _one_of("validation_accuracy", "train_accuracy", "validation_loss", "loss"),
        "early_stop_patience": Field(int, 0, _non_negative, "an integer >= 0 (0: never stop early)"),
        "seed": Field(int, 0, _non_negative, "an integer >= 0"),
        "shuffle": Field(bool, True),
        "loss": _one_of(*LOSSES),
        "loss_params": Field(dict, {}, lambda x: all(isinstance(v, NUMBER) and not isinstance(v, bool)
                                                     for v in x.values()),
                             "a table of the loss's numeric parameters (first_spike_time: tau0_ms, tau1_ms, alpha; "
                             "delta_mse: delta_ms)"),
        "max_spikes": Field(int, 100, _at_least_one, "an integer >= 1 (spikes per neuron per trial)"),
        "allow_overflow": Field(bool, False),
        "precision": _one_of("float64", "float32"),
        "device": _one_of("cpu", "cuda"),
        "algorithm": _one_of(*algorithm_names()),
        "surrogate_beta": Field(NUMBER, 10.0, _positive, "a surrogate steepness > 0 (baselines only)"),
    },
    "quantise": {
        "percentile": Field(NUMBER, 99.9, lambda x: 0 < x <= 100, "a percentile in (0, 100]"),
        "lif_negative_range": Field(NUMBER, 16.0, _positive, "a range > 0 in thresholds"),
        "scale": _one_of("percentile", "search"),
        "profile": _one_of(*PROFILES),     # what the deployment target expresses (evprop.fixed_point.profiles)
        "calibration_samples": Field(int, 500, _at_least_one, "an integer >= 1"),
        "finetune_epochs": Field(int, 0, _non_negative, "an integer >= 0 (quantisation-aware fine-tuning; 0: off)"),
        "finetune_learning_rate": Field(NUMBER, 2e-4, _positive, "a learning rate > 0"),
    },
    "verify": {
        "lava_samples": Field(int, 20, _at_least_one, "an integer >= 1"),
        "timeout_s": Field(NUMBER, 600.0, _positive, "a timeout > 0 s"),
    },
}


def defaults(schema=SCHEMA) -> dict:
    return {key: defaults(f) if isinstance(f, dict) else copy.deepcopy(f.default) for key, f in schema.items()}


def _type_name(kind) -> str:
    if kind is NUMBER:
        return "a number"
    if isinstance(kind, tuple):
        return "a number or a list" if float in kind else "an integer or a list"
    return {int: "an integer", bool: "true or false", str: "a string", list: "a list", dict: "a table"}[kind]


def _check_finite(key: str, value, source: str):
    """inf and nan (TOML allows both) are never a valid setting: refuse them, in lists and tables too, naming the
    key."""
    def finite(x):
        if isinstance(x, (list, dict)):
            return all(map(finite, x.values() if isinstance(x, dict) else x))
        return not isinstance(x, float) or math.isfinite(x)
    if not finite(value):
        raise ConfigError(f"{source}: key '{key}' must be a finite number, got {value!r}")


def _check_value(key: str, field: Field, value, source: str):
    _check_finite(key, value, source)
    # bool is an int in Python: refuse it where a number is expected, and refuse numbers where a bool is
    ok_type = isinstance(value, field.kind) and not (isinstance(value, bool) and field.kind is not bool)
    if not ok_type:
        raise ConfigError(f"{source}: key '{key}' expects {field.expected or _type_name(field.kind)}, "
                          f"got {type(value).__name__} {value!r}")
    if field.check is not None and not field.check(value):
        raise ConfigError(f"{source}: key '{key}' expects {field.expected}, got {value!r}")


def _merge(base: dict, update: dict, schema: dict, source: str, prefix: str = ""):
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known here: {known})")
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{dotted}' must be a table [{dotted}]")
            _merge(base[key], value, schema[key], source, dotted + ".")
        else:
            _check_value(dotted, schema[key], value, source)
            base[key] = value


def parse_override(text: str):
    """'train.epochs=5' -> (['train', 'epochs'], 5); the value is read as TOML, else taken as a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = tomli.loads(f"v = {raw}")["v"]
    except tomli.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _nest(dotted: str, value) -> dict:
    out = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def load_config(path: Path | None, overrides=()) -> dict:
    """Defaults, then the TOML file, then `--set` overrides; every value validated, then cross-checked."""
    config = defaults()
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = tomli.loads(path.read_text())
        except (tomli.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        _merge(config, data, SCHEMA, source)
        if not config["name"]:
            config["name"] = path.stem
    for text in overrides:
        key, value = parse_override(text)
        _merge(config, _nest(key, value), SCHEMA, f"--set {key}")
    _cross_check(config, source)
    return config


def _cross_check(config: dict, source: str):
    data, net, train = config["data"], config["network"], config["train"]
    for key, check in (("network.readout_params", lambda: get_readout(net["readout"], net["readout_params"])),
                       ("train.loss_params", lambda: get_loss(train["loss"], **train["loss_params"]))):
        try:
            check()
        except ValueError as err:
            raise ConfigError(f"{source}: key '{key}': {err}") from None
    n_steps = net["duration_ms"] / net["dt_ms"]
    if abs(n_steps - round(n_steps)) > 1e-9:
        raise ConfigError(f"{source}: key 'network.duration_ms' ({net['duration_ms']}) must be a whole number of "
                          f"steps of network.dt_ms ({net['dt_ms']})")
    if net["max_delay_ms"] < max(net["ff_delay_init_ms"], net["recurrent_delay_init_ms"]):
        raise ConfigError(f"{source}: key 'network.max_delay_ms' ({net['max_delay_ms']}) must be at least the "
                          f"initial delays (ff_delay_init_ms, recurrent_delay_init_ms)")
    if config["augment"]["dilate_min"] > config["augment"]["dilate_max"]:
        raise ConfigError(f"{source}: key 'augment.dilate_min' must not exceed 'augment.dilate_max'")
    if data["validation_size"] == 0 and data["dataset"] in ("yinyang", "digits", "spoken_digits") or \
            data["validation_size"] == 0 and config["train"]["selection_metric"].startswith("validation") \
            and data["dataset"] == "shd" and data["protocol"] == "train_test":
        raise ConfigError(f"{source}: key 'data.validation_size' is 0: give a validation set or select on a "
                          f"training metric (train.selection_metric = 'train_accuracy' or 'loss')")
    if data["dataset"] == "audio":
        _check_audio(config, source)
    if data["dataset"] == "hsd" and not (data["train_file"] and data["test_file"]):
        raise ConfigError(f"{source}: keys 'data.train_file' and 'data.test_file' must name SHD-format files")
    if data["validation_size"] == 0 and config["train"]["selection_metric"].startswith("validation") \
            and data["dataset"] in ("audio", "hsd"):
        raise ConfigError(f"{source}: key 'data.validation_size' is 0: give a validation set or select on a "
                          f"training metric (train.selection_metric = 'train_accuracy' or 'loss')")
    if data["dataset"] in ("shd", "ssc", "spoken_digits") and not data["root"]:
        raise ConfigError(f"{source}: key 'data.root' must name the folder of the {data['dataset']} files")
    if data["dataset"] in ("yinyang", "digits") and data["t_late_ms"] <= data["t_early_ms"]:
        raise ConfigError(f"{source}: key 'data.t_late_ms' ({data['t_late_ms']}) must exceed "
                          f"'data.t_early_ms' ({data['t_early_ms']})")
    if data["dataset"] == "yinyang" and max(data["t_late_ms"], data["bias_time_ms"]) >= net["duration_ms"]:
        raise ConfigError(f"{source}: key 'network.duration_ms' ({net['duration_ms']}) must exceed the last input "
                          f"spike time ({max(data['t_late_ms'], data['bias_time_ms'])} ms)")


def _check_audio(config: dict, source: str):
    data, audio = config["data"], config["audio"]
    if not data["manifest"]:
        raise ConfigError(f"{source}: key 'data.manifest' must name a CSV manifest or a folder of class sub-folders")
    rules = [key for key in ("test_manifest", "test_speakers", "test_takes") if data[key]]
    if len(rules) > 1:
        raise ConfigError(f"{source}: keys {', '.join('data.' + k for k in rules)} each choose the test set; "
                          f"set only one (none: a random data.test_fraction of data.manifest)")
    if not 0 < audio["f_low_hz"] < audio["f_high_hz"] < audio["sample_rate_hz"] / 2:
        raise ConfigError(f"{source}: keys 'audio.f_low_hz' ({audio['f_low_hz']}) < 'audio.f_high_hz' "
                          f"({audio['f_high_hz']}) < 'audio.sample_rate_hz' / 2 ({audio['sample_rate_hz'] / 2}) "
                          f"expected")


def n_steps(config: dict) -> int:
    return int(round(config["network"]["duration_ms"] / config["network"]["dt_ms"]))


def dump_toml(config: dict) -> str:
    """The resolved configuration as TOML (strings, numbers, booleans and lists only)."""
    lines = []
    top = {k: v for k, v in config.items() if not isinstance(v, dict)}
    for key, value in top.items():
        lines.append(f"{key} = {json.dumps(value)}")
    for section, table in config.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)
