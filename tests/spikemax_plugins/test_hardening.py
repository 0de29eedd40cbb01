"""One regression test per finding of the adversarial review (issue 11), each failing on the code before the fix.

The numbers in the names refer to the findings: 1-5 silent wrong results, 6-9 NaN, 10-15 unclear errors (the
adapter findings 5 and 14 are tested in tests/spikemax_snntorch and tests/spikemax_norse).
"""

import math

import numpy as np
import pytest
import torch

import spikemax_plugins as smx
from spikemax_plugins import _counts, reference


def _central_difference(function, value: np.ndarray, direction: np.ndarray, step: float = 1e-6) -> float:
    return (function(value + step * direction) - function(value - step * direction)) / (2 * step)


# ------------------------------------------------------------------------------------ 1-5: silent wrong results


def test_1_smoothing_zero_soft_target_gradient_from_the_issue():
    """All counts equal: -log p_i = log 4 for every class, so d(mean_b sum_i p_bi log 4) / dp_bi = log(4) / 3."""
    target = torch.full((3, 4), 0.25, requires_grad=True)
    smx.spikemax_g(torch.ones(6, 3, 4), target, smoothing=0.0).backward()
    torch.testing.assert_close(target.grad, torch.full((3, 4), math.log(4) / 3))


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("soft", [False, True], ids=["class-indices", "soft-target"])
def test_1_gradients_with_respect_to_target_and_weight_match_finite_differences(smoothing, reduction, soft):
    generator = np.random.default_rng(7)
    spikes = generator.random((5, 3, 4)) + 0.1  # every class fires: the loss is smooth in target and weight
    weight = generator.random(4) + 0.5
    target = generator.dirichlet(np.ones(4), size=3) if soft else np.array([0, 3, 1])
    weight_tensor = torch.tensor(weight, requires_grad=True)
    target_tensor = torch.tensor(target, requires_grad=soft)
    loss = smx.spikemax_g(
        torch.tensor(spikes), target_tensor, smoothing=smoothing, weight=weight_tensor, reduction=reduction,
        label_smoothing=0.1,
    )
    loss.backward()

    def reference_loss(weight_values, target_values):
        return reference.spikemax_g(
            spikes, target_values, smoothing=smoothing, weight=weight_values, reduction=reduction, label_smoothing=0.1
        )

    direction = generator.standard_normal(4)
    expected = _central_difference(lambda w: reference_loss(w, target), weight, direction)
    assert float(weight_tensor.grad @ torch.tensor(direction)) == pytest.approx(expected, rel=1e-6)
    if soft:
        direction = generator.standard_normal((3, 4))
        expected = _central_difference(lambda t: reference_loss(weight, t), target, direction)
        assert float((target_tensor.grad * torch.tensor(direction)).sum()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 1.0], ids=["exact", "smoothed"])
def test_1_gradcheck_in_every_input(smoothing):
    generator = torch.Generator().manual_seed(3)
    spikes = (torch.rand(6, 3, 4, generator=generator, dtype=torch.float64) + 0.2).requires_grad_()
    target = torch.softmax(torch.randn(3, 4, generator=generator, dtype=torch.float64), -1).requires_grad_()
    weight = (torch.rand(4, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s, t, w: smx.spikemax_g(s, t, smoothing=smoothing, temperature=0.7, weight=w), (spikes, target, weight)
    )
    assert torch.autograd.gradcheck(
        lambda s, t, w: smx.spikemax_s(s, t, window=3, smoothing=smoothing, weight=w), (spikes, target, weight)
    )


def test_2_second_derivative_at_smoothing_zero_raises_instead_of_being_zero():
    spikes = (torch.rand(5, 3, 4, dtype=torch.float64) + 0.1).requires_grad_()
    target = torch.tensor([0, 1, 2])
    loss = smx.spikemax_g(spikes, target, smoothing=0.0) + (spikes**3).sum()  # another term keeps the graph alive
    (gradient,) = torch.autograd.grad(loss, spikes, create_graph=True)
    with pytest.raises(RuntimeError, match=r"differentiable once.*Use smoothing > 0"):
        torch.autograd.grad(gradient.sum(), spikes)


def test_2_second_derivative_with_smoothing_matches_finite_differences_of_the_gradient():
    generator = torch.Generator().manual_seed(5)
    spikes = (torch.rand(5, 2, 3, generator=generator, dtype=torch.float64) + 0.1).requires_grad_()
    target = torch.tensor([0, 2])
    direction = torch.randn(5, 2, 3, generator=generator, dtype=torch.float64)

    def gradient(values):
        loss = smx.spikemax_s(values, target, window=2, smoothing=1e-9)
        return torch.autograd.grad(loss, values, create_graph=True)[0]

    (hessian_vector,) = torch.autograd.grad((gradient(spikes) * direction).sum(), spikes)
    step = 1e-6
    with torch.enable_grad():
        plus = gradient((spikes + step * direction).detach().requires_grad_())
        minus = gradient((spikes - step * direction).detach().requires_grad_())
    torch.testing.assert_close(hessian_vector, (plus - minus) / (2 * step), rtol=1e-4, atol=1e-6)
    assert hessian_vector.abs().sum() > 0


def _naive_window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sums of every causal window of length ``window`` (values [T, B, C] float64).

    Differences of a float64 running total: off by ~1e-16 of the total (here < 1e-11 absolute), far below the
    float32 rounding under test, and exactly 0 for a window of zeros (adding 0 leaves the total unchanged).
    """
    total = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
    return total[window:] - total[:-window]


@pytest.mark.parametrize("window", [3, 5_000, 60_000])
def test_3_window_counts_are_exact_to_float32_rounding_over_a_long_graded_recording(window):
    generator = np.random.default_rng(0)
    spikes = (generator.random((100_000, 1, 2)) < 0.3) * generator.uniform(0.05, 2.0, (100_000, 1, 2))
    spikes32 = torch.tensor(spikes, dtype=torch.float32)
    actual = _counts.window_counts(spikes32, 2, window, 1).double().numpy()
    expected = _naive_window_sums(spikes32.double().numpy(), window)
    # Each window count is its float64 sum rounded once to float32: at most half an ulp, 2**-24 relative (a
    # silent window exactly 0). The subtraction of running totals this replaced was off by 5e-4 at T = 1e5.
    assert (np.abs(actual - expected) <= 2.0**-24 * (1 + 1e-9) * np.abs(expected)).all()


def test_3_a_large_early_spike_does_not_spoil_later_windows():
    spikes = torch.zeros(50, 1, 2)
    spikes[0, 0, 0] = 1e8
    spikes[10:, 0, 1] = 0.1  # small graded spikes later on
    actual = _counts.window_counts(spikes, 2, 4, 1)
    expected = _naive_window_sums(spikes.double().numpy(), 4)
    np.testing.assert_allclose(actual[10:].double().numpy(), expected[10:], rtol=2.0**-24)
    # The loss sees those counts: window 20..23 holds 0.4 spikes of class 1 and none of class 0.
    loss = smx.spikemax_s(spikes, torch.tensor([1]), window=4, reduction="none", smoothing=0.5)
    assert torch.isfinite(loss).all()


def test_4_counts_above_two_to_the_24_are_not_a_tie():
    spikes = torch.zeros(2, 1, 2)
    spikes[0, 0] = 2.0**24
    spikes[1, 0, 0] = 1.0  # class 0: 2**24 + 1 spikes, class 1: 2**24 (equal once rounded to float32)
    assert smx.predict(spikes).tolist() == [0]
    assert smx.accuracy(spikes, torch.tensor([0])).item() == 1.0
    assert smx.time_to_decision(spikes).tolist() == [1]


# ----------------------------------------------------------------------------------------------- 6-9: NaN


def test_6_sliding_window_with_a_silent_true_class_has_inf_not_nan_gradients():
    spikes = torch.zeros(6, 1, 3)
    spikes[0, 0, 0] = 1  # the true class fires once, at t = 0: every window after [0, 1] misses it
    spikes[:, 0, 1] = 1
    spikes.requires_grad_()
    loss = smx.spikemax_s(spikes, torch.tensor([0]), window=2, smoothing=0.0)
    loss.backward()
    assert loss.item() == math.inf
    gradient = spikes.grad[:, 0]
    assert not torch.isnan(gradient).any()
    # t >= 1 lies in a window where the true class is silent; t = 0 only in the window where it fired.
    assert (gradient[1:, 0] == -math.inf).all()
    assert torch.isfinite(gradient[0]).all() and torch.isfinite(gradient[:, 1:]).all()


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda s, y: smx.spikemax_g(s, y, temperature=1e-40), ["temperature", ">= 0.0001", "finite in float32"]),
        (lambda s, y: smx.spikemax_g(s, y, smoothing=1e39), ["smoothing", "<= 1e+30", "or exactly 0"]),
        (lambda s, y: smx.spikemax_s(s, y, window=2, smoothing=1e-45), ["smoothing", ">= 1e-30"]),
        (lambda s, y: smx.mse_count(s, y, true_rate=1e300, false_rate=0.0), ["true_rate", "<= 1e+06"]),
    ],
)
def test_7_options_that_would_overflow_are_refused_with_the_bound(call, words):
    with pytest.raises(ValueError) as error:
        call(torch.ones(4, 2, 3), torch.tensor([0, 1]))
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("temperature", [1e-4, 1.0, 1e4])
@pytest.mark.parametrize("smoothing", [0.0, 1e-30, 1.0, 1e30])
@pytest.mark.parametrize("mode", ["probability", "softmax"])
def test_7_options_at_their_bounds_give_finite_losses_and_no_nan_gradients(temperature, smoothing, mode):
    spikes = torch.zeros(5, 3, 4)
    spikes[:, 0, 0] = 1  # sample 0: the true class fires, the others are silent
    spikes[:3, 1, 2] = 1  # sample 1: a wrong class fires, the true class is silent
    spikes[:, 2] = 100.0  # sample 2: large graded counts, all equal
    spikes.requires_grad_()
    target = torch.tensor([0, 1, 3])
    for loss_function in (smx.spikemax_g, lambda s, y, **kw: smx.spikemax_s(s, y, window=2, **kw)):
        loss = loss_function(spikes, target, temperature=temperature, smoothing=smoothing, mode=mode)
        (gradient,) = torch.autograd.grad(loss, spikes)
        assert not torch.isnan(loss) and not torch.isnan(gradient).any()
        if mode == "softmax" or smoothing > 0:
            assert torch.isfinite(loss)
    for rate in (0.0, 1e6):
        assert torch.isfinite(smx.mse_count(spikes, target, true_rate=rate, false_rate=rate))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5])
@pytest.mark.parametrize("smoothing", [0.0, 1.0])
def test_8_non_finite_or_negative_weights_are_refused(bad, smoothing):
    weight = torch.tensor([1.0, bad, 1.0])
    for call in (
        lambda: smx.spikemax_g(torch.ones(4, 2, 3), torch.tensor([0, 1]), weight=weight, smoothing=smoothing),
        lambda: smx.mse_count(torch.ones(4, 2, 3), torch.tensor([0, 1]), weight=weight, true_rate=1, false_rate=0),
        lambda: smx.SpikeMaxGLoss(weight=weight),
    ):
        with pytest.raises(ValueError, match=r"weight must be finite and >= 0, got values in"):
            call()


def test_8_a_batch_whose_samples_all_weigh_zero_has_no_weighted_mean():
    weight = torch.tensor([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"weight gives every sample of the batch weight 0.*reduction='sum'"):
        smx.spikemax_g(torch.ones(4, 2, 3), torch.tensor([0, 1]), weight=weight)
    assert smx.spikemax_g(torch.ones(4, 2, 3), torch.tensor([0, 1]), weight=weight, reduction="sum").item() == 0


SPIKES = torch.ones(4, 2, 3)


@pytest.mark.parametrize(
    "layers, fan_out, exception, words",
    [
        ([SPIKES * math.nan], [2], ValueError, ["layer_spikes[0]", "finite and >= 0", "nan"]),
        ([SPIKES, -SPIKES], [2, 2], ValueError, ["layer_spikes[1]", "finite and >= 0", "-1"]),
        ([SPIKES], [torch.tensor([1.0, math.inf, 1.0])], ValueError, ["fan_out[0]", "finite and >= 0", "inf"]),
        ([SPIKES], [-3], ValueError, ["fan_out[0]", ">= 0", "-3"]),
        ([], [], ValueError, ["layer_spikes", "at least one layer"]),
        ([SPIKES], 3, TypeError, ["fan_out", "sequence", "int"]),
        ([SPIKES], [torch.ones(4)], ValueError, ["fan_out[0]", "broadcast", "(3,)", "(4,)"]),
        ([SPIKES.long()], [1], TypeError, ["layer_spikes[0]", "floating-point", "torch.int64"]),
        ([SPIKES], [torch.ones(3, dtype=torch.long)], TypeError, ["fan_out[0]", "floating-point", "torch.int64"]),
        ([SPIKES[0]], [1], ValueError, ["layer_spikes[0]", "time, a batch", "(2, 3)"]),
        ([SPIKES], ["3"], TypeError, ["fan_out[0]", "number", "str"]),
    ],
)
def test_9_synaptic_operations_validates_like_the_losses(layers, fan_out, exception, words):
    with pytest.raises(exception) as error:
        smx.synaptic_operations(layers, fan_out)
    for word in words:
        assert word in str(error.value), f"{word!r} not in {error.value}"


def test_9_synaptic_operations_until_counts_the_first_steps_only():
    spikes = torch.ones(5, 3, 2)
    until = torch.tensor([0, 2, 4])
    assert smx.synaptic_operations([spikes], [10.0], until=until).tolist() == [20.0, 60.0, 100.0]
    with pytest.raises(ValueError, match=r"until must hold steps in \[0, 4\], got values in \[0, 5\]"):
        smx.synaptic_operations([spikes], [10.0], until=torch.tensor([0, 1, 5]))


# ----------------------------------------------------------------------------------------- 10-15: clear errors


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.uint32, torch.int8, torch.int16, torch.int32])
def test_10_narrow_and_unsigned_class_indices_are_accepted(dtype):
    spikes = torch.rand(5, 3, 4)
    target = torch.tensor([0, 3, 2])
    expected = smx.spikemax_g(spikes, target)
    assert torch.equal(smx.spikemax_g(spikes, target.to(dtype)), expected)
    assert torch.equal(smx.mse_count(spikes, target.to(dtype), true_rate=1, false_rate=0),
                       smx.mse_count(spikes, target, true_rate=1, false_rate=0))
    assert smx.accuracy(spikes, target.to(dtype)).item() == smx.accuracy(spikes, target).item()


def test_10_uint64_class_indices_are_refused_by_name():
    with pytest.raises(TypeError, match=r"target must hold class indices .* got torch.uint64 .* target.long\(\)"):
        smx.spikemax_g(torch.rand(5, 3, 4), torch.tensor([0, 3, 2], dtype=torch.uint64))


def test_11_meta_tensors_give_meta_results_of_the_right_shape():
    spikes = torch.empty(7, 3, 4, device="meta", requires_grad=True)
    target = torch.empty(3, dtype=torch.long, device="meta")
    for reduction, shape in (("mean", ()), ("none", (3,))):
        for loss in (
            smx.spikemax_g(spikes, target, reduction=reduction),
            smx.spikemax_g(spikes, target, reduction=reduction, smoothing=0.0),
            smx.spikemax_s(spikes, target, window=3, reduction=reduction),
            smx.mse_count(spikes, target, true_rate=1, false_rate=0, reduction=reduction),
        ):
            assert loss.is_meta and loss.shape == shape
    assert smx.predict(spikes).is_meta and smx.predict(spikes).shape == (3,)
    assert smx.accuracy_over_time(spikes, target).shape == (7,)
    assert smx.time_to_decision(spikes).shape == (3,)


@pytest.mark.parametrize("smoothing", [0.0, 1.0])
def test_12_vmap_and_grad_equal_the_loop(smoothing):
    generator = torch.Generator().manual_seed(9)
    problems = torch.rand(4, 6, 3, 5, generator=generator, dtype=torch.float64) + 0.05  # 4 problems [T, B, C]
    target = torch.tensor([0, 4, 2])

    def loss(spikes):
        return smx.spikemax_g(spikes, target, smoothing=smoothing)

    looped = torch.stack([loss(problem) for problem in problems])
    torch.testing.assert_close(torch.func.vmap(loss)(problems), looped)
    gradients = torch.func.vmap(torch.func.grad(loss))(problems)
    for problem, gradient in zip(problems, gradients, strict=True):
        values = problem.clone().requires_grad_()
        (expected,) = torch.autograd.grad(loss(values), values)
        torch.testing.assert_close(gradient, expected)


def test_12_grad_of_grad_at_smoothing_zero_raises_clearly():
    spikes = torch.rand(6, 3, 5, dtype=torch.float64) + 0.05
    target = torch.tensor([0, 4, 2])
    gradient_norm = torch.func.grad(
        lambda s: torch.func.grad(lambda x: smx.spikemax_g(x, target, smoothing=0.0))(s).square().sum()
    )
    with pytest.raises(RuntimeError, match=r"differentiable once"):
        gradient_norm(spikes)


def test_13_bfloat16_soft_target_rounded_to_eight_bits_is_accepted():
    probabilities = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 2).to(torch.bfloat16)
    row_sum = float(probabilities.double().sum(-1)[0])
    assert row_sum != 1.0  # a legitimate distribution that does not sum to one once rounded
    spikes = torch.rand(5, 2, 4)
    loss = smx.spikemax_g(spikes, probabilities)
    expected = torch.nn.functional.cross_entropy(torch.log1p(spikes.sum(0)), probabilities.float())
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match=r"soft target rows must sum to 1 \(within 0.0156 for torch.bfloat16\)"):
        smx.spikemax_g(spikes, (probabilities.float() * 1.05).to(torch.bfloat16))


def test_15_int64_indices_near_two_to_the_63_are_printed_exactly():
    target = torch.tensor([0, 2**63 - 1, 1])
    with pytest.raises(ValueError, match=r"got values in \[0, 9223372036854775807\]$"):
        smx.spikemax_g(torch.rand(5, 3, 4), target)
