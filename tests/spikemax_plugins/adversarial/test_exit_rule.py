"""Adversarial early-exit scores and rules: ``confidence``, ``ExitRule`` construction, validation of every field,
and the dict round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import early_exit

from .oracles import (
    check_choice_option,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_spike_tensor,
    check_time_dim_option,
    np_scores,
    running_grouped,
)
from .support import (
    INF,
    NAN,
    VALID,
    Faults,
    adversarial_spikes,
    classify,
    expect_clear_error,
    mixed,
    num_classes_values,
    spike_tensors,
    spike_values,
    time_dim_values,
)

# ================================================================================================ early exit


@st.composite
def confidence_calls(draw):
    num_steps, batch_size, classes, group = (draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(2, 4)),
                                             draw(st.sampled_from([1, 2])))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    spikes = draw(adversarial_spikes(base, time_dim)) if draw(st.integers(0, 11)) == 0 else draw(
        spike_tensors(base, time_dim, requires_grad=False))
    return (spikes.value, draw(mixed(["probability", "margin"], ["prob", None, 1, ["margin"]])),
            draw(mixed([0.0, 1.0, 0.5, 2.0, 1e-30], [-1.0, NAN, INF, True, "1", None])),
            draw(num_classes_values(classes * group, classes, group > 1)), draw(time_dim_values(time_dim)),
            draw(st.integers(0, 5)) > 0)


@given(call=confidence_calls())
def test_confidence_adversarial(call):
    spikes, score, smoothing, num_classes, time_dim, checks_on = call
    faults = Faults()
    check_choice_option(faults, "score", score, ("probability", "margin"))
    parsed_smoothing = check_smoothing_option(faults, smoothing)
    td = check_time_dim_option(faults, time_dim)
    ok, classes = check_num_classes_option(faults, num_classes)
    problem = check_spike_tensor(faults, spikes, td, ok, classes)
    if not faults.structural and not problem.meta:
        if not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any():
            faults.add_value("spikes", "a NaN, infinite or negative spike")  # checked spike by spike
    meta = isinstance(spikes, torch.Tensor) and spikes.is_meta
    with smx.value_checks(checks_on):
        outcome, result = classify("core/early_exit.confidence", lambda: early_exit.confidence(
            spikes, score=score, smoothing=smoothing, num_classes=num_classes, time_dim=time_dim), faults,
            values_checked=checks_on and not meta)
    if outcome != VALID:
        return
    expected_shape = list(spikes.shape)
    expected_shape[td] = problem.num_steps
    expected_shape[[d for d in range(3) if d != td][1]] = problem.classes
    assert list(result.shape) == expected_shape and result.dtype == torch.float64
    if meta:
        return
    expected = np_scores(running_grouped(problem.tbn, problem.classes), score, parsed_smoothing)
    np.testing.assert_allclose(np.moveaxis(result.numpy(), td, 0), expected, rtol=1e-12, atol=0)


RULE_FIELDS = {
    "checkpoints": ([[3], [0, 3], [1, 2, 3], range(4), (0, 3)],
                    [[], [3, 1], [0, 0, 3], [4], [-1, 3], [0, 2], [True, 3], [1.0, 3], "03", 3, None,
                     torch.tensor([0, 3]), np.array([0, 3])]),
    "max_set_size": ([1, 2, 3], [0, 4, True, 1.0, None, "1"]),
    "score": (["probability", "margin"], ["prob", None, 0]),
    "smoothing": ([0.0, 1.0, 0.5, 1e30], [-1.0, NAN, INF, True, "1", None]),
    "num_classes": ([3], [1, True, 3.0, None, "3"]),
    "num_steps": ([4], [0, True, 4.0, None]),
    "method": ([None, "conformal", "accuracy"], ["calibrated", 1, ""]),
    # Invalid alpha / calibration_size: test_exit_rule_calibration_fields_are_validated.
    "alpha": ([None, 0.1, 0.0, 0.5], [None]),
    "calibration_size": ([None, 10, 1], [None]),
}


@st.composite
def exit_rule_fields(draw):
    fields = {name: draw(mixed(*values, odds=4 if name == "checkpoints" else 10))
              for name, values in RULE_FIELDS.items()}
    count = len(fields["checkpoints"]) if isinstance(fields["checkpoints"], (list, tuple, range)) else 1
    fields["thresholds"] = draw(mixed(
        st.lists(st.sampled_from([0.5, 0.0, 1, -2.5, INF, -INF, "inf", "-inf", np.float64(0.25)]), min_size=count,
                 max_size=count),
        # None or a scalar: test_exit_rule_thresholds_that_are_not_a_sequence.
        ["0.5", [NAN] * count, ["nan"] * count, [0.5] * (count + 1), [True] * count, torch.zeros(count, 2),
         [[0.5]] * count], odds=8))
    if draw(st.booleans()) and isinstance(fields["thresholds"], list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in fields["thresholds"]):
        finite = all(math.isfinite(v) for v in fields["thresholds"])
        fields["thresholds"] = torch.tensor(fields["thresholds"], dtype=draw(st.sampled_from(
            [torch.float64, torch.float32] + ([torch.int64] if finite else []))))
    return fields


def exit_rule_faults(fields: dict) -> Faults:
    """The documented field rules of ExitRule (and what a JSON-safe, re-validated rule needs)."""
    faults = Faults()
    num_steps = check_int_option(faults, "num_steps", fields["num_steps"], 1)
    num_classes = check_int_option(faults, "num_classes", fields["num_classes"], 2)
    checkpoints = fields["checkpoints"]
    steps = None
    if isinstance(checkpoints, (str, bytes, torch.Tensor)) or not isinstance(checkpoints, (list, tuple, range)):
        faults.add("checkpoints", "not a sequence of ints")
    elif not checkpoints or any(isinstance(s, bool) or not isinstance(s, int) for s in checkpoints):
        faults.add("checkpoints", "empty or not ints")
    else:
        steps = list(checkpoints)
        if num_steps is not None and (min(steps) < 0 or max(steps) > num_steps - 1 or steps[-1] != num_steps - 1):
            faults.add("checkpoints", "outside [0, T - 1] or not ending at T - 1")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            faults.add("checkpoints", "not strictly increasing")
    check_choice_option(faults, "score", fields["score"], ("probability", "margin"))
    check_smoothing_option(faults, fields["smoothing"])
    size = fields["max_set_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or (num_classes and size > num_classes):
        faults.add("max_set_size", "not an int in [1, C]")
    thresholds = fields["thresholds"]
    if isinstance(thresholds, torch.Tensor):
        if steps is not None and tuple(thresholds.shape) != (len(steps),):
            faults.add("thresholds", "wrong shape")
        elif torch.isnan(thresholds.double()).any():
            faults.add("thresholds", "NaN")
    elif not isinstance(thresholds, (list, tuple)):
        faults.add("thresholds", "not a sequence")
    else:
        def number(v):
            return v in ("inf", "-inf") if isinstance(v, str) else (isinstance(v, (int, float)) and not isinstance(
                v, bool))
        if not all(number(v) for v in thresholds):
            faults.add("thresholds", "not numbers or 'inf' / '-inf'")
        elif steps is not None and len(thresholds) != len(steps):
            faults.add("thresholds", "wrong length")
        elif any(isinstance(v, float) and math.isnan(v) for v in thresholds):
            faults.add("thresholds", "NaN")
    if fields["method"] is not None:
        check_choice_option(faults, "method", fields["method"], ("conformal", "accuracy"))
    alpha = fields["alpha"]
    if alpha is not None:
        check_real_option(faults, "alpha", alpha, 0.0, 1.0)
        if is_real_number(alpha) and alpha == 1:
            faults.add("alpha", "1 is no miscoverage level")
        if is_real_number(alpha) and alpha == 0 and fields["method"] == "conformal":
            faults.add("alpha", "0: a conformal rule needs a miscoverage level in (0, 1)")
    calibration_size = fields["calibration_size"]
    if calibration_size is not None:
        check_int_option(faults, "calibration_size", calibration_size, 1)
    return faults


def is_real_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@given(fields=exit_rule_fields())
def test_exit_rule_construction_and_round_trip(fields):
    """ExitRule validates every field (from_dict says 'every field is validated again'), and a valid rule
    serialises to strict JSON (no NaN) and back to an equal rule."""
    faults = exit_rule_faults(fields)
    outcome, rule = classify("core/early_exit.ExitRule", lambda: early_exit.ExitRule(**fields), faults,
                             values_checked=True)
    if outcome != VALID:
        return
    data = rule.to_dict()
    text = json.dumps(data, allow_nan=False)
    again = early_exit.ExitRule.from_dict(json.loads(text))
    assert again == rule and again.to_dict() == data
    assert rule.thresholds.dtype == torch.float64 and rule.thresholds.shape == (len(rule.checkpoints),)


VALID_RULE = dict(checkpoints=[1, 3], thresholds=[0.5, "inf"], max_set_size=1, score="probability", smoothing=1.0,
                  num_classes=3, num_steps=4)


@given(thresholds=st.sampled_from([None, 0.5, 1, True, object()]))
def test_exit_rule_thresholds_that_are_not_a_sequence(thresholds):
    """A scalar or None where the thresholds go: a TypeError naming thresholds (not "object is not iterable")."""
    expect_clear_error("core/early_exit.ExitRule thresholds", lambda: early_exit.ExitRule(
        **{**VALID_RULE, "checkpoints": [3], "thresholds": thresholds}), "thresholds")


@given(field=st.sampled_from(["alpha", "calibration_size"]),
       value=st.sampled_from([NAN, INF, -1, -0.5, 1.5, "0.1", True, [0.1], 2.5, 0]),
       through=st.sampled_from(["init", "from_dict"]))
def test_exit_rule_calibration_fields_are_validated(field, value, through):
    """ExitRule.from_dict promises that 'every field is validated again' and to_dict that the dict is JSON-safe:
    alpha must be a number in [0, 1), calibration_size an int >= 1 (or None, for a hand-made rule)."""
    faults = Faults()
    if field == "alpha":
        if check_real_option(faults, "alpha", value, 0.0, 1.0) == 1.0:
            faults.add("alpha", "1")
    else:
        check_int_option(faults, "calibration_size", value, 1)
    fields = {**VALID_RULE, "method": "accuracy", "alpha": 0.1, "calibration_size": 10, field: value}
    if through == "init":
        def build():
            return early_exit.ExitRule(**fields)
    else:
        def build():
            return early_exit.ExitRule.from_dict(fields)
    outcome, rule = classify(f"core/early_exit.ExitRule {field}", build, faults, values_checked=True)
    if outcome == VALID:
        json.dumps(rule.to_dict(), allow_nan=False)
