"""SpikeMax for Norse: loss modules that sit right after a Norse model, registered into ``norse.torch``.

Norse's time-looping modules (``norse.torch.LIF``, ``LIFRecurrent``, ``SequentialState``) return
``(spikes [T, B, C], state)``. The losses here take that tuple, or the spike tensor alone::

    import norse.torch as norse
    import spikemax_norse  # noqa: F401  (registers norse.SpikeMaxGLoss, norse.functional.spikemax_g, ...)

    model = norse.SequentialState(nn.Linear(20, 32), norse.LIF(), nn.Linear(32, 4), norse.LIF())
    loss_fn = norse.SpikeMaxGLoss()
    loss = loss_fn(model(inputs), targets)  # inputs [T, B, 20], targets [B]

Following Norse's split, the modules live in ``norse.torch`` and the functions (``spikemax_g``, ``spikemax_s``)
in ``norse.torch.functional``. All maths is :mod:`spikemax_plugins`; this module only unwraps the tuple and
registers the names. It never replaces a name Norse defines itself.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

try:
    import norse.torch as norse_torch
    import norse.torch.functional as norse_functional
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "norse":  # a missing dependency of Norse: report that one
        raise
    raise ImportError(
        'spikemax_norse needs Norse, which is not installed: pip install "spikemax-plugins[norse]"', name="norse"
    ) from error

from torch import Tensor

from spikemax_plugins import _registration, functional, modules

__all__ = ["SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss", "spikemax_g", "spikemax_s", "register", "unregister"]

SpikesOrNorseOutput = Tensor | tuple[Tensor, Any]


def spikes_of(output: SpikesOrNorseOutput) -> Tensor:
    """The spikes ``[T, B, N]`` of a Norse module's ``(spikes, state)`` output, or the tensor itself."""
    if isinstance(output, tuple):
        if len(output) != 2 or not isinstance(output[0], Tensor):
            kinds = ", ".join(type(item).__name__ for item in output)
            raise TypeError(
                f"spikes must be a tensor [T, B, N] or a Norse module's (spikes, state) tuple, "
                f"got a tuple of {len(output)} ({kinds})"
            )
        return output[0]
    return output


class SpikeMaxGLoss(modules.SpikeMaxGLoss):
    """Global SpikeMax loss (:class:`spikemax_plugins.SpikeMaxGLoss`) that also takes ``(spikes, state)``.

    Shape:
        - spikes: ``(T, B, N)``, or the tuple ``((T, B, N), state)`` of a Norse module
        - target: ``(B)`` class indices or ``(B, C)`` probabilities
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """

    def forward(self, spikes: SpikesOrNorseOutput, target: Tensor) -> Tensor:
        return super().forward(spikes_of(spikes), target)


class SpikeMaxSLoss(modules.SpikeMaxSLoss):
    """Sliding-window SpikeMax loss (:class:`spikemax_plugins.SpikeMaxSLoss`) that also takes ``(spikes, state)``.

    Shape: as :class:`SpikeMaxGLoss`.
    """

    def forward(self, spikes: SpikesOrNorseOutput, target: Tensor) -> Tensor:
        return super().forward(spikes_of(spikes), target)


class MSECountLoss(modules.MSECountLoss):
    """Spike-count MSE baseline (:class:`spikemax_plugins.MSECountLoss`) that also takes ``(spikes, state)``.

    Shape: as :class:`SpikeMaxGLoss`.
    """

    def forward(self, spikes: SpikesOrNorseOutput, target: Tensor) -> Tensor:
        return super().forward(spikes_of(spikes), target)


def spikemax_g(spikes: SpikesOrNorseOutput, target: Tensor, **options: Any) -> Tensor:
    """:func:`spikemax_plugins.functional.spikemax_g` (same keyword options) that also takes ``(spikes, state)``.

    Shape:
        - spikes: ``(T, B, N)``, or the tuple ``((T, B, N), state)`` of a Norse module
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    return functional.spikemax_g(spikes_of(spikes), target, **options)


def spikemax_s(spikes: SpikesOrNorseOutput, target: Tensor, **options: Any) -> Tensor:
    """:func:`spikemax_plugins.functional.spikemax_s` (``window=`` required) that also takes ``(spikes, state)``.

    Shape: as :func:`spikemax_g`.
    """
    return functional.spikemax_s(spikes_of(spikes), target, **options)


_REGISTERED: dict[ModuleType, tuple[Any, ...]] = {
    norse_torch: (SpikeMaxGLoss, SpikeMaxSLoss, MSECountLoss),
    norse_functional: (spikemax_g, spikemax_s),
}


def register() -> list[str]:
    """Add the modules to ``norse.torch`` (and its ``__all__``), the functions to ``norse.torch.functional``.

    Returns the qualified names that were missing. Idempotent; never overwrites a Norse name.
    """
    return _registration.register(_REGISTERED, __name__)


def unregister() -> list[str]:
    """Remove the names this adapter added to ``norse.torch`` and ``norse.torch.functional``; returns them."""
    return _registration.unregister(_REGISTERED, __name__)


register()
