"""Measuring a trained network: one streaming pass per split, through :mod:`spikemax_bench.measures`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from spikemax_plugins import early_exit

from . import distributed
from .data import SpikeDataset
from .loaders import make_loader
from .measures import (
    EARLY_EXIT_METRICS,
    HEADLINE_RULE,
    PER_DECISION_MEASURES,
    Evaluation,
    StreamingMeasures,
    calibrate_rules,
)
from .models import SpikingNetwork
from .models.slots import NetworkSlots

__all__ = ["Evaluation", "evaluate", "evaluate_trained", "per_decision", "record_output"]



@torch.no_grad()
def _measure(
    network: SpikingNetwork,
    loader: DataLoader,
    device: torch.device,
    *,
    num_steps: int | None = None,
    rules: Sequence[early_exit.ExitRule] = (),
) -> StreamingMeasures:
    """One pass of ``network`` over ``loader``, each batch fed to a :class:`StreamingMeasures` (then dropped).

    ``num_steps`` (T) is read from the first batch when None; a process whose loader may be empty (a shard of a
    tiny split) must give it. Returns the measures, to be read on every process.
    """
    network.eval()
    measures = None
    if num_steps is not None:
        measures = StreamingMeasures(
            network.fan_out, num_steps=num_steps, num_classes=network.layer_sizes[-1], device=device, rules=rules
        )
    for frames, labels in loader:
        spikes = network(frames.to(device))
        if measures is None:
            measures = StreamingMeasures(
                network.fan_out,
                num_steps=spikes.output.shape[0],
                num_classes=network.layer_sizes[-1],
                device=device,
                rules=rules,
            )
        measures.update(spikes, labels)
    if measures is None:
        raise ValueError("loader must yield at least one batch to evaluate, or num_steps must be given; got no batch")
    return measures


def evaluate(
    network: SpikingNetwork, loader: DataLoader, device: torch.device, *, num_steps: int | None = None
) -> Evaluation:
    """Run ``network`` over ``loader``; returns its :class:`Evaluation` (accuracy, latency, activity).

    Streams: each batch updates the metrics' sums and is dropped, so memory does not grow with the split. In a
    multi-process run every process passes its shard of the split (:func:`~spikemax_bench.distributed.shard`)
    and gets the evaluation of the whole split. ``num_steps``: T, read from the first batch when None.
    """
    return _measure(network, loader, device, num_steps=num_steps).evaluation()


@torch.no_grad()
def record_output(
    network: SpikingNetwork, split: Dataset, *, batch_size: int, device: torch.device, num_steps: int
) -> tuple[Tensor, Tensor]:
    """The output spikes ``[T, N, C]`` and labels ``[N]`` of ``network`` on the N samples of ``split``, in order.

    Kept whole (for calibration, on the validation split). In a multi-process run each process runs its shard
    and every process gets the whole split's spikes, in the split's order.
    """
    network.eval()
    outputs: list[Tensor] = []
    labels: list[Tensor] = []
    for frames, batch_labels in make_loader(distributed.shard(split), batch_size, shuffle=False, seed=0):
        outputs.append(network(frames.to(device)).output)
        labels.append(batch_labels.to(device))
    num_classes = network.layer_sizes[-1]
    output = torch.cat(outputs, dim=1) if outputs else torch.zeros(num_steps, 0, num_classes, device=device)
    target = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=device)
    total = len(split)  # type: ignore[arg-type]
    return distributed.gather_shards(output, total, dim=1), distributed.gather_shards(target, total, dim=0)


def evaluate_trained(
    network: SpikingNetwork, dataset: SpikeDataset, *, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Everything measured on one trained network: the record its evaluation cell stores.

    The single place where a trained network is measured:

    1. its output spikes on the **validation** split calibrate the early-exit rules of
       :data:`~spikemax_bench.measures.EARLY_EXIT_RULES` (the test split is never used for that);
    2. one pass over the **test** split measures the full window and applies every rule
       (:class:`~spikemax_bench.measures.StreamingMeasures`).

    3. the test split once more through the early-exit engine (:func:`spikemax_plugins.early_exit.stream`, as
       many slots as the batch size) with the headline rule, for the compute a decision costs
       (:func:`per_decision`).

    Returns ``{"test": asdict(Evaluation), "early_exit": {"calibration": {"split": "validation", "samples": n},
    "rules": [...]}, "per_decision": {...}}``, one rule entry per :data:`EARLY_EXIT_RULES` entry: ``method``,
    ``alpha``, ``rule`` (:meth:`ExitRule.to_dict`, None when it could not be calibrated), ``error`` (why not,
    else None) and every :data:`~spikemax_bench.measures.EARLY_EXIT_METRICS` measure (None without a rule). The
    summary and the verdicts read ``record["test"][metric]``.
    """
    output, labels = record_output(
        network, dataset.validation, batch_size=batch_size, device=device, num_steps=dataset.time_steps
    )
    calibrated = calibrate_rules(output, labels)
    del output, labels
    test_loader = make_loader(distributed.shard(dataset.test), batch_size, shuffle=False, seed=0)
    rules = [entry.rule for entry in calibrated if entry.rule is not None]
    measures = _measure(network, test_loader, device, num_steps=dataset.time_steps, rules=rules)
    evaluation = measures.evaluation()
    exits = iter(measures.early_exit())
    entries = [
        {
            "method": entry.method,
            "alpha": entry.alpha,
            "rule": None if entry.rule is None else entry.rule.to_dict(),
            "error": entry.error,
            **(next(exits) if entry.rule is not None else dict.fromkeys(EARLY_EXIT_METRICS)),
        }
        for entry in calibrated
    ]
    headline = next(
        (index for index, entry in enumerate(calibrated) if (entry.method, entry.alpha) == HEADLINE_RULE), None
    )
    engine = None
    if headline is not None and calibrated[headline].rule is not None:
        engine = _engine_counts(network, dataset, calibrated[headline].rule, slots=batch_size, device=device)
    return {
        "test": asdict(evaluation),
        "early_exit": {"calibration": {"split": "validation", "samples": len(dataset.validation)}, "rules": entries},
        "per_decision": per_decision(
            evaluation,
            None if headline is None else entries[headline],
            engine,
            num_steps=dataset.time_steps,
            batch_size=batch_size,
        ),
    }


@torch.no_grad()
def _engine_counts(
    network: SpikingNetwork,
    dataset: SpikeDataset,
    rule: early_exit.ExitRule,
    *,
    slots: int,
    device: torch.device,
) -> dict[str, int]:
    """The whole test split streamed through :func:`spikemax_plugins.early_exit.stream` with ``slots`` rows:
    ``{"network_calls", "sample_steps", "correct", "samples"}``. Every process of a multi-process run streams the
    whole split (it is small), so that the counts do not depend on how many processes share the work."""
    network.eval()
    loader = make_loader(dataset.test, slots, shuffle=False, seed=0)
    report = early_exit.stream(NetworkSlots(network), loader, rule, slots=slots, device=device)
    assert report.accuracy is not None and report.sample_steps_simulated is not None
    samples = report.exit_step.shape[0]
    return {
        "network_calls": report.steps_simulated,
        "sample_steps": report.sample_steps_simulated,
        "correct": round(report.accuracy * samples),
        "samples": samples,
    }


def per_decision(
    evaluation: Evaluation,
    headline: dict[str, Any] | None,
    engine: dict[str, int] | None,
    *,
    num_steps: int,
    batch_size: int,
) -> dict[str, Any]:
    """The compute one decision costs on the test split, over the full window and with early exit.

    Each of :data:`PER_DECISION_MEASURES` is ``{"full_window": ..., "early_exit": ...}``, per decision (a
    sample's decision, whether or not it has a class):

    * ``network_calls_per_decision``: calls of the network (one step of a batch each) per decision; full window:
      batches of ``batch_size`` for T steps each; early exit: the calls of the engine
      (:func:`~spikemax_plugins.early_exit.stream`, ``batch_size`` slots);
    * ``sample_steps_per_decision``: sample-steps simulated, T for the full window, the mean of ``exit_step + 1``
      with early exit;
    * ``synaptic_operations_per_decision``: input- and hidden-driven synaptic operations, up to each sample's
      exit with early exit;
    * ``spikes_per_decision``: hidden and output spikes, likewise.

    Early exit is the headline rule (``rule``: ``method`` and ``alpha``); its values are None when the rule could
    not be calibrated. ``slots``: the engine's rows. ``headline`` is the rule's entry of the evaluation cell,
    ``engine`` the counts of its engine run; the engine's decisions must be the headline's (checked here: its
    correct answers and its sample-steps against the rule's accuracy and exit steps).
    """
    samples = evaluation.samples
    batches = -(-samples // batch_size)  # the full window's batches (one process)
    early: dict[str, float | None] = dict.fromkeys(PER_DECISION_MEASURES)
    if headline is not None and headline["rule"] is not None and engine is not None:
        expected_sample_steps = headline["exit_fraction"] * samples * num_steps
        expected_correct = headline["accuracy"] * samples
        if (
            engine["samples"] != samples
            or abs(engine["sample_steps"] - expected_sample_steps) > 1e-6 * samples * num_steps
            or abs(engine["correct"] - expected_correct) > 1e-6 * samples
        ):
            raise RuntimeError(
                "the early-exit engine decided otherwise than early_exit.evaluate on the same test split: engine "
                f"{engine}, evaluate: {samples} samples, {expected_correct:g} correct, {expected_sample_steps:g} "
                "sample-steps"
            )
        early = {
            "network_calls_per_decision": engine["network_calls"] / samples,
            "sample_steps_per_decision": engine["sample_steps"] / samples,
            "synaptic_operations_per_decision": headline["synaptic_operations_per_sample"],
            "spikes_per_decision": headline["network_spikes_per_sample"],
        }
    full = {
        "network_calls_per_decision": batches * num_steps / samples,
        "sample_steps_per_decision": float(num_steps),
        "synaptic_operations_per_decision": evaluation.synaptic_operations_per_sample,
        "spikes_per_decision": evaluation.network_spikes_per_sample,
    }
    method, alpha = HEADLINE_RULE
    return {
        "rule": {"method": method, "alpha": alpha},
        "slots": batch_size,
        **{name: {"full_window": full[name], "early_exit": early[name]} for name in PER_DECISION_MEASURES},
    }
