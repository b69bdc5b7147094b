"""Compare the fixed-point emulator with Lava sample by sample: "matches the hardware" as an exact statement."""

from __future__ import annotations

import numpy as np


def compare(emulator_result, lava_result) -> dict:
    """Compare the first n = lava_result.n_samples samples of both results (Lava usually runs a subset).

    Returns {'n_samples', 'bit_exact' (every sample: identical hidden spikes in every layer and identical output
    v integers), 'spikes_identical_fraction', 'outputs_identical_fraction' (fractions of samples),
    'per_sample': [{'index', 'spikes_identical', 'outputs_identical', 'spike_mismatches',
    'max_abs_v_difference', 'first_spike_mismatch_step'}]}.
    """
    n = lava_result.n_samples
    if emulator_result.n_samples < n:
        raise ValueError(f"compare: emulator has {emulator_result.n_samples} samples, Lava {n}")
    layers = sorted(lava_result.hidden_spikes)
    if layers != sorted(emulator_result.hidden_spikes):
        raise ValueError(f"compare: hidden layers differ (Lava {layers}, emulator "
                         f"{sorted(emulator_result.hidden_spikes)}; emulate with record_hidden=True)")
    emu_v = emulator_result.v_out[:n]
    if emu_v.shape != lava_result.v_out.shape:
        raise ValueError(f"compare: output shapes differ (emulator {emu_v.shape}, Lava {lava_result.v_out.shape})")
    mismatch = np.zeros(lava_result.v_out.shape[:2], dtype=np.int64)      # [samples, steps]
    for name in layers:
        a, b = emulator_result.hidden_spikes[name][:n], lava_result.hidden_spikes[name]
        if a.shape != b.shape:
            raise ValueError(f"compare: layer '{name}' shapes differ (emulator {a.shape}, Lava {b.shape})")
        mismatch += (a != b).sum(axis=2)
    v_diff = np.abs(emu_v.astype(np.int64) - lava_result.v_out.astype(np.int64)).max(axis=(1, 2), initial=0)
    per_sample = []
    for i in range(n):
        bad_steps = np.nonzero(mismatch[i])[0]
        per_sample.append({"index": i, "spikes_identical": not bad_steps.size,
                           "outputs_identical": bool(v_diff[i] == 0),
                           "spike_mismatches": int(mismatch[i].sum()), "max_abs_v_difference": int(v_diff[i]),
                           "first_spike_mismatch_step": int(bad_steps[0]) if bad_steps.size else None})
    spikes_ok = np.array([p["spikes_identical"] for p in per_sample], dtype=bool)
    outputs_ok = np.array([p["outputs_identical"] for p in per_sample], dtype=bool)
    return {"n_samples": n, "bit_exact": bool(n > 0 and spikes_ok.all() and outputs_ok.all()),
            "spikes_identical_fraction": float(spikes_ok.mean()) if n else 0.0,
            "outputs_identical_fraction": float(outputs_ok.mean()) if n else 0.0, "per_sample": per_sample}
