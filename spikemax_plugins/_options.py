"""The options of the losses: validated once, kept as small frozen dataclasses, cached per distinct set.

:func:`spikemax_options` and :func:`mse_count_options` (keyword-only) are what the functions of
:mod:`spikemax_plugins.functional` call on every call, and its modules once, when they are built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from . import _validation as check

_Options = TypeVar("_Options")


@dataclass(frozen=True)
class SpikeMaxOptions:
    """Validated options of both SpikeMax losses; ``window=None`` is the whole recording (spikemax_g)."""

    mode: str
    temperature: float
    smoothing: float
    reduction: str
    num_classes: int | None
    label_smoothing: float
    window: int | None
    stride: int
    time_dim: int


@dataclass(frozen=True)
class MSECountOptions:
    true_rate: float
    false_rate: float
    reduction: str
    num_classes: int | None
    time_dim: int


def _validate_spikemax_options(
    mode: object,
    temperature: object,
    smoothing: object,
    reduction: object,
    num_classes: object,
    label_smoothing: object,
    window: object,
    stride: object,
    time_dim: object,
) -> SpikeMaxOptions:
    check.check_choice(mode, "mode", check.MODES)
    check.check_choice(reduction, "reduction", check.REDUCTIONS)
    if window is not None:
        check.check_int(window, "window", minimum=1)
    return SpikeMaxOptions(
        mode=mode,  # type: ignore[arg-type]
        temperature=check.check_temperature(temperature),
        smoothing=check.check_smoothing(smoothing),
        reduction=reduction,  # type: ignore[arg-type]
        num_classes=check.check_num_classes(num_classes),
        label_smoothing=check.check_real(label_smoothing, "label_smoothing", minimum=0.0, maximum=1.0),
        window=window,  # type: ignore[arg-type]
        stride=check.check_int(stride, "stride", minimum=1),
        time_dim=check.check_time_dim(time_dim),
    )


def _validate_mse_count_options(
    true_rate: object, false_rate: object, reduction: object, num_classes: object, time_dim: object
) -> MSECountOptions:
    return MSECountOptions(
        true_rate=check.check_rate(true_rate, "true_rate"),
        false_rate=check.check_rate(false_rate, "false_rate"),
        reduction=check.check_choice(reduction, "reduction", check.REDUCTIONS),
        num_classes=check.check_num_classes(num_classes),
        time_dim=check.check_time_dim(time_dim),
    )


# typed: 1 and 1.0 (and True and 1) are validated separately.
_cached_spikemax_options = functools.lru_cache(maxsize=256, typed=True)(_validate_spikemax_options)
_cached_mse_count_options = functools.lru_cache(maxsize=256, typed=True)(_validate_mse_count_options)


def _answered(validate: Callable[..., _Options], cached: Callable[..., _Options], values: tuple) -> _Options:
    """``validate(*values)``, answered from ``cached`` (a dictionary lookup) for options seen before."""
    if torch.compiler.is_compiling():  # dynamo does not trace into lru_cache; validating is cheap anyway
        return validate(*values)
    try:
        hash(values)
    except TypeError:
        return validate(*values)  # an unhashable option cannot be a cache key: validating it names it
    return cached(*values)


def spikemax_options(
    *,
    mode: object,
    temperature: object,
    smoothing: object,
    reduction: object,
    num_classes: object,
    label_smoothing: object,
    window: object = None,
    stride: object = 1,
    time_dim: object,
) -> SpikeMaxOptions:
    """The validated options of both SpikeMax losses (``window=None``: the whole recording), cached."""
    values = (mode, temperature, smoothing, reduction, num_classes, label_smoothing, window, stride, time_dim)
    return _answered(_validate_spikemax_options, _cached_spikemax_options, values)


def mse_count_options(
    *, true_rate: object, false_rate: object, reduction: object, num_classes: object, time_dim: object
) -> MSECountOptions:
    """The validated options of the count MSE, cached."""
    values = (true_rate, false_rate, reduction, num_classes, time_dim)
    return _answered(_validate_mse_count_options, _cached_mse_count_options, values)
