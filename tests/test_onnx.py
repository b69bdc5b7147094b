"""ONNX one-step export, run step by step in onnxruntime, against the fixed-point emulator: bit for bit."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deploy_helpers import make_data, make_network, quantise_calibrated  # noqa: E402
from evprop.export.onnx_export import OnnxStepper, export_onnx, ring_depths, run_onnx  # noqa: E402
from evprop.fixed_point.spec import FixedConnection, FixedLayer, FixedPointSpec  # noqa: E402
from evprop.fixed_point.emulator import emulate  # noqa: E402


def assert_matches_emulator(fp, data, tmp_path):
    path = export_onnx(tmp_path / "step.onnx", fp)
    emu = emulate(fp, data)
    onnx_result = run_onnx(path, data)
    for name, spikes in emu.hidden_spikes.items():
        np.testing.assert_array_equal(onnx_result.hidden_spikes[name], spikes, err_msg=f"layer {name}")
    np.testing.assert_array_equal(onnx_result.v_out, emu.v_out)
    np.testing.assert_array_equal(onnx_result.v_out_float, emu.v_out_float)
    return emu


def test_onnx_matches_emulator(tmp_path):
    spec = make_network()
    data = make_data(n_samples=6, n_steps=60)
    fp, _ = quantise_calibrated(spec, data)
    emu = assert_matches_emulator(fp, data, tmp_path)
    assert emu.hidden_spikes["hidden"].sum() > 6 * 30 and np.abs(emu.v_out).max() > 2 ** 14


def test_onnx_matches_emulator_with_delays(tmp_path):
    spec = make_network(seed=2, max_delay=9, per_neuron_taus=True)
    data = make_data(seed=2, n_samples=5, n_steps=60)
    fp, _ = quantise_calibrated(spec, data)
    assert ring_depths(fp)["hidden"] == 10
    assert_matches_emulator(fp, data, tmp_path)


def test_onnx_overflow_behaviour_matches_emulator(tmp_path):
    """u wraps, v saturates, messages beyond 16 bits, negative weight_exp floors: as in tests/test_lava.py."""
    rng = np.random.default_rng(3)
    data = make_data(n_samples=4, n_steps=30, n_in=40, rate=0.3)
    layers = (FixedLayer("hidden", "lif", rng.integers(0, 4096, 20), rng.integers(0, 4096, 20), 20000, 1e-6),
              FixedLayer("output", "li", rng.integers(0, 4096, 3), rng.integers(0, 300, 3), 131071, 1e-6))
    conns = (FixedConnection("input", "hidden", 2 * rng.integers(-128, 128, (20, 40)), 7, "mixed",
                             rng.integers(0, 4, (20, 40))),
             FixedConnection("hidden", "hidden", 2 * rng.integers(-128, 128, (20, 20)), 5, "mixed",
                             np.zeros((20, 20), int)),
             FixedConnection("hidden", "output", rng.integers(0, 256, (3, 20)), -3, "excitatory",
                             np.zeros((3, 20), int)))
    fp = FixedPointSpec(1.0, 30, "input", 40, layers, conns)
    emu = assert_matches_emulator(fp, data, tmp_path)
    assert emu.u_wraps["hidden"].sum() > 0 and emu.v_saturations["hidden"].sum() > 0
    assert emu.message_overflows["hidden"].sum() > 0


def test_stepper_refuses_foreign_models_and_bad_inputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT32, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match="other.onnx: not an evprop step model"):
        OnnxStepper(tmp_path / "other.onnx")
    spec = make_network()
    fp, _ = quantise_calibrated(spec, make_data(n_samples=2))
    stepper = OnnxStepper(export_onnx(tmp_path / "step.onnx", fp))
    with pytest.raises(ValueError, match=r"expected \(samples, steps, 5\)"):
        stepper.run(np.zeros((1, 4, 6), bool))
