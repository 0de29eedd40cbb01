"""``calibrate``: both methods against the twin (``reference.exit_calibrate``), exact thresholds and ranks, and the
guarantees on held-out data; on CUDA, the same as on the CPU."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from ..strategies import EXACT_SMOOTHINGS, exit_checkpoints, exit_problems
from .support import SCORES, assert_report_matches, correct_count, full_window_correct, twin_fields

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
