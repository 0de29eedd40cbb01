"""Synthetic spike trains for the tutorials: each class drives its own block of input channels.

Class ``c`` makes input channels ``5c .. 5c + 4`` fire with probability 0.3 per step; every other channel fires
with probability 0.05. A small spiking network separates the classes in a few epochs on a CPU.
"""

import torch

NUM_STEPS = 25
NUM_INPUTS = 20
NUM_CLASSES = 4


def make_spike_data(num_samples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Input spikes ``[NUM_STEPS, num_samples, NUM_INPUTS]`` (time first) and class indices ``[num_samples]``."""
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    channels_per_class = NUM_INPUTS // NUM_CLASSES
    preferred = torch.arange(NUM_INPUTS) // channels_per_class == targets.unsqueeze(-1)  # [B, NUM_INPUTS]
    firing_probability = torch.where(preferred, 0.3, 0.05)
    spikes = torch.bernoulli(firing_probability.expand(NUM_STEPS, -1, -1), generator=generator)
    return spikes, targets
