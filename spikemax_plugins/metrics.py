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

from . import _validation as check
from ._counts import accumulation_dtype, decision_dtype, running_counts, time_first, total_counts

__all__ = [
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
]

NO_DECISION = -1


# ------------------------------------------------------------------------------------------- shared helpers


def _validated_counts(
    spikes: Tensor,
    num_classes: int | None,
    time_dim: int,
    target: Tensor | None = None,
    *,
    running: bool = False,
    decision: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Check the arguments; return the counts (``[B, C]``, or ``[T, B, C]`` when ``running``) and the target.

    The counts are in :func:`~spikemax_plugins._counts.decision_dtype` (``decision``), or else in the losses'
    :func:`~spikemax_plugins._counts.accumulation_dtype`.
    """
    time_dim = check.check_time_dim(time_dim)
    _, batch_size, num_outputs = check.check_spikes(spikes, time_dim)
    num_classes = check.resolve_num_classes(num_outputs, check.check_num_classes(num_classes))
    if target is not None:
        target = check.check_target(target, spikes, batch_size, num_classes, time_dim, allow_soft=False)
    dtype = decision_dtype(spikes.device) if decision else accumulation_dtype(spikes.dtype)
    count = running_counts if running else total_counts
    counts = count(spikes, num_classes, time_dim, dtype)
    if check.values_checkable(spikes, target):
        # The spikes themselves, not the counts: a negative spike inside a population group could hide in a sum.
        check.check_values(spikes, target, num_classes, quantity="spike", overflow_counts=counts)
    return counts, target


def _argmax_or_no_decision(counts: Tensor) -> Tensor:
    """``[..., C]`` counts -> ``[...]`` class index of the unique maximum, or ``-1`` where the maximum is tied."""
    top_two = counts.topk(2, dim=-1)
    unique_maximum = top_two.values[..., 0] > top_two.values[..., 1]
    return torch.where(unique_maximum, top_two.indices[..., 0], NO_DECISION)


def _correct_count(spikes: Tensor, target: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Number of samples whose prediction is right (int64 scalar)."""
    counts, target = _validated_counts(spikes, num_classes, time_dim, target)
    return (_argmax_or_no_decision(counts) == target).sum()


def _correct_over_time(spikes: Tensor, target: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Number of samples whose running prediction is right at each step, int64 ``[T]``."""
    counts, target = _validated_counts(spikes, num_classes, time_dim, target, running=True)
    return (_argmax_or_no_decision(counts) == target).sum(-1)


def _decision_steps(spikes: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Per sample, the first step from which the running prediction stays final; ``-1``: no final decision."""
    counts, _ = _validated_counts(spikes, num_classes, time_dim, running=True)
    predictions = _argmax_or_no_decision(counts)  # [T, B]
    final = predictions[-1]
    steps = torch.arange(predictions.shape[0], device=predictions.device).unsqueeze(-1)
    # The decision settles one step after the last step whose prediction differs from the final one.
    last_difference = torch.where(predictions != final, steps, -1).amax(0)
    return torch.where(final == NO_DECISION, NO_DECISION, last_difference + 1)


def _layer_shape(spikes: Tensor, time_dim: int) -> tuple[int, int, tuple[int, ...]]:
    """(T, B, per-step neuron shape) of one layer's spikes with time at ``time_dim``."""
    shape = list(spikes.shape)
    num_steps = shape.pop(time_dim)
    return num_steps, shape[0], tuple(shape[1:])


def _operations_per_sample(
    layer_spikes: Sequence[Tensor],
    fan_out: Sequence[int | float | Tensor],
    until: Tensor | None = None,
    time_dim: int = 0,
) -> Tensor:
    """Checked synaptic operations per sample, float64 ``[B]`` (see :func:`synaptic_operations`)."""
    if isinstance(layer_spikes, Tensor) or not isinstance(layer_spikes, Sequence):
        raise TypeError(
            "layer_spikes must be a sequence (list or tuple) of spike tensors, one per layer, got "
            f"{type(layer_spikes).__name__}; wrap a single layer in a list"
        )
    if isinstance(fan_out, Tensor) or not isinstance(fan_out, Sequence):
        raise TypeError(
            f"fan_out must be a sequence with one entry per layer (a number or a tensor), got {type(fan_out).__name__}"
        )
    if len(layer_spikes) == 0:
        raise ValueError("layer_spikes must hold at least one layer, got an empty sequence")
    if len(fan_out) != len(layer_spikes):
        raise ValueError(f"fan_out must have one entry per layer ({len(layer_spikes)}), got {len(fan_out)}")
    first = layer_spikes[0]
    statistics: list[tuple[str, Tensor]] = []  # (what, tensor whose extremes are checked)
    total: Tensor | None = None
    reference: tuple[int, int] | None = None
    for index, (spikes, layer_fan_out) in enumerate(zip(layer_spikes, fan_out, strict=True)):
        name = f"layer_spikes[{index}]"
        if not isinstance(spikes, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(spikes).__name__}")
        if not spikes.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (binary or graded spikes), got {spikes.dtype}")
        if spikes.dim() < 3:
            raise ValueError(f"{name} must have a time, a batch and at least one neuron dimension, got shape "
                             f"{tuple(spikes.shape)}")
        if spikes.device != first.device:
            raise ValueError(f"{name} is on {spikes.device} but layer_spikes[0] is on {first.device}")
        layer_time_dim = check.check_time_dim(time_dim, spikes.dim())
        num_steps, batch_size, neuron_shape = _layer_shape(spikes, layer_time_dim)
        if reference is None:
            reference = (num_steps, batch_size)
        elif (num_steps, batch_size) != reference:
            raise ValueError(
                f"{name} must share T and B with layer_spikes[0] (T = {reference[0]}, B = {reference[1]}), got "
                f"T = {num_steps}, B = {batch_size} (shape {tuple(spikes.shape)}, time_dim={time_dim})"
            )
        if isinstance(layer_fan_out, Tensor):
            if not layer_fan_out.is_floating_point():
                raise TypeError(f"fan_out[{index}] must be a floating-point tensor, got {layer_fan_out.dtype}")
            if layer_fan_out.device != spikes.device:
                raise ValueError(f"fan_out[{index}] is on {layer_fan_out.device} but {name} is on {spikes.device}")
            try:
                torch.broadcast_shapes(layer_fan_out.shape, neuron_shape)
            except RuntimeError:
                raise ValueError(
                    f"fan_out[{index}] must broadcast against one step of {name}, {neuron_shape}, got shape "
                    f"{tuple(layer_fan_out.shape)}"
                ) from None
            if torch.broadcast_shapes(layer_fan_out.shape, neuron_shape) != neuron_shape:
                raise ValueError(
                    f"fan_out[{index}] must broadcast to one step of {name}, {neuron_shape}, without enlarging it, "
                    f"got shape {tuple(layer_fan_out.shape)}"
                )
            statistics.append((f"fan_out[{index}]", layer_fan_out))
            weights: Tensor | float = layer_fan_out.to(decision_dtype(spikes.device))
        elif isinstance(layer_fan_out, (int, float)) and not isinstance(layer_fan_out, bool):
            weights = check.check_real(layer_fan_out, f"fan_out[{index}]", minimum=0.0)
        else:
            raise TypeError(f"fan_out[{index}] must be a number >= 0 or a tensor, got {type(layer_fan_out).__name__}")
        statistics.append((name, spikes))
        steps = time_first(spikes, layer_time_dim).to(decision_dtype(spikes.device))  # [T, B, *neurons]
        per_step = (steps * weights).flatten(2).sum(-1)  # [T, B]
        total = per_step if total is None else total + per_step
    assert total is not None and reference is not None
    if until is not None:
        if not check.is_index_tensor(until):
            kind = f"a tensor of dtype {until.dtype}" if isinstance(until, Tensor) else type(until).__name__
            raise TypeError(f"until must be an integer tensor [B] of last steps, got {kind}")
        if until.shape != (reference[1],):
            raise ValueError(f"until must be [B] = [{reference[1]}], got shape {tuple(until.shape)}")
        if until.device != first.device:
            raise ValueError(f"until is on {until.device} but layer_spikes is on {first.device}")
        statistics.append(("until", until.long()))  # aminmax has no kernel for uint16/uint32
        steps_index = torch.arange(reference[0], device=total.device).unsqueeze(-1)
        total = torch.where(steps_index <= until.long().unsqueeze(0), total, 0)
    if check.values_checkable(*(tensor for _, tensor in statistics)):
        _check_operation_values(statistics, reference[0])
    return total.sum(0)


def _check_operation_values(statistics: list[tuple[str, Tensor]], num_steps: int) -> None:
    with torch.no_grad():
        extremes = check._read([value for _, tensor in statistics for value in torch.aminmax(tensor.detach())])
    for position, (what, _) in enumerate(statistics):
        low, high = extremes[2 * position], extremes[2 * position + 1]
        if what == "until":
            if low < 0 or high > num_steps - 1:
                raise ValueError(f"until must hold steps in [0, {num_steps - 1}], got values in [{low}, {high}]")
            continue
        kind = "spikes" if what.startswith("layer") else "synapses per neuron"
        check.require_finite_non_negative(what, low, high, kind=kind)


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
    counts, _ = _validated_counts(spikes, num_classes, time_dim, decision=False)
    return counts


@torch.no_grad()
def predict(spikes: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """Class with the most spikes; ``-1`` where the maximum is tied (all-silent output included).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - output: ``(B)`` int64
    """
    counts, _ = _validated_counts(spikes, num_classes, time_dim)
    return _argmax_or_no_decision(counts)


@torch.no_grad()
def accuracy(spikes: Tensor, target: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """Fraction of samples whose :func:`predict` equals the target (a tie counts as wrong).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` integer class indices
        - output: scalar float32
    """
    correct = _correct_count(spikes, target, num_classes, time_dim)
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
    return _correct_over_time(spikes, target, num_classes, time_dim).to(torch.float32) / target.shape[0]


@torch.no_grad()
def time_to_decision(spikes: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """First step from which the running prediction equals the final prediction at every later step.

    The running prediction at step t is :func:`predict` on the counts of steps ``0..t``. A sample whose final
    prediction is a tie (no decision) gets ``-1``; otherwise the value lies in ``[0, T-1]``.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - output: ``(B)`` int64
    """
    return _decision_steps(spikes, num_classes, time_dim)


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
    return _operations_per_sample(layer_spikes, fan_out, until, time_dim)
