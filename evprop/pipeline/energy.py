"""Energy ESTIMATES per inference from event counts, and the dense conventional baseline they are compared with.

Every figure is an estimate: per-operation energies (each with its published source) multiplied by the counts of the
fixed-point emulator (what the target does per inference). Sources (most transcribed from secondary
sources; the primary PDFs were not read here):

  loihi1-table2       Davies et al., IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon SDF + SPICE, 0.75 V):
                      23.6 pJ per synaptic op (a minimum), 81 / 52 pJ per active / inactive neuron update,
                      1.7 pJ per within-tile spike
  spinnaker2-2019     Hoeppner et al., IEEE TCAS-I 66(8):2973-2986, 2019 (28 nm test chip), as tabulated in
                      keras-spiking / NengoDL ModelEnergy: 450 pJ per synaptic op, 2.19 nJ per neuron update
  truenorth-2014      Merolla et al., Science 345:668, 2014: 26 pJ per synaptic event, total (static included) at
                      20 Hz mean rate and 128 active synapses per neuron
  horowitz45-*        Horowitz, ISSCC 2014, 45 nm, 0.9 V: FP32 MAC 4.6 pJ (0.9 add + 3.7 mult), 8-bit MAC
                      0.23 pJ, 64-bit SRAM read 10 / 20 / 100 pJ (8 KB / 32 KB / 1 MB), DRAM 1.3-2.6 nJ per 64 bit

A synaptic operation (SOP) is one spike delivered to one target (spikes x non-zero fan-out, input spikes included).
The dense baseline runs the same network on conventional hardware without exploiting sparsity: every synapse
every step is a multiply-accumulate, and - the point made by the critics of SOP-only estimates - every weight is
read from memory every step (batch size 1, no reuse across steps).
"""

from __future__ import annotations

WORD_BYTES = 8   # Horowitz's memory figures are per 64-bit access

SOURCES = {
    "loihi1": "Davies et al. 2018, IEEE Micro 38(1):82-99, Table 2 (pre-silicon simulation, 0.75 V)",
    "spinnaker2": "Hoeppner et al. 2019, IEEE TCAS-I 66(8):2973-2986 (28 nm test chip), via the keras-spiking / "
                  "NengoDL ModelEnergy device table [secondary]",
    "truenorth": "Merolla et al. 2014, Science 345:668 (measured total energy per synaptic event at 20 Hz, "
                 "128 active synapses/neuron, 0.775 V)",
    "horowitz": "Horowitz 2014, ISSCC 'Computing's energy problem', 45 nm, 0.9 V",
}

LOIHI1 = {
    "model": "loihi1-table2",
    "source": SOURCES["loihi1"],
    "pj_per_synaptic_op": 23.6,
    "pj_per_active_neuron_update": 81.0,
    "pj_per_inactive_neuron_update": 52.0,
    "pj_per_spike_within_tile": 1.7,
}
SPINNAKER2 = {"pj_per_synaptic_op": 450.0, "pj_per_neuron_update": 2190.0}
TRUENORTH = {"pj_per_synaptic_event": 26.0}
HOROWITZ = {"pj_per_mac_fp32": 4.6, "pj_per_mac_int8": 0.23, "pj_per_ac_fp32": 0.9,
            "pj_per_64bit_read_sram": {8 * 1024: 10.0, 32 * 1024: 20.0, 1024 * 1024: 100.0},
            "pj_per_64bit_read_dram": 1300.0, "pj_per_64bit_read_dram_high": 2600.0}

LOIHI_CORE_COMPARTMENTS = 1024

ESTIMATE_NOTE = ("ESTIMATE from per-inference event counts and published per-operation constants; not a "
                 "measurement")

CRITICISMS = [
    "Dampfhoffer et al. 2023 (IEEE TETCI 7(3):731-741): many studies ignore memory accesses, an important part of "
    "the energy; SNNs win only at very high sparsity (0.15-1.38 spikes per synapse per inference).",
    "Yan et al. 2024 (arXiv 2409.08290): op-count estimates neglect data movement and memory access.",
    "Bhattacharjee et al. 2023 (arXiv 2309.03388): gains measured on accelerator simulators differ significantly "
    "from op-count estimates.",
    "Loihi's 23.6 pJ/SOP is a minimum from pre-silicon simulation (a lower bound); no static power, routing "
    "between cores or chips, or host I/O is included in the neuromorphic estimates here.",
    "Horowitz's 45 nm figures are old-node, per-operation energies; only ratios between estimates built from the "
    "same table are defensible.",
]


def term(model: str, what: str, count: float, pj_each: float, source: str) -> dict:
    """One line of an estimate: count x energy per operation."""
    return {"what": what, "count": float(count), "pj_each": float(pj_each),
            "estimated_uj": float(count) * float(pj_each) * 1e-6, "kind": "estimate", "model": model,
            "source": source}


def estimate(model: str, hardware: str, terms: list, assumptions: str) -> dict:
    """An estimate per inference: the sum of its terms, labelled with its model, sources and assumptions."""
    return {"kind": "estimate", "model": model, "hardware": hardware,
            "source": "; ".join(dict.fromkeys(t["source"] for t in terms)), "terms": terms,
            "estimated_uj_per_inference": sum(t["estimated_uj"] for t in terms),
            "assumptions": assumptions, "note": ESTIMATE_NOTE}


# ---- event-driven (neuromorphic) estimates ----

def loihi1_estimate(counts: dict, n_neurons: int | None = None) -> dict:
    model, src = LOIHI1["model"], SOURCES["loihi1"]
    inactive = counts["neuron_updates"] - counts["active_neuron_updates"]
    spikes = sum(counts["spikes_per_layer"].values())
    fits = n_neurons is None or n_neurons <= LOIHI_CORE_COMPARTMENTS
    result = estimate(model, "Intel Loihi 1 (14 nm)", [
        term(model, "synaptic ops", counts["synaptic_ops"], LOIHI1["pj_per_synaptic_op"], src),
        term(model, "active neuron updates", counts["active_neuron_updates"], LOIHI1["pj_per_active_neuron_update"],
             src),
        term(model, "inactive neuron updates", inactive, LOIHI1["pj_per_inactive_neuron_update"], src),
        term(model, "spikes routed within a tile", spikes, LOIHI1["pj_per_spike_within_tile"], src),
    ], "Loihi 1 constants applied to the counts of this network (no Loihi 2 per-op figures are published); "
       "'active' neuron updates are neuron-steps with non-zero u or v; every spike (input included) is charged one "
       "within-tile hop and no tile-to-tile hops"
       + ("" if fits else f" (the network has {n_neurons} neurons, more than one core's "
                          f"{LOIHI_CORE_COMPARTMENTS} compartments: hops are missing)")
       + "; no static power (about 104 mW per chip, Frady et al. 2020) since the on-chip step time is unknown")
    return result


def spinnaker2_estimate(counts: dict) -> dict:
    model, src = "spinnaker2-2019", SOURCES["spinnaker2"]
    return estimate(model, "SpiNNaker 2 (28 nm test chip)", [
        term(model, "synaptic ops", counts["synaptic_ops"], SPINNAKER2["pj_per_synaptic_op"], src),
        term(model, "neuron updates (every neuron every step)", counts["neuron_updates"],
             SPINNAKER2["pj_per_neuron_update"], src),
    ], "every neuron is updated every step (time-driven ARM cores); constants of the 2019 test chip")


def truenorth_estimate(counts: dict) -> dict:
    model, src = "truenorth-2014", SOURCES["truenorth"]
    return estimate(model, "IBM TrueNorth (28 nm)", [
        term(model, "synaptic events (static and neuron energy included)", counts["synaptic_ops"],
             TRUENORTH["pj_per_synaptic_event"], src),
    ], "26 pJ is total chip energy divided by synaptic events at one operating point, so neuron updates and static "
       "power are folded in; TrueNorth could not run this network as is (binary synapses, 4 weight values per "
       "neuron, 1 ms tick)")


def sop_convention_estimate(counts: dict) -> dict:
    model, src = "horowitz45-sop-ac", SOURCES["horowitz"]
    return estimate(model, "event-driven accumulate at 45 nm (literature convention)", [
        term(model, "synaptic ops as FP32 additions", counts["synaptic_ops"], HOROWITZ["pj_per_ac_fp32"], src),
    ], "the common 'SOP x 0.9 pJ' convention of SNN papers, shown only for comparability with them: no neuron "
       "updates and no memory traffic")


# ---- dense conventional baseline ----

def dense_counts(spec) -> dict:
    """Dense work of one inference of `spec` (NetworkSpec): every synapse every step, every neuron every step."""
    sizes = {layer.name: layer.size for layer in spec.layers}
    synapses = sum(sizes[c.source] * sizes[c.target] for c in spec.connections)
    neurons = sum(layer.size for layer in spec.neuron_layers)
    return {"n_steps": spec.n_steps, "synapses": synapses, "neurons": neurons,
            "macs_per_inference": spec.n_steps * synapses,
            "state_macs_per_inference": 2 * spec.n_steps * neurons}


def sram_read_pj(n_bytes: int) -> tuple:
    """(pJ per 64-bit read, label) of the smallest Horowitz SRAM holding n_bytes, or DRAM if none does."""
    for size, pj in sorted(HOROWITZ["pj_per_64bit_read_sram"].items()):
        if n_bytes <= size:
            return pj, f"{size // 1024} KB SRAM" if size < 1024 * 1024 else f"{size // 1024 ** 2} MB SRAM"
    return HOROWITZ["pj_per_64bit_read_dram"], "DRAM (does not fit 1 MB SRAM)"


def dense_estimate(dense: dict, weight_bytes: int, memory: str) -> dict:
    """Dense baseline with `weight_bytes` per weight (4: FP32, 1: int8) and weights read from `memory`
    ('sram': the smallest SRAM that holds them, 'dram': DRAM every step)."""
    precision = "fp32" if weight_bytes == 4 else "int8"
    model, src = f"horowitz45-dense-{precision}-{memory}", SOURCES["horowitz"]
    mac_pj = HOROWITZ["pj_per_mac_fp32"] if weight_bytes == 4 else HOROWITZ["pj_per_mac_int8"]
    total_bytes = dense["synapses"] * weight_bytes
    if memory == "sram":
        read_pj, where = sram_read_pj(total_bytes)
    else:
        read_pj, where = HOROWITZ["pj_per_64bit_read_dram"], "DRAM (low end of 1.3-2.6 nJ)"
    weight_reads = dense["n_steps"] * total_bytes / WORD_BYTES
    state_accesses = 2 * dense["n_steps"] * dense["neurons"]
    state_pj, state_where = sram_read_pj(dense["neurons"] * WORD_BYTES)
    return estimate(model, f"conventional processor, 45 nm, {precision.upper()} weights", [
        term(model, f"{precision.upper()} multiply-accumulates (every synapse every step)",
             dense["macs_per_inference"], mac_pj, src),
        term(model, "neuron state multiply-accumulates (u and v decay, every neuron every step)",
             dense["state_macs_per_inference"], mac_pj, src),
        term(model, f"64-bit weight reads from {where}, every weight every step", weight_reads, read_pj, src),
        term(model, f"64-bit neuron state accesses ({state_where}, u and v read + written every step)",
             state_accesses, state_pj, src),
    ], f"dense network run step by step at batch size 1: {dense['synapses']} weights of {weight_bytes} byte(s) "
       f"({total_bytes / 1024:.1f} KB) packed into 64-bit words and read from {where} once per step (no reuse "
       f"across steps), neuron state (u, v) in one 64-bit word per neuron; instruction fetch, control and "
       f"input/output traffic are not counted")


def neuromorphic_estimates(counts: dict, n_neurons: int | None = None) -> list:
    return [loihi1_estimate(counts, n_neurons), spinnaker2_estimate(counts), truenorth_estimate(counts),
            sop_convention_estimate(counts)]


def conventional_estimates(dense: dict) -> list:
    return [dense_estimate(dense, bytes_, memory) for bytes_ in (4, 1) for memory in ("sram", "dram")]


def energy_section(counts: dict, dense: dict | None, measured: dict, n_neurons: int | None = None) -> dict:
    """report.json's `energy`: the Loihi 1 headline (README keys), every estimate, the dense counts, and the
    measured host energies (each {'joules', 'seconds', 'source', ...} or a 'not measurable here' source)."""
    loihi = loihi1_estimate(counts, n_neurons)
    estimates = neuromorphic_estimates(counts, n_neurons) + (conventional_estimates(dense) if dense else [])
    return {
        "kind": "estimate", **LOIHI1,
        "counts_per_inference": {"synaptic_ops": counts["synaptic_ops"],
                                 "active_neuron_updates": counts["active_neuron_updates"],
                                 "inactive_neuron_updates": counts["neuron_updates"] - counts["active_neuron_updates"],
                                 "neuron_updates": counts["neuron_updates"],
                                 "spikes": sum(counts["spikes_per_layer"].values())},
        "estimated_uj_per_inference": loihi["estimated_uj_per_inference"],
        "note": f"{ESTIMATE_NOTE}. Headline: model {LOIHI1['model']} ({loihi['assumptions']})",
        "estimates": estimates,
        "dense_counts": dense,
        "measured": measured,
        "criticisms": CRITICISMS,
    }

