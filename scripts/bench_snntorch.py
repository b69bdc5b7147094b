"""snnTorch (BPTT, PyTorch CPU) on `evprop bench`'s workload, for the speed comparison against a library people use
instead of evprop. Needs `pip install -e '.[importers]'` (snntorch, torch); appends one line per size to
benchmarks/results.jsonl with algorithm "snntorch_bptt".

    python scripts/bench_snntorch.py [--hidden 256 512] [--steps 1000] [--batch 32] [--repeats 3]

Same network, data and initial weights as evprop.pipeline.bench (700 Poisson inputs at 10 Hz, recurrent hidden
LIF tuned to ~14 Hz, 20 LI outputs, sum_exp cross-entropy, batch 32, Adam) written the way snnTorch's tutorials
write it: `snn.RSynaptic` (all-to-all recurrence) for the hidden layer, `snn.Synaptic` without reset and with an
unreachable threshold as the LI readout, a Python loop over time steps, atan surrogate, loss.backward(). The
discrete step is evprop's (docs/architecture.md, the discrete step): snnTorch's syn = alpha syn + x, mem = beta mem + syn with
alpha = exp(-dt/tau_syn), beta = exp(-dt/tau_mem) and the weights multiplied by evprop's g.
    samples_per_s      batch / median time of one update (forward, loss, backward, Adam step)
    saved_state_mb     bytes of the tensors autograd saves for the backward pass in one forward (distinct
                       storages): BPTT's training state, to set beside evprop's peak_state_mb
"""

import argparse
import json
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import snntorch as snn
import torch

from evprop.fixed_point.emulator import input_raster
from evprop.model.spec import discretise
from evprop.pipeline.measure import machine_info  # noqa: E402
from evprop.pipeline.bench import (DT_MS, N_INPUTS, TAU_MEM_MS, TAU_SYN_MS, ShdNetwork, poisson_batch,
                                   tune_input_mean)

ROOT = Path(__file__).resolve().parents[1]


class SnnTorchNet(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        alpha, beta, g = (float(x) for x in discretise(TAU_MEM_MS, TAU_SYN_MS, DT_MS))
        w_in, w_rec, w_out = (c.weight for c in spec.connections)
        hidden, n_out = w_rec.shape[0], w_out.shape[1]
        self.fc_in = torch.nn.Linear(N_INPUTS, hidden, bias=False)
        self.hidden = snn.RSynaptic(alpha=beta, beta=alpha, all_to_all=True, linear_features=hidden,
                                    reset_mechanism="zero")
        self.fc_out = torch.nn.Linear(hidden, n_out, bias=False)
        self.output = snn.Synaptic(alpha=beta, beta=alpha, threshold=1e9, reset_mechanism="none")
        with torch.no_grad():
            self.fc_in.weight.copy_(torch.as_tensor(g * w_in.T, dtype=torch.float32))
            self.hidden.recurrent.weight.copy_(torch.as_tensor(g * w_rec.T, dtype=torch.float32))
            self.hidden.recurrent.bias.zero_()
            self.fc_out.weight.copy_(torch.as_tensor(g * w_out.T, dtype=torch.float32))

    def forward(self, spikes, readout_weights):
        """spikes [T, B, N_INPUTS] -> (scores [B, n_out], hidden spike count)"""
        spk, syn, mem = self.hidden.init_rsynaptic()
        syn_out, mem_out = self.output.init_synaptic()
        scores, count = 0.0, 0.0
        for k in range(spikes.shape[0]):
            spk, syn, mem = self.hidden(self.fc_in(spikes[k]), spk, syn, mem)
            _, syn_out, mem_out = self.output(self.fc_out(spk), syn_out, mem_out)
            scores = scores + readout_weights[k] * mem_out
            count = count + spk.detach().sum()
        return scores, float(count)


def saved_state_bytes(model, spikes, readout_weights) -> int:
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(spikes, readout_weights)
    return sum(storages.values())


def bench_one(hidden: int, steps: int, batch: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)                 # the same draws as evprop.pipeline.bench.run_bench
    network = ShdNetwork(hidden, steps, False, rng)
    data = poisson_batch(batch, steps, rng)
    input_mean, _ = tune_input_mean(network, data, max_spikes=100)
    spec = network.spec(input_mean)
    model = SnnTorchNet(spec)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    spikes = torch.as_tensor(input_raster(data, 0, batch).transpose(1, 0, 2), dtype=torch.float32)
    labels = torch.as_tensor(data.labels, dtype=torch.long)
    readout_weights = torch.as_tensor(spec.readout_weights(), dtype=torch.float32)

    def update():
        optimiser.zero_grad()
        scores, count = model(spikes, readout_weights)
        torch.nn.functional.cross_entropy(scores, labels).backward()
        optimiser.step()
        return count

    count = update()                                  # warm-up, not timed
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        update()
        seconds.append(time.perf_counter() - t0)
    return {"algorithm": "snntorch_bptt", "hidden": hidden, "steps": steps, "batch": batch, "delays": False,
            "repeats": repeats, "seed": seed, "precision": "float32",
            "samples_per_s": batch / statistics.median(seconds), "update_seconds": seconds,
            "hidden_rate_hz": count / batch / hidden / (steps * DT_MS / 1000.0), "input_weight_mean": input_mean,
            "saved_state_mb": saved_state_bytes(model, spikes, readout_weights) / 2 ** 20,
            "torch": torch.__version__, "snntorch": snn.__version__, "torch_threads": torch.get_num_threads(),
            "machine": machine_info(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    for hidden in args.hidden:
        result = bench_one(hidden, args.steps, args.batch, args.repeats)
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"snnTorch BPTT, {hidden} hidden, T={args.steps}, batch {args.batch}: "
              f"{result['samples_per_s']:.1f} samples/s, hidden rate {result['hidden_rate_hz']:.1f} Hz, "
              f"saved state {result['saved_state_mb']:.0f} MB")


if __name__ == "__main__":
    main()
