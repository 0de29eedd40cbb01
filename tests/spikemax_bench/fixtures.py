"""Tiny recorded data sets in the real on-disk formats tonic 1.7 reads, for offline tests.

Each writer puts files under ``root`` exactly where ``tonic.datasets.X(save_to=root)`` looks for them
(without the downloaded archives, which ``load_dataset`` does not need) and returns ``root``, the value
to pass as ``data_dir``. Every recording holds the same four events, at known places:

- at the start, an event whose position encodes the label (so a frame cell identifies the sample),
- one in the middle of the recording, one just before its end,
- and a last one exactly at the end, which tonic's ``ToFrame(n_time_bins=T)`` leaves out of every bin.

Counts: N-MNIST 3 train + 2 test recordings per digit; DVS Gesture 2 train + 1 test per gesture;
N-TIDIGITS18 3 train + 2 test per digit (plus one multi-digit train recording that single-digit mode
skips); SHD 3 train + 2 test per class (20 classes).

The lower-level writers (:func:`encode_nmnist`, :func:`write_ntidigits18_split`, :func:`write_shd_split`)
write any content in the same formats, so tests can also make damaged files: see ``test_data_integrity``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NMNIST_TRAIN_PER_CLASS, NMNIST_TEST_PER_CLASS = 3, 2
DVSGESTURE_TRAIN_FOLDERS = ("user01_fluorescent", "user02_led")
DVSGESTURE_TEST_FOLDERS = ("user24_natural",)
AUDIO_TRAIN_PER_CLASS, AUDIO_TEST_PER_CLASS = 3, 2
NTIDIGITS_LABEL_CHARACTERS = "o123456789z"  # tonic's class_map: "o" (oh) -> 0, ..., "z" (zero) -> 10


def nmnist_events(label: int, sample: int) -> list[tuple[int, int, int, int]]:
    """(x, y, polarity, t in µs) of one N-MNIST fixture recording; the recording spans 0..300 ms."""
    return [(2 + label, 5 + sample, 1, 0), (20, 30, 0, 150_000), (33, 33, 1, 299_999), (0, 0, 0, 300_000)]


def encode_nmnist(events: list[tuple[int, int, int, int]]) -> bytes:
    """N-MNIST's binary format: 5 bytes an event, x, y, then polarity (bit 7) and a 23-bit µs timestamp."""
    encoded = bytearray()
    for x, y, polarity, time in events:
        encoded += bytes([x, y, (polarity << 7) | ((time >> 16) & 0x7F), (time >> 8) & 0xFF, time & 0xFF])
    return bytes(encoded)


def write_nmnist_fixture(root: Path) -> Path:
    """``root/NMNIST/{Train,Test}/<digit>/<id>.bin``."""
    for folder, per_class in (("Train", NMNIST_TRAIN_PER_CLASS), ("Test", NMNIST_TEST_PER_CLASS)):
        for label in range(10):
            directory = root / "NMNIST" / folder / str(label)
            directory.mkdir(parents=True, exist_ok=True)
            for sample in range(per_class):
                (directory / f"{label * 100 + sample:05d}.bin").write_bytes(encode_nmnist(nmnist_events(label, sample)))
    return root


def dvsgesture_events(label: int) -> np.ndarray:
    """Rows (x, y, polarity, t in ms) of one DVS Gesture fixture recording; it spans 0..2 s."""
    return np.array([(4 * label + 1, 8, 1, 0), (127, 127, 0, 1000), (64, 0, 1, 1999), (0, 0, 0, 2000)], np.int32)


def write_dvsgesture_fixture(root: Path) -> Path:
    """``root/DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy`` (tonic's preprocessed
    release: one ``[events, 4]`` array of x, y, p, t in ms per gesture)."""
    for split, folders in (("ibmGestureTrain", DVSGESTURE_TRAIN_FOLDERS), ("ibmGestureTest", DVSGESTURE_TEST_FOLDERS)):
        for folder in folders:
            directory = root / "DVSGesture" / split / folder
            directory.mkdir(parents=True, exist_ok=True)
            for label in range(11):
                np.save(directory / f"{label}.npy", dvsgesture_events(label))
    return root


def audio_events(label: int) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, channels) of one N-TIDIGITS18 or SHD fixture recording; it spans 0..1 s."""
    return np.array([0.0, 0.5, 0.999, 1.0]), np.array([label, 40, 63, 0])


def write_ntidigits18_fixture(root: Path) -> Path:
    """``root/NTIDIGITS18/n-tidigits.hdf5``: ``{split}_labels`` (sample ids ending in the digits spoken)
    and ``{split}_addresses/<id>``, ``{split}_timestamps/<id>`` per recording."""
    import h5py

    directory = root / "NTIDIGITS18"
    directory.mkdir(parents=True, exist_ok=True)
    with h5py.File(directory / "n-tidigits.hdf5", "w") as file:
        for split, per_class in (("train", AUDIO_TRAIN_PER_CLASS), ("test", AUDIO_TEST_PER_CLASS)):
            ids, recordings = [], {}
            for label, character in enumerate(NTIDIGITS_LABEL_CHARACTERS):
                for sample in range(per_class):
                    ids.append(f"man-s{sample}{character}-{character}")
                    recordings[ids[-1]] = audio_events(label)
            if split == "train":  # a recording of three digits: not a single-digit sample
                ids.insert(5, "man-s9-1o2")
                recordings["man-s9-1o2"] = (np.array([0.0, 0.1]), np.array([1, 2]))
            write_ntidigits18_split(file, split, ids, recordings)
    return root


def write_ntidigits18_split(
    file, split: str, label_ids: list[str], recordings: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """One split into an open ``h5py.File``: ``{split}_labels`` = ``label_ids`` (bytes), and per sample id
    of ``recordings`` its ``(times in s, channel addresses)`` as ``{split}_timestamps/<id>`` (float64) and
    ``{split}_addresses/<id>`` (uint8). The ids of the two need not match (for damaged files)."""
    for sample_id, (times, channels) in recordings.items():
        file[f"{split}_addresses/{sample_id}"] = np.asarray(channels).astype(np.uint8)
        file[f"{split}_timestamps/{sample_id}"] = np.asarray(times, dtype=np.float64)
    file[f"{split}_labels"] = np.array([sample_id.encode() for sample_id in label_ids])


def write_shd_fixture(root: Path) -> Path:
    """``root/SHD/shd_{train,test}.h5``: ragged ``spikes/times`` (s) and ``spikes/units``, ``labels``, and
    ``extra/keys`` and ``extra/speaker``, which tonic reads when it opens the file."""
    directory = root / "SHD"
    directory.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", AUDIO_TRAIN_PER_CLASS), ("test", AUDIO_TEST_PER_CLASS)):
        labels = np.repeat(np.arange(20), per_class).astype(np.uint16)
        events = [audio_events(int(label)) for label in labels]
        write_shd_split(
            directory / f"shd_{split}.h5", [times for times, _ in events], [units for _, units in events], labels
        )
    return root


def write_shd_split(path: Path, times: list[np.ndarray], units: list[np.ndarray], labels: np.ndarray) -> None:
    """One SHD file: ``spikes/times`` (float32, s) and ``spikes/units`` (uint16), one ragged row per recording
    of ``times`` and ``units``; ``labels`` as given (its dtype and length too, for damaged files); and the
    ``extra/keys`` and ``extra/speaker`` tonic reads."""
    import h5py

    with h5py.File(path, "w") as file:
        times_data = file.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float32))
        units_data = file.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for index, recording_times in enumerate(times):
            times_data[index] = recording_times
        for index, recording_units in enumerate(units):
            units_data[index] = recording_units
        file["labels"] = labels
        file["extra/keys"] = np.array([f"word-{label}".encode() for label in range(20)])
        file["extra/speaker"] = (np.arange(len(labels)) % 5).astype(np.uint16)
