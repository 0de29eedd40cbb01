"""SpikeMax for sinabs: batch-first loss modules, registered into ``sinabs``, and early exit over sinabs' states.

sinabs' spiking layers (``sinabs.layers.LIF``, ``IAF``, ``ExpLeak``, ...) take and return ``[B, T, ...]``, batch
first, time second; the losses here read that layout by default (``time_dim=1``). Their ``...Squeeze`` twins
(``IAFSqueeze``, ``LIFSqueeze``) take and return ``[B*T, ...]``: build the loss with the same ``num_timesteps=``
(or ``batch_size=``) as the layers and it unflattens the output as they do, batch-major::

    import sinabs
    import sinabs.layers as sl
    import spikemax_sinabs  # noqa: F401  (registers sinabs.SpikeMaxGLoss, sinabs.SpikeMaxSLoss, sinabs.MSECountLoss)

    net = nn.Sequential(nn.Linear(20, 32), sl.LIF(tau_mem=10.0), nn.Linear(32, 4), sl.LIF(tau_mem=10.0))
    loss_fn = sinabs.SpikeMaxGLoss()
    for inputs, targets in batches:  # inputs [B, T, 20], targets [B]
        sinabs.reset_states(net)
        loss = loss_fn(net(inputs), targets)  # output [B, T, 4]
        ...

The default spike function ``sinabs.activation.MultiSpike`` emits graded counts (several spikes per step): the
losses count them as they are. All maths is :mod:`spikemax_plugins`; this module only translates the layout,
registers the names (never replacing one sinabs defines itself) and handles sinabs' state for early exit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

try:
    import sinabs
    from sinabs.layers import SqueezeMixin, StatefulLayer
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "sinabs":  # a missing dependency of sinabs: report that one
        raise
    raise ImportError(
        'spikemax_sinabs needs sinabs, which is not installed: pip install "spikemax-plugins[sinabs]"', name="sinabs"
    ) from error

import torch
from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, modules

__all__ = [
    "SpikeMaxGLoss",
    "SpikeMaxSLoss",
    "MSECountLoss",
    "unsqueeze",
    "run_early_exit",
    "stream_early_exit",
    "SinabsSlots",
    "register",
    "unregister",
]


def _squeeze_option(batch_size: object, num_timesteps: object, time_dim: int) -> tuple[int, int] | None:
    """``(B or -1, T or -1)`` to unflatten a squeezed ``[B*T, N]`` output; None for ``[B, T, N]`` outputs."""
    if batch_size is None and num_timesteps is None:
        return None
    if batch_size is not None and num_timesteps is not None:
        raise ValueError(
            f"give exactly one of batch_size and num_timesteps (as the sinabs Squeeze layers), got "
            f"batch_size={batch_size!r} and num_timesteps={num_timesteps!r}"
        )
    name, value = ("batch_size", batch_size) if batch_size is not None else ("num_timesteps", num_timesteps)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    if time_dim != 1:
        raise ValueError(
            f"with {name}= the squeezed [B*T, N] output is unflattened to [B, T, N]: time_dim must be 1, got {time_dim}"
        )
    return (value, -1) if name == "batch_size" else (-1, value)


def unsqueeze(spikes: Tensor, *, batch_size: int | None = None, num_timesteps: int | None = None) -> Tensor:
    """A Squeeze layer's output ``[B*T, N]`` as ``[B, T, N]`` (a view), unflattened as sinabs does: batch-major.

    Give exactly one of ``batch_size`` and ``num_timesteps``, the one the Squeeze layers were built with.
    """
    return _unsqueeze(spikes, _squeeze_option(batch_size, num_timesteps, 1))


def _unsqueeze(spikes: Tensor, squeeze: tuple[int, int] | None) -> Tensor:
    if squeeze is None:
        return spikes
    if not isinstance(spikes, Tensor):
        raise TypeError(f"spikes must be a tensor [B*T, N], got {type(spikes).__name__}")
    given = "batch_size" if squeeze[0] > 0 else "num_timesteps"
    size = max(squeeze)
    if spikes.dim() != 2:
        raise ValueError(
            f"spikes must be a Squeeze layer's output [B*T, N] (the loss was built with {given}={size}), "
            f"got shape {tuple(spikes.shape)}"
        )
    if spikes.shape[0] % size:
        raise ValueError(
            f"spikes must be [B*T, N] with B*T a multiple of {given}={size}, got shape {tuple(spikes.shape)}"
        )
    # sinabs' SqueezeMixin reshapes [B*T, ...] to [B, T, ...]: row b*T + t is sample b at step t.
    return spikes.reshape(*squeeze, spikes.shape[1])


class _SqueezedOutputs:
    """The loss of a sinabs network's output: ``[B*T, N]`` squeezed outputs are unsqueezed first (``squeeze``)."""

    squeeze: tuple[int, int] | None

    def forward(self, spikes: Tensor, target: Tensor) -> Tensor:
        return super().forward(_unsqueeze(spikes, self.squeeze), target)  # type: ignore[misc]


class SpikeMaxGLoss(_SqueezedOutputs, modules.SpikeMaxGLoss):
    """Global SpikeMax loss (:class:`spikemax_plugins.SpikeMaxGLoss`) for sinabs' batch-first outputs.

    The options are the core's, with ``time_dim=1`` by default; ``num_timesteps=`` or ``batch_size=`` (exactly one,
    as for the Squeeze layers) for the ``[B*T, N]`` outputs of ``IAFSqueeze`` / ``LIFSqueeze`` networks. Options
    are checked when the module is built.

    Shape:
        - spikes: ``(B, T, N)``, or ``(B*T, N)`` with ``num_timesteps`` / ``batch_size``; binary or graded
          (``MultiSpike``) counts
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
        time_dim: int = 1,
        num_timesteps: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            mode=mode, temperature=temperature, smoothing=smoothing, weight=weight, reduction=reduction,
            num_classes=num_classes, label_smoothing=label_smoothing, time_dim=time_dim,
        )
        self.squeeze = _squeeze_option(batch_size, num_timesteps, time_dim)


class SpikeMaxSLoss(_SqueezedOutputs, modules.SpikeMaxSLoss):
    """Sliding-window SpikeMax loss (:class:`spikemax_plugins.SpikeMaxSLoss`) for sinabs' batch-first outputs.

    ``window=`` is required; the other options and the shapes are those of :class:`SpikeMaxGLoss`.
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
        time_dim: int = 1,
        num_timesteps: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            window=window, stride=stride, mode=mode, temperature=temperature, smoothing=smoothing, weight=weight,
            reduction=reduction, num_classes=num_classes, label_smoothing=label_smoothing, time_dim=time_dim,
        )
        self.squeeze = _squeeze_option(batch_size, num_timesteps, time_dim)


class MSECountLoss(_SqueezedOutputs, modules.MSECountLoss):
    """Spike-count MSE baseline (:class:`spikemax_plugins.MSECountLoss`) for sinabs' batch-first outputs.

    ``true_rate=`` and ``false_rate=`` are required; ``time_dim``, ``num_timesteps``, ``batch_size`` and the
    shapes are as in :class:`SpikeMaxGLoss`.
    """

    def __init__(
        self,
        *,
        true_rate: float,
        false_rate: float,
        weight: Tensor | None = None,
        num_classes: int | None = None,
        reduction: str = "mean",
        time_dim: int = 1,
        num_timesteps: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            true_rate=true_rate, false_rate=false_rate, weight=weight, num_classes=num_classes, reduction=reduction,
            time_dim=time_dim,
        )
        self.squeeze = _squeeze_option(batch_size, num_timesteps, time_dim)


# --- early exit: sinabs' states ------------------------------------------------------------------------------


def _check_net(net: object) -> None:
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module (a sinabs network), got {type(net).__name__}")


def _squeeze_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name or "net", module) for name, module in net.named_modules() if isinstance(module, SqueezeMixin)]


def _reset(net: nn.Module) -> None:
    # sinabs.reset_states(net) walks net's children only: a StatefulLayer passed as net itself is reset here.
    sinabs.reset_states(net)
    if isinstance(net, StatefulLayer):
        net.reset_states()


@contextmanager
def _one_step_squeeze(net: nn.Module) -> Iterator[bool]:
    """Squeeze layers read one step ``[B, ...]`` as ``[B, 1, ...]`` inside; their options come back afterwards.

    Yields whether the network has Squeeze layers (it then takes ``[B, ...]`` a step, not ``[B, 1, ...]``).
    """
    layers = _squeeze_layers(net)
    saved = [(module, module.batch_size, module.num_timesteps) for _, module in layers]
    try:
        for module, _, _ in saved:
            module.batch_size, module.num_timesteps = -1, 1
        yield bool(layers)
    finally:
        for module, batch_size, num_timesteps in saved:
            module.batch_size, module.num_timesteps = batch_size, num_timesteps


class SinabsSlots:
    """A sinabs network as the rows of a continuous batch (:class:`spikemax_plugins.early_exit.SlotNetwork`).

    ``step(x)`` feeds one time step of the S live rows, ``x [S, ...]``, as ``net(x[:, None])`` and returns the
    output ``[S, 1, N]`` as ``[S, N]`` (a network of Squeeze layers, ``squeezed=True``, is fed ``x`` itself and
    returns ``[S, N]``; :func:`stream_early_exit` sets their options to one step). Row state is every state buffer
    of every ``sinabs.layers.StatefulLayer`` (``v_mem``, ``i_syn``, ...): ``reset_rows`` puts the given rows back to
    what ``reset_states()`` makes of them, ``keep_rows`` keeps only the given rows and resizes the buffers to
    them, since sinabs, seeing a state whose batch size differs from the input's, would otherwise fill it with
    randomly chosen rows. Buffers not yet initialised (shape ``[0]``, before a layer's first step) need nothing.
    """

    def __init__(self, net: nn.Module, *, squeezed: bool = False) -> None:
        _check_net(net)
        self.net = net
        self.squeezed = squeezed
        self._layers = [
            (name or "net", module) for name, module in net.named_modules() if isinstance(module, StatefulLayer)
        ]
        self._rows: int | None = None

    def step(self, x: Tensor) -> Tensor:
        output = _one_step(self.net, x, self.squeezed)
        self._rows = output.shape[0]
        return output

    def _states(self, action: str) -> Iterator[tuple[StatefulLayer, dict[str, Tensor]]]:
        for layer_name, layer in self._layers:
            states = {name: buffer for name, buffer in layer.named_buffers(recurse=False) if buffer.shape != (0,)}
            for name, buffer in states.items():
                if buffer.dim() == 0 or buffer.shape[0] != self._rows:
                    raise ValueError(
                        f"cannot {action} of state {name!r} of {layer_name} ({type(layer).__name__}): its shape "
                        f"{tuple(buffer.shape)} is not [S, ...] with S = {self._rows} rows"
                    )
            if states:
                yield layer, states

    def reset_rows(self, rows: Tensor) -> None:
        for layer, states in self._states("reset rows"):
            kept = {name: buffer.clone() for name, buffer in states.items()}
            layer.reset_states()  # in place: the states a fresh, reset layer starts from
            for name, buffer in kept.items():
                buffer[rows] = getattr(layer, name)[rows]
                setattr(layer, name, buffer)

    def keep_rows(self, rows: Tensor) -> None:
        for layer, states in self._states("keep rows"):
            for name, buffer in states.items():
                # No rows left: back to sinabs' uninitialised [0], since a state [0, ...] would make its next
                # forward pick random rows out of nothing (an error) instead of starting at zero.
                kept = buffer.index_select(0, rows.to(buffer.device)) if rows.numel() else buffer.new_zeros(0)
                setattr(layer, name, kept)
        self._rows = int(rows.numel())


def _one_step(net: nn.Module, x: Tensor, squeezed: bool) -> Tensor:
    output = net(x if squeezed else x.unsqueeze(1))
    if not isinstance(output, Tensor):
        raise TypeError(f"net must return the output spikes as a tensor, got {type(output).__name__}")
    if squeezed:
        return output
    if output.dim() < 2 or output.shape[1] != 1:
        raise ValueError(
            f"net fed one time step [B, 1, ...] must return [B, 1, N], got shape {tuple(output.shape)}"
        )
    return output.squeeze(1)


def run_early_exit(
    net: nn.Module,
    inputs: Tensor,
    rule: early_exit.ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 1,
    decide_every: int | None = None,
) -> early_exit.ExitReport:
    """Early-exit inference of a sinabs network: step it, stop once every sample of the batch has exited.

    The states are reset (``sinabs.reset_states(net)``), then each step ``inputs[:, t]`` is fed as ``[B, 1, ...]``
    and the output ``[B, 1, N]`` read as ``[B, N]``. In a network of Squeeze layers (``IAFSqueeze``, ...) those
    layers are set to one time step for the run (their ``batch_size`` / ``num_timesteps`` come back afterwards)
    and each step is fed as ``[B, ...]``. See :func:`spikemax_plugins.early_exit.run` for the rule and report::

        rule = early_exit.calibrate(validation_spikes, validation_labels, method="accuracy", alpha=0.01,
                                    time_dim=1)
        report = spikemax_sinabs.run_early_exit(net, test_inputs, rule, target=test_labels)

    ``decide_every``: how many steps the rule decides at once (see :func:`spikemax_plugins.early_exit.run`).

    Shape:
        - inputs: ``(B, T, ...)`` (time at ``time_dim``), T equal to the rule's
        - target: ``(B)``, optional
    """
    _check_net(net)
    with _one_step_squeeze(net) as squeezed:
        _reset(net)
        return early_exit.run(
            lambda x: _one_step(net, x, squeezed), inputs, rule, target=target, time_dim=time_dim,
            decide_every=decide_every,
        )


def stream_early_exit(
    net: nn.Module,
    inputs: Tensor | Iterable[Any],
    rule: early_exit.ExitRule,
    *,
    slots: int,
    target: Tensor | None = None,
    time_dim: int = 1,
    device: torch.device | str | None = None,
) -> early_exit.ExitReport:
    """Continuous-batching early exit (:func:`spikemax_plugins.early_exit.stream`) of a sinabs network.

    ``slots`` rows are simulated together; a sample that exits frees its row at once for the next waiting one (its
    states reset by :class:`SinabsSlots`). The report equals :func:`spikemax_plugins.early_exit.evaluate` on the
    full recording, in input order. The states are reset first; Squeeze layers are handled as in
    :func:`run_early_exit`. ``device``: where the rows' inputs are kept and fed to the network (default: where they
    come from), e.g. ``device="cuda"`` for a network on the GPU and a loader on the CPU.

    Shape:
        - inputs: ``(B, T, ...)`` (time at ``time_dim``), or an iterable of such tensors / ``(inputs, target)``
        - target: ``(B)``, optional
    """
    _check_net(net)
    with _one_step_squeeze(net) as squeezed:
        slots_network = SinabsSlots(net, squeezed=squeezed)
        _reset(net)
        return early_exit.stream(slots_network, inputs, rule, slots=slots, target=target, time_dim=time_dim,
                                 device=device)


_REGISTERED: dict[ModuleType, tuple[Any, ...]] = {sinabs: (SpikeMaxGLoss, SpikeMaxSLoss, MSECountLoss)}


def register() -> list[str]:
    """Add the loss modules to ``sinabs`` (``sinabs.SpikeMaxGLoss``, ...); returns the names that were missing.

    Idempotent; never overwrites a name sinabs defines itself (a warning says so).
    """
    return _registration.register(_REGISTERED, __name__)


def unregister() -> list[str]:
    """Remove from ``sinabs`` the names this adapter added; returns them."""
    return _registration.unregister(_REGISTERED, __name__)


register()
