"""The schema of report.json, as plain dicts, and `validate_report(report) -> [problems]`.

A schema node is {"type": T, ...} with T one of "object", "array", "number", "integer", "string", "boolean",
"null", "any", or a tuple of them (any may match). Objects list `required` and `optional` {key: node}, and
`values`: a node every other key must match (maps such as per-layer dicts; without it extra keys are allowed).
Arrays have `items`. "const" fixes a value; "contains" a substring a string must hold (case-insensitive).
"""

from __future__ import annotations

NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
ANY = {"type": "any"}
FRACTION = {"type": "number", "min": 0.0, "max": 1.0}
MAYBE_NUMBER = {"type": ("number", "null")}
CI95 = {"type": "array", "items": NUMBER}          # [low, high] of a 95% interval (evprop/pipeline/stats.py)


def obj(required: dict | None = None, optional: dict | None = None, values: dict | None = None) -> dict:
    node = {"type": "object", "required": required or {}, "optional": optional or {}}
    if values is not None:
        node["values"] = values
    return node


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


ESTIMATE_TERM = obj({"what": STRING, "count": NUMBER, "pj_each": NUMBER, "estimated_uj": NUMBER,
                     "kind": {"type": "string", "const": "estimate"}, "model": STRING, "source": STRING})

ESTIMATE = obj({"kind": {"type": "string", "const": "estimate"}, "model": STRING, "hardware": STRING,
                "source": STRING, "terms": array(ESTIMATE_TERM), "estimated_uj_per_inference": NUMBER,
                "assumptions": STRING, "note": {"type": "string", "contains": "estimate"}})

MEASURED = obj({"joules": MAYBE_NUMBER, "seconds": MAYBE_NUMBER, "source": STRING, "what": STRING,
                "n_inferences": {"type": ("integer", "null")}, "joules_per_inference": MAYBE_NUMBER},
               {"parts": ANY, "scope": STRING, "unavailable": ANY})

ENERGY = obj({
    "kind": {"type": "string", "const": "estimate"}, "model": STRING, "source": {"type": "string",
                                                                                "contains": "Davies"},
    "pj_per_synaptic_op": NUMBER, "pj_per_active_neuron_update": NUMBER, "pj_per_inactive_neuron_update": NUMBER,
    "counts_per_inference": obj({"synaptic_ops": NUMBER, "active_neuron_updates": NUMBER,
                                 "inactive_neuron_updates": NUMBER}, {"neuron_updates": NUMBER, "spikes": NUMBER}),
    "estimated_uj_per_inference": NUMBER,
    "note": {"type": "string", "contains": "estimate"},
    "estimates": array(ESTIMATE),
    "dense_counts": {"type": ("object", "null")},
    "measured": obj({"training": MEASURED, "verification": MEASURED}, values=MEASURED),
    "criticisms": array(STRING),
}, {"pj_per_spike_within_tile": NUMBER})

QUANT_LAYER = obj({"v_lsb": NUMBER, "vth": INTEGER, "weight_bits": INTEGER}, values=ANY)
QUANT_CONNECTION = obj({"weight_exp": INTEGER, "weight_unit": NUMBER, "sign_mode": STRING, "clipped": INTEGER,
                        "clipped_fraction": FRACTION}, values=ANY)

QUANTISATION = obj({
    "layers": obj(values=QUANT_LAYER), "connections": obj(values=QUANT_CONNECTION),
    "summary": obj({"float_test_accuracy": FRACTION, "fixed_point_test_accuracy": FRACTION,
                    "accuracy_change_pp": NUMBER, "n_test": INTEGER,
                    "accuracy_change_pp_ci95": CI95, "accuracy_change_interval": STRING,
                    "prediction_agreement": {"type": ("number", "null"), "min": 0.0, "max": 1.0},
                    "clipped_weights": INTEGER, "v_saturations_seen": INTEGER, "u_wraps_seen": INTEGER,
                    "message_overflows_seen": INTEGER,
                    "spikes_per_layer": obj(values=obj({"float": MAYBE_NUMBER, "fixed_point": MAYBE_NUMBER}))},
                   {"profile": STRING, "profile_cost": ANY}),
}, {"calibrated": BOOLEAN, "percentile": NUMBER, "lif_negative_range": NUMBER}, values=ANY)

PER_LAYER = obj(values=obj({"mean_per_sample": NUMBER}))

CONFUSION = obj({"labels": array(INTEGER), "rows": {"type": "string", "const": "true class"},
                 "n_test": INTEGER},
                {"float": {"type": ("array", "null"), "items": array(INTEGER)},
                 "fixed_point": {"type": ("array", "null"), "items": array(INTEGER)}})

REPORT = obj({
    "name": STRING,
    "accuracy": obj({"float": obj({"train": FRACTION, "test": FRACTION, "n_test": INTEGER, "test_ci95": CI95}),
                     "fixed_point": obj({"test": FRACTION, "n_test": INTEGER, "test_ci95": CI95},
                                        {"finetuning_gain_pp_ci95": CI95}),
                     "lava": obj({"test": FRACTION, "n_samples": INTEGER, "test_ci95": CI95})},
                    {"reference_linear": obj({"train": FRACTION, "test": FRACTION, "n_test": INTEGER,
                                              "model": STRING})}),
    "equivalence": obj({"emulator_vs_lava": obj({"n_samples": INTEGER, "bit_exact": BOOLEAN,
                                                 "spikes_identical_fraction": FRACTION,
                                                 "outputs_identical_fraction": FRACTION})}),
    "spikes": obj({"per_layer": PER_LAYER, "float_per_layer": PER_LAYER, "synaptic_ops_per_sample": NUMBER,
                   "neuron_updates_per_sample": NUMBER}),
    "energy": ENERGY,
    "quantisation": QUANTISATION,
    "training": obj({"epochs": INTEGER, "best_epoch": INTEGER, "best_validation_accuracy": FRACTION}),
    "timing": obj({"train_s": NUMBER, "verify_s": NUMBER}),
    "versions": obj({"evprop": STRING, "python": STRING, "numpy": STRING, "nir": STRING, "lava-nc": STRING},
                    values=STRING),
}, {"confusion": CONFUSION, "hardware": obj({"report_host": obj(values=ANY)}, values=ANY)})

_PYTHON_TYPES = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


def validate(value, schema: dict, path: str = "report") -> list:
    """Problems of `value` against `schema`, each 'dotted.path: what is wrong'."""
    types = schema["type"] if isinstance(schema["type"], tuple) else (schema["type"],)
    if not any(_PYTHON_TYPES[t](value) for t in types):
        return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    problems = _check_value(value, schema, path)
    if isinstance(value, dict) and "object" in types:
        problems += _check_object(value, schema, path)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    return problems


def _check_value(value, schema: dict, path: str) -> list:
    problems = []
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "contains" in schema and isinstance(value, str) and schema["contains"].lower() not in value.lower():
        problems.append(f"{path}: must mention {schema['contains']!r}")
    if _PYTHON_TYPES["number"](value):
        if "min" in schema and value < schema["min"]:
            problems.append(f"{path}: {value} below {schema['min']}")
        if "max" in schema and value > schema["max"]:
            problems.append(f"{path}: {value} above {schema['max']}")
    return problems


def _check_object(value: dict, schema: dict, path: str) -> list:
    problems = []
    required, optional = schema.get("required", {}), schema.get("optional", {})
    for key, node in required.items():
        if key not in value:
            problems.append(f"{path}.{key}: missing")
        else:
            problems += validate(value[key], node, f"{path}.{key}")
    for key, item in value.items():
        if key in required:
            continue
        node = optional.get(key, schema.get("values"))
        if node is not None:
            problems += validate(item, node, f"{path}.{key}")
    return problems


def validate_report(report: dict) -> list:
    """Every way `report` departs from the report.json schema (empty list: valid)."""
    return validate(report, REPORT)
