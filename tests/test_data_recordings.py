"""Recordings from a manifest: parsing, splits, the encoding cache, sample rates, and the 'audio' / 'hsd' data sets
of the pipeline. Every clip is made here (tones and chirps)."""

import logging

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import chirp

from evprop.data.audio import FrontEnd, active_level, cochlea_spikes, prepare_signal, silent_channels
from evprop.data.hsd import write_hsd_file
from evprop.data.manifest import align, read_manifest, split_by_speakers, split_by_takes, split_random_speakers
from evprop.data.recordings import SplitSettings, cache_file, encode_cached, load_audio_splits
from evprop.pipeline.build import load_splits
from evprop.pipeline.config import ConfigError, load_config

FE = FrontEnd(n_channels=16, f_low_hz=100.0, f_high_hz=3500.0, sample_rate_hz=8000, gain=10.0,
              level_percentile=95.0)


def write_wav(path, signal, fs):
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, fs, (np.clip(signal, -1, 1) * 32767).astype(np.int16))


def clip(kind: int, fs: int, seconds: float = 0.15, variant: int = 0):
    """Class 0: a rising chirp 300 -> 3000 Hz; class 1: a falling one; variants shift the frequencies by 3%."""
    t = np.arange(int(fs * seconds)) / fs
    f0, f1 = (300.0, 3000.0) if kind == 0 else (3000.0, 300.0)
    scale = 1 + 0.03 * variant
    return 0.3 * chirp(t, f0 * scale, seconds, f1 * scale)


def make_set(root, fs=8000, speakers=("anna", "bob", "carl"), takes=2):
    """root/wav/<class>_<speaker>_<take>.wav and root/m.csv with relative paths and names."""
    lines = ["path,label,speaker,take"]
    for s, speaker in enumerate(speakers):
        for label in ("down", "up"):
            for take in range(takes):
                name = f"wav/{label}_{speaker}_{take}.wav"
                write_wav(root / name, clip(label == "down", fs, variant=2 * s + take), fs)
                lines.append(f"{name},{label},{speaker},{take}")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return root / "m.csv"


def test_manifest_names_relative_paths_and_numbering(tmp_path):
    manifest = read_manifest(make_set(tmp_path))
    assert manifest.class_names == ("down", "up") and manifest.speaker_names == ("anna", "bob", "carl")
    assert len(manifest) == 12 and manifest.paths[0] == str(tmp_path / "wav/down_anna_0.wav")
    assert manifest.labels[:4].tolist() == [0, 0, 1, 1] and manifest.speakers.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert manifest.takes[:4].tolist() == [0, 1, 0, 1]
    (tmp_path / "ints.csv").write_text("speaker,path,label\n7,wav/up_anna_0.wav,3\n2,/abs/x.wav,0\n")
    ints = read_manifest(tmp_path / "ints.csv")          # integers keep their value; columns in any order
    assert ints.labels.tolist() == [3, 0] and ints.class_names == ("0", "1", "2", "3")
    assert ints.speakers.tolist() == [7, 2] and ints.paths[1] == "/abs/x.wav" and ints.takes.tolist() == [-1, -1]
    other = read_manifest(tmp_path / "ints.csv")
    folder = tmp_path / "tree"
    for name in ("yes", "no"):
        write_wav(folder / name / "a.wav", clip(0, 8000), 8000)
    tree = read_manifest(folder)
    assert tree.class_names == ("no", "yes") and tree.labels.tolist() == [0, 1]
    assert other.class_names != manifest.class_names


@pytest.mark.parametrize("text, message", [
    ("file,class\na.wav,1\n", r"bad.csv: line 1: header .* must name the columns 'path' and 'label'"),
    ("path,label,speaker\na.wav,1,x\nb.wav\n", r"bad.csv: line 3: 1 fields, expected 3"),
    ("path,label\na.wav,1\n,2\n", r"bad.csv: line 3: empty path"),
    ("path,label,take\na.wav,1,first\n", r"bad.csv: line 2: take 'first' is not an integer"),
    ("path,label\na.wav,one\nb.wav,2\n", r"bad.csv: line 3: label '2' is an integer but other labels are names"),
    ("path,label\n", r"bad.csv: no rows below the header"),
])
def test_bad_manifest_rows_name_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_manifest(tmp_path / "bad.csv")


def test_missing_manifest_and_unknown_test_class(tmp_path):
    with pytest.raises(ValueError, match="nothing.csv: manifest not found"):
        read_manifest(tmp_path / "nothing.csv")
    train = read_manifest(make_set(tmp_path))
    (tmp_path / "t.csv").write_text("path,label,speaker\nwav/up_anna_0.wav,sideways,zoe\n")
    with pytest.raises(ValueError, match=r"t.csv: classes \['sideways'\] do not occur in"):
        align(train, read_manifest(tmp_path / "t.csv"))
    (tmp_path / "t.csv").write_text("path,label,speaker\nwav/up_anna_0.wav,up,zoe\nwav/up_bob_0.wav,up,bob\n")
    test = align(train, read_manifest(tmp_path / "t.csv"))
    assert test.labels.tolist() == [1, 1] and [test.speaker_names[i] for i in test.speakers] == ["zoe", "bob"]


def test_speaker_take_and_random_speaker_splits_are_disjoint(tmp_path):
    manifest = read_manifest(make_set(tmp_path))
    rest, held = split_by_speakers(manifest, ["bob"], "data.test_speakers")
    assert set(manifest.speakers[held]) == {1} and 1 not in set(manifest.speakers[rest])
    assert sorted(np.concatenate([rest, held]).tolist()) == list(range(12))
    rest, held = split_by_takes(manifest, [0], "data.test_takes")
    assert set(manifest.takes[held]) == {0} and set(manifest.takes[rest]) == {1}
    for seed in range(5):
        rest, held = split_random_speakers(manifest.speakers, 3, seed, "validation")
        assert len(held) >= 3 and not set(manifest.speakers[rest]) & set(manifest.speakers[held])
        assert len(set(manifest.speakers[rest])) >= 1
    with pytest.raises(ValueError, match=r"data.test_speakers: speaker 'zoe' does not occur in .*m.csv"):
        split_by_speakers(manifest, ["zoe"], "data.test_speakers")
    with pytest.raises(ValueError, match="both must be non-empty"):
        split_by_speakers(manifest, ["anna", "bob", "carl"], "data.test_speakers")


def test_splits_of_a_manifest(tmp_path):
    path = make_set(tmp_path)
    settings = SplitSettings(test_speakers=("carl",), validation_size=3, validation_split="speakers", seed=1)
    splits = load_audio_splits(path, FE, settings, dt_ms=2.0, n_steps=100, cache_dir=tmp_path / "cache")
    speakers = {name: set(part.speaker_names[i] for i in part.speakers) for name, part in splits.manifests.items()}
    assert speakers["test"] == {"carl"} and len(speakers["validation"]) == 1
    assert not speakers["train"] & speakers["validation"] and "carl" not in speakers["train"] | speakers["validation"]
    assert [len(splits.data[k]) for k in ("train", "validation", "test")] == [4, 4, 4]
    assert splits.data["test"].labels.tolist() == splits.manifests["test"].labels.tolist()
    assert splits.data["train"].n_channels == 16 and splits.data["train"].n_steps == 100
    takes = load_audio_splits(path, FE, SplitSettings(test_takes=(1,), validation_size=2), 2.0, 100,
                              tmp_path / "cache")
    assert set(takes.manifests["test"].takes) == {1} and len(takes.data["test"]) == 6
    assert len(takes.data["validation"]) == 2 and len(takes.data["train"]) == 4


def test_cache_reused_and_a_changed_clip_encoded_again(tmp_path, monkeypatch):
    path = make_set(tmp_path)
    paths = list(read_manifest(path).paths)
    first, stats = encode_cached(paths, FE, tmp_path / "cache")
    assert stats == {"cached": 0, "encoded": 12} and cache_file(tmp_path / "cache", FE).is_file()
    calls = []
    import evprop.data.recordings as recordings
    real = recordings.encode_files
    monkeypatch.setattr(recordings, "encode_files", lambda p, *a: (calls.append(list(p)), real(p, *a))[1])
    again, stats = encode_cached(paths, FE, tmp_path / "cache")
    assert stats == {"cached": 12, "encoded": 0} and calls == []
    for (t0, c0), (t1, c1) in zip(first, again):
        assert np.array_equal(t0, t1) and np.array_equal(c0, c1)
    write_wav(tmp_path / "wav/up_bob_1.wav", clip(1, 8000, variant=7), 8000)        # one clip changes
    changed, stats = encode_cached(paths, FE, tmp_path / "cache")
    assert stats == {"cached": 11, "encoded": 1} and calls == [[str(tmp_path / "wav/up_bob_1.wav")]]
    index = paths.index(str(tmp_path / "wav/up_bob_1.wav"))
    assert not np.array_equal(changed[index][0], first[index][0])
    other = FrontEnd(n_channels=16, f_low_hz=100.0, f_high_hz=3500.0, sample_rate_hz=8000, gain=12.0,
                     level_percentile=95.0)
    _, stats = encode_cached(paths, other, tmp_path / "cache")          # another front end: its own entries
    assert stats["encoded"] == 12 and cache_file(tmp_path / "cache", other) != cache_file(tmp_path / "cache", FE)


def test_8_and_44_1_khz_recordings_give_the_same_picture(tmp_path):
    """The same chirp at 8 kHz and 44.1 kHz: same channels active, similar spike counts (resampled to 8 kHz)."""
    low = cochlea_spikes(clip(0, 8000, 0.3), 8000, FE)
    high = cochlea_spikes(clip(0, 44100, 0.3), 44100, FE)
    count_low, count_high = (np.bincount(s[1], minlength=16) for s in (low, high))
    assert count_low.sum() > 100 and abs(count_low.sum() - count_high.sum()) < 0.1 * count_low.sum()
    assert np.corrcoef(count_low, count_high)[0, 1] > 0.95
    # the rising chirp moves up the channels: mean channel of the last third above that of the first third
    times, channels = high
    assert channels[times > 200].mean() > channels[times < 100].mean() + 4
    assert silent_channels(FE, 8000) == 0
    wide = FrontEnd(n_channels=32, f_low_hz=100.0, f_high_hz=7000.0, sample_rate_hz=16000)
    centres_above = silent_channels(wide, 8000)
    assert 0 < centres_above < 32 and silent_channels(wide, 44100) == 0
    t, c = cochlea_spikes(clip(0, 8000, 0.3), 8000, wide)          # 8 kHz audio: top channels only skirts
    assert np.sum(c >= 32 - centres_above + 2) < 0.02 * len(c)


def test_level_normalisation_ignores_silence_dc_offset_and_clipping():
    fs = 8000
    word = clip(0, fs, 0.2)
    padded = np.concatenate([np.zeros(fs), word, np.zeros(fs)])         # 1 s silence either side
    assert active_level(padded, fs, 95.0) == pytest.approx(active_level(word, fs, 95.0), rel=0.02)
    spikes = [len(cochlea_spikes(x, fs, FE)[0]) for x in (word, 0.05 * word, word + 0.2)]
    assert spikes[0] > 100 and spikes[0] == spikes[1] == spikes[2]        # level and DC offset do not matter
    clipped = np.clip(2 * word, -0.45, 0.45)                              # peaks cut by 25%
    gain_clean = np.std(prepare_signal(word, fs, FE)) / np.std(word)
    gain_clipped = np.std(prepare_signal(clipped, fs, FE)) / np.std(clipped)
    assert gain_clipped == pytest.approx(gain_clean * np.std(word) / np.std(clipped), rel=0.05)
    assert np.max(np.abs(prepare_signal(clipped, fs, FE))) < 1.2 * np.max(np.abs(prepare_signal(word, fs, FE)))
    noise = 1e-5 * np.random.default_rng(0).standard_normal(fs)        # -100 dBFS: silence, no spikes
    assert not prepare_signal(noise, fs, FE).any() and len(cochlea_spikes(noise, fs, FE)[0]) == 0
    assert len(cochlea_spikes(np.zeros(fs), fs, FE)[0]) == 0


def write_config(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


AUDIO_CONFIG = """
[data]
dataset = "audio"
manifest = "{manifest}"
cache_dir = "{cache}"
validation_size = 2
[audio]
n_channels = 16
f_low_hz = 100.0
f_high_hz = 3500.0
sample_rate_hz = 8000
[network]
dt_ms = 2.0
duration_ms = 200.0
"""


def test_audio_and_hsd_datasets_in_the_pipeline(tmp_path):
    manifest = make_set(tmp_path)
    text = AUDIO_CONFIG.format(manifest=manifest, cache=tmp_path / "cache")
    config = load_config(write_config(tmp_path, text), ["data.test_speakers=['anna']"])
    splits = load_splits(config)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [6, 2, 4]
    assert splits["train"].n_channels == 16 and splits["train"].n_steps == 100
    (tmp_path / "test.csv").write_text("path,label,speaker\nwav/up_anna_0.wav,up,anna\nwav/down_bob_0.wav,down,x\n")
    config = load_config(write_config(tmp_path, text), [f"data.test_manifest={tmp_path / 'test.csv'}"])
    splits = load_splits(config)
    assert len(splits["test"]) == 2 and splits["test"].labels.tolist() == [1, 0] and len(splits["train"]) == 10
    with pytest.raises(ConfigError, match="data.test_manifest, data.test_takes each choose the test set"):
        load_config(write_config(tmp_path, text), ["data.test_manifest=x.csv", "data.test_takes=[0]"])
    with pytest.raises(ConfigError, match="key 'data.manifest' must name a CSV manifest"):
        load_config(write_config(tmp_path, text.replace(str(manifest), "")))
    with pytest.raises(ConfigError, match=r"'audio.f_high_hz' \(5000.0\) < 'audio.sample_rate_hz' / 2"):
        load_config(write_config(tmp_path, text), ["audio.f_high_hz=5000.0"])
    samples = [(np.array([1.0, 3.0]), np.array([0, 2])), (np.array([5.0]), np.array([1]))] * 3
    write_hsd_file(tmp_path / "a.h5", samples, [0, 1] * 3, [0, 0, 1, 1, 2, 2], ["x", "y"], 3)
    write_hsd_file(tmp_path / "b.h5", samples[:2], [0, 1], [5, 5], ["x", "y"], 3)
    config = load_config(None, ["data.dataset='hsd'", f"data.train_file='{tmp_path / 'a.h5'}'",
                                f"data.test_file='{tmp_path / 'b.h5'}'", "data.validation_size=2",
                                "data.validation_split='speakers'", "network.duration_ms=10.0", "network.dt_ms=1.0"])
    splits = load_splits(config)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [4, 2, 2]
    assert splits["test"].steps.tolist() == [1, 3, 5] and splits["test"].n_channels == 3
    with pytest.raises(ConfigError, match="'data.train_file' and 'data.test_file' must name SHD-format files"):
        load_config(None, ["data.dataset='hsd'"])


def test_encoding_reports_progress_and_silent_channels(tmp_path, caplog):
    path = make_set(tmp_path, fs=8000, speakers=("a",), takes=1)
    seen = []
    wide = FrontEnd(n_channels=32, f_low_hz=100.0, f_high_hz=7000.0, sample_rate_hz=16000)
    with caplog.at_level(logging.WARNING):
        load_audio_splits(path, wide, SplitSettings(test_fraction=0.5), 2.0, 100, tmp_path / "c",
                          on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert f"{silent_channels(wide, 8000)} of 32 channels" in caplog.text and "stay silent" in caplog.text
