"""Adversarial transforms: second derivatives (right, or refused at smoothing 0), torch.func grad / vmap /
jacobians, the documented error for a second torch.func derivative at smoothing 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import reference

from .loss_oracle import (
    FUNCTIONS,
    LOSS_KINDS,
)
from .support import (
    expect_clear_error,
    record_valid,
    seeds,
)

# ------------------------------------------------------------------------------ second derivatives


@st.composite
def second_derivative_cases(draw, smoothing_zero: bool):
    kind = draw(st.sampled_from(["spikemax_g", "spikemax_s"]))
    num_steps, batch_size, classes = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(seeds()))
    spikes = (rng.random((num_steps, batch_size, classes)) < 0.5) + 0.25  # strictly positive: smooth everywhere
    soft = draw(st.booleans())
    if soft:
        target = rng.dirichlet(np.full(classes, 2.0), size=batch_size) * 0.9 + 0.1 / classes
    else:
        target = rng.integers(0, classes, size=batch_size)
    weight = rng.uniform(0.2, 2.0, size=classes) if draw(st.booleans()) else None
    inputs = ["spikes"] + (["weight"] if weight is not None else []) + (["target"] if soft else [])
    first, second = draw(st.sampled_from(inputs)), draw(st.sampled_from(inputs))
    options = {
        "mode": "probability" if smoothing_zero else draw(st.sampled_from(["probability", "softmax"])),
        "temperature": draw(st.sampled_from([1.0, 0.5, 2.0])),
        "smoothing": 0.0 if smoothing_zero else draw(st.sampled_from([1.0, 0.5, 1e-3])),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.2])),
    }
    if kind == "spikemax_s":
        options["window"] = draw(st.integers(1, num_steps))
        options["stride"] = draw(st.integers(1, 2))
    return kind, spikes, target, weight, first, second, options, draw(seeds())


SECOND_ORDER_WEIGHT_BUG = (
    "spikemax_g", np.array([[[1.25, 0.25, 0.25], [0.25, 0.25, 1.25]], [[0.25, 1.25, 0.25], [1.25, 0.25, 0.25]]]),
    np.array([0, 2]),
    np.array([0.5, 1.0, 2.0]), "weight", "weight",
    {"mode": "probability", "temperature": 1.0, "smoothing": 0.0, "reduction": "mean", "label_smoothing": 0.0}, 0)


@given(case=second_derivative_cases(smoothing_zero=False))
def test_second_derivatives_with_smoothing_are_right(case):
    """(2) Differentiating a first derivative (create_graph=True) again, in any pair of inputs (spikes, weight, soft
    target), with smoothing > 0 or in softmax mode: the second derivative of the reference."""
    check_second_derivative(case)


@given(case=second_derivative_cases(smoothing_zero=True))
@example(case=SECOND_ORDER_WEIGHT_BUG)
@example(case=SECOND_ORDER_WEIGHT_BUG[:4] + ("spikes", "weight") + SECOND_ORDER_WEIGHT_BUG[6:])
def test_second_derivatives_at_smoothing_0_are_right_or_refused(case):
    """(2) At smoothing 0 (probability mode) a second derivative in any pair of inputs may raise the documented
    RuntimeError, but must never come out wrong (e.g. silently 0, or missing the terms through the loss)."""
    check_second_derivative(case)


def check_second_derivative(case):
    kind, spikes, target, weight, first, second, options, seed = case
    function = FUNCTIONS[kind]
    rng = np.random.default_rng(seed)
    values = {"spikes": spikes, "target": target, "weight": weight}
    tensors = {name: (None if value is None else torch.tensor(value)) for name, value in values.items()}
    for name in {first, second}:
        tensors[name].requires_grad_()
    grad_output = rng.standard_normal(spikes.shape[1])
    directions = {name: rng.standard_normal(np.shape(values[name])) for name in {first, second}}
    exact_path = options["mode"] == "probability" and options["smoothing"] == 0
    label = "core/second_derivative"

    def scalar(loss):
        return (loss * torch.from_numpy(grad_output)).sum() if options["reduction"] == "none" else loss

    loss = scalar(function(tensors["spikes"], tensors["target"], weight=tensors["weight"], **options))
    (gradient,) = torch.autograd.grad(loss, tensors[first], create_graph=True)
    contracted = (gradient * torch.from_numpy(directions[first])).sum()
    try:
        if contracted.requires_grad:
            (second_gradient,) = torch.autograd.grad(contracted, tensors[second], allow_unused=True)
        else:
            second_gradient = None
    except RuntimeError as error:
        if exact_path and "differentiable once" in str(error):
            record_valid(label + " (documented RuntimeError)")
            return
        raise
    got = 0.0 if second_gradient is None else float((second_gradient * torch.from_numpy(directions[second])).sum())

    def reference_at(shift_first, shift_second):
        shifted = {name: (None if value is None else np.array(value, dtype=np.float64))
                   for name, value in values.items()}
        shifted[first] = shifted[first] + shift_first * directions[first]
        shifted[second] = shifted[second] + shift_second * directions[second]
        reference_function = reference.spikemax_g if kind == "spikemax_g" else reference.spikemax_s
        value = np.asarray(reference_function(shifted["spikes"], shifted["target"] if not np.issubdtype(
            np.asarray(target).dtype, np.integer) else target, weight=shifted["weight"], **options))
        return float((value * grad_output).sum()) if options["reduction"] == "none" else float(value)

    step = 1e-4
    expected = (reference_at(step, step) - reference_at(step, -step) - reference_at(-step, step)
                + reference_at(-step, -step)) / (4 * step * step)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5 * (1 + abs(reference_at(0, 0)))), (
        f"{kind} {options}: d/d{second} (d loss/d{first} . direction) . direction = {got} by autograd "
        f"(create_graph=True), {expected} by finite differences of the reference")
    record_valid(label)


# ------------------------------------------------------------------------------------- torch.func transforms


@given(data=st.data())
def test_torch_func_grad_and_vmap(data):
    """torch.func.grad and vmap work on every loss (value checks are skipped there) and agree with plain autograd
    and a loop; a second torch.func derivative at smoothing 0 raises the documented RuntimeError."""
    kind = data.draw(st.sampled_from(LOSS_KINDS))
    num_steps, batch_size, classes = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3)), 3
    rng = np.random.default_rng(data.draw(seeds()))
    stack = torch.tensor((rng.random((2, num_steps, batch_size, classes)) < 0.5) + 0.25)
    target = torch.tensor(rng.integers(0, classes, size=batch_size))
    if kind == "mse_count":
        options = {"true_rate": 0.5, "false_rate": 0.0}
    else:
        options = {"smoothing": data.draw(st.sampled_from([0.0, 1.0])), "mode": "probability",
                   "temperature": data.draw(st.sampled_from([1.0, 2.0]))}
    if kind == "spikemax_s":
        options["window"] = data.draw(st.integers(1, num_steps))

    def loss(spikes):
        return FUNCTIONS[kind](spikes, target, **options)

    batched = torch.func.vmap(loss)(stack)
    looped = torch.stack([loss(spikes) for spikes in stack])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
    functional = torch.func.grad(loss)(stack[0])
    leaf = stack[0].clone().requires_grad_()
    (autograd,) = torch.autograd.grad(loss(leaf), leaf)
    torch.testing.assert_close(functional, autograd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(loss))(stack)[1], torch.func.grad(loss)(stack[1]),
                               rtol=1e-12, atol=1e-12)
    record_valid("core/torch.func")


@pytest.mark.parametrize("transform", ["grad of grad", "jacrev of jacrev", "hessian", "jacfwd of jacrev"])
@pytest.mark.parametrize("kind", ["spikemax_g", "spikemax_s"])
def test_second_torch_func_derivative_at_smoothing_0_raises_the_documented_error(kind, transform):
    """(12) The docs list 'torch.func.grad of a gradient, hessian and jacfwd-over-jacrev' as unsupported at
    smoothing 0, raising a RuntimeError that explains it (and suggests smoothing > 0)."""
    spikes = torch.rand(4, 2, 3, dtype=torch.float64) + 0.25
    target = torch.tensor([0, 2])

    def loss(values):
        if kind == "spikemax_s":
            return smx.spikemax_s(values, target, window=2, smoothing=0.0)
        return smx.spikemax_g(values, target, smoothing=0.0)

    transforms = {
        "grad of grad": lambda: torch.func.grad(lambda s: torch.func.grad(loss)(s).sum())(spikes),
        "jacrev of jacrev": lambda: torch.func.jacrev(torch.func.jacrev(loss))(spikes),
        "hessian": lambda: torch.func.hessian(loss)(spikes),
        "jacfwd of jacrev": lambda: torch.func.jacfwd(torch.func.jacrev(loss))(spikes),
    }
    expect_clear_error(f"core/torch.func {transform} at smoothing 0", transforms[transform], "smoothing",
                       types=(RuntimeError,))
