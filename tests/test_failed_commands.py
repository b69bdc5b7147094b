"""No failing command damages a run: a failure of train, quantise, export, verify, report or run leaves every file
of an existing run byte for byte as it was (sha256 of every file before and after), a first stage that fails
leaves no folder behind, and a new run replaces an old one only when it is complete."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import evprop.pipeline.stages as stages
from evprop.pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.toml"
SMALL = ["--set", "data.train_size=60", "--set", "data.validation_size=20", "--set", "data.test_size=20",
         "--set", "train.epochs=1", "--set", "network.hidden=10", "--set", "verify.lava_samples=2",
         "--set", "quantise.calibration_samples=20", "--set", "quantise.finetune_epochs=1"]
MISSING_DATA = ["--set", "data.dataset='shd'", "--set", "data.root='{root}'", "--set", "network.duration_ms=100.0"]


def snapshot(folder: Path) -> dict:
    """{relative path: sha256} of every file below `folder`, hidden ones included."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete small run with every file a run can hold (finetuned.npz, gate.json and model.onnx included)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["--quiet", "run", str(DEFAULT), "--out", str(run), *SMALL]) == 0
    assert main(["--quiet", "verify", str(run)]) == 0
    pytest.importorskip("onnx")
    assert main(["--quiet", "export", str(run), "--format", "onnx"]) == 0
    assert sorted(snapshot(run)) == sorted(stages.RUN_FILES)
    return run


@pytest.fixture
def run(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def fail(name, error=RuntimeError("injected failure")):
    """A patch making evprop.pipeline.stages.<name> raise `error` when called."""
    def patch(monkeypatch):
        def raising(*args, **kwargs):
            raise error
        monkeypatch.setattr(stages, name, raising)
    return patch


def half_written_nir(monkeypatch):
    """nir.write writes half a file, then fails (a full disk)."""
    import evprop.export.nir as nir_export

    def write(handle, graph):
        handle.write(b"\x89HDF\r\n half a file")
        raise OSError("No space left on device")
    monkeypatch.setattr(nir_export.nir, "write", write)


def missing_data(tmp_path):
    return [arg.format(root=tmp_path / "no-such-data") for arg in MISSING_DATA]


# (argv for the run directory `r` and a scratch folder `t`, patch(monkeypatch) that breaks a step, or None)
FAILURES = {
    "train: a data file is missing": (lambda r, t: ["train", str(DEFAULT), "--out", str(r), *SMALL,
                                                    *missing_data(t)], None),
    "train: a config value is not finite": (lambda r, t: ["train", str(DEFAULT), "--out", str(r),
                                                          "--set", "train.learning_rate=inf"], None),
    "quantise: fine-tuning fails": (lambda r, t: ["quantise", str(r)], fail("finetune")),
    "quantise: fails after fine-tuning": (lambda r, t: ["quantise", str(r)], fail("readout_accuracy")),
    "export: the NIR writer fails half-way": (lambda r, t: ["export", str(r)], half_written_nir),
    "verify: --timeout -1": (lambda r, t: ["verify", str(r), "--timeout", "-1"], None),
    "verify: the Lava run fails": (lambda r, t: ["verify", str(r), "--junit", str(t / "verify.xml")],
                                   fail("run_lava")),
    "verify: fails after the Lava run": (lambda r, t: ["verify", str(r)], fail("compare")),
    "report: the HTML page fails": (lambda r, t: ["report", str(r)], fail("html_report")),
    "run: a data file is missing": (lambda r, t: ["run", str(DEFAULT), "--out", str(r), *SMALL,
                                                  *missing_data(t)], None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failing_command_leaves_the_run_byte_identical(name, run, tmp_path, monkeypatch, capsys):
    argv, breaks = FAILURES[name]
    if breaks is not None:
        breaks(monkeypatch)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = snapshot(run)
    assert main(argv(run, scratch)) == 2
    assert snapshot(run) == before
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evprop: error: "), err


@pytest.mark.slow
def test_failed_lava_run_names_itself_in_the_junit_file_only(run, tmp_path, monkeypatch):
    fail("run_lava", TimeoutError("Lava run did not finish within its hard timeout of 1 s"))(monkeypatch)
    gate = (run / "gate.json").read_bytes()
    assert main(["--quiet", "verify", str(run), "--junit", str(tmp_path / "verify.xml")]) == 2
    assert "hard timeout of 1 s" in (tmp_path / "verify.xml").read_text()
    assert (run / "gate.json").read_bytes() == gate


@pytest.mark.slow
def test_report_with_a_broken_history_keeps_both_report_files(run, capsys):
    """The old code rewrote report.json, then failed on history.jsonl and left the old report.html beside it."""
    (run / "history.jsonl").write_text("{not json\n")
    before = snapshot(run)
    assert main(["report", str(run)]) == 2
    assert "history.jsonl: not JSON lines" in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.parametrize("late_stage", ["evaluate", "run_lava"])
def test_new_run_failing_late_keeps_the_old_run_and_the_new_checkpoints(run, tmp_path, monkeypatch, late_stage):
    """`train` failing after its epochs (evaluate), and `run` failing in verification (run_lava): every file of the
    old run is unchanged; what the new run made so far stays in run/.partial, nothing else is added."""
    fail(late_stage)(monkeypatch)
    before = snapshot(run)
    command = "train" if late_stage == "evaluate" else "run"
    assert main(["--quiet", command, str(DEFAULT), "--out", str(run), *SMALL, "--set", "train.seed=7"]) == 2
    after = snapshot(run)
    assert {k: v for k, v in after.items() if not k.startswith(".partial/")} == before
    made = {k.split("/", 1)[1] for k in after if k.startswith(".partial/")}
    assert {"config.toml", "checkpoint.npz", "history.jsonl"} <= made
    assert "seed = 7" in (run / ".partial" / "config.toml").read_text()


@pytest.mark.slow
def test_resumed_new_run_replaces_the_old_one_and_its_later_stage_files(run, monkeypatch):
    fail("evaluate")(monkeypatch)
    assert main(["--quiet", "train", str(DEFAULT), "--out", str(run), *SMALL, "--set", "train.seed=7"]) == 2
    new_checkpoint = (run / ".partial" / "checkpoint.npz").read_bytes()
    monkeypatch.undo()
    assert main(["--quiet", "train", "--resume", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(stages.TRAIN_FILES)     # no stale later-stage file
    assert (run / "checkpoint.npz").read_bytes() == new_checkpoint               # nothing left to train
    assert "seed = 7" in (run / "config.toml").read_text()
    assert json.loads((run / "train.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_retraining_a_finished_run_replaces_every_stage_file(run):
    old = snapshot(run)
    assert main(["--quiet", "train", str(DEFAULT), "--out", str(run), *SMALL, "--set", "train.seed=3"]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(stages.TRAIN_FILES)   # gate.json, model.onnx too
    new = snapshot(run)
    assert all(new[name] != old[name] for name in ("config.toml", "checkpoint.npz", "train.json"))


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("problem", ["missing data", "bad config"])
def test_failed_first_stage_leaves_no_folder(command, problem, tmp_path, capsys):
    run = tmp_path / "runs" / "new"
    extra = missing_data(tmp_path) if problem == "missing data" else ["--set", "network.duration_ms=inf"]
    assert main([command, str(DEFAULT), "--out", str(run), *SMALL, *extra]) == 2
    assert not run.exists() and not (tmp_path / "runs").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evprop: error: ")


def test_quantise_replaces_its_three_files_together(tmp_path, monkeypatch):
    """atomic_write_all: when one writer of the set fails, no file of the set changes and no temporary remains."""
    from evprop.model.io import atomic_write_all
    old = {name: f"old {name}".encode() for name in ("fixed_point.npz", "quantise.json", "finetuned.npz")}
    for name, content in old.items():
        (tmp_path / name).write_bytes(content)

    def broken(handle):
        handle.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        atomic_write_all({tmp_path / "fixed_point.npz": lambda h: h.write(b"new"),
                          tmp_path / "quantise.json": broken}, remove=[tmp_path / "finetuned.npz"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old
    atomic_write_all({tmp_path / "fixed_point.npz": lambda h: h.write(b"new"),
                      tmp_path / "quantise.json": lambda h: h.write(b"{}")}, remove=[tmp_path / "finetuned.npz"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"fixed_point.npz": b"new",
                                                                    "quantise.json": b"{}"}
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}
    assert np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])


@pytest.mark.slow
def test_every_file_of_a_run_is_mode_0644(finished_run):
    """One atomic writer for every file (gate.json was 0600)."""
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in finished_run.iterdir()} == \
        {name: oct(0o644) for name in stages.RUN_FILES}
