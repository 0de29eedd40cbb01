"""Mathematical properties of the losses (spikemax_plugins.functional) that hold for any input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx

from .strategies import as_torch_options, spike_problems, spikemax_options


@given(data=st.data())
def test_sliding_with_full_window_is_exactly_global(data):
    problem = data.draw(spike_problems())
    options = data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], sliding=False))
    spikes, target = problem.torch_spikes(), problem.torch_target()
    options = as_torch_options(options)
    global_loss = smx.spikemax_g(spikes, target, num_classes=problem.num_classes, **options)
    stride = data.draw(st.integers(1, 5))
    sliding_loss = smx.spikemax_s(
        spikes, target, window=spikes.shape[0], stride=stride, num_classes=problem.num_classes, **options
    )
    assert torch.equal(global_loss, sliding_loss)


@pytest.mark.parametrize("loss", [smx.spikemax_g, smx.spikemax_s])
@given(data=st.data())
def test_class_permutation_equivariance(loss, data):
    problem = data.draw(spike_problems(population=False))
    options = as_torch_options(
        data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], sliding=loss is smx.spikemax_s))
    )
    spikes, target = problem.torch_spikes(), problem.torch_target()
    permutation = torch.from_numpy(np.random.default_rng(0).permutation(problem.classes))
    inverse = torch.argsort(permutation)
    permuted_target = inverse[target] if not target.is_floating_point() else target[:, permutation]
    permuted_options = dict(options)
    if options.get("weight") is not None:
        permuted_options["weight"] = options["weight"][permutation]
    torch.testing.assert_close(
        loss(spikes[..., permutation], permuted_target, **permuted_options), loss(spikes, target, **options)
    )


@given(data=st.data())
def test_global_loss_ignores_spike_order_in_time(data):
    problem = data.draw(spike_problems())
    options = as_torch_options(data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], sliding=False)))
    spikes, target = problem.torch_spikes(), problem.torch_target()
    order = torch.from_numpy(np.random.default_rng(1).permutation(spikes.shape[0]))
    torch.testing.assert_close(
        smx.spikemax_g(spikes[order], target, num_classes=problem.num_classes, **options),
        smx.spikemax_g(spikes, target, num_classes=problem.num_classes, **options),
    )


@pytest.mark.parametrize("loss", [smx.spikemax_g, smx.spikemax_s, smx.mse_count])
@given(data=st.data())
def test_loss_is_non_negative(loss, data):
    problem = data.draw(spike_problems())
    if loss is smx.mse_count:
        options = {"true_rate": 0.7, "false_rate": 0.1}
    else:
        options = data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], loss is smx.spikemax_s))
    value = loss(
        problem.torch_spikes(), problem.torch_target(), num_classes=problem.num_classes, **as_torch_options(options)
    )
    assert (value >= 0).all()


@given(
    num_steps=st.integers(1, 30),
    batch_size=st.integers(1, 8),
    classes=st.integers(2, 20),
    count=st.integers(0, 30),
    mode=st.sampled_from(["probability", "softmax"]),
    temperature=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_equal_counts_give_log_classes(num_steps, batch_size, classes, count, mode, temperature):
    spikes = torch.zeros(num_steps, batch_size, classes, dtype=torch.float64)
    spikes[0] = count
    target = torch.randint(0, classes, (batch_size,))
    loss = smx.spikemax_g(spikes, target, mode=mode, temperature=temperature)
    assert loss.item() == pytest.approx(math.log(classes), rel=1e-12)


@given(problem=spike_problems(soft_targets=False, population=False), smoothing=st.sampled_from([0.1, 0.5, 1.0, 2.0]))
def test_one_more_true_class_spike_lowers_the_loss(problem, smoothing):
    spikes, target = problem.torch_spikes(), problem.torch_target()
    before = smx.spikemax_g(spikes, target, smoothing=smoothing, reduction="none")
    extra = torch.zeros_like(spikes[:1])
    extra[0, torch.arange(target.shape[0]), target] = 1
    after = smx.spikemax_g(torch.cat([spikes, extra]), target, smoothing=smoothing, reduction="none")
    assert (after < before).all()


@pytest.mark.parametrize("loss_kwargs", [dict(), dict(smoothing=0.5, temperature=2.0), dict(mode="softmax")])
@given(num_steps=st.integers(1, 20), batch_size=st.integers(1, 6), classes=st.integers(2, 12))
def test_all_silent_output_has_finite_loss_and_gradient_toward_target(loss_kwargs, num_steps, batch_size, classes):
    spikes = torch.zeros(num_steps, batch_size, classes, requires_grad=True)
    target = torch.arange(batch_size) % classes
    loss = smx.spikemax_g(spikes, target, **loss_kwargs)
    loss.backward()
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(math.log(classes), rel=1e-5)
    gradient = spikes.grad
    assert torch.isfinite(gradient).all()
    on_target = gradient[:, torch.arange(batch_size), target]
    # Gradient descent raises the target class's count and lowers the others'.
    assert (on_target < 0).all()
    off_target = gradient.clone()
    off_target[:, torch.arange(batch_size), target] = 0
    assert (off_target >= 0).all() and off_target.abs().sum() > 0


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_silent_true_class_without_smoothing_is_inf_never_nan(temperature):
    spikes = torch.zeros(4, 2, 3, requires_grad=True)
    with torch.no_grad():
        spikes[:, 1, 2] = 1  # sample 1: only class 2 fires; its target is class 0 (silent)
    target = torch.tensor([0, 0])
    loss = smx.spikemax_g(spikes, target, smoothing=0.0, temperature=temperature, reduction="none")
    assert torch.isinf(loss).all() and (loss > 0).all()
    loss.sum().backward()
    assert not torch.isnan(spikes.grad).any()
    assert (spikes.grad[:, :, 0] == -math.inf).all()


def test_population_coding_equals_pre_summed_counts():
    generator = torch.Generator().manual_seed(5)
    spikes = (torch.rand(10, 4, 12, generator=generator) < 0.3).float()
    grouped = spikes.reshape(10, 4, 3, 4).sum(-1)  # 3 classes of 4 neurons each
    target = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(smx.spikemax_g(spikes, target, num_classes=3), smx.spikemax_g(grouped, target))
    torch.testing.assert_close(
        smx.mse_count(spikes, target, true_rate=0.5, false_rate=0.1, num_classes=3),
        # four neurons per class: each aims at rate * T, so the group aims at 4 * rate * T.
        ((grouped.sum(0) - torch.tensor([0.1, 0.1, 0.1]) * 40 - 0.4 * 40 * torch.eye(3)[target]) ** 2).mean(),
    )
