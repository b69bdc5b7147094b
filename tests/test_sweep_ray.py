"""evprop sweep on a Ray cluster: a local Ray head started by the test, the same jobs and sweep.json as the
multiprocessing path (training is deterministic per seed, so the accuracies are identical)."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evprop.pipeline.config import ConfigError
from evprop.pipeline.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
RAY = importlib.util.find_spec("ray") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head():
    """`ray start --head --block` on 127.0.0.1 in its own session with its own temp dir and ports; yields the GCS
    address. Torn down by SIGTERM to that process (its Node kills the raylet, GCS and workers), then SIGKILL to its
    process group if it lingers, whatever the test did."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")          # short: Ray's unix sockets live below it
    ray_exe = Path(sys.executable).with_name("ray")
    command = [str(ray_exe), "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=2",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", f"--port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}"]
    # The driver (this process) read RAY_AUTH_MODE when ray was first imported and, given an explicit address, does
    # not switch token auth on by itself: the head must match it, whatever ~/.ray/auth_token holds.
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE") or "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(Path(temp) / "ray-start.log", "w")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        address_file, deadline = Path(temp) / "ray_current_cluster", time.monotonic() + 60
        while not (address_file.is_file() and address_file.read_text().strip()):
            if head.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("ray start failed:\n" + (Path(temp) / "ray-start.log").read_text()[-3000:])
            time.sleep(0.2)
        yield address_file.read_text().strip()
    finally:
        import ray
        if ray.is_initialized():
            ray.shutdown()
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:           # the group of the session started above: stragglers only
            head.poll()                              # reap the leader: a zombie would keep the group alive
            try:
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _small_config(folder: Path) -> Path:
    config = folder / "small.toml"
    config.write_text((ROOT / "configs" / "default.toml").read_text().replace("train_size = 5000", "train_size = 80")
                      .replace("validation_size = 1000", "validation_size = 20")
                      .replace("test_size = 1000", "test_size = 30").replace("epochs = 40", "epochs = 1"))
    return config


def test_ray_missing_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)               # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[ray\]'") as err:
        run_sweep(_small_config(tmp_path), ["network.hidden=6"], 1, tmp_path / "sweep", ray_address="local")
    assert "\n" not in str(err.value) and not (tmp_path / "sweep").exists()


@pytest.mark.skipif(not RAY, reason="ray is not installed (optional extra: pip install -e '.[ray]')")
def test_unreachable_address_fails_fast(tmp_path):
    port = _free_port()                                         # nobody listens there
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=f"--ray 127.0.0.1:{port}: no Ray cluster reachable"):
        run_sweep(_small_config(tmp_path), ["network.hidden=6"], 1, tmp_path / "sweep",
                  ray_address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10


@pytest.mark.slow
@pytest.mark.skipif(not RAY, reason="ray is not installed (optional extra: pip install -e '.[ray]')")
def test_sweep_on_ray_matches_processes(tmp_path, monkeypatch, ray_head):
    monkeypatch.chdir(tmp_path)                                 # relative paths: workers run in the driver's cwd
    config = _small_config(tmp_path)
    grid = ["network.hidden=6,8"]
    on_ray = run_sweep(Path("small.toml"), grid, 2, Path("ray"), ray_address=ray_head)
    local = run_sweep(Path("small.toml"), grid, 2, Path("processes"), jobs=2)
    written = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert written == json.loads(json.dumps(on_ray)) and config.is_file()

    def comparable(summary):
        runs = [{k: v for k, v in run.items() if k not in ("train_s", "run_dir")} for run in summary["runs"]]
        return {**summary, "runs": runs}

    assert len(on_ray["runs"]) == 4 and comparable(on_ray) == comparable(local)      # identical accuracies
    assert [r["run_dir"] for r in on_ray["runs"]] == [r["run_dir"].replace("processes", "ray", 1)
                                                      for r in local["runs"]]
    assert (tmp_path / "ray" / "network-hidden_8" / "seed1" / "checkpoint.npz").is_file()
