"""A small in-memory spike data set and a seeded network that spikes on it, for evaluation tests.

Every split has its own size (so that a test can tell which split a measure came from), the classes are told
apart by which inputs fire more often, and the network's weights are scaled up so that an untrained network
already spikes: some samples are decided early, some late, some never (ties), which is what the evaluation and
early-exit measures must all agree on.
"""

from __future__ import annotations

import torch

from spikemax_bench.data import SpikeDataset
from spikemax_bench.data.base import SpikeTensorDataset
from spikemax_bench.models import SpikingNetwork, build_network

TIME_STEPS = 12
FEATURES = 24
CLASSES = 3
SIZES = {"train": 30, "validation": 80, "test": 53}


def _split(samples: int, generator: torch.Generator) -> SpikeTensorDataset:
    labels = torch.arange(samples) % CLASSES
    rates = torch.full((samples, FEATURES), 0.1)
    width = FEATURES // CLASSES
    for label in range(CLASSES):
        rates[labels == label, label * width : (label + 1) * width] = 0.5
    frames = (torch.rand(samples, TIME_STEPS, FEATURES, generator=generator) < rates[:, None, :]).to(torch.uint8)
    return SpikeTensorDataset(frames, labels)


def synthetic_dataset(seed: int = 0, **sizes: int) -> SpikeDataset:
    """Train / validation / test splits of :data:`SIZES` samples (or the ``sizes`` given, e.g. ``validation=30``),
    ``[T = 12, 24]`` binary frames, 3 classes."""
    generator = torch.Generator().manual_seed(seed)
    splits = {name: _split(sizes.get(name, size), generator) for name, size in SIZES.items()}
    return SpikeDataset(
        name="synthetic",
        input_shape=(FEATURES,),
        num_classes=CLASSES,
        time_steps=TIME_STEPS,
        kind="channels",
        class_names=tuple(str(label) for label in range(CLASSES)),
        description="three classes of Bernoulli inputs",
        **splits,
    )


def spiking_network(framework: str = "snntorch", *, seed: int = 1, gain: float = 3.0) -> SpikingNetwork:
    """An untrained 24-32-3 network whose weights (seeded) are multiplied by ``gain`` so that it spikes."""
    network = build_network(
        framework, architecture="mlp", input_shape=(FEATURES,), num_classes=CLASSES, hidden_size=32, seed=seed
    )
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(gain)
    return network
