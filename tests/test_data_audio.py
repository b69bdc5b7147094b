"""Cochlear front end: filter bank, tone selectivity, speed, SHD-format output, sources, raster."""

import warnings

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import gammatone, lfilter, sosfilt

from evprop.data.audio import (FrontEnd, cochlea_spikes, collect_sources, encode_to_hsd, erb_space,
                               gammatone_sos, main, plot_raster, read_wav)
from evprop.data.hsd import read_hsd_events

FS = 16000


def tone(freq_hz, seconds=0.5, fs=FS, amplitude=0.5):
    t = np.arange(int(seconds * fs)) / fs
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def test_erb_space_and_gammatone_sections():
    cf = erb_space(700, 50.0, 7200.0)
    assert cf[0] == pytest.approx(50.0) and cf[-1] == pytest.approx(7200.0) and np.all(np.diff(cf) > 0)
    for f in (100.0, 1000.0, 6000.0):
        sos = gammatone_sos([f], FS)[0]
        steady = sosfilt(sos, tone(f, 1.0, amplitude=1.0))[FS // 2:]
        assert np.max(np.abs(steady)) == pytest.approx(1.0, abs=1e-3)          # scipy normalises cf gain to 1
        if f >= 1000.0:       # scipy's own 8th-order (b, a) is inaccurate at low cf, where it cannot be the reference
            b, a = gammatone(f, "iir", fs=FS)
            impulse = np.zeros(2000)
            impulse[0] = 1
            ours, theirs = sosfilt(sos, impulse), lfilter(b, a, impulse)
            assert np.max(np.abs(ours - theirs)) < 1e-6 * np.max(np.abs(theirs))


def test_tone_drives_the_channels_near_its_frequency():
    fe = FrontEnd(n_channels=64)
    cf = erb_space(64, fe.f_low_hz, fe.f_high_hz)
    for freq in (300.0, 2000.0):
        times, channels = cochlea_spikes(tone(freq), FS, fe)
        counts = np.bincount(channels, minlength=64)
        best = int(np.argmin(np.abs(cf - freq)))
        assert abs(int(np.argmax(counts)) - best) <= 2 and counts.sum() > 50
        assert counts[np.abs(np.arange(64) - best) > 10].sum() < 0.05 * counts.sum()
        assert np.all(np.diff(times) >= 0) and times.max() < 500.0
    assert len(cochlea_spikes(np.zeros(8000), FS, fe)[0]) == 0


def write_wav(path, signal, fs=22050):
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, fs, (signal * 32767).astype(np.int16))


def test_encode_class_folders_to_shd_file(tmp_path):
    for label, freq in (("high", 3000.0), ("low", 400.0)):
        for k in range(2):
            write_wav(tmp_path / "src" / label / f"{k}.wav", tone(freq * (1 + 0.05 * k), 0.3, fs=22050))
    fe = FrontEnd(n_channels=48)
    stats = encode_to_hsd(tmp_path / "src", tmp_path / "out.h5", fe)
    assert stats["clips"] == 4 and stats["audio_s"] == pytest.approx(1.2, abs=0.01) and stats["spikes"] > 0
    back = read_hsd_events(tmp_path / "out.h5")
    assert back.class_names == ("high", "low") and back.labels.tolist() == [0, 0, 1, 1]
    assert back.n_channels == 48
    mean_channel = [np.mean(c) for c in back.channels]
    assert min(mean_channel[:2]) > max(mean_channel[2:]) + 10                   # high tones on high channels
    signal, rate = read_wav(tmp_path / "src" / "low" / "0.wav")
    times, _ = cochlea_spikes(signal, rate, fe)
    assert len(times) == len(back.times_ms[2])


def test_csv_manifest_and_errors(tmp_path):
    write_wav(tmp_path / "a.wav", tone(500.0, 0.2, fs=22050))
    write_wav(tmp_path / "b.wav", tone(900.0, 0.2, fs=22050))
    (tmp_path / "m.csv").write_text("path,label,speaker\na.wav,yes,3\nb.wav,no,4\n")
    entries, classes = collect_sources(tmp_path / "m.csv")
    assert classes == ["no", "yes"] and [(e[1], e[2]) for e in entries] == [(1, 3), (0, 4)]
    assert entries[0][0] == tmp_path / "a.wav"
    (tmp_path / "names.csv").write_text("path,label,speaker\na.wav,yes,george\nb.wav,no,lucas\n")
    assert [e[2] for e in collect_sources(tmp_path / "names.csv")[0]] == [0, 1]
    (tmp_path / "n.csv").write_text("path,label\na.wav,2\nb.wav,0\n")
    entries, classes = collect_sources(tmp_path / "n.csv")
    assert classes == ["0", "1", "2"] and [e[1] for e in entries] == [2, 0]
    (tmp_path / "bad.csv").write_text("file,class\na.wav,1\n")
    with pytest.raises(ValueError, match="bad.csv: line 1: header .* must name the columns 'path' and 'label'"):
        collect_sources(tmp_path / "bad.csv")
    (tmp_path / "spk.csv").write_text("path,label,speaker\na.wav,1,x\nb.wav,1,4\n")
    with pytest.raises(ValueError, match="spk.csv: line 3: speaker '4' is an integer but other speakers are names"):
        collect_sources(tmp_path / "spk.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no <class>/\\*.wav files"):
        collect_sources(tmp_path / "empty")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="junk.wav: not a readable WAV file"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_wav(tmp_path / "junk.wav")
    with pytest.raises(ValueError, match="f_high_hz .* < sample_rate_hz / 2"):
        FrontEnd(f_high_hz=9000.0)


def test_cli_writes_file_and_raster(tmp_path, capsys):
    write_wav(tmp_path / "src" / "x" / "0.wav", tone(700.0, 0.2, fs=22050))
    assert main([str(tmp_path / "src"), str(tmp_path / "o.h5"), "--channels", "32",
                 "--raster", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "o.h5").is_file() and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert main([str(tmp_path / "nothing"), str(tmp_path / "o2.h5")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    plot_raster(np.array([1.0, 2.0]), np.array([0, 3]), tmp_path / "p.png", n_channels=4)
    assert (tmp_path / "p.png").stat().st_size > 1000
