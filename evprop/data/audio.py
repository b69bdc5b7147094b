"""Audio -> spikes: a cochlear front end for recordings, and SHD-format files of it (hsd.write_hsd_file).

Per clip (every choice below is made for real recordings: any sample rate, any level, clipped or offset):
  1. mono (mean of the channels); the DC offset (the clip's mean) is removed, since a recorder's offset is not
     sound and would otherwise bias the level estimate below;
  2. resampled to sample_rate_hz (scipy resample_poly, anti-aliased);
  3. level normalisation to the *active* level: the level_percentile-th percentile (95 for recordings: the
     [audio] default of the pipeline and configs/speech_digits.toml) of the RMS of 10 ms frames is scaled to `rms`.
     (level_percentile = 0, the FrontEnd default, scales the whole clip's RMS instead: the encoding the synthetic
     spoken digits were measured with.) Unlike the clip's overall RMS this does not depend on how much silence
     surrounds the word, and unlike the peak it is not fooled by a click or by clipping (a clipped clip has
     flattened peaks, but its frame RMS barely changes). A clip whose active level lies below silence_dbfs
     (dB re full scale) is silence: it is not amplified and yields no spikes (nothing made from noise);
  4. n_channels ERB-spaced 4th-order gammatone filters (Glasberg & Moore ERB scale, f_low_hz..f_high_hz, low
     frequencies first; scipy.signal.gammatone's IIR design, run as 4 biquads per channel). Channels cover the
     band the recording has only if f_high_hz stays below the recording's Nyquist frequency: a channel centred
     above half the clip's own sample rate receives nothing but the filter skirts (upsampling adds no content).
     `silent_channels` counts them and the encoder logs the count once per sample rate; for telephone-band or
     8 kHz recordings choose f_high_hz <= 3800 Hz and sample_rate_hz = 8000 (configs/speech_digits.toml);
  5. half-wave rectification -> compression r ** compression -> times gain;
  6. one LIF per channel: v <- d v + (1 - d) drive with d = exp(-1 / (fs tau_mem)); spike and reset to 0 when
     v >= threshold; then refractory for refractory_ms (v held at 0).
Steps 4-6 run fused in one numba loop (samples outer, channels inner).

This is not SHD's Lauscher model (hydrodynamic basilar membrane, Meddis hair cell, bushy cells; LGPL, minutes per
clip); spike statistics differ (Cramer et al. 2020, section II-A).

SRC for `encode_to_hsd` is a folder with one sub-folder per class or a CSV manifest (evprop.data.manifest).
Progress is reported through an `on_progress(done, total)` callback (the pipeline draws a bar with it).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numba import njit
from scipy.io import wavfile
from scipy.signal import gammatone, resample_poly, zpk2sos

from .hsd import write_hsd_file
from .manifest import read_manifest

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
    level_percentile: float = 0.0
    silence_dbfs: float = -60.0

    def __post_init__(self):
        if not 0 < self.f_low_hz < self.f_high_hz < self.sample_rate_hz / 2:
            raise ValueError(f"FrontEnd: need 0 < f_low_hz ({self.f_low_hz}) < f_high_hz ({self.f_high_hz}) < "
                             f"sample_rate_hz / 2 ({self.sample_rate_hz / 2})")
        if self.n_channels < 1 or min(self.rms, self.compression, self.gain, self.tau_mem_ms, self.threshold) <= 0 \
                or self.refractory_ms < 0:
            raise ValueError("FrontEnd: n_channels >= 1, rms, compression, gain, tau_mem_ms, threshold > 0 and "
                             "refractory_ms >= 0 are required")
        if not 0 <= self.level_percentile <= 100 or self.silence_dbfs >= 0:
            raise ValueError(f"FrontEnd: need 0 <= level_percentile ({self.level_percentile}) <= 100 and "
                             f"silence_dbfs ({self.silence_dbfs}) < 0")

    def key(self) -> str:
        """Every parameter, as text: what an encoding depends on besides the audio (cache keys)."""
        return "|".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


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


FRAME_MS = 10.0


def active_level(signal, rate_hz: float, percentile: float) -> float:
    """The `percentile`-th percentile of the RMS of consecutive 10 ms frames (the whole clip if shorter); with
    percentile 0 the RMS of the whole clip.

    >>> x = np.concatenate([np.zeros(800), 0.5 * np.ones(200)])     # 100 ms silence, 25 ms at 0.5
    >>> round(active_level(x, 8000, 95.0), 3), round(float(np.sqrt(np.mean(x ** 2))), 3)
    (0.5, 0.224)
    """
    frame = max(int(round(rate_hz * FRAME_MS / 1000.0)), 1)
    n = len(signal) // frame
    if n == 0 or percentile == 0:
        return float(np.sqrt(np.mean(np.square(signal)))) if len(signal) else 0.0
    frames = np.sqrt(np.mean(np.square(signal[:n * frame]).reshape(n, frame), axis=1))
    return float(np.percentile(frames, percentile))


def prepare_signal(signal, rate_hz: int, front_end: FrontEnd) -> np.ndarray:
    """DC removed, resampled to front_end.sample_rate_hz, active level scaled to front_end.rms; a clip whose
    active level lies below front_end.silence_dbfs comes back as zeros (silence stays silent)."""
    signal = np.asarray(signal, dtype=np.float64)
    signal = signal - signal.mean() if len(signal) else signal
    if rate_hz != front_end.sample_rate_hz:
        g = math.gcd(int(rate_hz), front_end.sample_rate_hz)
        signal = resample_poly(signal, front_end.sample_rate_hz // g, int(rate_hz) // g)
    level = active_level(signal, front_end.sample_rate_hz, front_end.level_percentile)
    if level <= 10.0 ** (front_end.silence_dbfs / 20.0):
        return np.zeros_like(signal)
    return signal * (front_end.rms / level)


def silent_channels(front_end: FrontEnd, rate_hz: float) -> int:
    """How many channels are centred above the Nyquist frequency of audio recorded at rate_hz (or of the front
    end's own rate, if lower): they get no signal, only filter skirts.

    >>> silent_channels(FrontEnd(n_channels=700), 8000), silent_channels(FrontEnd(n_channels=700), 16000)
    (120, 0)
    """
    nyquist_hz = 0.5 * min(rate_hz, front_end.sample_rate_hz)
    return int(np.count_nonzero(erb_space(front_end.n_channels, front_end.f_low_hz, front_end.f_high_hz)
                                > nyquist_hz))


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

def collect_sources(src):
    """([(wav path, label, speaker)], class names) of a class-folder tree or a CSV manifest (evprop.data.manifest)."""
    manifest = read_manifest(src)
    entries = [(Path(p), int(label), int(speaker))
               for p, label, speaker in zip(manifest.paths, manifest.labels, manifest.speakers)]
    return entries, list(manifest.class_names)


def log_silent_channels(front_end: FrontEnd, rate_hz: int, seen: set) -> None:
    """Log once per sample rate how many channels lie above that rate's Nyquist frequency."""
    if rate_hz in seen:
        return
    seen.add(rate_hz)
    silent = silent_channels(front_end, rate_hz)
    if silent:
        log.warning("audio at %d Hz has no content above %.0f Hz: %d of %d channels (f_high_hz %.0f Hz) stay "
                    "silent; set f_high_hz below %.0f Hz to spread the channels over the recorded band", rate_hz,
                    rate_hz / 2, silent, front_end.n_channels, front_end.f_high_hz, rate_hz / 2)


def encode_files(paths, front_end: FrontEnd = FrontEnd(), on_progress=None):
    """([(times_ms, channels)] one per file, audio seconds): the spikes of every WAV file; on_progress(done, total)
    after each file."""
    samples, audio_s, seen = [], 0.0, set()
    for done, path in enumerate(paths, start=1):
        signal, rate = read_wav(path)
        log_silent_channels(front_end, rate, seen)
        audio_s += len(signal) / rate
        samples.append(cochlea_spikes(signal, rate, front_end))
        if on_progress is not None:
            on_progress(done, len(paths))
    return samples, audio_s


def encode_to_hsd(src, out_path, front_end: FrontEnd = FrontEnd(), class_names=None, on_progress=None) -> dict:
    """Encode every clip of SRC and write an SHD-format file; returns timing numbers for the report:
    {'clips', 'audio_s', 'compute_s', 'realtime_factor', 'spikes'}."""
    entries, classes = collect_sources(src) if not isinstance(src, list) else (src, class_names)
    start = time.perf_counter()
    samples, audio_s = encode_files([e[0] for e in entries], front_end, on_progress)
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
    parser.add_argument("src", help="folder with one sub-folder per class, or a CSV manifest path,label[,speaker][,take]")
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
