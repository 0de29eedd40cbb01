"""The training loop: Adam on the mean batch loss, full backpropagation through time, DDP under torchrun."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from spikemax_plugins import activity_penalty as activity_penalty_of

from . import distributed
from .data import ProgressTask
from .models import SpikingNetwork
from .sweep import LossFunction

__all__ = ["TrainingCurves", "train_network"]


@torch.no_grad()
def _validation_counts(network: SpikingNetwork, loader: DataLoader, device: torch.device) -> tuple[int, int]:
    """(correct predictions, samples) of ``network`` over ``loader``, summed over the processes of a multi-process
    run (each passing its shard); ties count wrong."""
    from spikemax_plugins.streaming import SpikeAccuracy

    network.eval()
    metric = SpikeAccuracy(network.layer_sizes[-1]).to(device)
    for frames, labels in loader:
        metric.update(network(frames.to(device)).output, labels.to(device))
    with metric.sync_context():
        return int(metric.correct), int(metric.samples)


@dataclass
class TrainingCurves:
    """Per epoch: mean training loss, validation accuracy after the epoch, seconds spent training."""

    train_loss: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


def train_network(
    network: SpikingNetwork,
    loss_function: LossFunction,
    train_loader: DataLoader,
    validation_loader: DataLoader,
    *,
    epochs: int,
    learning_rate: float,
    device: torch.device,
    task: ProgressTask,
    activity_penalty: float = 0.0,
) -> tuple[TrainingCurves, tuple[int, int]]:
    """Adam on the mean batch loss, full backpropagation through time; the validation set scored per epoch.

    With ``activity_penalty`` λ > 0 the objective is ``loss + λ · Σ_layers activity_penalty(layer_spikes)`` over
    every LIF layer (hidden and output; :func:`spikemax_plugins.activity_penalty`, the batch mean of each
    layer's mean firing rate), and the curves' training loss is that objective. λ = 0 adds nothing at all.

    In a multi-process run (:mod:`~spikemax_bench.distributed`) the network trains as a
    ``DistributedDataParallel`` module (gradients averaged over the processes, every process keeping the same
    weights), ``train_loader`` is this process's :func:`~spikemax_bench.loaders.training_loader` and
    ``validation_loader`` its shard; the training loss and the validation counts are summed over the processes.

    ``task`` is advanced once per training batch. Returns the curves and the final epoch's validation
    ``(correct, samples)``.
    """
    model = _parallel(network, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    curves = TrainingCurves()
    counts = (0, 0)
    for epoch in range(epochs):
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)  # a new order every epoch, the same on every run
        network.train()
        started = time.perf_counter()
        loss_sum = 0.0
        samples = 0
        for frames, labels in train_loader:
            frames, labels = frames.to(device), labels.to(device)
            spikes = model(frames)
            loss = loss_function(spikes.output, labels)
            if activity_penalty:
                loss = loss + activity_penalty * sum(activity_penalty_of(layer) for layer in spikes.layers)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            samples += len(labels)
            task.advance()
        curves.epoch_seconds.append(time.perf_counter() - started)
        if distributed.is_distributed():
            loss_sum, samples = distributed.sum_over_ranks([loss_sum, samples])
        curves.train_loss.append(loss_sum / samples)
        counts = _validation_counts(network, validation_loader, device)
        curves.validation_accuracy.append(counts[0] / counts[1])
    return curves, counts


def _parallel(network: SpikingNetwork, device: torch.device) -> nn.Module:
    """``network`` itself for one process; a ``DistributedDataParallel`` wrapper of it in a multi-process run."""
    if not distributed.is_distributed():
        return network
    from torch.nn.parallel import DistributedDataParallel

    # No buffer sync before each forward pass: the buffers are snnTorch's membrane states, reset by every forward
    # pass, and their batch size may differ between processes on the last batch. (Synced once at construction,
    # where every process holds the same fresh network.)
    options = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else {"broadcast_buffers": False}  # torch < 2.13
    )
    device_ids = None
    if device.type == "cuda":
        device_ids = [torch.cuda.current_device() if device.index is None else device.index]
    return DistributedDataParallel(network, device_ids=device_ids, **options)
