"""`evprop train --resume` after a SIGKILL at a random moment gives the same final weights as an uninterrupted
run (the same seed, the same machine)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evprop.train.trainer import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--set", "data.train_size=400", "--set", "data.validation_size=100", "--set", "data.test_size=100",
            "--set", "network.hidden=40", "--set", "train.epochs=16", "--set", "train.lr_ease_in_start=0.1",
            "--set", "augment.shift=1"]


def evprop(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "evprop.pipeline.cli", "--quiet", *args], cwd=ROOT, **kwargs)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    assert evprop("train", "configs/default.toml", "--out", str(tmp_path / "whole"), *SETTINGS).wait() == 0
    killed = tmp_path / "killed"
    proc = evprop("train", "configs/default.toml", "--out", str(killed), *SETTINGS, start_new_session=True)
    history = killed / "history.jsonl"
    rng = np.random.default_rng(int(time.time()))
    target = int(rng.integers(1, 4))             # kill somewhere after 1-3 completed epochs
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= target \
                and (killed / "checkpoint.npz").exists():
            time.sleep(float(rng.uniform(0.0, 0.05)))         # a random moment inside the next epoch
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "train.json").exists()
    load_checkpoint(killed / "checkpoint.npz")               # complete: written atomically even when killed
    assert evprop("train", "--resume", str(killed)).wait() == 0
    assert not list(killed.glob(".*.tmp"))                   # a temporary file of the killed write is cleaned up
    whole, resumed = load_checkpoint(tmp_path / "whole" / "checkpoint.npz"), load_checkpoint(killed / "checkpoint.npz")
    assert resumed["network"] == whole["network"] and resumed["best"] == whole["best"]
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(16))
    assert [r["loss"] for r in lines] == [json.loads(line)["loss"]
                                          for line in (tmp_path / "whole" / "history.jsonl").read_text().splitlines()]
