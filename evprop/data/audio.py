"""Audio -> spikes: a cochlear front end that writes SHD-format files (hsd.write_hsd_file).

Per clip:  mono, resampled to sample_rate_hz (scipy resample_poly), RMS-normalised to `rms`
        -> n_channels ERB-spaced 4th-order gammatone filters (Glasberg & Moore ERB scale, f_low_hz..f_high_hz,
           low frequencies first; scipy.signal.gammatone's IIR design, run as 4 biquads per channel)
        -> half-wave rectification -> compression r ** compression -> times gain
        -> one LIF per channel: v <- d v + (1 - d) drive with d = exp(-1 / (fs tau_mem)); spike and reset to 0
           when v >= threshold; then refractory for refractory_ms (v held at 0).
The filter bank, rectifier and LIFs run fused in one numba loop (samples outer, channels inner).

This is not SHD's Lauscher model (hydrodynamic basilar membrane, Meddis hair cell, bushy cells; LGPL, minutes per
clip); spike statistics differ (Cramer et al. 2020, section II-A).

SRC for `encode_to_hsd` is a folder with one sub-folder per class (class names = sorted folder names; every WAV
below is a sample of speaker 0) or a CSV manifest with a header `path,label[,speaker]` (relative paths are
relative to the CSV; labels are integers or class names, names are sorted into integers).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit
from scipy.io import wavfile
from scipy.signal import gammatone, resample_poly, zpk2sos

from ..pipeline.progress import ProgressBar
from .hsd import write_hsd_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontEnd:
    """Parameters of the cochlear front end (frequencies in Hz, times in ms)."""

    n_channels: int = 700
    f_low_hz: float = 50.0
    f_high_hz: float = 7200.0
    sample_rate_hz: int = 16000
    rms: float = 0.3
    compression: float = 0.25
    gain: float = 3.0
    tau_mem_ms: float = 2.0
    threshold: float = 1.0
    refractory_ms: float = 1.0

    def __post_init__(self):
        if not 0 < self.f_low_hz < self.f_high_hz < self.sample_rate_hz / 2:
            raise ValueError(f"FrontEnd: need 0 < f_low_hz ({self.f_low_hz}) < f_high_hz ({self.f_high_hz}) < "
                             f"sample_rate_hz / 2 ({self.sample_rate_hz / 2})")
        if self.n_channels < 1 or min(self.rms, self.compression, self.gain, self.tau_mem_ms, self.threshold) <= 0 \
                or self.refractory_ms < 0:
            raise ValueError("FrontEnd: n_channels >= 1, rms, compression, gain, tau_mem_ms, threshold > 0 and "
                             "refractory_ms >= 0 are required")


# ------------------------------------------------------------------------------------------ filter bank

def hz_to_erb_rate(f_hz):
    """Glasberg & Moore (1990) ERB-rate [Cams]: 21.4 log10(1 + 0.00437 f)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f_hz, dtype=np.float64))


def erb_space(n: int, f_low_hz: float, f_high_hz: float) -> np.ndarray:
    """n centre frequencies [Hz], equally spaced on the ERB-rate scale, ascending.

    >>> erb_space(3, 100.0, 1000.0).round(1).tolist()
    [100.0, 406.8, 1000.0]
    """
    rates = np.linspace(hz_to_erb_rate(f_low_hz), hz_to_erb_rate(f_high_hz), n)
    return (10.0 ** (rates / 21.4) - 1.0) / 0.00437


def gammatone_sos(centre_hz, sample_rate_hz: float) -> np.ndarray:
    """[n_channels, 4, 6] second-order sections of scipy.signal.gammatone(cf, 'iir', fs).

    scipy returns one 8th-order (b, a) whose denominator is a 4-fold pole pair; running it directly (or
    factoring it numerically) is ill-conditioned at low cf, so the poles are set from the known pair and only
    the 4 zeros are found numerically.
    """
    sections = []
    for cf in np.atleast_1d(centre_hz):
        b, a = gammatone(cf, "iir", fs=sample_rate_hz)
        # a = (1 - 2 r cos(w) z^-1 + r^2 z^-2)^4 with r = a[8] ** (1/8), w from a[1] = -8 r cos(w)
        r = a[8] ** 0.125
        pole = r * np.exp(1j * np.arccos(np.clip(-a[1] / (8 * r), -1, 1)))
        zeros = np.roots(b)
        sos = zpk2sos(np.concatenate([zeros, np.zeros(4)]), np.repeat([pole, np.conj(pole)], 4), b[0])
        sections.append(sos)
    return np.array(sections)


@njit(cache=True, fastmath=True)
def _cochlea_kernel(x, coef, gain, compression, decay, threshold, refractory):   # pragma: no cover (numba)
    """x [n]; coef [5, 4, C] = (b0, b1, b2, a1, a2) per section and channel. Returns a uint8 raster [n, C].

    Channels are the inner loop over 1-D rows and the LIF update is branch-free, so everything but a general
    power vectorises across channels (SIMD). compression == 0.25 uses sqrt(sqrt(r)) (vectorised, ~2.5x faster
    than r ** c, which numba cannot vectorise without SVML)."""
    n_ch = coef.shape[2]
    z1 = np.zeros((4, n_ch))
    z2 = np.zeros((4, n_ch))
    y = np.empty(n_ch)
    drive = np.empty(n_ch)
    v = np.zeros(n_ch)
    wait = np.zeros(n_ch, dtype=np.int64)      # > 0: refractory for that many more samples
    raster = np.zeros((x.shape[0], n_ch), dtype=np.uint8)
    quarter = compression == 0.25
    for t in range(x.shape[0]):
        xt = x[t]
        for c in range(n_ch):
            y[c] = xt
        for s in range(4):                 # transposed direct form II, section s of every channel
            b0, b1, b2, a1, a2 = coef[0, s], coef[1, s], coef[2, s], coef[3, s], coef[4, s]
            s1, s2 = z1[s], z2[s]
            for c in range(n_ch):
                yc = y[c]
                out = b0[c] * yc + s1[c]
                s1[c] = b1[c] * yc - a1[c] * out + s2[c]
                s2[c] = b2[c] * yc - a2[c] * out
                y[c] = out
        if quarter:                        # half-wave rectification and compression
            for c in range(n_ch):
                drive[c] = gain * np.sqrt(np.sqrt(max(y[c], 0.0)))
        else:
            for c in range(n_ch):
                drive[c] = gain * max(y[c], 0.0) ** compression
        row = raster[t]
        for c in range(n_ch):              # LIF; v held at 0 while refractory
            vn = decay * v[c] + (1.0 - decay) * drive[c]
            vn = vn if wait[c] <= 0 else 0.0
            spike = vn >= threshold
            row[c] = spike
            v[c] = 0.0 if spike else vn
            wait[c] = refractory if spike else max(wait[c] - 1, 0)
    return raster


# ------------------------------------------------------------------------------------------ signal -> spikes

def read_wav(path):
    """(signal float64 in [-1, 1], mono, sample rate [Hz]); an unreadable file is a one-line ValueError."""
    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable WAV file ({err})") from None
    data = np.asarray(data)
    if data.dtype.kind == "i":
        data = data / float(2 ** (8 * data.dtype.itemsize - 1))
    elif data.dtype.kind == "u":
        data = (data.astype(np.float64) - 128.0) / 128.0
    data = data.astype(np.float64)
    return (data.mean(axis=1) if data.ndim == 2 else data), int(rate)


def prepare_signal(signal, rate_hz: int, front_end: FrontEnd) -> np.ndarray:
    """Resample to front_end.sample_rate_hz and scale to RMS front_end.rms (a silent clip stays silent)."""
    signal = np.asarray(signal, dtype=np.float64)
    if rate_hz != front_end.sample_rate_hz:
        g = math.gcd(int(rate_hz), front_end.sample_rate_hz)
        signal = resample_poly(signal, front_end.sample_rate_hz // g, int(rate_hz) // g)
    rms = np.sqrt(np.mean(signal ** 2)) if len(signal) else 0.0
    return signal * (front_end.rms / rms) if rms > 0 else signal


_SOS_CACHE: dict = {}


def _coefficients(front_end: FrontEnd) -> np.ndarray:
    key = (front_end.n_channels, front_end.f_low_hz, front_end.f_high_hz, front_end.sample_rate_hz)
    if key not in _SOS_CACHE:
        sos = gammatone_sos(erb_space(*key[:3]), key[3])                  # [C, 4, 6]
        coef = np.stack([sos[:, :, 0], sos[:, :, 1], sos[:, :, 2], sos[:, :, 4], sos[:, :, 5]])   # a0 == 1
        _SOS_CACHE[key] = np.ascontiguousarray(coef.transpose(0, 2, 1))   # [5, 4, C]
    return _SOS_CACHE[key]


def cochlea_spikes(signal, rate_hz: int, front_end: FrontEnd = FrontEnd()):
    """(times_ms, channels) of a clip, sorted by time; times are sample times of the resampled signal."""
    x = prepare_signal(signal, rate_hz, front_end)
    fs = front_end.sample_rate_hz
    decay = math.exp(-1000.0 / (fs * front_end.tau_mem_ms))
    refractory = int(round(front_end.refractory_ms * fs / 1000.0))
    raster = _cochlea_kernel(x, _coefficients(front_end), front_end.gain, front_end.compression, decay,
                             front_end.threshold, refractory)
    samples, channels = np.nonzero(raster)
    return samples * (1000.0 / fs), channels.astype(np.int64)


def audio_file_spikes(path, front_end: FrontEnd = FrontEnd()):
    """(times_ms, channels) of a WAV file."""
    signal, rate = read_wav(path)
    return cochlea_spikes(signal, rate, front_end)


# ------------------------------------------------------------------------------------------ sources and files

def _folder_sources(src: Path):
    classes = sorted(p.name for p in src.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{src}: no class sub-folders (expected <src>/<class>/*.wav or a CSV manifest)")
    entries = [(wav, label, 0) for label, name in enumerate(classes) for wav in sorted((src / name).rglob("*.wav"))]
    return entries, classes


def _csv_sources(src: Path):
    with open(src, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "path" not in rows[0] or "label" not in rows[0]:
        raise ValueError(f"{src}: a manifest needs a header 'path,label[,speaker]' and at least one row")
    labels = [row["label"].strip() for row in rows]
    if all(label.lstrip("-").isdigit() for label in labels):
        ids = [int(label) for label in labels]
        if min(ids) < 0:
            raise ValueError(f"{src}: labels must be >= 0")
        classes = [str(i) for i in range(max(ids) + 1)]
    else:
        classes = sorted(set(labels))
        ids = [classes.index(label) for label in labels]
    entries = []
    for line, (row, label) in enumerate(zip(rows, ids), start=2):
        speaker = row.get("speaker") or "0"
        if not speaker.strip().isdigit():
            raise ValueError(f"{src}: line {line}: speaker '{speaker}' is not an integer >= 0")
        path = Path(row["path"].strip())
        entries.append((path if path.is_absolute() else src.parent / path, label, int(speaker)))
    return entries, classes


def collect_sources(src):
    """([(wav path, label, speaker)], class names) from a class-folder tree or a CSV manifest."""
    src = Path(src)
    if src.is_dir():
        entries, classes = _folder_sources(src)
    elif src.is_file() and src.suffix.lower() == ".csv":
        entries, classes = _csv_sources(src)
    else:
        raise ValueError(f"{src}: neither a folder of class sub-folders nor a .csv manifest")
    if not entries:
        raise ValueError(f"{src}: no WAV files found")
    return entries, classes


def encode_to_hsd(src, out_path, front_end: FrontEnd = FrontEnd(), class_names=None) -> dict:
    """Encode every clip of SRC and write an SHD-format file; returns timing numbers for the report:
    {'clips', 'audio_s', 'compute_s', 'realtime_factor', 'spikes'}."""
    entries, classes = collect_sources(src) if not isinstance(src, list) else (src, class_names)
    samples, audio_s, start = [], 0.0, time.perf_counter()
    bar = ProgressBar(f"encoding {Path(out_path).name}", len(entries), unit="clips")    # draws only on a TTY
    try:
        for path, _, _ in entries:
            signal, rate = read_wav(path)
            audio_s += len(signal) / rate
            samples.append(cochlea_spikes(signal, rate, front_end))
            bar.update(1)
    finally:
        bar.close()
    compute_s = time.perf_counter() - start
    write_hsd_file(out_path, samples, [e[1] for e in entries], [e[2] for e in entries], classes,
                   front_end.n_channels)
    stats = {"clips": len(entries), "audio_s": audio_s, "compute_s": compute_s,
             "realtime_factor": audio_s / compute_s if compute_s > 0 else float("inf"),
             "spikes": int(sum(len(s[0]) for s in samples))}
    log.info("%s: %d clips, %.1f s of audio encoded in %.1f s (%.1fx real time), %d spikes", out_path,
             stats["clips"], audio_s, compute_s, stats["realtime_factor"], stats["spikes"])
    return stats


def plot_raster(times_ms, channels, png_path, title: str = "", n_channels: int | None = None) -> None:
    """Write a spike raster (time [ms] vs channel) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.scatter(times_ms, channels, s=0.5, c="k", marker=".", linewidths=0)
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("channel")
    if n_channels:
        ax.set_ylim(-0.5, n_channels - 0.5)
    ax.set_title(title or f"{len(times_ms)} spikes")
    fig.tight_layout()
    from ..model.io import atomic_write
    atomic_write(png_path, lambda handle: fig.savefig(handle, format=Path(png_path).suffix.lstrip(".") or "png"))
    plt.close(fig)


def main(argv=None) -> int:
    """python -m evprop.data.audio SRC OUT.h5 [--channels N] [--raster PNG]"""
    parser = argparse.ArgumentParser(prog="python -m evprop.data.audio", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="folder with one sub-folder per class, or a CSV manifest path,label[,speaker]")
    parser.add_argument("out", help="SHD-format HDF5 file to write")
    parser.add_argument("--channels", type=int, default=700)
    parser.add_argument("--raster", help="also write a PNG raster of the first clip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        front_end = FrontEnd(n_channels=args.channels)
        encode_to_hsd(args.src, args.out, front_end)
        if args.raster:
            entries, _ = collect_sources(args.src)
            times, channels = audio_file_spikes(entries[0][0], front_end)
            plot_raster(times, channels, args.raster, Path(entries[0][0]).name, front_end.n_channels)
    except ValueError as err:
        print(f"evprop audio: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
