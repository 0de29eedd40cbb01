"""Rate-coded scikit-learn tables: ``digits-rate``, ``uci-iris``, ``uci-wine``, ``uci-breast-cancer``.

The setting of the spike-count learning rule of Wu et al. 2019 (arXiv 1902.05705): each feature is
min-max scaled to [0, 1] with the minimum and maximum of the *training* split only (validation and test
values outside that range are clipped), then drives one input channel that spikes at every time step with
that probability (Bernoulli). Short windows: ``T = 10`` by default.

The draws are made once, when the dataset is built, so every epoch sees the same spike trains:
training and validation draws depend on the seed, test draws use a fixed seed (the test spikes then
differ between seeds only through the training split's scaling).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import (
    TEST_SPLIT_SEED,
    ProgressHook,
    SpikeDataset,
    quick_subsets,
    tensor_splits,
    train_validation_test_indices,
)

DEFAULT_TIME_STEPS = 10


def _table(loader_name: str) -> Callable[[], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    def load() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = getattr(bunch, "target_names", None)
        labels = bunch.target.astype(np.int64)
        class_names = tuple(str(name) for name in names) if names is not None else ()
        return bunch.data.astype(np.float64), labels, class_names or tuple(str(k) for k in np.unique(labels))

    return load


# name -> (loader, one-line description)
TABLES: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray, tuple[str, ...]]], str]] = {
    "digits-rate": (_table("load_digits"), "scikit-learn's 1,797 handwritten 8×8 digits, 64 pixels rate-coded"),
    "uci-iris": (_table("load_iris"), "UCI Iris: 150 flowers, 4 measurements rate-coded, 3 species"),
    "uci-wine": (_table("load_wine"), "UCI Wine: 178 wines, 13 chemical measurements rate-coded, 3 cultivars"),
    "uci-breast-cancer": (
        _table("load_breast_cancer"),
        "UCI Breast Cancer Wisconsin: 569 tumours, 30 cell-nucleus features rate-coded, benign/malignant",
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
    """Bernoulli spikes: ``probabilities [N, F]`` -> ``bool [N, T, F]``, deterministic per ``seed``."""
    generator = np.random.default_rng(seed)
    draws = generator.random((probabilities.shape[0], time_steps, probabilities.shape[1]), dtype=np.float32)
    return draws < probabilities[:, None, :].astype(np.float32)


def build_rate_coded(name: str, *, time_steps: int, seed: int, quick: bool, progress: ProgressHook) -> SpikeDataset:
    load, description = TABLES[name]
    with progress(f"{name}: rate coding", 1) as task:
        features, labels, class_names = load()
        parts = train_validation_test_indices(labels, seed)
        if quick:
            parts = quick_subsets(*parts, labels)
        probabilities = scale_features(features, parts[0])
        frames = np.zeros((len(labels), time_steps, features.shape[1]), dtype=bool)
        for part, draw_seed in zip(parts, ((seed, 0), (seed, 1), (TEST_SPLIT_SEED, 2)), strict=True):
            frames[part] = rate_code(probabilities[part], time_steps, draw_seed)
        splits = tensor_splits(frames, labels, parts)
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
        description=f"{description} (Bernoulli, T={time_steps}; no download)",
    )
