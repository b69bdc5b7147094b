"""Mini-batch EventProp training: Adam, seeded shuffling, per-epoch validation, atomic checkpoints.

Plain Python around the kernels (DESIGN section 3). The model selected at the end is the one with the best
validation accuracy; the test set is never looked at here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.spikes import SpikeData
from ..model.io import atomic_write, load_arrays, network_from_arrays, network_to_arrays, save_arrays
from ..model.spec import NetworkSpec
from .compiled import CompiledNetwork
from .engine import backward, forward
from .losses import get_loss

CHECKPOINT_FORMAT = "evprop-checkpoint"


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3          # weights; 0 keeps them fixed
    delay_learning_rate: float = 0.0     # delays (own Adam, as 003's delay_optimiser); 0 keeps them fixed
    tau_learning_rate: float = 0.0       # tau_mem and tau_syn per neuron (own Adam, 000 App. C); 0: fixed
    min_tau_mem_ms: float = 3.0          # lower clamps after each update (000 section 4.9)
    min_tau_syn_ms: float = 1.0
    lr_decay_per_epoch: float = 1.0
    seed: int = 0
    loss: str = "cross_entropy"
    max_spikes: int = 100
    allow_overflow: bool = False

    @classmethod
    def from_config(cls, section: dict) -> "TrainSettings":
        return cls(**section)


class Adam:
    """Adam (Kingma & Ba) on one flat parameter vector; the state is plain arrays so checkpoints hold it."""

    def __init__(self, size: int, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray, lr: float) -> None:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        params -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def evaluate(spec: NetworkSpec, data: SpikeData, batch_size: int = 256, max_spikes: int = 100,
             allow_overflow: bool = False) -> dict:
    """Accuracy, mean loss, predictions and spikes per layer of the float network on `data`."""
    net = CompiledNetwork.from_spec(spec)
    loss_fn = get_loss("cross_entropy")
    predictions = np.zeros(len(data), dtype=np.int64)
    counts = np.zeros((len(data), net.n_neurons), dtype=np.int64)
    loss_sum = 0.0
    for idx in batches(len(data), batch_size, None):
        batch = data.subset(idx)
        fwd = forward(net, batch, max_spikes, allow_overflow)
        loss, scores, _ = loss_fn(spec, fwd.v_out, batch.labels)
        loss_sum += loss * len(idx)
        predictions[idx] = scores.argmax(axis=1)
        counts[idx] = fwd.spike_count
    return {"accuracy": float(np.mean(predictions == data.labels)), "loss": loss_sum / max(len(data), 1),
            "predictions": predictions,
            "spikes_per_sample": {name: float(c.sum(axis=1).mean()) for name, c in net.per_layer(counts).items()}}


def train(spec: NetworkSpec, train_data: SpikeData, val_data: SpikeData, settings: TrainSettings,
          run_dir: Path | None = None, progress=None) -> tuple[NetworkSpec, list]:
    """Train with EventProp; returns (the best-validation network, history). Each epoch appends a line to
    run_dir/history.jsonl and rewrites run_dir/checkpoint.npz atomically. `progress(epoch, record)` is called
    after each epoch."""
    net = CompiledNetwork.from_spec(spec)
    optimiser = Adam(len(net.w_flat))        # net.w_flat and net.delay_flat are updated in place
    delay_optimiser = Adam(len(net.delay_flat))
    tau_optimiser = Adam(2 * net.n_neurons)
    taus = np.concatenate([net.tau_mem, net.tau_syn])
    loss_fn = get_loss(settings.loss)
    best = ((-1.0, 0.0), spec, -1)           # (selection key, network, epoch)
    history = []
    for epoch in range(settings.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([settings.seed, epoch])
        decay = settings.lr_decay_per_epoch ** epoch
        lr, delay_lr = settings.learning_rate * decay, settings.delay_learning_rate * decay
        tau_lr = settings.tau_learning_rate * decay
        losses, correct, dropped = [], 0, {}
        hidden_spikes = 0.0
        for idx in batches(len(train_data), settings.batch_size, rng):
            batch = train_data.subset(idx)
            fwd = forward(net, batch, settings.max_spikes, settings.allow_overflow)
            loss, scores, dl_dv = loss_fn(spec, fwd.v_out, batch.labels)
            grads = backward(net, batch, fwd, dl_dv)
            if lr > 0:
                optimiser.step(net.w_flat, grads.weights, lr)
            if delay_lr > 0:
                delay_optimiser.step(net.delay_flat, grads.delays, delay_lr)
                net.clamp_delays()
            if tau_lr > 0:
                tau_optimiser.step(taus, np.concatenate([grads.tau_mem, grads.tau_syn]), tau_lr)
                net.tau_mem[:], net.tau_syn[:] = taus[:net.n_neurons], taus[net.n_neurons:]
                net.clamp_taus(settings.min_tau_mem_ms, settings.min_tau_syn_ms)
                taus[:] = np.concatenate([net.tau_mem, net.tau_syn])
            losses.append(loss * len(idx))
            correct += int(np.sum(scores.argmax(axis=1) == batch.labels))
            hidden_spikes += float(fwd.spike_count[:, :net.n_neurons - net.n_out].sum())
            for name, n in fwd.dropped.items():
                dropped[name] = dropped.get(name, 0) + n
        current = net.to_spec()
        val = evaluate(current, val_data, max_spikes=settings.max_spikes, allow_overflow=settings.allow_overflow)
        record = {"epoch": epoch, "loss": float(np.sum(losses) / len(train_data)),
                  "train_accuracy": correct / len(train_data), "validation_accuracy": val["accuracy"],
                  "validation_loss": val["loss"], "learning_rate": lr,
                  "hidden_spikes_per_sample": hidden_spikes / len(train_data),
                  "dropped_spikes": dropped, "seconds": time.perf_counter() - t0}
        history.append(record)
        if selection_key(record) > best[0]:
            best = (selection_key(record), current, epoch)
        if run_dir is not None:
            _append_history(Path(run_dir), record)
            save_checkpoint(Path(run_dir), current, best[1],
                            {"adam": optimiser, "delay_adam": delay_optimiser, "tau_adam": tau_optimiser},
                            epoch, best[2], best[0][0])
        if progress is not None:
            progress(epoch, record)
    return best[1], history


def selection_key(record: dict) -> tuple:
    """How the kept model is chosen: best validation accuracy, ties broken by lower validation loss."""
    return record["validation_accuracy"], -record["validation_loss"]


def best_epoch(history: list) -> int:
    return max(range(len(history)), key=lambda i: selection_key(history[i]))


def _append_history(run_dir: Path, record: dict) -> None:
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() and record["epoch"] > 0 else []
    lines.append(json.dumps(record))
    atomic_write(path, lambda handle: handle.write(("\n".join(lines) + "\n").encode()))


def save_checkpoint(run_dir: Path, current: NetworkSpec, best: NetworkSpec, optimisers: dict, epoch: int,
                    best_epoch: int, best_accuracy: float) -> None:
    """checkpoint.npz: the current and the best network, every optimiser's state, and the epoch (atomic write)."""
    arrays = {**network_to_arrays(current, "net"), **network_to_arrays(best, "best"),
              "meta": np.array(json.dumps({"format": CHECKPOINT_FORMAT, "epoch": epoch, "best_epoch": best_epoch,
                                           "best_validation_accuracy": best_accuracy,
                                           "optimisers": sorted(optimisers)}))}
    for name, opt in optimisers.items():
        arrays.update({f"{name}/m": opt.m, f"{name}/v": opt.v, f"{name}/t": np.array(opt.t)})
    save_arrays(run_dir / "checkpoint.npz", arrays)


def load_checkpoint(path: Path) -> dict:
    """{'network', 'best', 'meta', 'optimisers'} from a checkpoint file; anything else is a one-line ValueError."""
    arrays = load_arrays(path, "checkpoint")
    if "meta" not in arrays:
        raise ValueError(f"{path}: not an evprop checkpoint (no 'meta' entry)")
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an evprop checkpoint (format {meta.get('format')!r})")
    try:
        optimisers = {name: {"m": arrays[f"{name}/m"], "v": arrays[f"{name}/v"], "t": int(arrays[f"{name}/t"])}
                      for name in meta.get("optimisers", [])}
    except KeyError as err:
        raise ValueError(f"{path}: checkpoint lacks optimiser state {err}") from None
    return {"network": network_from_arrays(arrays, "net", str(path)),
            "best": network_from_arrays(arrays, "best", str(path)), "meta": meta, "optimisers": optimisers}
