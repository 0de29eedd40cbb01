"""Adversarial losses: every loss, as function and module, on mixed valid and adversarial calls; weights, huge
weights, float32 windows, targets in every index dtype, and the option cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import _counts, reference

from .loss_oracle import (
    FUNCTIONS,
    LOSS_KINDS,
    MODULES,
    loss_calls,
    run_loss_call,
)
from .oracles import (
    F32_EPS,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_time_dim_option,
    grouped_window_counts,
)
from .support import (
    INDEX_DTYPES,
    INF,
    NAN,
    VALID,
    Faults,
    classify,
    expect_clear_error,
    record_valid,
    seeds,
)


@pytest.mark.parametrize("api", ["function", "module"])
@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_adversarial(kind, api, data):
    """Every loss, as a function and as a module, on mixed valid and adversarial arguments."""
    run_loss_call(data.draw(loss_calls(kind)), api)


@pytest.mark.parametrize("api", ["function", "module"])
@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(bad=st.sampled_from([NAN, INF, -INF, -0.5, -1e-3]), position=st.integers(0, 2),
       dtype=st.sampled_from([torch.float64, torch.float32, torch.float16]),
       reduction=st.sampled_from(["mean", "sum", "none"]), soft=st.booleans(), seed=seeds())
def test_bad_weight_values_are_refused(kind, api, bad, position, dtype, reduction, soft, seed):
    """(8) A NaN, infinite or negative class weight is refused naming weight, for every reduction (not only where
    the weighted mean's denominator happens to catch it); modules refuse it when built."""
    rng = np.random.default_rng(seed)
    spikes = torch.tensor(rng.random((4, 2, 3)) < 0.5, dtype=torch.float32)
    target = torch.tensor(rng.dirichlet(np.ones(3), size=2)) if soft else torch.tensor([0, 2])
    values = [1.0, 1.0, 1.0]
    values[position] = bad
    weight = torch.tensor(values, dtype=dtype)
    options = {"reduction": reduction}
    if kind == "mse_count":
        options.update(true_rate=1.0, false_rate=0.0)
    if kind == "spikemax_s":
        options["window"] = 2
    if api == "function":
        expect_clear_error(f"core/{kind} bad weight values", lambda: FUNCTIONS[kind](
            spikes, target, weight=weight, **options), "weight")
    else:
        expect_clear_error(f"core/{kind} module bad weight values", lambda: MODULES[kind](weight=weight, **options),
                           "weight")


@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_valid_arguments_match_reference(kind, data):
    """Only valid argument types (values may still be NaN, negative, ...): the reference and the gradients are
    exercised on every example instead of one in a few."""
    run_loss_call(data.draw(loss_calls(kind, adversarial=False)), "function")


@pytest.mark.parametrize("kind", ["spikemax_g", "spikemax_s"])
@given(data=st.data())
def test_smoothing_0_gradients_at_silent_classes(kind, data):
    """(1), (6) smoothing = 0, sparse spikes: silent classes in some windows. The loss is +inf exactly where a
    silent class carries target mass, and the gradients of spikes, weight and soft target follow the documented
    conventions (-inf on a silent target, finite elsewhere at T <= 1, never NaN) term by term."""
    run_loss_call(data.draw(loss_calls(kind, adversarial=False, silent=True)), "function")


@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_weighted_mean_with_huge_finite_weights(kind, data):
    """Weights are documented as 'finite and >= 0' (no upper bound): a weighted mean of finite losses with
    weights near the dtype's maximum is still a finite number (the mean does not depend on the weights' scale)."""
    run_loss_call(data.draw(loss_calls(kind, huge_weights=True, adversarial=False)), "function")


@pytest.mark.parametrize("dtype, huge", [(torch.float32, 3e38), (torch.float32, 1e38), (torch.float64, 1e308)])
@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_weighted_mean_is_scale_free_up_to_the_largest_weight(kind, dtype, huge):
    """A deterministic witness of test_loss_weighted_mean_with_huge_finite_weights: the weighted mean over class
    indices (and mse_count's) with every weight equal is the unweighted mean, for any finite weight."""
    spikes = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], [[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]], dtype=dtype)
    target = torch.tensor([0, 1])
    options = {"window": 1} if kind == "spikemax_s" else {"true_rate": 0.5, "false_rate": 0.0} \
        if kind == "mse_count" else {}
    expected = FUNCTIONS[kind](spikes, target, **options)
    got = FUNCTIONS[kind](spikes, target, weight=torch.full((3,), huge, dtype=dtype), **options)
    assert torch.isfinite(expected)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6), (
        f"{kind}: weighted mean with every weight {huge:g} ({dtype}) is {got.item()}, unweighted {expected.item()}")


# ======================================================================================== precision (3), (4)


@given(
    seed=seeds(),
    num_steps=st.integers(64, 1200),
    big=st.sampled_from([1e6, 1e7, 1e8, 3e9]),
    window=st.integers(1, 24),
    stride=st.integers(1, 5),
    small=st.sampled_from([0.1, 0.3, 1.0, 1.7]),
)
@settings(max_examples=60)
def test_spikemax_s_float32_windows_after_a_large_early_spike(seed, num_steps, big, window, stride, small):
    """Float32 spikes, a huge graded spike at t = 0, small spikes later: every sliding-window loss equals the
    reference on the same float32 values to float32 rounding of each window's own count (a running-total
    difference would be off by up to an ulp of the huge total)."""
    rng = np.random.default_rng(seed)
    values = (rng.random((num_steps, 1, 2)) < 0.5) * small
    values[0, 0, 0] = big
    spikes = torch.tensor(values, dtype=torch.float32)
    window = min(window, num_steps)
    loss = smx.spikemax_s(spikes, torch.tensor([1]), window=window, stride=stride, reduction="none")
    exact = reference.spikemax_s(spikes.double().numpy(), np.array([1]), window=window, stride=stride,
                                 reduction="none")
    # log(c + 1) moves by at most float32 eps per window when each count is its own sum rounded to float32.
    assert float(loss[0]) == pytest.approx(float(exact[0]), rel=16 * F32_EPS, abs=16 * F32_EPS)
    counts = _counts.window_counts(spikes, 2, window, stride)  # white box: the counts themselves
    expected = grouped_window_counts(spikes.double().numpy(), 2, window, stride)
    np.testing.assert_allclose(counts.double().numpy(), expected.astype(np.float32).astype(np.float64),
                               rtol=F32_EPS, atol=0)
    record_valid("core/precision/spikemax_s float32 windows")


# ============================================================================ targets: (10), (13), (15)


@given(value=st.one_of(st.integers(-(2**63), -1), st.integers(4, 2**63 - 1),
                       st.sampled_from([2**63 - 1, 2**63 - 2, -(2**63), 2**53 + 1, -(2**53) - 1])),
       position=st.integers(0, 2), function=st.sampled_from(["spikemax_g", "mse_count", "accuracy"]))
def test_out_of_range_int64_targets_print_their_exact_value(value, position, function):
    spikes = torch.ones(3, 3, 4)
    labels = [0, 1, 2]
    labels[position] = value
    target = torch.tensor(labels, dtype=torch.int64)
    calls = {"spikemax_g": lambda: smx.spikemax_g(spikes, target),
             "mse_count": lambda: smx.mse_count(spikes, target, true_rate=1.0, false_rate=0.0),
             "accuracy": lambda: smx.accuracy(spikes, target)}
    error = expect_clear_error(f"core/targets/{function} int64 range", calls[function], "target")
    assert str(min(labels)) in str(error) and str(max(labels)) in str(error), (
        f"the range error must print the exact extremes {min(labels)}, {max(labels)}: {error}")


@given(dtype=st.sampled_from(INDEX_DTYPES), seed=seeds(), classes=st.integers(2, 5))
def test_every_accepted_index_dtype_equals_int64(dtype, seed, classes):
    rng = np.random.default_rng(seed)
    spikes = torch.tensor(rng.random((4, 3, classes)) < 0.5, dtype=torch.float64)
    labels = rng.integers(0, classes, size=3)
    narrow, wide = torch.tensor(labels).to(dtype), torch.tensor(labels)
    for name, function in [("spikemax_g", lambda t: smx.spikemax_g(spikes, t, reduction="none")),
                           ("spikemax_s", lambda t: smx.spikemax_s(spikes, t, window=2, reduction="none")),
                           ("mse_count", lambda t: smx.mse_count(spikes, t, true_rate=1.0, false_rate=0.0)),
                           ("accuracy", lambda t: smx.accuracy(spikes, t)),
                           ("accuracy_over_time", lambda t: smx.accuracy_over_time(spikes, t))]:
        torch.testing.assert_close(function(narrow), function(wide), rtol=0, atol=0, msg=name)
    record_valid("core/targets/index dtypes")


@given(seed=seeds(), classes=st.integers(2, 12), batch_size=st.integers(1, 6))
def test_low_precision_soft_targets_that_are_rounded_distributions_are_accepted(seed, classes, batch_size):
    """A distribution rounded to bfloat16 or float16 (rows may sum to 0.9978 or so) is a valid soft target, and the
    loss equals the reference on the rounded values."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(classes, 0.7), size=batch_size)
    spikes = torch.tensor(rng.random((3, batch_size, classes)) < 0.5, dtype=torch.float64)
    for dtype in (torch.bfloat16, torch.float16):
        target = torch.tensor(rows, dtype=dtype)
        rounded = target.double().numpy()
        loss = smx.spikemax_g(spikes, target, reduction="none")
        expected = reference.spikemax_g(spikes.numpy(), rounded, reduction="none")
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-9, atol=1e-12)
    record_valid("core/targets/low-precision soft")


# ===================================================================================== option caching


@given(calls=st.lists(st.tuples(st.sampled_from(["temperature", "smoothing", "num_classes", "window", "stride",
                                                  "time_dim", "label_smoothing"]),
                                st.sampled_from([1, 1.0, True, 0, 0.0, False, 2, 2.0, -0.0])),
                      min_size=1, max_size=8))
def test_option_cache_distinguishes_equal_values_of_other_types(calls):
    """The option cache is keyed by type: after any sequence of calls, True / 1.0 / 1 are judged on their own."""
    spikes = torch.ones(3, 2, 4)
    target = torch.tensor([0, 1])
    for name, value in calls:
        options = {"window": 2, name: value}
        faults = Faults()
        if name in ("temperature",):
            check_real_option(faults, name, value, 1e-4, 1e4)
        elif name == "smoothing":
            check_smoothing_option(faults, value)
        elif name == "label_smoothing":
            check_real_option(faults, name, value, 0, 1)
        elif name == "num_classes":
            ok, classes = check_num_classes_option(faults, value)
            if ok and classes is not None and 4 % classes:
                faults.add("num_classes", "does not divide N")
        elif name == "time_dim":
            check_time_dim_option(faults, value)
            if not faults.structural and value % 3 != 0:
                faults.add("target", "layout mismatch")  # [T, B, N] read with another time_dim
        else:
            if check_int_option(faults, name, value, 1) is not None and name == "window" and value > 3:
                faults.add("window", "> T")
        outcome, result = classify("core/option cache", lambda o=options: smx.spikemax_s(spikes, target, **o), faults,
                                   values_checked=True)
        if outcome == VALID:
            assert torch.isfinite(result)
