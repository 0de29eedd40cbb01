"""``nn.Module`` twins of :mod:`spikemax_plugins.functional`: they store options and call the function."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from . import functional as F

__all__ = ["SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss"]


class _WeightedLoss(nn.Module):
    """Keeps ``weight`` as a buffer (so ``.to(device)`` moves it) and the other options as attributes."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | None, **options: Any) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.options = options

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.options.items())


class SpikeMaxGLoss(_WeightedLoss):
    """Global SpikeMax loss, see :func:`spikemax_plugins.functional.spikemax_g`.

    Shape:
        - spikes: ``(T, B, N)``
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
    ) -> None:
        super().__init__(
            weight,
            mode=mode,
            temperature=temperature,
            smoothing=smoothing,
            reduction=reduction,
            num_classes=num_classes,
            label_smoothing=label_smoothing,
        )

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F.spikemax_g(spikes, target, weight=self.weight, **self.options)


class SpikeMaxSLoss(_WeightedLoss):
    """Sliding-window SpikeMax loss, see :func:`spikemax_plugins.functional.spikemax_s`.

    Shape:
        - spikes: ``(T, B, N)``
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
    ) -> None:
        super().__init__(
            weight,
            window=window,
            stride=stride,
            mode=mode,
            temperature=temperature,
            smoothing=smoothing,
            reduction=reduction,
            num_classes=num_classes,
            label_smoothing=label_smoothing,
        )

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F.spikemax_s(spikes, target, weight=self.weight, **self.options)


class MSECountLoss(_WeightedLoss):
    """Spike-count MSE baseline, see :func:`spikemax_plugins.functional.mse_count`.

    Shape:
        - spikes: ``(T, B, N)``
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
    ) -> None:
        super().__init__(
            weight, true_rate=true_rate, false_rate=false_rate, num_classes=num_classes, reduction=reduction
        )

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return F.mse_count(spikes, target, weight=self.weight, **self.options)
