"""SpikeMax for NeuroBench: decision-latency workload metrics and an early-exit model wrapper for ``Benchmark``.

NeuroBench (``neurobench.benchmarks.Benchmark``) takes metric *classes*, builds each with no argument and keys the
results by class name. ``import spikemax_neurobench`` adds three workload metrics to ``neurobench.metrics.workload``
and one model wrapper to ``neurobench.models`` (never replacing a name NeuroBench defines itself):

* :class:`TimeToDecision` and :class:`AccuracyOverTime` read the output spikes ``[B, T, C]`` of a full-window model
  (``neurobench.models.SNNTorchModel`` with no postprocessor) and report
  :func:`spikemax_plugins.metrics.time_to_decision` / :func:`~spikemax_plugins.metrics.accuracy_over_time` over
  the whole data set (sums and counts over the batches, :mod:`spikemax_plugins.streaming`);
* :class:`EarlyExitModel` runs an snnTorch network with early exit
  (:func:`spikemax_snntorch.stream_early_exit`) and returns the predicted class per sample ``[B]``, which
  NeuroBench's ``ClassificationAccuracy`` scores as it is; each sample is simulated only up to its exit, so
  NeuroBench's own hooks (``SynapticOperations``, ``ActivationSparsity``) count only what was simulated;
* :class:`ExitStep` reports the mean exit step of an :class:`EarlyExitModel` (NeuroBench has no latency metric).

::

    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations
    from neurobench.models import SNNTorchModel
    from spikemax_neurobench import AccuracyOverTime, EarlyExitModel, ExitStep, TimeToDecision

    # net: an snnTorch network with init_hidden=True neurons; loader yields (inputs [B, T, ...], labels [B])
    full = Benchmark(SNNTorchModel(net), loader, [], [], [[], [TimeToDecision, AccuracyOverTime, SynapticOperations]])
    rule = early_exit.calibrate(validation_spikes, validation_labels, method="accuracy", alpha=0.01)
    early = Benchmark(EarlyExitModel(net, rule, slots=64), loader, [], [],
                      [[], [ClassificationAccuracy, SynapticOperations, ActivationSparsity, ExitStep]])
    full.run(), early.run()  # {"TimeToDecision": {...}, ...}, {"ClassificationAccuracy": ..., "ExitStep": {...}}

All maths is :mod:`spikemax_plugins` (and :mod:`spikemax_snntorch` for stepping the network); this module only
translates NeuroBench's conventions (batch-first data, metrics built without arguments, results as plain numbers).
NeuroBench prints an exception raised inside a metric and records 0.0 for it: check a run's log for
``Error running workload metric``.
"""

from __future__ import annotations

from typing import Any

try:
    import neurobench.metrics.workload as neurobench_workload
    import neurobench.models as neurobench_models
    from neurobench.metrics.abstract.workload_metric import AccumulatedMetric
    from neurobench.models import NeuroBenchModel
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "neurobench":  # a missing dependency of NeuroBench: report that one
        raise
    raise ImportError(
        'spikemax_neurobench needs NeuroBench, which is not installed: pip install "spikemax-plugins[neurobench]"',
        name="neurobench",
    ) from error

import snntorch
import spikemax_snntorch
import torch
from torch import Tensor, nn

from spikemax_plugins import _registration, early_exit, streaming

__all__ = [
    "TimeToDecision",
    "AccuracyOverTime",
    "ExitStep",
    "EarlyExitModel",
    "register",
    "unregister",
]

# NeuroBench's data and SNNTorchModel's output are batch first: [B, T, ...].
TIME_DIM = 1


def _output_spikes(metric: AccumulatedMetric, preds: object) -> Tensor:
    """``preds`` as the output spikes ``[B, T, C]`` of a full-window model, or an error saying what was given."""
    name = type(metric).__name__
    if not isinstance(preds, Tensor) or preds.dim() != 3:
        given = f"shape {tuple(preds.shape)}" if isinstance(preds, Tensor) else type(preds).__name__
        raise ValueError(
            f"{name} reads preds as the output spikes [B, T, C] of a full-window model (SNNTorchModel without "
            f"postprocessors), got {given}; an EarlyExitModel returns predictions [B]: report its latency with ExitStep"
        )
    return preds


class TimeToDecision(AccumulatedMetric):
    """Time to decision (:func:`spikemax_plugins.metrics.time_to_decision`) over a NeuroBench workload.

    The result is a dict of floats, over every sample seen: ``mean_step`` (the mean 0-based step from which the
    running spike-count prediction no longer changes, over the samples with a decision), ``mean_fraction`` (the
    mean of ``(step + 1) / T`` over them), both NaN when no sample has a decision, and ``no_decision_fraction``
    (the share of samples whose final counts tie). Accumulated as sums and counts
    (:class:`spikemax_plugins.streaming.TimeToDecision`), so the batch size does not change it.

    For a population code (``k`` output neurons a class, in contiguous groups), subclass with the number of
    classes: ``class TimeToDecision10(TimeToDecision): num_classes = 10`` (NeuroBench builds metrics without
    arguments and keys the results by class name).

    Shape:
        - preds: ``(B, T, C)`` output spikes (``SNNTorchModel``'s output, no postprocessor)
    """

    num_classes: int | None = None

    def __init__(self) -> None:
        super().__init__(requires_hooks=False)
        self.reset()

    def reset(self) -> None:
        self._metric = streaming.TimeToDecision(self.num_classes, time_dim=TIME_DIM)

    def __call__(self, model: NeuroBenchModel, preds: Tensor, data: tuple[Tensor, Tensor]) -> dict[str, float]:
        spikes = _output_spikes(self, preds)
        self._metric.to(spikes.device).update(spikes)
        return self.compute()

    def compute(self) -> dict[str, float]:
        return {name: value.item() for name, value in self._metric.compute().items()}


class AccuracyOverTime(AccumulatedMetric):
    """Accuracy of the running spike-count prediction at every step
    (:func:`spikemax_plugins.metrics.accuracy_over_time`) over a NeuroBench workload.

    The result is a list of ``T`` floats: entry ``t`` is the share of samples whose prediction from the counts of
    steps ``0..t`` is right (a tie counts as wrong); the last entry is the full-window accuracy. Accumulated as
    correct counts (:class:`spikemax_plugins.streaming.AccuracyOverTime`); every batch must have the first
    batch's ``T``. ``num_classes`` for a population code as in :class:`TimeToDecision`.

    Shape:
        - preds: ``(B, T, C)`` output spikes (``SNNTorchModel``'s output, no postprocessor)
        - data: ``(inputs, labels)``, labels ``(B)`` class indices
    """

    num_classes: int | None = None

    def __init__(self) -> None:
        super().__init__(requires_hooks=False)
        self.reset()

    def reset(self) -> None:
        self._metric: streaming.AccuracyOverTime | None = None  # T is known at the first batch

    def __call__(self, model: NeuroBenchModel, preds: Tensor, data: tuple[Tensor, Tensor]) -> list[float]:
        spikes = _output_spikes(self, preds)
        if self._metric is None:
            self._metric = streaming.AccuracyOverTime(spikes.shape[TIME_DIM], self.num_classes, time_dim=TIME_DIM)
        self._metric.to(spikes.device).update(spikes, data[1])
        return self.compute()

    def compute(self) -> list[float]:
        if self._metric is None:
            return []
        return self._metric.compute().tolist()


class ExitStep(AccumulatedMetric):
    """Latency of an :class:`EarlyExitModel`: the exit steps of its samples, over a NeuroBench workload.

    The result is a dict of floats over every sample seen: ``mean_exit_step`` (the mean 0-based step at which the
    rule decided) and ``exit_fraction`` (the mean of ``(exit_step + 1) / T``, the share of the window simulated),
    the :class:`~spikemax_plugins.early_exit.ExitReport` fields of all batches together.
    """

    def __init__(self) -> None:
        super().__init__(requires_hooks=False)
        self.reset()

    def reset(self) -> None:
        self._exit_steps: list[Tensor] = []
        self._num_steps: int | None = None

    def __call__(self, model: NeuroBenchModel, preds: Tensor, data: tuple[Tensor, Tensor]) -> dict[str, float]:
        report = getattr(model, "last_report", None)
        if not isinstance(model, EarlyExitModel) or report is None:
            raise TypeError(f"ExitStep reads the ExitReport of an EarlyExitModel, got model {type(model).__name__}")
        self._exit_steps.append(report.exit_step.cpu())
        self._num_steps = report.num_steps
        return self.compute()

    def compute(self) -> dict[str, float]:
        if not self._exit_steps:
            return {"mean_exit_step": float("nan"), "exit_fraction": float("nan")}
        exit_steps = torch.cat(self._exit_steps).to(torch.float64)
        return {
            "mean_exit_step": exit_steps.mean().item(),
            "exit_fraction": ((exit_steps + 1) / self._num_steps).mean().item(),
        }


class EarlyExitModel(NeuroBenchModel):
    """An snnTorch network run with early exit, as a NeuroBench model: ``model(inputs)`` returns the predictions.

    Each call resets the network and runs :func:`spikemax_snntorch.stream_early_exit` on the batch: ``slots``
    batch rows, each sample simulated step by step until ``rule`` decides it, its row then taken by the next
    waiting sample. It returns ``report.prediction``, the predicted class per sample (``-1``: no decision, which
    NeuroBench's ``ClassificationAccuracy`` counts as wrong), and keeps the batch's
    :class:`~spikemax_plugins.early_exit.ExitReport` as ``last_report``. The decisions equal
    ``early_exit.evaluate(rule, full_recording)``'s; only the work changes.

    As ``neurobench.models.SNNTorchModel``, the network is put in eval mode and snnTorch's neurons
    (``snntorch.SpikingNeuron``) are its activation modules; its ``Linear`` / ``Conv`` layers are the connection
    layers. NeuroBench's hooks see every step the engine simulates, on the live rows only, so
    ``SynapticOperations`` and ``ActivationSparsity`` count the work up to each sample's exit.

    Args:
        net: an snnTorch network of ``init_hidden=True`` neurons, ``net(x [S, ...])`` one step (the first element
            of a tuple output is the output spikes ``[S, C]``).
        rule: the :class:`~spikemax_plugins.early_exit.ExitRule` (its ``num_steps`` and ``num_classes`` must be
            the data's and the network's).
        slots: the number of batch rows simulated together, ``>= 1``.
        device: where the rows' inputs are fed to the network (default: where the batch is).

    Shape:
        - inputs: ``(B, T, ...)``, batch first as NeuroBench's data
        - output: ``(B)`` int64 predicted classes
    """

    def __init__(
        self, net: nn.Module, rule: early_exit.ExitRule, *, slots: int, device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module (an snnTorch network), got {type(net).__name__}")
        if not isinstance(rule, early_exit.ExitRule):
            raise TypeError(f"rule must be an early_exit.ExitRule, got {type(rule).__name__}")
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise TypeError(f"slots must be an int >= 1, got {slots!r} ({type(slots).__name__})")
        if slots < 1:
            raise ValueError(f"slots must be an int >= 1, got {slots}")
        self.net = net
        self.net.eval()
        self.rule = rule
        self.slots = slots
        self.device = None if device is None else torch.device(device)
        self.last_report: early_exit.ExitReport | None = None
        self.add_activation_module(snntorch.SpikingNeuron)

    def __call__(self, batch: Tensor) -> Tensor:
        self.last_report = spikemax_snntorch.stream_early_exit(
            self.net, batch, self.rule, slots=self.slots, time_dim=TIME_DIM, device=self.device
        )
        return self.last_report.prediction

    def __net__(self) -> nn.Module:
        """The underlying network."""
        return self.net


_REGISTERED: dict[Any, tuple[Any, ...]] = {
    neurobench_workload: (TimeToDecision, AccuracyOverTime, ExitStep),
    neurobench_models: (EarlyExitModel,),
}


def register() -> list[str]:
    """Add the metrics to ``neurobench.metrics.workload`` and the model to ``neurobench.models``; returns the
    names that were missing. Idempotent; never overwrites a name NeuroBench defines itself (a warning says so)."""
    return _registration.register(_REGISTERED, __name__)


def unregister() -> list[str]:
    """Remove from NeuroBench's namespaces the names this adapter added; returns them."""
    return _registration.unregister(_REGISTERED, __name__)


register()
