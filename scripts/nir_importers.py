"""Does snnTorch / Norse run `evprop export RUN --format nir --for LIBRARY` as trained? On a trained default run
(configs/default.toml: Yin-Yang, 5 inputs -> 200 recurrent LIF -> 3 LI, dt 0.5 ms, 80 steps), every test sample
goes through evprop's training engine (float64) and through the library's own NIR importer and step (torch
float32, and again with its parameters and state in float64; all samples as one batch); writes
benchmarks/nir_importers.json: hidden spikes compared entry by entry, the largest readout difference, and both test accuracies (95% Wilson intervals) with their agreement.

Needs torch, snntorch 1.0.0, norse 1.1.0, nirtorch 2.6 (the [importers] extra); measured on Python 3.11:

    python3.11 -m venv /tmp/imp && /tmp/imp/bin/pip install -e '.[test,importers]'
    /tmp/imp/bin/python scripts/nir_importers.py [--run runs/nir_importers]

(trains the default config into --run first if it holds no checkpoint: a few minutes on 2 cores)
"""

import argparse
import json
import logging
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "snntorch", "norse", "nirtorch", "nir", "numpy")


def accuracy(spec, v_out, labels) -> dict:
    from evprop.pipeline.stats import wilson_interval
    predicted = spec.scores(v_out).argmax(axis=1)
    correct = int(np.sum(predicted == labels))
    return {"accuracy": correct / len(labels), "ci95": list(wilson_interval(correct, len(labels))),
            "predicted": predicted}


def measure(run: Path, target: str, float64: bool, spec, data, spikes_ev: dict, v_ev: np.ndarray) -> dict:
    from evprop.export.nir_targets import export_nir_for, run_imported
    path = run / f"model.{target}.nir"
    export_nir_for(path, spec, target)
    rasters = np.stack([data.dense(i) for i in range(len(data.labels))])
    t0 = time.perf_counter()
    spikes, v = run_imported(path, rasters, float64=float64)
    seconds = time.perf_counter() - t0
    acc_ev, acc = accuracy(spec, v_ev, data.labels), accuracy(spec, v, data.labels)
    return {
        "library": target, "version": version(target), "file": path.name,
        "precision": "float64 (parameters and state)" if float64 else "float32 (the library's own)",
        "hidden_spikes_identical": all(np.array_equal(spikes[k], spikes_ev[k]) for k in spikes_ev),
        "hidden_spikes_evprop": {k: int(s.sum()) for k, s in spikes_ev.items()},
        "hidden_spike_entries_differing": {k: int(np.sum(spikes[k] != spikes_ev[k])) for k in spikes_ev},
        "samples_with_any_hidden_difference": int(sum(
            np.any(spikes[k] != spikes_ev[k], axis=(1, 2)) for k in spikes_ev).astype(bool).sum()),
        "readout_max_abs_difference": float(np.abs(v - v_ev).max()),
        "readout_max_abs_value": float(np.abs(v_ev).max()),
        "test_accuracy_library": {k: acc[k] for k in ("accuracy", "ci95")},
        "test_accuracy_evprop": {k: acc_ev[k] for k in ("accuracy", "ci95")},
        "same_predicted_class": int(np.sum(acc["predicted"] == acc_ev["predicted"])),
        "run_seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "nir_importers")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "nir_importers.json")
    parser.add_argument("--note", default="", help="stored with the result: what the run is")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from evprop.export.nir_targets import IMPORTERS
    from evprop.pipeline.config import load_config
    from evprop.pipeline.build import load_splits
    from evprop.pipeline.stages import run_config, train_stage, trained_network
    from evprop.train.compiled import CompiledNetwork
    from evprop.train.engine import forward
    if not (args.run / "checkpoint.npz").is_file():
        train_stage(load_config(ROOT / "configs" / "default.toml"), args.run)
    spec = trained_network(args.run)
    data = load_splits(run_config(args.run))["test"]
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, data, max_spikes=spec.n_steps)
    spikes_ev = {l.name: fwd.spike_raster(net.layer_slices[l.name]) for l in spec.neuron_layers[:-1]}
    rows = [measure(args.run, target, float64, spec, data, spikes_ev, fwd.v_out)
            for target in IMPORTERS for float64 in (False, True)]
    result = {"what": "trained configs/default.toml run, test split, evprop training engine vs the library's "
                      "NIR importer on `evprop export --for LIBRARY`", "note": args.note, "samples": len(data.labels),
              "n_steps": spec.n_steps, "dt_ms": spec.dt_ms, "python": platform.python_version(),
              "versions": {p: version(p) for p in PACKAGES}, "libraries": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['library']} {r['version']} {r['precision'].split()[0]}: hidden spikes identical {r['hidden_spikes_identical']} "
              f"({r['hidden_spikes_evprop']} evprop spikes, {r['hidden_spike_entries_differing']} entries differ), "
              f"readout max |diff| {r['readout_max_abs_difference']:.2e} (max |v| {r['readout_max_abs_value']:.3f}), "
              f"test accuracy {100 * r['test_accuracy_library']['accuracy']:.2f}% vs evprop "
              f"{100 * r['test_accuracy_evprop']['accuracy']:.2f}% "
              f"[{100 * r['test_accuracy_evprop']['ci95'][0]:.1f}, {100 * r['test_accuracy_evprop']['ci95'][1]:.1f}], "
              f"same class "
              f"{r['same_predicted_class']}/{result['samples']}")


if __name__ == "__main__":
    main()
