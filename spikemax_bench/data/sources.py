"""The recorded data sets: where each one's files are, how they are read and what frames they become.

Shared by the loader (:mod:`.neuromorphic`) and the checks of the files (:mod:`.integrity`), which both read a
:class:`RecordedSource` and import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import DatasetNotFoundError

__all__ = ["SOURCES", "RecordedSource"]


@dataclass(frozen=True)
class RecordedSource:
    """How one recorded data set is found, read and turned into frames."""

    name: str
    tonic_class: str  # the tonic.datasets class; also the folder tonic reads under save_to
    # Per split (train, test): a path relative to data_dir/tonic_class, and the glob of files a folder
    # must contain ("" when the path is a file).
    train_path: tuple[str, str]
    test_path: tuple[str, str]
    layout: str  # the layout in words, for the error message
    sensor_size: tuple[int, int, int]  # tonic's (W, H, P)
    frame_size: tuple[int, int, int]  # after downsampling, (W, H, P)
    default_time_steps: int
    kind: str
    class_names: tuple[str, ...]
    description: str
    tonic_options: dict[str, object] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        width, height, polarities = self.frame_size
        return (polarities, height, width) if self.kind == "events" else (width,)

    def expected_paths(self, data_dir: Path) -> list[tuple[Path, str]]:
        """(path, glob) of both splits; once when they share a file."""
        train, test = self.split_path(data_dir, True), self.split_path(data_dir, False)
        return [train] if train == test else [train, test]

    def split_path(self, data_dir: Path, train: bool) -> tuple[Path, str]:
        relative, pattern = self.train_path if train else self.test_path
        return data_dir / self.tonic_class / relative, pattern

    def missing_paths(self, data_dir: Path, train: bool | None = None) -> list[Path]:
        """The expected files or folders (of one split, or both) that are absent."""
        wanted = self.expected_paths(data_dir) if train is None else [self.split_path(data_dir, train)]
        return [path for path, pattern in wanted if not _present(path, pattern)]

    def not_found(self, data_dir: Path, missing: list[Path]) -> DatasetNotFoundError:
        expected = " and ".join(
            f"{path}/{pattern}" if pattern else str(path) for path, pattern in self.expected_paths(data_dir)
        )
        return DatasetNotFoundError(
            f"dataset {self.name!r} not found under {data_dir}: missing {', '.join(map(str, missing))}. "
            f"Expected {expected} ({self.layout}; tonic.datasets.{self.tonic_class}(save_to={str(data_dir)!r})). "
            f"Pass --data-dir DIR where DIR contains {self.tonic_class}/, or --download to fetch it with tonic."
        )


def _present(path: Path, pattern: str) -> bool:
    if not pattern:
        return path.is_file()
    return path.is_dir() and next(path.glob(pattern), None) is not None


_SHD_WORDS = "zero one two three four five six seven eight nine null eins zwei drei vier fünf sechs sieben acht neun"
# N-TIDIGITS18 single digits with tonic's class_map: "o" (oh) is 0 and "z" (zero) is 10.
_NTIDIGITS_WORDS = "oh one two three four five six seven eight nine zero"

SOURCES: dict[str, RecordedSource] = {
    "nmnist": RecordedSource(
        name="nmnist",
        tonic_class="NMNIST",
        train_path=("Train", "*/*.bin"),
        test_path=("Test", "*/*.bin"),
        layout="tonic's layout: NMNIST/{Train,Test}/<digit>/<id>.bin, 5 bytes an event",
        sensor_size=(34, 34, 2),
        frame_size=(34, 34, 2),
        default_time_steps=30,
        kind="events",
        class_names=tuple(str(digit) for digit in range(10)),
        description="N-MNIST (Orchard et al. 2015): MNIST digits seen by an ATIS camera in three saccades",
    ),
    "dvsgesture": RecordedSource(
        name="dvsgesture",
        tonic_class="DVSGesture",
        train_path=("ibmGestureTrain", "*/*.npy"),
        test_path=("ibmGestureTest", "*/*.npy"),
        layout="tonic's preprocessed layout: DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy",
        sensor_size=(128, 128, 2),
        frame_size=(32, 32, 2),
        default_time_steps=20,
        kind="events",
        class_names=(
            "hand clapping",
            "right hand wave",
            "left hand wave",
            "right arm clockwise",
            "right arm counter-clockwise",
            "left arm clockwise",
            "left arm counter-clockwise",
            "arm roll",
            "air drums",
            "air guitar",
            "other gestures",
        ),
        description="DVS128 Gesture (Amir et al. 2017): 11 hand and arm gestures, 128×128 pooled to 32×32",
    ),
    "ntidigits18": RecordedSource(
        name="ntidigits18",
        tonic_class="NTIDIGITS18",
        train_path=("n-tidigits.hdf5", ""),
        test_path=("n-tidigits.hdf5", ""),
        layout="one HDF5 file with {train,test}_labels, _addresses/<id> and _timestamps/<id>",
        sensor_size=(64, 1, 1),
        frame_size=(64, 1, 1),
        default_time_steps=50,
        kind="channels",
        class_names=tuple(_NTIDIGITS_WORDS.split()),
        description="N-TIDIGITS18 (Anumula et al. 2018): spoken single digits, 64-channel silicon cochlea",
        tonic_options={"single_digits": True},
    ),
    "shd": RecordedSource(
        name="shd",
        tonic_class="SHD",
        train_path=("shd_train.h5", ""),
        test_path=("shd_test.h5", ""),
        layout="HDF5 files with spikes/times, spikes/units, labels and extra/{keys,speaker}",
        sensor_size=(700, 1, 1),
        frame_size=(700, 1, 1),
        default_time_steps=50,
        kind="channels",
        class_names=tuple(_SHD_WORDS.split()),
        description="Spiking Heidelberg Digits (Cramer et al. 2020): spoken digits 0–9 in English and German, "
        "700 cochlea channels",
    ),
}
