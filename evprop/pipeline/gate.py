"""A pass/fail gate on a verification run, for other people's CI (`evprop verify ... --junit FILE`).

Input: the verification summary of `evprop.pipeline.stages.verify_stage` (verify.json: `bit_exact`,
`outputs_identical_fraction`, `per_sample` from `evprop.hw_sim.verify.compare`, `lava_test_accuracy`) plus the
fixed-point and float test accuracies (quantise.json `fixed_point_test_accuracy`, train.json
`float_test_accuracy`). All accuracies are fractions in [0, 1]; the accuracy-drop criterion is stated in
percentage points (pp): drop = 100 * (float - fixed point).

Criteria (`GateCriteria`):
    bit_exact            (default on)  every verified sample: identical hidden spikes and output v, emulator vs Lava
    min_output_agreement (optional)    fraction of samples with identical output v integers >= F   (F in [0, 1])
    max_accuracy_drop_pp (optional)    float test accuracy - fixed-point test accuracy <= PP percentage points

Outputs: `GateResult` (one `Check` per criterion, per-sample checks), `write_summary_json` (machine-readable) and
`write_junit` (JUnit XML: testsuite "criteria" with one testcase per criterion, testsuite "samples" with one
testcase per verified sample; a failing testcase carries a <failure message=...>).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..model.io import atomic_write

GATE_FORMAT = "evprop-gate"
GATE_VERSION = 1
PP_PER_FRACTION = 100.0            # accuracy fraction -> percentage points
JUNIT_SUITE_NAME = "evprop.verify"


@dataclass(frozen=True)
class GateCriteria:
    """What the gate demands. None disables an optional criterion.

    bit_exact:            require emulator == Lava bit for bit on every verified sample
    min_output_agreement: minimum fraction [0, 1] of verified samples whose output v integers are identical
    max_accuracy_drop_pp: maximum float - fixed-point test accuracy drop [percentage points, >= 0]
    """

    bit_exact: bool = True
    min_output_agreement: float | None = None
    max_accuracy_drop_pp: float | None = None

    def __post_init__(self):
        f = self.min_output_agreement
        if f is not None and not (isinstance(f, (int, float)) and 0.0 <= f <= 1.0):
            raise ValueError(f"gate: min_output_agreement {f!r} must be a fraction in [0, 1]")
        pp = self.max_accuracy_drop_pp
        if pp is not None and not (isinstance(pp, (int, float)) and math.isfinite(pp) and pp >= 0):
            raise ValueError(f"gate: max_accuracy_drop_pp {pp!r} must be a number of percentage points >= 0")


@dataclass(frozen=True)
class Check:
    """One gate criterion (or one verified sample): its name, whether it passed, the measured value, the limit,
    and a one-line message (the failure message when it failed)."""

    name: str
    passed: bool
    value: object
    limit: object
    message: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    criteria: tuple                        # Check per enabled criterion
    samples: tuple                         # Check per verified sample (emulator vs Lava)
    accuracies: dict = field(default_factory=dict)   # {'float', 'fixed_point', 'lava'}: fraction or None
    n_samples: int = 0

    @property
    def failures(self) -> list:
        return [c for c in self.criteria if not c.passed]

    def to_dict(self, criteria: GateCriteria | None = None) -> dict:
        out = {"format": GATE_FORMAT, "version": GATE_VERSION, "passed": self.passed, "n_samples": self.n_samples,
               "accuracies": self.accuracies, "criteria": [asdict(c) for c in self.criteria],
               "samples": [asdict(s) for s in self.samples],
               "failures": [c.message for c in self.failures]}
        if criteria is not None:
            out["settings"] = asdict(criteria)
        return out


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def _require(summary: dict, key: str, what: str):
    if key not in summary:
        raise ValueError(f"gate: the verification summary lacks '{key}' ({what})")
    return summary[key]


def sample_checks(per_sample: list) -> tuple:
    """One Check per verified sample: passed if its hidden spikes and output v are identical in both."""
    checks = []
    for entry in per_sample:
        ok = bool(entry["spikes_identical"]) and bool(entry["outputs_identical"])
        if ok:
            message = "emulator and Lava identical"
        else:
            parts = []
            if not entry["spikes_identical"]:
                parts.append(f"{entry['spike_mismatches']} hidden spike mismatches, first in step "
                             f"{entry['first_spike_mismatch_step']}")
            if not entry["outputs_identical"]:
                parts.append(f"output v differs by up to {entry['max_abs_v_difference']} LSB")
            message = "; ".join(parts)
        checks.append(Check(f"sample_{entry['index']}", ok, ok, True, message))
    return tuple(checks)


def _bit_exact_check(summary: dict, samples: tuple) -> Check:
    n = int(_require(summary, "n_samples", "number of verified samples"))
    ok = bool(_require(summary, "bit_exact", "emulator vs Lava bit-exactness")) and n > 0
    bad = [s.name for s in samples if not s.passed]
    if ok:
        message = f"emulator == Lava bit for bit on all {n} samples"
    elif n == 0:
        message = "no samples were verified"
    else:
        message = (f"emulator != Lava on {len(bad) if samples else 'some'} of {n} samples"
                   + (f" (first: {', '.join(bad[:5])})" if bad else ""))
    return Check("bit_exact", ok, ok, True, message)


def _agreement_check(summary: dict, minimum: float) -> Check:
    value = float(_require(summary, "outputs_identical_fraction", "fraction of samples with identical outputs"))
    ok = value >= minimum
    relation = ">=" if ok else "<"
    return Check("min_output_agreement", ok, value, minimum,
                 f"output agreement {value:.4f} {relation} required {minimum:.4f} (fraction of samples with "
                 f"identical output v)")


def _accuracy_drop_check(float_acc, fixed_acc, maximum_pp: float) -> Check:
    if float_acc is None or fixed_acc is None:
        missing = "float" if float_acc is None else "fixed-point"
        return Check("max_accuracy_drop", False, None, maximum_pp,
                     f"the {missing} test accuracy is not available (train.json / quantise.json missing?)")
    drop = PP_PER_FRACTION * (float(float_acc) - float(fixed_acc))
    ok = drop <= maximum_pp
    relation = "<=" if ok else ">"
    return Check("max_accuracy_drop", ok, drop, maximum_pp,
                 f"fixed-point accuracy drop {drop:.2f} pp {relation} allowed {maximum_pp:.2f} pp "
                 f"(float {PP_PER_FRACTION * float_acc:.2f}%, fixed point {PP_PER_FRACTION * fixed_acc:.2f}%)")


def evaluate_gate(verify_summary: dict, criteria: GateCriteria = GateCriteria(),
                  float_accuracy: float | None = None, fixed_point_accuracy: float | None = None) -> GateResult:
    """Decide pass/fail. verify_summary: verify.json's content (per_sample optional); accuracies: fractions."""
    samples = sample_checks(verify_summary.get("per_sample", []))
    checks = []
    if criteria.bit_exact:
        checks.append(_bit_exact_check(verify_summary, samples))
    if criteria.min_output_agreement is not None:
        checks.append(_agreement_check(verify_summary, criteria.min_output_agreement))
    if criteria.max_accuracy_drop_pp is not None:
        checks.append(_accuracy_drop_check(float_accuracy, fixed_point_accuracy, criteria.max_accuracy_drop_pp))
    accuracies = {"float": float_accuracy, "fixed_point": fixed_point_accuracy,
                  "lava": verify_summary.get("lava_test_accuracy")}
    return GateResult(all(c.passed for c in checks), tuple(checks), samples, accuracies,
                      int(verify_summary.get("n_samples", len(samples))))


def failed_run(message: str, criteria: GateCriteria = GateCriteria()) -> GateResult:
    """The gate result when verification itself did not finish (Lava timeout or crash): one failed check
    'lava_run' with `message`, so CI still receives a JUnit file that says why."""
    check = Check("lava_run", False, None, None, " ".join(str(message).split()))
    return GateResult(False, (check,), (), {}, 0)


def _read_optional(path: Path, key: str):
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get(key)
    except json.JSONDecodeError as err:
        raise ValueError(f"gate: {path} is not valid JSON ({err})") from None
    return None if value is None else float(value)


def gate_run_dir(run_dir, criteria: GateCriteria = GateCriteria(), verify_summary: dict | None = None) -> GateResult:
    """Evaluate the gate on a run directory: verify.json (or `verify_summary`, if given), train.json
    (float_test_accuracy) and quantise.json (fixed_point_test_accuracy), each optional except verify."""
    run_dir = Path(run_dir)
    if verify_summary is None:
        path = run_dir / "verify.json"
        if not path.is_file():
            raise ValueError(f"gate: {path} not found (run `evprop verify {run_dir}` first)")
        verify_summary = json.loads(path.read_text())
    return evaluate_gate(verify_summary, criteria,
                         _read_optional(run_dir / "train.json", "float_test_accuracy"),
                         _read_optional(run_dir / "quantise.json", "fixed_point_test_accuracy"))


# ---------------------------------------------------------------------------------------------------------------
# files


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def summary_json(result: GateResult, criteria: GateCriteria | None = None) -> str:
    """Machine-readable gate summary (format 'evprop-gate' version 1): gate.json's text."""
    return json.dumps(result.to_dict(criteria), indent=2, default=_json_default)


def write_summary_json(path, result: GateResult, criteria: GateCriteria | None = None) -> None:
    """Write `summary_json` to `path` (atomic, mode 0644)."""
    _atomic_write_text(Path(path), summary_json(result, criteria))


def _json_default(value):
    return float(value) if hasattr(value, "__float__") else str(value)


def _suite(parent: ET.Element, name: str, checks: tuple, duration_s: float) -> None:
    failures = sum(not c.passed for c in checks)
    suite = ET.SubElement(parent, "testsuite", name=f"{JUNIT_SUITE_NAME}.{name}", tests=str(len(checks)),
                          failures=str(failures), errors="0", skipped="0", time=f"{duration_s:.3f}")
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname=f"{JUNIT_SUITE_NAME}.{name}", name=check.name,
                             time="0")
        if check.passed:
            ET.SubElement(case, "system-out").text = check.message
        else:
            failure = ET.SubElement(case, "failure", message=check.message, type="GateFailure")
            failure.text = f"{check.name}: value {check.value!r}, limit {check.limit!r}\n{check.message}"


def junit_xml(result: GateResult, duration_s: float = 0.0) -> str:
    """JUnit XML: <testsuites> with suite '<JUNIT_SUITE_NAME>.criteria' (one testcase per criterion) and
    '<JUNIT_SUITE_NAME>.samples' (one per verified sample). duration_s: verification wall time [s]."""
    checks = result.criteria + result.samples
    root = ET.Element("testsuites", name=JUNIT_SUITE_NAME, tests=str(len(checks)),
                      failures=str(sum(not c.passed for c in checks)), errors="0", time=f"{duration_s:.3f}")
    _suite(root, "criteria", result.criteria, 0.0)
    _suite(root, "samples", result.samples, duration_s)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path, result: GateResult, duration_s: float = 0.0) -> None:
    """Write `junit_xml(result)` to `path` (atomic)."""
    _atomic_write_text(Path(path), junit_xml(result, duration_s))
