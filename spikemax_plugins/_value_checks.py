"""The value checks and their switch: finite, non-negative counts; targets in range; soft rows summing to one;
weights finite and non-negative.

Each reads the extremes of small tensors: directly on the CPU, in one host synchronisation on an accelerator.
:func:`values_checkable` says whether they run at all (the switch, ``torch.compile``, ``torch.func``, meta and
fake tensors).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["set_value_checks", "value_checks", "value_checks_enabled"]

# Soft-target rows must sum to one within max(this, 2 * eps of the target's dtype): float32 one-hot mixtures
# drift by ~1e-7, and a bfloat16 row that sums to 0.9978 exactly is a legitimate distribution rounded to 8 bits.
SOFT_TARGET_MIN_ATOL = 1e-4

_value_checks_enabled = True


# --------------------------------------------------------------------------------------- the value-check switch


def set_value_checks(enabled: bool) -> None:
    """Turn the value checks of every loss, metric and early-exit function on (the default) or off.

    Like :meth:`torch.distributions.Distribution.set_default_validate_args`. With the checks off, a call does
    no host synchronisation (the point on a GPU: the CPU keeps queueing work), while shape, dtype, device and
    option checks still raise; NaN, negative or out-of-range values then give undefined results instead of an
    error. See also the context manager :class:`value_checks`.
    """
    global _value_checks_enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    _value_checks_enabled = enabled


def value_checks_enabled() -> bool:
    """Whether value checks are on (see :func:`set_value_checks`)."""
    return _value_checks_enabled


class value_checks(contextlib.ContextDecorator):  # noqa: N801  (used like torch.no_grad)
    """Context manager (or decorator) that sets the value checks for a block and restores them afterwards.

    ``with spikemax_plugins.value_checks(False): loss = spikemax_g(spikes, target)``
    """

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
        self.enabled = enabled
        self._previous: list[bool] = []

    def __enter__(self) -> value_checks:
        self._previous.append(_value_checks_enabled)
        set_value_checks(self.enabled)
        return self

    def __exit__(self, *exc_info: object) -> None:
        set_value_checks(self._previous.pop())


_is_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_FakeTensor = torch._subclasses.FakeTensor


def values_checkable(*tensors: Tensor | None) -> bool:
    """Whether the value checks run for these tensors: the switch is on, nothing traces, every value exists.

    Values do not exist for meta tensors, fake tensors (tracing) and functorch-wrapped tensors (``vmap``,
    ``grad``). This runs on every call, so it is written for speed.
    """
    if not _value_checks_enabled or torch.compiler.is_compiling():
        return False
    for tensor in tensors:
        if tensor is not None and (tensor.is_meta or _is_functorch_wrapped(tensor) or isinstance(tensor, _FakeTensor)):
            return False
    return True


# -------------------------------------------------------------------------------------------------- values


def _read(statistics: Sequence[Tensor]) -> list[float]:
    """Scalar tensors to Python numbers: directly on the CPU, in one synchronisation elsewhere."""
    if statistics[0].is_cpu:
        return [statistic.item() for statistic in statistics]
    # Class indices are exact in float64 below 2**53; error messages re-read exact integers (_exact_range).
    wide = torch.float32 if statistics[0].device.type == "mps" else torch.float64
    return torch.stack([statistic.to(wide) for statistic in statistics]).tolist()


def _exact_range(target: Tensor) -> tuple[int, int]:
    """The smallest and largest class index, exactly (only on the error path: one more synchronisation)."""
    low, high = torch.aminmax(target.detach())
    return int(low.item()), int(high.item())


def require_finite_non_negative(what: str, low: float, high: float, kind: str = "") -> None:
    """Raise unless the extremes ``low``, ``high`` of ``what`` (read back from the device) are finite and
    ``low >= 0``; ``kind`` names what the values are, in the message."""
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0:
        kind = f" ({kind})" if kind else ""
        raise ValueError(f"{what} must be finite and >= 0{kind}, got values in [{low:.6g}, {high:.6g}]")


def check_finite_non_negative(tensor: Tensor, what: str, kind: str = "") -> None:
    """:func:`require_finite_non_negative` on the extremes of ``tensor``, read in one synchronisation."""
    require_finite_non_negative(what, *_read([*torch.aminmax(tensor.detach())]), kind=kind)


def soft_target_tolerance(dtype: torch.dtype) -> float:
    return max(SOFT_TARGET_MIN_ATOL, 2 * torch.finfo(dtype).eps)


def check_values(
    counts: Tensor,
    target: Tensor | None = None,
    num_classes: int = 0,
    weight: Tensor | None = None,
    *,
    mean_denominator: Tensor | None = None,
    what: str = "spikes",
    quantity: str = "spike count",
    overflow_counts: Tensor | None = None,
) -> None:
    """Value checks on small tensors, read in one host synchronisation.

    The losses depend on the spikes only through ``counts`` (total or window counts, which they computed anyway):
    a NaN or inf spike makes a count non-finite, and a negative spike shows as a negative count unless other
    spikes of the same class and window outweigh it. The metrics pass the spikes themselves (``quantity``
    "spike"), so that no negative spike goes unseen. ``target`` is checked for
    range (class indices) or for finite non-negative rows summing to one (probabilities). ``weight`` must be
    finite and non-negative; ``mean_denominator`` (the weighted mean's sum of sample weights) must be > 0;
    ``overflow_counts``, when ``counts`` holds the spikes themselves, must be finite (no sum overflowed).
    """
    # detach(): the statistics must not record autograd nodes (cheaper than a no_grad block on this hot path).
    statistics = [*torch.aminmax(counts.detach())]
    soft = target is not None and target.is_floating_point()
    if target is not None:
        statistics += torch.aminmax(target.detach())
        if soft:
            # Summed in float32 at least: a bfloat16 sum of a valid row can drift by several eps.
            sum_dtype = torch.float64 if target.dtype == torch.float64 else torch.float32
            statistics += torch.aminmax(target.detach().sum(-1, dtype=sum_dtype))
    if weight is not None:
        statistics += torch.aminmax(weight.detach())
    if mean_denominator is not None:
        statistics.append(mean_denominator.detach())
    if overflow_counts is not None:
        statistics.append(overflow_counts.detach().amax())
    values = _read(statistics)
    count_min, count_max = values[0], values[1]
    if not (math.isfinite(count_min) and math.isfinite(count_max)):
        cause = " (a NaN or inf spike, or finite spikes whose count overflows)" if quantity == "spike count" else ""
        raise ValueError(
            f"{what} must be finite, got NaN or inf {quantity}s in [{count_min:.6g}, {count_max:.6g}]{cause}"
        )
    if count_min < 0:
        raise ValueError(f"{what} must be >= 0 ({quantity}s), got a {quantity} of {count_min:.6g}")
    position = 2
    if target is not None:
        if soft:
            target_min, target_max, sum_min, sum_max = values[2:6]
            position = 6
            require_finite_non_negative("soft target probabilities", target_min, target_max)
            tolerance = soft_target_tolerance(target.dtype)
            if abs(sum_min - 1) > tolerance or abs(sum_max - 1) > tolerance:
                raise ValueError(
                    f"soft target rows must sum to 1 (within {tolerance:.3g} for {target.dtype}), got row sums in "
                    f"[{sum_min:.6g}, {sum_max:.6g}]"
                )
        else:
            position = 4
            if values[2] < 0 or values[3] >= num_classes:
                target_min, target_max = _exact_range(target)
                raise ValueError(
                    f"target class indices must be in [0, {num_classes - 1}], got values in [{target_min}, "
                    f"{target_max}]"
                )
    if weight is not None:
        require_finite_non_negative("weight", values[position], values[position + 1])
        position += 2
    if mean_denominator is not None:
        if not values[position] > 0:
            raise ValueError(
                "weight gives every sample of the batch weight 0 (sum of the sample weights is "
                f"{values[position]:.6g}): the weighted mean is 0 / 0; use reduction='sum' or 'none'"
            )
        position += 1
    if overflow_counts is not None and not math.isfinite(values[position]):
        raise ValueError(
            f"{what} must have finite spike counts, got a count of {values[position]:.6g} (finite spikes whose sum "
            f"overflows {overflow_counts.dtype})"
        )
