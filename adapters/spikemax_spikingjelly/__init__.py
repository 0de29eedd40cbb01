"""SpikeMax for SpikingJelly: ``import spikemax_spikingjelly`` adds the losses and metrics to
``spikingjelly.activation_based.functional``.

SpikingJelly's multi-step mode (``functional.set_step_mode(net, "m")``) takes and returns ``[T, N, *]``, the core's
layout, so the functions take its output as it is, in the style of SpikingJelly's own
``functional.temporal_efficient_training_cross_entropy(x_seq, target)``::

    from spikingjelly.activation_based import functional, layer, neuron
    import spikemax_spikingjelly  # noqa: F401  (registers functional.spikemax_g, spikemax_s, two metrics)

    net = nn.Sequential(layer.Linear(20, 32), neuron.LIFNode(), layer.Linear(32, 4), neuron.LIFNode())
    functional.set_step_mode(net, "m")
    for x_seq, target in batches:  # x_seq [T, N, 20], target [N]
        functional.reset_net(net)
        loss = functional.spikemax_g(net(x_seq), target)
        ...

All maths is :mod:`spikemax_plugins`; this module only registers the names (never replacing one SpikingJelly
defines itself) and handles SpikingJelly's state for early exit: :func:`run_early_exit` and
:func:`stream_early_exit` reset the network, step it in single-step mode and restore every module's step mode
afterwards; :class:`SpikingJellySlots` resets and drops batch rows of every ``MemoryModule`` memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    import spikingjelly.activation_based.functional as spikingjelly_functional
    from spikingjelly.activation_based import base
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "spikingjelly":  # a missing dependency of SpikingJelly: report it
        raise
    raise ImportError(
        "spikemax_spikingjelly needs SpikingJelly, which is not installed: "
        'pip install "spikemax-plugins[spikingjelly]"',
        name="spikingjelly",
    ) from error

import torch
from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, functional, metrics

__all__ = [
    "spikemax_g",
    "spikemax_s",
    "accuracy_over_time",
    "time_to_decision",
    "run_early_exit",
    "stream_early_exit",
    "SpikingJellySlots",
    "register",
    "unregister",
]


def spikemax_g(
    x_seq: Tensor,
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
    """Global SpikeMax loss of a multi-step output, :func:`spikemax_plugins.functional.spikemax_g` (same options).

    Shape:
        - x_seq: ``(T, N, C)``, a multi-step network's output spikes (``N = batch``; ``k * C`` outputs with
          ``num_classes=C``)
        - target: ``(N)`` class indices or ``(N, C)`` probabilities
        - output: scalar, or ``(N)`` with ``reduction="none"``
    """
    return functional.spikemax_g(
        x_seq, target, mode=mode, temperature=temperature, smoothing=smoothing, weight=weight,
        reduction=reduction, num_classes=num_classes, label_smoothing=label_smoothing, time_dim=time_dim,
    )


def spikemax_s(
    x_seq: Tensor,
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
    """Sliding-window SpikeMax loss, :func:`spikemax_plugins.functional.spikemax_s` (``1 <= window <= T``).

    Shape: as :func:`spikemax_g`.
    """
    return functional.spikemax_s(
        x_seq, target, window=window, stride=stride, mode=mode, temperature=temperature, smoothing=smoothing,
        weight=weight, reduction=reduction, num_classes=num_classes, label_smoothing=label_smoothing,
        time_dim=time_dim,
    )


def accuracy_over_time(x_seq: Tensor, target: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """:func:`spikemax_plugins.metrics.accuracy_over_time`: accuracy of the counts up to each step.

    A tie for the most spikes (all-silent output included) counts as wrong.

    Shape:
        - x_seq: ``(T, N, C)``
        - target: ``(N)`` class indices
        - output: ``(T)`` float32
    """
    return metrics.accuracy_over_time(x_seq, target, num_classes, time_dim=time_dim)


def time_to_decision(x_seq: Tensor, num_classes: int | None = None, *, time_dim: int = 0) -> Tensor:
    """:func:`spikemax_plugins.metrics.time_to_decision`: the step from which the prediction stays (``-1``: none).

    Shape:
        - x_seq: ``(T, N, C)``
        - output: ``(N)`` int64
    """
    return metrics.time_to_decision(x_seq, num_classes, time_dim=time_dim)


# --- early exit: SpikingJelly's step modes and memories ------------------------------------------------------


def _check_net(net: object) -> None:
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module (a SpikingJelly network), got {type(net).__name__}")
    multi_step_only = [
        f"{name or 'net'}: {type(module).__name__}"
        for name, module in net.named_modules()
        if isinstance(module, base.StepModule) and "s" not in module.supported_step_mode()
    ]
    if multi_step_only:
        raise TypeError(
            f"net contains multi-step-only SpikingJelly modules ({', '.join(multi_step_only)}), whose "
            "supported_step_mode() has no 's': early exit steps the network one time step at a time. Replace them "
            "by single-step ones (layer.Linear, layer.Conv2d, ... instead of SeqToANNContainer/MultiStepContainer)"
        )


@contextmanager
def _single_step_mode(net: nn.Module) -> Iterator[None]:
    """``functional.set_step_mode(net, "s")`` inside, every module's own step mode back afterwards (errors too)."""
    # set_step_mode sets every module with a step_mode attribute it reaches; saving all of them covers that.
    saved = [(module, module.step_mode) for module in net.modules() if hasattr(module, "step_mode")]
    try:
        spikingjelly_functional.set_step_mode(net, "s")
        yield
    finally:
        for module, step_mode in saved:
            if module.step_mode != step_mode:
                module.step_mode = step_mode


def run_early_exit(
    net: nn.Module,
    inputs: Tensor,
    rule: early_exit.ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
    decide_every: int | None = None,
) -> early_exit.ExitReport:
    """Early-exit inference of a SpikingJelly network: step it, stop once every sample of the batch has exited.

    ``functional.reset_net(net)`` first, then ``net(inputs[t])`` once per step in single-step mode
    (``functional.set_step_mode(net, "s")``); every module's step mode is restored afterwards, also when an error
    is raised. A network trained in multi-step mode gives the same spikes stepped one step at a time. Modules that
    support only the multi-step mode (``SeqToANNContainer``, ``PSN``, ...) are refused, by name. See
    :func:`spikemax_plugins.early_exit.run` for the rule and the report::

        rule = early_exit.calibrate(validation_spikes, validation_labels, method="accuracy", alpha=0.01)
        report = spikemax_spikingjelly.run_early_exit(net, test_inputs, rule, target=test_labels)

    ``decide_every``: how many steps the rule decides at once (see :func:`spikemax_plugins.early_exit.run`).

    Shape:
        - inputs: ``(T, N, ...)`` (time at ``time_dim``), T equal to the rule's
        - target: ``(N)``, optional
    """
    _check_net(net)
    with _single_step_mode(net):
        spikingjelly_functional.reset_net(net)
        return early_exit.run(net, inputs, rule, target=target, time_dim=time_dim, decide_every=decide_every)


class SpikingJellySlots:
    """A SpikingJelly network as the rows of a continuous batch (:class:`spikemax_plugins.early_exit.SlotNetwork`).

    ``step(x)`` calls ``net(x)`` for one time step of the S live rows (the network must be in single-step mode:
    :func:`stream_early_exit` sees to it). Row state is every memory of every ``base.MemoryModule`` in
    ``net.modules()`` (``v`` of the neurons, ...): ``reset_rows`` puts the given rows back to the memory's reset
    value (``module._memories_rv[name]``; a reset value of ``None``, as in SpikingJelly's recurrent containers,
    restarts at zeros, what those modules make of ``None``), ``keep_rows`` keeps only the given rows, so that
    the next step's state matches its batch (SpikingJelly would otherwise silently restart a memory whose shape
    differs from the input's). A memory still at its scalar default (before the module's first step) needs
    nothing. A memory that is neither a tensor ``[S, ...]`` nor its untouched default (a time counter, a list
    of past inputs) cannot be split by row: the row operations refuse it, naming it. Memories are replaced,
    never written in place.
    """

    def __init__(self, net: nn.Module) -> None:
        _check_net(net)
        self.net = net
        self._memory_modules = [
            (name or "net", module) for name, module in net.named_modules() if isinstance(module, base.MemoryModule)
        ]
        self._rows: int | None = None

    def step(self, x: Tensor) -> Tensor:
        output = self.net(x)
        if not isinstance(output, Tensor):
            raise TypeError(f"net(x) must return the output spikes of one step [S, N], got {type(output).__name__}")
        self._rows = output.shape[0] if output.dim() else None
        return output

    def _row_memories(self, action: str) -> Iterator[tuple[base.MemoryModule, str, Tensor, Any]]:
        """(module, memory name, value [S, ...], reset value) of every memory that holds per-row state."""
        for module_name, module in self._memory_modules:
            for name, value in list(module._memories.items()):
                reset_value = module._memories_rv.get(name)
                if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == self._rows:
                    yield module, name, value, reset_value
                elif not _is_untouched(value, reset_value):
                    kind = type(value).__name__
                    if isinstance(value, Tensor):
                        kind = f"a tensor of shape {tuple(value.shape)}"
                    raise TypeError(
                        f"cannot {action} of memory {name!r} of {module_name} ({type(module).__name__}): it is {kind}, "
                        f"not per-sample state [S, ...] with S = {self._rows} rows; continuous batching needs "
                        "every memory batch-first"
                    )

    def reset_rows(self, rows: Tensor) -> None:
        for module, name, value, reset_value in self._row_memories("reset rows"):
            fresh = value.clone()
            fresh[rows] = 0 if reset_value is None else _as_value(reset_value, fresh)
            module._memories[name] = fresh

    def keep_rows(self, rows: Tensor) -> None:
        for module, name, value, _ in self._row_memories("keep rows"):
            module._memories[name] = value.index_select(0, rows.to(value.device))
        self._rows = int(rows.numel())


def _is_untouched(value: object, reset_value: object) -> bool:
    if value is reset_value:
        return True
    if isinstance(value, Tensor) or isinstance(reset_value, Tensor):
        same_kind = isinstance(value, Tensor) and isinstance(reset_value, Tensor) and value.shape == reset_value.shape
        return same_kind and bool(torch.equal(value, reset_value.to(value.device)))
    return type(value) is type(reset_value) and value == reset_value


def _as_value(reset_value: object, like: Tensor) -> Tensor | float:
    return reset_value.to(like.device, like.dtype) if isinstance(reset_value, Tensor) else reset_value  # type: ignore[return-value]


def stream_early_exit(
    net: nn.Module,
    inputs: Tensor | Iterable[Any],
    rule: early_exit.ExitRule,
    *,
    slots: int,
    target: Tensor | None = None,
    time_dim: int = 0,
    device: torch.device | str | None = None,
) -> early_exit.ExitReport:
    """Continuous-batching early exit (:func:`spikemax_plugins.early_exit.stream`) of a SpikingJelly network.

    ``slots`` rows are simulated together; a sample that exits frees its row at once for the next waiting one
    (its memories reset by :class:`SpikingJellySlots`). The report equals
    :func:`spikemax_plugins.early_exit.evaluate` on the full recording, in input order. The network is reset
    and stepped in single-step mode; every module's step mode is restored afterwards. ``device``: where the rows'
    inputs are kept and fed to the network (default: where they come from), e.g. ``device="cuda"`` for a network
    on the GPU and a loader on the CPU.

    Shape:
        - inputs: ``(T, N, ...)`` (time at ``time_dim``), or an iterable of such tensors / ``(inputs, target)``
        - target: ``(N)``, optional
    """
    slots_network = SpikingJellySlots(net)
    with _single_step_mode(net):
        spikingjelly_functional.reset_net(net)
        return early_exit.stream(slots_network, inputs, rule, slots=slots, target=target, time_dim=time_dim,
                                 device=device)


_REGISTERED = {spikingjelly_functional: (spikemax_g, spikemax_s, accuracy_over_time, time_to_decision)}


def register() -> list[str]:
    """Add the names to ``spikingjelly.activation_based.functional``; returns those that were missing.

    Idempotent; never overwrites a name SpikingJelly defines itself (a warning says so).
    """
    return _registration.register(_REGISTERED, __name__)


def unregister() -> list[str]:
    """Remove from ``spikingjelly.activation_based.functional`` the names this adapter added; returns them."""
    return _registration.unregister(_REGISTERED, __name__)


register()
