"""The published configs start training at once when the data files are present (SHD/SSC in tonic's layout)."""

from pathlib import Path

import pytest

from evprop.data.hsd import synthetic_samples, write_hsd_file
from evprop.pipeline.build import initial_network, load_splits, n_classes
from evprop.pipeline.config import ConfigError, load_config
from evprop.pipeline.stages import train_stage

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = ["network.duration_ms=200.0", "network.max_delay_ms=20.0", "network.ff_delay_init_ms=10.0",
         "train.epochs=2", "train.batch_size=16", "data.channel_factor=10", "train.max_spikes=200",
         "train.early_stop_patience=0"]


def _write(root, dataset, splits, n_classes):
    folder = root / dataset.upper()
    folder.mkdir(parents=True)
    for i, split in enumerate(splits):
        samples, labels, speakers = synthetic_samples(40, n_classes, duration_ms=200.0, rate_hz=20, seed=i)
        write_hsd_file(folder / f"{dataset}_{split}.h5", samples, labels, speakers,
                       [f"class{k}" for k in range(n_classes)])


@pytest.mark.parametrize("name, hidden", [("shd", "network.hidden=24"), ("ssc", "network.hidden=[16, 12]")])
def test_published_config_trains_on_files_in_tonic_layout(tmp_path, name, hidden):
    n_cls = 20 if name == "shd" else 35
    _write(tmp_path, name, ["train", "test"] if name == "shd" else ["train", "valid", "test"], n_cls)
    config = load_config(CONFIGS / f"{name}.toml", [f"data.root='{tmp_path}'", hidden, *SMALL])
    splits = load_splits(config)
    assert splits["train"].n_channels == 70 and splits["train"].n_steps == 200
    assert len(splits["train"]) == 40 and len(splits["test"]) == 40
    spec = initial_network(config, splits["train"].n_channels, n_classes(splits))
    assert spec.connection("input->" + spec.neuron_layers[0].name).delay.max() > 0      # learned delays
    summary = train_stage(config, tmp_path / "run", splits)
    assert summary["epochs"] == 2
    history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2
    if name == "shd":
        assert '"blend"' not in history[0]           # augmentation counts go to the log, not the history
        assert summary["best_validation_accuracy"] != summary["best_validation_accuracy"]   # nan: no validation


def test_missing_files_name_the_folder(tmp_path):
    config = load_config(CONFIGS / "shd.toml", [f"data.root='{tmp_path}'"])
    with pytest.raises((ValueError, FileNotFoundError), match="shd_train.h5"):
        load_splits(config)


def test_root_is_required():
    with pytest.raises(ConfigError, match="data.root"):
        load_config(CONFIGS / "shd.toml", ["data.root=''"])


def test_input_delay_line_multiplies_the_inputs():
    config = load_config(None, ["data.train_size=10", "data.validation_size=5", "data.test_size=5",
                                "network.input_delay_copies=3", "network.input_delay_spacing_ms=4.0"])
    plain = load_splits(load_config(None, ["data.train_size=10", "data.validation_size=5", "data.test_size=5"]))
    lined = load_splits(config)
    assert lined["train"].n_channels == 3 * plain["train"].n_channels
    steps, channels = plain["train"].sample(0)
    events = set(zip(*(a.tolist() for a in lined["train"].sample(0))))
    n = plain["train"].n_channels
    for copy in range(3):          # copy c: channels + c * n, 4 ms = 8 steps of 0.5 ms later per copy
        expected = {(s + 8 * copy, ch + copy * n) for s, ch in zip(steps.tolist(), channels.tolist())
                    if s + 8 * copy < 80}
        assert expected <= events
    assert len(events) == sum(1 for copy in range(3) for s in steps if s + 8 * copy < 80)
