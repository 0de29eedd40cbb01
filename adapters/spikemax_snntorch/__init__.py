"""SpikeMax for snnTorch: ``import spikemax_snntorch`` adds the losses and metrics to ``snntorch.functional``.

After the import, ``SF.spikemax_g_loss`` and ``SF.spikemax_s_loss`` work like snnTorch's own losses (build one,
then call it as ``loss_fn(spk_out, targets)``), and ``SF.accuracy_over_time`` / ``SF.time_to_decision`` like
``SF.accuracy_rate``. All maths is :mod:`spikemax_plugins`; this module only translates snnTorch's conventions
(``population_code`` / ``num_classes=False``, the weight's device) and registers the names. It never replaces a
name snnTorch defines itself.

``snntorch.backprop.BPTT`` (and ``TBPTT``, ``RTRL``) accept only criteria whose ``__name__`` is in a private
table of snnTorch's built-in losses, so they cannot run these losses (in snnTorch 0.9.4 and 1.0.0 they fail with
``UnboundLocalError: ... 'loss_spk'``, as their own name check never fires). Write the training loop instead::

    import snntorch.functional as SF
    import snntorch.utils
    import spikemax_snntorch  # noqa: F401  (registers SF.spikemax_g_loss)

    loss_fn = SF.spikemax_g_loss()
    for inputs, targets in batches:  # inputs [T, B, ...], targets [B]
        snntorch.utils.reset(net)
        spk_out = torch.stack([net(step)[0] for step in inputs])  # [T, B, C]
        loss = loss_fn(spk_out, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

try:
    import snntorch.functional as snntorch_functional
    from snntorch.functional.loss import LossFunctions
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "snntorch":  # a missing dependency of snnTorch: report that one
        raise
    raise ImportError(
        'spikemax_snntorch needs snnTorch, which is not installed: pip install "spikemax-plugins[snntorch]"',
        name="snntorch",
    ) from error

import torch
from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, functional, metrics, modules

__all__ = [
    "spikemax_g_loss",
    "spikemax_s_loss",
    "accuracy_over_time",
    "time_to_decision",
    "run_early_exit",
    "stream_early_exit",
    "register",
    "unregister",
]


def _core_num_classes(population_code: bool, num_classes: int | bool) -> int | None:
    """snnTorch's (population_code, num_classes=False) pair -> the core's num_classes (None: one neuron a class)."""
    # snnTorch writes these as plain truth values; anything else (a string "False", a tensor) would switch
    # population coding on or fail inside Python's truth test.
    bool_like = isinstance(population_code, bool) or (isinstance(population_code, int) and population_code in (0, 1))
    if population_code is not None and not bool_like:
        raise TypeError(f"population_code must be a bool, got {population_code!r} ({type(population_code).__name__})")
    if not population_code:
        return None  # snnTorch ignores num_classes without a population code; so do we
    if num_classes is not None and not isinstance(num_classes, (bool, int)):
        raise TypeError(f"num_classes must be an int (or False), got {type(num_classes).__name__}")
    if not num_classes:
        raise ValueError(
            "population_code=True needs num_classes, the number of classes C that the output neurons are "
            f"grouped into; got num_classes={num_classes!r}"
        )
    return num_classes


class spikemax_g_loss(LossFunctions):  # noqa: N801  (snnTorch names its loss classes in lowercase)
    """Global SpikeMax loss, snnTorch style; see :func:`spikemax_plugins.functional.spikemax_g`.

    ``loss_fn = SF.spikemax_g_loss()`` (200 outputs for 10 classes: ``SF.spikemax_g_loss(True, 10)``), then
    ``loss = loss_fn(spk_out, targets)``. ``weight``, ``reduction`` and ``label_smoothing`` follow
    :func:`torch.nn.functional.cross_entropy` (a weighted mean divides by the summed weights). Every option is
    checked when the loss is built, as torch modules do.

    Shape:
        - spk_out: ``(num_steps, batch, num_outputs)``; ``num_outputs = k * num_classes`` with population code
          (another layout with ``time_dim``, e.g. ``time_dim=1`` for batch-first recordings)
        - targets: ``(batch)`` class indices, or ``(batch, num_classes)`` probabilities
        - output: scalar, or ``(batch)`` with ``reduction="none"``
    """

    def __init__(
        self,
        population_code: bool = False,
        num_classes: int | bool = False,
        reduction: str = "mean",
        weight: Tensor | None = None,
        mode: str = "probability",
        temperature: float = 1.0,
        smoothing: float = 1.0,
        label_smoothing: float = 0.0,
        time_dim: int = 0,
    ) -> None:
        options = dict(mode=mode, temperature=temperature, smoothing=smoothing, label_smoothing=label_smoothing,
                       time_dim=time_dim)
        self._build(population_code, num_classes, reduction, weight, options)
        self.__name__ = "spikemax_g_loss"  # snnTorch's losses carry their name on the instance

    def _build(
        self, population_code: bool, num_classes: int | bool, reduction: str, weight: Tensor | None, options: dict
    ) -> None:
        """Check everything as the core module does (it is built here for that), then keep the core's keyword
        options for the calls; ``options`` with ``window`` is the sliding-window loss."""
        self.population_code = population_code
        self.num_classes = num_classes
        self._options = {"reduction": reduction, "num_classes": _core_num_classes(population_code, num_classes),
                         **options}
        sliding = "window" in options
        core = (modules.SpikeMaxSLoss if sliding else modules.SpikeMaxGLoss)(weight=weight, **self._options)
        self._function = functional.spikemax_s if sliding else functional.spikemax_g
        super().__init__(reduction=reduction, weight=core.weight)

    # LossFunctions.__call__ would re-reduce with snnTorch's weighted mean; the core already reduces as torch does.
    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        weight = self.weight
        # snnTorch keeps the weight where it was given and moves it to the spikes; a meta weight has nothing to
        # move, and the core then reports the two devices.
        movable = weight is not None and not weight.is_meta and isinstance(spk_out, Tensor)
        if movable and weight.device != spk_out.device:
            weight = weight.to(spk_out.device)
        return self._function(spk_out, targets, weight=weight, **self._options)


class spikemax_s_loss(spikemax_g_loss):  # noqa: N801
    """Sliding-window SpikeMax loss, snnTorch style; see :func:`spikemax_plugins.functional.spikemax_s`.

    ``SF.spikemax_s_loss(window=10)``: ``1 <= window <= num_steps``; the other arguments, their order after
    ``window`` and ``stride``, and the shapes are those of :class:`spikemax_g_loss`.
    """

    def __init__(
        self,
        window: int,
        stride: int = 1,
        population_code: bool = False,
        num_classes: int | bool = False,
        reduction: str = "mean",
        weight: Tensor | None = None,
        mode: str = "probability",
        temperature: float = 1.0,
        smoothing: float = 1.0,
        label_smoothing: float = 0.0,
        time_dim: int = 0,
    ) -> None:
        if window is None:
            raise TypeError("window must be an int >= 1, got None (use spikemax_g_loss for the whole window)")
        options = dict(window=window, stride=stride, mode=mode, temperature=temperature, smoothing=smoothing,
                       label_smoothing=label_smoothing, time_dim=time_dim)
        self._build(population_code, num_classes, reduction, weight, options)
        self.__name__ = "spikemax_s_loss"


def accuracy_over_time(
    spk_out: Tensor,
    targets: Tensor,
    population_code: bool = False,
    num_classes: int | bool = False,
    *,
    time_dim: int = 0,
) -> Tensor:
    """:func:`spikemax_plugins.metrics.accuracy_over_time`, called like ``SF.accuracy_rate``.

    Unlike ``SF.accuracy_rate``, a tie for the most spikes (all-silent output included) counts as wrong.

    Shape:
        - spk_out: ``(num_steps, batch, num_outputs)`` (another layout with ``time_dim``)
        - targets: ``(batch)`` class indices
        - output: ``(num_steps)`` float32 tensor
    """
    return metrics.accuracy_over_time(spk_out, targets, _core_num_classes(population_code, num_classes),
                                      time_dim=time_dim)


def time_to_decision(
    spk_out: Tensor, population_code: bool = False, num_classes: int | bool = False, *, time_dim: int = 0
) -> Tensor:
    """:func:`spikemax_plugins.metrics.time_to_decision` (``-1``: no decision), called like ``SF.accuracy_rate``.

    Shape:
        - spk_out: ``(num_steps, batch, num_outputs)`` (another layout with ``time_dim``)
        - output: ``(batch)`` int64 tensor
    """
    return metrics.time_to_decision(spk_out, _core_num_classes(population_code, num_classes), time_dim=time_dim)


def run_early_exit(
    net: nn.Module,
    inputs: Tensor,
    rule: early_exit.ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
    decide_every: int | None = None,
) -> early_exit.ExitReport:
    """Early-exit inference of an snnTorch network: simulate step by step, stop once every sample has exited.

    ``net`` is stepped as in snnTorch's tutorials: its hidden state is cleared with ``snntorch.utils.reset``
    (``init_hidden=True`` layers; applied to every submodule, since snnTorch's own call only sees the direct
    children), then ``net(inputs[t])`` is called once per step; when it returns a tuple (the
    last ``Leaky(output=True)`` returns ``(spk, mem)``) its first element is taken as the output spikes
    ``(B, N)``. See :func:`spikemax_plugins.early_exit.run` for the rule and the report::

        rule = early_exit.calibrate(validation_spikes, validation_labels, method="accuracy", alpha=0.01)
        report = spikemax_snntorch.run_early_exit(net, test_inputs, rule, target=test_labels)
        report.accuracy, report.exit_fraction, report.steps_simulated

    ``decide_every``: how many steps the rule decides at once (see :func:`spikemax_plugins.early_exit.run`).

    Shape:
        - inputs: ``(T, B, ...)`` (time at ``time_dim``), T equal to the rule's
        - target: ``(B)``, optional
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module (an snnTorch network), got {type(net).__name__}")
    _reset_every_neuron(net)

    def step(step_input: Tensor) -> Tensor:
        return _output_spikes(net(step_input))

    return early_exit.run(step, inputs, rule, target=target, time_dim=time_dim, decide_every=decide_every)


def _reset_every_neuron(net: nn.Module) -> None:
    import snntorch.utils

    # snntorch.utils.reset(net) only looks at net's direct children: a network nested in another module would
    # keep the membrane state of the previous batch. Resetting at every level reaches every neuron.
    for module in net.modules():
        snntorch.utils.reset(module)


def _output_spikes(output: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The spikes of one step: the last ``Leaky(output=True)`` returns ``(spk, mem)``, a plain layer ``spk``."""
    return output[0] if isinstance(output, tuple) else output


class _SnnTorchSlots:
    """An snnTorch network as an :class:`~spikemax_plugins.early_exit.SlotNetwork`: one batch row a sample.

    snnTorch keeps every neuron's per-sample state (``mem``; ``syn``; ``syn_exc``, ``syn_inh``; ``spk`` of the
    recurrent neurons) as *non-persistent* buffers of its ``SpikingNeuron`` modules, and its parameters
    (``beta``, ``threshold``, ...) as persistent ones; the state is created lazily, as zeros shaped like the
    input, and ``snntorch.utils.reset`` sets it to zeros. So the state of a row is the row of every
    non-persistent buffer whose first dimension is the number of live rows: a new sample's row is zeroed, and
    dropping rows indexes that dimension. A buffer of another first dimension (not created yet) is left to
    snnTorch, which re-creates it as zeros when its shape differs from the input's.
    """

    def __init__(self, net: object) -> None:
        import snntorch

        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module (an snnTorch network), got {type(net).__name__}")
        self.net = net
        self._states: list[tuple[nn.Module, tuple[str, ...]]] = []  # (neuron, names of its state buffers)
        for name, module in net.named_modules():
            if not isinstance(module, snntorch.SpikingNeuron):
                continue
            # What state_dict leaves out is the state: snnTorch registers it with persistent=False.
            state_names = tuple(key for key in module._buffers if key in module._non_persistent_buffers_set)
            if not state_names:
                raise TypeError(
                    f"net.{name} ({type(module).__name__}) keeps no per-sample state buffer, so it is not a "
                    "step-by-step snnTorch neuron (time-parallel neurons such as StateLeaky read the first "
                    "dimension of their input as time); stream_early_exit needs neurons stepped one step a call"
                )
            self._states.append((module, state_names))
        if not any(getattr(module, "init_hidden", False) for module, _ in self._states):
            raise ValueError(
                f"net must contain snnTorch neurons built with init_hidden=True, which keep their state between "
                f"calls; {type(net).__name__} has none"
            )
        self._rows = 0  # live rows at the last step

    def step(self, x: Tensor) -> Tensor:
        self._rows = x.shape[0]
        return _output_spikes(self.net(x))

    def _each_state(self, update: Callable[[Tensor], Tensor]) -> None:
        for module, names in self._states:
            for name in names:
                value = getattr(module, name)
                if isinstance(value, Tensor) and value.dim() and value.shape[0] == self._rows:
                    setattr(module, name, update(value))  # a registered buffer: stays one

    def reset_rows(self, rows: Tensor) -> None:
        # Out of place: the old tensor may be what the network returned (RLeaky's spk).
        self._each_state(lambda value: value.index_fill(0, rows.to(value.device), 0))

    def keep_rows(self, rows: Tensor) -> None:
        self._each_state(lambda value: value.index_select(0, rows.to(value.device)))


def stream_early_exit(
    net: nn.Module,
    inputs: Tensor | Iterable[Tensor] | Iterable[tuple[Tensor, Tensor]],
    rule: early_exit.ExitRule,
    *,
    slots: int,
    target: Tensor | None = None,
    time_dim: int = 0,
    device: torch.device | str | None = None,
) -> early_exit.ExitReport:
    """Early-exit inference of an snnTorch network with continuous batching: ``slots`` batch rows, each at its
    own step, a new sample taking the row of one that exited.

    ``net`` is reset and stepped as in :func:`run_early_exit` (``init_hidden=True`` neurons, ``net(x)`` per step,
    the first element of a tuple output). When a sample exits, its row's neuron state (every non-persistent
    buffer of snnTorch's neurons: ``mem``, ``syn``, ``spk``, ...) is zeroed, as ``snntorch.utils.reset`` would,
    and the next waiting sample starts there; once none waits, finished rows are dropped. The decisions equal
    :func:`run_early_exit`'s and ``evaluate(rule, full_recording, target)``'s; only the work changes. See
    :func:`spikemax_plugins.early_exit.stream` for the arguments and the report::

        report = spikemax_snntorch.stream_early_exit(net, test_inputs, rule, target=test_labels, slots=128)
        report.accuracy, report.sample_steps_simulated  # rows stepped, against N * T for the full window

    Neurons that read the whole sequence at once (``StateLeaky``, ``LeakyParallel``) cannot be stepped.

    Shape:
        - inputs: ``(T, N, ...)`` (time at ``time_dim``), T equal to the rule's; or an iterable of ``(T, b, ...)``
          batches or of ``(inputs, target)`` pairs (a ``DataLoader`` with time-first collation)
        - target: ``(N)``, optional
        - output: :class:`~spikemax_plugins.early_exit.ExitReport` over the ``N`` samples
    """
    slots_network = _SnnTorchSlots(net)
    _reset_every_neuron(net)
    return early_exit.stream(slots_network, inputs, rule, slots=slots, target=target, time_dim=time_dim,
                             device=device)


_REGISTERED = {snntorch_functional: (spikemax_g_loss, spikemax_s_loss, accuracy_over_time, time_to_decision)}


def register() -> list[str]:
    """Add the names to ``snntorch.functional``; returns those that were missing. Never overwrites snnTorch's."""
    return _registration.register(_REGISTERED, __name__)


def unregister() -> list[str]:
    """Remove from ``snntorch.functional`` the names this adapter added; returns those removed."""
    return _registration.unregister(_REGISTERED, __name__)


register()
