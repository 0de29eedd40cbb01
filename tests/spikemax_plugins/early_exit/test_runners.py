"""``evaluate``, ``ExitRule.start`` / ``ExitState.update`` and ``run`` against the NumPy twin
(``reference.exit_evaluate``) and by hand."""

import math

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from ..strategies import exit_problems
from .support import (
    assert_decisions_match,
    assert_report_matches,
    hand_made_rules,
    hand_rule,
    run_steps_simulated,
    twin_fields,
)

# --------------------------------------------------------------------------------------------------- evaluate


@given(data=st.data())
def test_evaluate_matches_reference(data):
    problem = data.draw(exit_problems())
    rule = data.draw(hand_made_rules(problem))
    target = data.draw(st.sampled_from([None, problem.target]))
    report = ee.evaluate(rule, problem.torch_spikes(), None if target is None else torch.tensor(target))
    expected = reference.exit_evaluate(problem.spikes, **twin_fields(rule), target=target)
    event(f"exits before T - 1: {bool(np.any(expected['exit_step'] < problem.spikes.shape[0] - 1))}")
    event(f"a no-decision exit: {bool(np.any(expected['prediction'] == -1))}")
    assert_report_matches(report, expected, problem.spikes.shape[0])


def test_evaluate_hand_computed():
    # C = 3, T = 3, checkpoints (0, 2), margin thresholds (1, 1), max_set_size 1.
    spikes = torch.zeros(3, 4, 3, dtype=torch.float64)
    spikes[0, 0] = torch.tensor([1.0, 0, 0])  # leads by 1 at step 0: exits at 0, predicts 0
    spikes[:, 1, 1] = 1.0  # class 1 leads by 1 at step 0 already: exits at 0, predicts 1
    spikes[1, 2] = torch.tensor([0.0, 0, 1])  # step 0 silent (margins 0); counts (0,0,1) at step 2: exits at 2
    spikes[0, 3] = torch.tensor([1.0, 1, 0])  # tied leaders throughout: never exits, no decision
    rule = ee.ExitRule(
        checkpoints=[0, 2],
        thresholds=torch.tensor([1.0, 1.0]),
        max_set_size=1,
        score="margin",
        smoothing=0.0,
        num_classes=3,
        num_steps=3,
    )
    report = ee.evaluate(rule, spikes, torch.tensor([0, 2, 2, 0]))
    assert report.exit_step.tolist() == [0, 0, 2, 2]
    assert report.prediction.tolist() == [0, 1, 2, -1]
    # Sample 3 never exited: its set is its admitted set at T - 1, empty (margins 0, 0, -1 < 1).
    assert report.prediction_set.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert report.mean_exit_step == 1.0
    assert report.exit_fraction == pytest.approx((1 + 1 + 3 + 3) / 3 / 4)
    assert report.steps_simulated == 3
    assert report.accuracy == 0.5 and report.coverage == 0.5
    # A tie between two admitted classes at an exit: max_set_size 2, threshold -inf at step 0 admits every class
    # of a 2-class problem; both silent -> exits at step 0 with no decision and both classes in the set.
    two = ee.ExitRule(
        checkpoints=[0, 1],
        thresholds=[-math.inf, math.inf],
        max_set_size=2,
        score="probability",
        smoothing=0.0,
        num_classes=2,
        num_steps=2,
    )
    report = ee.evaluate(two, torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]]]))
    assert report.exit_step.tolist() == [0] and report.prediction.tolist() == [-1]
    assert report.prediction_set.tolist() == [[True, True]]


def test_evaluate_with_one_step():
    # T = 1: the only checkpoint is step 0; +inf admits nothing, so the sample is decided on the full counts.
    spikes = torch.tensor([[[0.0, 2.0, 1.0], [1.0, 1.0, 0.0]]])
    rule = ee.ExitRule(
        checkpoints=[0],
        thresholds=[math.inf],
        max_set_size=1,
        score="probability",
        smoothing=1.0,
        num_classes=3,
        num_steps=1,
    )
    report = ee.evaluate(rule, spikes, torch.tensor([1, 0]))
    assert report.exit_step.tolist() == [0, 0] and report.prediction.tolist() == [1, -1]
    assert not report.prediction_set.any()
    assert report.accuracy == 0.5 and report.coverage == 0.0 and report.exit_fraction == 1.0


# -------------------------------------------------------------------------------------------------- streaming


@given(data=st.data())
def test_streaming_matches_reference_step_by_step(data):
    problem = data.draw(exit_problems())
    rule = data.draw(hand_made_rules(problem))
    expected = reference.exit_evaluate(problem.spikes, **twin_fields(rule), target=problem.target)
    spikes = problem.torch_spikes()
    state = rule.start(problem.spikes.shape[1])
    for step in range(problem.spikes.shape[0]):
        done = state.update(spikes[step])
        # A sample is done right after the update of its exit step.
        np.testing.assert_array_equal(done.numpy(), expected["exit_step"] <= step)
        np.testing.assert_array_equal(state.done.numpy(), done.numpy())
        # The samples that are done already hold their final decisions.
        finished = done.numpy()
        np.testing.assert_array_equal(state.exit_step.numpy()[finished], expected["exit_step"][finished])
        np.testing.assert_array_equal(state.prediction.numpy()[finished], expected["prediction"][finished])
        np.testing.assert_array_equal(state.prediction_set.numpy()[finished], expected["prediction_set"][finished])
    assert_decisions_match(state.exit_step, state.prediction, state.prediction_set, expected)
    assert_report_matches(state.report(problem.torch_target()), expected, problem.spikes.shape[0])


def thresholds_away_from_scores(thresholds, scores: np.ndarray, checkpoints, gap: float = 1e-9) -> list[float]:
    """Each finite threshold moved up (by 2 * ``gap`` at a time) until no score of its checkpoint lies within
    ``gap`` of it: on graded spikes the scores of torch and of the twin may differ in the last bits (summation
    order), and a decision by ``>=`` at such a threshold would then depend on rounding."""
    moved = []
    for value, step in zip(np.asarray(thresholds, dtype=np.float64).tolist(), checkpoints, strict=True):
        while math.isfinite(value) and np.any(np.abs(scores[step] - value) < gap):
            value += 2 * gap
        moved.append(value)
    return moved


@given(data=st.data())
def test_streaming_matches_reference_on_graded_spikes(data):
    # Arbitrary graded values (rounded sums): the step-by-step state and evaluate (in two layouts) decide as the
    # NumPy twin does, with thresholds kept clear of the scores by far more than the rounding (class counts sum at
    # most 8 x 3 terms below 2: relative error < 24 * 2^-53 on scores of magnitude at most 48).
    problem = data.draw(exit_problems(exact=False))
    drawn = data.draw(hand_made_rules(problem))
    scores = reference.exit_confidence(problem.spikes, drawn.score, drawn.smoothing, problem.num_classes)
    thresholds = thresholds_away_from_scores(drawn.thresholds.numpy(), scores, drawn.checkpoints)
    rule = hand_rule(problem, drawn.score, drawn.smoothing, drawn.checkpoints, thresholds, drawn.max_set_size)
    expected = reference.exit_evaluate(problem.spikes, **twin_fields(rule), target=problem.target)
    num_steps = problem.spikes.shape[0]
    spikes, target = problem.torch_spikes(), problem.torch_target()
    state = rule.start(problem.spikes.shape[1])
    for step in spikes:
        state.update(step)
    assert_report_matches(state.report(target), expected, num_steps)
    assert_report_matches(ee.evaluate(rule, spikes, target), expected, num_steps)
    # Time at dim 1 gives the same report.
    assert_report_matches(ee.evaluate(rule, spikes.transpose(0, 1), target, time_dim=1), expected, num_steps)


@given(data=st.data())
def test_run_stops_once_every_sample_exited(data):
    problem = data.draw(exit_problems())
    rule = data.draw(hand_made_rules(problem))
    with_target = data.draw(st.booleans())
    expected = reference.exit_evaluate(
        problem.spikes, **twin_fields(rule), target=problem.target if with_target else None
    )
    spikes = problem.torch_spikes()
    num_steps = problem.spikes.shape[0]
    form = data.draw(st.sampled_from(["tensor", "tensor-time-dim-1", "sequence"]))
    decide_every = data.draw(st.one_of(st.none(), st.integers(1, num_steps + 2)))
    simulated = run_steps_simulated(rule.checkpoints, num_steps, expected["exit_step"], decide_every)
    if decide_every == 1:
        assert simulated == expected["steps_simulated"]  # stops right after the last exit
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        assert len(calls) <= simulated, "step_fn called after the block in which every sample had exited"
        return step_input if form != "sequence" else spikes[step_input]

    if form == "tensor":
        inputs, time_dim = spikes, 0
    elif form == "tensor-time-dim-1":
        inputs, time_dim = spikes.transpose(0, 1), 1
    else:
        inputs, time_dim = list(range(problem.spikes.shape[0])), 0
    report = ee.run(step_fn, inputs, rule, target=problem.torch_target() if with_target else None, time_dim=time_dim,
                    decide_every=decide_every)
    assert len(calls) == simulated
    for step, step_input in enumerate(calls):  # in order, one step each
        if form == "sequence":
            assert step_input == step
        else:
            assert torch.equal(step_input, spikes[step])
    assert_report_matches(report, {**expected, "steps_simulated": simulated}, num_steps)


def _margin_rule(checkpoints: list[int], num_steps: int) -> ee.ExitRule:
    """Two classes; exit once the leading class leads by 1 (smoothing 1) at a checkpoint."""
    return ee.ExitRule(checkpoints=checkpoints, thresholds=[1.0] * len(checkpoints), max_set_size=1, score="margin",
                       smoothing=1.0, num_classes=2, num_steps=num_steps)


def test_run_hand_computed():
    # Margin threshold 1 at checkpoints (0, 2, 4): sample 0 leads at step 0, sample 1 at step 2; steps 3 and 4
    # are never simulated.
    spikes = torch.zeros(5, 2, 2)
    spikes[0, 0, 0] = 1.0
    spikes[1, 1, 1] = 1.0
    rule = _margin_rule([0, 2, 4], num_steps=5)
    simulated = []

    def step_fn(step):
        if step >= 3:
            raise AssertionError(f"step {step} simulated after every sample exited")
        simulated.append(step)
        return spikes[step]

    report = ee.run(step_fn, range(5), rule, target=torch.tensor([0, 0]), decide_every=1)
    assert simulated == [0, 1, 2] and report.steps_simulated == 3
    assert report.exit_step.tolist() == [0, 2] and report.prediction.tolist() == [0, 1]
    assert report.accuracy == 0.5 and report.coverage == 0.5 and report.mean_exit_step == 1.0


@pytest.mark.parametrize(
    ("checkpoints", "decide_every", "expected_steps"),
    [
        # 40 undecided: a first block of ceil(40 / 8) = 5 steps (0-4); 10 left: max(4, ceil(10 / 8)) = 4 (5-8).
        (list(range(12)), None, 9),
        # The first block runs on to the checkpoint 6, by which every sample has exited.
        ([0, 6, 11], None, 7),
        ([0, 6, 11], 1, 7),
        (list(range(12)), 1, 7),
        (list(range(12)), 3, 9),  # blocks 0-2, 3-5, 6-8
        (list(range(12)), 20, 12),  # one block: the whole window
    ],
)
def test_run_block_policy_hand_computed(checkpoints, decide_every, expected_steps):
    # 30 samples lead at step 0, 10 at step 6 (margin threshold 1): every sample exits by step 6.
    spikes = torch.zeros(12, 40, 2)
    spikes[0, :30, 0] = 1.0
    spikes[6, 30:, 1] = 1.0
    rule = _margin_rule(checkpoints, num_steps=12)
    simulated = []

    def step_fn(step):
        simulated.append(step)
        return spikes[step]

    report = ee.run(step_fn, range(12), rule, decide_every=decide_every)
    assert simulated == list(range(expected_steps)) and report.steps_simulated == expected_steps
    assert report.exit_step.tolist() == [0] * 30 + [6] * 10
    assert report.prediction.tolist() == [0] * 30 + [1] * 10


@pytest.mark.parametrize("decide_every", [0, -1, 1.5, True, "4"])
def test_run_rejects_bad_decide_every(decide_every):
    rule = _margin_rule([0], num_steps=1)
    with pytest.raises((TypeError, ValueError), match="decide_every"):
        ee.run(lambda x: x, torch.zeros(1, 1, 2), rule, decide_every=decide_every)
