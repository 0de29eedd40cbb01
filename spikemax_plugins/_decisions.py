"""Decisions from spike counts, shared by the metric functions, the streaming metrics and early exit.

A prediction is the class with the most spikes; a tie for the maximum (all-silent output included) is no
decision, :data:`NO_DECISION` (``-1``). Counts that decide are in
:func:`~spikemax_plugins._counts.decision_dtype` (float64), so two different counts never tie by rounding.
Every helper here returns sums or per-sample values, never means: a streaming metric adds them over batches and
divides once, so any split of a data set gives the function's value on the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import _validation as check
from ._counts import accumulation_dtype, decision_dtype, running_counts, time_first, total_counts

NO_DECISION = -1


def validated_counts(
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


def argmax_or_no_decision(counts: Tensor) -> Tensor:
    """``[..., C]`` counts -> ``[...]`` class index of the unique maximum, or ``-1`` where the maximum is tied."""
    top_two = counts.topk(2, dim=-1)
    unique_maximum = top_two.values[..., 0] > top_two.values[..., 1]
    return torch.where(unique_maximum, top_two.indices[..., 0], NO_DECISION)


def correct_count(spikes: Tensor, target: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Number of samples whose prediction is right (int64 scalar)."""
    counts, target = validated_counts(spikes, num_classes, time_dim, target)
    return (argmax_or_no_decision(counts) == target).sum()


def correct_over_time(spikes: Tensor, target: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Number of samples whose running prediction is right at each step, int64 ``[T]``."""
    counts, target = validated_counts(spikes, num_classes, time_dim, target, running=True)
    return (argmax_or_no_decision(counts) == target).sum(-1)


def decision_steps(spikes: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    """Per sample, the first step from which the running prediction stays final; ``-1``: no final decision."""
    counts, _ = validated_counts(spikes, num_classes, time_dim, running=True)
    predictions = argmax_or_no_decision(counts)  # [T, B]
    final = predictions[-1]
    steps = torch.arange(predictions.shape[0], device=predictions.device).unsqueeze(-1)
    # The decision settles one step after the last step whose prediction differs from the final one.
    last_difference = torch.where(predictions != final, steps, -1).amax(0)
    return torch.where(final == NO_DECISION, NO_DECISION, last_difference + 1)


# -------------------------------------------------------------------------------------- synaptic operations

# A value check to run once every argument is known: (tensor whose extremes are read, what to require of them).
_ValueCheck = tuple[Tensor, Callable[[float, float], None]]


def operations_per_sample(
    layer_spikes: Sequence[Tensor],
    fan_out: Sequence[int | float | Tensor],
    until: Tensor | None = None,
    time_dim: int = 0,
) -> Tensor:
    """Checked synaptic operations per sample, float64 ``[B]``: ``sum_{l, t <= until, i} spikes * fan_out``."""
    _check_layer_sequences(layer_spikes, fan_out)
    value_checks: list[_ValueCheck] = []
    per_step: Tensor | None = None  # [T, B]
    for index, (spikes, layer_fan_out) in enumerate(zip(layer_spikes, fan_out, strict=True)):
        steps = _checked_layer(index, spikes, layer_spikes[0], time_dim)
        weights = _checked_fan_out(index, layer_fan_out, spikes, steps.shape[2:], value_checks)
        value_checks.append((spikes, _non_negative(f"layer_spikes[{index}]", "spikes")))
        layer_operations = (steps.to(decision_dtype(spikes.device)) * weights).flatten(2).sum(-1)
        per_step = layer_operations if per_step is None else per_step + layer_operations
    assert per_step is not None
    if until is not None:
        until = _checked_until(until, per_step.shape, layer_spikes[0].device, value_checks)
        steps_index = torch.arange(per_step.shape[0], device=per_step.device).unsqueeze(-1)
        per_step = torch.where(steps_index <= until.unsqueeze(0), per_step, 0)
    if check.values_checkable(*(tensor for tensor, _ in value_checks)):
        with torch.no_grad():
            extremes = check._read([value for tensor, _ in value_checks for value in torch.aminmax(tensor.detach())])
        for position, (_, require) in enumerate(value_checks):
            require(extremes[2 * position], extremes[2 * position + 1])
    return per_step.sum(0)


def _check_layer_sequences(layer_spikes: object, fan_out: object) -> None:
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


def _checked_layer(index: int, spikes: object, first: object, time_dim: int) -> Tensor:
    """Layer ``index``'s spikes as a ``[T, B, *neurons]`` view, with T and B those of layer 0."""
    name = f"layer_spikes[{index}]"
    if not isinstance(spikes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(spikes).__name__}")
    if not spikes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (binary or graded spikes), got {spikes.dtype}")
    if spikes.dim() < 3:
        raise ValueError(
            f"{name} must have a time, a batch and at least one neuron dimension, got shape {tuple(spikes.shape)}"
        )
    assert isinstance(first, Tensor)
    if spikes.device != first.device:
        raise ValueError(f"{name} is on {spikes.device} but layer_spikes[0] is on {first.device}")
    steps = time_first(spikes, check.check_time_dim(time_dim, spikes.dim()))
    reference = time_first(first, check.check_time_dim(time_dim, first.dim())).shape[:2]
    if steps.shape[:2] != reference:
        raise ValueError(
            f"{name} must share T and B with layer_spikes[0] (T = {reference[0]}, B = {reference[1]}), got "
            f"T = {steps.shape[0]}, B = {steps.shape[1]} (shape {tuple(spikes.shape)}, time_dim={time_dim})"
        )
    return steps


def _checked_fan_out(
    index: int, fan_out: object, spikes: Tensor, neuron_shape: torch.Size, value_checks: list[_ValueCheck]
) -> Tensor | float:
    name = f"fan_out[{index}]"
    if isinstance(fan_out, (int, float)) and not isinstance(fan_out, bool):
        return check.check_real(fan_out, name, minimum=0.0)
    if not isinstance(fan_out, Tensor):
        raise TypeError(f"{name} must be a number >= 0 or a tensor, got {type(fan_out).__name__}")
    if not fan_out.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {fan_out.dtype}")
    if fan_out.device != spikes.device:
        raise ValueError(f"{name} is on {fan_out.device} but layer_spikes[{index}] is on {spikes.device}")
    neurons = tuple(neuron_shape)
    try:
        broadcast = torch.broadcast_shapes(fan_out.shape, neuron_shape)
    except RuntimeError:
        raise ValueError(
            f"{name} must broadcast against one step of layer_spikes[{index}], {neurons}, got shape "
            f"{tuple(fan_out.shape)}"
        ) from None
    if broadcast != neuron_shape:
        raise ValueError(
            f"{name} must broadcast to one step of layer_spikes[{index}], {neurons}, without enlarging it, got "
            f"shape {tuple(fan_out.shape)}"
        )
    value_checks.append((fan_out, _non_negative(name, "synapses per neuron")))
    return fan_out.to(decision_dtype(spikes.device))


def _checked_until(until: object, per_step_shape: torch.Size, device: torch.device, value_checks: list) -> Tensor:
    num_steps, batch_size = per_step_shape
    # int64: aminmax has no kernel for uint16/uint32.
    until = check.check_index_vector(until, "until", "[B] of last steps", batch_size, device, "layer_spikes is")

    def require_steps(low: float, high: float) -> None:
        if low < 0 or high > num_steps - 1:
            raise ValueError(f"until must hold steps in [0, {num_steps - 1}], got values in [{low}, {high}]")

    value_checks.append((until, require_steps))
    return until


def _non_negative(what: str, kind: str) -> Callable[[float, float], None]:
    return lambda low, high: check.require_finite_non_negative(what, low, high, kind=kind)


# ------------------------------------------------------------------------------------------- exit reports


def checked_exit_target(target: object, batch_size: int, num_classes: int, device: torch.device) -> Tensor:
    """The class indices ``[B]`` an early-exit report is scored against, as int64."""
    target = check.check_index_vector(target, "target", "of class indices [B]", batch_size, device, "the spikes are")
    if check.values_checkable(target):
        low, high = check._read([*torch.aminmax(target)])
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"target class indices must be in [0, {num_classes - 1}], got values in [{int(low)}, {int(high)}]"
            )
    return target


def exit_report_sums(
    exit_step: Tensor, prediction: Tensor, prediction_set: Tensor, target: Tensor | None, num_steps: int
) -> dict[str, Tensor]:
    """Sums over the batch of an early-exit decision (shared by ``ExitReport`` and ``EarlyExitMetric``)."""
    sums = {
        "exit_step_sum": exit_step.sum(),
        "exit_fraction_sum": ((exit_step + 1).to(torch.float64) / num_steps).sum(),
        "set_size_sum": prediction_set.sum(),
    }
    if target is not None:
        sums["correct"] = (prediction == target).sum()
        sums["covered"] = prediction_set.gather(1, target.unsqueeze(1)).sum()
    return sums
