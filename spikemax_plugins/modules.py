"""``nn.Module`` twins of :mod:`spikemax_plugins.functional`: they validate their options once, when built, keep
``weight`` as a buffer, and call the same implementation as the functions."""

from __future__ import annotations

from torch import Tensor, nn

from . import _validation as check
from . import functional as F
from . import penalties
from ._options import mse_count_options, spikemax_options

__all__ = ["SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss", "ActivityPenalty"]


class _WeightedLoss(nn.Module):
    """Keeps ``weight`` as a buffer (so ``.to(device)`` moves it); ``options`` are validated by the subclass."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", check.check_weight_option(weight))

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in vars(self.options).items())


class SpikeMaxGLoss(_WeightedLoss):
    """Global SpikeMax loss, see :func:`spikemax_plugins.functional.spikemax_g` (same options).

    Options are checked when the module is built; a bad option raises here, not at the first batch.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` class indices or ``(B, C)`` probabilities
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """

    def __init__(
        self,
        *,
        mode: str = "probability",
        temperature: float = 1.0,
        smoothing: float = 1.0,
        weight: Tensor | None = None,
        reduction: str = "mean",
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        time_dim: int = 0,
    ) -> None:
        super().__init__(weight)
        self.options = spikemax_options(
            mode=mode, temperature=temperature, smoothing=smoothing, reduction=reduction, num_classes=num_classes,
            label_smoothing=label_smoothing, time_dim=time_dim,
        )
        _check_weight_classes(self.weight, num_classes)

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F._spikemax_loss(spikes, target, self.weight, self.options)


class SpikeMaxSLoss(_WeightedLoss):
    """Sliding-window SpikeMax loss, see :func:`spikemax_plugins.functional.spikemax_s` (same options).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` class indices or ``(B, C)`` probabilities
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """

    def __init__(
        self,
        *,
        window: int,
        stride: int = 1,
        mode: str = "probability",
        temperature: float = 1.0,
        smoothing: float = 1.0,
        weight: Tensor | None = None,
        reduction: str = "mean",
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        time_dim: int = 0,
    ) -> None:
        super().__init__(weight)
        if window is None:
            raise TypeError("window must be an int >= 1, got None (use SpikeMaxGLoss for the whole window)")
        self.options = spikemax_options(
            mode=mode, temperature=temperature, smoothing=smoothing, reduction=reduction, num_classes=num_classes,
            label_smoothing=label_smoothing, window=window, stride=stride, time_dim=time_dim,
        )
        _check_weight_classes(self.weight, num_classes)

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F._spikemax_loss(spikes, target, self.weight, self.options)


class MSECountLoss(_WeightedLoss):
    """Spike-count MSE baseline, see :func:`spikemax_plugins.functional.mse_count` (same options).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` class indices or ``(B, C)`` probabilities
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """

    def __init__(
        self,
        *,
        true_rate: float,
        false_rate: float,
        weight: Tensor | None = None,
        num_classes: int | None = None,
        reduction: str = "mean",
        time_dim: int = 0,
    ) -> None:
        super().__init__(weight)
        self.options = mse_count_options(
            true_rate=true_rate, false_rate=false_rate, reduction=reduction, num_classes=num_classes, time_dim=time_dim
        )
        _check_weight_classes(self.weight, num_classes)

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F._mse_count_loss(spikes, target, self.weight, self.options)


def _check_weight_classes(weight: Tensor | None, num_classes: int | None) -> None:
    if weight is not None and num_classes is not None and weight.shape[0] != num_classes:
        raise ValueError(f"weight must be [C] = [num_classes] = [{num_classes}], got shape {tuple(weight.shape)}")


class ActivityPenalty(nn.Module):
    """Activity penalty of one layer, see :func:`spikemax_plugins.functional.activity_penalty` (same options).

    Options are checked when the module is built; a bad option raises here, not at the first batch.

    Shape:
        - spikes: ``(T, B, *neurons)``, or another layout with ``time_dim``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """

    def __init__(
        self, *, target_rate: float = 0.0, power: int = 1, reduction: str = "mean", time_dim: int = 0
    ) -> None:
        super().__init__()
        self.options = penalties._activity_penalty_options(target_rate, power, reduction, time_dim)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in vars(self.options).items())

    def forward(self, spikes: Tensor) -> Tensor:
        return penalties._activity_penalty(spikes, self.options)
