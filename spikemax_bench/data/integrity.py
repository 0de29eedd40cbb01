"""Checks of a recorded data set's files, run by ``load_dataset`` before any training.

Without them a bad file surfaces mid-training as a traceback, or not at all: an empty or too short
recording becomes all-zero frames, a NaN time a huge negative integer, a float label is truncated, labels
without recordings (or the reverse) are silently dropped. Every problem raises
:class:`InvalidDatasetError` naming the file (and the recording in it) and the problem.

Labels (every recording of both splits, read without the events; see :func:`checked_labels`):
integers in ``[0, classes)``; as many as recordings. N-MNIST: a recording's folder is its digit;
DVS Gesture: its file name; SHD: ``labels`` as long as ``spikes/times`` and ``spikes/units``;
N-TIDIGITS18: every sample id of ``{split}_labels`` has ``{split}_addresses/<id>`` and
``{split}_timestamps/<id>``, and the digit it names is one of ``o1…9z``; recordings that no sample id names
are left out with a warning (tonic never reaches them).

Events (the recordings the data set uses: all of them, or the ``quick`` subsets; see
:func:`check_recordings`), read from the raw file, before tonic converts times to integer µs: a readable
file in its format (N-MNIST: a multiple of 5 bytes); coordinates (``x``, ``y``, channel) inside the sensor;
polarity 0 or 1; times finite and non-negative; as many times as addresses.

Time window: tonic's ``ToFrame(n_time_bins=T)`` cuts a recording's span (last − first event time, in
integer µs) into T bins of ``span // T`` µs. A recording whose span is shorter than T µs (which includes an
empty recording and one of a single event) gets bins of 0 µs: T empty frames. Such recordings are counted
and reported with a warning; when every used recording of a split is like that (all empty, for one), there
is nothing to learn from and :class:`InvalidDatasetError` is raised.

Cost: one pass over the used files, measured here on 2 busy cores with the files in the page cache: N-MNIST
(4,500-event files) 0.12 ms a recording, so about 9 s for its 70,000; SHD 0.05 ms a recording (blocks of
256 per HDF5 read), about 0.5 s for its 10,420. Cold, the pass is bounded by reading the files once, which
the first epoch then finds in the page cache. A ``quick`` run reads its 128 recordings at most.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import InvalidDatasetError
from .sources import RecordedSource

if TYPE_CHECKING:
    from torch.utils.data import Dataset

_REPAIR = "delete it and run again with --download, or replace it"
# Errors NumPy and h5py raise on a file that is not in the expected format.
_FORMAT_ERRORS = (OSError, ValueError, IndexError, KeyError, EOFError, TypeError)
_NMNIST_EVENT_BYTES = 5
_HDF5_BLOCK = 256  # recordings read per h5py call: one call per recording costs more than the reading
_EXAMPLES = 3  # recordings named in a message, at most


def recording_path(source: RecordedSource, recordings: Dataset, index: int | None = None) -> str:
    """The file holding recording ``index`` (the split's file for the HDF5 sets, where ``index`` is ignored)."""
    if source.tonic_class == "SHD":
        return str(Path(recordings.location_on_system) / recordings.data_filename)
    if source.tonic_class == "NTIDIGITS18":
        return str(recordings.file_path)
    return str(recordings.data[index]) if index is not None else str(recordings.location_on_system)


def _invalid(path: str, problem: str) -> InvalidDatasetError:
    return InvalidDatasetError(f"invalid file {path}: {problem}. If the file is damaged, {_REPAIR}.")


# ------------------------------------------------------------------------------------------------ labels


def checked_labels(source: RecordedSource, recordings: Dataset) -> np.ndarray:
    """Every recording's label, ``int64 [N]``, checked (see the module docstring); no events are read."""
    num_classes = len(source.class_names)
    if source.tonic_class == "SHD":
        labels = _shd_labels(source, recordings)
    elif source.tonic_class == "NTIDIGITS18":
        labels = _ntidigits_labels(source, recordings)
    else:
        labels = _labels_from_paths(source, recordings)
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(outside):
        index = int(outside[0])
        raise _invalid(
            recording_path(source, recordings, index if source.kind == "events" else None),
            f"the label of recording {index} is {labels[index]}, outside the class range [0, {num_classes}) "
            f"({len(outside)} labels outside it)",
        )
    return labels.astype(np.int64)


def _labels_from_paths(source: RecordedSource, recordings: Dataset) -> np.ndarray:
    """N-MNIST and DVS Gesture: tonic's targets, checked against the names they are parsed from."""
    labels = np.asarray(recordings.targets, dtype=np.int64)
    if len(labels) != len(recordings.data):
        raise _invalid(
            recording_path(source, recordings),
            f"tonic listed {len(recordings.data)} recordings but {len(labels)} labels",
        )
    if source.tonic_class == "NMNIST":
        # tonic reads the digit as the folder name's last character: a folder "12" would silently be 2.
        for index, (path, label) in enumerate(zip(recordings.data, labels.tolist(), strict=True)):
            folder = Path(path).parent.name
            if folder != str(label):
                raise _invalid(
                    str(path),
                    f"recording {index} lies in folder {folder!r}; N-MNIST's folders must be named by their "
                    f"digit, 0 to 9",
                )
    return labels


def _shd_labels(source: RecordedSource, recordings: Dataset) -> np.ndarray:
    import h5py

    path = recording_path(source, recordings)
    try:
        with h5py.File(path, "r") as file:
            labels = np.asarray(file["labels"][()])
            counts = {name: len(file[name]) for name in ("spikes/times", "spikes/units")}
    except _FORMAT_ERRORS as error:
        raise _invalid(path, f"cannot read labels and spikes ({type(error).__name__}: {error})") from error
    if labels.ndim != 1:
        raise _invalid(path, f"'labels' must be one label per recording, [N], got shape {labels.shape}")
    for name, count in counts.items():
        if count != len(labels):
            relation = "fewer" if len(labels) < count else "more"
            raise _invalid(
                path,
                f"{len(labels)} labels but {count} recordings in {name!r} ({relation} labels than recordings)",
            )
    return _integral(labels, path, "labels")


def _integral(values: np.ndarray, path: str, what: str) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind != "f":
        raise _invalid(path, f"{what} must be integers, got dtype {values.dtype}")
    fractional = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if len(fractional):
        index = int(fractional[0])
        raise _invalid(
            path,
            f"{what} must be integers, got {values.dtype} values such as {values[index].item()!r} (recording {index}; "
            f"{len(fractional)} not integral)",
        )
    return values.astype(np.int64)


def _ntidigits_labels(source: RecordedSource, recordings: Dataset) -> np.ndarray:
    path = recording_path(source, recordings)
    split = recordings.partition
    try:
        file = recordings.data  # tonic's open h5py.File
        sample_ids = [raw.decode() for raw in file[f"{split}_labels"][()]]
        recorded = {name: set(file[f"{split}_{name}"].keys()) for name in ("addresses", "timestamps")}
    except (*_FORMAT_ERRORS, AttributeError, UnicodeDecodeError) as error:  # e.g. labels that are not strings
        raise _invalid(
            path, f"cannot read the {split} labels and recordings ({type(error).__name__}: {error})"
        ) from error
    if len(set(sample_ids)) != len(sample_ids):
        duplicates = sorted({sample for sample in sample_ids if sample_ids.count(sample) > 1})
        raise _invalid(path, f"{split}_labels names a recording twice: {', '.join(duplicates[:_EXAMPLES])}")
    for name, recorded_ids in recorded.items():
        missing = sorted(set(sample_ids) - recorded_ids)
        if missing:  # tonic would fail on them mid-training
            raise _invalid(
                path,
                f"{len(sample_ids)} labels in {split}_labels but {len(recorded_ids)} recordings in {split}_{name}: "
                f"{len(missing)} labels without a recording (fewer recordings than labels), e.g. "
                f"{missing[:_EXAMPLES]}",
            )
    unlabelled = sorted(set.union(*recorded.values()) - set(sample_ids))
    if unlabelled:
        # Unreachable rather than harmful (tonic lists recordings by their labels); a warning, in case a
        # release of the file holds such extras.
        warnings.warn(
            f"{source.name}: {path}: {len(unlabelled)} recordings in {split}_addresses or {split}_timestamps "
            f"have no label in {split}_labels, which names {len(sample_ids)} (more recordings than labels); they "
            f"are left out, e.g. {unlabelled[:_EXAMPLES]}",
            stacklevel=6,  # the caller of load_dataset
        )
    labels = []
    for sample in recordings._samples:  # the single-digit recordings tonic keeps
        digit = sample.split("-")[-1]
        if digit not in recordings.class_map:
            raise _invalid(
                path,
                f"recording {sample!r} is labelled {digit!r}, not one of the digits "
                f"{''.join(recordings.class_map)} (class range [0, {len(source.class_names)}))",
            )
        labels.append(recordings.class_map[digit])
    return np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- events


def check_recordings(
    source: RecordedSource, recordings: Dataset, indices: np.ndarray, time_steps: int, split: str
) -> None:
    """Check the events of recordings ``indices`` (see the module docstring); warn about those shorter than
    the time window, raise when all of them are.

    Raises:
        InvalidDatasetError: a file that cannot be read, an event outside the sensor, a time that is not
            finite and non-negative, or every recording too short for ``time_steps`` bins.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return
    num_events = np.zeros(len(indices), dtype=np.int64)
    spans = np.zeros(len(indices), dtype=np.int64)
    for position, (events, span) in enumerate(_read_events(source, recordings, indices)):
        num_events[position], spans[position] = events, span
    too_short = np.flatnonzero(spans < time_steps)
    if len(too_short) == 0:
        return
    examples = ", ".join(
        _recording_name(source, recordings, int(indices[position])) for position in too_short[:_EXAMPLES]
    )
    empty = int(np.count_nonzero(num_events[too_short] == 0))
    counts = f"{len(too_short)} of the {len(indices)} {split} recordings used ({empty} of them empty)"
    if len(too_short) < len(indices):
        warnings.warn(
            f"{source.name}: {counts} span less than T = {time_steps} µs from their first to their last event "
            f"(e.g. {examples}); tonic's ToFrame(n_time_bins={time_steps}) makes all their frames empty",
            stacklevel=4,
        )
        return
    longest = int(spans.max())
    if empty == len(indices):
        problem = f"all {len(indices)} {split} recordings used are empty (no events), e.g. {examples}"
    elif longest == 0:
        problem = (
            f"each of the {len(indices)} {split} recordings used has all its events at one instant, e.g. {examples}"
        )
    else:
        problem = (
            f"{counts} span less than T = {time_steps} µs from their first to their last event, e.g. {examples}, "
            f"so every frame would be empty. Use --time-steps {longest} or fewer (the longest span, in µs)"
        )
    raise InvalidDatasetError(
        f"nothing to learn from in {source.name!r} ({_split_location(source, recordings)}): {problem}"
    )


def _recording_name(source: RecordedSource, recordings: Dataset, index: int) -> str:
    """How a warning names one recording: its file name, or its id in the split's HDF5 file."""
    if source.tonic_class == "NTIDIGITS18":
        return repr(recordings._samples[index])
    if source.tonic_class == "SHD":
        return f"recording {index}"
    return str(Path(recordings.data[index]).relative_to(recordings.location_on_system))


def _split_location(source: RecordedSource, recordings: Dataset) -> str:
    if source.kind == "events":
        return str(Path(recordings.location_on_system) / recordings.folder_name)
    return recording_path(source, recordings)


def _read_events(source: RecordedSource, recordings: Dataset, indices: np.ndarray) -> Iterator[tuple[int, int]]:
    """(number of events, span in integer µs) of each recording of ``indices``, checking them on the way."""
    if source.tonic_class == "NMNIST":
        yield from _nmnist_events(source, recordings, indices)
    elif source.tonic_class == "DVSGesture":
        yield from _dvsgesture_events(source, recordings, indices)
    elif source.tonic_class == "SHD":
        yield from _shd_events(source, recordings, indices)
    else:
        yield from _ntidigits_events(source, recordings, indices)


def _nmnist_events(source: RecordedSource, recordings: Dataset, indices: np.ndarray) -> Iterator[tuple[int, int]]:
    from tonic.io import read_mnist_file

    width, height, _ = source.sensor_size
    for index in indices.tolist():
        path = str(recordings.data[index])
        try:
            size = Path(path).stat().st_size
            if size % _NMNIST_EVENT_BYTES:
                raise _invalid(
                    path,
                    f"its size, {size} bytes, is not a multiple of {_NMNIST_EVENT_BYTES} (N-MNIST events are "
                    f"{_NMNIST_EVENT_BYTES} bytes each): the file is truncated or not an N-MNIST recording",
                )
            # tonic's own decoding (it drops the timestamp-overflow markers, whose y is 240).
            events = read_mnist_file(path, dtype=recordings.dtype)
        except InvalidDatasetError:
            raise
        except _FORMAT_ERRORS as error:
            raise _invalid(path, f"cannot read it ({type(error).__name__}: {error})") from error
        _check_range(events["x"], width, path, "x coordinates", "sensor")
        _check_range(events["y"], height, path, "y coordinates", "sensor")
        yield len(events), _span(events["t"])


def _dvsgesture_events(source: RecordedSource, recordings: Dataset, indices: np.ndarray) -> Iterator[tuple[int, int]]:
    width, height, polarities = source.sensor_size
    for index in indices.tolist():
        path = str(recordings.data[index])
        try:
            # Our own file object: np.load leaves the file it opened unclosed when a zip is corrupt.
            with open(path, "rb") as stream:
                events = np.load(stream, allow_pickle=False)
                if not isinstance(events, np.ndarray):  # an .npz archive under an .npy name
                    raise ValueError(f"it is a {type(events).__name__} archive, not one array")
        except _FORMAT_ERRORS as error:
            raise _invalid(path, f"cannot read it as a NumPy array ({type(error).__name__}: {error})") from error
        if events.ndim != 2 or events.shape[1] != 4 or events.dtype.kind not in "iuf":
            raise _invalid(
                path,
                f"DVS Gesture files hold numbers [events, 4] (x, y, p, t in ms); got {events.dtype} "
                f"of shape {events.shape}",
            )
        _check_range(events[:, 0], width, path, "x coordinates", "sensor")
        _check_range(events[:, 1], height, path, "y coordinates", "sensor")
        _check_range(events[:, 2], polarities, path, "polarities", "polarity")
        times = _check_times(events[:, 3], path, "times")
        yield len(events), _span((times * 1000).astype(np.int64))  # tonic: ms -> µs


def _shd_events(source: RecordedSource, recordings: Dataset, indices: np.ndarray) -> Iterator[tuple[int, int]]:
    import h5py

    path = recording_path(source, recordings)
    channels = source.sensor_size[0]
    try:
        with h5py.File(path, "r") as file:
            times_data, units_data = file["spikes/times"], file["spikes/units"]
            for block in _blocks(indices):
                if np.all(np.diff(block) == 1):  # one contiguous read (always, for a full load)
                    times_block = times_data[int(block[0]) : int(block[-1]) + 1]
                    units_block = units_data[int(block[0]) : int(block[-1]) + 1]
                else:
                    times_block = [times_data[int(index)] for index in block]
                    units_block = [units_data[int(index)] for index in block]
                for index, times, units in zip(block.tolist(), times_block, units_block, strict=True):
                    yield _checked_audio(
                        np.asarray(times),
                        np.asarray(units),
                        channels,
                        path,
                        f"recording {index}",
                        "spikes/times",
                        "spikes/units",
                    )
    except InvalidDatasetError:
        raise
    except _FORMAT_ERRORS as error:
        raise _invalid(path, f"cannot read its spikes ({type(error).__name__}: {error})") from error


def _ntidigits_events(source: RecordedSource, recordings: Dataset, indices: np.ndarray) -> Iterator[tuple[int, int]]:
    path = recording_path(source, recordings)
    split = recordings.partition
    channels = source.sensor_size[0]
    for index in indices.tolist():
        sample = recordings._samples[index]
        try:
            times = np.asarray(recordings.data[f"{split}_timestamps"][sample])
            addresses = np.asarray(recordings.data[f"{split}_addresses"][sample])
        except _FORMAT_ERRORS as error:
            raise _invalid(path, f"cannot read recording {sample!r} ({type(error).__name__}: {error})") from error
        yield _checked_audio(
            times, addresses, channels, path, f"recording {sample!r}", f"{split}_timestamps", f"{split}_addresses"
        )


def _checked_audio(
    times: np.ndarray,
    channels: np.ndarray,
    num_channels: int,
    path: str,
    recording: str,
    times_name: str,
    channels_name: str,
) -> tuple[int, int]:
    """One audio recording (times in s, channel addresses), checked; (number of events, span in µs)."""
    if times.shape != channels.shape or times.ndim != 1:
        raise _invalid(
            path,
            f"{recording} has {times.shape} times in {times_name!r} but {channels.shape} channels in "
            f"{channels_name!r}; they must pair up, one each per event",
        )
    _check_range(channels, num_channels, path, f"channels of {recording}", "cochlea")
    times = _check_times(times, path, f"times of {recording}")
    # tonic stores float64(t) * 1e6 in an integer field, which truncates towards zero.
    return len(times), _span((times.astype(np.float64) * 1e6).astype(np.int64))


def _blocks(indices: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), _HDF5_BLOCK):
        yield indices[start : start + _HDF5_BLOCK]


def _check_range(values: np.ndarray, size: int, path: str, what: str, extent: str) -> None:
    if len(values) == 0:
        return
    if values.dtype.kind == "f":
        fractional = ~np.isfinite(values) | (values != np.round(values))
        if fractional.any():
            raise _invalid(path, f"{what} must be integers, got values such as {values[fractional][0].item()!r}")
    elif values.dtype.kind not in "iu":
        raise _invalid(path, f"{what} must be integers, got dtype {values.dtype}")
    low, high = values.min(), values.max()
    if low < 0 or high >= size:
        outside = int(np.count_nonzero((values < 0) | (values >= size)))
        raise _invalid(
            path,
            f"{what} must lie in the {extent}'s range [0, {size}); they span [{low}, {high}] "
            f"({outside} of {len(values)} events outside)",
        )


def _check_times(times: np.ndarray, path: str, what: str) -> np.ndarray:
    if len(times) == 0:
        return times
    if times.dtype.kind not in "iuf":
        raise _invalid(path, f"{what} must be numbers, got dtype {times.dtype}")
    not_finite = int(np.count_nonzero(~np.isfinite(times))) if times.dtype.kind == "f" else 0
    if not_finite:
        raise _invalid(path, f"{what} must be finite; {not_finite} of {len(times)} are NaN or infinite")
    negative = int(np.count_nonzero(times < 0))
    if negative:
        raise _invalid(
            path,
            f"{what} must be non-negative; {negative} of {len(times)} are negative (the smallest is {times.min()})",
        )
    return times


def _span(times_us: np.ndarray) -> int:
    return int(times_us.max() - times_us.min()) if len(times_us) else 0
