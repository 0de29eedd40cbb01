"""The data loaders of a run: time-first batches, seeded, and sharded over the processes of a multi-process run."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import distributed
from .data import collate_time_first

__all__ = ["make_loader", "training_loader"]


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    """Time-first batches ``([T, B, ...], [B])``; the order of a shuffled loader depends on ``seed`` only."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate_time_first
    )


def training_loader(dataset: Dataset, batch_size: int, *, seed: int) -> DataLoader:
    """The shuffled training batches of this process.

    One process: :func:`make_loader` (order from a generator seeded with ``seed``). N processes: each takes its
    part of a ``DistributedSampler`` seeded with ``seed`` (reshuffled per epoch by
    :func:`~spikemax_bench.train.train_network`, padded with repeated samples so that every process runs the same
    number of batches), in batches of ``ceil(batch_size / N)``, so that one optimiser step still sees about
    ``batch_size`` samples.
    """
    processes = distributed.world_size()
    if processes == 1:
        return make_loader(dataset, batch_size, shuffle=True, seed=seed)
    sampler = DistributedSampler(dataset, num_replicas=processes, rank=distributed.rank(), shuffle=True, seed=seed)
    return DataLoader(
        dataset, batch_size=math.ceil(batch_size / processes), sampler=sampler, collate_fn=collate_time_first
    )
