"""Helpers shared by the early-exit tests: the rule's fields as the NumPy twin takes them, hand-made rules,
report comparisons, run's block policy written out, and a vectorised full-window correct count."""

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from ..strategies import EXACT_SMOOTHINGS, exit_checkpoints, exit_thresholds

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


def run_steps_simulated(checkpoints, num_steps: int, exit_steps, decide_every) -> int:
    """How many steps ``early_exit.run`` simulates, from its documented block policy and the samples' exit steps:
    a block starting at ``start`` is ``decide_every`` steps long (by default ``max(4, ceil(undecided / 8))``),
    extended to the next checkpoint; the run stops after the first block by whose end every sample has exited."""
    exit_steps = [int(step) for step in exit_steps]
    start = 0
    while True:
        undecided = sum(1 for step in exit_steps if step >= start)
        length = decide_every if decide_every is not None else max(4, (undecided + 7) // 8)
        end = min(start + length, num_steps) - 1
        while end not in checkpoints:
            end += 1
        if all(step <= end for step in exit_steps):
            return end + 1
        start = end + 1
