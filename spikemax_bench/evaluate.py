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
from .measures import EARLY_EXIT_METRICS, Evaluation, StreamingMeasures, calibrate_rules
from .models import SpikingNetwork

__all__ = ["Evaluation", "evaluate", "evaluate_trained", "record_output"]


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

    Returns ``{"test": asdict(Evaluation), "early_exit": {"calibration": {"split": "validation", "samples": n},
    "rules": [...]}}``, one rule entry per :data:`EARLY_EXIT_RULES` entry: ``method``, ``alpha``, ``rule``
    (:meth:`ExitRule.to_dict`, None when it could not be calibrated), ``error`` (why not, else None) and every
    :data:`~spikemax_bench.measures.EARLY_EXIT_METRICS` measure (None without a rule). The summary and
    the verdicts read ``record["test"][metric]``.
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
    return {
        "test": asdict(evaluation),
        "early_exit": {"calibration": {"split": "validation", "samples": len(dataset.validation)}, "rules": entries},
    }
