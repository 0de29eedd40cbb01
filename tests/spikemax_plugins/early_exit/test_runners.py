"""Early exit (spikemax_plugins.early_exit) against its NumPy twins in spikemax_plugins.reference, and its promises.

The twins are written from the semantics in the module docstring. Decisions compare scores with thresholds by
``>=``, so the exact-agreement properties draw spikes and smoothings whose scores are exact in float64 in any
summation order (``strategies.EXACT_SMOOTHINGS``); the confidence itself is also checked on arbitrary graded
spikes with a tolerance.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from .strategies import EXACT_SMOOTHINGS, exit_checkpoints, exit_problems, exit_thresholds

SCORES = ["probability", "margin"]


# ---------------------------------------------------------------------------------------------------- helpers


def twin_fields(rule: ee.ExitRule) -> dict:
    """The rule's fields as the twin takes them."""
    return {
        "checkpoints": list(rule.checkpoints),
        "thresholds": rule.thresholds.cpu().numpy(),
        "max_set_size": rule.max_set_size,
        "score": rule.score,
        "smoothing": rule.smoothing,
        "num_classes": rule.num_classes,
    }


def hand_rule(problem, score, smoothing, checkpoints, thresholds, max_set_size) -> ee.ExitRule:
    return ee.ExitRule(
        checkpoints=list(checkpoints),
        thresholds=torch.tensor(thresholds, dtype=torch.float64),
        max_set_size=max_set_size,
        score=score,
        smoothing=smoothing,
        num_classes=problem.classes,
        num_steps=problem.spikes.shape[0],
    )


@st.composite
def hand_made_rules(draw, problem):
    """A rule with random checkpoints and thresholds (scores themselves, their float neighbours, +-inf, ...)."""
    score = draw(st.sampled_from(SCORES))
    smoothing = draw(st.sampled_from(EXACT_SMOOTHINGS))
    checkpoints = draw(exit_checkpoints(problem.spikes.shape[0]))
    scores = reference.exit_confidence(problem.spikes, score, smoothing, problem.num_classes)
    thresholds = draw(exit_thresholds(scores, checkpoints))
    max_set_size = draw(st.integers(1, problem.classes))
    return hand_rule(problem, score, smoothing, checkpoints, thresholds, max_set_size)


def assert_decisions_match(exit_step, prediction, prediction_set, expected) -> None:
    assert exit_step.dtype == torch.int64 and prediction.dtype == torch.int64
    assert prediction_set.dtype == torch.bool
    np.testing.assert_array_equal(exit_step.cpu().numpy(), expected["exit_step"])
    np.testing.assert_array_equal(prediction.cpu().numpy(), expected["prediction"])
    np.testing.assert_array_equal(prediction_set.cpu().numpy(), expected["prediction_set"])


def assert_report_matches(report: ee.ExitReport, expected: dict, num_steps: int) -> None:
    assert_decisions_match(report.exit_step, report.prediction, report.prediction_set, expected)
    assert report.num_steps == num_steps
    assert report.steps_simulated == expected["steps_simulated"]
    assert report.mean_exit_step == pytest.approx(expected["mean_exit_step"], rel=1e-12, abs=1e-12)
    assert report.exit_fraction == pytest.approx(expected["exit_fraction"], rel=1e-12, abs=1e-12)
    for name in ("accuracy", "coverage"):
        if expected[name] is None:
            assert getattr(report, name) is None
        else:
            assert getattr(report, name) == pytest.approx(expected[name], rel=1e-12, abs=1e-12)


def correct_count(prediction: torch.Tensor, target) -> int:
    return int(np.sum(prediction.cpu().numpy() == np.asarray(target)))


def full_window_correct(spikes: np.ndarray, target: np.ndarray) -> int:
    """Samples whose unique most-spiking class (N = C) is the target: reference.predict, vectorised for the
    large statistical tests."""
    counts = spikes.sum(axis=0)
    best = counts.max(axis=-1, keepdims=True)
    unique = (counts == best).sum(axis=-1) == 1
    return int(np.sum(unique & (counts.argmax(axis=-1) == target)))


# ------------------------------------------------------------------------------------------------- confidence


@given(
    problem=exit_problems(max_steps=12, max_batch=6, max_classes=8),
    score=st.sampled_from(SCORES),
    smoothing=st.sampled_from(EXACT_SMOOTHINGS),
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
def test_confidence_matches_reference_exactly(problem, score, smoothing, dtype):
    # Multiples of 1/8 are exact in float32 too; counts are float64 either way.
    actual = ee.confidence(
        problem.torch_spikes(dtype), score=score, smoothing=smoothing, num_classes=problem.num_classes
    )
    expected = reference.exit_confidence(problem.spikes, score, smoothing, problem.num_classes)
    assert actual.dtype == torch.float64
    assert actual.shape == expected.shape == (*problem.spikes.shape[:2], problem.classes)
    np.testing.assert_array_equal(actual.numpy(), expected)


@given(
    problem=exit_problems(max_steps=12, max_batch=6, max_classes=8, exact=False),
    score=st.sampled_from(SCORES),
    smoothing=st.sampled_from([0.0, 0.1, 1e-3, 1.0, 7.3]),
)
def test_confidence_matches_reference_on_graded_spikes(problem, score, smoothing):
    # Arbitrary graded values: summation order may change the last bits. A class count sums at most 12 steps x 3
    # neurons = 36 terms, so its relative rounding error is below 36 * 2^-53 = 4e-15; 1e-12 leaves room for the
    # division and margins of nearly equal counts (absolute).
    spikes = problem.torch_spikes()
    actual = ee.confidence(spikes, score=score, smoothing=smoothing, num_classes=problem.num_classes)
    expected = reference.exit_confidence(problem.spikes, score, smoothing, problem.num_classes)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12, atol=1e-12)
    # Another layout: time at dim 1, output in that layout.
    moved = ee.confidence(
        spikes.transpose(0, 1), score=score, smoothing=smoothing, num_classes=problem.num_classes, time_dim=1
    )
    assert moved.shape == (problem.spikes.shape[1], problem.spikes.shape[0], problem.classes)
    np.testing.assert_allclose(moved.numpy(), expected.transpose(1, 0, 2), rtol=1e-12, atol=1e-12)


def test_confidence_hand_computed():
    # One sample, 3 classes, steps (1,0,0), (1,1,0), (0,0,0): running counts (1,0,0), (2,1,0), (2,1,0).
    spikes = torch.tensor([[[1.0, 0, 0]], [[1.0, 1, 0]], [[0.0, 0, 0]]], dtype=torch.float64)
    probability = ee.confidence(spikes, score="probability", smoothing=1.0)
    torch.testing.assert_close(probability[0, 0], torch.tensor([2 / 4, 1 / 4, 1 / 4], dtype=torch.float64))
    torch.testing.assert_close(probability[1, 0], torch.tensor([3 / 6, 2 / 6, 1 / 6], dtype=torch.float64))
    torch.testing.assert_close(probability[2, 0], probability[1, 0])
    margin = ee.confidence(spikes, score="margin")
    assert margin[:, 0].tolist() == [[1, -1, -1], [1, -1, -2], [1, -1, -2]]
    # All silent with smoothing 0: 1 / C for every class; margins all 0; tied leaders have margin 0.
    silent = torch.zeros(2, 1, 4, dtype=torch.float64)
    assert ee.confidence(silent, smoothing=0.0).flatten().tolist() == [0.25] * 8
    assert ee.confidence(silent, score="margin").flatten().tolist() == [0.0] * 8
    tied = torch.tensor([[[2.0, 2.0, 1.0]]])
    assert ee.confidence(tied, score="margin").flatten().tolist() == [0.0, 0.0, -1.0]
    # Population code k = 2, C = 2: neurons (0, 1) are class 0, (2, 3) class 1.
    grouped = torch.tensor([[[1.0, 1.0, 0.0, 1.0]]])
    assert ee.confidence(grouped, score="margin", num_classes=2).flatten().tolist() == [1.0, -1.0]
    assert ee.confidence(grouped, smoothing=0.0, num_classes=2).flatten().tolist() == [2 / 3, 1 / 3]


@given(num_steps=st.integers(1, 20_000))
def test_default_checkpoints_match_reference(num_steps):
    for method in ee.METHODS:
        assert ee.default_checkpoints(num_steps, method) == reference.exit_default_checkpoints(num_steps, method)


def test_default_checkpoints_hand_computed():
    assert ee.default_checkpoints(5, "accuracy") == [0, 1, 2, 3, 4]
    # K = min(T, 4), steps ceil(T (k + 1) / K) - 1.
    assert ee.default_checkpoints(1, "conformal") == [0]
    assert ee.default_checkpoints(3, "conformal") == [0, 1, 2]
    assert ee.default_checkpoints(8, "conformal") == [1, 3, 5, 7]
    assert ee.default_checkpoints(10, "conformal") == [2, 4, 7, 9]  # ceil(2.5), 5, ceil(7.5), 10, minus 1


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


# -------------------------------------------------------------------------------------------------- calibrate


@st.composite
def calibration_options(draw, problem):
    method = draw(st.sampled_from(ee.METHODS))
    if method == "conformal":
        # Mostly large alphas: n >= K / alpha - 1 samples are needed, and the problems are small.
        alpha = draw(st.sampled_from([0.1, 0.3, 0.5, 0.75, 0.9, 0.99, 0.99]))
    else:
        alpha = draw(st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.25, 0.3, 0.5, 0.9]))
    options = {
        "method": method,
        "alpha": alpha,
        "score": draw(st.sampled_from(SCORES)),
        "smoothing": draw(st.sampled_from(EXACT_SMOOTHINGS)),
        "max_set_size": draw(st.integers(1, problem.classes)),
        "num_classes": problem.num_classes,
    }
    if draw(st.booleans()):
        # May miss T - 1: calibrate appends it.
        options["checkpoints"] = draw(exit_checkpoints(problem.spikes.shape[0], with_last=False))
    return options


@given(data=st.data())
def test_calibrate_matches_reference(data):
    problem = data.draw(exit_problems(max_batch=16))
    options = data.draw(calibration_options(problem))
    spikes, target = problem.torch_spikes(), problem.torch_target()
    try:
        expected = reference.exit_calibrate(problem.spikes, problem.target, **options)
    except ValueError:
        # The twin found r > n: the calibration set is too small for alpha over K checkpoints.
        event("conformal: calibration set too small")
        with pytest.raises(ValueError, match="too small"):
            ee.calibrate(spikes, target, **options)
        return
    rule = ee.calibrate(spikes, target, **options)
    event(f"{options['method']}: finite thresholds {bool(np.isfinite(expected['thresholds']).any())}")
    assert rule.checkpoints == expected["checkpoints"]
    assert rule.thresholds.dtype == torch.float64
    np.testing.assert_array_equal(rule.thresholds.numpy(), expected["thresholds"])
    assert (rule.max_set_size, rule.score, rule.smoothing) == (
        options["max_set_size"],
        options["score"],
        options["smoothing"],
    )
    assert (rule.num_classes, rule.num_steps) == (problem.classes, problem.spikes.shape[0])
    assert (rule.method, rule.alpha, rule.calibration_size) == (options["method"], options["alpha"], len(target))
    # Time at dim 1: the same rule.
    assert ee.calibrate(spikes.transpose(0, 1), target, time_dim=1, **options) == rule
    # The calibrated rule on its own calibration set, against the twin's rule.
    report = ee.evaluate(rule, spikes, target)
    fields = {name: expected[name] for name in ("checkpoints", "thresholds", "max_set_size", "score", "smoothing")}
    twin_report = reference.exit_evaluate(problem.spikes, **fields, num_classes=problem.classes, target=problem.target)
    assert_report_matches(report, twin_report, problem.spikes.shape[0])
    if options["method"] == "accuracy":
        # The documented constraint, in exact arithmetic with alpha read as its decimal.
        full_correct = int(np.sum(reference.predict(problem.spikes, problem.num_classes) == problem.target))
        allowed = Fraction(repr(options["alpha"])) * len(target)
        assert correct_count(report.prediction, problem.target) >= full_correct - allowed


@given(problem=exit_problems(max_batch=12, exact=False), alpha=st.sampled_from([0.0, 0.05, 0.2]), data=st.data())
def test_accuracy_rule_keeps_its_constraint_on_graded_spikes(problem, alpha, data):
    """Arbitrary graded spikes and smoothings: scores are rounded, the promise on the calibration set holds."""
    score = data.draw(st.sampled_from(SCORES))
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 1.0, 3.7]))
    max_set_size = data.draw(st.integers(1, problem.classes))
    spikes, target = problem.torch_spikes(), problem.torch_target()
    rule = ee.calibrate(
        spikes,
        target,
        method="accuracy",
        alpha=alpha,
        score=score,
        smoothing=smoothing,
        max_set_size=max_set_size,
        num_classes=problem.num_classes,
    )
    report = ee.evaluate(rule, spikes, target)
    full_correct = int(np.sum(reference.predict(problem.spikes, problem.num_classes) == problem.target))
    assert correct_count(report.prediction, problem.target) >= full_correct - Fraction(repr(alpha)) * len(target)


def test_accuracy_rule_counts_a_score_tie_at_the_last_step_as_no_decision():
    """Regression: a sample exiting at T - 1 is predicted from its scores, not from the full counts.

    Counts 0.1 + 0.2 = 0.30000000000000004 and 0.3 differ, so the full-window prediction is class 0, but with
    smoothing 1 both round to 1.3 / 3.6: the scores tie, and a sample exiting at T - 1 on them has no decision.
    Sample A (class 0): silent, then (0.1 + 0.2, 0.3, 0): scores 1/3 each, then (0.3611, 0.3611, 0.2778).
    Sample B (class 0): (0.1, 0, 0), then silent: top score 1.1 / 3.1 = 0.3548 at both steps.
    max_set_size = C = 3: a sample exits once its top score reaches the threshold. Candidates 1/3 (both exit
    at step 0; A has no decision), 0.3548 (B exits at 0; A exits at 1 with tied scores, no decision: 1 correct),
    0.3611 (A exits at 1, no decision; B never exits) and +inf. The full window gets both right, so alpha = 0
    allows no loss: only +inf is feasible.
    """
    spikes = np.zeros((2, 2, 3))
    spikes[1, 0] = [0.1 + 0.2, 0.3, 0.0]
    spikes[0, 1] = [0.1, 0.0, 0.0]
    target = np.array([0, 0])
    scores = reference.exit_confidence(spikes)
    assert scores[1, 0, 0] == scores[1, 0, 1]  # the premise: tied scores, distinct counts
    assert reference.predict(spikes).tolist() == [0, 0]
    expected = reference.exit_calibrate(spikes, target, method="accuracy", alpha=0.0, max_set_size=3)
    assert expected["thresholds"].tolist() == [math.inf, math.inf]
    rule = ee.calibrate(torch.tensor(spikes), torch.tensor(target), method="accuracy", alpha=0.0, max_set_size=3)
    assert rule.thresholds.tolist() == [math.inf, math.inf]
    assert ee.evaluate(rule, torch.tensor(spikes), torch.tensor(target)).accuracy == 1.0


@pytest.mark.parametrize(
    ("alpha", "num_checkpoints", "size", "rank"),
    [
        # Hand-computed r = ceil((1 - alpha / K)(n + 1)). In floating point the first product is 14.000000000000002
        # (r = 15); with alpha as its exact binary value 0.0299999999999999988..., the second is just above 97
        # (r = 98): only the decimal reading gives these ranks.
        (0.44, 1, 24, 14),  # 0.56 * 25 = 14
        (0.03, 1, 99, 97),  # 0.97 * 100 = 97
        (0.1, 4, 39, 39),  # 0.975 * 40 = 39: the smallest calibration set for alpha 0.1 over 4 checkpoints
        (0.2, 4, 200, 191),  # 0.95 * 201 = 190.95
        (0.5, 2, 3, 3),  # 0.75 * 4 = 3
    ],
)
def test_conformal_threshold_rank_is_exact(alpha, num_checkpoints, size, rank):
    assert reference.exit_conformal_rank(alpha, num_checkpoints, size) == rank
    # True-class margins 1/8, 2/8, ..., n/8 at every checkpoint (class 0 fires (b + 1) / 8 at step 0 only, class 1
    # is silent): the r-th largest is (n + 1 - r) / 8.
    num_steps = num_checkpoints
    spikes = torch.zeros(num_steps, size, 2, dtype=torch.float64)
    spikes[0, :, 0] = torch.arange(1, size + 1, dtype=torch.float64) / 8
    target = torch.zeros(size, dtype=torch.int64)
    rule = ee.calibrate(
        spikes, target, method="conformal", alpha=alpha, score="margin", checkpoints=list(range(num_steps))
    )
    assert rule.thresholds.tolist() == [(size + 1 - rank) / 8] * num_checkpoints
    if rank == size:
        # One sample fewer and r > n: too small, and the message names the size needed (this one).
        with pytest.raises(ValueError, match="too small") as error:
            ee.calibrate(spikes[:, 1:], target[1:], method="conformal", alpha=alpha, checkpoints=list(range(num_steps)))
        assert f"n >= {size}" in str(error.value) and f"n = {size - 1}" in str(error.value)


def test_accuracy_threshold_hand_computed():
    """Ten samples of class 0, T = 3, margin score, max_set_size 1, checkpoints every step.

    Seven "good" samples fire (1, 0) at every step: margins 1, 2, 3 for class 0 (and -1, -2, -3). Three "lured"
    ones fire (0, 1), (2, 0), (1, 0): counts (0, 1), (2, 1), (3, 1), margins (-1, 1), (1, -1), (2, -2). The full
    window gets all ten right. Candidates: tops 1, 2, 3 and the floats just above -1, -2, -3, and +inf.

    * a threshold in (-1, 1]: everyone exits at step 0 (sum of exit steps 0), the lured ones wrongly: 7 correct;
    * 2 (or just above -2): the good ones exit at step 1, the lured ones at step 2, all right: sum 7 + 6 = 13;
    * 3, just above -3, or +inf: everyone decided at step 2 (sum 20), all right.

    alpha = 0.3 allows exactly 3 errors (alpha read as the decimal: 10 * Fraction(0.3) is just under 3), so the
    threshold is 1, the larger of the two sum-0 candidates; alpha = 0.29 or 0 allow fewer: threshold 2 (sum 13,
    larger than the float just above -2).
    """
    spikes = torch.zeros(3, 10, 2, dtype=torch.float64)
    spikes[:, :7, 0] = 1.0
    spikes[0, 7:, 1] = 1.0
    spikes[1, 7:, 0] = 2.0
    spikes[2, 7:, 0] = 1.0
    target = torch.zeros(10, dtype=torch.int64)
    cases = [(0.3, 1.0, [0] * 10, 0.7), (0.29, 2.0, [1] * 7 + [2] * 3, 1.0), (0.0, 2.0, [1] * 7 + [2] * 3, 1.0)]
    for alpha, threshold, exit_steps, accuracy in cases:
        rule = ee.calibrate(spikes, target, method="accuracy", alpha=alpha, score="margin")
        assert rule.checkpoints == [0, 1, 2]
        assert rule.thresholds.tolist() == [threshold] * 3
        report = ee.evaluate(rule, spikes, target)
        assert report.exit_step.tolist() == exit_steps
        assert report.accuracy == pytest.approx(accuracy, abs=1e-12)
        twin = reference.exit_calibrate(spikes.numpy(), target.numpy(), method="accuracy", alpha=alpha, score="margin")
        assert twin["thresholds"].tolist() == [threshold] * 3


def test_accuracy_threshold_can_be_just_above_a_score():
    """The (max_set_size + 1)-th score candidates matter: the best threshold here is the float just above one.

    Three samples of class 0, T = 2, smoothing 0 (scores = counts / total), max_set_size 1, alpha = 0. Step 0
    scores: sample 1 (0.8, 0.1, 0.1), sample 2 (0.3, 0.5, 0.2) (class 1 leads: an exit at step 0 is wrong),
    sample 3 (0.45, 0.28, 0.27). At step 1 sample 2 gets 10 spikes of class 0: (0.65, 0.25, 0.1), so the full
    window gets all three right and alpha = 0 forbids sample 2 exiting at step 0, i.e. lambda in (0.3, 0.5].
    Sample 3 exits at step 0 for lambda in (0.28, 0.45], sample 1 for lambda in (0.1, 0.8]. The only feasible
    threshold with two exits at step 0 (sum of exit steps 1) lies in (0.28, 0.3]: the largest candidate there is
    the float just above 0.28 (a top score would give sum 2 at best: 0.8).
    """
    spikes = np.zeros((2, 3, 3))
    spikes[0] = [[8.0, 1.0, 1.0], [3.0, 5.0, 2.0], [4.5, 2.8, 2.7]]
    spikes[1, 1] = [10.0, 0.0, 0.0]
    target = np.zeros(3, dtype=np.int64)
    third_score = 2.8 / (4.5 + 2.8 + 2.7)  # sample 3, class 1, step 0
    assert reference.exit_confidence(spikes, smoothing=0.0)[0, 2, 1] == third_score
    expected = float(np.nextafter(third_score, np.inf))
    rule = ee.calibrate(torch.tensor(spikes), torch.tensor(target), method="accuracy", alpha=0.0, smoothing=0.0)
    assert rule.thresholds.tolist() == [expected, expected]
    report = ee.evaluate(rule, torch.tensor(spikes), torch.tensor(target))
    assert report.exit_step.tolist() == [0, 1, 0] and report.accuracy == 1.0
    twin = reference.exit_calibrate(spikes, target, method="accuracy", alpha=0.0, smoothing=0.0)
    assert twin["thresholds"].tolist() == [expected, expected]


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


@given(data=st.data())
def test_streaming_equals_offline_on_graded_spikes(data):
    # Arbitrary graded values (rounded sums): streaming and offline must still decide identically.
    problem = data.draw(exit_problems(exact=False))
    rule = data.draw(hand_made_rules(problem))
    spikes, target = problem.torch_spikes(), problem.torch_target()
    offline = ee.evaluate(rule, spikes, target)
    state = rule.start(problem.spikes.shape[1])
    for step in spikes:
        state.update(step)
    online = state.report(target)
    for name in ("exit_step", "prediction", "prediction_set"):
        assert torch.equal(getattr(online, name), getattr(offline, name)), name
    for name in ("steps_simulated", "mean_exit_step", "exit_fraction", "accuracy", "coverage"):
        assert getattr(online, name) == getattr(offline, name), name
    # Time at dim 1 gives the same report.
    moved = ee.evaluate(rule, spikes.transpose(0, 1), target, time_dim=1)
    for name in ("exit_step", "prediction", "prediction_set"):
        assert torch.equal(getattr(moved, name), getattr(offline, name)), name


@given(data=st.data())
def test_run_stops_once_every_sample_exited(data):
    problem = data.draw(exit_problems())
    rule = data.draw(hand_made_rules(problem))
    with_target = data.draw(st.booleans())
    expected = reference.exit_evaluate(
        problem.spikes, **twin_fields(rule), target=problem.target if with_target else None
    )
    spikes = problem.torch_spikes()
    form = data.draw(st.sampled_from(["tensor", "tensor-time-dim-1", "sequence"]))
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        assert len(calls) <= expected["steps_simulated"], "step_fn called after every sample had exited"
        return step_input if form != "sequence" else spikes[step_input]

    if form == "tensor":
        inputs, time_dim = spikes, 0
    elif form == "tensor-time-dim-1":
        inputs, time_dim = spikes.transpose(0, 1), 1
    else:
        inputs, time_dim = list(range(problem.spikes.shape[0])), 0
    report = ee.run(step_fn, inputs, rule, target=problem.torch_target() if with_target else None, time_dim=time_dim)
    assert len(calls) == expected["steps_simulated"]
    for step, step_input in enumerate(calls):  # in order, one step each
        if form == "sequence":
            assert step_input == step
        else:
            assert torch.equal(step_input, spikes[step])
    assert_report_matches(report, expected, problem.spikes.shape[0])


def test_run_hand_computed():
    # Margin threshold 1 at checkpoints (0, 2, 4): sample 0 leads at step 0, sample 1 at step 2; steps 3 and 4
    # are never simulated.
    spikes = torch.zeros(5, 2, 2)
    spikes[0, 0, 0] = 1.0
    spikes[1, 1, 1] = 1.0
    rule = ee.ExitRule(
        checkpoints=[0, 2, 4],
        thresholds=[1.0, 1.0, 1.0],
        max_set_size=1,
        score="margin",
        smoothing=1.0,
        num_classes=2,
        num_steps=5,
    )
    simulated = []

    def step_fn(step):
        if step >= 3:
            raise AssertionError(f"step {step} simulated after every sample exited")
        simulated.append(step)
        return spikes[step]

    report = ee.run(step_fn, range(5), rule, target=torch.tensor([0, 0]))
    assert simulated == [0, 1, 2] and report.steps_simulated == 3
    assert report.exit_step.tolist() == [0, 2] and report.prediction.tolist() == [0, 1]
    assert report.accuracy == 0.5 and report.coverage == 0.5 and report.mean_exit_step == 1.0


# ------------------------------------------------------------------------------------------------ guarantees


@given(problem=exit_problems(max_batch=16))
def test_full_window_correct_helper_matches_reference(problem):
    spikes = problem.spikes.reshape(*problem.spikes.shape[:2], problem.classes, -1).sum(-1)  # N = C
    expected = int(np.sum(reference.predict(spikes) == problem.target))
    assert full_window_correct(spikes, problem.target) == expected


def synthetic_split(rng: np.random.Generator, size: int, num_steps: int, num_classes: int, continuous: bool):
    """i.i.d. samples (so calibration and test splits are exchangeable): class y uniform; every output fires at
    rate 0.2, the true class at 0.2 + 0.4 u with a per-sample difficulty u ~ U(0, 1). ``continuous``: every
    neuron emits an exponential amount with that mean at every step (no ties between scores); else 0/1 spikes."""
    target = rng.integers(0, num_classes, size)
    rates = np.full((size, num_classes), 0.2)
    rates[np.arange(size), target] += 0.4 * rng.uniform(0.0, 1.0, size)
    if continuous:
        spikes = rng.exponential(1.0, (num_steps, size, num_classes)) * rates
    else:
        spikes = (rng.random((num_steps, size, num_classes)) < rates).astype(np.float64)
    return torch.tensor(spikes), torch.tensor(target)


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "binary"])
def test_conformal_coverage_on_held_out_data(continuous):
    """Coverage at the exit >= 1 - alpha, and each checkpoint admits the true class at rate r / (n + 1).

    n = 200 calibration samples, alpha = 0.2, T = 8 -> K = 4 checkpoints (1, 3, 5, 7), r = ceil(0.95 * 201) =
    191; 500 test samples; 50 seeds. Tolerances, from the distributions the conformal argument gives:

    * Per checkpoint, with continuous scores, the admission rate given the calibration draw is Beta(r, n + 1 - r)
      = Beta(191, 10): mean r / (n + 1) = 0.9502, variance 191 * 10 / (201^2 * 202) = 2.34e-4; the test split
      adds binomial variance <= 0.0498 * 0.9502 / 500 = 9.5e-5. The mean over 50 seeds then has standard
      deviation sqrt(3.29e-4 / 50) = 0.0026; 4 sd = 0.0103 -> tolerance 0.011 on both sides of [1 - alpha / K,
      r / (n + 1)] (Gaussian tail 3e-5 per side and checkpoint). With ties (binary spikes) admission can only be
      more frequent, so only the lower bound is checked there.
    * At the exit, miscoverage <= the sum over checkpoints of the per-checkpoint miscoverages (Bonferroni), whose
      mean is 4 * 10 / 201 = 0.199 <= alpha and whose standard deviation is <= 4 * sqrt(2.34e-4) = 0.061 (perfect
      correlation, the worst case); ties only lower it. Over 50 seeds: sd <= 0.0087, plus test-split noise
      sqrt(0.25 / (500 * 50)) = 0.0032: 4 * sqrt(0.0087^2 + 0.0032^2) = 0.037 -> tolerance 0.037.
    """
    alpha, size, test_size, seeds, num_steps, num_classes = 0.2, 200, 500, 50, 8, 4
    rank = math.ceil((1 - Fraction(1, 5) / 4) * (size + 1))
    assert rank == 191
    admitted, covered = [], []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, int(continuous)])
        calibration_spikes, calibration_target = synthetic_split(rng, size, num_steps, num_classes, continuous)
        test_spikes, test_target = synthetic_split(rng, test_size, num_steps, num_classes, continuous)
        rule = ee.calibrate(calibration_spikes, calibration_target, method="conformal", alpha=alpha)
        assert rule.checkpoints == [1, 3, 5, 7]
        report = ee.evaluate(rule, test_spikes, test_target)
        covered.append(report.coverage)
        # The true-class probability score (smoothing 1) of the test split at the checkpoints, from its definition.
        counts = np.cumsum(test_spikes.numpy(), axis=0)[rule.checkpoints]  # [K, B, C]
        scores = (counts + 1.0) / (counts + 1.0).sum(axis=-1, keepdims=True)
        true_scores = scores[:, np.arange(test_size), test_target.numpy()]  # [K, B]
        admitted.append(np.mean(true_scores >= rule.thresholds.numpy()[:, None], axis=1))
    admission = np.mean(admitted, axis=0)
    assert np.all(admission >= 1 - alpha / 4 - 0.011), admission
    if continuous:
        assert np.all(admission <= rank / (size + 1) + 0.011), admission
    assert np.mean(covered) >= 1 - alpha - 0.037, np.mean(covered)


def lured_split(rng: np.random.Generator, size: int, num_steps: int, num_classes: int):
    """i.i.d. samples whose early spikes mislead: outputs fire at rate 0.1; the true class at 0.15 for steps
    0..2 and 0.5 from step 3 on; half of the samples have a lure, another class firing at 0.6 for steps 0..2."""
    target = rng.integers(0, num_classes, size)
    rates = np.full((num_steps, size, num_classes), 0.1)
    samples = np.arange(size)
    rates[:3, samples, target] = 0.15
    rates[3:, samples, target] = 0.5
    lured = np.flatnonzero(rng.random(size) < 0.5)
    lure = (target + rng.integers(1, num_classes, size)) % num_classes
    rates[:3, lured, lure[lured]] = 0.6
    return torch.tensor((rng.random(rates.shape) < rates).astype(np.float64)), torch.tensor(target)


def test_accuracy_rule_loss_on_held_out_data():
    """Held-out accuracy loss (full window - early exit) <= alpha + 0.12 on every seed.

    Margin score of 0/1 spikes, T = 10, max_set_size 1: margins are integers in [-T, T], so whatever the data a
    threshold lambda acts only through ceil(lambda) clipped to [-T, T + 1]: N = 2T + 2 = 22 possible rules, fixed
    in advance. For each, the per-sample loss d = full_correct - exit_correct lies in {-1, 0, 1} (variance <= 1,
    centred range 2). The chosen rule has calibration loss <= alpha (checked exactly below), so its true loss
    exceeds alpha + t only if some of the 22 rules has true loss - calibration loss > t; Bernstein with a union
    bound: <= 22 exp(-n t^2 / (2 (1 + 2t / 3))) = 2.1e-5 for n = 8000, t = 0.06. The test split (independent of
    the choice) adds its own deviation > 0.06 with probability <= 1e-6. So each seed passes alpha + 0.12 except
    with probability < 2.2e-5 (< 2.2e-4 over the 10 seeds). The bound has power: on this data the rule that
    exits at the first unique leader (threshold 1) loses about 0.43 (checked below), far above alpha + 0.12.
    """
    alpha, size, seeds, num_steps, num_classes, tolerance = 0.05, 8000, 10, 10, 4, 0.12
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 7])
        calibration_spikes, calibration_target = lured_split(rng, size, num_steps, num_classes)
        test_spikes, test_target = lured_split(rng, size, num_steps, num_classes)
        rule = ee.calibrate(calibration_spikes, calibration_target, method="accuracy", alpha=alpha, score="margin")
        assert rule.checkpoints == list(range(num_steps))
        # On the calibration split, the constraint holds exactly.
        calibration = ee.evaluate(rule, calibration_spikes, calibration_target)
        full_calibration = full_window_correct(calibration_spikes.numpy(), calibration_target.numpy())
        assert correct_count(calibration.prediction, calibration_target) >= full_calibration - Fraction(1, 20) * size
        # Held out.
        report = ee.evaluate(rule, test_spikes, test_target)
        full_accuracy = full_window_correct(test_spikes.numpy(), test_target.numpy()) / size
        assert full_accuracy - report.accuracy <= alpha + tolerance, (seed, full_accuracy, report.accuracy)
        assert report.mean_exit_step < num_steps - 1  # it does exit early: the bound is not met by never exiting
    greedy = ee.ExitRule(
        checkpoints=list(range(num_steps)),
        thresholds=[1.0] * num_steps,
        max_set_size=1,
        score="margin",
        smoothing=1.0,
        num_classes=num_classes,
        num_steps=num_steps,
    )
    greedy_report = reference.exit_evaluate(
        test_spikes.numpy()[:, :1000], **twin_fields(greedy), target=test_target.numpy()[:1000]
    )
    greedy_loss = (
        reference.accuracy(test_spikes.numpy()[:, :1000], test_target.numpy()[:1000]) - greedy_report["accuracy"]
    )
    assert greedy_loss > alpha + tolerance + 0.1


# ------------------------------------------------------------------------------------------------ serialising


@given(data=st.data())
def test_rule_round_trips_through_json(data):
    problem = data.draw(exit_problems(max_steps=6, max_batch=4))
    rule = data.draw(hand_made_rules(problem))
    thresholds = rule.thresholds.tolist()
    text = json.dumps(rule.to_dict(), allow_nan=False)  # allow_nan=False: strict JSON, no Infinity/NaN literals
    restored = ee.ExitRule.from_dict(json.loads(text))
    assert restored.checkpoints == rule.checkpoints
    assert restored.thresholds.dtype == torch.float64
    assert restored.thresholds.tolist() == thresholds  # +-inf included, exactly
    for name in ("max_set_size", "score", "smoothing", "num_classes", "num_steps", "method", "alpha"):
        assert getattr(restored, name) == getattr(rule, name), name
    assert restored == rule
    expected = reference.exit_evaluate(problem.spikes, **twin_fields(rule))
    assert_report_matches(ee.evaluate(restored, problem.torch_spikes()), expected, problem.spikes.shape[0])


def test_calibrated_rule_round_trips_through_json():
    generator = torch.Generator().manual_seed(5)
    spikes = (torch.rand(6, 40, 3, generator=generator) < 0.4).double()
    target = torch.randint(0, 3, (40,), generator=generator)
    for method, alpha in [("conformal", 0.1), ("accuracy", 0.05)]:
        rule = ee.calibrate(spikes, target, method=method, alpha=alpha, score="margin", max_set_size=2)
        data = json.loads(json.dumps(rule.to_dict(), allow_nan=False))
        assert (data["method"], data["alpha"], data["calibration_size"]) == (method, alpha, 40)
        restored = ee.ExitRule.from_dict(data)
        assert (restored.method, restored.alpha, restored.calibration_size) == (method, alpha, 40)
        assert restored.thresholds.tolist() == rule.thresholds.tolist()
    infinite = ee.ExitRule(
        checkpoints=[0, 2],
        thresholds=[-math.inf, math.inf],
        max_set_size=1,
        score="margin",
        smoothing=0.0,
        num_classes=2,
        num_steps=3,
    )
    assert infinite.to_dict()["thresholds"] == ["-inf", "inf"]
    assert ee.ExitRule.from_dict(json.loads(json.dumps(infinite.to_dict()))).thresholds.tolist() == [
        -math.inf,
        math.inf,
    ]


RULE_DICT = {
    "checkpoints": [1, 5],
    "thresholds": [0.5, "inf"],
    "max_set_size": 1,
    "score": "probability",
    "smoothing": 1.0,
    "num_classes": 3,
    "num_steps": 6,
    "method": "conformal",
    "alpha": 0.1,
    "calibration_size": 40,
}

# (changes to a valid dict, exception, words the message must contain)
BAD_RULE_DICTS = [
    pytest.param({"extra": 1}, ValueError, ["extra"], id="unknown-key"),
    pytest.param({"thresholds": ["abc", 1.0]}, TypeError, ["thresholds", "'abc'"], id="threshold-string"),
    pytest.param({"thresholds": ["Infinity", 1.0]}, TypeError, ["thresholds", "'Infinity'"], id="threshold-Infinity"),
    pytest.param({"thresholds": [math.nan, 1.0]}, ValueError, ["thresholds", "NaN"], id="threshold-nan"),
    pytest.param({"thresholds": [True, 1.0]}, TypeError, ["thresholds", "True"], id="threshold-bool"),
    pytest.param({"thresholds": [0.5]}, ValueError, ["thresholds", "[K] = [2]", "(1,)"], id="threshold-count"),
    pytest.param({"thresholds": 0.5}, TypeError, ["thresholds", "float"], id="threshold-scalar"),
    pytest.param({"checkpoints": [1, 6]}, ValueError, ["checkpoints", "[0, 5]", "[1, 6]"], id="checkpoint-range"),
    pytest.param({"checkpoints": [5, 1]}, ValueError, ["checkpoints", "strictly increasing"], id="checkpoint-order"),
    pytest.param({"checkpoints": [1, 4]}, ValueError, ["last checkpoint", "T - 1 = 5"], id="checkpoint-last"),
    pytest.param({"checkpoints": []}, ValueError, ["checkpoints", "at least one"], id="checkpoint-empty"),
    pytest.param({"checkpoints": [1.0, 5]}, TypeError, ["checkpoints", "1.0"], id="checkpoint-float"),
    pytest.param({"score": "softmax"}, ValueError, ["score", "'softmax'"], id="score"),
    pytest.param({"smoothing": -1.0}, ValueError, ["smoothing", "-1.0"], id="smoothing"),
    pytest.param({"max_set_size": 4}, ValueError, ["max_set_size", "<= 3", "4"], id="max-set-size"),
    pytest.param({"max_set_size": 0}, ValueError, ["max_set_size", ">= 1", "0"], id="max-set-size-0"),
    pytest.param({"num_classes": 1}, ValueError, ["num_classes", ">= 2", "1"], id="num-classes"),
    pytest.param({"num_steps": "6"}, TypeError, ["num_steps", "str"], id="num-steps-type"),
    pytest.param({"method": "bogus"}, ValueError, ["method", "'bogus'"], id="method"),
    pytest.param({"alpha": 2.0}, ValueError, ["alpha", "2.0"], id="alpha-range"),
    pytest.param({"alpha": 0.0}, ValueError, ["alpha", "0.0"], id="alpha-zero-conformal"),
    pytest.param({"alpha": math.nan}, ValueError, ["alpha", "nan"], id="alpha-nan"),
    pytest.param({"alpha": "0.1"}, TypeError, ["alpha", "str"], id="alpha-type"),
    pytest.param({"method": "accuracy", "alpha": 1.0}, ValueError, ["alpha", "1.0"], id="alpha-accuracy"),
    pytest.param({"calibration_size": 0}, ValueError, ["calibration_size", ">= 1", "0"], id="calibration-size"),
    pytest.param({"calibration_size": 4.0}, TypeError, ["calibration_size", "float"], id="calibration-size-type"),
]


@pytest.mark.parametrize(("changes", "exception", "words"), BAD_RULE_DICTS)
def test_from_dict_refuses_bad_data(changes, exception, words):
    assert ee.ExitRule.from_dict(dict(RULE_DICT)).to_dict() == {**RULE_DICT, "thresholds": [0.5, "inf"]}
    with pytest.raises(exception) as error:
        ee.ExitRule.from_dict({**RULE_DICT, **changes})
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_from_dict_refuses_what_is_not_a_dict():
    with pytest.raises(TypeError, match="data must be a dict"):
        ee.ExitRule.from_dict([("score", "margin")])
    with pytest.raises(TypeError, match="score"):  # a missing field
        ee.ExitRule.from_dict({key: value for key, value in RULE_DICT.items() if key != "score"})


# -------------------------------------------------------------------------------------------------- validation

SPIKES = (torch.rand(6, 40, 3, generator=torch.Generator().manual_seed(0)) < 0.4).double()
TARGET = torch.arange(40) % 3
RULE = ee.ExitRule(
    checkpoints=[1, 5],
    thresholds=[0.5, 0.5],
    max_set_size=1,
    score="probability",
    smoothing=1.0,
    num_classes=3,
    num_steps=6,
)


def _calibrate(**changes):
    arguments = {"spikes": SPIKES, "target": TARGET, "method": "accuracy", "alpha": 0.1, **changes}
    return lambda: ee.calibrate(arguments.pop("spikes"), arguments.pop("target"), **arguments)


def _finished_state():
    state = RULE.start(40)
    for step in SPIKES:
        state.update(step)
    return state


# (call, exception, words the message must contain)
BAD_CALLS = [
    pytest.param(_calibrate(method="conformal", alpha=0.0), ValueError, ["alpha", "0.0"], id="conformal-alpha-0"),
    pytest.param(_calibrate(method="conformal", alpha=1.0), ValueError, ["alpha", "(0, 1)", "1.0"], id="conformal-1"),
    pytest.param(_calibrate(method="conformal", alpha=-0.5), ValueError, ["alpha", "-0.5"], id="conformal-neg"),
    pytest.param(_calibrate(method="conformal", alpha=math.nan), ValueError, ["alpha", "nan"], id="conformal-nan"),
    pytest.param(_calibrate(alpha=-0.1), ValueError, ["alpha", "[0, 1)", "-0.1"], id="accuracy-alpha-neg"),
    pytest.param(_calibrate(alpha=1.0), ValueError, ["alpha", "[0, 1)", "1.0"], id="accuracy-alpha-1"),
    pytest.param(_calibrate(alpha=math.inf), ValueError, ["alpha", "inf"], id="accuracy-alpha-inf"),
    pytest.param(_calibrate(alpha="0.1"), TypeError, ["alpha", "str"], id="alpha-type"),
    pytest.param(_calibrate(method="bogus"), ValueError, ["method", "'bogus'"], id="method"),
    pytest.param(_calibrate(score="softmax"), ValueError, ["score", "'softmax'"], id="calibrate-score"),
    pytest.param(
        lambda: ee.confidence(SPIKES, score="softmax"), ValueError, ["score", "'softmax'"], id="confidence-score"
    ),
    pytest.param(_calibrate(target=TARGET[:5]), ValueError, ["target", "[B] = [40]", "(5,)"], id="batch-mismatch"),
    pytest.param(_calibrate(checkpoints=[0, 6]), ValueError, ["checkpoints", "[0, 5]", "[0, 6]"], id="ckpt-range"),
    pytest.param(_calibrate(checkpoints=[-1, 5]), ValueError, ["checkpoints", "[0, 5]", "-1"], id="ckpt-negative"),
    pytest.param(_calibrate(checkpoints=[3, 1]), ValueError, ["checkpoints", "increasing", "[3, 1]"], id="unsorted"),
    pytest.param(_calibrate(checkpoints=[2, 2]), ValueError, ["checkpoints", "increasing", "[2, 2]"], id="repeated"),
    pytest.param(_calibrate(checkpoints=[]), ValueError, ["checkpoints", "at least one"], id="ckpt-empty"),
    pytest.param(_calibrate(checkpoints=3), TypeError, ["checkpoints", "int"], id="ckpt-not-sequence"),
    pytest.param(_calibrate(max_set_size=4), ValueError, ["max_set_size", "<= 3", "4"], id="max-set-size"),
    pytest.param(
        _calibrate(spikes=SPIKES[:, :0], target=TARGET[:0]),
        ValueError,
        ["calibration set is empty", "B = 0"],
        id="empty-accuracy",
    ),
    pytest.param(
        _calibrate(spikes=SPIKES[:, :0], target=TARGET[:0], method="conformal"),
        ValueError,
        ["calibration set is empty", "B = 0"],
        id="empty-conformal",
    ),
    pytest.param(
        # n >= K / alpha - 1 = 4 / 0.1 - 1 = 39 samples are needed with the 4 default checkpoints.
        _calibrate(spikes=SPIKES[:, :38], target=TARGET[:38], method="conformal"),
        ValueError,
        ["too small", "alpha = 0.1", "K = 4", "n = 38", "n >= 39"],
        id="too-small",
    ),
    pytest.param(
        # K = 6 checkpoints, alpha = 0.25: n >= 6 / 0.25 - 1 = 23.
        _calibrate(
            spikes=SPIKES[:, :22], target=TARGET[:22], method="conformal", alpha=0.25, checkpoints=[0, 1, 2, 3, 4]
        ),
        ValueError,
        ["too small", "K = 6", "n = 22", "n >= 23"],
        id="too-small-user-checkpoints",
    ),
    pytest.param(lambda: ee.evaluate(RULE, SPIKES[:5]), ValueError, ["spikes", "T = 6", "5"], id="evaluate-T"),
    pytest.param(lambda: ee.evaluate(RULE, SPIKES[:, :, :2]), ValueError, ["N = 2", "C = 3"], id="evaluate-N"),
    pytest.param(
        lambda: ee.evaluate(RULE, SPIKES, TARGET[:3]), ValueError, ["target", "[B] = [40]", "(3,)"], id="ev-B"
    ),
    pytest.param(lambda: ee.evaluate(RULE, -SPIKES), ValueError, ["spikes", ">= 0"], id="evaluate-negative"),
    pytest.param(lambda: ee.run(lambda x: x, SPIKES[:4], RULE), ValueError, ["inputs", "T = 6", "4"], id="run-T"),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(39, 3)), ValueError, ["step_spikes", "B = 40", "(39, 3)"], id="upd-B"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(40, 4)), ValueError, ["step_spikes", "C = 3", "(40, 4)"], id="upd-N"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(1, 40, 3)), ValueError, ["step_spikes", "(1, 40, 3)"], id="upd-3d"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(40, 3, dtype=torch.long)), TypeError, ["step_spikes"], id="upd-int"
    ),
    pytest.param(lambda: RULE.start(40).update(SPIKES.numpy()[0]), TypeError, ["step_spikes"], id="update-numpy"),
    pytest.param(
        lambda: RULE.start(40).update(-torch.ones(40, 3)), ValueError, ["step_spikes", ">= 0"], id="update-negative"
    ),
    pytest.param(
        lambda: _finished_state().update(SPIKES[0]), RuntimeError, ["already received all T = 6"], id="update-after-T"
    ),
    pytest.param(lambda: RULE.start(40).report(), RuntimeError, ["not every sample has exited"], id="report-early"),
    pytest.param(lambda: RULE.start(0), ValueError, ["batch_size", "0"], id="start-empty"),
]


@pytest.mark.parametrize(("call", "exception", "words"), BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, exception, words):
    with pytest.raises(exception) as error:
        call()
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_boundaries_that_are_accepted():
    # alpha = 0 is the accuracy method's lower end; the smallest conformal calibration set is accepted.
    assert ee.calibrate(SPIKES, TARGET, method="accuracy", alpha=0).alpha == 0
    assert ee.calibrate(SPIKES[:, :39], TARGET[:39], method="conformal", alpha=0.1).calibration_size == 39
    # Missing T - 1 is appended.
    assert ee.calibrate(SPIKES, TARGET, method="accuracy", alpha=0.1, checkpoints=[1, 3]).checkpoints == [1, 3, 5]


# ------------------------------------------------------------------------------------------------------- cuda


def check_device_matches_cpu(device: torch.device) -> None:
    """Calibrate, evaluate, stream and run on ``device``: the same rules and reports as on the CPU and the twin."""
    rng = np.random.default_rng(11)
    spikes = torch.tensor((rng.random((9, 300, 8)) < 0.3) * (rng.integers(1, 17, (9, 300, 8)) / 8.0))
    target = torch.tensor(rng.integers(0, 4, 300))
    for method, alpha in [("conformal", 0.2), ("accuracy", 0.05)]:
        for score in SCORES:
            options = {"method": method, "alpha": alpha, "score": score, "max_set_size": 2, "num_classes": 4}
            cpu_rule = ee.calibrate(spikes, target, **options)
            device_rule = ee.calibrate(spikes.to(device), target.to(device), **options)
            assert device_rule.thresholds.device.type == "cpu"
            assert device_rule.thresholds.tolist() == cpu_rule.thresholds.tolist()
            assert device_rule == cpu_rule
            expected = reference.exit_evaluate(spikes.numpy(), **twin_fields(cpu_rule), target=target.numpy())
            assert (
                cpu_rule.thresholds.tolist()
                == reference.exit_calibrate(spikes.numpy(), target.numpy(), **options)["thresholds"].tolist()
            )
            device_report = ee.evaluate(device_rule, spikes.to(device), target.to(device))
            assert device_report.exit_step.device.type == device.type
            assert_report_matches(device_report, expected, 9)
            assert_report_matches(ee.evaluate(cpu_rule, spikes, target), expected, 9)
            state = device_rule.start(300, device=device)
            for step in spikes.to(device):
                state.update(step)
            assert_report_matches(state.report(target.to(device)), expected, 9)
            device_spikes = spikes.to(device)
            assert_report_matches(
                ee.run(lambda x: x, device_spikes, device_rule, target=target.to(device)), expected, 9
            )


@pytest.mark.cuda
def test_calibrate_and_evaluate_on_cuda_match_cpu():
    check_device_matches_cpu(torch.device("cuda"))
