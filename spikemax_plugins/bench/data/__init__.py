"""Datasets of the benchmark, as binary spike frames ``[T, *input_shape]``.

============================  ==========  ===============  ==========  =====================================
name                          kind        input_shape      default T   source
============================  ==========  ===============  ==========  =====================================
``digits-dvs`` (default)      events      (2, 22, 22)      30          scikit-learn digits, emulated N-MNIST
``digits-rate``               channels    (64,)            10          scikit-learn digits, Bernoulli rates
``uci-iris``                  channels    (4,)             10          scikit-learn, Bernoulli rates
``uci-wine``                  channels    (13,)            10          scikit-learn, Bernoulli rates
``uci-breast-cancer``         channels    (30,)            10          scikit-learn, Bernoulli rates
``nmnist``                    events      (2, 34, 34)      30          tonic, files under ``data_dir``
``dvsgesture``                events      (2, 32, 32)      20          tonic, 128×128 pooled to 32×32
``ntidigits18``               channels    (64,)            50          tonic, single digits, 11 classes
``shd``                       channels    (700,)           50          tonic, 20 classes
============================  ==========  ===============  ==========  =====================================

The first five need no download. Splits are stratified; the test split never depends on ``seed`` (the
recorded sets use their official test split, the others a fixed 20 %), and validation is carved from the
training data per ``seed`` (16 % of the whole, or 20 % of the official training set). Nothing here
imports scikit-learn, tonic, h5py or matplotlib until a dataset that needs them is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from . import digits_dvs, neuromorphic, rate_coded
from .base import (
    DatasetNotFoundError,
    ProgressHook,
    ProgressTask,
    SpikeDataset,
    SpikeTensorDataset,
    collate_time_first,
    default_cache_dir,
    silent_progress,
)
from .digits_dvs import build_digits_dvs, save_sample_figure
from .neuromorphic import build_recorded, default_data_dir
from .rate_coded import build_rate_coded

DATASET_NAMES: tuple[str, ...] = (
    "digits-dvs",
    "digits-rate",
    "uci-iris",
    "uci-wine",
    "uci-breast-cancer",
    "nmnist",
    "dvsgesture",
    "ntidigits18",
    "shd",
)

DEFAULT_TIME_STEPS: dict[str, int] = {
    "digits-dvs": digits_dvs.DEFAULT_TIME_STEPS,
    **{name: rate_coded.DEFAULT_TIME_STEPS for name in rate_coded.TABLES},
    **{name: source.default_time_steps for name, source in neuromorphic.SOURCES.items()},
}
# Sets whose files must be provided (data_dir) or fetched (download=True).
RECORDED_DATASET_NAMES: tuple[str, ...] = tuple(neuromorphic.SOURCES)


def load_dataset(
    name: str,
    *,
    time_steps: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = False,
    cache_dir: str | Path | None = None,
    quick: bool = False,
    progress: Callable[[str, int], AbstractContextManager[ProgressTask]] | None = None,
) -> SpikeDataset:
    """Build (or read from the cache) one benchmark dataset.

    Args:
        name: one of :data:`DATASET_NAMES`.
        time_steps: T, the number of frames per sample; None uses :data:`DEFAULT_TIME_STEPS`.
        seed: chooses the validation split (and the rate sets' training draws); never the test split.
        data_dir: the folder holding the recorded sets in tonic's layout (``data_dir/NMNIST/...``);
            default :func:`default_data_dir` (``~/.cache/spikemax-plugins/datasets``). Unused by the
            sets that need no download.
        download: let tonic fetch a recorded set that is not in ``data_dir``.
        cache_dir: where digits-dvs keeps its built frames; default :func:`default_cache_dir`.
        quick: a tiny class-balanced subset (at most 64 train / 32 validation / 32 test) for smoke runs.
        progress: ``progress(description, total)`` returns a context manager whose value has
            ``advance(amount=1)``; called around the slow steps. Default: silent.

    Raises:
        ValueError: unknown ``name`` or invalid ``time_steps``; a recorded file that cannot be read.
        DatasetNotFoundError: a recorded set's files are missing and ``download`` is False.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {', '.join(DATASET_NAMES)}; got {name!r}")
    if time_steps is None:
        time_steps = DEFAULT_TIME_STEPS[name]
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"time_steps must be a positive int or None, got {time_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    hook: ProgressHook = silent_progress if progress is None else progress

    if name == "digits-dvs":
        return build_digits_dvs(time_steps=time_steps, seed=seed, cache_dir=cache_dir, quick=quick, progress=hook)
    if name in RECORDED_DATASET_NAMES:
        return build_recorded(
            name,
            time_steps=time_steps,
            seed=seed,
            data_dir=data_dir,
            download=download,
            quick=quick,
            progress=hook,
        )
    return build_rate_coded(name, time_steps=time_steps, seed=seed, quick=quick, progress=hook)


__all__ = [
    "DATASET_NAMES",
    "DEFAULT_TIME_STEPS",
    "RECORDED_DATASET_NAMES",
    "DatasetNotFoundError",
    "ProgressHook",
    "ProgressTask",
    "SpikeDataset",
    "SpikeTensorDataset",
    "collate_time_first",
    "default_cache_dir",
    "default_data_dir",
    "load_dataset",
    "save_sample_figure",
    "silent_progress",
]
