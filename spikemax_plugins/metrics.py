"""Decision metrics over spike recordings: counts, predictions, accuracy, latency and energy.

A prediction is the class with the most spikes. A tie for the maximum (all-silent output included) is no
decision: :func:`predict` returns ``-1`` there, and accuracy counts it as wrong. Decisions count spikes in
float64 (exact integers up to 2**53; float32 only on devices without float64), so two different counts never
tie by rounding.

Every function takes the spikes in any layout: ``time_dim`` names the time dimension, the others are batch
and then neurons. Each function has a streaming twin in :mod:`spikemax_plugins.streaming`, a
``torchmetrics.Metric`` that accumulates over batches and synchronises across processes; the function and the
class share the private helpers, so that streaming over any split of a data set gives the function's value on
the whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._decisions import (
    argmax_or_no_decision,
    correct_count,
    correct_over_time,
    decision_steps,
    operations_per_sample,
    validated_counts,
)

__all__ = [
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
]

# ---------------------------------------------------------------------------------------------- functions


def spike_counts(spikes: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """Spike count per class, summed over time (and over each class's neuron group with population coding).

    Differentiable. Counts are exact integers up to 2**24 in float32 (2**53 in float64); :func:`predict` and
    the other decision metrics count in float64 regardless.

    Shape:
        - spikes: ``(T, B, N)`` with ``time_dim=0`` (or another layout, see ``time_dim``); ``N = C`` or
          ``N = k * C``
        - output: ``(B, C)``, float32 for half-precision and float32 spikes, float64 for float64
    """
    counts, _ = validated_counts(spikes, num_classes, time_dim, decision=False)
    return counts


@torch.no_grad()
def predict(spikes: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """Class with the most spikes; ``-1`` where the maximum is tied (all-silent output included).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - output: ``(B)`` int64
    """
    counts, _ = validated_counts(spikes, num_classes, time_dim)
    return argmax_or_no_decision(counts)


@torch.no_grad()
def accuracy(spikes: Tensor, target: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """Fraction of samples whose :func:`predict` equals the target (a tie counts as wrong).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` integer class indices
        - output: scalar float32
    """
    correct = correct_count(spikes, target, num_classes, time_dim)
    return correct.to(torch.float32) / target.shape[0]


@torch.no_grad()
def accuracy_over_time(
    spikes: Tensor, target: Tensor, num_classes: int | None = None, *, time_dim: int = 0
) -> Tensor:
    """Accuracy of the prediction from the counts up to and including each step.

    ``accuracy_over_time(spikes, target)[-1] == accuracy(spikes, target)``.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` integer class indices
        - output: ``(T)`` float32
    """
    return correct_over_time(spikes, target, num_classes, time_dim).to(torch.float32) / target.shape[0]


@torch.no_grad()
def time_to_decision(spikes: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """First step from which the running prediction equals the final prediction at every later step.

    The running prediction at step t is :func:`predict` on the counts of steps ``0..t``. A sample whose final
    prediction is a tie (no decision) gets ``-1``; otherwise the value lies in ``[0, T-1]``.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - output: ``(B)`` int64
    """
    return decision_steps(spikes, num_classes, time_dim)


@torch.no_grad()
def synaptic_operations(
    layer_spikes: Sequence[Tensor],
    fan_out: Sequence[int | float | Tensor],
    *,
    until: Tensor | None = None,
    time_dim: int = 0,
) -> Tensor:
    """Synaptic operations per sample: sum over layers, steps and neurons of spikes times fan-out.

    Each spike of a neuron drives one operation per outgoing synapse, the energy proxy NeuroBench counts for
    SNNs. ``fan_out[l]`` is layer ``l``'s number of outgoing synapses per neuron: a number ``>= 0``, or a float
    tensor that broadcasts to one step of that layer (e.g. ``(N_l)`` for per-neuron fan-out). With ``until``,
    only steps ``0..until[b]`` of sample ``b`` count: the operations spent up to an early exit
    (:mod:`spikemax_plugins.early_exit`). Spikes and fan-outs must be finite and ``>= 0``.

    Shape:
        - layer_spikes: a sequence of tensors, one per layer, each with time at ``time_dim``, then batch, then
          any neuron shape (``(T, B, N_l)`` or ``(T, B, C, H, W)`` with ``time_dim=0``), all with the same T
          and B
        - fan_out: a sequence of the same length
        - until: ``(B)`` integer steps in ``[0, T-1]``, or None for the whole recording
        - output: ``(B)``, float64 (exact for operation counts up to 2**53)
    """
    return operations_per_sample(layer_spikes, fan_out, until, time_dim)
