"""Argument checks shared by every loss and metric.

Shape, dtype and option checks are free (no device work). Value checks (counts finite and non-negative,
target in range, soft rows summing to one) read the extremes of the small count and target tensors back in
one host synchronisation and compare them on the host.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_REDUCTIONS = ("mean", "sum", "none")
_MODES = ("probability", "softmax")
# Soft-target rows must sum to one up to this tolerance (float32 one-hot mixtures easily drift by 1e-7).
_SOFT_TARGET_ATOL = 1e-4


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Counts of half-precision spikes are summed in float32: float16 cannot count past 2048 exactly."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_spikes(spikes: object, name: str = "spikes") -> Tensor:
    if not isinstance(spikes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [T, B, N], got {type(spikes).__name__}")
    if not spikes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (binary or graded spikes), got dtype {spikes.dtype}")
    if spikes.dim() != 3:
        raise ValueError(f"{name} must be [T, B, N] (time, batch, output neurons), got shape {tuple(spikes.shape)}")
    num_steps, batch_size, num_outputs = spikes.shape
    if num_steps == 0:
        raise ValueError(f"{name} must have at least one time step, got T = 0 (shape {tuple(spikes.shape)})")
    if batch_size == 0:
        raise ValueError(f"{name} must have a non-empty batch, got B = 0 (shape {tuple(spikes.shape)})")
    if num_outputs == 0:
        raise ValueError(f"{name} must have at least one output neuron, got N = 0")
    return spikes


def resolve_num_classes(num_outputs: int, num_classes: int | None) -> int:
    """Number of classes C for N output neurons; with population coding N = k * C."""
    if num_classes is None:
        if num_outputs < 2:
            raise ValueError(f"spikes must have at least 2 output neurons (classes), got N = {num_outputs}")
        return num_outputs
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int or None, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if num_outputs % num_classes != 0:
        raise ValueError(
            f"the number of output neurons N = {num_outputs} must be divisible by num_classes = "
            f"{num_classes} (population coding splits N into num_classes groups of N / num_classes)"
        )
    return num_classes


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value  # type: ignore[return-value]


def check_real(
    value: object, name: str, *, minimum: float, exclusive: bool = False, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    too_small = value <= minimum if exclusive else value < minimum
    too_large = maximum is not None and value > maximum
    if not math.isfinite(value) or too_small or too_large:
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        if maximum is not None:
            bound += f" and <= {maximum}"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def check_int(value: object, name: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_target(target: object, spikes: Tensor, num_classes: int, *, allow_soft: bool = True) -> Tensor:
    """Shape, dtype and device of ``target``: int class indices [B], or (if allowed) float probabilities [B, C]."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.device != spikes.device:
        raise ValueError(f"target is on {target.device} but spikes is on {spikes.device}; move both to one device")
    batch_size = spikes.shape[1]
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must be int64 class indices [B] or float probabilities [B, C], got {target.dtype}")
    if target.is_floating_point():
        if not allow_soft:
            raise TypeError(f"target must be integer class indices [B], got dtype {target.dtype}")
        if tuple(target.shape) != (batch_size, num_classes):
            raise ValueError(
                f"a float target holds class probabilities and must be [B, C] = [{batch_size}, {num_classes}], "
                f"got shape {tuple(target.shape)}"
            )
        return target
    if tuple(target.shape) != (batch_size,):
        raise ValueError(
            f"an integer target holds class indices and must be [B] = [{batch_size}], got shape {tuple(target.shape)}"
        )
    return target


def check_weight(weight: object, num_classes: int, spikes: Tensor) -> Tensor | None:
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a torch.Tensor [C] or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    if tuple(weight.shape) != (num_classes,):
        raise ValueError(f"weight must be [C] = [{num_classes}], got shape {tuple(weight.shape)}")
    if weight.device != spikes.device:
        raise ValueError(f"weight is on {weight.device} but spikes is on {spikes.device}; move both to one device")
    return weight


def check_values(counts: Tensor, target: Tensor | None, num_classes: int) -> None:
    """Value checks with one host synchronisation: counts finite and >= 0, target valid.

    Every check reads small tensors: the (window, running or total) ``counts`` the caller computed from the
    spikes anyway, and the target. A NaN or inf spike propagates into the counts; a negative spike shows as
    a negative count unless other spikes of the same class and window outweigh it, and the losses and metrics
    depend on the spikes only through those counts. The extremes are read back together and compared here.
    """
    with torch.no_grad():
        # Class indices are exact in float32 (< 2^24) and soft-target row sums need only _SOFT_TARGET_ATOL, so
        # every statistic travels in the counts' dtype, in one tensor, through one synchronisation.
        statistics = [*torch.aminmax(counts.detach())]
        if target is not None:
            statistics += [*torch.aminmax(target.detach())]
            if target.is_floating_point():
                statistics += [*torch.aminmax(target.detach().sum(-1))]
        values = torch.stack([statistic.to(counts.dtype) for statistic in statistics]).tolist()
    count_min, count_max = values[0], values[1]
    if not (math.isfinite(count_min) and math.isfinite(count_max)):
        raise ValueError(
            f"spikes must be finite, got NaN or inf values (spike counts in [{count_min:.6g}, {count_max:.6g}])"
        )
    if count_min < 0:
        raise ValueError(f"spikes must be >= 0 (spike counts), got a spike count of {count_min:.6g}")
    if target is None:
        return
    if target.is_floating_point():
        target_min, target_max, sum_min, sum_max = values[2:]
        if not (math.isfinite(target_min) and math.isfinite(target_max)) or target_min < 0:
            raise ValueError(
                f"soft target probabilities must be finite and >= 0, got values in [{target_min:.6g}, {target_max:.6g}]"
            )
        if abs(sum_min - 1) > _SOFT_TARGET_ATOL or abs(sum_max - 1) > _SOFT_TARGET_ATOL:
            raise ValueError(f"soft target rows must sum to 1, got row sums in [{sum_min:.6g}, {sum_max:.6g}]")
    else:
        target_min, target_max = int(values[2]), int(values[3])
        if target_min < 0 or target_max >= num_classes:
            raise ValueError(
                f"target class indices must be in [0, {num_classes - 1}], got values in [{target_min}, {target_max}]"
            )
