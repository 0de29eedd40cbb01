"""Decision metrics over time-first spike tensors: counts, predictions, accuracy, latency and energy.

A prediction is the class with the most spikes. A tie for the maximum (all-silent output included) is no
decision: :func:`predict` returns ``-1`` there, and accuracy counts it as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import _validation as check
from ._counts import running_counts, total_counts

__all__ = [
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
]

NO_DECISION = -1


def _validated_counts(
    spikes: Tensor, num_classes: int | None, target: Tensor | None = None, *, running: bool = False
) -> Tensor:
    """Checks the arguments and returns the total counts [B, C] (or running counts [T, B, C])."""
    check.check_spikes(spikes)
    num_classes = check.resolve_num_classes(spikes.shape[-1], num_classes)
    if target is not None:
        check.check_target(target, spikes, num_classes, allow_soft=False)
    counts = running_counts(spikes, num_classes) if running else total_counts(spikes, num_classes)
    check.check_values(counts, target, num_classes)
    return counts


def _argmax_or_no_decision(counts: Tensor) -> Tensor:
    """[..., C] counts -> [...] class index of the unique maximum, or -1 where the maximum is tied."""
    top_two = counts.topk(2, dim=-1).values
    unique_maximum = top_two[..., 0] > top_two[..., 1]
    return torch.where(unique_maximum, counts.argmax(-1), NO_DECISION)


def spike_counts(spikes: Tensor, num_classes: int | None = None) -> Tensor:
    """Spike count per class, summed over time (and over each class's neuron group with population coding).

    Shape:
        - spikes: ``(T, B, N)`` with ``N = C`` or ``N = k * C``
        - output: ``(B, C)``, float32 for half-precision spikes, else the spikes' dtype
    """
    return _validated_counts(spikes, num_classes)


@torch.no_grad()
def predict(spikes: Tensor, num_classes: int | None = None) -> Tensor:
    """Class with the most spikes; ``-1`` where the maximum is tied (all-silent output included).

    Shape:
        - spikes: ``(T, B, N)``
        - output: ``(B)`` int64
    """
    return _argmax_or_no_decision(_validated_counts(spikes, num_classes))


@torch.no_grad()
def accuracy(spikes: Tensor, target: Tensor, num_classes: int | None = None) -> Tensor:
    """Fraction of samples whose :func:`predict` equals the target (a tie counts as wrong).

    Shape:
        - spikes: ``(T, B, N)``
        - target: ``(B)`` integer class indices
        - output: scalar float32
    """
    prediction = _argmax_or_no_decision(_validated_counts(spikes, num_classes, target))
    return (prediction == target).float().mean()


@torch.no_grad()
def accuracy_over_time(spikes: Tensor, target: Tensor, num_classes: int | None = None) -> Tensor:
    """Accuracy of the prediction from the counts up to and including each step.

    ``accuracy_over_time(spikes, target)[-1] == accuracy(spikes, target)``.

    Shape:
        - spikes: ``(T, B, N)``
        - target: ``(B)`` integer class indices
        - output: ``(T)`` float32
    """
    predictions = _argmax_or_no_decision(_validated_counts(spikes, num_classes, target, running=True))  # [T, B]
    return (predictions == target).float().mean(-1)


@torch.no_grad()
def time_to_decision(spikes: Tensor, num_classes: int | None = None) -> Tensor:
    """First step from which the running prediction equals the final prediction at every later step.

    The running prediction at step t is :func:`predict` on the counts of steps ``0..t``. A sample whose final
    prediction is a tie (no decision) gets ``-1``; otherwise the value lies in ``[0, T-1]``.

    Shape:
        - spikes: ``(T, B, N)``
        - output: ``(B)`` int64
    """
    predictions = _argmax_or_no_decision(_validated_counts(spikes, num_classes, running=True))  # [T, B]
    final = predictions[-1]
    differs = predictions != final
    num_steps = predictions.shape[0]
    steps = torch.arange(num_steps, device=spikes.device).unsqueeze(-1)
    # The decision settles one step after the last step whose prediction differs from the final one.
    last_difference = torch.where(differs, steps, -1).amax(0)
    return torch.where(final == NO_DECISION, NO_DECISION, last_difference + 1)


@torch.no_grad()
def synaptic_operations(layer_spikes: Sequence[Tensor], fan_out: Sequence[int | float | Tensor]) -> Tensor:
    """Synaptic operations per sample: sum over layers, steps and neurons of spikes times fan-out.

    Each spike of a neuron drives one operation per outgoing synapse, the energy proxy NeuroBench counts for
    SNNs. ``fan_out[l]`` is layer ``l``'s number of outgoing synapses per neuron: a number, or a tensor that
    broadcasts against one step of that layer (e.g. ``(N_l)`` for per-neuron fan-out).

    Shape:
        - layer_spikes: a sequence of ``(T, B, ...)`` tensors, one per layer, with the same T and B
        - fan_out: a sequence of the same length
        - output: ``(B)``, float32 (float64 if any layer is float64)
    """
    if isinstance(layer_spikes, Tensor):
        raise TypeError("layer_spikes must be a sequence of [T, B, ...] tensors, one per layer; wrap one in a list")
    layer_spikes = list(layer_spikes)
    fan_out = list(fan_out)
    if not layer_spikes:
        raise ValueError("layer_spikes must hold at least one layer, got an empty sequence")
    if len(fan_out) != len(layer_spikes):
        raise ValueError(f"fan_out must have one entry per layer ({len(layer_spikes)}), got {len(fan_out)}")
    reference_shape = None
    total = None
    for index, (spikes, layer_fan_out) in enumerate(zip(layer_spikes, fan_out, strict=True)):
        name = f"layer_spikes[{index}]"
        if not isinstance(spikes, Tensor) or not spikes.is_floating_point() or spikes.dim() < 3:
            shape = tuple(spikes.shape) if isinstance(spikes, Tensor) else type(spikes).__name__
            raise ValueError(f"{name} must be a floating-point tensor [T, B, ...], got {shape}")
        if reference_shape is None:
            reference_shape = spikes.shape[:2]
        elif spikes.shape[:2] != reference_shape:
            raise ValueError(
                f"{name} must share T and B with layer_spikes[0] {tuple(reference_shape)}, got {tuple(spikes.shape)}"
            )
        if isinstance(layer_fan_out, Tensor):
            layer_fan_out = layer_fan_out.to(spikes.device)
        elif isinstance(layer_fan_out, bool) or not isinstance(layer_fan_out, (int, float)) or layer_fan_out < 0:
            raise ValueError(f"fan_out[{index}] must be a number >= 0 or a tensor, got {layer_fan_out!r}")
        dtype = check.accumulation_dtype(spikes.dtype)
        per_sample = (spikes.to(dtype) * layer_fan_out).flatten(2).sum(-1).sum(0)
        total = per_sample if total is None else total + per_sample
    return total
