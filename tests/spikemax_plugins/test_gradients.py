"""Gradients: gradcheck in float64, and autograd against finite differences of the NumPy reference."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import reference

from .strategies import as_torch_options, mse_options, spike_problems, spikemax_options

LOSSES = {
    "spikemax_g": (smx.spikemax_g, reference.spikemax_g, False),
    "spikemax_s": (smx.spikemax_s, reference.spikemax_s, True),
}


def _strictly_positive(spikes: np.ndarray) -> np.ndarray:
    """Finite differences step both ways: keep every spike value away from the boundary at 0."""
    return spikes + 0.1


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@given(data=st.data())
def test_gradient_matches_finite_difference_of_reference(loss_name, data):
    torch_loss, numpy_loss, sliding = LOSSES[loss_name]
    problem = data.draw(spike_problems(max_steps=12, max_batch=5, max_classes=6))
    options = data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], sliding))
    options["reduction"] = data.draw(st.sampled_from(["mean", "sum"]))
    spikes = _strictly_positive(problem.spikes)
    spikes_tensor = torch.tensor(spikes, requires_grad=True)
    loss = torch_loss(
        spikes_tensor, problem.torch_target(), num_classes=problem.num_classes, **as_torch_options(options)
    )
    loss.backward()
    # Directional derivative along a random direction, by central differences of the reference.
    direction = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal(spikes.shape)
    step = 1e-6

    def reference_loss(values):
        return numpy_loss(values, problem.target, num_classes=problem.num_classes, **options)

    expected = (reference_loss(spikes + step * direction) - reference_loss(spikes - step * direction)) / (2 * step)
    actual = float((spikes_tensor.grad.numpy() * direction).sum())
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6)


@given(data=st.data())
def test_mse_gradient_matches_finite_difference_of_reference(data):
    problem = data.draw(spike_problems(max_steps=12, max_batch=5, max_classes=6))
    options = data.draw(mse_options(problem.classes))
    options["reduction"] = "mean"
    spikes = _strictly_positive(problem.spikes)
    spikes_tensor = torch.tensor(spikes, requires_grad=True)
    smx.mse_count(
        spikes_tensor, problem.torch_target(), num_classes=problem.num_classes, **as_torch_options(options)
    ).backward()
    direction = np.random.default_rng(0).standard_normal(spikes.shape)
    step = 1e-5

    def reference_loss(values):
        return reference.mse_count(values, problem.target, num_classes=problem.num_classes, **options)

    expected = (reference_loss(spikes + step * direction) - reference_loss(spikes - step * direction)) / (2 * step)
    actual = float((spikes_tensor.grad.numpy() * direction).sum())
    assert actual == pytest.approx(expected, rel=1e-6, abs=1e-6)


GRADCHECK_CASES = [
    dict(),
    dict(smoothing=0.0),
    dict(smoothing=0.3, temperature=0.4, label_smoothing=0.2),
    dict(smoothing=0.0, temperature=2.5, weight="w"),
    dict(mode="softmax", temperature=0.7, weight="w", reduction="sum"),
    dict(num_classes=3, weight="w", label_smoothing=0.1),
    dict(target="soft", reduction="none"),
]


@pytest.mark.parametrize("sliding", [False, True], ids=["global", "sliding"])
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda case: ",".join(f"{k}={v}" for k, v in case.items()))
def test_gradcheck(case, sliding):
    generator = torch.Generator().manual_seed(11)
    case = dict(case)
    classes = case.get("num_classes") or 4
    spikes = torch.rand(8, 3, 6 if "num_classes" in case else 4, generator=generator, dtype=torch.float64) + 0.05
    spikes.requires_grad_()
    target = torch.tensor([0, 2, 1])
    if case.pop("target", None) == "soft":
        target = torch.softmax(torch.randn(3, classes, generator=generator, dtype=torch.float64), -1)
    if case.get("weight") == "w":
        case["weight"] = torch.rand(classes, generator=generator, dtype=torch.float64) + 0.1

    def loss(values):
        if sliding:
            return smx.spikemax_s(values, target, window=3, stride=2, **case)
        return smx.spikemax_g(values, target, **case)

    assert torch.autograd.gradcheck(loss, (spikes,))


def test_mse_gradcheck():
    spikes = torch.rand(5, 3, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda values: smx.mse_count(
            values, torch.tensor([0, 2, 1]), true_rate=0.8, false_rate=0.1, num_classes=3, weight=weight
        ),
        (spikes,),
    )


def test_exact_gradient_for_silent_classes_without_smoothing():
    """smoothing = 0, temperature 1: dL/dc_i = 1 / sum_j c_j for a silent class, finite (not 0 / 0 = NaN)."""
    spikes = torch.zeros(5, 1, 3)
    spikes[:, 0, 0] = 1  # the target class fires 5 times; classes 1 and 2 stay silent
    spikes.requires_grad_()
    loss = smx.spikemax_g(spikes, torch.tensor([0]), smoothing=0.0)
    loss.backward()
    assert loss.item() == 0.0
    # Per step: d/dc_0 = -1/5 + 1/5 = 0, d/dc_1 = d/dc_2 = 1/5.
    torch.testing.assert_close(spikes.grad[:, 0], torch.tensor([[0.0, 0.2, 0.2]]).expand(5, 3))
