"""What spikemax-bench measures on a trained network, streamed batch by batch with the package's metrics.

:class:`StreamingMeasures` keeps only fixed-size states, whatever the length of the split: the torchmetrics
classes of :mod:`spikemax_plugins.metrics` (:class:`~spikemax_plugins.streaming.SpikeAccuracy`,
:class:`~spikemax_plugins.streaming.AccuracyOverTime`, :class:`~spikemax_plugins.streaming.TimeToDecision`,
:class:`~spikemax_plugins.streaming.SynapticOperations`, :class:`~spikemax_plugins.streaming.EarlyExitMetric`) and
float64 running sums of spikes in a metric of the same kind. Their states are sums and counts, summed over the
processes of a multi-process run when they are read (:meth:`StreamingMeasures.evaluation`), so any split of the
data over batches and processes gives the same numbers: integer counts exactly, and the spike and operation sums
exactly too as long as they are integers (binary spikes, integer fan-outs: every bench network) below 2**53.

Early exit (:mod:`spikemax_plugins.early_exit`): :func:`calibrate_rules` makes the rules of
:data:`EARLY_EXIT_RULES` from a network's output spikes on the validation split, and :class:`StreamingMeasures`
applies every rule to each test batch, next to the full-window measures: its accuracy, coverage, exit step and
prediction-set size, and the synaptic operations and spikes spent up to each sample's exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spikemax_plugins import early_exit

__all__ = [
    "ACCURACY_ALPHAS",
    "CONFORMAL_ALPHA",
    "COVERAGE_RULE",
    "EARLY_EXIT_METRICS",
    "EARLY_EXIT_RULES",
    "HEADLINE_RULE",
    "PER_DECISION_MEASURES",
    "CalibratedRule",
    "Evaluation",
    "StreamingMeasures",
    "calibrate_rules",
]

# Tolerated accuracy loss (on the validation split) of the "accuracy" rules, and the conformal rule's allowed
# miscoverage (SpikeCP's setting; 4 checkpoints need n >= 39 calibration samples).
ACCURACY_ALPHAS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)
CONFORMAL_ALPHA = 0.1
EARLY_EXIT_RULES: tuple[tuple[str, float], ...] = (
    *(("accuracy", alpha) for alpha in ACCURACY_ALPHAS),
    ("conformal", CONFORMAL_ALPHA),
)
HEADLINE_RULE = ("accuracy", 0.01)  # at most one point of accuracy below the full window, on validation
COVERAGE_RULE = ("conformal", CONFORMAL_ALPHA)
# The compute one decision costs, each with its "full_window" and "early_exit" value
# (:func:`spikemax_bench.evaluate.per_decision`).
PER_DECISION_MEASURES = (
    "network_calls_per_decision",
    "sample_steps_per_decision",
    "synaptic_operations_per_decision",
    "spikes_per_decision",
)
# Per rule and seed; each gets a mean and a standard deviation over seeds in the summary.
EARLY_EXIT_METRICS = (
    "accuracy",
    "coverage",
    "mean_exit_step",
    "exit_fraction",
    "mean_set_size",
    "input_synaptic_operations_per_sample",
    "hidden_synaptic_operations_per_sample",
    "synaptic_operations_per_sample",
    "network_spikes_per_sample",
    "hidden_synaptic_operations_share",
    "synaptic_operations_share",
    "network_spikes_share",
)


@dataclass
class Evaluation:
    """Measures of one trained network on one split, per sample where it says so.

    * ``accuracy``: share of samples whose spike-count prediction is right (ties count wrong);
      ``accuracy_over_time[t]``: the same for the counts of steps ``0..t`` (T values).
    * ``steps_to_decision``: mean, over the samples with a decision, of the number of steps seen when the running
      prediction settles for good (:func:`spikemax_plugins.metrics.time_to_decision` + 1, so 1..T);
      ``time_to_decision_fraction``: the same divided by T. Both None when no sample has a decision.
    * Spikes the loss can change: ``hidden_spikes_per_sample``, ``output_spikes_per_sample``, their sum
      ``network_spikes_per_sample``, and ``hidden_synaptic_operations_per_sample`` (hidden-layer spikes times
      their fan-out: the synaptic operations the trained weights cause).
    * What every loss sees alike: ``input_spikes_per_sample`` (input events) and
      ``input_synaptic_operations_per_sample`` (input events times their fan-out).
    * ``synaptic_operations_per_sample``: input and hidden operations together (NeuroBench's total).
    * ``correct``, ``samples``: the counts behind ``accuracy``.
    """

    accuracy: float
    accuracy_over_time: list[float]
    steps_to_decision: float | None
    time_to_decision_fraction: float | None
    no_decision_fraction: float
    output_spikes_per_sample: float
    hidden_spikes_per_sample: float
    network_spikes_per_sample: float
    hidden_synaptic_operations_per_sample: float
    input_spikes_per_sample: float
    input_synaptic_operations_per_sample: float
    synaptic_operations_per_sample: float
    correct: int
    samples: int


@dataclass
class CalibratedRule:
    """One rule of :data:`EARLY_EXIT_RULES`: the rule, or why it could not be calibrated (``error``)."""

    method: str
    alpha: float
    rule: early_exit.ExitRule | None
    error: str | None = None


def calibrate_rules(output: Tensor, labels: Tensor) -> list[CalibratedRule]:
    """Every rule of :data:`EARLY_EXIT_RULES`, calibrated on recorded output spikes (the validation split).

    ``output``: ``[T, N, C]`` output spikes of the N calibration samples; ``labels``: ``[N]``. The "accuracy"
    rules use the spike-count probability score and a checkpoint at every step, the conformal rule its 4 default
    checkpoints. A rule that cannot be calibrated (the conformal rule needs ``n >= K / alpha - 1`` samples) comes
    back with ``rule=None`` and the calibration's message as ``error``. Calibration is a function of the set of
    samples, not of their order.

    Returns one :class:`CalibratedRule` per entry of :data:`EARLY_EXIT_RULES`, in that order.
    """
    labels = labels.to(output.device)
    calibrated = []
    for method, alpha in EARLY_EXIT_RULES:
        try:
            rule = early_exit.calibrate(output, labels, method=method, alpha=alpha, score="probability")
        except ValueError as error:
            calibrated.append(CalibratedRule(method, alpha, None, str(error)))
        else:
            calibrated.append(CalibratedRule(method, alpha, rule))
    return calibrated


def _sums_metric(names: Sequence[str]) -> Any:
    """A torchmetrics ``Metric`` holding one float64 running sum per name (summed over processes when read)."""
    from torchmetrics import Metric

    class RunningSums(Metric):
        is_differentiable = False
        full_state_update = False

        def __init__(self) -> None:
            super().__init__()
            for name in names:
                self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

        def update(self, **values: Tensor) -> None:
            for name, value in values.items():
                setattr(self, name, getattr(self, name) + value)

        def compute(self) -> dict[str, Tensor]:
            return {name: getattr(self, name) for name in names}

    return RunningSums()


def _synced(metric: Any, names: Sequence[str]) -> dict[str, Tensor]:
    """The states ``names`` of a torchmetrics metric summed over every process (its own alone for one process),
    on the CPU; the metric keeps its local states."""
    with metric.sync_context():
        return {name: getattr(metric, name).detach().cpu().clone() for name in names}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


class StreamingMeasures:
    """Every measure of a trained network on a split, fed one batch of its spikes at a time.

    ``update(spikes, labels)`` with the :class:`~spikemax_bench.models.NetworkSpikes` of a batch;
    :meth:`evaluation` and :meth:`early_exit` read the result (summed over the processes of a multi-process run:
    every process must call them, in the same order). Memory does not grow with the split: only the metrics'
    sums and counts are kept.

    Args:
        fan_out: the network's fan-out per presynaptic layer (input, then hidden layers).
        num_steps: T; ``num_classes``: C.
        device: where the spikes are (the states live there too).
        rules: early-exit rules applied to every batch (:meth:`early_exit`).
    """

    def __init__(
        self,
        fan_out: Sequence[Tensor],
        *,
        num_steps: int,
        num_classes: int,
        device: torch.device,
        rules: Sequence[early_exit.ExitRule] = (),
    ) -> None:
        from spikemax_plugins.streaming import (
            AccuracyOverTime,
            EarlyExitMetric,
            SpikeAccuracy,
            SynapticOperations,
            TimeToDecision,
        )

        self.num_steps = num_steps
        self.fan_out = [value.to(device) for value in fan_out]
        self.accuracy = SpikeAccuracy(num_classes).to(device)
        self.accuracy_over_time = AccuracyOverTime(num_steps, num_classes).to(device)
        self.decisions = TimeToDecision(num_classes).to(device)
        self.input_operations = SynapticOperations().to(device)
        self.hidden_operations = SynapticOperations().to(device)
        self.spikes = _sums_metric(("output", "hidden", "input")).to(device)
        self.rules = list(rules)
        self.exits = [EarlyExitMetric(rule).to(device) for rule in self.rules]
        # Per rule: input- and hidden-driven operations, and hidden + output spikes (fan-out 1), up to each exit.
        self.exit_input_operations = [SynapticOperations().to(device) for _ in self.rules]
        self.exit_hidden_operations = [SynapticOperations().to(device) for _ in self.rules]
        self.exit_spikes = [SynapticOperations().to(device) for _ in self.rules]

    def update(self, spikes: Any, labels: Tensor) -> None:
        """Add one batch: ``spikes`` the network's :class:`NetworkSpikes` (time-first), ``labels`` ``[B]``."""
        output = spikes.output
        labels = labels.to(output.device)
        hidden_layers = spikes.layers[:-1]
        self.accuracy.update(output, labels)
        self.accuracy_over_time.update(output, labels)
        self.decisions.update(output)
        self.input_operations.update([spikes.input], self.fan_out[:1])
        if hidden_layers:
            self.hidden_operations.update(hidden_layers, self.fan_out[1:])
        hidden = torch.zeros((), dtype=torch.float64, device=output.device)
        for layer in hidden_layers:
            hidden = hidden + layer.sum()  # each layer's sum in its own dtype, as the bench always summed them
        self.spikes.update(output=output.sum(dtype=torch.float64), hidden=hidden, input=spikes.input.sum())
        for index, rule in enumerate(self.rules):
            exit_step = early_exit.evaluate(rule, output, labels).exit_step
            self.exits[index].update(output, labels)
            self.exit_input_operations[index].update([spikes.input], self.fan_out[:1], until=exit_step)
            if hidden_layers:
                self.exit_hidden_operations[index].update(hidden_layers, self.fan_out[1:], until=exit_step)
            self.exit_spikes[index].update(spikes.layers, [1.0] * len(spikes.layers), until=exit_step)

    def _totals(self) -> dict[str, Any]:
        accuracy = _synced(self.accuracy, ("correct", "samples"))
        decisions = _synced(self.decisions, ("decided", "step_sum"))
        spikes = _synced(self.spikes, ("output", "hidden", "input"))
        return {
            "correct": int(accuracy["correct"]),
            "samples": int(accuracy["samples"]),
            "correct_over_time": _synced(self.accuracy_over_time, ("correct",))["correct"],
            "decided": int(decisions["decided"]),
            "step_sum": int(decisions["step_sum"]),
            "output_spikes": float(spikes["output"]),
            "hidden_spikes": float(spikes["hidden"]),
            "input_spikes": float(spikes["input"]),
            "input_operations": float(_synced(self.input_operations, ("operations",))["operations"]),
            "hidden_operations": float(_synced(self.hidden_operations, ("operations",))["operations"]),
        }

    def evaluation(self) -> Evaluation:
        """The full-window :class:`Evaluation` of every sample seen (by every process)."""
        totals = self._totals()
        samples, decided = totals["samples"], totals["decided"]
        if samples == 0:
            raise ValueError("the split had no samples: nothing to evaluate")
        # Integer sums divided once: the mean over the decided samples of (decision step + 1), etc.
        steps_seen = (totals["step_sum"] + decided) / decided if decided else None
        hidden, output = totals["hidden_spikes"], totals["output_spikes"]
        return Evaluation(
            accuracy=totals["correct"] / samples,
            accuracy_over_time=(totals["correct_over_time"].to(torch.float32) / samples).tolist(),
            steps_to_decision=steps_seen,
            time_to_decision_fraction=None if steps_seen is None else steps_seen / self.num_steps,
            no_decision_fraction=1.0 - decided / samples,
            output_spikes_per_sample=output / samples,
            hidden_spikes_per_sample=hidden / samples,
            network_spikes_per_sample=(hidden + output) / samples,
            hidden_synaptic_operations_per_sample=totals["hidden_operations"] / samples,
            input_spikes_per_sample=totals["input_spikes"] / samples,
            input_synaptic_operations_per_sample=totals["input_operations"] / samples,
            synaptic_operations_per_sample=(totals["input_operations"] + totals["hidden_operations"]) / samples,
            correct=totals["correct"],
            samples=samples,
        )

    def early_exit(self) -> list[dict[str, float | None]]:
        """Per rule (in the order given), the early-exit measures of every sample seen, next to the full window:

        * from the rule's :class:`~spikemax_plugins.streaming.EarlyExitMetric`: ``accuracy``, ``coverage`` (true
          class in the prediction set), ``mean_exit_step`` (0-based), ``exit_fraction`` (mean of
          ``(exit_step + 1) / T``: the share of the time steps used, computed from the integer sums so that it
          does not depend on batching) and ``mean_set_size``;
        * per sample, up to its exit step: ``input_synaptic_operations_per_sample``,
          ``hidden_synaptic_operations_per_sample``, their sum ``synaptic_operations_per_sample``, and
          ``network_spikes_per_sample`` (hidden and output spikes);
        * the shares of the full window's: ``hidden_synaptic_operations_share``, ``synaptic_operations_share``
          (input and hidden), ``network_spikes_share`` (None where the full window has none).
        """
        totals = self._totals()
        full_operations = totals["input_operations"] + totals["hidden_operations"]
        full_spikes = totals["hidden_spikes"] + totals["output_spikes"]
        measures = []
        for index in range(len(self.rules)):
            sums = _synced(self.exits[index], ("correct", "covered", "exit_step_sum", "set_size_sum", "samples"))
            samples = int(sums["samples"])
            exit_step_sum = int(sums["exit_step_sum"])
            input_operations = float(_synced(self.exit_input_operations[index], ("operations",))["operations"])
            hidden_operations = float(_synced(self.exit_hidden_operations[index], ("operations",))["operations"])
            spikes = float(_synced(self.exit_spikes[index], ("operations",))["operations"])
            measures.append(
                {
                    "accuracy": int(sums["correct"]) / samples,
                    "coverage": int(sums["covered"]) / samples,
                    "mean_exit_step": exit_step_sum / samples,
                    "exit_fraction": (exit_step_sum + samples) / (samples * self.num_steps),
                    "mean_set_size": int(sums["set_size_sum"]) / samples,
                    "input_synaptic_operations_per_sample": input_operations / samples,
                    "hidden_synaptic_operations_per_sample": hidden_operations / samples,
                    "synaptic_operations_per_sample": (input_operations + hidden_operations) / samples,
                    "network_spikes_per_sample": spikes / samples,
                    "hidden_synaptic_operations_share": _ratio(hidden_operations, totals["hidden_operations"]),
                    "synaptic_operations_share": _ratio(input_operations + hidden_operations, full_operations),
                    "network_spikes_share": _ratio(spikes, full_spikes),
                }
            )
        return measures
