"""activity_penalty and ActivityPenalty: hand-computed values, the NumPy twin (forward and gradient), gradcheck,
errors, value checks, layouts, dtypes, meta tensors, torch.compile and torch.func."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import functional, modules, reference

from .strategies import draw_exact_spikes, draw_spikes
from .test_value_checks import HostReadSpy

# T = 2 steps, B = 2 samples, N = 3 neurons. Counts: sample 0 [2, 1, 1] -> rates [1, 1/2, 1/2]; sample 1 [1, 0, 0]
# -> rates [1/2, 0, 0].
HAND = torch.tensor(
    [
        [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
        [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
    ],
    dtype=torch.float64,
)

# (target_rate, power) -> the per-sample penalties, worked out by hand from the rates above.
HAND_PER_SAMPLE = {
    (0.0, 1): [(1 + 0.5 + 0.5) / 3, 0.5 / 3],  # [2/3, 1/6]
    (0.0, 2): [(1 + 0.25 + 0.25) / 3, 0.25 / 3],  # [1/2, 1/12]
    (0.5, 1): [0.5 / 3, 0.0],  # [1/6, 0]: rates of exactly 1/2 add nothing
    (0.5, 2): [0.25 / 3, 0.0],  # [1/12, 0]
    (0.25, 2): [11 / 48, 1 / 48],  # (0.75^2 + 0.25^2 + 0.25^2) / 3, 0.25^2 / 3
    (1.0, 1): [0.0, 0.0],
}


@pytest.mark.parametrize("target_rate, power", sorted(HAND_PER_SAMPLE))
def test_hand_computed_values_for_every_reduction(target_rate, power):
    per_sample = HAND_PER_SAMPLE[(target_rate, power)]
    none = smx.activity_penalty(HAND, target_rate=target_rate, power=power, reduction="none")
    total = smx.activity_penalty(HAND, target_rate=target_rate, power=power, reduction="sum")
    mean = smx.activity_penalty(HAND, target_rate=target_rate, power=power)
    assert none.shape == (2,) and total.shape == () and mean.shape == ()
    assert none.dtype == total.dtype == mean.dtype == torch.float64
    torch.testing.assert_close(none, torch.tensor(per_sample, dtype=torch.float64), rtol=0, atol=1e-15)
    assert total.item() == pytest.approx(per_sample[0] + per_sample[1], rel=1e-15)
    assert mean.item() == pytest.approx((per_sample[0] + per_sample[1]) / 2, rel=1e-15)


def test_hand_computed_defaults():
    assert smx.activity_penalty(HAND).item() == pytest.approx(5 / 12, rel=1e-15)  # mean of [2/3, 1/6]


def test_hand_computed_gradients_with_the_kink_at_zero():
    # Power 1, target 1/2, sum: d/ds = 1 / (N T) = 1/6 on the one neuron above the target (sample 0, neuron 0);
    # rates of exactly 1/2 sit on the kink and get 0, as torch.relu.
    spikes = HAND.clone().requires_grad_()
    smx.activity_penalty(spikes, target_rate=0.5, reduction="sum").backward()
    expected = torch.zeros(2, 2, 3, dtype=torch.float64)
    expected[:, 0, 0] = 1 / 6
    torch.testing.assert_close(spikes.grad, expected, rtol=0, atol=1e-15)
    # Power 2, target 0, mean over B = 2: d/ds = 2 * rate / (N T B) = rate / 6; silent neurons (rate 0) get 0.
    spikes = HAND.clone().requires_grad_()
    smx.activity_penalty(spikes, power=2).backward()
    per_step = torch.tensor([[1 / 6, 1 / 12, 1 / 12], [1 / 12, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(spikes.grad, per_step.expand(2, 2, 3), rtol=0, atol=1e-15)


def test_a_convolutional_layer_t_b_c_h_w():
    # T = 2, B = 2, C = 2 channels, H = 1, W = 2: N = 4 neurons. Sample 0: channel 0 fires at both steps on both
    # pixels (rate 1), channel 1 is silent; sample 1: one pixel fires once (rate 1/2).
    spikes = torch.zeros(2, 2, 2, 1, 2)
    spikes[:, 0, 0] = 1.0
    spikes[0, 1, 1, 0, 1] = 1.0
    torch.testing.assert_close(smx.activity_penalty(spikes, reduction="none"), torch.tensor([0.5, 0.125]))
    torch.testing.assert_close(
        smx.activity_penalty(spikes, power=2, target_rate=0.25, reduction="none"),
        torch.tensor([2 * 0.75**2 / 4, 0.25**2 / 4]),
    )
    assert smx.activity_penalty(spikes, reduction="sum").item() == pytest.approx(0.625)
    # The neurons are flattened: the same as the [T, B, 4] layer.
    assert torch.equal(smx.activity_penalty(spikes), smx.activity_penalty(spikes.reshape(2, 2, 4)))


def test_time_dim_minus_one_on_b_n_t_equals_time_first():
    generator = torch.Generator().manual_seed(3)
    spikes = (torch.rand(7, 4, 5, generator=generator) < 0.4).float()  # binary: every count is exact
    for reduction in ("mean", "sum", "none"):
        expected = smx.activity_penalty(spikes, target_rate=0.2, reduction=reduction)
        lava = smx.activity_penalty(spikes.permute(1, 2, 0), target_rate=0.2, reduction=reduction, time_dim=-1)
        assert torch.equal(lava, expected)
    batch_first = smx.activity_penalty(spikes.permute(1, 0, 2), power=2, time_dim=1)
    assert torch.equal(batch_first, smx.activity_penalty(spikes, power=2))


# ------------------------------------------------------------------------------------------------ the NumPy twin


@st.composite
def layers(draw, *, exact: bool):
    """A layer's spikes with time at a random ``time_dim`` (batch, then 1-3 neuron dimensions, in order), and the
    options. ``exact``: graded values in multiples of 1/8, so every count is exact and the twin and torch see the
    same side of the kink."""
    num_steps = draw(st.integers(1, 8))
    batch_size = draw(st.integers(1, 4))
    neuron_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    graded = draw(st.booleans())
    rate = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9, 1.0]))
    shape = (num_steps, batch_size, *neuron_shape)
    spikes = draw_exact_spikes(rng, shape, graded, rate) if exact else draw_spikes(rng, shape, graded, rate)
    ndim = spikes.ndim
    time_dim = draw(st.integers(-ndim, ndim - 1))
    options = {
        "target_rate": draw(st.sampled_from([0.0, 0.0, 0.125, 0.25, 0.5, 0.75, 1.0, 0.3])),
        "power": draw(st.sampled_from([1, 2])),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "time_dim": time_dim,
    }
    return np.moveaxis(spikes, 0, time_dim % ndim), options


@given(layer=layers(exact=False))
def test_forward_matches_the_numpy_twin(layer):
    spikes, options = layer
    actual = smx.activity_penalty(torch.tensor(spikes), **options)
    expected = np.asarray(reference.activity_penalty(spikes, **options), dtype=np.float64)
    assert actual.dtype == torch.float64
    batch_size = spikes.shape[1 if options["time_dim"] % spikes.ndim == 0 else 0]  # batch: the first other dim
    assert actual.shape == ((batch_size,) if options["reduction"] == "none" else ())
    torch.testing.assert_close(actual, torch.tensor(expected).reshape(actual.shape), rtol=1e-12, atol=1e-12)


@given(layer=layers(exact=True))
def test_gradient_matches_the_numpy_twin(layer):
    spikes, options = layer
    leaf = torch.tensor(spikes, requires_grad=True)
    result = smx.activity_penalty(leaf, **options)
    (gradient,) = torch.autograd.grad(result.sum(), leaf)
    expected = reference.activity_penalty_gradient(spikes, **options)
    assert gradient.shape == expected.shape
    torch.testing.assert_close(gradient, torch.tensor(expected), rtol=1e-12, atol=1e-15)


@given(layer=layers(exact=False), seed=st.integers(0, 2**32 - 1))
def test_the_twins_gradient_is_the_derivative_of_the_twin(layer, seed):
    """The analytic twin gradient against central differences of the twin's forward, away from the kink."""
    spikes, options = layer
    spikes = spikes + 0.1  # differences step both ways: keep away from 0
    time_first = np.moveaxis(spikes, options["time_dim"], 0)
    rates = time_first.reshape(time_first.shape[0], time_first.shape[1], -1).mean(0)
    step = 1e-6
    assume(np.min(np.abs(rates - options["target_rate"])) > 1e-3)  # at the kink the one-sided derivatives differ
    direction = np.random.default_rng(seed).standard_normal(spikes.shape)

    def total(values):
        return float(np.sum(reference.activity_penalty(values, **options)))

    expected = (total(spikes + step * direction) - total(spikes - step * direction)) / (2 * step)
    actual = float(np.sum(reference.activity_penalty_gradient(spikes, **options) * direction))
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-7)


GRADCHECK_CASES = [
    dict(),
    dict(power=2),
    dict(target_rate=0.3, reduction="sum"),
    dict(target_rate=0.6, power=2, reduction="none"),
]


@pytest.mark.parametrize("options", GRADCHECK_CASES, ids=str)
@pytest.mark.parametrize("shape, time_dim", [((5, 3, 4), 0), ((3, 2, 2, 5), -1), ((4, 2, 2, 1, 3), 0)], ids=str)
def test_gradcheck_in_float64_away_from_the_kink(options, shape, time_dim):
    generator = torch.Generator().manual_seed(11)
    spikes = torch.rand(shape, generator=generator, dtype=torch.float64)
    rates = spikes.movedim(time_dim, 0).mean(0)
    assert (rates - options.get("target_rate", 0.0)).abs().min() > 1e-3  # gradcheck steps by 1e-6
    spikes.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: smx.activity_penalty(s, time_dim=time_dim, **options), (spikes,))
    assert torch.autograd.gradgradcheck(lambda s: smx.activity_penalty(s, time_dim=time_dim, **options), (spikes,))


# ----------------------------------------------------------------------------------------------------- the module


MODULE_CASES = [dict(), dict(target_rate=0.2, power=2), dict(reduction="none", time_dim=-1), dict(reduction="sum")]


@pytest.mark.parametrize("options", MODULE_CASES, ids=str)
def test_module_equals_function(options):
    generator = torch.Generator().manual_seed(5)
    spikes = torch.rand(6, 3, 2, 4, generator=generator).requires_grad_()
    module = smx.ActivityPenalty(**options)
    assert torch.equal(module(spikes), smx.activity_penalty(spikes, **options))
    assert smx.ActivityPenalty is modules.ActivityPenalty
    assert smx.activity_penalty is functional.activity_penalty


def test_module_options_show_in_repr_and_are_keyword_only():
    assert repr(smx.ActivityPenalty(target_rate=0.25, power=2)) == (
        "ActivityPenalty(target_rate=0.25, power=2, reduction='mean', time_dim=0)"
    )
    with pytest.raises(TypeError):
        smx.ActivityPenalty(0.1)  # type: ignore[misc]


BAD_OPTIONS = [
    pytest.param(dict(power=3), ValueError, "power must be >= 1 and <= 2 (1: mean excess rate, 2: its square), got 3",
                 id="power-3"),
    pytest.param(dict(power=0), ValueError, "power must be >= 1 and <= 2 (1: mean excess rate, 2: its square), got 0",
                 id="power-0"),
    pytest.param(dict(power=1.5), TypeError, "power must be an int, got float", id="power-1.5"),
    pytest.param(dict(power=2.0), TypeError, "power must be an int, got float", id="power-2.0"),
    pytest.param(dict(power=True), TypeError, "power must be an int, got bool", id="power-True"),
    pytest.param(
        dict(target_rate=-0.1), ValueError,
        "target_rate must be finite and >= 0 and <= 1 (a firing rate: spikes per neuron and step), got -0.1",
        id="target_rate-negative",
    ),
    pytest.param(
        dict(target_rate=1.5), ValueError,
        "target_rate must be finite and >= 0 and <= 1 (a firing rate: spikes per neuron and step), got 1.5",
        id="target_rate-1.5",
    ),
    pytest.param(
        dict(target_rate=math.nan), ValueError,
        "target_rate must be finite and >= 0 and <= 1 (a firing rate: spikes per neuron and step), got nan",
        id="target_rate-nan",
    ),
    pytest.param(dict(target_rate="a"), TypeError, "target_rate must be a real number, got str", id="target_rate-str"),
    pytest.param(dict(target_rate=True), TypeError, "target_rate must be a real number, got bool",
                 id="target_rate-bool"),
    pytest.param(dict(reduction="avg"), ValueError, "reduction must be one of ('mean', 'sum', 'none'), got 'avg'",
                 id="reduction-avg"),
    pytest.param(dict(reduction=None), ValueError, "reduction must be one of ('mean', 'sum', 'none'), got None",
                 id="reduction-None"),
    pytest.param(dict(time_dim=1.0), TypeError, "time_dim must be an int, got float", id="time_dim-float"),
    pytest.param(dict(time_dim=False), TypeError, "time_dim must be an int, got bool", id="time_dim-bool"),
]


@pytest.mark.parametrize("options, exception, message", BAD_OPTIONS)
def test_bad_options_raise_in_the_function_and_when_the_module_is_built(options, exception, message):
    with pytest.raises(exception) as raised:
        smx.activity_penalty(torch.zeros(2, 2, 3), **options)
    assert str(raised.value) == message
    with pytest.raises(exception) as raised:
        smx.ActivityPenalty(**options)
    assert str(raised.value) == message


BAD_SPIKES = [
    pytest.param(np.zeros((2, 2, 3)), {}, TypeError,
                 "spikes must be a torch.Tensor [T, B, *neurons] (time at time_dim), got ndarray", id="numpy"),
    pytest.param([[[0.0]]], {}, TypeError,
                 "spikes must be a torch.Tensor [T, B, *neurons] (time at time_dim), got list", id="list"),
    pytest.param(torch.zeros(2, 2, 3, dtype=torch.long), {}, TypeError,
                 "spikes must be a floating-point tensor (binary or graded spikes), got dtype torch.int64", id="int"),
    pytest.param(torch.zeros(2, 2, 3, dtype=torch.bool), {}, TypeError,
                 "spikes must be a floating-point tensor (binary or graded spikes), got dtype torch.bool", id="bool"),
    pytest.param(torch.zeros(2, 3), {}, ValueError,
                 "spikes must have a time, a batch and at least one neuron dimension ([T, B, *neurons] with time at "
                 "time_dim), got shape (2, 3)", id="2-D"),
    pytest.param(torch.zeros(5), {}, ValueError,
                 "spikes must have a time, a batch and at least one neuron dimension ([T, B, *neurons] with time at "
                 "time_dim), got shape (5,)", id="1-D"),
    pytest.param(torch.zeros(2, 2, 3), {"time_dim": 3}, ValueError,
                 "time_dim must be in [-3, 2] for 3-D spikes, got 3", id="time_dim-3"),
    pytest.param(torch.zeros(2, 2, 3, 4, 5), {"time_dim": -6}, ValueError,
                 "time_dim must be in [-5, 4] for 5-D spikes, got -6", id="time_dim--6"),
    pytest.param(torch.zeros(0, 2, 3), {}, ValueError,
                 "spikes must have at least one time step, got T = 0 (shape (0, 2, 3))", id="no-steps"),
    pytest.param(torch.zeros(2, 0, 3), {}, ValueError,
                 "spikes must have a non-empty batch, got B = 0 (shape (2, 0, 3))", id="empty-batch"),
    pytest.param(torch.zeros(0, 3, 2), {"time_dim": 1}, ValueError,
                 "spikes must have a non-empty batch, got B = 0 (shape (0, 3, 2))", id="empty-batch-time-dim-1"),
    pytest.param(torch.zeros(2, 2, 3, 0), {}, ValueError,
                 "spikes must have at least one neuron, got none (shape (2, 2, 3, 0))", id="no-neurons"),
]


@pytest.mark.parametrize("spikes, options, exception, message", BAD_SPIKES)
def test_bad_spikes_raise_a_clear_error(spikes, options, exception, message):
    for call in (smx.activity_penalty, lambda s, **kw: smx.ActivityPenalty(**kw)(s)):
        with pytest.raises(exception) as raised:
            call(spikes, **options)
        assert str(raised.value) == message
        with smx.value_checks(False), pytest.raises(exception):  # shape and dtype checks stay on
            call(spikes, **options)


def test_an_empty_batch_is_refused_like_the_losses():
    empty = torch.zeros(4, 0, 3)
    with pytest.raises(ValueError) as ours:
        smx.activity_penalty(empty)
    with pytest.raises(ValueError) as loss:
        smx.spikemax_g(empty, torch.zeros(0, dtype=torch.long))
    assert str(ours.value) == str(loss.value) == "spikes must have a non-empty batch, got B = 0 (shape (4, 0, 3))"


# --------------------------------------------------------------------------------------------------- value checks


def _spikes_with(value: float) -> torch.Tensor:
    spikes = torch.zeros(3, 2, 4)
    spikes[1, 0, 2] = value
    return spikes


BAD_VALUES = [
    pytest.param(-1.0, "spikes must be >= 0 (spike counts), got a spike count of -1", id="negative"),
    pytest.param(math.nan, "spikes must be finite, got NaN or inf spike counts in [nan, nan] (a NaN or inf spike, "
                           "or finite spikes whose count overflows)", id="nan"),
    pytest.param(math.inf, "spikes must be finite, got NaN or inf spike counts in [0, inf] (a NaN or inf spike, "
                           "or finite spikes whose count overflows)", id="inf"),
    pytest.param(-math.inf, "spikes must be finite, got NaN or inf spike counts in [-inf, 0] (a NaN or inf spike, "
                            "or finite spikes whose count overflows)", id="-inf"),
]


@pytest.mark.parametrize("value, message", BAD_VALUES)
def test_bad_values_raise_with_value_checks_on_and_pass_with_them_off(value, message):
    spikes = _spikes_with(value)
    with pytest.raises(ValueError) as raised:
        smx.activity_penalty(spikes)
    assert str(raised.value) == message
    with pytest.raises(ValueError):
        smx.ActivityPenalty(power=2)(spikes)
    with smx.value_checks(False):
        result = smx.activity_penalty(spikes, reduction="none")
        smx.ActivityPenalty()(spikes)
    assert result.shape == (2,)
    assert result[1].item() == 0.0  # the other sample is untouched: undefined values stay where they came


def test_value_checks_read_the_host_once_when_on_and_never_when_off():
    spikes = torch.rand(5, 3, 4).requires_grad_()
    with HostReadSpy() as spy:
        smx.activity_penalty(spikes).backward()
    assert spy.reads == ["item", "item"]  # the two extremes of the counts, read directly on the CPU
    with smx.value_checks(False), HostReadSpy() as spy:
        smx.activity_penalty(spikes, power=2).backward()
        smx.ActivityPenalty(target_rate=0.1)(spikes)
    assert spy.reads == []


def test_meta_tensors_give_a_meta_result_of_the_right_shape():
    spikes = torch.zeros(6, 3, 2, 4, device="meta")  # values do not exist: nothing to check
    assert smx.activity_penalty(spikes).is_meta and smx.activity_penalty(spikes).shape == ()
    none = smx.activity_penalty(spikes, reduction="none", power=2)
    assert none.is_meta and none.shape == (3,) and none.dtype == torch.float32
    with pytest.raises(ValueError, match=r"spikes must have a non-empty batch"):
        smx.activity_penalty(torch.zeros(6, 0, 4, device="meta"))


# --------------------------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_follow_the_losses_accumulation(dtype):
    generator = torch.Generator().manual_seed(2)
    values = (torch.rand(40, 3, 5, generator=generator) < 0.3).to(torch.float64)  # binary: exact in every dtype
    spikes = values.to(dtype).clone().requires_grad_()
    result = smx.activity_penalty(spikes, target_rate=0.1, power=2)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert result.dtype == expected_dtype == smx.spikemax_g(spikes, torch.zeros(3, dtype=torch.long)).dtype
    expected = float(reference.activity_penalty(values.numpy(), target_rate=0.1, power=2))
    assert result.item() == pytest.approx(expected, rel=1e-6)
    result.backward()
    assert spikes.grad.dtype == dtype and torch.isfinite(spikes.grad).all()


def test_a_count_of_half_spikes_past_float16s_range_is_counted_in_float32():
    spikes = torch.full((3000, 1, 2), 30000.0, dtype=torch.float16)  # counts of 9e7: float16 overflows at 65504
    result = smx.activity_penalty(spikes, target_rate=1.0)
    assert result.dtype == torch.float32 and result.item() == pytest.approx(29999.0)


# ------------------------------------------------------------------------------------ torch.compile and torch.func


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(), dict(target_rate=0.25, power=2, reduction="none", time_dim=-1)], ids=str)
def test_full_graph_compilation_equals_eager(options):
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(7)
    values = torch.rand(6, 4, 2, 3, generator=generator)

    def penalty(spikes):
        return smx.activity_penalty(spikes, **options)

    eager_spikes, compiled_spikes = values.clone().requires_grad_(), values.clone().requires_grad_()
    expected = penalty(eager_spikes)
    actual = torch.compile(penalty, fullgraph=True)(compiled_spikes)
    torch.testing.assert_close(actual, expected)
    expected.sum().backward()
    actual.sum().backward()
    torch.testing.assert_close(compiled_spikes.grad, eager_spikes.grad)


@pytest.mark.parametrize("options", [dict(), dict(target_rate=0.3, power=2, reduction="sum")], ids=str)
def test_torch_func_grad_and_vmap_agree_with_autograd_and_a_loop(options):
    generator = torch.Generator().manual_seed(8)
    stack = torch.rand(3, 5, 2, 4, generator=generator, dtype=torch.float64)

    def penalty(spikes):
        return smx.activity_penalty(spikes, **options)

    looped = torch.stack([penalty(spikes) for spikes in stack])
    torch.testing.assert_close(torch.func.vmap(penalty)(stack), looped, rtol=1e-12, atol=1e-12)
    leaf = stack[0].clone().requires_grad_()
    (autograd,) = torch.autograd.grad(penalty(leaf), leaf)
    torch.testing.assert_close(torch.func.grad(penalty)(stack[0]), autograd, rtol=1e-12, atol=1e-12)
    per_sample_gradients = torch.func.vmap(torch.func.grad(penalty))(stack)
    torch.testing.assert_close(per_sample_gradients[2], torch.func.grad(penalty)(stack[2]), rtol=1e-12, atol=1e-12)
    expected = reference.activity_penalty_gradient(stack[1].numpy(), **options)
    torch.testing.assert_close(per_sample_gradients[1], torch.tensor(expected), rtol=1e-12, atol=1e-15)
