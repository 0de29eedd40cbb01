"""Streaming metrics: ``torchmetrics.Metric`` twins of the decision metrics and of early exit.

Each class keeps only sums and counts as states (``dist_reduce_fx="sum"``), so ``update`` over any split of a
data set, on any number of processes, gives the function's value on the whole; ``update`` calls the same
private helper as the function, and ``compute`` only divides.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import _validation as check
from ._decisions import (
    checked_exit_target,
    correct_count,
    correct_over_time,
    decision_steps,
    exit_report_sums,
    operations_per_sample,
)
from .early_exit import ExitRule, evaluate

try:
    from torchmetrics import Metric
except Exception as error:  # torchmetrics raises RuntimeError, not ImportError, when torchvision cannot load
    raise ImportError(
        "spikemax_plugins.streaming needs torchmetrics, which could not be imported "
        f"({type(error).__name__}: {error}). If the message mentions torchvision: a torchvision built for "
        "another torch build is installed (Norse's package metadata pulls one in; norse.torch never imports "
        "it), and torchmetrics imports torchvision whenever it is installed. Remove it with "
        "`pip uninstall torchvision`, or install the torchvision that matches your torch."
    ) from error

__all__ = ["SpikeAccuracy", "AccuracyOverTime", "TimeToDecision", "SynapticOperations", "EarlyExitMetric"]


def _check_device(metric: Metric, tensor: object, name: str) -> None:
    """Updates come on the device of the metric's states: torch would add a meta batch to CPU states as nothing."""
    if isinstance(tensor, Tensor) and tensor.device != metric.samples.device:
        raise ValueError(
            f"{name} is on {tensor.device} but {type(metric).__name__}'s states are on {metric.samples.device}; move "
            f"the metric with .to({str(tensor.device)!r}) or the {name} to {metric.samples.device}"
        )


class _CountingMetric(Metric):
    """Options shared by the classification metrics; states are added by each subclass."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, num_classes: int | None = None, *, time_dim: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.num_classes = check.check_num_classes(num_classes)
        self.time_dim = check.check_time_dim(time_dim)
        self.add_state("samples", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")


class SpikeAccuracy(_CountingMetric):
    """Streaming :func:`~spikemax_plugins.metrics.accuracy`: the fraction of samples predicted right.

    ``update(spikes, target)`` with spikes ``(T, B, N)`` (or another layout, see ``time_dim``) and class indices
    ``(B)``; ``compute()`` returns a float32 scalar (NaN before any update).
    """

    higher_is_better = True

    def __init__(self, num_classes: int | None = None, *, time_dim: int = 0, **kwargs: object) -> None:
        super().__init__(num_classes, time_dim=time_dim, **kwargs)
        self.add_state("correct", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, spikes: Tensor, target: Tensor) -> None:
        _check_device(self, spikes, "spikes")
        self.correct += correct_count(spikes, target, self.num_classes, self.time_dim)
        self.samples += target.shape[0]

    def compute(self) -> Tensor:
        return self.correct.to(torch.float32) / self.samples


class AccuracyOverTime(_CountingMetric):
    """Streaming :func:`~spikemax_plugins.metrics.accuracy_over_time`: the running accuracy at every step.

    ``num_steps`` (T) fixes the length of the state; every update must have T steps. ``compute()`` returns a
    float32 ``(T)`` tensor.
    """

    higher_is_better = True

    def __init__(
        self, num_steps: int, num_classes: int | None = None, *, time_dim: int = 0, **kwargs: object
    ) -> None:
        super().__init__(num_classes, time_dim=time_dim, **kwargs)
        self.num_steps = check.check_int(num_steps, "num_steps", minimum=1)
        self.add_state("correct", torch.zeros(self.num_steps, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, spikes: Tensor, target: Tensor) -> None:
        _check_device(self, spikes, "spikes")
        correct = correct_over_time(spikes, target, self.num_classes, self.time_dim)
        if correct.shape[0] != self.num_steps:
            raise ValueError(
                f"spikes must have num_steps = {self.num_steps} time steps (dimension time_dim={self.time_dim}), "
                f"got {correct.shape[0]} (shape {tuple(spikes.shape)})"
            )
        self.correct += correct
        self.samples += target.shape[0]

    def compute(self) -> Tensor:
        return self.correct.to(torch.float32) / self.samples


class TimeToDecision(_CountingMetric):
    """Streaming :func:`~spikemax_plugins.metrics.time_to_decision` summary.

    ``compute()`` returns a dict of float64 scalars: ``mean_step`` (mean 0-based decision step over the samples
    with a decision), ``mean_fraction`` (mean of ``(step + 1) / T`` over them: the share of the sample seen by
    the decision), both NaN when no sample has a decision, and ``no_decision_fraction`` (share of samples whose
    final counts tie).
    """

    higher_is_better = False

    def __init__(self, num_classes: int | None = None, *, time_dim: int = 0, **kwargs: object) -> None:
        super().__init__(num_classes, time_dim=time_dim, **kwargs)
        self.add_state("decided", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("step_sum", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("fraction_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, spikes: Tensor, target: Tensor | None = None) -> None:
        """``target`` is accepted (and ignored) so that the metric fits a collection of (spikes, target) metrics."""
        _check_device(self, spikes, "spikes")
        steps = decision_steps(spikes, self.num_classes, self.time_dim)
        decided = steps >= 0
        num_steps = spikes.shape[self.time_dim]
        self.decided += decided.sum()
        self.step_sum += torch.where(decided, steps, 0).sum()
        self.fraction_sum += torch.where(decided, (steps + 1).to(torch.float64) / num_steps, 0).sum()
        self.samples += steps.shape[0]

    def compute(self) -> dict[str, Tensor]:
        decided = self.decided.to(torch.float64)
        return {
            "mean_step": self.step_sum.to(torch.float64) / decided,
            "mean_fraction": self.fraction_sum / decided,
            "no_decision_fraction": 1 - decided / self.samples,
        }


class SynapticOperations(Metric):
    """Streaming :func:`~spikemax_plugins.metrics.synaptic_operations`: mean operations per sample.

    ``update(layer_spikes, fan_out, until=None)`` as the function; ``compute()`` returns the float64 mean over
    every sample seen.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, *, time_dim: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            raise TypeError(f"time_dim must be an int, got {type(time_dim).__name__}")
        self.time_dim = time_dim
        self.add_state("operations", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("samples", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        layer_spikes: Sequence[Tensor],
        fan_out: Sequence[int | float | Tensor],
        until: Tensor | None = None,
    ) -> None:
        if isinstance(layer_spikes, (list, tuple)) and layer_spikes:
            _check_device(self, layer_spikes[0], "layer_spikes")
        per_sample = operations_per_sample(layer_spikes, fan_out, until, self.time_dim)
        self.operations += per_sample.sum()
        self.samples += per_sample.shape[0]

    def compute(self) -> Tensor:
        return self.operations / self.samples


class EarlyExitMetric(Metric):
    """Streaming early-exit report of a fixed :class:`~spikemax_plugins.early_exit.ExitRule`.

    ``update(spikes, target)`` applies the rule to a batch (:func:`~spikemax_plugins.early_exit.evaluate`);
    ``compute()`` returns a dict of float64 scalars over every sample seen: ``accuracy``, ``coverage`` (true
    class in the prediction set), ``mean_exit_step``, ``exit_fraction`` (mean of ``(exit_step + 1) / T``) and
    ``mean_set_size``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, rule: ExitRule, *, time_dim: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if not isinstance(rule, ExitRule):
            raise TypeError(f"rule must be an ExitRule, got {type(rule).__name__}")
        self.rule = rule
        self.time_dim = check.check_time_dim(time_dim)
        for name, dtype in (
            ("correct", torch.int64),
            ("covered", torch.int64),
            ("exit_step_sum", torch.int64),
            ("exit_fraction_sum", torch.float64),
            ("set_size_sum", torch.int64),
            ("samples", torch.int64),
        ):
            self.add_state(name, torch.tensor(0, dtype=dtype), dist_reduce_fx="sum")

    def update(self, spikes: Tensor, target: Tensor) -> None:
        _check_device(self, spikes, "spikes")
        report = evaluate(self.rule, spikes, target, time_dim=self.time_dim)
        target = checked_exit_target(target, report.exit_step.shape[0], self.rule.num_classes, spikes.device)
        sums = exit_report_sums(report.exit_step, report.prediction, report.prediction_set, target, self.rule.num_steps)
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + value)
        self.samples += report.exit_step.shape[0]

    def compute(self) -> dict[str, Tensor]:
        samples = self.samples.to(torch.float64)
        return {
            "accuracy": self.correct / samples,
            "coverage": self.covered / samples,
            "mean_exit_step": self.exit_step_sum / samples,
            "exit_fraction": self.exit_fraction_sum / samples,
            "mean_set_size": self.set_size_sum / samples,
        }
