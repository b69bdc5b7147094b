"""Stage orchestration: train -> quantise -> export NIR -> verify in Lava -> report.

Each stage reads what it needs from the run directory and writes its own files there (docs/architecture.md §1), so the
CLI can run them one by one and `run_pipeline` runs them all:

    runs/<name>/config.toml, checkpoint.npz, history.jsonl, fixed_point.npz, model.nir, verify.json,
                report.json, report.html

No failing stage changes an existing run. Every stage reads and checks its inputs before it writes anything, and
replaces its output files as one set (`atomic_write_all`: all written and fsync'd under temporary names, then
renamed). A new run (`train`, `run`) into a folder that already holds one is made in `<run>/.partial` and moved
over the old run only when it is complete, like a checkpoint saved beside the last good one: a failure or a kill
keeps the old run, and a killed training continues with `evprop train --resume <run>`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from ..fixed_point.calibrate import state_bounds
from ..fixed_point.emulator import emulate, readout_accuracy
from ..fixed_point.finetune import finetune, finetune_settings, fixed_point_accuracy
from ..fixed_point.quantise import add_headroom, quantise
from ..fixed_point.scale_search import search_percentiles
from ..fixed_point.spec import fixed_point_to_arrays, load_fixed_point
from ..hw_sim.lava_sim import require_lava
from ..model.io import atomic_write, atomic_write_all, fsync_dir, load_network, network_to_arrays, npz_writer
from ..train.trainer import TrainSettings, best_epoch, evaluate, load_checkpoint, load_resume, train
from .build import initial_network, load_splits, n_classes
from .config import dump_toml, load_config
from .measure import EnergyMeter, host_info
from .progress import terminal_bar
from .reference import reference_linear
from .report import html_report
from .targets import FORMATS, RUNTIMES

log = logging.getLogger("evprop")


def json_writer(data: dict):
    """write(file_object) for `atomic_write`: `data` as indented JSON."""
    return lambda handle: handle.write(json.dumps(data, indent=2).encode())


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json_writer(data))


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found (run the earlier stages first)")
    return json.loads(path.read_text())


def run_config(run_dir: Path) -> dict:
    """The resolved configuration a run was made with."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise ValueError(f"{run_dir}: not an evprop run directory (no config.toml; run `evprop train` first)")
    return load_config(path)


def trained_network(run_dir: Path):
    """The network a run deploys: the quantisation-aware fine-tuned one (finetuned.npz) when the quantise stage
    made one, else the best-validation network of training."""
    finetuned = Path(run_dir) / "finetuned.npz"
    if finetuned.is_file():
        return load_network(finetuned)
    return load_checkpoint(Path(run_dir) / "checkpoint.npz")["best"]


# ---- stages ----

TRAIN_FILES = ("config.toml", "checkpoint.npz", "history.jsonl", "train.json")
LATER_STAGE_FILES = ("finetuned.npz", "fixed_point.npz", "quantise.json", "model.nir", "model.onnx", "verify.json",
                     "gate.json", "report.json", "report.html")
RUN_FILES = TRAIN_FILES + LATER_STAGE_FILES
NETX_FILES = ("model.net", "verify_netx.json", "gate_netx.json")     # evprop export --format netx, verify --runtime netx
WORKSPACE = ".partial"          # a new run made inside a folder that holds an old one, until it is complete


def holds_run(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


def start_run(config: dict, run_dir: Path, splits: dict):
    """Check the network `config` builds from `splits`, then open the folder a new run is made in: `run_dir`
    itself while it holds no run, else the emptied `run_dir/.partial`; writes config.toml there. Returns
    (work folder, initial NetworkSpec). Nothing is written when the check fails."""
    run_dir = Path(run_dir)
    spec = initial_network(config, splits["train"].n_channels, n_classes(splits))
    TrainSettings.from_config(config["train"])
    shutil.rmtree(run_dir / WORKSPACE, ignore_errors=True)     # an unfinished earlier attempt, now superseded
    work = run_dir / WORKSPACE if holds_run(run_dir) else run_dir
    atomic_write(work / "config.toml", lambda handle: handle.write(dump_toml(config).encode()))
    return work, spec


def finish_run(work: Path, run_dir: Path, stale=RUN_FILES + NETX_FILES) -> None:
    """Move the files of the complete new run in `work` over the run in `run_dir` and delete the `stale` files
    of the old run that the new one did not make (no-op when the run was made in place)."""
    work, run_dir = Path(work), Path(run_dir)
    if work == run_dir:
        return
    made = sorted(p.name for p in work.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in made:                      # each file complete and fsync'd already (atomic_write_all)
        (work / name).replace(run_dir / name)
    for name in stale:
        if name not in made:
            (run_dir / name).unlink(missing_ok=True)
    fsync_dir(run_dir)
    shutil.rmtree(work)
    log.info("%s: the new run replaced the old one", run_dir)


@contextlib.contextmanager
def kept_on_failure(work: Path, run_dir: Path):
    """Say where an unfinished new run stays when the stages making it fail (a crash keeps its checkpoints, as a
    training script's do; the old run is untouched)."""
    try:
        yield
    except BaseException:
        if Path(work) != Path(run_dir):
            log.warning("%s is unchanged; the unfinished new run stays in %s (`evprop train --resume %s` continues "
                        "it, the next `evprop train` or `run` replaces it)", run_dir, work, run_dir)
        raise


def resume_folder(run_dir: Path) -> Path:
    """The folder a killed training of `run_dir` continues in: its .partial when a new run was being made there,
    else the run directory itself."""
    partial = Path(run_dir) / WORKSPACE
    return partial if (partial / "checkpoint.npz").is_file() else Path(run_dir)


def train_stage(config: dict | None, run_dir: Path, splits: dict | None = None, resume: bool = False) -> dict:
    """Train from scratch (writes config.toml, checkpoint.npz, history.jsonl, train.json; when `run_dir` holds an
    earlier run, the new one is made in run_dir/.partial and replaces it, later stages' files included, only when
    training has finished), or with `resume` continue the run in `run_dir` from its last completed epoch with the
    run's own config.toml. Returns the training summary."""
    run_dir = Path(run_dir)
    if resume:
        work = resume_folder(run_dir)
        config = run_config(work)
        splits = splits or load_splits(config)
        state = load_resume(work)
        spec = initial_network(config, splits["train"].n_channels, n_classes(splits))
        log.info("resuming %s after epoch %d", work, state["meta"]["epoch"] + 1)
    else:
        splits = splits or load_splits(config)
        state = None
        work, spec = start_run(config, run_dir, splits)
    with kept_on_failure(work, run_dir):
        summary = train_in(config, work, splits, spec, state)
    finish_run(work, run_dir, LATER_STAGE_FILES + NETX_FILES)
    return summary


def train_in(config: dict, work: Path, splits: dict, spec, state: dict | None = None) -> dict:
    """Train `spec` (continuing from `state` when resuming) with checkpoints in `work`; writes train.json there."""
    log.info("data: %d train / %d validation / %d test samples, %d channels x %d steps", len(splits["train"]),
             len(splits["validation"]), len(splits["test"]), splits["train"].n_channels, splits["train"].n_steps)
    settings = TrainSettings.from_config(config["train"])
    t0 = time.perf_counter()

    first_epoch = state["meta"]["epoch"] + 1 if state else 0

    def progress(epoch, record):
        elapsed = time.perf_counter() - t0
        eta = elapsed / (epoch + 1 - first_epoch) * (settings.epochs - epoch - 1)
        log.info("epoch %d/%d  loss %.4f  train %.2f%%  validation %.2f%%  hidden spikes/sample %.0f  "
                 "(%.1f s, ETA %.0f s)", epoch + 1, settings.epochs, record["loss"],
                 100 * record["train_accuracy"], 100 * record["validation_accuracy"],
                 record["hidden_spikes_per_sample"], record["seconds"], eta,
                 extra={"event": "epoch", "eta_s": eta, **record})

    bars = {}

    def on_batch(epoch, done, total):
        bar = bars.setdefault(epoch, terminal_bar(f"epoch {epoch + 1}/{settings.epochs}", total))
        bar.update(done - bar.done)
        if done >= total:
            bar.close()

    with EnergyMeter() as meter:
        best, history = train(spec, splits["train"], splits["validation"], settings, work, progress,
                              epoch_augmentation(config), resume=state, on_batch=on_batch)
    max_spikes = config["train"]["max_spikes"]
    float_train = evaluate(best, splits["train"], max_spikes=max_spikes, allow_overflow=True,
                           on_batch=batch_bar("evaluating (train)", len(splits["train"])))
    float_test = evaluate(best, splits["test"], max_spikes=max_spikes, allow_overflow=True,
                          on_batch=batch_bar("evaluating (test)", len(splits["test"])))
    log.info("float: train %.2f%%, test %.2f%%", 100 * float_train["accuracy"], 100 * float_test["accuracy"])
    linear = reference_linear(splits["train"], splits["test"])
    log.info("reference: %s: test %.2f%%", linear["model"], 100 * linear["test"])
    summary = {"train_s": time.perf_counter() - t0, "epochs": len(history),
               "best_epoch": best_epoch(history, settings.selection_metric),
               "best_validation_accuracy": history[best_epoch(history, settings.selection_metric)]
               ["validation_accuracy"],
               "float_train_accuracy": float_train["accuracy"], "float_test_accuracy": float_test["accuracy"],
               "n_test": len(splits["test"]), "float_spikes_per_sample": float_test["spikes_per_sample"],
               "reference_linear": linear, "measured_energy": meter.result(), "hardware": host_info()}
    _write_json(work / "train.json", summary)
    return summary


def evaluate_stage(run_dir: Path, split: str = "test") -> dict:
    """Accuracy, loss and spikes per sample of a run's trained network on one split, in float and, when the run
    has been quantised, in the fixed-point emulator."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    splits = load_splits(config)
    if split not in splits:
        raise ValueError(f"split '{split}' unknown, expected one of {sorted(splits)}")
    data, spec = splits[split], trained_network(run_dir)
    result = evaluate(spec, data, max_spikes=config["train"]["max_spikes"], allow_overflow=True,
                      on_batch=batch_bar(f"evaluating ({split})", len(data)))
    summary = {"split": split, "n_samples": len(data), "float_accuracy": result["accuracy"],
               "float_loss": result["loss"], "float_spikes_per_sample": result["spikes_per_sample"]}
    if (run_dir / "fixed_point.npz").is_file():
        emulated = emulate(load_fixed_point(run_dir / "fixed_point.npz"), data, record_hidden=False)
        summary["fixed_point_accuracy"] = readout_accuracy(spec, emulated, data)
    return summary


def batch_bar(label: str, total: int):
    """on_batch(done, total) callback drawing a terminal progress bar."""
    bar = terminal_bar(label, total)

    def on_batch(done, _total):
        bar.update(done - bar.done)
        if done >= bar.total:
            bar.close()
    return on_batch


def epoch_augmentation(config: dict):
    """augment(train_data, epoch) for the configured augmentations (Nowotny et al. 2025, section 4.4), or None;
    seeded per epoch."""
    from ..data.augment import augment_epoch, transforms_from_config
    transforms = transforms_from_config(config["augment"])
    if not transforms:
        return None

    def augment(data, epoch):
        augmented, counts = augment_epoch(data, transforms, config["train"]["seed"], epoch)
        log.info("epoch %d augmentation: %s", epoch + 1,
                 "; ".join(f"{name}: {c.describe()}" for name, c in counts.items()))
        return augmented
    return augment


def quantise_stage(run_dir: Path, splits: dict | None = None) -> dict:
    """Quantise the trained network (calibrated on training samples); writes fixed_point.npz and quantise.json
    with the fixed-point test accuracy from the emulator. With quantise.finetune_epochs > 0, first fine-tunes the
    network with the forward pass in the target's arithmetic (evprop.fixed_point.finetune), saves it as finetuned.npz (the
    network the later stages deploy) and records the fixed-point accuracy before and after."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    splits = splits or load_splits(config)
    q = config["quantise"]
    spec = load_checkpoint(run_dir / "checkpoint.npz")["best"]      # fine-tuning restarts from training's best
    calibration = splits["train"].subset(np.arange(min(q["calibration_samples"], len(splits["train"]))))
    bounds = state_bounds(spec, calibration)
    options = {"percentile": q["percentile"], "lif_negative_range": q["lif_negative_range"],
               "profile": q["profile"]}
    if q["scale"] == "search":        # per-layer scales minimising the fixed-point loss on training data
        options["percentile"], _, options["round_messages"] = search_percentiles(
            spec, bounds, calibration, q["percentile"], q["lif_negative_range"], profile=q["profile"])
    finetuning = None
    if q["finetune_epochs"] > 0:
        before = fixed_point_accuracy(spec, bounds, options, splits["test"])
        settings = finetune_settings(TrainSettings.from_config(config["train"]), q["finetune_learning_rate"])
        spec, history = finetune(spec, settings, bounds, options, splits["train"], splits["validation"],
                                 q["finetune_epochs"])
        float_after = evaluate(spec, splits["test"], max_spikes=config["train"]["max_spikes"], allow_overflow=True)
        finetuning = {"epochs": q["finetune_epochs"], "fixed_point_test_accuracy_before": before,
                      "float_test_accuracy_after": float_after["accuracy"], "history": history}
    fixed, quant_report = quantise(spec, bounds, **options)
    add_headroom(quant_report, fixed, emulate(fixed, calibration, record_hidden=False))
    emulated = emulate(fixed, splits["test"], record_hidden=False)
    summary = {"fixed_point_test_accuracy": readout_accuracy(spec, emulated, splits["test"]),
               "n_test": len(splits["test"]), "counts": target_counts(emulated), "quantisation": quant_report,
               "finetuning": finetuning}
    if q["profile"] != UNRESTRICTED_PROFILE:      # what the target's restrictions cost
        unrestricted, _ = quantise(spec, bounds, **{**options, "profile": UNRESTRICTED_PROFILE})
        reference = readout_accuracy(spec, emulate(unrestricted, splits["test"], record_hidden=False), splits["test"])
        quant_report["profile_cost"] = {
            "unrestricted_profile": UNRESTRICTED_PROFILE, "unrestricted_fixed_point_test_accuracy": reference,
            "cost_pp": 100 * (reference - summary["fixed_point_test_accuracy"])}
    log.info("fixed point (emulator): test %.2f%%%s", 100 * summary["fixed_point_test_accuracy"],
             f" (before fine-tuning {100 * finetuning['fixed_point_test_accuracy_before']:.2f}%)"
             if finetuning else "")
    files = {run_dir / "fixed_point.npz": npz_writer(fixed_point_to_arrays(fixed)),
             run_dir / "quantise.json": json_writer(summary)}
    if finetuning:
        files[run_dir / "finetuned.npz"] = npz_writer(network_to_arrays(spec))
    atomic_write_all(files, remove=() if finetuning else [run_dir / "finetuned.npz"])
    return summary


UNRESTRICTED_PROFILE = "lava"       # the quantisation profile other profiles are compared with in quantise.json


def export_stage(run_dir: Path, format_name: str = "nir") -> Path:
    """Write the run's network in export format `format_name` (evprop.pipeline.targets.FORMATS; default
    model.nir: the float network plus the fixed-point integers in node metadata). Returns the path."""
    run_dir = Path(run_dir)
    run_config(run_dir)
    target = FORMATS[format_name]
    path = run_dir / target.file_name
    target.write(path, trained_network(run_dir), load_fixed_point(run_dir / "fixed_point.npz"))   # atomic
    return path


def verify_stage(run_dir: Path, samples: int | None = None, timeout_s: float | None = None,
                 splits: dict | None = None, runtime: str = "nir") -> dict:
    """Check that the runtime's file holds the deployed network and fixed_point.npz exactly, run `samples` test
    samples of it in Lava fixed_pt with `runtime` (evprop.pipeline.targets.RUNTIMES; default: the Lava network
    evprop builds from model.nir) and compare every hidden spike and output voltage with the emulator. Writes the
    runtime's summary (verify.json for nir)."""
    result = run_verification(run_dir, samples, timeout_s, splits, runtime)
    _write_json(Path(run_dir) / RUNTIMES[runtime].summary_name, result)
    return {k: v for k, v in result.items() if k != "per_sample"}


def run_verification(run_dir: Path, samples: int | None = None, timeout_s: float | None = None,
                     splits: dict | None = None, runtime: str = "nir") -> dict:
    """The runtime's summary (verify.json for nir; with `per_sample`) for `samples` test samples run in Lava;
    writes nothing."""
    target = RUNTIMES[runtime]
    if samples is not None and samples < 1:
        raise ValueError(f"--samples {samples}: expected at least 1")
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"--timeout {timeout_s}: expected a finite number of seconds > 0")
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    samples = config["verify"]["lava_samples"] if samples is None else samples
    timeout_s = config["verify"]["timeout_s"] if timeout_s is None else timeout_s
    fixed, network = load_fixed_point(run_dir / "fixed_point.npz"), trained_network(run_dir)
    model_path = run_dir / FORMATS[target.reads].file_name
    if not model_path.is_file():
        raise ValueError(f"{model_path}: not found (run `evprop export {run_dir} --format {target.reads}` first)")
    target.check(model_path, network, fixed)               # the file holds what was quantised
    splits = splits or load_splits(config)
    subset = splits["test"].subset(np.arange(min(samples, len(splits["test"]))))
    t0 = time.perf_counter()
    bar = terminal_bar(f"Lava: {len(subset)} samples (timeout {timeout_s:g} s)", int(timeout_s), unit="s")
    with EnergyMeter() as meter:
        lava, equivalence = target.run(model_path, fixed, subset, timeout_s,
                                       lambda elapsed: bar.update(int(elapsed) - bar.done))
    bar.close()
    verify_s = time.perf_counter() - t0
    summary = {"runtime": target.name, **{k: v for k, v in equivalence.items() if k != "per_sample"}}
    summary.update({"lava_test_accuracy": readout_accuracy(network, lava, subset),
                    "verify_s": verify_s, "measured_energy": meter.result()})
    log.info("Lava via %s (%d samples): test %.2f%%, bit-exact with the emulator: %s (%.1f s)", target.name,
             summary["n_samples"], 100 * summary["lava_test_accuracy"], summary["bit_exact"], verify_s)
    return {**summary, "per_sample": equivalence["per_sample"]}


def report_stage(run_dir: Path) -> dict:
    """Assemble report.json and report.html from the stage files of a run, plus a test-set analysis (confusion
    matrices, rasters, spike histograms, parameter distributions, measured host energy of inference); energy
    estimates per evprop.pipeline.energy, schema in evprop.pipeline.report_schema."""
    from .energy import dense_counts, energy_section
    from .measure import host_info, per_inference, software_versions
    from .report import accuracy_section, analyse_run, confusion_matrix, quantisation_section
    from .report_schema import validate_report
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    tr = _read_json(run_dir / "train.json", "training summary")
    qu = _read_json(run_dir / "quantise.json", "quantisation summary")
    ve = _read_json(run_dir / "verify.json", "verification summary")
    history = read_history(run_dir)
    counts = qu["counts"]
    try:
        analysis = analyse_run(run_dir, config)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        log.warning("report: test-set figures left out (%s)", err)
        analysis = None
    report = {
        "name": config["name"],
        "accuracy": {**accuracy_section(tr, qu, ve),
                     **({"reference_linear": tr["reference_linear"]} if "reference_linear" in tr else {})},
        "equivalence": {"emulator_vs_lava": {k: v for k, v in ve.items()
                                             if k not in ("per_sample", "lava_test_accuracy", "verify_s",
                                                          "measured_energy")}},
        "spikes": {"per_layer": {name: {"mean_per_sample": v} for name, v in counts["spikes_per_layer"].items()},
                   "float_per_layer": {name: {"mean_per_sample": v}
                                       for name, v in tr["float_spikes_per_sample"].items()},
                   "synaptic_ops_per_sample": counts["synaptic_ops"],
                   "neuron_updates_per_sample": counts["neuron_updates"]},
        "training": {k: tr[k] for k in ("epochs", "best_epoch", "best_validation_accuracy")},
        "timing": {"train_s": tr["train_s"], "verify_s": ve["verify_s"]},
        "versions": software_versions(),
    }
    dense = dense_counts(analysis.best) if analysis else None
    measured = {"training": per_inference(tr.get("measured_energy"), None, "host during training"),
                "verification": per_inference(ve.get("measured_energy"), ve["n_samples"],
                                              "host running Lava fixed_pt (a CPU simulation of the chip)"),
                **(analysis.measured if analysis else {})}
    report["energy"] = energy_section(counts, dense, measured, dense["neurons"] if dense else None)
    report["quantisation"] = quantisation_section(qu["quantisation"], report["accuracy"], analysis,
                                                  report["spikes"])
    if analysis:
        report["confusion"] = {"labels": list(range(analysis.n_classes)), "rows": "true class",
                               "n_test": len(analysis.labels),
                               "float": confusion_matrix(analysis.labels, analysis.float_predictions,
                                                         analysis.n_classes),
                               "fixed_point": confusion_matrix(analysis.labels, analysis.fixed_predictions,
                                                               analysis.n_classes)}
    report["hardware"] = {"report_host": host_info(),
                          "training_host": tr.get("hardware", "not recorded in train.json")}
    for problem in validate_report(report):
        log.warning("report.json schema: %s", problem)
    html = html_report(run_dir, report, history, analysis, shown_dir=run_home(run_dir))
    atomic_write_all({run_dir / "report.json": json_writer(report),
                      run_dir / "report.html": lambda handle: handle.write(html.encode())})
    return report


def read_history(run_dir: Path) -> list:
    """The per-epoch records of history.jsonl; a missing or broken file is a one-line ValueError."""
    path = Path(run_dir) / "history.jsonl"
    if not path.is_file():
        raise ValueError(f"{path}: training history not found (run `evprop train` first)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line]
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON lines ({err})") from None


def run_home(work: Path) -> Path:
    """The run directory a work folder belongs to (the parent of a .partial)."""
    work = Path(work)
    return work.parent if work.name == WORKSPACE else work


def run_pipeline(config: dict, run_dir: Path) -> dict:
    """Every stage for `config`; returns the report dict. A run already in `run_dir` is replaced only when every
    stage of the new one has succeeded."""
    require_lava("evprop run (its last stage is evprop verify)")      # before any work
    run_dir = Path(run_dir)
    splits = load_splits(config)
    work, spec = start_run(config, run_dir, splits)
    with kept_on_failure(work, run_dir):
        train_in(config, work, splits, spec)
        quantise_stage(work, splits)
        export_stage(work)
        verify_stage(work, splits=splits)
        report = report_stage(work)
    finish_run(work, run_dir)
    return report


def target_counts(emulated) -> dict:
    """Per-inference event counts of the fixed-point target, from the emulator."""
    n_samples = emulated.n_samples
    return {"spikes_per_layer": {name: float(np.sum(c)) / n_samples for name, c in emulated.spike_counts.items()},
            "synaptic_ops": float(np.sum(emulated.synops)) / n_samples,
            "neuron_updates": float(np.sum(emulated.neuron_updates)) / n_samples,
            "active_neuron_updates": float(np.sum(emulated.active_neuron_updates)) / n_samples}


def summary_table(report: dict) -> str:
    acc = report["accuracy"]
    eq = report["equivalence"]["emulator_vs_lava"]
    rows = [("float train accuracy", f"{100 * acc['float']['train']:.2f}%"),
            ("float test accuracy", f"{100 * acc['float']['test']:.2f}%  (n={acc['float']['n_test']})"),
            ("fixed-point test accuracy", f"{100 * acc['fixed_point']['test']:.2f}%  "
                                          f"(n={acc['fixed_point']['n_test']}, emulator)"),
            *([("linear reference (test)", f"{100 * acc['reference_linear']['test']:.2f}%  (logistic regression "
                                            f"on binned input spike counts)")] if "reference_linear" in acc else []),
            ("Lava test accuracy", f"{100 * acc['lava']['test']:.2f}%  (n={acc['lava']['n_samples']})"),
            ("emulator == Lava", f"{eq['bit_exact']}  (spikes identical in {100 * eq['spikes_identical_fraction']:.0f}%"
                                 f", outputs in {100 * eq['outputs_identical_fraction']:.0f}% of samples)"),
            ("synaptic ops / sample", f"{report['spikes']['synaptic_ops_per_sample']:.0f}"),
            ("energy / sample", f"{report['energy']['estimated_uj_per_inference']:.3f} uJ  ESTIMATE "
                                f"({report['energy']['model']})"),
            ("train / verify time", f"{report['timing']['train_s']:.0f} s / {report['timing']['verify_s']:.0f} s")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
