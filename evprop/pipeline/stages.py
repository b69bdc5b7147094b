"""Stage orchestration: train -> quantise -> export NIR -> verify in Lava -> report.

Each stage reads what it needs from the run directory and writes its own files there (DESIGN section 5), so the
CLI can run them one by one and `run_pipeline` runs them all:

    runs/<name>/config.toml, checkpoint.npz, history.jsonl, fixed_point.npz, model.nir, verify.json,
                report.json, report.html
"""

from __future__ import annotations

import json
import logging
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from .. import __version__
from ..export.nir import export_nir
from ..export.quantise import add_headroom, load_fixed_point, quantise, save_fixed_point
from ..hw_sim.emulator import emulate
from ..hw_sim.lava_sim import run_lava
from ..hw_sim.scale_search import search_percentiles
from ..hw_sim.verify import compare, readout_accuracy
from ..model.io import atomic_write, load_network, save_network
from ..train.engine import state_bounds
from ..train.qat import finetune, finetune_settings, fixed_point_accuracy
from ..train.trainer import TrainSettings, best_epoch, evaluate, load_checkpoint, load_resume, train
from .build import initial_network, load_splits, n_classes
from .config import dump_toml, load_config
from .measure import EnergyMeter, host_info
from .progress import terminal_bar
from .reference import reference_linear
from .report import write_html_report

log = logging.getLogger("evprop")


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2).encode()))


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

LATER_STAGE_FILES = ("train.json", "finetuned.npz", "fixed_point.npz", "quantise.json", "model.nir", "verify.json", "report.json",
                     "report.html")


def train_stage(config: dict | None, run_dir: Path, splits: dict | None = None, resume: bool = False) -> dict:
    """Train from scratch (writes config.toml, checkpoint.npz, history.jsonl, train.json; the files of later
    stages of an earlier run in the same folder are removed), or with `resume` continue the run in `run_dir` from
    its last completed epoch with the run's own config.toml. Returns the training summary."""
    run_dir = Path(run_dir)
    state = None
    if resume:
        config = run_config(run_dir)
        state = load_resume(run_dir)
        log.info("resuming %s after epoch %d", run_dir, state["meta"]["epoch"] + 1)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in LATER_STAGE_FILES:
            (run_dir / name).unlink(missing_ok=True)
        atomic_write(run_dir / "config.toml", lambda handle: handle.write(dump_toml(config).encode()))
    splits = splits or load_splits(config)
    log.info("data: %d train / %d validation / %d test samples, %d channels x %d steps", len(splits["train"]),
             len(splits["validation"]), len(splits["test"]), splits["train"].n_channels, splits["train"].n_steps)
    spec = initial_network(config, splits["train"].n_channels, n_classes(splits))
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
        best, history = train(spec, splits["train"], splits["validation"], settings, run_dir, progress,
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
    _write_json(run_dir / "train.json", summary)
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
    """augment(train_data, epoch) for the configured augmentations (000 section 4.4), or None; seeded per epoch."""
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
    network with the forward pass in the target's arithmetic (evprop.train.qat), saves it as finetuned.npz (the
    network the later stages deploy) and records the fixed-point accuracy before and after."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    splits = splits or load_splits(config)
    q = config["quantise"]
    (run_dir / "finetuned.npz").unlink(missing_ok=True)
    spec = trained_network(run_dir)
    calibration = splits["train"].subset(np.arange(min(q["calibration_samples"], len(splits["train"]))))
    bounds = state_bounds(spec, calibration)
    options = {"percentile": q["percentile"], "lif_negative_range": q["lif_negative_range"]}
    if q["scale"] == "search":        # per-layer scales minimising the fixed-point loss on training data
        options["percentile"], _, options["round_messages"] = search_percentiles(
            spec, bounds, calibration, q["percentile"], q["lif_negative_range"])
    finetuning = None
    if q["finetune_epochs"] > 0:
        before = fixed_point_accuracy(spec, bounds, options, splits["test"])
        settings = finetune_settings(TrainSettings.from_config(config["train"]), q["finetune_learning_rate"])
        spec, history = finetune(spec, settings, bounds, options, splits["train"], splits["validation"],
                                 q["finetune_epochs"])
        save_network(run_dir / "finetuned.npz", spec)
        float_after = evaluate(spec, splits["test"], max_spikes=config["train"]["max_spikes"], allow_overflow=True)
        finetuning = {"epochs": q["finetune_epochs"], "fixed_point_test_accuracy_before": before,
                      "float_test_accuracy_after": float_after["accuracy"], "history": history}
    fixed, quant_report = quantise(spec, bounds, **options)
    add_headroom(quant_report, fixed, emulate(fixed, calibration, record_hidden=False))
    save_fixed_point(run_dir / "fixed_point.npz", fixed)
    emulated = emulate(fixed, splits["test"], record_hidden=False)
    summary = {"fixed_point_test_accuracy": readout_accuracy(spec, emulated, splits["test"]),
               "n_test": len(splits["test"]), "counts": target_counts(emulated), "quantisation": quant_report,
               "finetuning": finetuning}
    log.info("fixed point (emulator): test %.2f%%%s", 100 * summary["fixed_point_test_accuracy"],
             f" (before fine-tuning {100 * finetuning['fixed_point_test_accuracy_before']:.2f}%)"
             if finetuning else "")
    _write_json(run_dir / "quantise.json", summary)
    return summary


def export_stage(run_dir: Path) -> Path:
    """Write model.nir: the float network plus the fixed-point integers in node metadata."""
    run_dir = Path(run_dir)
    path = run_dir / "model.nir"
    export_nir(path, trained_network(run_dir), load_fixed_point(run_dir / "fixed_point.npz"))
    return path


def verify_stage(run_dir: Path, samples: int | None = None, timeout_s: float | None = None,
                 splits: dict | None = None) -> dict:
    """Build the Lava network from model.nir, run `samples` test samples in Lava fixed_pt and compare every hidden
    spike and output voltage with the emulator. Writes verify.json."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    splits = splits or load_splits(config)
    samples = config["verify"]["lava_samples"] if samples is None else samples
    timeout_s = config["verify"]["timeout_s"] if timeout_s is None else timeout_s
    if samples < 1:
        raise ValueError(f"--samples {samples}: expected at least 1")
    subset = splits["test"].subset(np.arange(min(samples, len(splits["test"]))))
    t0 = time.perf_counter()
    bar = terminal_bar(f"Lava: {len(subset)} samples (timeout {timeout_s:g} s)", int(timeout_s), unit="s")
    with EnergyMeter() as meter:
        lava = run_lava(run_dir / "model.nir", subset, timeout_s=timeout_s,
                        on_wait=lambda elapsed: bar.update(int(elapsed) - bar.done))
    bar.close()
    verify_s = time.perf_counter() - t0
    equivalence = compare(emulate(load_fixed_point(run_dir / "fixed_point.npz"), subset), lava)
    summary = {k: v for k, v in equivalence.items() if k != "per_sample"}
    summary.update({"lava_test_accuracy": readout_accuracy(trained_network(run_dir), lava, subset),
                    "verify_s": verify_s, "measured_energy": meter.result()})
    log.info("Lava (%d samples): test %.2f%%, bit-exact with the emulator: %s (%.1f s)", summary["n_samples"],
             100 * summary["lava_test_accuracy"], summary["bit_exact"], verify_s)
    _write_json(run_dir / "verify.json", {**summary, "per_sample": equivalence["per_sample"]})
    return summary


def report_stage(run_dir: Path) -> dict:
    """Assemble report.json and report.html from the stage files of a run, plus a test-set analysis (confusion
    matrices, rasters, spike histograms, parameter distributions, measured host energy of inference); energy
    estimates per evprop.pipeline.energy, schema in evprop.pipeline.report_schema."""
    from .energy import dense_counts, energy_section
    from .measure import host_info, per_inference
    from .report import analyse_run, confusion_matrix, quantisation_section
    from .report_schema import validate_report
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    tr = _read_json(run_dir / "train.json", "training summary")
    qu = _read_json(run_dir / "quantise.json", "quantisation summary")
    ve = _read_json(run_dir / "verify.json", "verification summary")
    counts = qu["counts"]
    try:
        analysis = analyse_run(run_dir, config)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        log.warning("report: test-set figures left out (%s)", err)
        analysis = None
    report = {
        "name": config["name"],
        "accuracy": {"float": {"train": tr["float_train_accuracy"], "test": tr["float_test_accuracy"],
                               "n_test": tr["n_test"]},
                     "fixed_point": {"test": qu["fixed_point_test_accuracy"], "n_test": qu["n_test"],
                                     **({"before_finetuning": qu["finetuning"]["fixed_point_test_accuracy_before"],
                                         "float_after_finetuning": qu["finetuning"]["float_test_accuracy_after"]}
                                        if qu.get("finetuning") else {})},
                     "lava": {"test": ve["lava_test_accuracy"], "n_samples": ve["n_samples"]},
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
        "versions": versions(),
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
    _write_json(run_dir / "report.json", report)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line]
    write_html_report(run_dir, report, history, analysis)
    return report


def run_pipeline(config: dict, run_dir: Path) -> dict:
    """Every stage for `config`; returns the report dict."""
    splits = load_splits(config)
    train_stage(config, run_dir, splits)
    quantise_stage(run_dir, splits)
    export_stage(run_dir)
    verify_stage(run_dir, splits=splits)
    return report_stage(run_dir)


def target_counts(emulated) -> dict:
    """Per-inference event counts of the fixed-point target, from the emulator."""
    n_samples = emulated.n_samples
    return {"spikes_per_layer": {name: float(np.sum(c)) / n_samples for name, c in emulated.spike_counts.items()},
            "synaptic_ops": float(np.sum(emulated.synops)) / n_samples,
            "neuron_updates": float(np.sum(emulated.neuron_updates)) / n_samples,
            "active_neuron_updates": float(np.sum(emulated.active_neuron_updates)) / n_samples}


def versions() -> dict:
    import numba
    return {"evprop": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "nir": version("nir"), "lava-nc": version("lava-nc"),
            "platform": platform.platform(), "machine": platform.machine()}


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
