"""espeak-ng spoken digits (the synthesis test skips when espeak-ng is absent, fails then under .ci/run)."""

import numpy as np
import pytest

from conftest import require_tool
from evprop.data import spoken_digits
from evprop.data.audio import FrontEnd
from evprop.data.hsd import read_hsd_file
from evprop.data.spoken_digits import CLASS_NAMES, make_spoken_digits, utterances


def test_missing_espeak_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(spoken_digits.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="espeak-ng not found on PATH; install it with `apt-get install espeak-ng`"):
        make_spoken_digits(tmp_path, test_speakers=("f1",), variants=("m1", "f1"))


def test_vocabulary_and_utterance_grid():
    assert len(CLASS_NAMES) == 20 and CLASS_NAMES[0] == "en-us-zero" and CLASS_NAMES[15] == "de-fünf"
    grid = utterances(("m1", "f1"), (150,), (40, 60))
    assert len(grid) == 2 * 20 * 2 and grid[0] == (0, "en-us+m1", "zero", 0, 150, 40)
    with pytest.raises(ValueError, match="proper subset"):
        make_spoken_digits("unused", test_speakers=("m9",), variants=("m1", "f1"))


def test_speaker_disjoint_files(tmp_path):
    require_tool("espeak-ng")
    paths = make_spoken_digits(tmp_path, test_speakers=("f1",), variants=("m1", "f1"), rates=(170,), pitches=(50,),
                               front_end=FrontEnd(n_channels=64))
    train = read_hsd_file(paths["train"], 1.0, 1500)
    test = read_hsd_file(paths["test"], 1.0, 1500)
    assert len(train.spikes) == 20 and len(test.spikes) == 20 and paths["clips"] == 40
    assert set(train.speakers) == {0} and set(test.speakers) == {1}
    assert sorted(train.spikes.labels) == list(range(20)) and train.class_names == CLASS_NAMES
    assert np.all(np.diff(train.spikes.offsets) > 100)                # every word produces spikes
    assert train.counts.dropped_late == 0
