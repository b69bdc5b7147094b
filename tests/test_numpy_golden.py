"""The training core computes the same numbers under numpy 2 (Python 3.11+) as under numpy 1.26 (Python 3.10):
quantiser integers, the fixed-point emulator bit for bit (overflow paths included), the float engine's voltages
and EventProp gradients. The golden file was written by tests/numpy_golden.py under Python 3.10 / numpy 1.26.4."""

import numpy as np
import pytest

from numpy_golden import GOLDEN, golden_arrays


@pytest.fixture(scope="module")
def computed_and_golden():
    with np.load(GOLDEN) as stored:
        golden = {key: stored[key] for key in stored.files}
    return golden_arrays(), golden


def test_golden_file_comes_from_numpy_1(computed_and_golden):
    origin = str(computed_and_golden[1]["origin"])
    assert "numpy 1.26.4" in origin and "Python 3.10" in origin, origin


def test_same_arrays_are_computed(computed_and_golden):
    computed, golden = computed_and_golden
    assert sorted(computed) == sorted(k for k in golden if k != "origin")


def test_fixed_point_integers_and_emulator_are_bit_exact(computed_and_golden):
    """Everything but the float engine: equal bit for bit (v_lsb floats included), dtypes too."""
    computed, golden = computed_and_golden
    exact = [k for k in computed if "/float_v_out" not in k and "/grad_" not in k]
    assert len(exact) > 60
    for key in exact:
        assert computed[key].dtype == golden[key].dtype, key
        np.testing.assert_array_equal(computed[key], golden[key], err_msg=key)


def test_overflow_case_exercises_every_integer_overflow_path(computed_and_golden):
    golden = computed_and_golden[1]
    for what in ("u_wraps", "v_saturations", "message_overflows"):
        assert golden[f"overflow/{what}/h"].sum() > 10, what
        assert golden[f"overflow/{what}/out"].sum() > 0, what


def test_float_engine_voltages_and_gradients(computed_and_golden):
    computed, golden = computed_and_golden
    for key in [k for k in computed if "/float_v_out" in k or "/grad_" in k]:
        assert np.abs(golden[key]).max() > 0, key
        np.testing.assert_allclose(computed[key], golden[key], rtol=1e-12, atol=1e-12 * np.abs(golden[key]).max(),
                                   err_msg=key)
