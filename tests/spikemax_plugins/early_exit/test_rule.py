"""``ExitRule`` and its scores: ``confidence`` and the default checkpoints against the twin and by hand, and the
rule's JSON round trip and ``from_dict`` validation."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemax_plugins import early_exit as ee
from spikemax_plugins import reference

from ..strategies import EXACT_SMOOTHINGS, exit_problems
from .support import SCORES, assert_report_matches, hand_made_rules, twin_fields

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
