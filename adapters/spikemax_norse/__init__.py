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

from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, functional, modules

__all__ = [
    "SpikeMaxGLoss",
    "SpikeMaxSLoss",
    "MSECountLoss",
    "spikemax_g",
    "spikemax_s",
    "run_early_exit",
    "register",
    "unregister",
]

SpikesOrNorseOutput = Tensor | tuple[Tensor, Any]


def _is_state(value: object) -> bool:
    """A Norse state: a NamedTuple of tensors (or nested states), None, or a list/tuple of states (one a layer)."""
    if value is None:
        return True
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return all(isinstance(item, Tensor) or item is None or _is_state(item) for item in value)
    if isinstance(value, (list, tuple)):
        return all(_is_state(item) for item in value)
    return False


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"Tensor{tuple(value.shape)}"
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return f"{type(value).__name__}({', '.join(value._fields)})"
    return type(value).__name__


def spikes_of(output: SpikesOrNorseOutput) -> Tensor:
    """The spikes of a Norse module's ``(spikes, state)`` output, or a spike tensor itself.

    Accepted: a tensor; or a plain 2-tuple ``(spikes, state)`` whose ``state`` is what Norse modules return:
    ``None``, a state NamedTuple (``LIFFeedForwardState(v, i)``, ...) or a list of them (``SequentialState``).
    Refused, with the reason: a state NamedTuple itself (its first field is a voltage, not spikes; this is
    what ``LIF(record_states=True)``'s recorded state looks like), a tuple of another length, a first element
    that is not a tensor, a second element that is not a Norse state.
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        raise TypeError(
            f"spikes must be spikes, got a Norse state {_describe(output)}: its first field is a membrane "
            "quantity, not spikes. Pass the module's output tuple (spikes, state), or its spikes"
        )
    if isinstance(output, tuple):
        if len(output) == 2 and isinstance(output[0], Tensor) and _is_state(output[1]):
            return output[0]
        kinds = ", ".join(_describe(item) for item in output)
        raise TypeError(
            "spikes must be a tensor or a Norse module's (spikes, state) tuple, where state is None, a Norse "
            f"state NamedTuple or a list of them; got a tuple of {len(output)} ({kinds})"
        )
    raise TypeError(f"spikes must be a tensor or a Norse module's (spikes, state) tuple, got {_describe(output)}")


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


def run_early_exit(
    model: nn.Module,
    inputs: Tensor,
    rule: early_exit.ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
) -> early_exit.ExitReport:
    """Early-exit inference of a Norse model: simulate step by step, stop once every sample has exited.

    ``model`` is a one-step module that threads its state as Norse cells do, ``(output, state) =
    model(input, state)``: a cell (``LIFCell``, ``LIFBoxCell``, ...) or a ``SequentialState`` of layers and
    cells. The state starts as ``None`` and is passed back at every step. Time-looping modules (``LIF``,
    ``LIFRecurrent``: subclasses of ``norse.torch.module.snn.SNN``) are refused, since given one step they would
    read the batch as time: use their ``...Cell`` twins. See :func:`spikemax_plugins.early_exit.run`::

        model = norse.SequentialState(nn.Linear(20, 32), norse.LIFCell(), nn.Linear(32, 4), norse.LIFCell())
        rule = early_exit.calibrate(validation_spikes, validation_labels, method="accuracy", alpha=0.01)
        report = spikemax_norse.run_early_exit(model, test_inputs, rule, target=test_labels)

    Shape:
        - inputs: ``(T, B, ...)`` (time at ``time_dim``), T equal to the rule's
        - target: ``(B)``, optional
    """
    from norse.torch.module.snn import SNN

    if not isinstance(model, nn.Module):
        kind = type(model).__name__
        raise TypeError(f"model must be a torch.nn.Module (a Norse cell or SequentialState), got {kind}")
    modules = model.named_modules()
    looping = [f"{name or 'model'}: {type(module).__name__}" for name, module in modules if isinstance(module, SNN)]
    if looping:
        raise TypeError(
            f"model contains time-looping Norse modules ({', '.join(looping)}), which read the first dimension of "
            "their input as time; stepping them one step at a time would treat the batch as time. Build the "
            "model from the ...Cell modules (LIFCell, LIFBoxCell, LIFRecurrentCell, ...) for step-by-step inference"
        )
    state: Any = None

    def step(step_input: Tensor) -> Tensor:
        nonlocal state
        output = model(step_input, state)
        if not (isinstance(output, tuple) and len(output) == 2):
            raise TypeError(
                f"model(input, state) must return (output, state) as Norse cells do, got {_describe(output)}"
            )
        spikes, state = output
        return spikes

    return early_exit.run(step, inputs, rule, target=target, time_dim=time_dim)


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
