"""early_exit.stream (continuous batching) decides every sample as the NumPy twin does, whatever the slots and the
batch boundaries, through a SlotNetwork that replays a recording row by row and checks the engine's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from .support import hand_made_rules, twin_fields
from .test_runners import exit_problems


class _Replay:
    """Each row replays the recorded output of the sample it holds, at that row's own step.

    The input of one step of a row is ``(sample, step)``. The network keeps its own record of which sample each
    row holds and at which step it is (its "state"), changed only through reset_rows and keep_rows, and fails if
    the engine feeds a row anything else: a decision can never land on the wrong sample unnoticed.
    """

    def __init__(self, recording: torch.Tensor) -> None:
        self.recording = recording  # [T, N, C]
        self.rows: list[list] | None = None  # per row: [sample, step]
        self.calls = 0
        self.sample_steps = 0

    def step(self, x: torch.Tensor) -> torch.Tensor:
        pairs = x.long().tolist()
        if self.rows is None:  # the first call: fresh rows
            self.rows = [[sample, 0] for sample, _ in pairs]
        for row, (sample, step) in zip(self.rows, pairs, strict=True):
            if row[0] is None:  # a reset row takes a new sample, from its step 0
                assert step == 0, (sample, step)
                row[0] = sample
        assert pairs == self.rows, (pairs, self.rows)
        for row in self.rows:
            row[1] += 1
        self.calls += 1
        self.sample_steps += len(pairs)
        return self.recording[x[:, 1].long(), x[:, 0].long()]

    def reset_rows(self, rows: torch.Tensor) -> None:
        assert self.rows is not None and rows.dtype == torch.int64
        for row in rows.tolist():
            self.rows[row] = [None, 0]

    def keep_rows(self, rows: torch.Tensor) -> None:
        assert self.rows is not None and rows.tolist() == sorted(set(rows.tolist()))
        self.rows = [self.rows[row] for row in rows.tolist()]


def _inputs(num_steps: int, num_samples: int) -> torch.Tensor:
    """``[T, N, 2]``: the (sample, step) pair each row is fed."""
    steps = torch.arange(num_steps).view(-1, 1).expand(num_steps, num_samples)
    samples = torch.arange(num_samples).view(1, -1).expand(num_steps, num_samples)
    return torch.stack([samples, steps], -1).double()


@st.composite
def batch_boundaries(draw, num_samples: int) -> list[int]:
    cuts = draw(st.lists(st.integers(0, num_samples), max_size=4))
    return sorted({0, num_samples, *cuts})


@given(data=st.data())
def test_stream_equals_the_twin_for_any_slots_and_batch_boundaries(data):
    problem = data.draw(exit_problems())
    rule = data.draw(hand_made_rules(problem))
    num_steps, num_samples = problem.spikes.shape[:2]
    expected = reference.exit_evaluate(problem.spikes, **twin_fields(rule), target=problem.target)
    slots = data.draw(st.integers(1, num_samples + 5))
    inputs = _inputs(num_steps, num_samples)
    target = torch.tensor(problem.target)
    boundaries = data.draw(batch_boundaries(num_samples))
    source = data.draw(st.sampled_from(["tensor", "batches", "pairs"]))
    if source == "tensor":
        stream_inputs, stream_target = inputs, target
    elif source == "batches":
        stream_inputs = [inputs[:, start:stop] for start, stop in zip(boundaries, boundaries[1:], strict=False)]
        stream_target = target
    else:
        stream_inputs = [(inputs[:, start:stop], target[start:stop])
                         for start, stop in zip(boundaries, boundaries[1:], strict=False)]
        stream_target = None
    network = _Replay(problem.torch_spikes())
    report = ee.stream(network, stream_inputs, rule, slots=slots, target=stream_target)
    event(f"exits before T - 1: {bool(np.any(expected['exit_step'] < num_steps - 1))}")
    np.testing.assert_array_equal(report.exit_step.numpy(), expected["exit_step"])
    np.testing.assert_array_equal(report.prediction.numpy(), expected["prediction"])
    np.testing.assert_array_equal(report.prediction_set.numpy(), expected["prediction_set"])
    assert report.accuracy == pytest.approx(expected["accuracy"], rel=1e-12, abs=1e-12)
    assert report.coverage == pytest.approx(expected["coverage"], rel=1e-12, abs=1e-12)
    # The work: every sample simulated up to its exit, no more, in calls of at most `slots` rows.
    assert report.sample_steps_simulated == network.sample_steps == int(np.sum(expected["exit_step"] + 1))
    assert report.steps_simulated == network.calls
    assert network.sample_steps <= network.calls * slots


def test_stream_hand_computed():
    # Two classes, T = 3, rule: exit once the probability (smoothing 1) of one class reaches 0.7 at any step.
    recording = torch.tensor([
        [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
        [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
    ])  # [T, N = 3, C]
    rule = ee.ExitRule(checkpoints=[0, 1, 2], thresholds=[0.7, 0.7, 0.7], max_set_size=1, score="probability",
                       smoothing=1.0, num_classes=2, num_steps=3)
    # Sample 0: counts (1, 0) -> p = 2/3 < 0.7; (2, 0) -> 3/4: exits at step 1, class 0.
    # Sample 1: (0, 0) -> 1/2; (0, 1) -> 2/3; (0, 2) -> 3/4 at T - 1: exits at step 2, class 1.
    # Sample 2: (0, 1) -> 2/3; (0, 2) -> 3/4: exits at step 1, class 1.
    report = ee.stream(_Replay(recording), _inputs(3, 3), rule, slots=2, target=torch.tensor([0, 1, 0]))
    assert report.exit_step.tolist() == [1, 2, 1]
    assert report.prediction.tolist() == [0, 1, 1]
    assert report.prediction_set.tolist() == [[True, False], [False, True], [False, True]]
    assert report.accuracy == pytest.approx(2 / 3)
    # Calls: (s0, s1), (s0, s1): s0 exits and s2 takes its row; (s2, s1): s1 exits, nothing waits, its row is
    # dropped; (s2): s2 exits. 4 calls, 2 + 2 + 2 + 1 = 7 sample-steps = sum(exit_step + 1).
    assert report.steps_simulated == 4 and report.sample_steps_simulated == 7


def test_stream_refuses_bad_arguments():
    recording = torch.zeros(3, 2, 2)
    rule = ee.ExitRule(checkpoints=[2], thresholds=[0.5], max_set_size=1, score="probability", smoothing=1.0,
                       num_classes=2, num_steps=3)
    network = _Replay(recording)
    with pytest.raises(ValueError, match=r"slots must be >= 1, got 0"):
        ee.stream(network, _inputs(3, 2), rule, slots=0)
    with pytest.raises(TypeError, match=r"slots must be an int"):
        ee.stream(network, _inputs(3, 2), rule, slots=1.5)
    with pytest.raises(TypeError, match=r"rule must be an ExitRule, got dict"):
        ee.stream(network, _inputs(3, 2), {}, slots=1)
    with pytest.raises(TypeError, match=r"network must implement the SlotNetwork protocol"):
        ee.stream(object(), _inputs(3, 2), rule, slots=1)
    with pytest.raises(ValueError, match=r"inputs batch 0 must have the rule's T = 3 steps at time_dim=0, got 4"):
        ee.stream(network, _inputs(4, 2), rule, slots=1)
    with pytest.raises(ValueError, match=r"target must be \[N\] = \[2\] \(one class per input sample\), got shape"):
        ee.stream(_Replay(recording), _inputs(3, 2), rule, slots=1, target=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match=r"inputs hold no sample"):
        ee.stream(network, [], rule, slots=1)
    # A batch that is None is a bad batch, not the end of the stream.
    with pytest.raises(TypeError, match=r"inputs batch 1 must be a torch.Tensor \[T, b, \.\.\.\] .*, got NoneType"):
        ee.stream(_Replay(recording), [_inputs(3, 2)[:, :1], None], rule, slots=1)
    with pytest.raises(ValueError, match=r"network.step's output at call 0 must be \[B, N\] with B = 2"):
        ee.stream(_Replay(torch.zeros(3, 2, 2, 2)), _inputs(3, 2), rule, slots=2)


def test_stream_leaves_the_inputs_untouched():
    recording = (torch.rand(6, 9, 3, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    rule = ee.calibrate(recording, torch.zeros(9, dtype=torch.int64), method="accuracy", alpha=0.5)
    inputs = _inputs(6, 9)
    batches = [inputs[:, :4].clone(), inputs[:, 4:].clone()]
    copies = [batch.clone() for batch in batches]
    ee.stream(_Replay(recording), batches, rule, slots=3)
    ee.stream(_Replay(recording), inputs, rule, slots=3)
    assert all(torch.equal(batch, copy) for batch, copy in zip(batches, copies, strict=True))
    assert torch.equal(inputs, _inputs(6, 9))


@pytest.mark.parametrize(("bad", "shown"), [(float("nan"), r"\[nan, nan\]"), (-1.0, r"\[-1, 1\]"),
                                            (float("inf"), r"\[[01], inf\]")])
@pytest.mark.parametrize("slots", [1, 4])
def test_stream_names_the_call_with_bad_outputs(bad, shown, slots):
    # Every sample runs the whole window (the threshold is never reached): with 4 slots call k is step k of all
    # four samples; with 1 slot, sample 2's step 1 is call 2 * 3 + 1 = 7.
    recording = torch.zeros(3, 4, 2)
    recording[:, :, 0] = 1.0
    recording[1, 2, 1] = bad
    rule = ee.ExitRule(checkpoints=[2], thresholds=[2.0], max_set_size=1, score="probability", smoothing=1.0,
                       num_classes=2, num_steps=3)
    call = 1 if slots == 4 else 7
    message = rf"network.step's output at call {call} must be finite and >= 0 \(spikes\), got values in {shown}"
    with pytest.raises(ValueError, match=message):
        ee.stream(_Replay(recording), _inputs(3, 4), rule, slots=slots)
    with smx.value_checks(False):  # the switch turns the check off: every sample still gets its T - 1 decision
        report = ee.stream(_Replay(recording), _inputs(3, 4), rule, slots=slots)
    assert report.exit_step.tolist() == [2, 2, 2, 2] and report.prediction[[0, 1, 3]].tolist() == [0, 0, 0]
