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

from collections.abc import Iterable
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

import torch
from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, functional, modules

__all__ = [
    "SpikeMaxGLoss",
    "SpikeMaxSLoss",
    "MSECountLoss",
    "spikemax_g",
    "spikemax_s",
    "run_early_exit",
    "stream_early_exit",
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


def spikemax_g(
    spikes: SpikesOrNorseOutput,
    target: Tensor,
    *,
    mode: str = "probability",
    temperature: float = 1.0,
    smoothing: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    time_dim: int = 0,
) -> Tensor:
    """:func:`spikemax_plugins.functional.spikemax_g` (same keyword options) that also takes ``(spikes, state)``.

    Shape:
        - spikes: ``(T, B, N)``, or the tuple ``((T, B, N), state)`` of a Norse module
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    return functional.spikemax_g(
        spikes_of(spikes), target, mode=mode, temperature=temperature, smoothing=smoothing, weight=weight,
        reduction=reduction, num_classes=num_classes, label_smoothing=label_smoothing, time_dim=time_dim,
    )


def spikemax_s(
    spikes: SpikesOrNorseOutput,
    target: Tensor,
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
) -> Tensor:
    """:func:`spikemax_plugins.functional.spikemax_s` (``window=`` required) that also takes ``(spikes, state)``.

    Shape: as :func:`spikemax_g`.
    """
    return functional.spikemax_s(
        spikes_of(spikes), target, window=window, stride=stride, mode=mode, temperature=temperature,
        smoothing=smoothing, weight=weight, reduction=reduction, num_classes=num_classes,
        label_smoothing=label_smoothing, time_dim=time_dim,
    )


def run_early_exit(
    model: nn.Module,
    inputs: Tensor,
    rule: early_exit.ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
    decide_every: int | None = None,
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

    ``decide_every``: how many steps the rule decides at once (see :func:`spikemax_plugins.early_exit.run`).

    Shape:
        - inputs: ``(T, B, ...)`` (time at ``time_dim``), T equal to the rule's
        - target: ``(B)``, optional
    """
    _check_one_step_model(model)
    state: Any = None

    def step(step_input: Tensor) -> Tensor:
        nonlocal state
        spikes, state = _output_and_state(model(step_input, state))
        return spikes

    return early_exit.run(step, inputs, rule, target=target, time_dim=time_dim, decide_every=decide_every)


def _check_one_step_model(model: object) -> None:
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


def _output_and_state(output: object) -> tuple[Any, Any]:
    if not (isinstance(output, tuple) and len(output) == 2):
        raise TypeError(f"model(input, state) must return (output, state) as Norse cells do, got {_describe(output)}")
    return output


# How a model's state is laid out: a cell stands for its own state; a SequentialState for the list of its layers'
# states, None where a layer is stateless.
_StatePlan = nn.Module | list[Any] | None


class _NorseSlots:
    """A Norse cell model as an :class:`~spikemax_plugins.early_exit.SlotNetwork`: one batch row a sample.

    The state is threaded as in :func:`run_early_exit`: ``None`` first, then whatever ``model(x, state)``
    returned. A Norse cell given ``state=None`` starts from ``cell.state_fallback(input)`` (its
    ``initial_state``: for a LIF cell ``v = v_leak``, not 0, and zero currents). So to start a new sample in some
    rows, every cell's fallback is computed on its last input's rows (recorded by a forward pre-hook) and written
    into those rows of the cell's state; dropping rows indexes the first dimension of every state tensor.
    Supported: cells (modules with a ``state_fallback``: ``LIFCell``, ``LIFBoxCell``, ``LIFRecurrentCell``, ...),
    stateless layers, and ``SequentialState`` of them, nested or not. Call :meth:`close` to remove the hooks.
    """

    def __init__(self, model: object) -> None:
        _check_one_step_model(model)
        assert isinstance(model, nn.Module)
        self.model = model
        self._cells: list[nn.Module] = []
        self._plan = self._plan_of(model, "model")
        self._last_inputs: dict[nn.Module, Tensor] = {}
        self._hooks = [cell.register_forward_pre_hook(self._record_input) for cell in self._cells]
        self.state: Any = None
        self._rows = 0  # live rows at the last step

    def _plan_of(self, module: nn.Module, name: str) -> _StatePlan:
        if isinstance(module, norse_torch.SequentialState):
            if getattr(module, "return_hidden", False):  # Norse 1.0.0 has no return_hidden
                raise TypeError(f"{name} is a SequentialState(return_hidden=True), whose output is every layer's: "
                                "stream_early_exit needs the output spikes of the last layer")
            layers = zip(module, module.stateful_layers, strict=True)
            return [self._plan_of(layer, f"{name}.{index}") if stateful else None
                    for index, (layer, stateful) in enumerate(layers)]
        if callable(getattr(module, "state_fallback", None)):
            if any(module is cell for cell in self._cells):
                raise TypeError(f"{name} ({type(module).__name__}) appears twice in the model: each cell must hold "
                                "one state")
            self._cells.append(module)
            return module
        raise TypeError(
            f"{name} ({type(module).__name__}) is not a Norse cell (a module with a state_fallback, as LIFCell) nor "
            "a SequentialState of layers and cells: stream_early_exit cannot build the initial state of its rows"
        )

    def _record_input(self, cell: nn.Module, args: tuple[Any, ...]) -> None:
        self._last_inputs[cell] = args[0]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def step(self, x: Tensor) -> Tensor:
        self._rows = x.shape[0]
        spikes, self.state = _output_and_state(self.model(x, self.state))
        return spikes

    def reset_rows(self, rows: Tensor) -> None:
        self.state = self._reset(self._plan, self.state, rows, "model")

    def _reset(self, plan: _StatePlan, state: Any, rows: Tensor, name: str) -> Any:
        if plan is None:
            return state
        if isinstance(plan, list):
            return [self._reset(part, layer_state, rows, f"{name}.{index}")
                    for index, (part, layer_state) in enumerate(zip(plan, state, strict=True))]
        last_input = self._last_inputs[plan]
        initial = plan.state_fallback(last_input.index_select(0, rows.to(last_input.device)))
        return self._write_rows(state, initial, rows, name)

    def _write_rows(self, state: Any, initial: Any, rows: Tensor, name: str) -> Any:
        if isinstance(state, Tensor):
            self._check_rows(state, name)
            value = torch.as_tensor(initial).to(state.device, state.dtype)
            return state.index_put((rows.to(state.device),), value.expand(rows.numel(), *state.shape[1:]))
        if state is None:
            return None
        if isinstance(state, tuple) and hasattr(state, "_fields"):
            return type(state)(*(self._write_rows(field, initial_field, rows, f"{name}.{key}")
                                 for key, field, initial_field in zip(state._fields, state, initial, strict=True)))
        if isinstance(state, (list, tuple)):
            return type(state)(self._write_rows(part, initial_part, rows, f"{name}[{index}]")
                               for index, (part, initial_part) in enumerate(zip(state, initial, strict=True)))
        raise TypeError(f"the state of {name} must hold tensors, NamedTuples, lists or None, got {_describe(state)}")

    def keep_rows(self, rows: Tensor) -> None:
        self.state = self._select_rows(self.state, rows, "model")

    def _select_rows(self, state: Any, rows: Tensor, name: str) -> Any:
        if isinstance(state, Tensor):
            self._check_rows(state, name)
            return state.index_select(0, rows.to(state.device))
        if state is None:
            return None
        if isinstance(state, tuple) and hasattr(state, "_fields"):
            return type(state)(*(self._select_rows(field, rows, f"{name}.{key}")
                                 for key, field in zip(state._fields, state, strict=True)))
        if isinstance(state, (list, tuple)):
            return type(state)(self._select_rows(part, rows, f"{name}[{index}]") for index, part in enumerate(state))
        raise TypeError(f"the state of {name} must hold tensors, NamedTuples, lists or None, got {_describe(state)}")

    def _check_rows(self, state: Tensor, name: str) -> None:
        if state.dim() == 0 or state.shape[0] != self._rows:
            raise ValueError(f"the state tensor {name} must have one row per sample, [{self._rows}, ...], got shape "
                             f"{tuple(state.shape)}: stream_early_exit cannot give its rows to new samples")


def stream_early_exit(
    model: nn.Module,
    inputs: Tensor | Iterable[Tensor] | Iterable[tuple[Tensor, Tensor]],
    rule: early_exit.ExitRule,
    *,
    slots: int,
    target: Tensor | None = None,
    time_dim: int = 0,
    device: torch.device | str | None = None,
) -> early_exit.ExitReport:
    """Early-exit inference of a Norse cell model with continuous batching: ``slots`` batch rows, each at its own
    step, a new sample taking the row of one that exited.

    ``model`` is a cell (``LIFCell``, ``LIFBoxCell``, ``LIFRecurrentCell``, ...) or a ``SequentialState`` of
    layers and cells, stepped as in :func:`run_early_exit` (its state starts as ``None`` and is passed back at
    every step; time-looping modules are refused). When a sample exits, the state of its row in every cell is
    set to the cell's initial state (what the cell builds from ``state=None``: ``v = v_leak`` for LIF cells), and
    the next waiting sample starts there; once none waits, finished rows are dropped. The decisions equal
    :func:`run_early_exit`'s and ``evaluate(rule, full_recording, target)``'s; only the work changes. See
    :func:`spikemax_plugins.early_exit.stream` for the arguments and the report::

        report = spikemax_norse.stream_early_exit(cells, test_inputs, rule, target=test_labels, slots=128)
        report.accuracy, report.sample_steps_simulated  # rows stepped, against N * T for the full window

    Shape:
        - inputs: ``(T, N, ...)`` (time at ``time_dim``), T equal to the rule's; or an iterable of ``(T, b, ...)``
          batches or of ``(inputs, target)`` pairs (a ``DataLoader`` with time-first collation)
        - target: ``(N)``, optional
        - output: :class:`~spikemax_plugins.early_exit.ExitReport` over the ``N`` samples
    """
    slots_network = _NorseSlots(model)
    try:
        return early_exit.stream(slots_network, inputs, rule, slots=slots, target=target, time_dim=time_dim,
                                 device=device)
    finally:
        slots_network.close()


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
