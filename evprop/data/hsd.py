"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC): reading, writing, binning and caching the
official HDF5 files with h5py (no tonic needed; tonic is GPL and optional).

File layout (the data set's official README, Cramer et al. 2020), one entry per sample:
    spikes/times  vlen float16, seconds        spikes/units  vlen uint16, channel 0..n_channels-1
    labels        integer class                extra/speaker integer speaker id
    extra/keys    one name per class (bytes)
Folder layout as tonic: <root>/SHD/shd_{train,test}.h5 and <root>/SSC/ssc_{train,valid,test}.h5.
Files written by `write_hsd_file` also carry the attribute n_channels; official files have none and declare 700.

Every problem with a file is a one-line ValueError that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..model.io import atomic_write, save_arrays
from .events import (EventCounts, bin_times_numpy, microseconds_to_ms, ms_to_seconds, reduce_channels,
                     reduced_channel_count, seconds_to_ms, spikedata_from_flat)
from .spikes import SpikeData

log = logging.getLogger(__name__)

HSD_CHANNELS = 700
REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels", "extra/speaker", "extra/keys")
BASE_URL = "https://zenkelab.org/datasets/"
# (folder, {split: (file, md5 of the zip)}); md5s from tonic 1.7.0 (tonic/datasets/hsd.py)
DATASETS = {
    "shd": ("SHD", {"train": ("shd_train.h5", "f3252aeb598ac776c1b526422d90eecb"),
                    "test": ("shd_test.h5", "1503a5064faa34311c398fb0a1ed0a6f")}),
    "ssc": ("SSC", {"train": ("ssc_train.h5", "d102be95e7144fcc0553d1f45ba94170"),
                    "valid": ("ssc_valid.h5", "b4eee3516a4a90dd0c71a6ac23a8ae43"),
                    "test": ("ssc_test.h5", "a35ff1e9cffdd02a20eb850c17c37748")}),
}
CACHE_VERSION = 1
READ_CHUNK = 1024          # samples read from disk at a time


@dataclass(frozen=True, eq=False)
class HSDSplit:
    """One binned file: spikes (SpikeData, steps of dt_ms), speaker per sample, class names, and the counts of
    merged / dropped spikes of the binning (log or report them)."""

    spikes: SpikeData
    speakers: np.ndarray
    class_names: tuple
    counts: EventCounts
    source: str
    dt_ms: float


# ----------------------------------------------------------------------------------------------- paths

def hsd_path(root, dataset: str, split: str) -> Path:
    """<root>/SHD/shd_train.h5 etc. (tonic's layout); unknown names are a ValueError.

    >>> hsd_path("/data", "ssc", "valid").as_posix()
    '/data/SSC/ssc_valid.h5'
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset '{dataset}' unknown; expected one of {sorted(DATASETS)}")
    folder, files = DATASETS[dataset]
    if split not in files:
        raise ValueError(f"{dataset} has no split '{split}'; expected one of {list(files)}")
    return Path(root).expanduser() / folder / files[split][0]


def _missing_file_message(path: Path, dataset: str, split: str) -> str:
    name, md5 = DATASETS[dataset][1][split]
    return (f"{path}: file not found; download {BASE_URL}{name}.zip (md5 {md5}) or the .gz from "
            f"https://compneuro.net/datasets/ and unpack it into {path.parent}")


# ----------------------------------------------------------------------------------------------- writing

def write_hsd_file(path, samples, labels, speakers, keys, n_channels: int = HSD_CHANNELS) -> None:
    """Write an SHD-format file. samples: sequence of (times_ms, channels) pairs, one per sample.

    Times are stored as float16 seconds like the official files (resolution ~1 ms near 1-2 s: compare read
    times with `float16_round_trip_ms`). The file is written beside `path` and renamed, never left half-written.
    """
    path = Path(path)
    labels = np.asarray(labels, dtype=np.int64)
    speakers = np.asarray(speakers, dtype=np.int64)
    keys = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
    if not (len(samples) == len(labels) == len(speakers)):
        raise ValueError(f"{path}: {len(samples)} samples, {len(labels)} labels and {len(speakers)} speakers differ")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(keys)):
        raise ValueError(f"{path}: labels must lie in [0, {len(keys)}) (one key per class)")
    times_s, units = [], []
    for i, (times_ms, channels) in enumerate(samples):
        times_ms, channels = np.asarray(times_ms, dtype=np.float64), np.asarray(channels, dtype=np.int64)
        if times_ms.shape != channels.shape or times_ms.ndim != 1:
            raise ValueError(f"{path}: sample {i} has {times_ms.shape} times but {channels.shape} channels")
        if len(times_ms) and (not np.all(np.isfinite(times_ms)) or times_ms.min() < 0):
            raise ValueError(f"{path}: sample {i} has a negative or non-finite spike time")
        if len(channels) and (channels.min() < 0 or channels.max() >= n_channels):
            raise ValueError(f"{path}: sample {i} has channels outside [0, {n_channels})")
        times_s.append(ms_to_seconds(times_ms).astype(np.float16))
        units.append(channels.astype(np.uint16))
    atomic_write(path, lambda handle: _write_h5(handle, times_s, units, labels, speakers, keys, n_channels))


def _write_h5(filename, times_s, units, labels, speakers, keys, n_channels):
    with h5py.File(filename, "w") as f:
        f.attrs["n_channels"] = int(n_channels)
        t = f.create_dataset("spikes/times", (len(times_s),), dtype=h5py.vlen_dtype(np.float16))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ts, us) in enumerate(zip(times_s, units)):
            t[i], u[i] = ts, us
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/speaker", data=speakers.astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array(keys, dtype="S"))


def float16_round_trip_ms(times_ms) -> np.ndarray:
    """The times [ms] a reader gets back after `write_hsd_file` stored them as float16 seconds."""
    return seconds_to_ms(ms_to_seconds(times_ms).astype(np.float16))


# ----------------------------------------------------------------------------------------------- reading

class _Reader:
    """An open SHD-format file whose read errors all become `ValueError(f"{path}: ...")`."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise ValueError(f"{self.path}: file not found") from None
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file (truncated or corrupt): "
                             f"{str(err).splitlines()[0]}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def error(self, problem: str) -> ValueError:
        return ValueError(f"{self.path}: {problem}")

    def header(self):
        """(n_samples, n_channels, labels, speakers, class_names), checked."""
        for key in REQUIRED_KEYS:
            if key not in self.file:
                raise self.error(f"missing dataset '{key}' (an SHD/SSC file has {', '.join(REQUIRED_KEYS)})")
        try:
            labels = self.file["labels"][:].astype(np.int64)
            speakers = self.file["extra/speaker"][:].astype(np.int64)
            keys = self.file["extra/keys"][:]
            n = self.file["spikes/times"].shape[0]
            n_units = self.file["spikes/units"].shape[0]
        except (OSError, TypeError, ValueError) as err:
            raise self.error(f"unreadable header data (truncated or corrupt): {err}") from None
        names = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in np.ravel(keys))
        n_channels = int(self.file.attrs.get("n_channels", HSD_CHANNELS))
        if not (n == n_units == len(labels) == len(speakers)):
            raise self.error(f"spikes/times ({n}), spikes/units ({n_units}), labels ({len(labels)}) and "
                             f"extra/speaker ({len(speakers)}) have different lengths")
        bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
        if len(bad):
            raise self.error(f"label {labels[bad[0]]} of sample {bad[0]} is outside [0, {len(names)}) "
                             f"(extra/keys names {len(names)} classes)")
        return n, n_channels, labels, speakers, names

    def chunk(self, lo: int, hi: int, n_channels: int):
        """Flat (sample, times_ms, channels) of samples lo..hi-1, checked."""
        try:
            times = self.file["spikes/times"][lo:hi]
            units = self.file["spikes/units"][lo:hi]
        except (OSError, ValueError, TypeError) as err:
            raise self.error(f"cannot read samples {lo}..{hi - 1} (truncated or corrupt): "
                             f"{str(err).splitlines()[0]}") from None
        times, units = _as_sample_list(times), _as_sample_list(units)
        counts = np.fromiter((len(t) for t in times), dtype=np.int64, count=len(times))
        unit_counts = np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))
        if np.any(counts != unit_counts):
            i = int(np.flatnonzero(counts != unit_counts)[0])
            raise self.error(f"sample {lo + i} has {counts[i]} spike times but {unit_counts[i]} units")
        sample = np.repeat(np.arange(lo, hi, dtype=np.int64), counts)
        flat_t = seconds_to_ms(np.concatenate(times)) if len(times) and counts.sum() else np.zeros(0)
        flat_u = np.concatenate(units).astype(np.int64) if len(units) and counts.sum() else np.zeros(0, np.int64)
        self._check_values(sample, flat_t, flat_u, n_channels)
        return sample, flat_t, flat_u

    def _check_values(self, sample, times_ms, units, n_channels):
        bad = np.flatnonzero(~np.isfinite(times_ms))
        if len(bad):
            raise self.error(f"sample {sample[bad[0]]} has a non-finite spike time ({times_ms[bad[0]]})")
        bad = np.flatnonzero(times_ms < 0)
        if len(bad):
            raise self.error(f"sample {sample[bad[0]]} has a negative spike time ({times_ms[bad[0]] / 1000} s)")
        bad = np.flatnonzero(units >= n_channels)
        if len(bad):
            raise self.error(f"sample {sample[bad[0]]} has unit {units[bad[0]]}, beyond the declared "
                             f"{n_channels} channels")


def _as_sample_list(data):
    """h5py returns vlen data as an object array of arrays, fixed-length 2-D data (tonic's tests) as 2-D."""
    return [np.asarray(row).ravel() for row in data]


@dataclass(frozen=True, eq=False)
class HSDEvents:
    """Unbinned content of an SHD-format file: per sample times [ms] (float64) and channels."""

    times_ms: list
    channels: list
    labels: np.ndarray
    speakers: np.ndarray
    class_names: tuple
    n_channels: int


def read_hsd_events(path) -> HSDEvents:
    """All spikes of a file, unbinned (times in ms): for round-trip checks and small files."""
    with _Reader(path) as reader:
        n, n_channels, labels, speakers, names = reader.header()
        sample, times, units = reader.chunk(0, n, n_channels)
    splits = np.cumsum(np.bincount(sample, minlength=n))[:-1]
    return HSDEvents(np.split(times, splits), np.split(units, splits), labels, speakers, names, n_channels)


def read_hsd_file(path, dt_ms: float, n_steps: int, channel_factor: int = 1) -> HSDSplit:
    """Read and bin a whole file, streaming READ_CHUNK samples at a time (no cache; see `load_hsd_file`)."""
    with _Reader(path) as reader:
        n, n_channels, labels, speakers, names = reader.header()
        n_out = reduced_channel_count(n_channels, channel_factor)
        parts, counts = [], EventCounts()
        for lo in range(0, n, READ_CHUNK):
            sample, times, units = reader.chunk(lo, min(n, lo + READ_CHUNK), n_channels)
            s, t, c, chunk_counts = bin_times_numpy(times, reduce_channels(units, channel_factor), sample, dt_ms,
                                                    n_steps, n_out)
            parts.append((s, t.astype(np.int32), c.astype(np.int32)))
            counts = counts + chunk_counts
    cat = (lambda k, dtype: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, dtype))
    spikes = spikedata_from_flat(cat(0, np.int64), cat(1, np.int32), cat(2, np.int32), labels, n_steps, n_out)
    return HSDSplit(spikes, speakers, names, counts, str(path), float(dt_ms))


# ----------------------------------------------------------------------------------------------- cache

def cache_path(cache_dir, path, dt_ms: float, n_steps: int, channel_factor: int) -> Path:
    """The npz cache file of `path` binned with (dt_ms, n_steps, channel_factor). The key includes the
    source's absolute path, size and modification time, so an edited or replaced file is binned again."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{float(dt_ms)!r}|{n_steps}|{channel_factor}|{CACHE_VERSION}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{path.stem}_dt{dt_ms:g}ms_{n_steps}steps_c{channel_factor}_{digest}.npz"


def _save_cache(file: Path, split: HSDSplit) -> None:
    small = split.spikes.n_steps < 2 ** 15 and split.spikes.n_channels < 2 ** 15
    dtype = np.int16 if small else np.int32
    save_arrays(file, {
        "steps": split.spikes.steps.astype(dtype), "channels": split.spikes.channels.astype(dtype),
        "offsets": split.spikes.offsets, "labels": split.spikes.labels, "speakers": split.speakers,
        "class_names": np.array(split.class_names, dtype=str),
        "shape": np.array([split.spikes.n_channels, split.spikes.n_steps]),
        "counts": np.array([split.counts.kept, split.counts.merged, split.counts.dropped_late,
                            split.counts.dropped_range]),
        "dt_ms": np.array(split.dt_ms), "source": np.array(split.source)})


def _load_cache(file: Path) -> HSDSplit:
    with np.load(file) as z:
        n_channels, n_steps = (int(v) for v in z["shape"])
        spikes = SpikeData(n_channels, n_steps, z["steps"], z["channels"], z["offsets"], z["labels"])
        return HSDSplit(spikes, z["speakers"], tuple(str(s) for s in z["class_names"]),
                        EventCounts(*(int(v) for v in z["counts"])), str(z["source"]), float(z["dt_ms"]))


def load_hsd_file(path, dt_ms: float, n_steps: int, channel_factor: int = 1, cache_dir=None) -> HSDSplit:
    """Binned content of an SHD-format file, from the npz cache in `cache_dir` when present (else read, bin and
    write the cache). cache_dir None: no cache. Logs the merged / dropped spike counts."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if dt_ms <= 0 or int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"{path}: dt_ms ({dt_ms}) must be > 0 and n_steps ({n_steps}) an integer >= 1")
    file = cache_path(cache_dir, path, dt_ms, n_steps, channel_factor) if cache_dir is not None else None
    if file is not None and file.is_file():
        try:
            split = _load_cache(file)
            log.info("%s: binned spikes from cache %s", path, file.name)
            return split
        except (OSError, ValueError, KeyError) as err:
            log.warning("%s: cache %s unreadable (%s); binning again", path, file, err)
    split = read_hsd_file(path, dt_ms, n_steps, channel_factor)
    log.info("%s: binned to %d steps of %g ms: %s", path, n_steps, dt_ms, split.counts.describe())
    if file is not None:
        _save_cache(file, split)
    return split


def load_hsd(root, dataset: str, split: str, dt_ms: float, n_steps: int, channel_factor: int = 1,
             cache_dir=None) -> HSDSplit:
    """SHD or SSC split from tonic's folder layout under `root`; a missing file names the download URL.
    cache_dir defaults to <root>/<SHD|SSC>/evprop_cache."""
    path = hsd_path(root, dataset, split)
    if not path.is_file():
        raise ValueError(_missing_file_message(path, dataset, split))
    if cache_dir is None:
        cache_dir = path.parent / "evprop_cache"
    return load_hsd_file(path, dt_ms, n_steps, channel_factor, cache_dir)


# ----------------------------------------------------------------------------------------------- tonic

def events_from_tonic(events):
    """tonic structured events (`t` µs, `x` channel, optional `p`) -> (times_ms, channels).

    >>> ev = np.array([(1500, 3, 1)], dtype=[("t", "<i8"), ("x", "<i8"), ("p", "<i8")])
    >>> [a.tolist() for a in events_from_tonic(ev)]
    [[1.5], [3]]
    """
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if "t" not in names or "x" not in names:
        raise ValueError(f"tonic events need fields 't' (µs) and 'x' (channel); got fields {names}")
    return microseconds_to_ms(events["t"]), np.asarray(events["x"], dtype=np.int64)


def spikedata_from_tonic(dataset, dt_ms: float, n_steps: int, n_channels: int = HSD_CHANNELS,
                         channel_factor: int = 1):
    """Bin a tonic dataset (anything with len() and [i] -> (events, label), e.g. tonic.datasets.SHD) into
    (SpikeData, EventCounts). Does not import tonic."""
    n_out = reduced_channel_count(n_channels, channel_factor)
    parts, labels, counts = [], [], EventCounts()
    for i in range(len(dataset)):
        events, label = dataset[i]
        times, channels = events_from_tonic(events)
        if len(times) and (not np.all(np.isfinite(times)) or times.min() < 0):
            raise ValueError(f"tonic sample {i}: negative or non-finite spike time")
        if len(channels) and (channels.min() < 0 or channels.max() >= n_channels):
            raise ValueError(f"tonic sample {i}: channel outside [0, {n_channels})")
        s, t, c, sample_counts = bin_times_numpy(times, reduce_channels(channels, channel_factor),
                                                 np.full(len(times), i), dt_ms, n_steps, n_out)
        parts.append((s, t, c))
        labels.append(int(label))
        counts = counts + sample_counts
    cat = (lambda k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64))
    return spikedata_from_flat(cat(0), cat(1), cat(2), labels, n_steps, n_out), counts


def tonic_dataset(root, dataset: str, split: str):
    """tonic.datasets.SHD / SSC over files already in tonic's layout under `root` (no download; tonic is an
    optional, GPL dependency imported only here)."""
    try:
        import tonic  # noqa: F401  (optional)
    except ImportError:
        raise ImportError("tonic is not installed; `pip install tonic` (GPL-3.0) or use evprop.data.hsd.load_hsd, "
                          "which reads the same files without it") from None
    path = hsd_path(root, dataset, split)
    if not path.is_file():
        raise ValueError(_missing_file_message(path, dataset, split))
    base = tonic.datasets.SHD if dataset == "shd" else tonic.datasets.SSC

    class Offline(base):      # same class name as the base, so tonic looks in <root>/SHD or <root>/SSC
        def _check_exists(self):
            return path.is_file()

        def download(self):
            raise ValueError(_missing_file_message(path, dataset, split))

    Offline.__name__ = base.__name__
    if dataset == "shd":
        return Offline(save_to=str(root), train=(split == "train"))
    return Offline(save_to=str(root), split=split)


# ----------------------------------------------------------------------------------------------- test data

def synthetic_samples(n_samples: int, n_classes: int, n_speakers: int = 4, n_channels: int = HSD_CHANNELS,
                      duration_ms: float = 1000.0, rate_hz: float = 5.0, seed: int = 0):
    """Class-dependent random spike patterns for tests: class k drives a band of channels whose centre sweeps
    with time at a class-specific slope; speakers shift the band a little. Returns (samples, labels, speakers)
    with samples a list of (times_ms, channels). Times are continuous (not on any grid)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % n_classes
    speakers = rng.integers(0, n_speakers, n_samples)
    samples = []
    for label, speaker in zip(labels, speakers):
        n = rng.poisson(rate_hz * n_channels * duration_ms / 1000.0 / 4)
        times = np.sort(rng.uniform(0.0, duration_ms, n))
        start = (label + 0.5) / n_classes * n_channels
        slope = (1 if label % 2 else -1) * 0.2 * n_channels / duration_ms
        centre = start + slope * times + 0.02 * n_channels * (speaker - n_speakers / 2)
        channels = np.clip(np.round(centre + rng.normal(0, 0.05 * n_channels, n)), 0, n_channels - 1)
        samples.append((times, channels.astype(np.int64)))
    return samples, labels, speakers
