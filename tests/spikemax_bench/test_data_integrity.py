"""The recorded sets' files are checked when loaded: every bad case below is a file in the set's real
on-disk format, and must stop ``load_dataset`` with :class:`InvalidDatasetError` naming the file and the
problem (instead of training on empty frames, or failing mid-training)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from spikemax_bench.data import DatasetError, InvalidDatasetError, load_dataset

from .fixtures import (
    NTIDIGITS_LABEL_CHARACTERS,
    audio_events,
    dvsgesture_events,
    encode_nmnist,
    nmnist_events,
    write_dvsgesture_fixture,
    write_nmnist_fixture,
    write_ntidigits18_fixture,
    write_ntidigits18_split,
    write_shd_fixture,
    write_shd_split,
)


def assert_invalid(name: str, data_dir: Path, *fragments: str, **options) -> InvalidDatasetError:
    """Loading fails with InvalidDatasetError (a DatasetError and a ValueError) whose message holds every
    fragment, literally."""
    with pytest.raises(InvalidDatasetError) as caught:
        load_dataset(name, data_dir=data_dir, **options)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(caught.value, DatasetError) and isinstance(caught.value, ValueError)
    return caught.value


# ---------------------------------------------------------------------------------------------- N-MNIST


def nmnist_files(root: Path, split: str = "Train") -> list[Path]:
    return sorted((root / "NMNIST" / split).rglob("*.bin"))


def test_nmnist_all_empty_files(tmp_path):
    write_nmnist_fixture(tmp_path)
    for path in nmnist_files(tmp_path):
        path.write_bytes(b"")
    assert_invalid(
        "nmnist", tmp_path, str(tmp_path / "NMNIST" / "Train"), "all 30 training recordings used are empty",
        "0/00000.bin",
    )  # fmt: skip


def test_nmnist_random_garbage_bytes(tmp_path):
    write_nmnist_fixture(tmp_path)
    garbage = tmp_path / "NMNIST" / "Test" / "4" / "00401.bin"
    # 8 "events" of random bytes: x is the first byte of each, uniform in 0..255, so most fall off the sensor.
    garbage.write_bytes(np.random.default_rng(7).integers(0, 256, 40, dtype=np.uint8).tobytes())
    assert_invalid("nmnist", tmp_path, str(garbage), "x coordinates must lie in the sensor's range [0, 34)")


def test_nmnist_truncated_file(tmp_path):
    write_nmnist_fixture(tmp_path)
    truncated = tmp_path / "NMNIST" / "Train" / "7" / "00702.bin"
    truncated.write_bytes(encode_nmnist(nmnist_events(7, 2))[:13])
    assert_invalid("nmnist", tmp_path, str(truncated), "its size, 13 bytes, is not a multiple of 5")


def test_nmnist_folder_that_is_not_a_digit(tmp_path):
    """tonic takes the folder name's last character as the label: a folder "13" would silently be class 3."""
    write_nmnist_fixture(tmp_path)
    (tmp_path / "NMNIST" / "Train" / "3").rename(tmp_path / "NMNIST" / "Train" / "13")
    assert_invalid("nmnist", tmp_path, str(tmp_path / "NMNIST" / "Train" / "13" / "00300.bin"), "folder '13'")


def test_nmnist_some_recordings_too_short_warn_with_their_count(tmp_path):
    write_nmnist_fixture(tmp_path)
    # Spans of 29 µs and 0 µs (one event), and an empty file: fewer than T = 30 µs, so 30 empty frames.
    short = [(1, 1, 1, 0), (2, 2, 0, 29)]
    (tmp_path / "NMNIST" / "Train" / "0" / "00000.bin").write_bytes(encode_nmnist(short))
    (tmp_path / "NMNIST" / "Train" / "5" / "00501.bin").write_bytes(encode_nmnist(short[:1]))
    (tmp_path / "NMNIST" / "Test" / "9" / "00900.bin").write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        dataset = load_dataset("nmnist", data_dir=tmp_path)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2, messages
    assert "2 of the 30 training recordings used (0 of them empty) span less than T = 30 µs" in messages[0]
    assert "0/00000.bin" in messages[0] and "5/00501.bin" in messages[0]
    assert "1 of the 20 test recordings used (1 of them empty)" in messages[1] and "9/00900.bin" in messages[1]
    assert len(dataset.train) + len(dataset.validation) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 29 µs is long enough for 29 bins of 1 µs: no warning at T = 29
        (tmp_path / "NMNIST" / "Train" / "5" / "00501.bin").write_bytes(encode_nmnist(short))
        (tmp_path / "NMNIST" / "Test" / "9" / "00900.bin").write_bytes(encode_nmnist(short))
        load_dataset("nmnist", data_dir=tmp_path, time_steps=29)


def test_nmnist_every_recording_too_short_for_time_steps(tmp_path):
    write_nmnist_fixture(tmp_path)
    for path in nmnist_files(tmp_path):
        path.write_bytes(encode_nmnist([(3, 3, 1, 1000), (4, 4, 0, 1500)]))  # 500 µs each
    assert_invalid("nmnist", tmp_path, str(tmp_path / "NMNIST" / "Train"), "every frame would be empty",
                   "Use --time-steps 500 or fewer", time_steps=501)  # fmt: skip
    # At T = 500, bins of 1 µs: the first event is in bin 0, the last, at the very end, in none.
    assert load_dataset("nmnist", data_dir=tmp_path, time_steps=500, quick=True).train[0][0].sum() == 1


# ------------------------------------------------------------------------------------------ DVS Gesture


def dvsgesture_file(root: Path, label: int = 3) -> Path:
    return root / "DVSGesture" / "ibmGestureTrain" / "user02_led" / f"{label}.npy"


def test_dvsgesture_polarity_outside_the_channels(tmp_path):
    write_dvsgesture_fixture(tmp_path)
    events = dvsgesture_events(3)
    events[1, 2] = 2
    np.save(dvsgesture_file(tmp_path), events)
    assert_invalid("dvsgesture", tmp_path, str(dvsgesture_file(tmp_path)),
                   "polarities must lie in the polarity's range [0, 2); they span [0, 2]")  # fmt: skip


def test_dvsgesture_nan_time(tmp_path):
    write_dvsgesture_fixture(tmp_path)
    events = dvsgesture_events(3).astype(np.float64)
    events[2, 3] = np.nan
    np.save(dvsgesture_file(tmp_path), events)
    assert_invalid("dvsgesture", tmp_path, str(dvsgesture_file(tmp_path)), "times must be finite; 1 of 4")


def test_dvsgesture_label_outside_the_classes(tmp_path):
    write_dvsgesture_fixture(tmp_path)
    np.save(dvsgesture_file(tmp_path, label=11), dvsgesture_events(10))  # 11 gestures: labels 0..10
    assert_invalid("dvsgesture", tmp_path, str(dvsgesture_file(tmp_path, label=11)),
                   "is 11, outside the class range [0, 11)")  # fmt: skip


def test_dvsgesture_array_of_the_wrong_shape(tmp_path):
    write_dvsgesture_fixture(tmp_path)
    np.save(dvsgesture_file(tmp_path), dvsgesture_events(3)[:, :3])
    assert_invalid("dvsgesture", tmp_path, str(dvsgesture_file(tmp_path)), "[events, 4]", "shape (4, 3)")


# -------------------------------------------------------------------------------------------------- SHD


def shd_recordings(num_recordings: int = 60) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The fixture's training split: 3 recordings of each of the 20 classes."""
    labels = np.repeat(np.arange(20), 3).astype(np.uint16)[:num_recordings]
    events = [audio_events(int(label)) for label in labels]
    return [times for times, _ in events], [units for _, units in events], labels


def write_bad_shd(root: Path, times=None, units=None, labels=None) -> Path:
    """The SHD fixture with its training file rewritten from the given parts (the fixture's otherwise)."""
    write_shd_fixture(root)
    good_times, good_units, good_labels = shd_recordings()
    path = root / "SHD" / "shd_train.h5"
    write_shd_split(
        path,
        good_times if times is None else times,
        good_units if units is None else units,
        good_labels if labels is None else labels,
    )
    return path


def test_shd_nan_times(tmp_path):
    times, _, _ = shd_recordings()
    times[5] = np.array([0.0, np.nan, 0.999, 1.0])
    path = write_bad_shd(tmp_path, times=times)
    assert_invalid("shd", tmp_path, str(path), "times of recording 5 must be finite; 1 of 4 are NaN or infinite")


def test_shd_negative_times(tmp_path):
    times, _, _ = shd_recordings()
    times[8] = np.array([-0.25, 0.5, 0.999, 1.0])
    path = write_bad_shd(tmp_path, times=times)
    assert_invalid("shd", tmp_path, str(path), "times of recording 8 must be non-negative; 1 of 4 are negative",
                   "the smallest is -0.25")  # fmt: skip


@pytest.mark.parametrize(("num_labels", "relation"), [(59, "fewer"), (61, "more")])
def test_shd_labels_and_recordings_that_do_not_pair_up(tmp_path, num_labels, relation):
    labels = np.resize(np.repeat(np.arange(20), 3), num_labels).astype(np.uint16)
    path = write_bad_shd(tmp_path, labels=labels)
    assert_invalid("shd", tmp_path, str(path), f"{num_labels} labels but 60 recordings in 'spikes/times'",
                   f"({relation} labels than recordings)")  # fmt: skip


def test_shd_float_labels(tmp_path):
    labels = np.repeat(np.arange(20), 3).astype(np.float64)
    labels[4] = 2.5
    path = write_bad_shd(tmp_path, labels=labels)
    assert_invalid("shd", tmp_path, str(path), "labels must be integers, got float64 values such as 2.5",
                   "recording 4")  # fmt: skip


def test_shd_float_labels_with_integral_values_are_read(tmp_path):
    write_bad_shd(tmp_path, labels=np.repeat(np.arange(20), 3).astype(np.float32))
    dataset = load_dataset("shd", data_dir=tmp_path)
    assert sorted(dataset.train.labels.tolist() + dataset.validation.labels.tolist()) == sorted(
        np.repeat(np.arange(20), 3).tolist())  # fmt: skip


def test_shd_label_outside_the_classes(tmp_path):
    labels = np.repeat(np.arange(20), 3).astype(np.uint16)
    labels[59] = 20
    path = write_bad_shd(tmp_path, labels=labels)
    assert_invalid("shd", tmp_path, str(path), "the label of recording 59 is 20, outside the class range [0, 20)")


def test_shd_channel_outside_the_cochlea(tmp_path):
    _, units, _ = shd_recordings()
    units[3] = np.array([3, 40, 700, 0])
    path = write_bad_shd(tmp_path, units=units)
    assert_invalid("shd", tmp_path, str(path), "channels of recording 3 must lie in the cochlea's range [0, 700)")


def test_shd_times_and_units_of_different_lengths(tmp_path):
    _, units, _ = shd_recordings()
    units[6] = units[6][:3]
    path = write_bad_shd(tmp_path, units=units)
    assert_invalid("shd", tmp_path, str(path), "recording 6 has (4,) times", "but (3,) channels")


def test_shd_all_recordings_empty(tmp_path):
    empty = [np.zeros(0)] * 60
    path = write_bad_shd(tmp_path, times=empty, units=empty)
    assert_invalid("shd", tmp_path, str(path), "all 60 training recordings used are empty (no events)")


# ----------------------------------------------------------------------------------------- N-TIDIGITS18


def write_bad_ntidigits(root: Path, label_ids: list[str], recordings: dict) -> Path:
    """The N-TIDIGITS18 fixture with its test split replaced by ``label_ids`` and ``recordings``."""
    import h5py

    write_ntidigits18_fixture(root)
    path = root / "NTIDIGITS18" / "n-tidigits.hdf5"
    with h5py.File(path, "a") as file:
        for name in ("test_labels", "test_addresses", "test_timestamps"):
            del file[name]
        write_ntidigits18_split(file, "test", label_ids, recordings)
    return path


def good_ntidigits_test_split() -> tuple[list[str], dict]:
    ids = [f"woman-s{character}-{character}" for character in NTIDIGITS_LABEL_CHARACTERS]
    return ids, {sample_id: audio_events(label) for label, sample_id in enumerate(ids)}


def test_ntidigits_label_without_a_recording(tmp_path):
    ids, recordings = good_ntidigits_test_split()
    del recordings[ids[4]]
    path = write_bad_ntidigits(tmp_path, ids, recordings)
    assert_invalid("ntidigits18", tmp_path, str(path), "11 labels in test_labels but 10 recordings in test_",
                   "1 labels without a recording (fewer recordings than labels), e.g. ['woman-s4-4']")  # fmt: skip


def test_ntidigits_recording_without_a_label_is_left_out_with_a_warning(tmp_path):
    ids, recordings = good_ntidigits_test_split()
    path = write_bad_ntidigits(tmp_path, ids[:-1], recordings)
    with pytest.warns(UserWarning) as caught:
        dataset = load_dataset("ntidigits18", data_dir=tmp_path)
    (message,) = [str(warning.message) for warning in caught]
    assert str(path) in message and "1 recordings in test_addresses or test_timestamps have no label" in message
    assert "which names 10 (more recordings than labels)" in message
    assert "['woman-sz-z']" in message
    assert len(dataset.test) == 10 and 10 not in dataset.test.labels.tolist()


def test_ntidigits_label_that_is_not_a_digit(tmp_path):
    ids, recordings = good_ntidigits_test_split()
    ids.append("woman-sx-x")
    recordings["woman-sx-x"] = audio_events(1)
    path = write_bad_ntidigits(tmp_path, ids, recordings)
    assert_invalid("ntidigits18", tmp_path, str(path), "recording 'woman-sx-x' is labelled 'x'",
                   "not one of the digits o123456789z")  # fmt: skip


@pytest.mark.parametrize(
    ("times", "addresses", "problem"),
    [
        ([0.0, np.inf, 0.999, 1.0], [2, 40, 63, 0], "times of recording 'woman-s2-2' must be finite; 1 of 4"),
        ([0.0, 0.5, 0.999, 1.0], [2, 64, 63, 0], "channels of recording 'woman-s2-2' must lie in the cochlea's "
         "range [0, 64); they span [0, 64] (1 of 4 events outside)"),
    ],
)  # fmt: skip
def test_ntidigits_bad_timestamps_or_addresses(tmp_path, times, addresses, problem):
    ids, recordings = good_ntidigits_test_split()
    recordings[ids[2]] = (np.array(times), np.array(addresses))
    path = write_bad_ntidigits(tmp_path, ids, recordings)
    assert_invalid("ntidigits18", tmp_path, str(path), problem)


# ------------------------------------------------------------------------------------------- quick runs


def test_quick_checks_only_the_recordings_it_uses(tmp_path):
    """A smoke run reads 32 of the 40 test recordings; a damaged one outside them does not stop it, a
    damaged one inside them does."""
    write_shd_fixture(tmp_path)
    labels = np.repeat(np.arange(20), 2).astype(np.uint16)
    times, units = (list(parts) for parts in zip(*(audio_events(int(label)) for label in labels), strict=True))
    used = set(load_dataset("shd", data_dir=tmp_path, quick=True, time_steps=10).test.source_indices.tolist())
    assert len(used) == 32
    unused, inside = min(set(range(40)) - used), min(used)
    path = tmp_path / "SHD" / "shd_test.h5"
    times[unused] = np.array([np.nan, 0.5, 0.999, 1.0])
    write_shd_split(path, times, units, labels)
    assert len(load_dataset("shd", data_dir=tmp_path, quick=True, time_steps=10).test) == 32
    assert_invalid("shd", tmp_path, str(path), f"times of recording {unused} must be finite")
    times[unused] = times[inside]
    times[inside] = np.array([np.nan, 0.5, 0.999, 1.0])
    write_shd_split(path, times, units, labels)
    assert_invalid("shd", tmp_path, str(path), f"times of recording {inside} must be finite", quick=True)
