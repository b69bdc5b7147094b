"""Recordings -> binned input spikes with train / validation / test splits (data.dataset = "audio"), and
SHD-format files with a validation split (data.dataset = "hsd").

Encoding (evprop.data.audio) is cached on disk: one npz per front-end setting (its file name holds a hash of
every FrontEnd parameter) that maps the SHA-1 of each clip's bytes to its spikes. A second run with the same
front end reads every clip from there; a clip whose bytes changed has a new hash and is encoded again (and so is
a new clip); clips of other manifests with the same front end share the file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.io import save_arrays
from .audio import FrontEnd, encode_files
from .events import EventCounts, bin_times_numpy, spikedata_from_flat
from .manifest import (Manifest, align, read_manifest, split_by_speakers, split_by_takes, split_random,
                       split_random_speakers)

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class SplitSettings:
    """How the test and validation parts are taken (config keys data.*; at most one test rule is set)."""

    test_manifest: str = ""
    test_speakers: tuple = ()
    test_takes: tuple = ()
    test_fraction: float = 0.2
    validation_size: int = 0
    validation_split: str = "random"      # or "speakers": whole speakers, at least validation_size clips
    seed: int = 0


# ------------------------------------------------------------------------------------------------ cache

def file_digest(path) -> str:
    """SHA-1 of a file's bytes; an unreadable file is a one-line ValueError."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the recording ({err.strerror})") from None


def cache_file(cache_dir, front_end: FrontEnd) -> Path:
    key = hashlib.sha1(f"{front_end.key()}|{CACHE_VERSION}".encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"audio_{front_end.n_channels}ch_{key}.npz"


def _read_cache(file: Path) -> dict:
    """{clip digest: (times_ms, channels)} of a cache file ({} if absent or unreadable)."""
    if not file.is_file():
        return {}
    try:
        with np.load(file, allow_pickle=False) as z:
            digests, offsets, times, channels = z["digests"], z["offsets"], z["times_ms"], z["channels"]
    except (OSError, ValueError, KeyError) as err:
        log.warning("%s: unreadable audio cache (%s); encoding again", file, err)
        return {}
    return {str(d): (times[offsets[i]:offsets[i + 1]], channels[offsets[i]:offsets[i + 1]].astype(np.int64))
            for i, d in enumerate(digests)}


def _write_cache(file: Path, entries: dict) -> None:
    digests = sorted(entries)
    lengths = [len(entries[d][0]) for d in digests]
    cat = (lambda k, dtype: np.concatenate([entries[d][k] for d in digests]).astype(dtype) if digests
           else np.zeros(0, dtype))
    save_arrays(file, {"digests": np.array(digests, dtype=str), "offsets": np.concatenate([[0], np.cumsum(lengths)]),
                       "times_ms": cat(0, np.float64), "channels": cat(1, np.uint16)})


def encode_cached(paths, front_end: FrontEnd, cache_dir, on_progress=None) -> tuple:
    """([(times_ms, channels)] one per path, {'cached', 'encoded'}): spikes of every recording, encoded only when
    the cache in cache_dir has no entry for its contents and this front end. on_progress(done, total) per clip
    encoded."""
    digests = [file_digest(p) for p in paths]
    file = cache_file(cache_dir, front_end)
    cache = _read_cache(file)
    todo = sorted({d: p for d, p in zip(digests, paths) if d not in cache}.items())
    if todo:
        log.info("encoding %d of %d recordings (front end: %d channels, %g-%g Hz); cache %s", len(todo), len(paths),
                 front_end.n_channels, front_end.f_low_hz, front_end.f_high_hz, file)
        samples, _ = encode_files([p for _, p in todo], front_end, on_progress)
        cache.update({d: s for (d, _), s in zip(todo, samples)})
        _write_cache(file, cache)
    return [cache[d] for d in digests], {"cached": len(paths) - len(todo), "encoded": len(todo)}


# ------------------------------------------------------------------------------------------------ binning

def bin_clips(samples, labels, dt_ms: float, n_steps: int, n_channels: int):
    """(SpikeData, EventCounts): spikes of every clip on the dt grid (the trial is n_steps * dt_ms long)."""
    lengths = [len(t) for t, _ in samples]
    sample = np.repeat(np.arange(len(samples)), lengths)
    cat = (lambda k: np.concatenate([s[k] for s in samples]) if samples else np.zeros(0))
    s, t, c, counts = bin_times_numpy(cat(0), cat(1).astype(np.int64), sample, dt_ms, n_steps, n_channels)
    return spikedata_from_flat(s, t, c, labels, n_steps, n_channels), counts


@dataclass(frozen=True, eq=False)
class AudioSplits:
    """The three parts as SpikeData, and the manifest rows behind each (speakers, paths)."""

    data: dict
    manifests: dict
    counts: EventCounts


def split_manifest(train: Manifest, test: Manifest | None, settings: SplitSettings) -> dict:
    """{'train', 'validation', 'test'} Manifests: the test part from `test` or by the configured rule, then the
    validation part from what is left (random, or whole speakers)."""
    if test is None:
        what = "data.test_speakers" if settings.test_speakers else "data.test_takes" if settings.test_takes \
            else "data.test_fraction"
        if settings.test_speakers:
            rest, held = split_by_speakers(train, settings.test_speakers, what)
        elif settings.test_takes:
            rest, held = split_by_takes(train, settings.test_takes, what)
        else:
            rest, held = split_random(len(train), int(round(settings.test_fraction * len(train))), settings.seed + 1,
                                      what)
        train, test = train.subset(rest), train.subset(held)
    if settings.validation_size == 0:
        rest, held = np.arange(len(train)), np.zeros(0, dtype=np.int64)
    elif settings.validation_split == "speakers":
        rest, held = split_random_speakers(train.speakers, settings.validation_size, settings.seed,
                                           f"data.validation_split ({train.source})")
    else:
        rest, held = split_random(len(train), settings.validation_size, settings.seed, "data.validation_size")
    return {"train": train.subset(rest), "validation": train.subset(held), "test": test}


def load_audio_splits(manifest, front_end: FrontEnd, settings: SplitSettings, dt_ms: float, n_steps: int,
                      cache_dir=None, on_progress=None) -> AudioSplits:
    """Read the manifest(s), split, encode (cached; default cache folder <manifest folder>/evprop_cache) and bin."""
    train = read_manifest(manifest)
    test = align(train, read_manifest(settings.test_manifest)) if settings.test_manifest else None
    parts = split_manifest(train, test, settings)
    if cache_dir is None:
        source = Path(train.source)
        cache_dir = (source if source.is_dir() else source.parent) / "evprop_cache"
    order = [p for part in parts.values() for p in part.paths]
    samples, stats = encode_cached(order, front_end, cache_dir, on_progress)
    log.info("audio: %d recordings, %d from the cache, %d encoded", len(order), stats["cached"], stats["encoded"])
    data, counts, start = {}, EventCounts(), 0
    for name, part in parts.items():
        data[name], part_counts = bin_clips(samples[start:start + len(part)], part.labels, dt_ms, n_steps,
                                            front_end.n_channels)
        counts = counts + part_counts
        start += len(part)
    log.info("audio: binned to %d steps of %g ms: %s", n_steps, dt_ms, counts.describe())
    return AudioSplits(data, parts, counts)


def hsd_file_splits(train_file, test_file, settings: SplitSettings, dt_ms: float, n_steps: int,
                    channel_factor: int = 1, cache_dir=None) -> dict:
    """{'train', 'validation', 'test'} SpikeData of two SHD-format files; validation from the training file
    (random, or whole speakers)."""
    from .hsd import load_hsd_file
    train = load_hsd_file(train_file, dt_ms, n_steps, channel_factor, cache_dir)
    test = load_hsd_file(test_file, dt_ms, n_steps, channel_factor, cache_dir)
    n = len(train.spikes)
    if settings.validation_size == 0:
        rest, held = np.arange(n), np.zeros(0, dtype=np.int64)
    elif settings.validation_split == "speakers":
        rest, held = split_random_speakers(train.speakers, settings.validation_size, settings.seed,
                                           f"data.validation_split ({train_file})")
    else:
        rest, held = split_random(n, settings.validation_size, settings.seed, "data.validation_size")
    return {"train": train.spikes.subset(rest), "validation": train.spikes.subset(held), "test": test.spikes}

