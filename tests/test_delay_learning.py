"""Learned delays: the sequence detection task of Mészáros, Knight & Nowotny (2025), section 2.1."""

import json
from pathlib import Path

import numpy as np

from conftest import MLGENN
from evprop.data.spikes import SpikeData
from evprop.model.spec import Connection, InputLayer, LILayer, NetworkSpec
from evprop.train.compiled import CompiledNetwork
from evprop.train.engine import backward, forward
from evprop.train.losses import get_loss
from evprop.train.trainer import Adam


def sequence_detection(presentations=20):
    """2 inputs -> 2 LI outputs (tau_mem 10 ms, tau_syn 5 ms), weights fixed at 1, max-voltage readout; class 0:
    input 0 at 0 ms and input 1 at 10 ms, class 1 the reverse; from the 'least optimal' delays [[0, 10], [10, 0]],
    Adam with learning rate 1 on the delays only, examples in the order 0, 1, 0, 1, ... (the authors' setup,
    tests/data/mlgenn/seqdet_trajectory.json '_meta')."""
    spec = NetworkSpec(1.0, 25, (InputLayer("input", 2), LILayer("output", 2, 10.0, 5.0)),
                       (Connection("input", "output", np.ones((2, 2)), np.array([[0.0, 10.0], [10.0, 0.0]]), 15),),
                       "max")
    data = SpikeData.from_event_lists(2, 25, [([0, 10], [0, 1]), ([0, 10], [1, 0])], [0, 1])
    net = CompiledNetwork.from_spec(spec)
    optimiser = Adam(len(net.delay_flat))
    loss = get_loss("cross_entropy")
    trajectory = []
    for presentation in range(presentations):
        sample = data.subset([presentation % 2])
        fwd = forward(net, sample, max_spikes=4)
        _, scores, dl_dv = loss(spec, fwd.v_out, sample.labels)
        grads = backward(net, sample, fwd, dl_dv)
        optimiser.step(net.delay_flat, grads.delays, 1.0)
        net.clamp_delays()
        trajectory.append({"correct": bool(scores.argmax() == sample.labels[0]),
                           "delays": net.delay_flat.reshape(2, 2).copy()})
    return trajectory


def test_every_presentation_correct_from_the_8th_on():
    """README: 'every presentation correct from the 8th on' (the paper: after both examples were shown 6 times)."""
    trajectory = sequence_detection(30)
    correct = [step["correct"] for step in trajectory]
    assert all(correct[7:]) and not correct[6]     # the 8th presentation is the first of the unbroken run
    assert not correct[0]                          # the start is the least optimal solution
    final = trajectory[-1]["delays"]
    # the optimal solution has long delays on the diagonal and short ones off it (Meszaros et al. 2025, section 2.1)
    assert final[0, 0] > 12 and final[1, 1] > 12 and final[0, 1] < 2 and final[1, 0] < 2
    assert np.all(final >= 0) and np.all(final <= 15)


def test_delays_move_like_mlgenn():
    """mlGeNN applies each gradient one batch late; after 16 presentations its delays have moved the same way."""
    reference = json.loads((MLGENN / "seqdet_trajectory.json").read_text())["adam_0101"]
    theirs = np.array(reference[15]["delays_after_batch_end"])
    ours = sequence_detection(16)[-1]["delays"]
    start = np.array([[0.0, 10.0], [10.0, 0.0]])
    assert np.all(np.sign(ours - start) == np.sign(theirs - start))
    assert reference[15]["correct"] == 1


def test_seqdetect_config_trains_the_delays(tmp_path):
    """configs/seqdetect.toml through the ordinary config -> build -> train path."""
    from evprop.pipeline.build import initial_network, load_splits, n_classes
    from evprop.pipeline.config import load_config
    from evprop.train.trainer import TrainSettings, train
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "seqdetect.toml")
    splits = load_splits(config)
    spec = initial_network(config, 2, n_classes(splits))
    assert np.array_equal(spec.connection("input->output").delay, [[0.0, 10.0], [10.0, 0.0]])
    best, history = train(spec, splits["train"], splits["validation"], TrainSettings.from_config(config["train"]))
    assert history[-1]["train_accuracy"] == 1.0 and history[0]["train_accuracy"] < 1.0
    learned = best.connection("input->output").delay
    assert np.array_equal(best.connection("input->output").weight, np.ones((2, 2)))       # weights stayed fixed
    assert learned[0, 0] > learned[0, 1] and learned[1, 1] > learned[1, 0]
