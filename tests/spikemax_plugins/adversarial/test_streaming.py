"""Adversarial streaming metric classes: updates in any split stream like the functions and bad updates are
refused without changing the state; constructors validate their options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemax_plugins import early_exit, reference, streaming

from .oracles import (
    check_int_option,
    check_num_classes_option,
    check_time_dim_option,
    exit_rules,
    np_evaluate,
)
from .support import (
    FLOAT_DTYPES,
    NAN,
    Faults,
    classify,
    expect_clear_error,
    mixed,
    record_valid,
    seeds,
    spike_values,
)

# ============================================================================= streaming metric classes

METRIC_CLASSES = ("SpikeAccuracy", "AccuracyOverTime", "TimeToDecision", "SynapticOperations", "EarlyExitMetric")



def _state(metric) -> dict:
    return {name: getattr(metric, name).clone() for name in metric._defaults}


@st.composite
def stream_cases(draw):
    name = draw(st.sampled_from(METRIC_CLASSES))
    num_steps, classes, group = draw(st.integers(1, 5)), draw(st.integers(2, 4)), draw(st.sampled_from([1, 2]))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    values = draw(spike_values((num_steps, sum(sizes), classes * group), exact=True, negatives=False,
                               specials=False))
    rng = np.random.default_rng(draw(seeds()))
    labels = rng.integers(0, classes, size=sum(sizes))
    rule = draw(exit_rules(num_steps, classes, values)) if name == "EarlyExitMetric" else None
    dtype = draw(st.sampled_from(FLOAT_DTYPES if values.max(initial=0) < 6e4 else FLOAT_DTYPES[:2]))
    bad_update = draw(st.integers(0, len(sizes)))  # where an adversarial update is slipped in (len: none)
    # Meta updates have their own test (test_metric_classes_do_not_silently_count_meta_batches).
    bad_kind = draw(st.sampled_from(["nan", "negative", "wrong T", "float target", "target range", "list", "wrong N",
                                     "bool spikes"]))
    return name, num_steps, classes, group, sizes, time_dim, values, labels, rule, dtype, bad_update, bad_kind


def _make_metric(name, num_steps, classes, group, time_dim, rule):
    classes_arg = classes if group > 1 else None
    if name == "SpikeAccuracy":
        return streaming.SpikeAccuracy(classes_arg, time_dim=time_dim)
    if name == "AccuracyOverTime":
        return streaming.AccuracyOverTime(num_steps, classes_arg, time_dim=time_dim)
    if name == "TimeToDecision":
        return streaming.TimeToDecision(classes_arg, time_dim=time_dim)
    if name == "SynapticOperations":
        return streaming.SynapticOperations(time_dim=time_dim)
    return streaming.EarlyExitMetric(rule, time_dim=time_dim)


def _fan_out(num_outputs: int, dtype) -> torch.Tensor:
    return (torch.arange(num_outputs, dtype=torch.float64) % 3).to(dtype if dtype.is_floating_point else torch.float64)


def _update(metric, name, spikes, target, num_outputs=None):
    if name == "SynapticOperations":
        dtype = spikes.dtype if isinstance(spikes, torch.Tensor) else torch.float64
        fan = _fan_out(num_outputs, dtype)
        if isinstance(spikes, torch.Tensor):
            fan = fan.to(spikes.device)
        return metric.update([spikes], [fan])
    if name == "TimeToDecision":
        return metric.update(spikes)
    return metric.update(spikes, target)


@given(case=stream_cases())
def test_metric_classes_stream_and_refuse_bad_updates(case):
    """Updating over any split equals the reference on the whole data set; an adversarial update in between raises
    a clear error (naming spikes, target or time_dim) and leaves every state exactly as it was."""
    name, num_steps, classes, group, sizes, time_dim, values, labels, rule, dtype, bad_update, bad_kind = case
    metric = _make_metric(name, num_steps, classes, group, time_dim, rule)
    layout = torch.tensor(np.moveaxis(values, 0, time_dim), dtype=dtype)
    actual_tbn = np.moveaxis(layout.double().numpy(), time_dim, 0).copy()
    start = 0
    for index, size in enumerate([*sizes, 0]):
        if index == bad_update:
            spikes = layout.narrow(1 if time_dim == 0 else 0, 0, 1).contiguous().clone()
            num_outputs = spikes.shape[2 if time_dim != 2 else 1]
            target = torch.tensor(labels[:1])
            names = ["spikes", "layer_spikes", "target", "fan_out"]
            if bad_kind == "nan":
                spikes.view(-1)[0] = NAN
            elif bad_kind == "negative":
                spikes.view(-1)[0] = -1e4  # outweighs every other spike: a negative count in any window
            elif bad_kind == "wrong T":
                spikes = torch.cat([spikes, spikes], dim=time_dim)
                if name in ("SpikeAccuracy", "TimeToDecision", "SynapticOperations"):
                    spikes = torch.tensor([[[NAN]]], dtype=dtype).expand(*spikes.shape)  # T is free there
                names.append("num_steps")
            elif bad_kind == "float target":
                target = target.float()
                if name in ("TimeToDecision", "SynapticOperations"):
                    spikes = spikes.long()
            elif bad_kind == "target range":
                target = torch.tensor([classes])
                if name in ("TimeToDecision", "SynapticOperations"):
                    spikes = spikes.long()
            elif bad_kind == "list":
                spikes = spikes.tolist()
            elif bad_kind == "wrong N":
                spikes = spikes.narrow(2 if time_dim != 2 else 1, 0, 1)
                names += ["num_classes", "rule"]
                if name == "SynapticOperations":
                    spikes = spikes.long()
            else:
                spikes = spikes > 0
            before = _state(metric)
            error = expect_clear_error(f"core/metric classes/{name} bad update ({bad_kind})",
                                       lambda s=spikes, t=target, n=num_outputs: _update(metric, name, s, t, n), *names)
            after = _state(metric)
            for state, value in before.items():
                assert torch.equal(after[state], value), f"{name}.{state} changed by a refused update: {error}"
        if size == 0:
            continue
        chunk = layout.narrow(1 if time_dim == 0 else 0, start, size)
        _update(metric, name, chunk, torch.tensor(labels[start: start + size]), classes * group)
        start += size
    result = metric.compute()
    classes_arg = classes
    if name == "SpikeAccuracy":
        assert result.item() == pytest.approx(reference.accuracy(actual_tbn, labels, classes_arg), abs=1e-6)
    elif name == "AccuracyOverTime":
        np.testing.assert_allclose(result.numpy(), reference.accuracy_over_time(actual_tbn, labels, classes_arg),
                                   atol=1e-6)
    elif name == "TimeToDecision":
        steps = reference.time_to_decision(actual_tbn, classes_arg)
        decided = steps >= 0
        expected = {"no_decision_fraction": 1 - decided.mean()}
        expected["mean_step"] = steps[decided].mean() if decided.any() else NAN
        expected["mean_fraction"] = ((steps[decided] + 1) / num_steps).mean() if decided.any() else NAN
        for key, value in expected.items():
            np.testing.assert_allclose(result[key].item(), value, rtol=1e-12, equal_nan=True, err_msg=key)
    elif name == "SynapticOperations":
        fan = _fan_out(classes * group, dtype).double().numpy()
        expected = reference.synaptic_operations([actual_tbn], [fan]).mean()
        assert result.item() == pytest.approx(expected, rel=1e-12)
    else:
        report = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                             classes, actual_tbn)
        expected = {"accuracy": (report.prediction == labels).mean(),
                    "coverage": report.prediction_set[np.arange(len(labels)), labels].mean(),
                    "mean_exit_step": report.exit_step.mean(),
                    "exit_fraction": ((report.exit_step + 1) / num_steps).mean(),
                    "mean_set_size": report.prediction_set.sum(-1).mean()}
        for key, value in expected.items():
            assert result[key].item() == pytest.approx(value, rel=1e-12, abs=1e-15), key
    record_valid(f"core/metric classes/{name}")


@given(name=st.sampled_from(METRIC_CLASSES), num_classes=mixed([None, 3], [1, True, 2.5, "3", [3]]),
       time_dim=mixed([0, -1, 2], [3, -4, True, 1.0, None]), num_steps=mixed([1, 4], [0, -1, True, 2.0, None]),
       rule=mixed(["rule"], [None, "rule-dict", 3]))
def test_metric_class_constructors(name, num_classes, time_dim, num_steps, rule):
    faults = Faults()
    valid_rule = early_exit.ExitRule(checkpoints=[3], thresholds=[0.5], max_set_size=1, score="probability",
                                     smoothing=1.0, num_classes=3, num_steps=4)
    rule_value = {"rule": valid_rule, "rule-dict": valid_rule.to_dict()}.get(rule, rule)
    if name == "SynapticOperations":
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            faults.add("time_dim", "not an int")

        def build():
            return streaming.SynapticOperations(time_dim=time_dim)
    else:
        check_time_dim_option(faults, time_dim)
        if name == "EarlyExitMetric":
            if not isinstance(rule_value, early_exit.ExitRule):
                faults.add("rule", "not an ExitRule")

            def build():
                return streaming.EarlyExitMetric(rule_value, time_dim=time_dim)
        else:
            check_num_classes_option(faults, num_classes)
            if name == "AccuracyOverTime":
                check_int_option(faults, "num_steps", num_steps, 1)

                def build():
                    return streaming.AccuracyOverTime(num_steps, num_classes, time_dim=time_dim)
            else:
                def build():
                    return getattr(streaming, name)(num_classes, time_dim=time_dim)
    classify(f"core/metric classes/{name} init", build, faults, values_checked=True)


@pytest.mark.parametrize("name", ["SpikeAccuracy", "AccuracyOverTime", "TimeToDecision", "EarlyExitMetric"])
def test_metric_classes_do_not_silently_count_meta_batches(name):
    """A metric whose states live on the CPU, updated with meta tensors (no values): the ValueError of
    ``streaming._check_device`` naming ``spikes`` and both devices (torch would add a meta batch to CPU states as
    nothing), and the states keep what they held, never counting the batch as samples with no correct prediction."""
    rule = early_exit.ExitRule(checkpoints=[1, 3], thresholds=[0.5, 0.5], max_set_size=1, score="probability",
                               smoothing=1.0, num_classes=3, num_steps=4)
    metric = _make_metric(name, 4, 3, 1, 0, rule)
    spikes = torch.zeros(4, 2, 3)
    spikes[:, :, 0] = 1.0
    target = torch.tensor([0, 0])
    _update(metric, name, spikes, target, 3)
    before = metric.compute()
    with pytest.raises(ValueError) as raised:
        _update(metric, name, spikes.to("meta"), target.to("meta"), 3)
    assert type(raised.value) is ValueError and str(raised.value) == (
        f"spikes is on meta but {name}'s states are on cpu; move the metric with .to('meta') or the spikes to cpu")
    after = metric.compute()
    olds = list(before.values()) if isinstance(before, dict) else [before]
    values = list(after.values()) if isinstance(after, dict) else [after]
    assert not any(v.is_meta for v in values), f"{name}'s CPU states became meta: {after}"
    assert all(torch.equal(old, new) or (old.isnan().all() and new.isnan().all()) for old, new in zip(
        olds, values, strict=True)), f"{name} counted a refused meta batch: {before} -> {after}"
    record_valid(f"core/meta/{name} (clear error)")
