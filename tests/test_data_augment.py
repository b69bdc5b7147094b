"""Augmentations (shift, blend, ID jitter, dilation) and the SHD/SSC protocols."""

import numpy as np
import pytest

from evprop.data.augment import (Blend, IdJitter, RandomDilate, RandomShift, augment_epoch, blend_numpy,
                                 dilate_numpy, draw_blend_pairs, shift_channels_numpy, transforms_from_config)
from evprop.data.events import EventCounts
from evprop.data.hsd import synthetic_samples, write_hsd_file
from evprop.data.protocols import leave_one_speaker_out, load_protocol, random_holdout
from evprop.data.spikes import SpikeData


def small_data(n_samples=12, n_steps=50, n_channels=20, seed=0):
    rng = np.random.default_rng(seed)
    rasters = rng.random((n_samples, n_steps, n_channels)) < 0.05
    return SpikeData.from_dense(rasters, np.arange(n_samples) % 3)


def same(a: SpikeData, b: SpikeData) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("steps", "channels", "offsets", "labels"))


def test_shift_drops_and_counts_exactly():
    _, steps, channels, dropped = shift_channels_numpy([0] * 4, [1, 2, 3, 4], [0, 2, 17, 19], -2, 20)
    assert steps.tolist() == [2, 3, 4] and channels.tolist() == [0, 15, 17] and dropped == 1


def shifted(raster, s):
    """raster moved by s channels, spikes moved outside dropped."""
    out = np.zeros_like(raster)
    if s >= 0:
        out[:, s:] = raster[:, :raster.shape[1] - s]
    else:
        out[:, :s] = raster[:, -s:]
    return out


def test_random_shift_moves_each_sample_by_one_amount():
    data = small_data()
    out, counts = RandomShift(5)(data, np.random.default_rng(1))
    assert counts.kept + counts.dropped_range == data.n_events and counts.merged == 0 and counts.dropped_range > 0
    for i in range(len(data)):
        assert any(np.array_equal(shifted(data.dense(i), s), out.dense(i)) for s in range(-5, 6)), i


def test_shift_amounts_cover_plus_minus_40():
    data = SpikeData.from_event_lists(700, 10, [([0], [350])] * 4000, np.zeros(4000))
    out, _ = RandomShift(40)(data, np.random.default_rng(0))
    moved = out.channels - 350
    assert moved.min() == -40 and moved.max() == 40 and len(np.unique(moved)) == 81


def test_blend_aligns_centres_of_mass_and_merges():
    # a: spikes at steps 10, 12 (centre 11) channel 2; b: steps 30, 32 (centre 31) channel 6. Pair centre: t 21,
    # channel 4 -> a moves by (+10, +2), b by (-10, -2): both land on (20, 4) and (22, 4): 2 merged
    pair, source = [0, 0, 0, 0], [0, 0, 1, 1]
    out = blend_numpy(pair, source, [10, 12, 30, 32], [2, 2, 6, 6], [True] * 4, 1, 50, 8)
    assert out[1].tolist() == [20, 22] and out[2].tolist() == [4, 4] and out[3] == EventCounts(2, 2, 0, 0)
    out = blend_numpy(pair, source, [10, 12, 30, 32], [2, 2, 6, 6], [True, False, True, True], 1, 50, 8,
                      align_channels=False)
    assert out[1].tolist() == [20, 20, 22] and out[2].tolist() == [2, 6, 6]


def test_blend_doubles_the_set_with_same_class_pairs():
    data = small_data(30)
    first, second = draw_blend_pairs(data.labels, 200, np.random.default_rng(0))
    assert np.all(data.labels[first] == data.labels[second]) and np.all(first != second)
    out, counts = Blend(0.5)(data, np.random.default_rng(3))
    assert len(out) == 60 and same(out.subset(range(30)), data)
    # p = 0.5 of two samples: about as many spikes as one sample
    ratio = (out.n_events - data.n_events) / data.n_events
    assert 0.8 < ratio < 1.2 and counts.kept == out.n_events - data.n_events


def test_blend_keeps_the_anchor_class():
    data = small_data(30)
    first, _ = draw_blend_pairs(data.labels, 30, np.random.default_rng([7, 0, 0]))
    out, _ = Blend(0.5)(data, np.random.default_rng([7, 0, 0]))
    np.testing.assert_array_equal(out.labels[30:], data.labels[first])


def test_dilation_and_jitter_counts():
    out = dilate_numpy([0, 0, 0, 0], [10, 11, 30, 45], [1, 1, 1, 1], 2.0, 64, 4)
    assert out[1].tolist() == [20, 22, 60] and out[3] == EventCounts(3, 0, 1, 0)
    out = dilate_numpy([0, 0], [10, 11], [1, 1], 0.5, 64, 4)
    assert out[1].tolist() == [5] and out[3].merged == 1
    data = small_data()
    jittered, counts = IdJitter(2.0)(data, np.random.default_rng(0))
    assert counts.total == data.n_events and counts.dropped_range > 0 and jittered.n_events == counts.kept
    dilated, counts = RandomDilate(0.8, 1.25)(data, np.random.default_rng(0))
    assert counts.total == data.n_events and dilated.n_events == counts.kept


def test_epochs_are_deterministic_per_seed_and_epoch():
    data = small_data(24)
    transforms = transforms_from_config({"blend_p": 0.5, "shift": 4, "id_jitter_sigma": 1.0, "dilate_min": 0.9,
                                         "dilate_max": 1.1})
    assert [t.name for t in transforms] == ["blend", "id_jitter", "dilate", "shift"]
    a, counts_a = augment_epoch(data, transforms, seed=5, epoch=2)
    b, counts_b = augment_epoch(data, transforms, seed=5, epoch=2)
    c, _ = augment_epoch(data, transforms, seed=5, epoch=3)
    d, _ = augment_epoch(data, transforms, seed=6, epoch=2)
    assert same(a, b) and counts_a == counts_b and len(a) == 48
    assert not same(a, c) and not same(a, d)
    # switching the blend off leaves the shift draws of that epoch unchanged
    only_shift, _ = augment_epoch(data, [RandomShift(4)], seed=5, epoch=2)
    shift_after_blend, _ = augment_epoch(data, [Blend(0.5), RandomShift(4)], seed=5, epoch=2)
    assert not same(only_shift, shift_after_blend)


def test_config_errors():
    with pytest.raises(ValueError, match=r"unknown keys \['shfit'\]"):
        transforms_from_config({"shfit": 40})
    with pytest.raises(ValueError, match="0 <= blend_p <= 1"):
        transforms_from_config({"blend_p": 1.5})
    assert transforms_from_config({}) == []


# ------------------------------------------------------------------------------------------- protocols

def test_loso_folds_partition_the_training_set():
    speakers = np.array([4, 0, 2, 2, 0, 4, 4, 9])
    folds = leave_one_speaker_out(speakers)
    assert [f.speaker for f in folds] == [0, 2, 4, 9]
    for f in folds:
        assert set(speakers[f.validation]) == {f.speaker} and f.speaker not in set(speakers[f.train])
        assert sorted(np.concatenate([f.train, f.validation]).tolist()) == list(range(8))
    train, val = random_holdout(100, 10, seed=1)
    assert len(val) == 10 and len(np.intersect1d(train, val)) == 0 and len(train) == 90
    assert np.array_equal(random_holdout(100, 10, seed=1)[1], val)


def test_load_protocol_shd_loso_and_ssc_official(tmp_path):
    keys = [f"c{i}" for i in range(3)]
    for folder, name, n, seed in [("SHD", "shd_train", 30, 0), ("SHD", "shd_test", 9, 1), ("SSC", "ssc_train", 12, 2),
                                  ("SSC", "ssc_valid", 5, 3), ("SSC", "ssc_test", 6, 4)]:
        samples, labels, speakers = synthetic_samples(n, 3, n_speakers=5, n_channels=40, duration_ms=100.0,
                                                      rate_hz=20.0, seed=seed)
        write_hsd_file(tmp_path / folder / f"{name}.h5", samples, labels, speakers, keys, 40)
    splits = load_protocol(tmp_path, "shd", "loso", 1.0, 100, fold=1)
    assert len(splits["train"].spikes) + len(splits["validation"].spikes) == 30 and len(splits["test"].spikes) == 9
    held_out = np.unique(splits["validation"].speakers)
    assert len(held_out) == 1 and held_out[0] not in splits["train"].speakers
    splits = load_protocol(tmp_path, "shd", "train_test", 1.0, 100, validation_size=5, seed=0)
    assert [len(splits[k].spikes) for k in ("train", "validation", "test")] == [25, 5, 9]
    splits = load_protocol(tmp_path, "ssc", "official", 1.0, 100)
    assert [len(splits[k].spikes) for k in ("train", "validation", "test")] == [12, 5, 6]
    with pytest.raises(ValueError, match="fold 7 does not exist; the training file has 5 speakers"):
        load_protocol(tmp_path, "shd", "loso", 1.0, 100, fold=7)
    with pytest.raises(ValueError, match="protocol 'loso' unknown for dataset 'ssc'"):
        load_protocol(tmp_path, "ssc", "loso", 1.0, 100)
