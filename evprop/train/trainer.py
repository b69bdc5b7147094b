"""Mini-batch EventProp training: Adam, seeded shuffling, per-epoch validation, atomic checkpoints.

Plain Python around the kernels (docs/architecture.md §3), with the papers' training protocol: separate Adam optimisers
for weights, delays and time constants, learning-rate ease-in, EMA halving and per-epoch decay, the spike-count
regulariser, silent-neuron rescue, and early stopping. The model kept is the best epoch by the selection metric
(validation or training accuracy or loss); the test set is never looked at here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.spikes import SpikeData
from ..model.io import atomic_write, load_arrays, network_from_arrays, network_to_arrays, save_arrays
from ..model.spec import NetworkSpec
from .compiled import CompiledNetwork
from .engine import backward, forward
from .losses import get_loss

CHECKPOINT_FORMAT = "evprop-checkpoint"


SELECTION_METRICS = {"validation_accuracy": 1, "train_accuracy": 1, "validation_loss": -1, "loss": -1}


@dataclass(frozen=True)
class TrainSettings:
    """Everything the training loop needs; defaults reproduce plain Adam without the papers' extras. Sections (§)
    cite Nowotny et al. 2025 (docs/architecture.md §8)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3          # weights; 0 keeps them fixed
    delay_learning_rate: float = 0.0     # delays [ms per Adam step] (own Adam, as Meszaros et al.); 0: fixed
    tau_learning_rate: float = 0.0       # tau_mem and tau_syn per neuron (own Adam, Nowotny et al. App. C); 0: fixed
    min_tau_mem_ms: float = 3.0          # lower clamps after each update (Nowotny et al. §4.9)
    min_tau_syn_ms: float = 1.0
    lr_decay_per_epoch: float = 1.0      # multiply every learning rate by this each epoch (Meszaros et al. Yin-Yang)
    lr_ease_in_start: float = 1.0        # start at this fraction, x1.05 per batch up to 1 (Nowotny et al. §4.6)
    ema_halving: bool = False            # halve the rates when the fast accuracy EMA drops below the slow (§4.7)
    ema_min_epochs: int = 50             # ... at most once per this many epochs
    reg_lambda_upper: float | list = 0.0  # spike-count regulariser strength above / below the target, per hidden
    reg_lambda_lower: float | list = 0.0  # layer or one for all, in mlGeNN's units (EventPropCompiler reg_lambda_*)
    reg_nu_upper: float = 14.0           # target spikes per hidden neuron per trial (Nowotny et al. 2025, section 4.2)
    silent_rescue: float = 0.0           # add to the incoming weights of neurons silent for an epoch (§4.5)
    selection_metric: str = "validation_accuracy"   # the epoch kept and early stopping use it; never the test set
    early_stop_patience: int = 0         # stop after this many epochs without improvement (0: never)
    seed: int = 0
    shuffle: bool = True                 # a new seeded order every epoch; False: the data set's order
    loss: str = "cross_entropy"          # a name in evprop.train.losses.LOSSES
    loss_params: dict = field(default_factory=dict)   # keyword arguments of that loss (its class documents them)
    max_spikes: int = 100
    allow_overflow: bool = False
    precision: str = "float64"           # "float32": kernels in single precision (faster; gradients agree to ~1e-5)
    device: str = "cpu"                  # "cuda": the numba.cuda kernels (tested under the CUDA simulator)
    algorithm: str = "eventprop"         # or a BPTT-family baseline: "bptt", "slayer", "exodus" (Bauer et al. 2023)
    surrogate_beta: float = 10.0         # the baselines' surrogate derivative 1 / (1 + beta |V - theta|)^2

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
             allow_overflow: bool = False, loss_fn=None, on_batch=None) -> dict:
    """Accuracy, mean loss (cross-entropy of the readout unless `loss_fn` is given), predictions and spikes per
    layer of the float network on `data`. `on_batch(samples_done, samples_total)` after every batch."""
    net = CompiledNetwork.from_spec(spec)
    loss_fn = loss_fn or default_loss(spec)
    predictions = np.zeros(len(data), dtype=np.int64)
    counts = np.zeros((len(data), net.n_neurons), dtype=np.int64)
    loss_sum = 0.0
    for idx in batches(len(data), batch_size, None):
        batch = data.subset(idx)
        fwd = forward(net, batch, max_spikes, allow_overflow, compact=loss_fn.compact(spec))
        loss, scores = loss_fn.evaluate(spec, fwd, net.layer_slices[spec.output.name], batch.labels)[:2]
        loss_sum += loss * len(idx)
        predictions[idx] = scores.argmax(axis=1)
        counts[idx] = fwd.spike_count
        if on_batch is not None:
            on_batch(int(idx[-1]) + 1, len(data))
    if len(data) == 0:
        return {"accuracy": float("nan"), "loss": float("nan"), "predictions": predictions,
                "spikes_per_sample": {name: float("nan") for name in net.layer_slices}}
    return {"accuracy": float(np.mean(predictions == data.labels)), "loss": loss_sum / len(data),
            "predictions": predictions,
            "spikes_per_sample": {name: float(c.sum(axis=1).mean()) for name, c in net.per_layer(counts).items()}}


def train(spec: NetworkSpec, train_data: SpikeData, val_data: SpikeData, settings: TrainSettings,
          run_dir: Path | None = None, progress=None, augment=None, resume: dict | None = None,
          on_batch=None) -> tuple[NetworkSpec, list]:
    """Train with EventProp; returns (the network of the best epoch by settings.selection_metric, history). Each
    epoch appends a line to run_dir/history.jsonl and rewrites run_dir/checkpoint.npz atomically.
    `progress(epoch, record)` is called after each epoch; `augment(train_data, epoch)` gives the epoch's
    (augmented) training set; `on_batch(epoch, samples_done, samples_total)` after every batch. `resume` (from
    `load_resume`) continues after the last completed epoch with exactly
    the state an uninterrupted run would have had (every random draw is seeded per epoch)."""
    best, history, since_best, start = None, [], 0, 0
    if resume is None:
        trainer = make_trainer(spec, settings)
    else:
        spec, history = resume["initial"], list(resume["history"])
        trainer = make_trainer(spec, settings, current=resume["network"])
        trainer.restore(resume)
        meta = resume["meta"]
        best = (selection_key(history[meta["best_epoch"]], settings.selection_metric), resume["best"],
                meta["best_epoch"])
        since_best, start = meta["since_best"], meta["epoch"] + 1
    for epoch in range(start, settings.epochs):
        record = trainer.run_epoch(epoch, augment(train_data, epoch) if augment else train_data, on_batch)
        current = trainer.net.to_spec()
        val = evaluate(current, val_data, max_spikes=settings.max_spikes, allow_overflow=settings.allow_overflow,
                       loss_fn=trainer.loss_fn)
        record.update({"validation_accuracy": val["accuracy"], "validation_loss": val["loss"]})
        trainer.schedule.end_epoch(epoch, record)
        history.append(record)
        key = selection_key(record, settings.selection_metric)
        if best is None or key > best[0]:
            best, since_best = (key, current, epoch), 0
        else:
            since_best += 1
        if run_dir is not None:
            _append_history(Path(run_dir), record)
            save_checkpoint(Path(run_dir), current, best[1], trainer.optimisers, epoch, best[2],
                            history[best[2]]["validation_accuracy"], initial=spec,
                            state={"since_best": since_best, "schedule": trainer.schedule.state()})
        if progress is not None:
            progress(epoch, record)
        if settings.early_stop_patience and since_best >= settings.early_stop_patience:
            break
    return best[1], history


class LearningRates:
    """The factor applied to every base learning rate: ease-in per batch (x1.05 from lr_ease_in_start up to 1),
    exponential decay per epoch, and the EMA halving schedule of Nowotny et al. 2025 section 4.7:
        m_fast <- 0.8 m_fast + 0.2 x,  m_slow <- 0.85 m_slow + 0.15 x  (x: the selection accuracy of the epoch)
        if m_fast < m_slow and >= ema_min_epochs epochs since the last change: halve."""

    EASE_IN_FACTOR = 1.05

    def __init__(self, settings: TrainSettings):
        self.settings = settings
        self.ease_in = settings.lr_ease_in_start
        self.halving = 1.0
        self.m_fast = self.m_slow = None
        self.last_change = 0

    def state(self) -> dict:
        return {"ease_in": self.ease_in, "halving": self.halving, "m_fast": self.m_fast, "m_slow": self.m_slow,
                "last_change": self.last_change}

    def load_state(self, state: dict) -> None:
        self.ease_in, self.halving = state["ease_in"], state["halving"]
        self.m_fast, self.m_slow, self.last_change = state["m_fast"], state["m_slow"], state["last_change"]

    def factor(self, epoch: int) -> float:
        return self.ease_in * self.halving * self.settings.lr_decay_per_epoch ** epoch

    def end_batch(self) -> None:
        self.ease_in = min(1.0, self.ease_in * self.EASE_IN_FACTOR)

    def end_epoch(self, epoch: int, record: dict) -> None:
        if not self.settings.ema_halving:
            return
        metric = self.settings.selection_metric if self.settings.selection_metric.endswith("accuracy") \
            else "validation_accuracy"
        x = record[metric]
        self.m_fast = x if self.m_fast is None else 0.8 * self.m_fast + 0.2 * x
        self.m_slow = x if self.m_slow is None else 0.85 * self.m_slow + 0.15 * x
        if self.m_fast < self.m_slow and epoch - self.last_change >= self.settings.ema_min_epochs:
            self.halving *= 0.5
            self.last_change = epoch


class Trainer:
    """One network being trained: its compiled form, one Adam per parameter group, the learning-rate schedule."""

    def __init__(self, spec: NetworkSpec, settings: TrainSettings, current: NetworkSpec | None = None):
        self.spec, self.settings = spec, settings
        self.net = CompiledNetwork.from_spec(current or spec, np.dtype(settings.precision), settings.device)
        # net.w_flat, delay_flat and the taus are updated in place by the optimisers
        self.optimisers = {"adam": Adam(len(self.net.w_flat)), "delay_adam": Adam(len(self.net.delay_flat)),
                           "tau_adam": Adam(2 * self.net.n_neurons)}
        self.schedule = LearningRates(settings)
        self.loss_fn = loss_from_settings(settings)
        self.output = self.net.layer_slices[spec.output.name]
        n_hidden = self.net.n_neurons - self.net.n_out
        self.reg_upper = self._per_hidden_neuron(settings.reg_lambda_upper, n_hidden)
        self.reg_lower = self._per_hidden_neuron(settings.reg_lambda_lower, n_hidden)

    def restore(self, checkpoint: dict) -> None:
        """Optimiser and schedule state from a checkpoint (`load_checkpoint`)."""
        for name, state in checkpoint["optimisers"].items():
            opt = self.optimisers[name]
            opt.m, opt.v, opt.t = state["m"].copy(), state["v"].copy(), state["t"]
        self.schedule.load_state(checkpoint["meta"]["schedule"])

    def _per_hidden_neuron(self, value, n_hidden: int) -> np.ndarray:
        layers = [layer for layer in self.spec.neuron_layers[:-1]]
        values = value if isinstance(value, list) else [value] * len(layers)
        if len(values) != len(layers):
            raise ValueError(f"regulariser strengths {value} must be one number or one per hidden layer "
                             f"({len(layers)})")
        return np.concatenate([np.full(layer.size, v, dtype=np.float64) for layer, v in zip(layers, values)]) \
            if layers else np.zeros(n_hidden)

    def update(self, batch: SpikeData, epoch: int):
        """Forward, loss, backward and the optimiser step of one batch (subclasses change the forward pass or the
        gradients, never this order). Returns (loss, scores, spike_count [B, n], dropped spikes per layer)."""
        fwd = self.forward_pass(batch)
        terms = self.loss_fn.evaluate(self.spec, fwd, self.output, batch.labels)
        counts = fwd.spike_count
        grads = self.gradients(batch, fwd, terms, self.regulariser_jump(counts))
        self.step(grads, self.schedule.factor(epoch))
        self.schedule.end_batch()
        return terms.loss, terms.scores, counts, fwd.dropped

    def forward_pass(self, batch: SpikeData):
        """The float network's forward pass on the kernels (compact when the loss needs only the scores)."""
        settings = self.settings
        return forward(self.net, batch, settings.max_spikes, settings.allow_overflow,
                       compact=self.loss_fn.compact(self.spec))

    def gradients(self, batch: SpikeData, fwd, terms, regulariser_jump):
        """EventProp's exact gradients of the loss terms (evprop.train.engine.backward)."""
        settings = self.settings
        return backward(self.net, batch, fwd, terms.dl_dv, regulariser_jump, tape_dl_dt=terms.tape_dl_dt,
                        need_delays=settings.delay_learning_rate > 0, need_taus=settings.tau_learning_rate > 0,
                        dl_dscore=terms.dl_dscore)

    def run_epoch(self, epoch: int, data: SpikeData, on_batch=None) -> dict:
        t0 = time.perf_counter()
        settings, net = self.settings, self.net
        rng = np.random.default_rng([settings.seed, epoch]) if settings.shuffle else None
        losses, correct, dropped, done = 0.0, 0, {}, 0
        epoch_counts = np.zeros(net.n_neurons, dtype=np.int64)
        for idx in batches(len(data), settings.batch_size, rng):
            batch = data.subset(idx)
            loss, scores, counts, batch_dropped = self.update(batch, epoch)
            losses += loss * len(idx)
            correct += int(np.sum(scores.argmax(axis=1) == batch.labels))
            epoch_counts += counts.sum(axis=0)
            for name, n in batch_dropped.items():
                dropped[name] = dropped.get(name, 0) + n
            done += len(idx)
            if on_batch is not None:
                on_batch(epoch, done, len(data))
        silent = self.rescue_silent(epoch_counts)
        n_hidden = net.n_neurons - net.n_out
        return {"epoch": epoch, "loss": losses / len(data), "train_accuracy": correct / len(data),
                "learning_rate": settings.learning_rate * self.schedule.factor(epoch),
                "hidden_spikes_per_sample": float(epoch_counts[:n_hidden].sum()) / len(data),
                "silent_hidden_neurons": silent, "dropped_spikes": dropped, "seconds": time.perf_counter() - t0,
                "algorithm": settings.algorithm}

    def step(self, grads, factor: float) -> None:
        """One Adam step per learned parameter group, then the clamps."""
        settings, net, opt = self.settings, self.net, self.optimisers
        if settings.learning_rate > 0:
            opt["adam"].step(net.w_flat, grads.weights, settings.learning_rate * factor)
        if settings.delay_learning_rate > 0:
            # delays are parameters in steps; the rate is in ms so that configs do not depend on dt
            opt["delay_adam"].step(net.delay_flat, grads.delays, settings.delay_learning_rate * factor
                                   / self.spec.dt_ms)
            net.clamp_delays()
        if settings.tau_learning_rate > 0:
            taus = np.concatenate([net.tau_mem, net.tau_syn])
            opt["tau_adam"].step(taus, np.concatenate([grads.tau_mem, grads.tau_syn]),
                                 settings.tau_learning_rate * factor)
            net.tau_mem[:], net.tau_syn[:] = taus[:net.n_neurons], taus[net.n_neurons:]
            net.clamp_taus(settings.min_tau_mem_ms, settings.min_tau_syn_ms)

    def regulariser_jump(self, spike_count: np.ndarray) -> np.ndarray | None:
        """Lam_V jump at each spike of a hidden neuron: the heuristic of Nowotny, Turner & Knight (2025), eq. (7),
        in mlGeNN's form with the batch's own counts, its strengths in mlGeNN's units:
            mlGeNN:  LambdaV -= RegLambda (sum_batch count - int(nu B)),
                     RegLambda = reg_lambda_upper / B^2 above the target, reg_lambda_lower / B^2 below.
        mlGeNN's adjoints are the papers' lambda divided by the output layer's tau_mem (its loss drive is divided
        by TauM of the output neurons), and the papers' lambda_V = -Lam_V / tau_mem of the hidden neuron, so
        LambdaV = -Lam_V / (tau_mem_hidden tau_mem_out) and
            Lam_V += tau_mem_hidden * tau_mem_out * RegLambda (sum_batch count - int(nu B))
        (docs/gradients_vs_mlgenn.md; tests/test_mlgenn_schedule.py checks it with hidden and output taus that
        differ). Output neurons with their own tau_mem each: their mean (mlGeNN has one per population)."""
        if not (np.any(self.reg_upper) or np.any(self.reg_lower)):
            return None
        n_batch = spike_count.shape[0]
        n_hidden = len(self.reg_upper)
        excess = spike_count[:, :n_hidden].sum(axis=0) - int(self.settings.reg_nu_upper * n_batch)
        strength = np.where(excess > 0, self.reg_upper, self.reg_lower) / n_batch ** 2
        tau_mem_out_ms = float(np.mean(self.net.tau_mem[self.output]))
        jump = np.zeros(spike_count.shape)
        jump[:, :n_hidden] = self.net.tau_mem[:n_hidden] * tau_mem_out_ms * strength * excess
        return jump

    def rescue_silent(self, epoch_counts: np.ndarray) -> int:
        """Add settings.silent_rescue to every incoming weight of hidden neurons that did not fire in the whole
        epoch (Nowotny et al. 2025 section 4.5: +0.002). Returns how many hidden neurons were silent."""
        net = self.net
        silent = epoch_counts[:net.n_neurons - net.n_out] == 0
        if self.settings.silent_rescue and silent.any():
            for conn in self.spec.connections:
                post = net.layer_slices[conn.target]
                mask = np.zeros(net.n_neurons, dtype=bool)
                mask[:len(silent)] = silent
                columns = mask[post]
                if columns.any():
                    weights = net.w_flat[net.conn_slices[conn.name]].reshape(conn.weight.shape)
                    weights[:, columns] += self.settings.silent_rescue
        return int(silent.sum())


def _trainers() -> dict:
    """{train.algorithm: Trainer class}: EventProp, and the BPTT-family baselines (evprop.train.baselines) that
    share everything but the gradient computation (imported here: they subclass Trainer)."""
    from .baselines.trainer import BaselineTrainer
    from .baselines.backward import ALGORITHMS as BASELINES
    return {"eventprop": Trainer, **{name: BaselineTrainer for name in BASELINES}}


def algorithm_names() -> tuple:
    return tuple(_trainers())


def make_trainer(spec: NetworkSpec, settings: TrainSettings, current: NetworkSpec | None = None) -> Trainer:
    """The trainer registered for settings.algorithm."""
    trainers = _trainers()
    if settings.algorithm not in trainers:
        raise ValueError(f"train.algorithm '{settings.algorithm}' unknown, expected one of {sorted(trainers)}")
    return trainers[settings.algorithm](spec, settings, current)


def loss_from_settings(settings: TrainSettings):
    return get_loss(settings.loss, **settings.loss_params)


def default_loss(spec: NetworkSpec):
    """The loss used to report a network's loss when none is given: cross-entropy of its readout, or L_time for
    first-spike networks."""
    return get_loss(spec.readout_rule.default_loss)


def selection_key(record: dict, metric: str = "validation_accuracy") -> tuple:
    """How the kept model is chosen: the selection metric (losses: lower is better), ties broken by lower
    validation loss (training loss without a validation set)."""
    tie = record["validation_loss"] if np.isfinite(record["validation_loss"]) else record["loss"]
    return SELECTION_METRICS[metric] * record[metric], -tie


def best_epoch(history: list, metric: str = "validation_accuracy") -> int:
    return max(range(len(history)), key=lambda i: selection_key(history[i], metric))


def load_resume(run_dir: Path) -> dict:
    """Everything `train(resume=...)` needs from a run directory: the checkpoint of the last completed epoch and
    the history up to it (a line written after that checkpoint, by a run killed in between, is dropped)."""
    run_dir = Path(run_dir)
    checkpoint = load_checkpoint(run_dir / "checkpoint.npz")
    if "schedule" not in checkpoint["meta"]:
        raise ValueError(f"{run_dir / 'checkpoint.npz'}: checkpoint holds no training-loop state to resume from")
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    n_epochs = checkpoint["meta"]["epoch"] + 1
    if len(lines) < n_epochs:
        raise ValueError(f"{path}: {len(lines)} epochs recorded, the checkpoint is after epoch {n_epochs}")
    history = [json.loads(line) for line in lines[:n_epochs]]
    atomic_write(path, lambda handle: handle.write(("\n".join(lines[:n_epochs]) + "\n").encode()))
    return {**checkpoint, "history": history}


def _append_history(run_dir: Path, record: dict) -> None:
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() and record["epoch"] > 0 else []
    lines.append(json.dumps(record))
    atomic_write(path, lambda handle: handle.write(("\n".join(lines) + "\n").encode()))


def save_checkpoint(run_dir: Path, current: NetworkSpec, best: NetworkSpec, optimisers: dict, epoch: int,
                    best_epoch: int, best_accuracy: float, initial: NetworkSpec, state: dict | None = None) -> None:
    """checkpoint.npz: the initial, current and best networks, every optimiser's state, the epoch and the loop's
    state (`state`: schedule, epochs since the best) (atomic write)."""
    arrays = {**network_to_arrays(current, "net"), **network_to_arrays(best, "best"),
              **network_to_arrays(initial, "initial"),
              "meta": np.array(json.dumps({"format": CHECKPOINT_FORMAT, "epoch": epoch, "best_epoch": best_epoch,
                                           "best_validation_accuracy": best_accuracy,
                                           "optimisers": sorted(optimisers), **(state or {})}))}
    for name, opt in optimisers.items():
        arrays.update({f"{name}/m": opt.m, f"{name}/v": opt.v, f"{name}/t": np.array(opt.t)})
    save_arrays(run_dir / "checkpoint.npz", arrays)


def load_checkpoint(path: Path) -> dict:
    """{'network', 'best', 'initial', 'meta', 'optimisers'} from a checkpoint file; anything else is a one-line
    ValueError."""
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
            "best": network_from_arrays(arrays, "best", str(path)),
            "initial": network_from_arrays(arrays, "initial", str(path)) if "initial/spec" in arrays else None,
            "meta": meta, "optimisers": optimisers}
