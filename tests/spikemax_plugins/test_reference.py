"""Every public loss and metric equals its independent NumPy twin in spikemax_plugins.reference."""

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


def assert_matches_reference(actual: torch.Tensor, expected) -> None:
    expected = torch.as_tensor(np.asarray(expected, dtype=np.float64))
    # assert_close also requires infinities to sit in the same places with the same sign.
    torch.testing.assert_close(
        actual.detach().to(torch.float64).reshape(expected.shape), expected, rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@given(data=st.data())
def test_spikemax_forward_matches_reference(loss_name, data):
    torch_loss, numpy_loss, sliding = LOSSES[loss_name]
    problem = data.draw(spike_problems())
    options = data.draw(spikemax_options(problem.classes, problem.spikes.shape[0], sliding))
    actual = torch_loss(
        problem.torch_spikes(), problem.torch_target(), num_classes=problem.num_classes, **as_torch_options(options)
    )
    expected = numpy_loss(problem.spikes, problem.target, num_classes=problem.num_classes, **options)
    assert actual.dtype == torch.float64
    assert actual.shape == ((problem.spikes.shape[1],) if options["reduction"] == "none" else ())
    assert not torch.isnan(actual).any()
    assert_matches_reference(actual, expected)


@given(data=st.data())
def test_mse_count_forward_matches_reference(data):
    problem = data.draw(spike_problems())
    options = data.draw(mse_options(problem.classes))
    actual = smx.mse_count(
        problem.torch_spikes(), problem.torch_target(), num_classes=problem.num_classes, **as_torch_options(options)
    )
    expected = reference.mse_count(problem.spikes, problem.target, num_classes=problem.num_classes, **options)
    assert_matches_reference(actual, expected)


@given(problem=spike_problems(soft_targets=False))
def test_metrics_match_reference(problem):
    spikes, target, num_classes = problem.torch_spikes(), problem.torch_target(), problem.num_classes
    assert_matches_reference(smx.spike_counts(spikes, num_classes), reference.spike_counts(problem.spikes, num_classes))
    np.testing.assert_array_equal(
        smx.predict(spikes, num_classes).numpy(), reference.predict(problem.spikes, num_classes)
    )
    np.testing.assert_array_equal(
        smx.time_to_decision(spikes, num_classes).numpy(), reference.time_to_decision(problem.spikes, num_classes)
    )
    assert smx.accuracy(spikes, target, num_classes).item() == pytest.approx(
        reference.accuracy(problem.spikes, problem.target, num_classes), abs=1e-6
    )
    np.testing.assert_allclose(
        smx.accuracy_over_time(spikes, target, num_classes).numpy(),
        reference.accuracy_over_time(problem.spikes, problem.target, num_classes),
        atol=1e-6,
    )


@given(
    seed=st.integers(0, 2**32 - 1),
    num_layers=st.integers(1, 3),
    num_steps=st.integers(1, 20),
    batch_size=st.integers(1, 8),
    per_neuron=st.booleans(),
)
def test_synaptic_operations_match_reference(seed, num_layers, num_steps, batch_size, per_neuron):
    rng = np.random.default_rng(seed)
    layers, fan_outs = [], []
    for _ in range(num_layers):
        neurons = int(rng.integers(1, 12))
        layers.append((rng.random((num_steps, batch_size, neurons)) < 0.3).astype(np.float64))
        fan_outs.append(
            rng.integers(1, 50, size=neurons).astype(np.float64) if per_neuron else int(rng.integers(1, 50))
        )
    actual = smx.synaptic_operations(
        [torch.tensor(layer) for layer in layers],
        [torch.tensor(f) if isinstance(f, np.ndarray) else f for f in fan_outs],
    )
    np.testing.assert_allclose(actual.numpy(), reference.synaptic_operations(layers, fan_outs), rtol=1e-12)


def test_softmax_mode_equals_torch_cross_entropy_on_counts():
    """A second, external oracle: softmax mode at temperature 1 is cross_entropy over the counts."""
    generator = torch.Generator().manual_seed(3)
    spikes = (torch.rand(9, 6, 5, generator=generator) < 0.4).double()
    target = torch.randint(0, 5, (6,), generator=generator)
    soft = torch.softmax(torch.randn(6, 5, generator=generator, dtype=torch.float64), -1)
    weight = torch.rand(5, generator=generator, dtype=torch.float64) + 0.1
    for labels in (target, soft):
        for reduction in ("mean", "sum", "none"):
            for label_smoothing in (0.0, 0.3):
                actual = smx.spikemax_g(
                    spikes, labels, mode="softmax", weight=weight, reduction=reduction, label_smoothing=label_smoothing
                )
                expected = torch.nn.functional.cross_entropy(
                    spikes.sum(0), labels, weight=weight, reduction=reduction, label_smoothing=label_smoothing
                )
                torch.testing.assert_close(actual, expected)


def test_hand_computed_value():
    """Counts (3, 1, 0), smoothing 1: p = (4, 2, 1) / 7, so the loss for class 0 is log(7 / 4)."""
    spikes = torch.zeros(4, 1, 3)
    spikes[:3, 0, 0] = 1
    spikes[2, 0, 1] = 1
    target = torch.tensor([0])
    assert smx.spikemax_g(spikes, target).item() == pytest.approx(np.log(7 / 4), rel=1e-6)
    # Temperature 0.5 squares the shifted counts: p_0 = 16 / (16 + 4 + 1).
    assert smx.spikemax_g(spikes, target, temperature=0.5).item() == pytest.approx(np.log(21 / 16), rel=1e-6)
    # Softmax mode: p_0 = e^3 / (e^3 + e + 1).
    expected = -np.log(np.exp(3) / (np.exp(3) + np.e + 1))
    assert smx.spikemax_g(spikes, target, mode="softmax").item() == pytest.approx(expected, rel=1e-6)
    # Window 2, stride 1 over counts per step [[1,0,0],[1,0,0],[1,1,0],[0,0,0]]: windows end at t = 1, 2, 3
    # with counts (2,0,0), (2,1,0), (1,1,0): losses log(5/3), log(6/3), log(5/2).
    expected = np.mean([np.log(5 / 3), np.log(6 / 3), np.log(5 / 2)])
    assert smx.spikemax_s(spikes, target, window=2).item() == pytest.approx(expected, rel=1e-6)
    # MSE: T = 4, target counts (4, 0, 0) -> ((3-4)^2 + 1^2 + 0) / 3.
    assert smx.mse_count(spikes, target, true_rate=1.0, false_rate=0.0).item() == pytest.approx(2 / 3, rel=1e-6)
