"""Properties of the decision metrics (spikemax_plugins.metrics) that hold for any input, and hand examples."""

import pytest
import torch
from hypothesis import given

import spikemax_plugins as smx

from .strategies import spike_problems


@given(problem=spike_problems(soft_targets=False))
def test_accuracy_over_time_ends_at_accuracy(problem):
    spikes, target = problem.torch_spikes(), problem.torch_target()
    over_time = smx.accuracy_over_time(spikes, target, problem.num_classes)
    assert over_time.shape == (spikes.shape[0],)
    assert over_time[-1].item() == smx.accuracy(spikes, target, problem.num_classes).item()


@given(problem=spike_problems(soft_targets=False))
def test_time_to_decision_lies_in_the_window(problem):
    spikes = problem.torch_spikes()
    decision_time = smx.time_to_decision(spikes, problem.num_classes)
    final = smx.predict(spikes, problem.num_classes)
    decided = final != -1
    assert (decision_time[~decided] == -1).all()
    assert ((decision_time[decided] >= 0) & (decision_time[decided] <= spikes.shape[0] - 1)).all()


def test_predict_marks_ties_and_silence_as_no_decision():
    spikes = torch.zeros(3, 3, 4)
    spikes[:, 0, 1] = 1  # a clear winner
    spikes[:, 1, 0] = 1
    spikes[:, 1, 2] = 1  # a tie
    # sample 2 is silent
    assert smx.predict(spikes).tolist() == [1, -1, -1]
    assert smx.accuracy(spikes, torch.tensor([1, 0, 0])).item() == pytest.approx(1 / 3)


def test_time_to_decision_hand_example():
    # Running counts for one sample: t0 class 0 leads, t1 tie (no decision), t2.. class 1 leads.
    spikes = torch.zeros(5, 1, 2)
    spikes[0, 0, 0] = 1
    spikes[1, 0, 1] = 1
    spikes[2, 0, 1] = 1
    assert smx.time_to_decision(spikes).tolist() == [2]
    torch.testing.assert_close(
        smx.accuracy_over_time(spikes, torch.tensor([1])), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])
    )
