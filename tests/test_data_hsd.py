"""SHD/SSC files: writer/reader round trip, binning counts, channel reduction, cache, bad files, tonic events."""

import importlib.util
from unittest import mock

import h5py
import numpy as np
import pytest

from evprop.data import hsd
from evprop.data.events import (EventCounts, bin_times_numpy, microseconds_to_ms, ms_to_seconds, seconds_to_ms,
                                unique_events)
from evprop.data.hsd import (events_from_tonic, float16_round_trip_ms, hsd_path, load_hsd, load_hsd_file,
                             read_hsd_events, read_hsd_file, spikedata_from_tonic, synthetic_samples, write_hsd_file)

KEYS = ["zero", "one", "two"]


def test_unit_conversions():
    # float16 seconds are cast before scaling: 60 s * 1000 would overflow float16 (max 65504)
    assert seconds_to_ms(np.array([0.5, 60.0], dtype=np.float16)).tolist() == [500.0, 60000.0]
    assert ms_to_seconds([1250.0]).tolist() == [1.25]
    assert microseconds_to_ms(np.array([1, 1_400_000])).tolist() == [0.001, 1400.0]


def test_write_read_round_trip_exact(tmp_path):
    # times that float16 seconds represent exactly (k / 1024 s) come back unchanged, in ms
    rng = np.random.default_rng(0)
    samples = []
    for n in (0, 1, 57, 300):
        times = np.sort(rng.integers(0, 1400, n)) * 1000.0 / 1024.0
        samples.append((times, rng.integers(0, 700, n)))
    write_hsd_file(tmp_path / "f.h5", samples, [0, 2, 1, 2], [7, 7, 3, 9], KEYS, 700)
    back = read_hsd_events(tmp_path / "f.h5")
    for (times, channels), got_t, got_c in zip(samples, back.times_ms, back.channels):
        np.testing.assert_array_equal(got_t, times)
        np.testing.assert_array_equal(got_c, channels)
    assert back.labels.tolist() == [0, 2, 1, 2] and back.speakers.tolist() == [7, 7, 3, 9]
    assert back.class_names == tuple(KEYS) and back.n_channels == 700


def test_round_trip_of_continuous_times_is_float16_rounding(tmp_path):
    samples, labels, speakers = synthetic_samples(6, 3, n_channels=50, duration_ms=1400.0, seed=3)
    write_hsd_file(tmp_path / "f.h5", samples, labels, speakers, KEYS, 50)
    back = read_hsd_events(tmp_path / "f.h5")
    for (times, _), got in zip(samples, back.times_ms):
        np.testing.assert_array_equal(got, float16_round_trip_ms(times))
        assert np.max(np.abs(got - times), initial=0) <= 0.5 * 1000 * 2 ** -10 + 1e-12    # half a ulp at 1-2 s


def test_binning_counts_merged_and_late_spikes_exactly(tmp_path):
    # sample 0: two spikes of channel 1 in step 0 (one merged), one at 5.0 ms -> step 5, one at 6.0 ms = T -> dropped
    # sample 1: channel 2 at 2.5 and 2.75 ms (merged), channel 3 at 2.5 ms (kept)
    samples = [(np.array([0.25, 0.75, 5.0, 6.0]), np.array([1, 1, 0, 0])),
               (np.array([2.5, 2.75, 2.5]), np.array([2, 2, 3]))]
    write_hsd_file(tmp_path / "f.h5", samples, [1, 0], [0, 1], KEYS, 4)
    split = read_hsd_file(tmp_path / "f.h5", dt_ms=1.0, n_steps=6)
    assert split.counts == EventCounts(kept=4, merged=2, dropped_late=1, dropped_range=0)
    assert split.spikes.sample(0)[0].tolist() == [0, 5] and split.spikes.sample(0)[1].tolist() == [1, 0]
    assert split.spikes.sample(1)[0].tolist() == [2, 2] and split.spikes.sample(1)[1].tolist() == [2, 3]
    assert split.spikes.labels.tolist() == [1, 0] and split.speakers.tolist() == [0, 1]


def test_binning_floors_to_the_grid_like_the_authors():
    # 0.3 / 0.1 = 2.9999999999999996 in floating point; it belongs to step 3
    _, steps, _, counts = bin_times_numpy([0.3, 0.29, 1.999], [0, 0, 0], [0, 0, 0], 0.1, 30, 1)
    assert steps.tolist() == [2, 3, 19] and counts.merged == 0
    _, _, _, merged = unique_events([0, 1, 0], [4, 4, 4], [2, 2, 2], 10, 3)
    assert merged == 1          # same bin in sample 0 only


def test_channel_reduction_700_to_70(tmp_path):
    samples = [(np.array([1.0, 1.0, 1.0, 1.0]), np.array([0, 9, 10, 699]))]
    write_hsd_file(tmp_path / "f.h5", samples, [0], [0], KEYS, 700)
    split = read_hsd_file(tmp_path / "f.h5", dt_ms=1.0, n_steps=10, channel_factor=10)
    assert split.spikes.n_channels == 70
    assert split.spikes.sample(0)[1].tolist() == [0, 1, 69] and split.counts.merged == 1


def test_streaming_chunks_equal_one_chunk(tmp_path):
    samples, labels, speakers = synthetic_samples(23, 3, n_channels=40, duration_ms=300.0, rate_hz=40.0, seed=1)
    write_hsd_file(tmp_path / "f.h5", samples, labels, speakers, KEYS, 40)
    whole = read_hsd_file(tmp_path / "f.h5", 2.0, 100)
    with mock.patch.object(hsd, "READ_CHUNK", 5):
        chunked = read_hsd_file(tmp_path / "f.h5", 2.0, 100)
    for name in ("steps", "channels", "offsets", "labels"):
        np.testing.assert_array_equal(getattr(whole.spikes, name), getattr(chunked.spikes, name))
    assert whole.counts == chunked.counts and whole.counts.total == sum(len(s[0]) for s in samples)


def test_cache_is_used_and_keyed_by_binning(tmp_path):
    samples, labels, speakers = synthetic_samples(10, 3, n_channels=30, duration_ms=200.0, rate_hz=50.0, seed=2)
    path = tmp_path / "f.h5"
    write_hsd_file(path, samples, labels, speakers, KEYS, 30)
    first = load_hsd_file(path, 1.0, 150, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    with mock.patch.object(hsd, "read_hsd_file", side_effect=AssertionError("cache not used")):
        second = load_hsd_file(path, 1.0, 150, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.spikes.steps, second.spikes.steps)
    np.testing.assert_array_equal(first.spikes.offsets, second.spikes.offsets)
    np.testing.assert_array_equal(first.speakers, second.speakers)
    assert second.counts == first.counts and second.class_names == tuple(KEYS)
    load_hsd_file(path, 2.0, 75, cache_dir=tmp_path / "cache")              # other dt: a second cache file
    assert len(list((tmp_path / "cache").iterdir())) == 2
    (tmp_path / "cache" / hsd.cache_path(tmp_path / "cache", path, 1.0, 150, 1).name).write_bytes(b"junk")
    again = load_hsd_file(path, 1.0, 150, cache_dir=tmp_path / "cache")     # unreadable cache: rebuilt
    np.testing.assert_array_equal(first.spikes.steps, again.spikes.steps)


def test_tonic_layout_and_missing_file_message(tmp_path):
    assert hsd_path(tmp_path, "shd", "train") == tmp_path / "SHD" / "shd_train.h5"
    assert hsd_path(tmp_path, "ssc", "valid") == tmp_path / "SSC" / "ssc_valid.h5"
    with pytest.raises(ValueError, match="ssc has no split 'validation'"):
        hsd_path(tmp_path, "ssc", "validation")
    with pytest.raises(ValueError, match="dataset 'mnist' unknown"):
        hsd_path(tmp_path, "mnist", "train")
    with pytest.raises(ValueError, match=r"shd_test.h5: file not found; download https://zenkelab.org/datasets/"
                                         r"shd_test.h5.zip \(md5 1503a5064faa34311c398fb0a1ed0a6f\)"):
        load_hsd(tmp_path, "shd", "test", 1.0, 100)
    samples, labels, speakers = synthetic_samples(4, 3, duration_ms=100.0, seed=0)
    write_hsd_file(tmp_path / "SHD" / "shd_test.h5", samples, labels, speakers, KEYS)
    split = load_hsd(tmp_path, "shd", "test", 1.0, 100)
    assert len(split.spikes) == 4 and (tmp_path / "SHD" / "evprop_cache").is_dir()


# --------------------------------------------------------------------------------------------- bad files

def _raw_file(path, times, units, labels=(0,), speakers=(0,), keys=(b"a", b"b"), n_channels=700, drop=None):
    """Write a file bypassing the writer's checks (float64 times in seconds, so NaN / negative survive)."""
    with h5py.File(path, "w") as f:
        f.attrs["n_channels"] = n_channels
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float64))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(len(times)):
            t[i] = np.asarray(times[i], dtype=np.float64)
        for i in range(len(units)):
            u[i] = np.asarray(units[i], dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        f.create_dataset("extra/speaker", data=np.asarray(speakers))
        f.create_dataset("extra/keys", data=np.array(keys, dtype="S"))
        if drop:
            del f[drop]


@pytest.mark.parametrize("make, message", [
    (lambda p: _raw_file(p, [[0.1, np.nan]], [[1, 2]]), r"sample 0 has a non-finite spike time \(nan\)"),
    (lambda p: _raw_file(p, [[0.1], [-0.5]], [[1], [2]], labels=(0, 1), speakers=(0, 0)),
     r"sample 1 has a negative spike time \(-0.5 s\)"),
    (lambda p: _raw_file(p, [[0.1, 0.2]], [[1, 700]]), "sample 0 has unit 700, beyond the declared 700 channels"),
    (lambda p: _raw_file(p, [[0.1, 0.2]], [[1, 7]], n_channels=5),
     "sample 0 has unit 7, beyond the declared 5 channels"),
    (lambda p: _raw_file(p, [[0.1]], [[1]], labels=(2,)), r"label 2 of sample 0 is outside \[0, 2\)"),
    (lambda p: _raw_file(p, [[0.1]], [[1]], labels=(-1,)), r"label -1 of sample 0 is outside \[0, 2\)"),
    (lambda p: _raw_file(p, [[0.1]], [[1]], drop="labels"), "missing dataset 'labels'"),
    (lambda p: _raw_file(p, [[0.1]], [[1]], drop="extra/speaker"), "missing dataset 'extra/speaker'"),
    (lambda p: _raw_file(p, [[0.1, 0.2]], [[1]]), "sample 0 has 2 spike times but 1 units"),
    (lambda p: _raw_file(p, [[0.1], [0.2]], [[1]], labels=(0, 0), speakers=(0, 0)),
     r"spikes/times \(2\), spikes/units \(1\), labels \(2\) and extra/speaker \(2\) have different lengths"),
    (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4), "not a readable HDF5 file"),
    (lambda p: p.write_text("path,label\n"), "not a readable HDF5 file"),
])
def test_bad_file_is_one_line_error_naming_file(tmp_path, make, message):
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(ValueError, match=message) as info:
        read_hsd_file(path, 1.0, 100)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_truncated_file_is_one_line_error(tmp_path):
    samples, labels, speakers = synthetic_samples(40, 3, duration_ms=500.0, seed=4)
    path = tmp_path / "f.h5"
    write_hsd_file(path, samples, labels, speakers, KEYS)
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 1000, 2000):
        path.write_bytes(data[:keep])
        with pytest.raises(ValueError, match=f"^{path}: .*(truncated or corrupt)") as info:
            read_hsd_file(path, 1.0, 100)
        assert "\n" not in str(info.value)


def test_writer_refuses_bad_samples(tmp_path):
    with pytest.raises(ValueError, match="sample 0 has channels outside \\[0, 4\\)"):
        write_hsd_file(tmp_path / "f.h5", [([1.0], [4])], [0], [0], KEYS, 4)
    with pytest.raises(ValueError, match="labels must lie in \\[0, 3\\)"):
        write_hsd_file(tmp_path / "f.h5", [([1.0], [0])], [3], [0], KEYS, 4)
    with pytest.raises(ValueError, match="negative or non-finite"):
        write_hsd_file(tmp_path / "f.h5", [([-1.0], [0])], [0], [0], KEYS, 4)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------- tonic

TONIC_DTYPE = [("t", "<i8"), ("x", "<i8"), ("p", "<i8")]


def test_tonic_structured_events_convert_like_the_file_reader(tmp_path):
    samples, labels, speakers = synthetic_samples(5, 3, n_channels=100, duration_ms=400.0, rate_hz=30, seed=5)
    write_hsd_file(tmp_path / "f.h5", samples, labels, speakers, KEYS, 100)
    from_file = read_hsd_file(tmp_path / "f.h5", 1.0, 300, channel_factor=10)
    back = read_hsd_events(tmp_path / "f.h5")
    tonic_like = []
    for times, channels, label in zip(back.times_ms, back.channels, back.labels):
        events = np.zeros(len(times), dtype=TONIC_DTYPE)   # what tonic's SHD returns: t in µs (int), x, p = 1
        events["t"], events["x"], events["p"] = times * 1000, channels, 1     # int field truncates, as tonic
        tonic_like.append((events, label))
    data, counts = spikedata_from_tonic(tonic_like, 1.0, 300, n_channels=100, channel_factor=10)
    np.testing.assert_array_equal(data.steps, from_file.spikes.steps)
    np.testing.assert_array_equal(data.channels, from_file.spikes.channels)
    np.testing.assert_array_equal(data.labels, from_file.spikes.labels)
    assert counts == from_file.counts
    with pytest.raises(ValueError, match="need fields 't' .* and 'x'"):
        events_from_tonic(np.zeros(2, dtype=[("t", "<i8"), ("y", "<i8")]))


@pytest.mark.skipif(importlib.util.find_spec("tonic") is None, reason="tonic (optional, GPL) is not installed")
def test_tonic_dataset_reads_our_files(tmp_path):
    samples, labels, speakers = synthetic_samples(4, 3, duration_ms=300.0, seed=6)
    write_hsd_file(tmp_path / "SHD" / "shd_train.h5", samples, labels, speakers, KEYS)
    ds = hsd.tonic_dataset(tmp_path, "shd", "train")
    data, counts = spikedata_from_tonic(ds, 1.0, 300)
    ours = load_hsd(tmp_path, "shd", "train", 1.0, 300)
    np.testing.assert_array_equal(data.steps, ours.spikes.steps)
    assert counts == ours.counts


@pytest.mark.parametrize("module", ["events", "hsd", "augment", "protocols", "digits", "audio"])
def test_docstring_examples(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(f"evprop.data.{module}"))
    assert result.failed == 0 and result.attempted > 0
