"""The CUDA kernels (evprop.train.cuda_kernels) against the CPU kernels on tiny networks.

The comparisons run in-process when numba's CUDA simulator is enabled (NUMBA_ENABLE_CUDASIM=1, which must be set
before numba is imported) or a GPU is present. In an ordinary test run without a GPU they are skipped and
`test_cuda_kernels_in_simulator` re-runs this module in a subprocess with the simulator enabled, so `make test`
exercises the CUDA code on any machine (~10 s: the simulator runs every GPU thread as a Python thread).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import random_inputs, random_network

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _gpu_present() -> bool:
    if SIMULATOR:
        return False
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:       # no driver, no toolkit
        return False


DIRECT = SIMULATOR or _gpu_present()
direct = pytest.mark.skipif(not DIRECT, reason="needs NUMBA_ENABLE_CUDASIM=1 or a GPU (covered by the subprocess "
                                               "test)")

N_STEPS = 20
MAX_SPIKES = 20


@pytest.mark.skipif(DIRECT, reason="the comparisons run in this process")
def test_cuda_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    passed = re.search(r"(\d+) passed", proc.stdout.strip().splitlines()[-1])
    assert passed and int(passed.group(1)) >= 9, proc.stdout[-2000:]     # every comparison ran (none skipped)


def _case(max_delay, dtype=np.float64, seed=2):
    """3 inputs, 6 recurrent hidden LIF, 2 LI outputs, 20 steps, 3 trials; several spikes per trial and step."""
    from evprop.train.compiled import CompiledNetwork
    spec = random_network(seed=seed, n_in=3, n_hidden=6, n_out=2, n_steps=N_STEPS, max_delay=max_delay)
    spec = spec.with_weights({"input->hidden": 2.0 * spec.connection("input->hidden").weight,
                              "hidden->hidden": 3.0 * spec.connection("hidden->hidden").weight})
    data = random_inputs(spec, n_samples=3, rate=0.3)
    return spec, data, CompiledNetwork.from_spec(spec, dtype=dtype)


def _forward_args(spec, data, net, cut, compact, max_spikes=MAX_SPIKES, track_state=True):
    from evprop.train.engine import spike_inputs
    from evprop.train.kernel_args import ForwardOptions
    readout_w = spec.readout_weights() if compact else np.zeros(0)
    return net.arrays, spike_inputs(data), ForwardOptions(max_spikes=max_spikes, n_chunks=2, cut_step=cut,
                                                          track_state=track_state, record_v=not compact,
                                                          readout_w=readout_w)


def _backward_args(spec, data, net, fwd, drive, cut, need_delays, need_taus):
    from evprop.train.engine import spike_inputs
    from evprop.train.kernel_args import BackwardOptions
    return net.arrays, spike_inputs(data), fwd.tape, drive, BackwardOptions(n_chunks=2, cut_step=cut,
                                                                           need_delays=need_delays,
                                                                           need_taus=need_taus)


def _tape_dict(fwd, b):
    """{(step, neuron): tape index} of trial b."""
    tape = fwd.tape
    return {(int(tape.step[b, p]), int(tape.neuron[b, p])): p for p in range(int(tape.length[b]))}


def _drive(spec, net, fwd_cpu, fwd_gpu, compact, with_dl_dt, seed=0):
    """Random loss drives: (per-step or separable) output drive, spike_jump, and a tape_dl_dt for each tape (the
    same value for the same (step, neuron), whatever its tape position)."""
    from evprop.train.kernel_args import BackwardDrive
    dtype = net.w_flat.dtype
    rng = np.random.default_rng(seed)
    n_batch = len(fwd_cpu.tape.length)
    if compact:
        dl_dv = np.zeros((n_batch, 0, net.n_out), dtype=dtype)
        readout_w = spec.readout_weights().astype(dtype)
        dl_dscore = rng.normal(size=(n_batch, net.n_out)).astype(dtype)
    else:
        dl_dv = rng.normal(size=(n_batch, spec.n_steps, net.n_out)).astype(dtype)
        readout_w, dl_dscore = np.zeros(0, dtype=dtype), np.zeros((n_batch, 0), dtype=dtype)
    spike_jump = rng.normal(size=(n_batch, net.n_neurons)).astype(dtype)
    if not with_dl_dt:
        drive = BackwardDrive(dl_dv, readout_w, dl_dscore, spike_jump, np.zeros((n_batch, 0), dtype=dtype))
        return drive, drive
    dl_dt_cpu = rng.normal(size=fwd_cpu.tape.step.shape).astype(dtype)
    dl_dt_gpu = np.zeros(fwd_gpu.tape.step.shape, dtype=dtype)
    for b in range(n_batch):
        where = _tape_dict(fwd_cpu, b)
        for key, p in _tape_dict(fwd_gpu, b).items():
            dl_dt_gpu[b, p] = dl_dt_cpu[b, where[key]]
    return (BackwardDrive(dl_dv, readout_w, dl_dscore, spike_jump, dl_dt_cpu),
            BackwardDrive(dl_dv, readout_w, dl_dscore, spike_jump, dl_dt_gpu))


def _close(a, b, rel):
    scale = max(float(np.max(np.abs(a), initial=0.0)), 1.0)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(b, a, rtol=0, atol=rel * scale)


def _check_forward(cpu, gpu, rel):
    assert np.array_equal(cpu.spike_count, gpu.spike_count) and np.array_equal(cpu.tape.length, gpu.tape.length)
    assert np.array_equal(cpu.overflow_neuron, gpu.overflow_neuron)
    for b in range(len(cpu.tape.length)):
        steps = gpu.tape.step[b, :gpu.tape.length[b]]
        assert np.all(np.diff(steps) >= 0), "CUDA tape not in step order"
        where_cpu, where_gpu = _tape_dict(cpu, b), _tape_dict(gpu, b)
        assert where_cpu.keys() == where_gpu.keys(), f"trial {b}: spike (step, neuron) sets differ"
        for key, p in where_cpu.items():
            imv = cpu.tape.imv[b, p]
            assert abs(imv - gpu.tape.imv[b, where_gpu[key]]) <= rel * max(1.0, abs(imv))
    _close(cpu.v_out, gpu.v_out, rel)
    _close(cpu.state_max, gpu.state_max, rel)
    _close(cpu.scores, gpu.scores, rel)


CASES = [   # max_delay, cut step, compact readout, tape_dl_dt, need_delays, need_taus
    pytest.param(0, -1, False, False, True, True, id="nodelay"),
    pytest.param(3, -1, False, True, True, True, id="delay"),
    pytest.param(3, N_STEPS - 1, True, True, True, True, id="delay-cut-compact"),
    pytest.param(0, N_STEPS - 1, False, True, False, False, id="nodelay-cut-nograds"),
    pytest.param(3, -1, True, False, True, False, id="delay-compact-notaus"),
]


@direct
@pytest.mark.parametrize("max_delay,cut,compact,with_dl_dt,need_delays,need_taus", CASES)
def test_matches_cpu_kernels(max_delay, cut, compact, with_dl_dt, need_delays, need_taus):
    from evprop.train.cuda_kernels import backward_cuda, forward_cuda
    from evprop.train.kernels import backward_kernel, forward_kernel
    spec, data, net = _case(max_delay)
    fargs = _forward_args(spec, data, net, cut, compact)
    cpu, gpu = forward_kernel(*fargs), forward_cuda(*fargs)
    assert cpu.spike_count.sum() >= 30 and cpu.spike_count[:, :6].max() >= 3      # the hidden layer is active (several spikes)
    _check_forward(cpu, gpu, 1e-12)
    drive_cpu, drive_gpu = _drive(spec, net, cpu, gpu, compact, with_dl_dt)
    ref = backward_kernel(*_backward_args(spec, data, net, cpu, drive_cpu, cut, need_delays, need_taus))
    got = backward_cuda(*_backward_args(spec, data, net, gpu, drive_gpu, cut, need_delays, need_taus))
    # the CPU backward on the CUDA tape (another order within steps): the same gradients
    mixed = backward_kernel(*_backward_args(spec, data, net, gpu, drive_gpu, cut, need_delays, need_taus))
    for r, g, m in zip(ref, got, mixed):
        _close(r, g, 1e-10)
        _close(r, m, 1e-10)
    assert np.any(ref.weights != 0) and np.any(ref.delays_per_ms != 0) == need_delays
    assert np.any(ref.alpha != 0) == need_taus


@direct
def test_overflow_matches_cpu_kernels():
    """max_spikes = 2: the same untaped spikes, overflow neuron and gradients from the truncated tapes."""
    from evprop.train.cuda_kernels import backward_cuda, forward_cuda
    from evprop.train.kernels import backward_kernel, forward_kernel
    spec, data, net = _case(3)
    fargs = _forward_args(spec, data, net, -1, False, max_spikes=2, track_state=False)
    cpu, gpu = forward_kernel(*fargs), forward_cuda(*fargs)
    assert np.all(cpu.overflow_neuron >= 0)                  # every trial overflows
    _check_forward(cpu, gpu, 1e-12)
    drive_cpu, drive_gpu = _drive(spec, net, cpu, gpu, False, False)
    ref = backward_kernel(*_backward_args(spec, data, net, cpu, drive_cpu, -1, True, True))
    got = backward_cuda(*_backward_args(spec, data, net, gpu, drive_gpu, -1, True, True))
    for r, g in zip(ref, got):
        _close(r, g, 1e-10)


@direct
def test_float32_matches_cpu_kernels():
    """float32 weights: every buffer and result in float32, equal to the CPU's to float32 rounding."""
    from evprop.train.cuda_kernels import backward_cuda, forward_cuda
    from evprop.train.kernels import backward_kernel, forward_kernel
    spec, data, net = _case(3, dtype=np.float32)
    fargs = _forward_args(spec, data, net, -1, False)
    cpu, gpu = forward_kernel(*fargs), forward_cuda(*fargs)
    assert gpu.v_out.dtype == np.float32 and gpu.tape.imv.dtype == np.float32
    _check_forward(cpu, gpu, 1e-5)
    drive_cpu, drive_gpu = _drive(spec, net, cpu, gpu, False, True)
    ref = backward_kernel(*_backward_args(spec, data, net, cpu, drive_cpu, -1, True, True))
    got = backward_cuda(*_backward_args(spec, data, net, gpu, drive_gpu, -1, True, True))
    for r, g in zip(ref, got):
        assert g.dtype == np.float32
        _close(r, g, 1e-4)


@direct
def test_backward_rejects_unordered_tape():
    from evprop.train.cuda_kernels import backward_cuda, forward_cuda
    spec, data, net = _case(0)
    fwd = forward_cuda(*_forward_args(spec, data, net, -1, False))
    n = int(fwd.tape.length[0])
    steps = fwd.tape.step.copy()
    steps[0, :n] = steps[0, :n][::-1]
    fwd = fwd._replace(tape=fwd.tape._replace(step=steps))
    drive, _ = _drive(spec, net, fwd, fwd, False, False)
    with pytest.raises(ValueError, match="step order"):
        backward_cuda(*_backward_args(spec, data, net, fwd, drive, -1, True, True))


@direct
def test_training_on_cuda_matches_cpu():
    """train.device = "cuda" through the ordinary Trainer: two epochs give the CPU's weights, delays and taus."""
    from evprop.train.trainer import TrainSettings, Trainer
    spec, data, _ = _case(max_delay=3)
    nets = {}
    for device in ("cpu", "cuda"):
        settings = TrainSettings(batch_size=3, learning_rate=0.01, delay_learning_rate=0.5, tau_learning_rate=0.1,
                                 max_spikes=MAX_SPIKES, device=device)
        trainer = Trainer(spec, settings)
        for epoch in range(2):
            trainer.run_epoch(epoch, data)
        nets[device] = trainer.net
    cpu, cuda = nets["cpu"], nets["cuda"]
    assert cuda.device == "cuda"
    np.testing.assert_allclose(cuda.w_flat, cpu.w_flat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cuda.delay_flat, cpu.delay_flat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cuda.tau_mem, cpu.tau_mem, rtol=1e-9)
