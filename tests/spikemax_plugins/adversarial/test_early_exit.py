"""Adversarial early-exit entry points: ``evaluate``, ``run``, ``calibrate`` (both methods, feasibility on its own
calibration set) and the ``ExitState`` protocol, against the NumPy rule semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import early_exit, reference

from ..early_exit.support import run_steps_simulated
from .oracles import (
    Problem,
    check_choice_option,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_spike_tensor,
    check_target_tensor,
    check_target_values,
    check_time_dim_option,
    exact_fraction,
    exit_rules,
    np_evaluate,
    np_scores,
    running_grouped,
)
from .support import (
    INDEX_DTYPES,
    INF,
    NAN,
    VALID,
    Faults,
    adversarial_spikes,
    classify,
    expect_clear_error,
    mixed,
    num_classes_values,
    record_valid,
    spike_tensors,
    spike_values,
    target_args,
    time_dim_values,
)


@st.composite
def evaluate_calls(draw):
    num_steps, batch_size, classes, group = (draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 4)),
                                             draw(st.sampled_from([1, 2])))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    rule = draw(exit_rules(num_steps, classes, np.where(np.isfinite(base), base, 0)))
    if draw(st.integers(0, 11)) == 0:
        spikes = draw(adversarial_spikes(base, time_dim))
    else:  # meta spikes have their own test (test_meta_tensors_in_early_exit_give_meta_results_or_clear_errors)
        spikes = draw(spike_tensors(base, time_dim, requires_grad=False, allow_meta=False))
    if draw(st.integers(0, 15)) == 0:  # a rule for another T or C
        other = early_exit.ExitRule(checkpoints=[num_steps], thresholds=[0.5], max_set_size=1, score="margin",
                                    smoothing=0.0, num_classes=classes + 1, num_steps=num_steps + 1)
        rule = draw(st.sampled_from([other, rule.to_dict(), None]))
    target = draw(st.one_of(st.none(), target_args(batch_size, classes, soft=False)))
    target = None if target is None else target.value
    if isinstance(target, torch.Tensor) and target.is_meta:
        target = torch.zeros(batch_size + 1, dtype=torch.int64)  # meta has its own test
    return rule, spikes.value, target, draw(time_dim_values(time_dim)), draw(st.integers(0, 5)) > 0


def evaluate_oracle(rule, spikes, target, time_dim):
    faults = Faults()
    if not isinstance(rule, early_exit.ExitRule):
        faults.add("rule", "not an ExitRule")
        rule = None
    td = check_time_dim_option(faults, time_dim)
    problem = check_spike_tensor(faults, spikes, td, True, None)
    if problem is None and isinstance(spikes, torch.Tensor) and spikes.is_floating_point() and spikes.dim() == 3 \
            and td is not None:
        shape = list(spikes.shape)
        shape.pop(td)
        if 0 not in shape and spikes.shape[td] > 0 and shape[1] == 1:
            faults.structural = [f for f in faults.structural if f.name != "spikes"]  # N = 1: judged by the rule
            problem = Problem(None if spikes.is_meta else np.moveaxis(spikes.double().numpy(), td, 0),
                              spikes.shape[td], shape[0], 1, 1, td, spikes.is_meta)
    if problem is not None and rule is not None:
        if problem.num_steps != rule.num_steps:
            faults.add("spikes", f"T = {problem.num_steps}, the rule's T = {rule.num_steps}")
        if problem.num_outputs % rule.num_classes:
            faults.add("spikes", f"N = {problem.num_outputs} not a multiple of the rule's C")
            faults.add("rule", f"N = {problem.num_outputs} not a multiple of the rule's C")
    if target is not None:
        if not isinstance(target, torch.Tensor) or target.dtype not in INDEX_DTYPES:
            faults.add("target", "not an index tensor")
        elif problem is not None and tuple(target.shape) != (problem.batch_size,):
            faults.add("target", "wrong shape")
        elif isinstance(spikes, torch.Tensor) and target.device != spikes.device:
            faults.add("target", "another device")
    spikes_usable = problem is not None and rule is not None and not problem.meta and not any(
        f.name in ("spikes", "rule", "time_dim") for f in faults.structural)
    if spikes_usable and (not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any()):
        # evaluate checks the recording before it reads the target: this fault can come before target's.
        faults.add_value("spikes", "a NaN, infinite or negative spike")
    if faults.structural or problem.meta:
        return faults, problem, rule
    if target is not None:
        labels = target.long().numpy()
        if labels.min() < 0 or labels.max() >= rule.num_classes:
            faults.add_value("target", "out of range")
    return faults, problem, rule


def check_report(report, rule, tbn, target):
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           rule.num_classes, tbn)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    np.testing.assert_array_equal(report.prediction_set.numpy(), expected.prediction_set)
    assert report.num_steps == rule.num_steps
    assert report.mean_exit_step == pytest.approx(expected.exit_step.mean(), rel=1e-12)
    assert report.exit_fraction == pytest.approx(((expected.exit_step + 1) / rule.num_steps).mean(), rel=1e-12)
    if target is None:
        assert report.accuracy is None and report.coverage is None
    else:
        labels = target.long().numpy()
        assert report.accuracy == pytest.approx((expected.prediction == labels).mean(), abs=1e-15)
        assert report.coverage == pytest.approx(expected.prediction_set[np.arange(len(labels)), labels].mean(),
                                                abs=1e-15)
    return expected


@given(call=evaluate_calls())
def test_evaluate_adversarial(call):
    rule, spikes, target, time_dim, checks_on = call
    faults, problem, parsed_rule = evaluate_oracle(rule, spikes, target, time_dim)
    with smx.value_checks(checks_on):
        outcome, report = classify("core/early_exit.evaluate",
                                   lambda: early_exit.evaluate(rule, spikes, target, time_dim=time_dim), faults,
                                   values_checked=checks_on and not (problem is not None and problem.meta))
    if outcome != VALID:
        return
    if problem.meta:
        assert report.exit_step.is_meta  # meta in, meta out (no values to decide on)
        return
    expected = check_report(report, rule, problem.tbn, target)
    assert report.steps_simulated == int(expected.exit_step.max()) + 1


@given(call=evaluate_calls(), as_list=st.booleans(), decide_every=st.sampled_from([None, None, 1, 2, 3]),
       breakage=st.sampled_from([None] * 6 + ["not callable", "returns list", "returns 3-D", "returns int",
                                             "inputs int", "inputs short", "returns NaN", "other batch"]))
def test_run_adversarial(call, as_list, decide_every, breakage):
    """early_exit.run on a recording replayed step by step: the report equals the rule semantics, steps_simulated
    is where the block policy stops (the last exit step + 1 with ``decide_every=1``) and the network is called
    exactly that often; broken step functions and inputs raise clear errors."""
    rule, spikes, target, time_dim, checks_on = call
    faults, problem, _ = evaluate_oracle(rule, spikes, target, time_dim)
    if faults.structural or faults.value or problem.meta:
        return  # this property is about run's own arguments; evaluate's covers the recording's
    steps = torch.tensor(np.moveaxis(problem.tbn, 0, problem.time_dim)).movedim(problem.time_dim, 0)
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        output = step_input
        if breakage == "returns list":
            return output.tolist()
        if breakage == "returns 3-D":
            return output.unsqueeze(0)
        if breakage == "returns int":
            return output.long()
        if breakage == "returns NaN":
            return torch.full_like(output, NAN)
        if breakage == "other batch" and len(calls) == 2:
            return output[:0]
        return output

    inputs = list(steps) if as_list else spikes
    run_faults = Faults()
    function = step_fn
    if breakage == "not callable":
        function = "net"
        run_faults.add("step_fn", "not callable")
    elif breakage == "inputs int":
        inputs = 5
        run_faults.add("inputs", "not a tensor or sequence")
    elif breakage == "inputs short":
        inputs = list(steps)[:-1] if rule.num_steps > 1 else []
        run_faults.add("inputs", "T - 1 steps")
    elif breakage in ("returns list", "returns 3-D"):
        run_faults.add("step_fn", "a bad output")
    elif breakage == "returns int":  # the wording is tested strictly in test_run_names_step_fn_for_bad_outputs
        run_faults.add("step_fn", "a bad output")
        run_faults.add("step_spikes", "a bad output")
    elif breakage == "returns NaN":
        run_faults.add_value("step_spikes", "NaN output")
        run_faults.add_value("step_fn", "NaN output")
    elif breakage == "other batch" and rule.num_steps > 1:
        run_faults.add("step_spikes", "another batch size")
        run_faults.add("step_fn", "another batch size")
    with smx.value_checks(checks_on):
        outcome, report = classify("core/early_exit.run", lambda: early_exit.run(
            function, inputs, rule, target=target, time_dim=time_dim if not as_list else 0,
            decide_every=decide_every), run_faults, values_checked=checks_on)
    if outcome != VALID:
        return
    expected = check_report(report, rule, problem.tbn, target)
    simulated = run_steps_simulated(rule.checkpoints, rule.num_steps, expected.exit_step, decide_every)
    if decide_every == 1:
        assert simulated == int(expected.exit_step.max()) + 1
    assert report.steps_simulated == simulated == len(calls)


@pytest.mark.parametrize("output", ["int64", "bool", "other batch", "other N"])
def test_run_names_step_fn_for_bad_outputs(output):
    """run's caller passed step_fn, not "step_spikes": an output of the wrong dtype or batch size must be
    reported as step_fn's (as run already does for a non-tensor or a 3-D output)."""
    spikes = torch.zeros(3, 2, 3)
    rule = early_exit.ExitRule(checkpoints=[2], thresholds=[INF], max_set_size=1, score="margin", smoothing=0.0,
                               num_classes=3, num_steps=3)
    outputs = {"int64": torch.zeros(2, 3, dtype=torch.int64), "bool": torch.zeros(2, 3, dtype=torch.bool),
               "other batch": torch.zeros(1, 3), "other N": torch.zeros(2, 4)}
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        return outputs[output] if len(calls) > 1 or output in ("int64", "bool") else step_input

    expect_clear_error(f"core/early_exit.run step_fn output ({output})", lambda: early_exit.run(step_fn, spikes, rule),
                       "step_fn")


@st.composite
def calibrate_calls(draw, adversarial: bool = True):
    num_steps, classes = draw(st.integers(1, 5)), draw(st.integers(2, 4))
    batch_size = draw(st.integers(1, 12 if adversarial else 30))
    group = draw(st.sampled_from([1, 2]))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True, negatives=adversarial,
                             specials=adversarial))
    spikes = draw(adversarial_spikes(base, time_dim)) if adversarial and draw(st.integers(0, 15)) == 0 else draw(
        spike_tensors(base, time_dim, requires_grad=False, allow_meta=False))
    target = draw(target_args(batch_size, classes, soft=False, adversarial=adversarial))
    if not adversarial:
        return (spikes.value, target.value, draw(st.sampled_from(["conformal", "accuracy"])),
                draw(st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 0.9])),
                draw(st.sampled_from(["probability", "margin"])),
                draw(st.one_of(st.none(), st.lists(st.integers(0, num_steps - 1), unique=True, min_size=1,
                                                   max_size=3).map(sorted))),
                draw(st.integers(1, classes)), draw(st.sampled_from([0.0, 1.0, 0.5])),
                classes if group > 1 else draw(st.sampled_from([None, classes])), time_dim)
    method = draw(mixed(["conformal", "accuracy"], ["bonferroni", None, 1], odds=14))
    alpha = draw(mixed([0.0, 0.05, 0.1, 0.25, 0.5, 0.9, 0.9, 1e-9], [1.0, -0.1, NAN, INF, True, "0.1", None],
                       odds=14))
    checkpoints = draw(st.one_of(st.none(), st.lists(st.integers(0, num_steps - 1), unique=True, min_size=1,
                                                       max_size=3).map(sorted),
                                 st.sampled_from([[], [num_steps], [1, 0], "0", 0, [0.0], [True]])))
    return (spikes.value, target.value, method, alpha,
            draw(mixed(["probability", "margin"], ["p", None], odds=14)), checkpoints,
            draw(mixed(st.integers(1, classes), [0, classes + 1, True, 1.0], odds=14)),
            draw(mixed([0.0, 1.0, 0.5], [-1.0, NAN, None], odds=14)),
            draw(num_classes_values(classes * group, classes, group > 1)), draw(time_dim_values(time_dim)))


@given(call=calibrate_calls(adversarial=False))
def test_calibrate_valid_arguments(call):
    """Valid arguments only (more calibration sets large enough for the conformal rank): as below."""
    test_calibrate_adversarial.hypothesis.inner_test(call)


@given(call=calibrate_calls())
def test_calibrate_adversarial(call):
    """calibrate: bad arguments are refused by name; "conformal" thresholds are the r-th largest true-class scores;
    an "accuracy" rule evaluated on its own calibration set keeps accuracy >= full-window accuracy - alpha and no
    other threshold exits earlier on average while staying that accurate."""
    spikes, target, method, alpha, score, checkpoints, max_set_size, smoothing, num_classes, time_dim = call
    faults = Faults()
    method_ok = check_choice_option(faults, "method", method, ("conformal", "accuracy"))
    parsed_alpha = check_real_option(faults, "alpha", alpha, 0.0, 1.0)
    if parsed_alpha is not None and (parsed_alpha == 1 or (method_ok == "conformal" and parsed_alpha == 0)):
        faults.add("alpha", "outside the method's range")
    check_choice_option(faults, "score", score, ("probability", "margin"))
    parsed_smoothing = check_smoothing_option(faults, smoothing)
    td = check_time_dim_option(faults, time_dim)
    ok, classes_arg = check_num_classes_option(faults, num_classes)
    problem = check_spike_tensor(faults, spikes, td, ok, classes_arg)
    check_target_tensor(faults, target, spikes, problem, allow_soft=False)
    classes = problem.classes if problem else None
    if isinstance(max_set_size, bool) or not isinstance(max_set_size, int) or max_set_size < 1 or (
            classes and max_set_size > classes):
        faults.add("max_set_size", "not an int in [1, C]")
    steps = None
    if checkpoints is not None:
        if isinstance(checkpoints, (str, bytes)) or not isinstance(checkpoints, list) or not checkpoints or any(
                isinstance(s, bool) or not isinstance(s, int) for s in checkpoints):
            faults.add("checkpoints", "not a non-empty sequence of ints")
        elif problem is not None and (min(checkpoints) < 0 or max(checkpoints) > problem.num_steps - 1 or any(
                b <= a for a, b in zip(checkpoints, checkpoints[1:], strict=False))):
            faults.add("checkpoints", "outside [0, T - 1] or not increasing")
        else:
            steps = list(checkpoints)
    labels = None
    if not faults.structural:
        if not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any():
            faults.add_value("spikes", "a NaN, infinite or negative spike")
        labels = check_target_values(faults, target, "hard", classes)
        if steps is None:
            steps = early_exit.default_checkpoints(problem.num_steps, method)
        if steps[-1] != problem.num_steps - 1:
            steps = [*steps, problem.num_steps - 1]
        if method == "conformal" and not faults.value:
            rank = math.ceil((1 - exact_fraction(parsed_alpha) / len(steps)) * (problem.batch_size + 1))
            if rank > problem.batch_size:
                faults.add("alpha", f"n = {problem.batch_size} too small (r = {rank})")
    with smx.value_checks(True):
        outcome, rule = classify("core/early_exit.calibrate", lambda: early_exit.calibrate(
            spikes, target, method=method, alpha=alpha, score=score, checkpoints=checkpoints,
            max_set_size=max_set_size, smoothing=smoothing, num_classes=num_classes, time_dim=time_dim), faults,
            values_checked=True)
    if outcome != VALID:
        return
    assert rule.checkpoints == steps and rule.num_classes == classes and rule.calibration_size == problem.batch_size
    counts = running_grouped(problem.tbn, classes)
    scores = np_scores(counts[steps], score, parsed_smoothing)  # [K, B, C]
    if method == "conformal":
        rank = math.ceil((1 - exact_fraction(parsed_alpha) / len(steps)) * (problem.batch_size + 1))
        true_scores = scores[:, np.arange(problem.batch_size), labels]
        expected = -np.sort(-true_scores, axis=1)[:, rank - 1]
        np.testing.assert_array_equal(rule.thresholds.numpy(), expected)
        return
    check_accuracy_rule(rule, problem.tbn, labels, parsed_alpha, scores, classes)


def _outcome(tbn, rule_fields, threshold, classes):
    report = np_evaluate(rule_fields["checkpoints"], [threshold] * len(rule_fields["checkpoints"]),
                         rule_fields["max_set_size"], rule_fields["score"], rule_fields["smoothing"], classes, tbn)
    return report


def check_accuracy_rule(rule, tbn, labels, alpha, scores, classes):
    fields = rule.to_dict()
    thresholds = rule.thresholds.tolist()
    assert len(set(thresholds)) == 1, f"one shared threshold expected, got {thresholds}"
    chosen = thresholds[0]
    batch_size = len(labels)
    full_correct = int((reference.predict(tbn, classes) == labels).sum())
    least = math.ceil(full_correct - exact_fraction(alpha) * batch_size)
    report = _outcome(tbn, fields, chosen, classes)
    correct = int((report.prediction == labels).sum())
    assert correct >= least, (
        f"the calibrated rule (threshold {chosen}) is right on {correct} of {batch_size} calibration samples, "
        f"fewer than full-window {full_correct} - alpha n = {least}: predictions {report.prediction.tolist()}, "
        f"exits {report.exit_step.tolist()}, labels {labels.tolist()}")
    candidates = np.unique(np.concatenate([scores.ravel(), np.nextafter(scores.ravel(), INF)]))
    best = report.exit_step.sum()
    for candidate in candidates:
        other = _outcome(tbn, fields, float(candidate), classes)
        if int((other.prediction == labels).sum()) >= least:
            assert other.exit_step.sum() >= best, (
                f"threshold {candidate} exits earlier ({other.exit_step.sum()} < {best} summed steps) and is accurate "
                f"enough, but calibrate chose {chosen}")


# The calibration set of the report's bug (scores tie at T - 1 where the counts do not; see the report):
CALIBRATION_TIE = (torch.tensor([[[0.0, 0.0, 0.0], [0.4, 0.2, 0.0]],
                                 [[1.0 + 2.0**-52, 1.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64),
                   torch.tensor([0, 0]))


@example(spikes=CALIBRATION_TIE[0], target=CALIBRATION_TIE[1], max_set_size=2)
@given(spikes=st.integers(0, 2**32 - 1).map(lambda seed: torch.tensor(
    np.random.default_rng(seed).choice([0.0, 0.2, 0.4, 1.0, 1.0 + 2.0**-52], size=(2, 3, 3)))),
    target=st.integers(0, 2**32 - 1).map(lambda seed: torch.tensor(np.random.default_rng(seed).integers(0, 3, 3))),
    max_set_size=st.integers(1, 3))
def test_accuracy_calibration_is_feasible_on_its_own_calibration_set(spikes, target, max_set_size):
    """alpha = 0: the calibrated rule, applied to the very samples it was calibrated on, must be exactly as accurate
    as the full window (the guarantee calibrate states), including for graded counts whose probability scores tie
    although the counts do not."""
    rule = early_exit.calibrate(spikes, target, method="accuracy", alpha=0.0, max_set_size=max_set_size)
    report = early_exit.evaluate(rule, spikes, target)
    full = (smx.predict(spikes) == target).double().mean().item()  # float64, as the report's accuracy
    assert report.accuracy >= full - 1e-12, (
        f"calibrated threshold {rule.thresholds.tolist()}: early-exit accuracy {report.accuracy} < full-window "
        f"accuracy {full} on the calibration set itself (predictions {report.prediction.tolist()}, full-window "
        f"{smx.predict(spikes).tolist()})")
    record_valid("core/early_exit.calibrate feasibility")


# ----------------------------------------------------------------------------------------- ExitState


@given(data=st.data())
def test_exit_state_protocol(data):
    """ExitState: updates with bad step spikes are refused by name and change nothing; after T updates a further
    update raises; a report before everyone exited raises; fed step by step it equals the rule semantics."""
    num_steps, batch_size, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), 3
    base = data.draw(spike_values((num_steps, batch_size, classes), exact=True, negatives=False, specials=False))
    rule = data.draw(exit_rules(num_steps, classes, base))
    batch_arg = data.draw(mixed([batch_size], [0, True, 1.5, None, -1]))
    faults = Faults()
    check_int_option(faults, "batch_size", batch_arg, 1)
    outcome, state = classify("core/early_exit.ExitState", lambda: rule.start(batch_arg), faults, values_checked=True)
    if outcome != VALID:
        return
    for step in range(num_steps):
        if data.draw(st.integers(0, 2)) == 0:
            bad = data.draw(st.sampled_from([
                torch.full((batch_size, classes), NAN), torch.full((batch_size, classes), -1.0),
                torch.ones(batch_size + 1, classes), torch.ones(batch_size, classes + 1),
                torch.ones(batch_size, classes, dtype=torch.int64), torch.ones(1, batch_size, classes),
                torch.ones(batch_size, classes, device="meta"), torch.ones(batch_size, classes).tolist()]))
            before = (state.step, state.counts.clone(), state.exit_step.clone(), state.done.clone())
            expect_clear_error("core/early_exit.ExitState bad update", lambda b=bad: state.update(b), "step_spikes")
            assert before[0] == state.step and torch.equal(before[1], state.counts)
            assert torch.equal(before[2], state.exit_step) and torch.equal(before[3], state.done)
        if step < num_steps - 1 and not bool(state.done.all()):
            with pytest.raises(RuntimeError, match="not every sample has exited"):
                state.report()
        state.update(torch.tensor(base[step]))
    with pytest.raises(RuntimeError, match="already received all T"):
        state.update(torch.tensor(base[0]))
    report = state.report()
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           classes, base)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    record_valid("core/early_exit.ExitState")


# ------------------------------------------------------------------------------- meta across early exit


@pytest.mark.parametrize("entry", ["evaluate", "calibrate accuracy", "calibrate conformal", "run"])
def test_meta_tensors_in_early_exit_are_refused_naming_the_argument(entry):
    """(11) meta tensors: the losses and metrics accept them, early exit does not (it decides from spike values).
    Every entry point raises the ValueError of ``early_exit.rule._require_values``, naming the tensor that is meta:
    ``spikes`` for evaluate / calibrate, ``step_fn's output at step 0`` for run (its inputs are only passed on)."""
    spikes = torch.rand(4, 6, 3).to("meta")
    target = torch.tensor([0, 1, 2, 0, 1, 2]).to("meta")
    rule = early_exit.ExitRule(checkpoints=[1, 3], thresholds=[0.5, 0.5], max_set_size=1, score="probability",
                               smoothing=1.0, num_classes=3, num_steps=4)
    calls = {
        "evaluate": lambda: early_exit.evaluate(rule, spikes, target),
        "calibrate accuracy": lambda: early_exit.calibrate(spikes, target, method="accuracy", alpha=0.1),
        "calibrate conformal": lambda: early_exit.calibrate(spikes, target, method="conformal", alpha=0.9,
                                                            checkpoints=[3]),
        "run": lambda: early_exit.run(lambda x: x, spikes, rule),
    }
    named = "step_fn's output at step 0" if entry == "run" else "spikes"
    message = (f"{named} is a meta tensor: early exit decides from spike values, which a meta tensor does not have "
               "(the losses and metrics accept meta tensors; early exit does not)")
    with pytest.raises(ValueError) as raised:
        calls[entry]()
    assert type(raised.value) is ValueError and str(raised.value) == message
    record_valid(f"core/meta/{entry} (clear error)")
