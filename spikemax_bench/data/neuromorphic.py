"""Recorded neuromorphic data sets through tonic 1.7: ``nmnist``, ``dvsgesture``, ``ntidigits18``, ``shd``.

Files are read from ``data_dir`` in tonic's own layout (``tonic.datasets.X(save_to=data_dir)`` looks in
``data_dir/X/``); see :data:`~spikemax_bench.data.sources.SOURCES` for the paths each set needs. Nothing is
fetched unless ``download=True``, which hands over to tonic's own download: tonic's classes are subclassed so that a
missing file raises :class:`DatasetNotFoundError` instead of reaching the network, and so that the
extracted files are enough (tonic also wants the downloaded archive next to them).

Events become frames with ``tonic.transforms.ToFrame(sensor_size, n_time_bins=T)``: each recording's
span, from its first to its last event, is cut into T equal bins (of ``span // T`` µs, so the last
event and any remainder after the T-th bin fall outside every bin). Frames are then binarized: a cell is
1 when at least one event of that polarity (channel) fell in it. DVS Gesture's 128×128 sensor is first
reduced to 32×32 with ``tonic.transforms.Downsample(spatial_factor=0.25)``. For the event sets the frame
channel is tonic's polarity value ``p`` (0 or 1). Recordings are read lazily, one item at a time.

Splits: tonic's official test set is the test split; validation is carved from the official training set
(20 %, stratified, fixed per seed).

Before the data set is returned, its labels and the events of every recording it uses are checked
(:mod:`.integrity`): a bad file raises :class:`InvalidDatasetError` at load time, naming the file and the
problem, instead of failing mid-training or training on empty frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import integrity
from .base import (
    QUICK_SIZES,
    DatasetNotFoundError,
    InvalidDatasetError,
    ProgressHook,
    SpikeDataset,
    class_balanced_subset,
    default_cache_dir,
    split_validation,
)
from .sources import SOURCES, RecordedSource

# Errors tonic, h5py and NumPy raise on a truncated or garbled file.
_READ_ERRORS = (OSError, ValueError, IndexError, KeyError, AssertionError, EOFError, TypeError)


def default_data_dir() -> Path:
    """Where recorded data sets are looked for (and downloaded to) when no ``data_dir`` is given."""
    return default_cache_dir() / "datasets"


def _guarded_tonic_class(source: RecordedSource, allow_download: bool) -> type:
    """tonic's class for ``source``, but with our existence check and a download that needs permission."""
    import tonic.datasets

    tonic_class = getattr(tonic.datasets, source.tonic_class)

    class Guarded(tonic_class):  # type: ignore[misc, valid-type]
        def __init__(self, save_to: str, train: bool, **options: object) -> None:
            self._wants_train_split = train  # SHD does not keep `train`; its files differ per split
            super().__init__(save_to, train=train, **options)

        def _check_exists(self) -> bool:
            return not source.missing_paths(Path(self.location_on_system).parent, self._wants_train_split)

        def download(self) -> None:
            data_dir = Path(self.location_on_system).parent
            if not allow_download:
                raise source.not_found(data_dir, source.missing_paths(data_dir, self._wants_train_split))
            super().download()

    # tonic derives the folder under save_to from the class name.
    Guarded.__name__ = Guarded.__qualname__ = tonic_class.__name__
    return Guarded


def open_recordings(source: RecordedSource, data_dir: Path, train: bool, allow_download: bool) -> Dataset:
    """tonic's dataset object for one split (events come out raw; framing is done by us)."""
    guarded = _guarded_tonic_class(source, allow_download)
    try:
        recordings = guarded(str(data_dir), train=train, **source.tonic_options)
    except DatasetNotFoundError:
        raise
    except _READ_ERRORS as error:
        path, _ = source.split_path(data_dir, train)
        raise InvalidDatasetError(
            f"could not open {source.name!r} at {path}: {type(error).__name__}: {error}. The file may be "
            f"truncated or corrupt: delete it and run again with --download, or replace it."
        ) from error
    missing = source.missing_paths(data_dir, train)
    if missing:  # tonic's download ran but did not leave the files where they are read from
        raise source.not_found(data_dir, missing)
    data = getattr(recordings, "data", None)
    if isinstance(data, list) and data and isinstance(data[0], str):
        # tonic lists DVS Gesture's user folders in directory order, which differs between file systems.
        order = sorted(range(len(data)), key=data.__getitem__)
        for attribute in ("data", "targets", "users", "lighting"):
            values = getattr(recordings, attribute, None)
            if isinstance(values, list) and len(values) == len(order):
                setattr(recordings, attribute, [values[position] for position in order])
    return recordings


def events_to_frames(events: np.ndarray, source: RecordedSource, time_steps: int) -> np.ndarray:
    """One recording's events (tonic's structured array) as binary frames.

    Shape:
        Output: ``bool [T, *source.input_shape]``: ``[T, P, H, W]`` for events, ``[T, C]`` for channels.
    """
    import tonic.transforms

    width, height, _ = source.sensor_size
    if len(events) == 0:
        return np.zeros((time_steps, *source.input_shape), dtype=bool)
    _check_coordinates(events, "x", width)
    if "y" in events.dtype.names:
        _check_coordinates(events, "y", height)
    times = events["t"]
    if np.any(times[1:] < times[:-1]):  # tonic's binning assumes time order
        events = events[np.argsort(times, kind="stable")]
    if source.frame_size != source.sensor_size:
        factor = source.frame_size[0] / source.sensor_size[0]
        events = tonic.transforms.Downsample(spatial_factor=factor)(events)
    counts = tonic.transforms.ToFrame(sensor_size=source.frame_size, n_time_bins=time_steps)(events)
    return (counts > 0).reshape(time_steps, *source.input_shape)


def _check_coordinates(events: np.ndarray, axis: str, size: int) -> None:
    values = events[axis]
    if values.min() < 0 or values.max() >= size:
        raise ValueError(f"event {axis} coordinates must lie in [0, {size}), got [{values.min()}, {values.max()}]")


class RecordedFramesDataset(Dataset):
    """Some recordings of one tonic split, converted to binary frames on access.

    Attributes:
        labels: ``int64 [N]``; source_indices: ``int64 [N]``, the recordings' indices in the tonic split.

    Items: ``(float32 [T, *input_shape], int label)``.
    """

    def __init__(
        self, source: RecordedSource, recordings: Dataset, indices: np.ndarray, labels: np.ndarray, time_steps: int
    ) -> None:
        self.source = source
        self.recordings = recordings
        self.source_indices = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        self.labels = torch.from_numpy(np.asarray(labels[indices], dtype=np.int64))
        self.time_steps = time_steps

    def __len__(self) -> int:
        return len(self.source_indices)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        recording = int(self.source_indices[index])
        try:
            events, _ = self.recordings[recording]
            frames = events_to_frames(events, self.source, self.time_steps)
        except _READ_ERRORS as error:
            raise InvalidDatasetError(
                f"could not read recording {recording} of {self.source.name!r} ({self._where(recording)}): "
                f"{type(error).__name__}: {error}. The file may be truncated or corrupt: delete it and run "
                f"again with --download, or replace it."
            ) from error
        # Converted by NumPy: torch splits a conversion this size across threads, which costs more than it saves.
        return torch.from_numpy(frames.astype(np.float32)), int(self.labels[index])

    def _where(self, recording: int) -> str:
        data = getattr(self.recordings, "data", None)
        if isinstance(data, list) and recording < len(data) and isinstance(data[recording], str):
            return data[recording]
        return str(self.recordings.location_on_system)


def build_recorded(
    name: str,
    *,
    time_steps: int,
    seed: int,
    data_dir: str | Path | None,
    download: bool,
    quick: bool,
    progress: ProgressHook,
) -> SpikeDataset:
    source = SOURCES[name]
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    missing = source.missing_paths(data_dir)
    if missing and not download:
        raise source.not_found(data_dir, missing)
    with progress(f"{name}: indexing recordings", 2) as task:
        train_recordings = open_recordings(source, data_dir, train=True, allow_download=download)
        task.advance()
        test_recordings = open_recordings(source, data_dir, train=False, allow_download=download)
        task.advance()
    train_labels = integrity.checked_labels(source, train_recordings)
    test_labels = integrity.checked_labels(source, test_recordings)
    train, validation = split_validation(np.arange(len(train_labels)), train_labels, seed)
    test = np.arange(len(test_labels))
    if quick:
        train, validation, test = (
            class_balanced_subset(part, labels, size)
            for part, labels, size in zip(
                (train, validation, test), (train_labels, train_labels, test_labels), QUICK_SIZES, strict=True
            )
        )
    with progress(f"{name}: checking recordings", len(train) + len(validation) + len(test)) as task:
        integrity.check_recordings(
            source, train_recordings, np.sort(np.concatenate([train, validation])), time_steps, "training"
        )
        task.advance(len(train) + len(validation))
        integrity.check_recordings(source, test_recordings, test, time_steps, "test")
        task.advance(len(test))

    def frames_of(recordings: Dataset, indices: np.ndarray, labels: np.ndarray) -> RecordedFramesDataset:
        return RecordedFramesDataset(source, recordings, indices, labels, time_steps)

    return SpikeDataset(
        name=name,
        train=frames_of(train_recordings, train, train_labels),
        validation=frames_of(train_recordings, validation, train_labels),
        test=frames_of(test_recordings, test, test_labels),
        input_shape=source.input_shape,
        num_classes=len(source.class_names),
        time_steps=time_steps,
        kind=source.kind,
        class_names=source.class_names,
        description=f"{source.description} (binary frames {'×'.join(map(str, source.input_shape))}, T={time_steps})",
    )
