"""report.html: one self-contained page (images inlined as PNG data URIs), rendered with matplotlib."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from ..model.io import atomic_write


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _learning_curves(history: list) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] + 1 for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    axes[0].plot(epochs, [h["loss"] for h in history], label="train")
    axes[0].plot(epochs, [h["validation_loss"] for h in history], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss")
    axes[1].plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    axes[1].plot(epochs, [100 * h["validation_accuracy"] for h in history], label="validation")
    axes[1].set(xlabel="epoch", ylabel="accuracy [%]")
    axes[2].plot(epochs, [h["hidden_spikes_per_sample"] for h in history])
    axes[2].set(xlabel="epoch", ylabel="hidden spikes / sample")
    for ax in axes[:2]:
        ax.legend()
    uri = _figure_uri(fig)
    plt.close(fig)
    return uri


def _accuracy_bars(report: dict) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    acc = report["accuracy"]
    names = ["float", "fixed point", "Lava"]
    values = [acc["float"]["test"], acc["fixed_point"]["test"], acc["lava"]["test"]]
    counts = [acc["float"]["n_test"], acc["fixed_point"]["n_test"], acc["lava"]["n_samples"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar(names, [100 * v for v in values], color=["#4c72b0", "#dd8452", "#55a868"])
    for bar, value, n in zip(bars, values, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, 100 * value, f"{100 * value:.1f}%\nn={n}", ha="center",
                va="bottom", fontsize=8)
    ax.set(ylabel="test accuracy [%]", ylim=(0, 110))
    uri = _figure_uri(fig)
    plt.close(fig)
    return uri


def _table(rows) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def write_html_report(run_dir: Path, report: dict, history: list) -> None:
    run_dir = Path(run_dir)
    config_text = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").exists() else ""
    energy = report["energy"]
    eq = report["equivalence"]["emulator_vs_lava"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>evprop report: "
        f"{html.escape(report['name'])}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}"
        "th{text-align:left;padding-right:1em}pre{background:#f4f4f4;padding:.5em}</style></head><body>",
        f"<h1>evprop run: {html.escape(report['name'])}</h1>",
        "<h2>Accuracy per stage</h2>", f"<img alt='accuracy per stage' src='{_accuracy_bars(report)}'>",
        "<h2>Hardware equivalence (emulator vs Lava fixed_pt)</h2>",
        _table([(k, v) for k, v in eq.items()]),
        "<h2>Learning curves</h2>", f"<img alt='learning curves' src='{_learning_curves(history)}'>",
        "<h2>Spikes and operations per sample (fixed-point target)</h2>",
        _table([(f"spikes in {name}", f"{v['mean_per_sample']:.1f}")
                for name, v in report["spikes"]["per_layer"].items()]
               + [("synaptic operations", f"{report['spikes']['synaptic_ops_per_sample']:.0f}"),
                  ("neuron updates", f"{report['spikes']['neuron_updates_per_sample']:.0f}")]),
        "<h2>Energy (ESTIMATE)</h2>",
        _table([("estimated energy per inference", f"{energy['estimated_uj_per_inference']:.4f} uJ (estimate)"),
                ("model", energy["model"]), ("source", energy["source"]),
                ("constants", f"{energy['pj_per_synaptic_op']} pJ/SOP, {energy['pj_per_active_neuron_update']} / "
                              f"{energy['pj_per_inactive_neuron_update']} pJ per active / inactive neuron update"),
                ("note", energy["note"])]),
        "<h2>Quantisation</h2>", f"<pre>{html.escape(json.dumps(report['quantisation'], indent=1))}</pre>",
        "<h2>Timing and versions</h2>", _table(list(report["timing"].items()) + list(report["versions"].items())),
        "<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>",
        "</body></html>",
    ]
    atomic_write(run_dir / "report.html", lambda handle: handle.write("\n".join(parts).encode()))
