"""Energy ESTIMATE from event counts of the fixed-point emulator (what the target would do per inference).

Model "loihi1-table2": Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE Micro
38(1):82-99, 2018, Table 2 (pre-silicon SDF + SPICE simulation at 0.75 V; ../shared/notes/anchors.md 1.1):

    E = SOP x 23.6 pJ  +  active neuron updates x 81 pJ  +  inactive neuron updates x 52 pJ

A synaptic operation (SOP) is one spike delivered to one target (spikes x fan-out, delayed ones included, input
spikes included), as in the published EventProp-to-Loihi exporter's `--calc-sop`. A neuron update is every neuron in
every step; "active" ones are those whose state is non-zero after the step. Loihi 1 constants applied to event
counts, not a Loihi 2 figure, and no static power or routing: an estimate, not a measurement.
"""

from __future__ import annotations

LOIHI1 = {
    "model": "loihi1-table2",
    "source": "Davies et al. 2018, IEEE Micro 38(1):82-99, Table 2 (pre-silicon simulation, 0.75 V)",
    "pj_per_synaptic_op": 23.6,
    "pj_per_active_neuron_update": 81.0,
    "pj_per_inactive_neuron_update": 52.0,
}


def loihi_estimate(synaptic_ops: float, active_updates: float, inactive_updates: float) -> dict:
    """Per-inference energy estimate [uJ] from per-inference counts, with its constants and source."""
    pj = (synaptic_ops * LOIHI1["pj_per_synaptic_op"]
          + active_updates * LOIHI1["pj_per_active_neuron_update"]
          + inactive_updates * LOIHI1["pj_per_inactive_neuron_update"])
    return {"kind": "estimate", **LOIHI1,
            "counts_per_inference": {"synaptic_ops": synaptic_ops, "active_neuron_updates": active_updates,
                                     "inactive_neuron_updates": inactive_updates},
            "estimated_uj_per_inference": pj * 1e-6,
            "note": "ESTIMATE from event counts with Loihi 1 per-operation constants; not a measurement, "
                    "no static power, routing or memory traffic"}
