"""Argument checks shared by every loss, metric, module and early-exit function.

Three kinds of checks, with different costs:

* **Option checks** (mode, temperature, window, ...) are pure Python. Functions cache their validated options
  (:func:`functools.lru_cache`); modules validate once, when they are built.
* **Shape, dtype and device checks** read tensor metadata only: no device work, no synchronisation.
* **Value checks** (spike counts finite and non-negative, targets in range, soft rows summing to one, weights
  finite and non-negative) read the extremes of the small count, target and weight tensors. On the CPU the
  extremes are read directly; on an accelerator they travel together in one host synchronisation. They are
  skipped while ``torch.compile`` traces, under ``torch.func`` transforms, for meta and fake tensors (whose
  values do not exist), and everywhere after ``set_value_checks(False)``. They and the switch live in
  :mod:`._value_checks`; the names the callers reach as ``_validation.<name>`` are imported here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._value_checks import (  # noqa: F401  (reached as _validation.<name> by the callers)
    _read,
    check_finite_non_negative,
    check_values,
    require_finite_non_negative,
    values_checkable,
)

REDUCTIONS = ("mean", "sum", "none")
MODES = ("probability", "softmax")
# Bounds that keep every logit, loss and gradient finite in float32 (see docs/errors.md, "Options"):
# |log(c + s)| <= 70 for s in [1e-30, 1e30], and 1 / (temperature * s) <= 1e34 < float32's 3.4e38.
TEMPERATURE_RANGE = (1e-4, 1e4)
SMOOTHING_RANGE = (1e-30, 1e30)
# Target counts rate * T * k must square to a finite float32 for any realistic T * k (<= 1e13).
RATE_MAXIMUM = 1e6

# ------------------------------------------------------------------------------------------------- options


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_real(
    value: object,
    name: str,
    *,
    minimum: float,
    maximum: float | None = None,
    exclusive: bool = False,
    why: str = "",
) -> float:
    """A finite real number in [minimum, maximum] (or (minimum, ...] with ``exclusive``); ``why`` explains bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    number = float(value)
    too_small = number <= minimum if exclusive else number < minimum
    too_large = maximum is not None and number > maximum
    if not math.isfinite(number) or too_small or too_large:
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        if maximum is not None:
            bound += f" and <= {maximum:g}"
        raise ValueError(f"{name} must be finite and {bound}{why}, got {value!r}")
    return number


def check_int(value: object, name: str, *, minimum: int, maximum: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{name} must be {bound}{why}, got {value}")
    return value


def check_temperature(value: object) -> float:
    low, high = TEMPERATURE_RANGE
    return check_real(
        value, "temperature", minimum=low, maximum=high, why=" (count logits / temperature must stay finite in float32)"
    )


def check_smoothing(value: object, name: str = "smoothing") -> float:
    """0, or a number in :data:`SMOOTHING_RANGE` (log(c + smoothing) and its gradient stay finite in float32)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    low, high = SMOOTHING_RANGE
    return check_real(
        value, name, minimum=low, maximum=high, why=f" or exactly 0 (log(count + {name}) must stay finite in float32)"
    )


def check_rate(value: object, name: str) -> float:
    return check_real(
        value, name, minimum=0.0, maximum=RATE_MAXIMUM, why=" (squared target counts must stay finite in float32)"
    )


def check_num_classes(num_classes: object) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int or None, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return num_classes


def check_time_dim(time_dim: object, ndim: int = 3) -> int:
    """``time_dim`` in ``[-ndim, ndim)``, returned non-negative."""
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        raise TypeError(f"time_dim must be an int, got {type(time_dim).__name__}")
    if not -ndim <= time_dim < ndim:
        raise ValueError(f"time_dim must be in [-{ndim}, {ndim - 1}] for {ndim}-D spikes, got {time_dim}")
    return time_dim % ndim


def spike_layout(time_dim: int) -> str:
    """``"[T, B, N]"`` with T at ``time_dim`` (0, 1 or 2) and batch, then neurons, in the other places."""
    names = ["B", "N"]
    names.insert(time_dim, "T")
    return "[" + ", ".join(names) + "]"


# ------------------------------------------------------------------------------------------ shapes and dtypes


def check_spikes(spikes: object, time_dim: int, name: str = "spikes") -> tuple[int, int, int]:
    """Type, dtype and shape of a spike tensor; returns ``(T, B, N)``. ``time_dim`` is already normalised."""
    if not isinstance(spikes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {spike_layout(time_dim)}, got {type(spikes).__name__}")
    if not spikes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (binary or graded spikes), got dtype {spikes.dtype}")
    shape = spikes.shape
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be 3-D {spike_layout(time_dim)} (time at time_dim={time_dim}, then batch and output "
            f"neurons), got shape {tuple(shape)}"
        )
    num_steps = shape[time_dim]
    batch_size, num_outputs = (shape[1], shape[2]) if time_dim == 0 else (shape[0], shape[2 if time_dim == 1 else 1])
    if num_steps == 0:
        raise ValueError(f"{name} must have at least one time step, got T = 0 (shape {tuple(shape)})")
    if batch_size == 0:
        raise ValueError(f"{name} must have a non-empty batch, got B = 0 (shape {tuple(shape)})")
    if num_outputs == 0:
        raise ValueError(f"{name} must have at least one output neuron, got N = 0 (shape {tuple(shape)})")
    return num_steps, batch_size, num_outputs


def check_layer_spikes(spikes: object, time_dim: int, name: str = "spikes") -> tuple[int, int, int, int]:
    """Type, dtype and shape of the spikes of any layer: time at ``time_dim``, then batch, then one or more neuron
    dimensions. Returns ``(time_dim, T, B, N)`` with ``time_dim`` normalised and N the number of neurons."""
    if not isinstance(spikes, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor [T, B, *neurons] (time at time_dim), got {type(spikes).__name__}"
        )
    if not spikes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (binary or graded spikes), got dtype {spikes.dtype}")
    shape = spikes.shape
    if len(shape) < 3:
        raise ValueError(
            f"{name} must have a time, a batch and at least one neuron dimension ([T, B, *neurons] with time at "
            f"time_dim), got shape {tuple(shape)}"
        )
    time_dim = check_time_dim(time_dim, len(shape))
    others = [size for dim, size in enumerate(shape) if dim != time_dim]
    num_steps, batch_size, num_neurons = shape[time_dim], others[0], math.prod(others[1:])
    if num_steps == 0:
        raise ValueError(f"{name} must have at least one time step, got T = 0 (shape {tuple(shape)})")
    if batch_size == 0:
        raise ValueError(f"{name} must have a non-empty batch, got B = 0 (shape {tuple(shape)})")
    if num_neurons == 0:
        raise ValueError(f"{name} must have at least one neuron, got none (shape {tuple(shape)})")
    return time_dim, num_steps, batch_size, num_neurons


def resolve_num_classes(num_outputs: int, num_classes: int | None) -> int:
    """Number of classes C for N output neurons; with population coding N = k * C. ``num_classes`` is checked."""
    if num_classes is None:
        if num_outputs < 2:
            raise ValueError(f"spikes must have at least 2 output neurons (classes), got N = {num_outputs}")
        return num_outputs
    if num_outputs % num_classes != 0:
        raise ValueError(
            f"the number of output neurons N = {num_outputs} must be divisible by num_classes = "
            f"{num_classes} (population coding splits N into num_classes groups of N / num_classes)"
        )
    return num_classes


_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32)


def is_index_tensor(value: object) -> bool:
    """An integer tensor usable as indices or steps (not bool, not uint64)."""
    return isinstance(value, Tensor) and value.dtype in _INDEX_DTYPES


def require_index_tensor(value: object, name: str, description: str) -> Tensor:
    """``value`` if it is an index tensor (:func:`is_index_tensor`); else a TypeError naming ``name``."""
    if not is_index_tensor(value):
        kind = f"a tensor of dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(f"{name} must be an integer tensor {description}, got {kind}")
    return value


def check_index_vector(
    value: object, name: str, description: str, length: int, device: torch.device, on_device: str
) -> Tensor:
    """An index tensor ``[length]`` on ``device`` (``on_device`` says what is there: "the spikes are"), as int64."""
    value = require_index_tensor(value, name, description)
    if value.shape != (length,):
        raise ValueError(f"{name} must be [B] = [{length}], got shape {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but {on_device} on {device}")
    return value.long()


def _layout_hint(target_length: int, spikes: Tensor, time_dim: int) -> str:
    """When a target's length matches another dimension of the spikes, say which time_dim that layout needs."""
    hints = []
    for dim, size in enumerate(spikes.shape):
        if size != target_length:
            continue
        # The batch is the first non-time dimension: the layouts (other than the current one) that make `dim` it.
        candidates = [
            t for t in range(3) if t not in (dim, time_dim) and [d for d in range(3) if d != t][0] == dim
        ]
        if not candidates:
            continue
        layouts = " or ".join(f"{spike_layout(t)} (time_dim={t})" for t in candidates)
        hints.append(f"dimension {dim} has the target's length {size}: if the spikes are {layouts}, pass that time_dim")
    if not hints:
        return ""
    return "; " + "; ".join(hints)


def check_target(
    target: object, spikes: Tensor, batch_size: int, num_classes: int, time_dim: int, *, allow_soft: bool = True
) -> Tensor:
    """Class indices ``[B]`` (any int dtype but uint64, returned as int64) or float probabilities ``[B, C]``."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.device != spikes.device:
        raise ValueError(f"target is on {target.device} but spikes is on {spikes.device}; move both to one device")
    dtype = target.dtype
    if dtype.is_floating_point:
        if not allow_soft:
            raise TypeError(f"target must be integer class indices [B], got dtype {dtype}")
        if target.dim() != 2 or target.shape[0] != batch_size or target.shape[1] != num_classes:
            raise ValueError(
                f"a float target holds class probabilities and must be [B, C] = [{batch_size}, {num_classes}], "
                f"got shape {tuple(target.shape)}"
                + (_layout_hint(target.shape[0], spikes, time_dim) if target.dim() == 2 else "")
            )
        return target
    if dtype not in _INDEX_DTYPES:
        if dtype == torch.uint64:
            raise TypeError(
                "target must hold class indices in a signed or 8/16/32-bit unsigned integer dtype, got "
                "torch.uint64 (values above 2**63 - 1 have no int64 equivalent); pass target.long()"
            )
        expected = "integer class indices [B]" + (" or float probabilities [B, C]" if allow_soft else "")
        raise TypeError(f"target must be {expected}, got {dtype}")
    if target.dim() != 1 or target.shape[0] != batch_size:
        raise ValueError(
            f"an integer target holds class indices and must be [B] = [{batch_size}], got shape "
            f"{tuple(target.shape)}" + (_layout_hint(target.shape[0], spikes, time_dim) if target.dim() == 1 else "")
        )
    return target if dtype == torch.int64 else target.long()


def _check_weight_type(weight: object) -> Tensor:
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a torch.Tensor [C] or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor [C], got dtype {weight.dtype}")
    return weight


def check_weight(weight: object, num_classes: int, spikes: Tensor) -> Tensor | None:
    if weight is None:
        return None
    weight = _check_weight_type(weight)
    if weight.dim() != 1 or weight.shape[0] != num_classes:
        raise ValueError(f"weight must be [C] = [{num_classes}], got shape {tuple(weight.shape)}")
    if weight.device != spikes.device:
        raise ValueError(f"weight is on {weight.device} but spikes is on {spikes.device}; move both to one device")
    return weight


def check_weight_option(weight: object) -> Tensor | None:
    """A module's ``weight`` when the module is built: a finite, non-negative float tensor ``[C]`` (or None)."""
    if weight is None:
        return None
    weight = _check_weight_type(weight)
    if weight.dim() != 1 or weight.shape[0] < 2:
        raise ValueError(f"weight must be [C] with C >= 2 classes, got shape {tuple(weight.shape)}")
    if values_checkable(weight):
        check_finite_non_negative(weight, "weight")
    return weight
