"""Spoken digits offline: digits 0-9 in English and German (20 classes, SHD's vocabulary) synthesised with
espeak-ng and encoded by the cochlear front end (audio.py) into SHD-format files.

Labels: 0-9 English "zero".."nine", 10-19 German "null".."neun" (the order of SHD's labels is not verified here).
A speaker is an espeak-ng voice variant (+m1 .. +f5), used for both languages; every (rate, pitch) pair is one
more utterance of that speaker. The split is speaker-disjoint: the `test_speakers` variants only in the test file
(SHD similarly holds out whole speakers). Synthetic speech from one rule-based engine varies far less than real
speakers; treat accuracies on it as a smoke test, not as SHD numbers.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from .audio import FrontEnd, audio_file_spikes
from .hsd import write_hsd_file

log = logging.getLogger(__name__)

ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
WORDS = tuple(("en-us", w) for w in ENGLISH) + tuple(("de", w) for w in GERMAN)
CLASS_NAMES = tuple(f"{lang}-{word}" for lang, word in WORDS)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
RATES = (130, 160, 190)          # words per minute (espeak-ng -s)
PITCHES = (35, 50, 65)           # 0..99 (espeak-ng -p)
INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"


def espeak_binary() -> str:
    """Path of espeak-ng; a RuntimeError saying how to install it when absent."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(f"espeak-ng not found on PATH; {INSTALL_HINT}")
    return path


def synthesise(word: str, voice: str, rate: int, pitch: int, out_wav, binary: str | None = None) -> Path:
    """espeak-ng -v <voice> -s <rate> -p <pitch> -w <out_wav> "<word>"; failures are a RuntimeError."""
    cmd = [binary or espeak_binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(out_wav), word]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeError(f"espeak-ng failed for '{word}' with voice {voice}: {err}") from None
    if result.returncode != 0 or not Path(out_wav).is_file():
        raise RuntimeError(f"espeak-ng failed for '{word}' with voice {voice} (exit {result.returncode}): "
                           f"{result.stderr.strip()[:200]}")
    return Path(out_wav)


def utterances(variants=VARIANTS, rates=RATES, pitches=PITCHES):
    """[(speaker index, voice, word, label, rate, pitch)] for every variant x word x rate x pitch."""
    out = []
    for speaker, variant in enumerate(variants):
        for label, (lang, word) in enumerate(WORDS):
            for rate in rates:
                for pitch in pitches:
                    out.append((speaker, f"{lang}+{variant}", word, label, rate, pitch))
    return out


def make_spoken_digits(out_dir, test_speakers=("m3", "f2"), variants=VARIANTS, rates=RATES, pitches=PITCHES,
                       front_end: FrontEnd = FrontEnd()) -> dict:
    """Synthesise and encode; writes <out_dir>/digits_train.h5 and digits_test.h5 (SHD format).

    Returns {'train': path, 'test': path, 'clips': n}. Speaker ids in the files index `variants`.
    """
    missing = set(test_speakers) - set(variants)
    if missing or len(set(test_speakers)) >= len(set(variants)):
        raise ValueError(f"test_speakers {list(test_speakers)} must be a proper subset of variants {list(variants)}")
    binary = espeak_binary()
    out_dir = Path(out_dir)
    split = {"train": ([], [], []), "test": ([], [], [])}
    todo = utterances(variants, rates, pitches)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (speaker, voice, word, label, rate, pitch) in enumerate(todo):
            wav = synthesise(word, voice, rate, pitch, Path(tmp) / f"{i}.wav", binary)
            samples, labels, speakers = split["test" if variants[speaker] in test_speakers else "train"]
            samples.append(audio_file_spikes(wav, front_end))
            labels.append(label)
            speakers.append(speaker)
            wav.unlink()
    paths = {}
    for name, (samples, labels, speakers) in split.items():
        paths[name] = out_dir / f"digits_{name}.h5"
        write_hsd_file(paths[name], samples, labels, speakers, CLASS_NAMES, front_end.n_channels)
    log.info("spoken digits: %d clips -> %s, %s", len(todo), paths["train"], paths["test"])
    return {**paths, "clips": len(todo)}
