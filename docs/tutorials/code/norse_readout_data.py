"""Static inputs for the Norse readout programs: a small stand-in for MNIST's images and labels.

Four classes of 20 features. Class ``c`` raises features ``5c .. 5c + 4``; every feature carries Gaussian noise,
and a softplus keeps the values positive (the notebook's MNIST transform does the same), so that
``ConstantCurrentLIFEncoder`` turns them into spike trains.
"""

import torch

NUM_FEATURES = 20
NUM_CLASSES = 4


def make_dataset(num_samples: int, generator: torch.Generator) -> torch.utils.data.TensorDataset:
    """``num_samples`` images ``[NUM_FEATURES]`` with class labels in ``[0, NUM_CLASSES)``."""
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    features_per_class = NUM_FEATURES // NUM_CLASSES
    preferred = torch.arange(NUM_FEATURES) // features_per_class == targets.unsqueeze(-1)
    noise = torch.randn(num_samples, NUM_FEATURES, generator=generator)
    images = torch.nn.functional.softplus(2.0 * preferred + noise)
    return torch.utils.data.TensorDataset(images, targets)
