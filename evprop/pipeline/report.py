"""report.html: one self-contained page (figures inlined as PNG data URIs, rendered with matplotlib), and the
test-set analysis behind its figures (`analyse_run`): float and fixed-point predictions, spike counts per layer, one
sample's spike rasters, the initial and trained networks, and the measured host energy of inference."""

from __future__ import annotations

import base64
import datetime
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .measure import EnergyMeter, per_inference
from .stats import (accuracy_interval, difference_interval_counts, excludes_zero,
                    paired_difference_interval)

RASTER_SAMPLE = 0
COLORS = {"float": "#4c72b0", "fixed point": "#dd8452", "Lava": "#55a868", "initial": "#999999",
          "trained": "#c44e52"}


# ---- analysis of the run on its test set ----

@dataclass
class RunAnalysis:
    """What the figures need beyond the stage files; arrays over the B test samples."""

    labels: np.ndarray                       # [B]
    n_classes: int
    float_predictions: np.ndarray            # [B]
    fixed_predictions: np.ndarray | None     # [B]; None when the readout needs output spikes
    float_neuron_counts: dict                # {layer: int [B, n]} (neuron layers)
    fixed_layer_counts: dict                 # {layer: int [B]} (input included)
    raster: dict                             # one sample: 'index', 'label', 'input', 'float', 'fixed', 'v_*'
    initial: object                          # NetworkSpec before training
    best: object                             # NetworkSpec kept (best validation epoch)
    initial_source: str
    dt_ms: float
    measured: dict = field(default_factory=dict)


def load_networks(run_dir: Path, config: dict, n_inputs: int, n_classes: int) -> tuple:
    """(initial, best, where the initial network came from). Checkpoints written before the initial network was
    stored get it re-created from the configuration (initialisation is seeded by train.seed)."""
    from ..train.trainer import load_checkpoint
    from .build import initial_network
    checkpoint = load_checkpoint(Path(run_dir) / "checkpoint.npz")
    if checkpoint["initial"] is not None:
        return checkpoint["initial"], checkpoint["best"], "checkpoint.npz ('initial')"
    return (initial_network(config, n_inputs, n_classes), checkpoint["best"],
            "re-created from config.toml (train.seed); this checkpoint predates stored initial networks")


def _float_counts(spec, data, max_spikes: int, batch_size: int = 256) -> dict:
    from ..train.compiled import CompiledNetwork
    from ..train.engine import forward
    net = CompiledNetwork.from_spec(spec)
    counts = np.zeros((len(data), net.n_neurons), dtype=np.int64)
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        counts[idx] = forward(net, data.subset(idx), max_spikes, allow_overflow=True).spike_count
    return {name: c for name, c in net.per_layer(counts).items()}


def _raster(spec, fixed, data, index: int, max_spikes: int) -> dict:
    """Spikes of every layer and the output voltages of one sample, float and fixed point."""
    from ..fixed_point.emulator import emulate, input_raster
    from ..train.compiled import CompiledNetwork
    from ..train.engine import forward
    sample = data.subset(np.array([index]))
    net = CompiledNetwork.from_spec(spec)
    fwd = forward(net, sample, max_spikes, allow_overflow=True)
    emulated = emulate(fixed, sample, record_hidden=True)
    lif = [layer.name for layer in spec.neuron_layers if layer.name in emulated.hidden_spikes]
    return {"index": index, "label": int(sample.labels[0]), "input": input_raster(sample, 0, 1)[0],
            "float": {name: fwd.spike_raster(net.layer_slices[name])[0] for name in lif},
            "fixed": {name: emulated.hidden_spikes[name][0] for name in lif},
            "v_float": fwd.v_out[0], "v_fixed": emulated.v_out_float[0], "output": spec.output.name}


def analyse_run(run_dir: Path, config: dict, test=None) -> RunAnalysis:
    """Run the trained float network and the fixed-point emulator over the test set (host energy measured)."""
    from ..fixed_point.spec import load_fixed_point
    from ..fixed_point.emulator import emulate
    from ..train.trainer import evaluate
    from .build import load_splits
    run_dir = Path(run_dir)
    test = test if test is not None else load_splits(config)["test"]
    max_spikes = config["train"]["max_spikes"]
    fixed = load_fixed_point(run_dir / "fixed_point.npz")
    initial, best, source = load_networks(run_dir, config, test.n_channels, fixed.layers[-1].size)
    raster = _raster(best, fixed, test, RASTER_SAMPLE, max_spikes)       # also compiles the kernels
    with EnergyMeter(poll_s=0) as float_meter:
        float_eval = evaluate(best, test, max_spikes=max_spikes, allow_overflow=True)
    with EnergyMeter(poll_s=0) as fixed_meter:
        emulated = emulate(fixed, test, record_hidden=False)
    fixed_predictions = None if best.readout_rule.spiking_output else best.scores(emulated.v_out_float).argmax(axis=1)
    measured = {
        "float_inference": per_inference(float_meter.result(), len(test), "host CPU running the float network "
                                         "(numba) over the test set, at report time"),
        "emulator_inference": per_inference(fixed_meter.result(), len(test), "host CPU running the fixed-point "
                                            "emulator (numpy) over the test set, at report time")}
    return RunAnalysis(labels=np.asarray(test.labels), n_classes=int(fixed.layers[-1].size),
                       float_predictions=float_eval["predictions"], fixed_predictions=fixed_predictions,
                       float_neuron_counts=_float_counts(best, test, max_spikes),
                       fixed_layer_counts={k: np.asarray(v) for k, v in emulated.spike_counts.items()},
                       raster=raster, initial=initial, best=best, initial_source=source, dt_ms=best.dt_ms,
                       measured=measured)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray | None, n_classes: int) -> list | None:
    """Counts [true class][predicted class]."""
    if predictions is None:
        return None
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix.tolist()


# ---- figures ----

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def fig_learning_curves(history: list) -> str:
    plt = _plt()
    epochs = [h["epoch"] + 1 for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    axes[0].plot(epochs, [h["loss"] for h in history], label="train")
    axes[0].plot(epochs, [h["validation_loss"] for h in history], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    axes[1].plot(epochs, [100 * h["validation_accuracy"] for h in history], label="validation")
    axes[1].set(xlabel="epoch", ylabel="accuracy [%]", title="accuracy (float network)")
    axes[2].plot(epochs, [h["hidden_spikes_per_sample"] for h in history], color="k")
    axes[2].set(xlabel="epoch", ylabel="hidden spikes / sample", title="hidden spike rate (training set)")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_uri(fig)


def fig_accuracy(report: dict, n_classes: int | None) -> str:
    plt = _plt()
    acc = report["accuracy"]
    names = ["float", "fixed point", "Lava"]
    values = [acc["float"]["test"], acc["fixed_point"]["test"], acc["lava"]["test"]]
    counts = [acc["float"]["n_test"], acc["fixed_point"]["n_test"], acc["lava"]["n_samples"]]
    sub = ["numba, float64", "emulator, integer", "Lava fixed_pt, from model.nir"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bars = ax.bar([f"{n}\n({s})" for n, s in zip(names, sub)], [100 * v for v in values],
                  color=[COLORS[n] for n in names])
    for bar, value, n in zip(bars, values, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, 100 * value + 1, f"{100 * value:.2f}%\nn={n}", ha="center",
                va="bottom", fontsize=9)
    if n_classes:
        ax.axhline(100 / n_classes, color="k", ls=":", lw=1, label=f"chance ({100 / n_classes:.0f}%)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(ylabel="test accuracy [%]", ylim=(0, 118), title="test accuracy per stage")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return _figure_uri(fig)


def fig_confusion(matrices: dict) -> str:
    plt = _plt()
    shown = {k: np.array(v) for k, v in matrices.items() if v is not None}
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], shown.items()):
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=9,
                    color="white" if v > m.max() / 2 else "black")
        ticks = range(m.shape[0])
        ax.set(xticks=ticks, yticks=ticks, xlabel="predicted class", ylabel="true class",
               title=f"{name}, test set (n={int(m.sum())})")
    fig.tight_layout()
    return _figure_uri(fig)


def _raster_axis(ax, raster: np.ndarray, dt_ms: float, color, title: str, size: float = 2.0) -> None:
    steps, neurons = np.nonzero(raster)
    ax.scatter(steps * dt_ms, neurons, s=size, color=color, marker="|" if raster.shape[1] < 50 else ".",
               clip_on=False)
    ax.set(xlim=(-dt_ms, raster.shape[0] * dt_ms), ylim=(-0.5, raster.shape[1] - 0.5), ylabel="neuron",
           title=f"{title}: {int(raster.sum())} spikes")


def fig_rasters(raster: dict, dt_ms: float) -> str:
    plt = _plt()
    layers = list(raster["float"])
    rows = 2 + len(layers)
    fig, axes = plt.subplots(rows, 2, figsize=(13, 2.2 + 2.4 * rows), squeeze=False)
    gs = axes[0, 0].get_gridspec()
    for ax in axes[0]:
        ax.remove()
    ax_in = fig.add_subplot(gs[0, :])
    _raster_axis(ax_in, raster["input"], dt_ms, "k", "input", 200 if raster["input"].shape[1] < 50 else 2)
    for r, name in enumerate(layers, start=1):
        _raster_axis(axes[r, 0], raster["float"][name], dt_ms, COLORS["float"], f"{name} (float)")
        _raster_axis(axes[r, 1], raster["fixed"][name], dt_ms, COLORS["fixed point"], f"{name} (fixed point)")
    t = np.arange(raster["v_float"].shape[0]) * dt_ms
    for ax, key, label in ((axes[-1, 0], "v_float", "float"), (axes[-1, 1], "v_fixed", "fixed point")):
        for j in range(raster[key].shape[1]):
            ax.plot(t, raster[key][:, j], label=f"class {j}")
        ax.set(ylabel="V [threshold units]",
               title=f"{raster['output']} voltages ({label}; non-spiking readout)")
        ax.legend(fontsize=7, ncol=3)
    for ax in list(axes[-1]) + [ax_in]:
        ax.set_xlabel("time [ms]")
    fig.suptitle(f"test sample {raster['index']} (true class {raster['label']})", y=1.0)
    fig.tight_layout()
    return _figure_uri(fig)


def varying_layers(analysis: RunAnalysis) -> list:
    """Layers whose spike count varies between test samples (the others get a sentence, not a histogram)."""
    names = list(dict.fromkeys(list(analysis.fixed_layer_counts) + list(analysis.float_neuron_counts)))
    totals = {n: _layer_totals(analysis, n) for n in names}
    return [n for n in names if any(np.ptp(v) > 0 for v in totals[n].values())]


def _layer_totals(analysis: RunAnalysis, name: str) -> dict:
    totals = {}
    if name in analysis.fixed_layer_counts:
        totals["fixed point"] = analysis.fixed_layer_counts[name]
    if name in analysis.float_neuron_counts:
        totals["float"] = analysis.float_neuron_counts[name].sum(axis=1)
    return totals


def fig_spike_histograms(analysis: RunAnalysis, names: list) -> str:
    plt = _plt()
    fig, axes = plt.subplots(len(names), 2, figsize=(13, 2.8 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        totals = _layer_totals(analysis, name)
        bins = np.histogram_bin_edges(np.concatenate(list(totals.values())), bins=40)
        for label, values in totals.items():
            row[0].hist(values, bins=bins, histtype="step", lw=1.5, color=COLORS[label],
                        label=f"{label} (mean {values.mean():.1f})")
        row[0].set(xlabel="spikes per sample", ylabel="test samples", title=f"{name}: spikes per sample")
        row[0].legend(fontsize=8)
        per_neuron = analysis.float_neuron_counts.get(name)
        if per_neuron is None:
            row[1].axis("off")
            continue
        mean = per_neuron.mean(axis=0)
        row[1].hist(mean, bins=40, color=COLORS["float"])
        row[1].set(xlabel="mean spikes per sample of one neuron", ylabel="neurons",
                   title=f"{name}: per-neuron spike counts (float; {int(np.sum(mean == 0))} of {mean.size} silent)")
    fig.tight_layout()
    return _figure_uri(fig)


def spike_count_html(analysis: RunAnalysis, report: dict) -> str:
    names = varying_layers(analysis)
    constant = [f"{_esc(n)}: {v:g} spikes in every test sample" for n in report["spikes"]["per_layer"]
                if n not in names for v in [report["spikes"]["per_layer"][n]["mean_per_sample"]]]
    figure = _img(fig_spike_histograms(analysis, names), "spike count histograms") if names else ""

    def cell(layer, key):
        value = report["spikes"][key].get(layer, {}).get("mean_per_sample")
        return "— (given by the data)" if value is None else f"{value:.1f}"

    table = _table([(_esc(n), cell(n, "per_layer"), cell(n, "float_per_layer")) for n in report["spikes"]["per_layer"]],
                   ["layer", "spikes / sample, fixed point (emulator)", "spikes / sample, float"])
    note = f"<p class='muted'>Whole test set. {'; '.join(constant)}.</p>" if constant else ""
    return figure + note + table


def parameter_groups(initial, best) -> list:
    """[(title, initial values, trained values, unit)] of time constants, delays and weights."""
    groups = []
    for layer in best.neuron_layers:
        start = initial.layer(layer.name)
        groups.append((f"{layer.name}: tau_mem", start.tau_mem_ms, layer.tau_mem_ms, "ms"))
        groups.append((f"{layer.name}: tau_syn", start.tau_syn_ms, layer.tau_syn_ms, "ms"))
    for conn in best.connections:
        start = initial.connection(conn.name)
        groups.append((f"{conn.name}: delay", start.delay.ravel() * best.dt_ms, conn.delay.ravel() * best.dt_ms,
                       f"ms, max {conn.max_delay_steps * best.dt_ms:g}"))
        groups.append((f"{conn.name}: weight", start.weight.ravel(), conn.weight.ravel(), "threshold units"))
    return groups


def fig_parameters(groups: list) -> str:
    plt = _plt()
    cols = min(4, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols, 2.7 * rows), squeeze=False)
    for ax, (title, before, after, unit) in zip(axes.ravel(), groups):
        before, after = np.asarray(before, float), np.asarray(after, float)
        bins = np.histogram_bin_edges(np.concatenate([before, after]), bins=30)
        ax.hist(before, bins=bins, histtype="step", lw=1.5, color=COLORS["initial"], label="initial")
        ax.hist(after, bins=bins, histtype="step", lw=1.5, color=COLORS["trained"], label="trained (best)")
        ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"[{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return _figure_uri(fig)


def _describe(values: np.ndarray, unit: str) -> str:
    values = np.asarray(values, float)
    if np.ptp(values) == 0:
        return f"all {values[0]:g} {unit.split(',')[0]}"
    return f"{values.min():.3g} to {values.max():.3g} {unit.split(',')[0]}, mean {values.mean():.3g}"


def parameters_html(analysis: RunAnalysis) -> str:
    groups = parameter_groups(analysis.initial, analysis.best)
    changed = [g for g in groups if not np.array_equal(g[1], g[2])]
    fixed = [g for g in groups if np.array_equal(g[1], g[2])]
    intro = (f"<p class='muted'>Initial network: {_esc(analysis.initial_source)}; trained: the best-validation "
             "network. Histograms over all neurons (time constants) or synapses (delays, weights).</p>")
    figure = _img(fig_parameters(changed), "learned parameters") if changed else "<p>no parameter changed</p>"
    unchanged = ("<p><b>Not changed by training</b> (learning rate 0): "
                 + "; ".join(f"{_esc(t)} ({_esc(_describe(b, u))})" for t, b, _, u in fixed) + ".</p>") if fixed else ""
    return intro + unchanged + figure


def fig_energy(energy: dict) -> str:
    plt = _plt()
    estimates = energy["estimates"]
    names = [e["model"] for e in estimates][::-1]
    values = [e["estimated_uj_per_inference"] for e in estimates][::-1]
    colors = ["#55a868" if "dense" not in n else "#8c8c8c" for n in names]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, values, color=colors)
    for bar, value in zip(bars, values):
        ax.text(value * 1.1, bar.get_y() + bar.get_height() / 2, f"{value:.3g} uJ (estimate)", va="center",
                fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 2, max(values) * 20)
    ax.set(xlabel="estimated energy per inference [uJ], log scale",
           title="ESTIMATES per inference (green: event-driven counts on neuromorphic constants; "
                 "grey: dense network on conventional 45 nm)")
    ax.title.set_fontsize(9)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    return _figure_uri(fig)


# ---- HTML ----

def _esc(value) -> str:
    return html.escape(str(value))


def _table(rows, header=None) -> str:
    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table>{head}{body}</table></div>"


def _kv_table(rows) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _img(uri: str, alt: str) -> str:
    return f"<img alt='{_esc(alt)}' src='{uri}'>"


def _pct(x) -> str:
    return f"{100 * x:.2f}%"


def _uj(value: float) -> str:
    return f"{value:.4g} µJ" if value >= 1e-3 else f"{value * 1e3:.4g} nJ"


def _ci(accuracy: dict) -> str:
    """'[95% CI 95.4-97.6%]' from an accuracy entry's test_ci95 ('' for reports without it)."""
    low_high = accuracy.get("test_ci95")
    return f"[95% CI {100 * low_high[0]:.1f}-{100 * low_high[1]:.1f}%]" if low_high else ""


def summary_rows(report: dict) -> list:
    acc, eq, energy = report["accuracy"], report["equivalence"]["emulator_vs_lava"], report["energy"]
    return [("float test accuracy", f"{_pct(acc['float']['test'])} {_ci(acc['float'])} "
                                    f"(n={acc['float']['n_test']}; train {_pct(acc['float']['train'])})"),
            ("fixed-point test accuracy (emulator)", f"{_pct(acc['fixed_point']['test'])} "
                                                      f"{_ci(acc['fixed_point'])} (n={acc['fixed_point']['n_test']})"),
            ("Lava fixed_pt test accuracy", f"{_pct(acc['lava']['test'])} {_ci(acc['lava'])} "
                                            f"(n={acc['lava']['n_samples']})"),
            *([("linear reference test accuracy", f"{_pct(acc['reference_linear']['test'])} "
                                                  f"({acc['reference_linear']['model']})")]
              if "reference_linear" in acc else []),
            ("emulator bit-exact with Lava", f"{eq['bit_exact']} ({eq['n_samples']} samples)"),
            ("synaptic ops / inference (target)", f"{report['spikes']['synaptic_ops_per_sample']:,.0f}"),
            ("energy / inference", f"{_uj(energy['estimated_uj_per_inference'])} — ESTIMATE, model "
                                   f"{energy['model']} ({energy['source']})"),
            *_baseline_rows(energy),
            ("best epoch", f"{report['training']['best_epoch'] + 1} of {report['training']['epochs']} "
                           f"(validation {_pct(report['training']['best_validation_accuracy'])})")]


def _baseline_rows(energy: dict) -> list:
    dense = {e["model"]: e for e in energy["estimates"]}.get("horowitz45-dense-fp32-sram")
    if dense is None:
        return []
    ratio = dense["estimated_uj_per_inference"] / energy["estimated_uj_per_inference"]
    return [("dense FP32 network on conventional 45 nm", f"{_uj(dense['estimated_uj_per_inference'])} — ESTIMATE, "
             f"model {dense['model']} (Horowitz 2014; weights read from SRAM every step), {ratio:.3g}× the "
             f"{energy['model']} estimate")]


def energy_tables(energy: dict) -> str:
    rows = []
    for e in energy["estimates"]:
        terms = "<br>".join(f"{_esc(t['what'])}: {t['count']:,.0f} × {t['pj_each']:g} pJ = "
                            f"{_uj(t['estimated_uj'])} <i>(estimate)</i>" for t in e["terms"])
        rows.append((f"<b>{_esc(e['model'])}</b><br><small>{_esc(e['hardware'])}</small>",
                     f"<b>{_uj(e['estimated_uj_per_inference'])}</b><br><i>ESTIMATE, {_esc(e['model'])}</i>",
                     terms, f"<small>{_esc(e['source'])}</small>", f"<small>{_esc(e['assumptions'])}</small>"))
    return _table(rows, ["model", "per inference", "breakdown (count × energy per op)", "source of the constants",
                         "assumptions"]).replace("<table>", "<table class='energy'>", 1)


def measured_table(measured: dict) -> str:
    rows = []
    for key, m in measured.items():
        if m.get("joules") is None:
            why = m["source"].split(":", 1)[1].strip() if m["source"].startswith("not measurable here:") \
                else m["source"]
            value = f"<b>not measurable here</b><br><small>{_esc(why)}</small>"
        else:
            per = m.get("joules_per_inference")
            value = (f"<b>{m['joules']:.4g} J</b> measured over {m['seconds']:.1f} s"
                     + (f"; {per * 1e6:.4g} µJ per inference (n={m['n_inferences']})" if per is not None else "")
                     + f"<br><small>{_esc(m['source'])}; {_esc(m.get('scope', ''))}</small>")
        rows.append((_esc(key.replace("_", " ")), _esc(m.get("what", "")), value))
    return _table(rows, ["what", "scope", "measured energy"])


def _change_ci(summary: dict) -> str:
    low_high = summary.get("accuracy_change_pp_ci95")
    if not low_high:
        return ""
    verdict = "beyond the noise" if excludes_zero(low_high) else "within the noise"
    return f"; 95% CI {low_high[0]:+.2f} to {low_high[1]:+.2f} pp, {verdict}"


def _profile_text(summary: dict) -> str:
    """The profile's name and, for a restricted one, the accuracy the unrestricted profile reaches."""
    cost = summary.get("profile_cost")
    name = _esc(summary.get("profile", "lava"))
    if not cost:
        return name
    return (f"{name}; the {_esc(cost['unrestricted_profile'])} profile reaches "
            f"{_pct(cost['unrestricted_fixed_point_test_accuracy'])}: the profile costs {cost['cost_pp']:+.2f} pp")


def quantisation_tables(quant: dict) -> str:
    s = quant.get("summary", {})
    summary = _kv_table([("float → fixed-point test accuracy", f"{_pct(s['float_test_accuracy'])} → "
                          f"{_pct(s['fixed_point_test_accuracy'])} ({s['accuracy_change_pp']:+.2f} pp, "
                          f"n={s['n_test']}{_change_ci(s)})"),
                         ("same prediction, float vs fixed point", "n/a" if s.get("prediction_agreement") is None
                          else _pct(s["prediction_agreement"])),
                         ("quantisation profile", _profile_text(s)),
                         ("clipped weights", s["clipped_weights"]),
                         ("v saturations / u wraps / message overflows (calibration)",
                          f"{s['v_saturations_seen']} / {s['u_wraps_seen']} / {s['message_overflows_seen']}")]
                        + [(f"spikes/sample in {k}, float → fixed point", f"{v['float']:.1f} → {v['fixed_point']:.1f}")
                           for k, v in s["spikes_per_layer"].items()
                           if v["float"] is not None and v["fixed_point"] is not None]) if s else ""
    layer_keys = ["kind", "v_lsb", "vth", "weight_bits", "clipped", "max_abs_u", "max_abs_v", "u_headroom_bits",
                  "v_headroom_bits", "v_saturations_seen", "u_wraps_seen"]
    conn_keys = ["bits", "weight_exp", "weight_unit", "sign_mode", "clipped", "clipped_fraction",
                 "max_abs_error_unclipped", "max_delay"]

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else _esc(v)

    layers = _table([[_esc(n)] + [fmt(q.get(k, "")) for k in layer_keys] for n, q in quant["layers"].items()],
                    ["layer"] + [k.replace("_", " ") for k in layer_keys])
    conns = _table([[_esc(n)] + [fmt(q.get(k, "")) for k in conn_keys] for n, q in quant["connections"].items()],
                   ["connection"] + [k.replace("_", " ") for k in conn_keys])
    return summary + "<h3>Layers</h3>" + layers + "<h3>Connections</h3>" + conns


STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:14px}td,th{border:1px solid #ddd;padding:3px 7px;
vertical-align:top;text-align:left}th{background:#f4f4f4}table.kv th{width:22em}
img{max-width:100%;display:block;margin:.5em 0}pre{background:#f4f4f4;padding:.6em;overflow-x:auto}
.estimate{background:#fff6d6;border-left:4px solid #e0b000;padding:.4em .8em}.muted{color:#666;font-size:13px}
nav a{margin-right:1em}.scroll{overflow-x:auto;max-width:100%}table.energy{width:100%;font-size:13px}
table.energy td:nth-child(3){width:38%}"""


def _sections(report: dict, history: list, analysis: RunAnalysis | None, config_text: str) -> list:
    energy, quant = report["energy"], report["quantisation"]
    confusion = report.get("confusion")
    n_classes = analysis.n_classes if analysis else None
    out = [("Accuracy per stage",
            _img(fig_accuracy(report, n_classes), "accuracy per stage")
            + "<p class='muted'>float: the best-validation network (numba); fixed point: the quantised network "
              "in the emulator (Lava's integer arithmetic), whole test set; Lava: fixed_pt simulation of the "
              "network built from model.nir, first test samples only.</p><h3>Emulator vs Lava</h3>"
            + _kv_table(report["equivalence"]["emulator_vs_lava"].items())),
           ("Learning curves", _img(fig_learning_curves(history), "learning curves") if history
            else "<p>history.jsonl is empty</p>")]
    if confusion and (confusion.get("float") or confusion.get("fixed_point")):
        out.append(("Confusion matrices", _img(fig_confusion({"float": confusion.get("float"),
                                                              "fixed point, emulator": confusion.get("fixed_point")}),
                                               "confusion matrices")
                    + "<p class='muted'>Rows: true class, columns: predicted class; whole test set.</p>"))
    if analysis:
        out += [("Spike rasters", _img(fig_rasters(analysis.raster, analysis.dt_ms), "spike rasters")
                 + "<p class='muted'>One test sample, every layer; left the float network, right the fixed-point "
                   "emulator (identical to Lava where verified).</p>"),
                ("Spike counts", spike_count_html(analysis, report)),
                ("Learned parameters", parameters_html(analysis))]
    else:
        out.append(("Figures from the test set", "<p>not available: the test-set analysis could not run</p>"))
    out += [("Quantisation", quantisation_tables(quant)),
            ("Energy", "<div class='estimate'><b>ESTIMATES, not measurements.</b> Event counts per inference from "
             "the fixed-point emulator × published per-operation energies; the model and source stand beside "
             "every figure.</div>" + _img(fig_energy(energy), "energy estimates") + energy_tables(energy)
             + "<h3>Measured energy (host)</h3>" + measured_table(energy["measured"])
             + "<h3>Why op-count estimates mislead</h3><ul>"
             + "".join(f"<li>{_esc(c)}</li>" for c in energy["criticisms"]) + "</ul>"),
            ("Versions, hardware and timing",
             _kv_table(list(report["versions"].items())) + "<h3>Hardware</h3>"
             + _kv_table([(f"{who}: {k}", v) for who, info in report.get("hardware", {}).items()
                          if isinstance(info, dict) for k, v in info.items()]
                         + [(k, v) for k, v in report.get("hardware", {}).items() if not isinstance(v, dict)])
             + "<h3>Timing</h3>" + _kv_table([(k, f"{v:.1f} s") for k, v in report["timing"].items()])),
            ("Configuration", f"<pre>{_esc(config_text)}</pre>")]
    return out


def html_report(run_dir: Path, report: dict, history: list, analysis: RunAnalysis | None = None,
                shown_dir: Path | None = None) -> str:
    """report.html's text for the run in `run_dir`, naming the run as `shown_dir` (default: run_dir)."""
    run_dir = Path(run_dir)
    config_text = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").exists() else ""
    sections = _sections(report, history, analysis, config_text)
    anchors = [f"s{i}" for i in range(len(sections))]
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>evprop report: {_esc(report['name'])}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>evprop run: {_esc(report['name'])}</h1><p class='muted'>{_esc(Path(shown_dir or run_dir).resolve())} — report "
             f"generated {when} by <code>evprop report</code></p>",
             _kv_table(summary_rows(report)),
             "<nav>" + "".join(f"<a href='#{a}'>{_esc(t)}</a>" for a, (t, _) in zip(anchors, sections)) + "</nav>"]
    parts += [f"<h2 id='{a}'>{_esc(title)}</h2>{body}" for a, (title, body) in zip(anchors, sections)]
    parts.append("</body></html>")
    return "\n".join(parts)


def accuracy_section(train: dict, quant: dict, verify: dict) -> dict:
    """report.json's `accuracy`: the float, fixed-point and Lava test accuracies with their sample counts and 95%
    Wilson intervals (`test_ci95`); with fine-tuning, the fixed-point accuracy before it and the interval of the
    gain (counts only: Newcombe's interval, evprop/pipeline/stats.py)."""
    fixed = {"test": quant["fixed_point_test_accuracy"], "n_test": quant["n_test"],
             "test_ci95": accuracy_interval(quant["fixed_point_test_accuracy"], quant["n_test"])}
    if quant.get("finetuning"):
        before = quant["finetuning"]["fixed_point_test_accuracy_before"]
        n = quant["n_test"]
        fixed.update({"before_finetuning": before,
                      "float_after_finetuning": quant["finetuning"]["float_test_accuracy_after"],
                      "finetuning_gain_pp_ci95": [100 * x for x in difference_interval_counts(
                          round(before * n), n, round(fixed["test"] * n), n)]})
    return {"float": {"train": train["float_train_accuracy"], "test": train["float_test_accuracy"],
                      "n_test": train["n_test"],
                      "test_ci95": accuracy_interval(train["float_test_accuracy"], train["n_test"])},
            "fixed_point": fixed,
            "lava": {"test": verify["lava_test_accuracy"], "n_samples": verify["n_samples"],
                     "test_ci95": accuracy_interval(verify["lava_test_accuracy"], verify["n_samples"])}}


def accuracy_change_interval(report_accuracy: dict, analysis: RunAnalysis | None) -> tuple[list, str]:
    """95% interval [pp] of fixed point minus float test accuracy, and how it was computed: paired bootstrap over
    the test samples when the per-sample predictions are at hand, else Newcombe's interval from the counts."""
    flt, fixed = report_accuracy["float"], report_accuracy["fixed_point"]
    if (analysis is not None and analysis.fixed_predictions is not None
            and len(analysis.labels) == fixed["n_test"] == flt["n_test"]):
        interval = paired_difference_interval(analysis.float_predictions == analysis.labels,
                                              analysis.fixed_predictions == analysis.labels)
        how = "paired bootstrap over the test samples"
    else:
        interval = difference_interval_counts(round(flt["test"] * flt["n_test"]), flt["n_test"],
                                              round(fixed["test"] * fixed["n_test"]), fixed["n_test"])
        how = "Newcombe's interval from the counts"
    return [100 * x for x in interval], how


def quantisation_section(quant: dict, report_accuracy: dict, analysis: RunAnalysis | None, spikes: dict) -> dict:
    """quantise.json's report plus a summary: accuracy change (with its 95% interval), float/fixed agreement,
    clipping and overflows."""
    layers = quant.get("layers", {})
    agreement = None
    if analysis is not None and analysis.fixed_predictions is not None:
        agreement = float(np.mean(analysis.fixed_predictions == analysis.float_predictions))
    change_ci, change_how = accuracy_change_interval(report_accuracy, analysis)
    names = list(dict.fromkeys(list(spikes["per_layer"]) + list(spikes["float_per_layer"])))
    summary = {
        "float_test_accuracy": report_accuracy["float"]["test"],
        "fixed_point_test_accuracy": report_accuracy["fixed_point"]["test"],
        "accuracy_change_pp": 100 * (report_accuracy["fixed_point"]["test"] - report_accuracy["float"]["test"]),
        "n_test": report_accuracy["fixed_point"]["n_test"],
        "accuracy_change_pp_ci95": change_ci,
        "accuracy_change_interval": change_how,
        "prediction_agreement": agreement,
        "profile": quant.get("profile", "lava"),
        "profile_cost": quant.get("profile_cost"),
        "clipped_weights": int(sum(c.get("clipped", 0) for c in quant.get("connections", {}).values())),
        "v_saturations_seen": int(sum(q.get("v_saturations_seen", 0) for q in layers.values())),
        "u_wraps_seen": int(sum(q.get("u_wraps_seen", 0) for q in layers.values())),
        "message_overflows_seen": int(sum(q.get("message_overflows_seen", 0) for q in layers.values())),
        "spikes_per_layer": {n: {"float": spikes["float_per_layer"].get(n, {}).get("mean_per_sample"),
                                 "fixed_point": spikes["per_layer"].get(n, {}).get("mean_per_sample")}
                             for n in names},
    }
    return {**quant, "summary": summary}
