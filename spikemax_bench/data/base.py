"""Pieces every benchmark dataset shares.

- :class:`SpikeDataset`, the record ``load_dataset`` returns, and the errors of loading a data set:
  :class:`DatasetError` and its subclasses :class:`DatasetNotFoundError`, :class:`InvalidDatasetError`,
  :class:`InsufficientMemoryError`.
- :class:`SpikeTensorDataset`: binary spike frames held in memory as ``uint8`` (one byte a cell instead of
  four), converted to ``float32`` one sample at a time.
- Stratified splits: a test split fixed for every seed, a validation split carved from the rest per seed,
  and the small class-balanced subsets of ``quick=True``.
- The on-disk cache of built frames (bit-packed ``.npz``; unreadable or stale files are rebuilt; the
  temporary file of an interrupted write is removed).
- The progress hook: ``progress(description, total)`` returns a context manager whose value has
  ``advance(amount=1)``; :func:`silent_progress` is the default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..store import atomic_write

# The test split is drawn with this fixed seed, so every training seed is evaluated on the same samples.
TEST_SPLIT_SEED = 2205_09845  # arXiv id of the Spikemax paper
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2  # of what remains after the test split: 16 % of the whole
# quick=True: sizes of the class-balanced subsets (train, validation, test) for smoke runs.
QUICK_SIZES = (64, 32, 32)


def quick_sample_count(num_samples: int) -> int:
    """At most how many samples ``quick=True`` builds (the three subsets together)."""
    return min(num_samples, sum(QUICK_SIZES))


class ProgressTask(Protocol):
    """What a progress context manager yields: a counter the builder advances as it works."""

    def advance(self, amount: int = 1) -> None: ...


ProgressHook = Callable[[str, int], AbstractContextManager[ProgressTask]]


class _SilentTask:
    def advance(self, amount: int = 1) -> None:
        pass


@contextlib.contextmanager
def silent_progress(description: str, total: int) -> Iterator[ProgressTask]:
    """The default progress hook: shows nothing."""
    yield _SilentTask()


class DatasetError(Exception):
    """Base of every error that loading a data set raises because of the data or the machine, not because
    of a bug: a caller (the ``spikemax-bench`` command) prints the message, which names the file or the
    option to change, and stops, without a traceback."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset's files are not where they were looked for; the message names the expected paths and the
    ``--data-dir`` / ``--download`` options."""


class InvalidDatasetError(DatasetError, ValueError):
    """A dataset's files are there but unusable: unreadable, events outside the sensor, times that are not
    finite and non-negative, labels that are not integers of the class range, labels and recordings that do
    not pair up, or nothing to learn from. The message names the file (and recording) and the problem."""


class InsufficientMemoryError(DatasetError, MemoryError):
    """Building the data set would take more memory than the machine has available; the message gives the
    estimate, what is available, and the options (``--time-steps``, ``--quick``) that reduce it."""


@dataclass(frozen=True)
class SpikeDataset:
    """A benchmark dataset as spike frames, split three ways.

    Items of ``train``, ``validation`` and ``test`` are ``(frames, label)``: ``frames`` a float32 tensor
    ``[T, *input_shape]`` of zeros and ones, ``label`` an int in ``[0, num_classes)``. ``validation`` is
    carved from the training data (stratified, fixed per seed); ``test`` never depends on the seed.
    """

    name: str
    train: Dataset
    validation: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    time_steps: int
    kind: str  # "events": 2-D sensor with polarity channels; "channels": a flat vector of inputs per step
    class_names: tuple[str, ...]
    description: str


class SpikeTensorDataset(Dataset):
    """Spike frames held in memory.

    Attributes (public, so a training loop may batch by fancy indexing instead of a DataLoader):
        frames: ``uint8`` tensor ``[N, T, *input_shape]`` of zeros and ones.
        labels: ``int64`` tensor ``[N]``.
        source_indices: ``int64`` tensor ``[N]``, each sample's index in the source data set.

    Items: ``(frames[i].float() -> [T, *input_shape], int(labels[i]))``.
    """

    def __init__(self, frames: Tensor, labels: Tensor, source_indices: Tensor | None = None) -> None:
        if frames.dtype != torch.uint8:
            raise TypeError(f"frames must be a uint8 tensor [N, T, ...], got dtype {frames.dtype}")
        if frames.dim() < 3:
            raise ValueError(f"frames must be [N, T, *input_shape], got shape {tuple(frames.shape)}")
        if labels.shape != (frames.shape[0],):
            raise ValueError(
                f"labels must be [N] with N = {frames.shape[0]} (frames' first dimension), "
                f"got shape {tuple(labels.shape)}"
            )
        if source_indices is None:
            source_indices = torch.arange(frames.shape[0])
        self.frames = frames
        self.labels = labels.to(torch.int64)
        self.source_indices = source_indices.to(torch.int64)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.frames[index].float(), int(self.labels[index])


def collate_time_first(batch: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """Stack ``(frames [T, ...], label)`` items time-first.

    Shape:
        Output: ``([T, B, ...] float32, [B] int64)``.
    """
    if len(batch) == 0:
        raise ValueError("batch must hold at least one (frames, label) item, got an empty batch")
    first_shape = tuple(batch[0][0].shape)
    for position, (frames, _) in enumerate(batch):
        if tuple(frames.shape) != first_shape:
            raise ValueError(
                f"every item's frames must have the same shape [T, ...]; item 0 has {first_shape}, "
                f"item {position} has {tuple(frames.shape)}"
            )
    frames = torch.stack([frames for frames, _ in batch], dim=1).to(torch.float32)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    return frames, labels


# ----------------------------------------------------------------------------------------------- splits


def stratified_split(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` in two so each class gives ``round(fraction * its count)`` to the second part.

    A class with at least two samples keeps at least one on each side, so tiny data sets still get a
    validation sample of every class. Both parts come back sorted. ``labels`` is indexed by ``indices``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    generator = np.random.default_rng(seed)
    first, second = [], []
    for label in np.unique(labels[indices]):
        members = generator.permutation(indices[labels[indices] == label])
        count = int(round(fraction * len(members)))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        second.append(members[:count])
        first.append(members[count:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def train_validation_test_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 64 % / 16 % / 20 % split of ``range(len(labels))``.

    The test part is drawn with :data:`TEST_SPLIT_SEED` and is the same for every ``seed``; ``seed`` picks
    which of the remaining samples are held out for validation.
    """
    labels = np.asarray(labels)
    pool, test = stratified_split(np.arange(len(labels)), labels, TEST_FRACTION, TEST_SPLIT_SEED)
    train, validation = split_validation(pool, labels, seed)
    return train, validation, test


def split_validation(pool: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve the validation split from the training ``pool``, stratified, fixed per ``seed``."""
    return stratified_split(pool, labels, VALIDATION_FRACTION, (seed, 1))


def class_balanced_subset(indices: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """The first ``size`` of ``indices`` taken round-robin over classes (sorted), or all if fewer."""
    indices = np.asarray(indices, dtype=np.int64)
    per_class = [indices[labels[indices] == label] for label in np.unique(labels[indices])]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(size, len(indices)):
        for members in per_class:
            if depth < len(members) and len(chosen) < size:
                chosen.append(int(members[depth]))
        depth += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


def quick_subsets(
    train: np.ndarray, validation: np.ndarray, test: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced subsets of :data:`QUICK_SIZES` for ``quick=True``."""
    return tuple(  # type: ignore[return-value]
        class_balanced_subset(part, labels, size)
        for part, size in zip((train, validation, test), QUICK_SIZES, strict=True)
    )


# ------------------------------------------------------------------------------------------------ cache


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spikemax-plugins`` (``~/.cache/spikemax-plugins`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "spikemax-plugins"


def cache_file(cache_dir: str | Path | None, name: str, parameters: Mapping[str, object]) -> Path:
    """Where frames built with ``parameters`` are cached: the name carries a hash of every parameter."""
    directory = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]
    return directory / f"{name}-{digest}.npz"


def load_cached_frames(path: Path, parameters: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray] | None:
    """Binary frames ``uint8 [N, T, ...]`` and labels ``[N]`` from ``path``, or None when absent.

    A file that cannot be read, or was built with other parameters, is reported with a warning and
    treated as absent, so the caller rebuilds it.
    """
    remove_stale_temporaries(path.parent)
    if not path.is_file():
        return None
    try:
        # Our own file object: np.load leaves the file it opened unclosed when the zip is corrupt.
        with path.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
            stored_parameters = json.loads(str(archive["parameters"]))
            shape = tuple(int(size) for size in archive["shape"])
            frames = np.unpackbits(archive["frames_bits"], count=int(np.prod(shape))).reshape(shape)
            labels = archive["labels"].astype(np.int64)
        if stored_parameters != json.loads(json.dumps(parameters)) or labels.shape != shape[:1]:
            raise ValueError("the stored parameters or shapes do not match")
    # Any failure to read a cache (truncated zip, missing key, bad JSON, wrong shape) means: rebuild it.
    except Exception as error:
        warnings.warn(f"ignoring the unreadable cache file {path} ({error}); rebuilding it", stacklevel=3)
        return None
    return frames, labels


def save_cached_frames(path: Path, frames: np.ndarray, labels: np.ndarray, parameters: Mapping[str, object]) -> None:
    """Write binary frames (``bool`` or 0/1 ``uint8`` ``[N, T, ...]``) bit-packed, atomically."""

    def write(stream: BinaryIO) -> None:
        np.savez(
            stream,
            frames_bits=np.packbits(frames, axis=None),  # packs non-zero as 1: no bool copy of the frames needed
            shape=np.asarray(frames.shape, dtype=np.int64),
            labels=labels.astype(np.int64),
            parameters=np.asarray(json.dumps(parameters, sort_keys=True)),
        )

    write_atomically(path, write)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """:func:`~spikemax_bench.store.atomic_write` for a cache file: the folder is created, and an
    ``OSError`` (a read-only or full disk), which only costs a rebuild next time, becomes a warning.
    A process killed outright leaves its temporary file behind: :func:`remove_stale_temporaries` clears it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write, temporary_prefix=f"{path.stem}.")  # the name _TEMPORARY_NAME recognises
    except OSError as error:
        warnings.warn(f"could not write the cache file {path} ({error})", stacklevel=4)


# The writer's temporary files: "<data set>-<16 hex digits of the key>.<8 random characters>.tmp", or
# without the dot (the naming before the dot was added). Nothing else in a cache folder has such a name.
_TEMPORARY_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{16}\.?[a-z0-9_]{8}\.tmp")
# A writer rewrites its temporary file continuously and is done within seconds: one left untouched this
# long belongs to a run that was killed, not to one still writing (possibly on another machine sharing the
# cache folder).
STALE_TEMPORARY_SECONDS = 600.0


def remove_stale_temporaries(directory: Path, *, older_than_seconds: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
    """Delete the cache writer's temporary files in ``directory`` not modified for ``older_than_seconds``.

    Only names of the writer's own pattern are touched (other ``*.tmp`` files are left alone), and only
    regular files. Returns the removed paths.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:  # no cache folder yet, or not readable: nothing to clean
        return []
    removed = []
    now = time.time()
    for entry in entries:
        if not _TEMPORARY_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than_seconds:
                continue
            os.unlink(entry.path)
        except OSError:  # removed meanwhile by another run, or not ours to delete
            continue
        removed.append(Path(entry.path))
    return removed


def tensor_splits(
    frames: np.ndarray, labels: np.ndarray, parts: Sequence[np.ndarray], positions: np.ndarray | None = None
) -> list[SpikeTensorDataset]:
    """One :class:`SpikeTensorDataset` per index array in ``parts`` (indices into the source data).

    ``positions`` maps a source index to its row in ``frames`` when ``frames`` holds only some samples.
    """
    datasets = []
    for part in parts:
        rows = part if positions is None else positions[part]
        datasets.append(
            SpikeTensorDataset(
                torch.from_numpy(np.ascontiguousarray(frames[rows], dtype=np.uint8)),
                torch.from_numpy(labels[part].astype(np.int64)),
                torch.from_numpy(part.astype(np.int64)),
            )
        )
    return datasets
