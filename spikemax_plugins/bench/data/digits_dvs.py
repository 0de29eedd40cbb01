"""``digits-dvs``: scikit-learn's handwritten digits seen by an emulated event camera, N-MNIST style.

N-MNIST (Orchard et al. 2015) was recorded by an ATIS event camera on a pan-tilt unit looking at still
MNIST digits on a monitor; the camera made three quick saccades that trace a triangle, about 100 ms
each, and each pixel emitted an ON (OFF) event whenever its log-intensity rose (fell) by more than a
contrast threshold since its last event. This module replays that recording on the 1,797 real 8×8
handwritten digits bundled with scikit-learn, so the benchmark has an event data set with no download.

Method, per sample:

1. The 8×8 image (ink 0..16) is scaled to [0, 1] and upsampled bilinearly to 16×16, placed 1 pixel
   from the top-left corner of a 22×22 canvas: the margin keeps the whole motion in view.
2. The monitor shows intensity ``I = 0.1 + 0.9 · ink`` (a dark screen is not black), and each pixel
   senses ``L = log I``.
3. The image moves along N-MNIST's triangle, scaled to the 16-pixel digit (28 → 16 pixels):
   (0, 0) → (+2, +4) → (+4, 0) → (0, 0) pixels in (x, y), one straight saccade per third of the window,
   sampled at ``ceil(120 / T) · T`` instants (sub-pixel shifts by bilinear interpolation).
4. Each pixel keeps the log-intensity at its last event as its reference (initially the still image).
   When ``L − reference ≥ θ_on`` it fires ON, when ``reference − L ≥ θ_off`` it fires OFF, and the
   reference resets to ``L``. A frame cell is 1 when its pixel fired that polarity at least once within
   that time step: frames are binary, ``[T, 2, 22, 22]``, channel 0 = ON, channel 1 = OFF.
5. Sensor imperfections, like a real DVS: each pixel's thresholds differ (mismatch: θ = 0.25 with a 12 %
   relative spread, a fixed pattern of this emulated sensor), and background activity adds ON and OFF
   events at 0.2 Hz per pixel and polarity (about 60 per sample).

All randomness is a fixed function of the sample's index (and the sensor's mismatch pattern is fixed):
the event streams are the same for every training seed, as a recorded data set would be. The seed only
chooses which training samples are held out for validation; the test split (20 %) is fixed.

Events concentrate on the digit's edges that lie across the direction of motion: a uniform image gives
no events at all but background noise. The default ``T = 30`` gives 10 steps (10 ms) per saccade.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

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
DEFAULT_TIME_STEPS = 30
DIGIT_SIZE = 16
CANVAS_SIZE = 22
DIGIT_OFFSET = 1  # pixels between the canvas' top-left corner and the digit's at rest
# Triangle of the three saccades in pixels (x, y), N-MNIST's (0,0) → (3.5,7) → (7,0) → (0,0) scaled by 16/28.
SACCADE_VERTICES = ((0.0, 0.0), (2.0, 4.0), (4.0, 0.0), (0.0, 0.0))
RECORDING_SECONDS = 0.3
MIN_SIMULATION_INSTANTS = 120  # 2.5 ms apart: a moving edge crosses a pixel in several instants
SCREEN_BLACK_LEVEL = 0.1
CONTRAST_THRESHOLD = 0.25
THRESHOLD_MISMATCH = 0.12  # relative standard deviation across pixels
MIN_THRESHOLD = 0.05
BACKGROUND_RATE_HZ = 0.2  # noise events per pixel, per polarity, per second
EMULATION_SEED = 2015  # the "recording's" randomness (any fixed value: N-MNIST's year); never the training seed
EMULATION_VERSION = 1  # bump when the method changes, so stale caches are not reused
_CHUNK_SIZE = 256


def saccade_offsets(num_instants: int) -> Tensor:
    """The image's (x, y) displacement in pixels at ``num_instants + 1`` evenly spaced instants.

    Shape:
        Output: ``[num_instants + 1, 2]``; row 0 is the rest position, the last row the end of saccade 3.
    """
    vertices = torch.tensor(SACCADE_VERTICES, dtype=torch.float64)
    progress = torch.linspace(0.0, 3.0, num_instants + 1, dtype=torch.float64)
    saccade = progress.floor().clamp(max=2).long()
    fraction = (progress - saccade).unsqueeze(1)
    return vertices[saccade] + fraction * (vertices[saccade + 1] - vertices[saccade])


def threshold_maps(canvas_size: int = CANVAS_SIZE) -> tuple[Tensor, Tensor]:
    """Per-pixel ON and OFF contrast thresholds ``[H, W]`` of the emulated sensor (fixed pattern)."""
    generator = np.random.default_rng((EMULATION_SEED, 1))
    spread = generator.standard_normal((2, canvas_size, canvas_size))
    thresholds = CONTRAST_THRESHOLD * (1.0 + THRESHOLD_MISMATCH * spread)
    thresholds = torch.from_numpy(np.maximum(thresholds, MIN_THRESHOLD)).to(torch.float32)
    return thresholds[0], thresholds[1]


def place_on_canvas(images: Tensor) -> Tensor:
    """Upsample ``[N, h, w]`` images in [0, 1] to ``[N, 16, 16]`` and place them on ``[N, 22, 22]``."""
    upsampled = F.interpolate(
        images.unsqueeze(1).to(torch.float32), size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False
    )
    canvas = torch.zeros(images.shape[0], 1, CANVAS_SIZE, CANVAS_SIZE)
    canvas[:, :, DIGIT_OFFSET : DIGIT_OFFSET + DIGIT_SIZE, DIGIT_OFFSET : DIGIT_OFFSET + DIGIT_SIZE] = upsampled
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
    background_rate_hz: float = BACKGROUND_RATE_HZ,
) -> Tensor:
    """Event frames of still images viewed through three saccades (see the module docstring).

    Args:
        images: ``[N, h, w]`` intensities in [0, 1] (ink = 1).
        time_steps: T, the number of frames the 300 ms recording is binned into.
        sample_ids: ``[N]`` ints seeding each sample's background noise (default ``0..N-1``); the same
            id always gives the same noise, whatever else is in the batch.
        background_rate_hz: noise events per pixel and polarity per second; 0 turns the noise off.

    Shape:
        Output: ``[N, T, 2, 22, 22]`` bool; channel 0 = ON, 1 = OFF.
    """
    if images.dim() != 3:
        raise ValueError(f"images must be [N, h, w], got shape {tuple(images.shape)}")
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"time_steps must be a positive int, got {time_steps!r}")
    sample_ids = np.arange(images.shape[0]) if sample_ids is None else np.asarray(sample_ids)
    if sample_ids.shape != (images.shape[0],):
        raise ValueError(f"sample_ids must be [N] with N = {images.shape[0]}, got shape {sample_ids.shape}")

    instants_per_step = math.ceil(MIN_SIMULATION_INSTANTS / time_steps)
    num_instants = instants_per_step * time_steps
    offsets = saccade_offsets(num_instants).tolist()
    threshold_on, threshold_off = (threshold.numpy() for threshold in threshold_maps())

    # NumPy, not torch: these are many small element-wise steps, where torch's thread pool costs more than
    # the work (and far more on a busy machine).
    # Intensity is affine in ink, so the screen's intensity is shifted directly (the margin shows black).
    intensity = SCREEN_BLACK_LEVEL + (1 - SCREEN_BLACK_LEVEL) * place_on_canvas(images)[:, 0].numpy()
    padding = math.ceil(max(abs(value) for vertex in SACCADE_VERTICES for value in vertex)) + 1
    padded = np.pad(intensity, ((0, 0), (padding, padding), (padding, padding)), constant_values=SCREEN_BLACK_LEVEL)
    frames = np.zeros((images.shape[0], time_steps, 2, CANVAS_SIZE, CANVAS_SIZE), dtype=bool)
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
        noise_probability = background_rate_hz * RECORDING_SECONDS / time_steps
        for row, sample_id in enumerate(sample_ids.tolist()):
            generator = np.random.default_rng((EMULATION_SEED, 0, int(sample_id)))
            frames[row] |= generator.random(frames.shape[1:], dtype=np.float32) < noise_probability
    return torch.from_numpy(frames)


def _digit_images() -> tuple[Tensor, np.ndarray]:
    """scikit-learn's 1,797 digits as ``[N, 8, 8]`` in [0, 1], and their labels ``[N]``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.from_numpy(digits.images / 16.0), digits.target.astype(np.int64)


def _emulate_in_chunks(images: Tensor, sample_ids: np.ndarray, time_steps: int, progress: ProgressHook) -> Tensor:
    chunks = []
    with progress(f"{NAME}: emulating saccades", len(sample_ids)) as task:
        for start in range(0, len(sample_ids), _CHUNK_SIZE):
            ids = sample_ids[start : start + _CHUNK_SIZE]
            chunks.append(emulate_saccade_events(images[ids], time_steps, ids))
            task.advance(len(ids))
    return torch.cat(chunks)


def build_digits_dvs(
    *, time_steps: int, seed: int, cache_dir: str | Path | None, quick: bool, progress: ProgressHook
) -> SpikeDataset:
    images, labels = _digit_images()
    parts = train_validation_test_indices(labels, seed)
    if quick:
        # A smoke run emulates only its ~128 samples (well under a second) and leaves the cache alone; the
        # per-sample noise seeds make them identical to the same samples of a full build.
        parts = quick_subsets(*parts, labels)
        needed = np.unique(np.concatenate(parts))
        frames = _emulate_in_chunks(images, needed, time_steps, progress).numpy()
        positions = np.full(len(labels), -1, dtype=np.int64)
        positions[needed] = np.arange(len(needed))
        splits = tensor_splits(frames, labels, parts, positions)
    else:
        splits = tensor_splits(_cached_frames(images, labels, time_steps, cache_dir, progress), labels, parts)
    return SpikeDataset(
        name=NAME,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        input_shape=(2, CANVAS_SIZE, CANVAS_SIZE),
        num_classes=10,
        time_steps=time_steps,
        kind="events",
        class_names=tuple(str(digit) for digit in range(10)),
        description=(
            f"scikit-learn's 1,797 handwritten 8×8 digits as emulated N-MNIST saccade events "
            f"(ON/OFF, {CANVAS_SIZE}×{CANVAS_SIZE}, T={time_steps}; no download)"
        ),
    )


def _cached_frames(
    images: Tensor, labels: np.ndarray, time_steps: int, cache_dir: str | Path | None, progress: ProgressHook
) -> np.ndarray:
    parameters = {
        "dataset": NAME,
        "version": EMULATION_VERSION,
        "time_steps": time_steps,
        "num_samples": len(labels),
        "digit_size": DIGIT_SIZE,
        "canvas_size": CANVAS_SIZE,
        "digit_offset": DIGIT_OFFSET,
        "saccade_vertices": SACCADE_VERTICES,
        "min_simulation_instants": MIN_SIMULATION_INSTANTS,
        "screen_black_level": SCREEN_BLACK_LEVEL,
        "contrast_threshold": CONTRAST_THRESHOLD,
        "threshold_mismatch": THRESHOLD_MISMATCH,
        "min_threshold": MIN_THRESHOLD,
        "background_rate_hz": BACKGROUND_RATE_HZ,
        "emulation_seed": EMULATION_SEED,
        # The source images themselves: a different scikit-learn copy of the digits must not hit the cache.
        "images_sha256": _sha256(images.numpy()),
    }
    path = cache_file(cache_dir, NAME, parameters)
    cached = load_cached_frames(path, parameters)
    if cached is not None and np.array_equal(cached[1], labels):
        return cached[0]
    frames = _emulate_in_chunks(images, np.arange(len(labels)), time_steps, progress).numpy()
    save_cached_frames(path, frames, labels, parameters)
    return frames.view(np.uint8)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_sample_figure(dataset: SpikeDataset, path: str | Path, n: int = 5) -> Path:
    """Render ``n`` test samples of an ``events`` dataset to a PNG: one row a sample, one column per third
    of the window (a saccade for digits-dvs) and one for the whole window; ON events green, OFF magenta.

    Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if dataset.kind != "events":
        raise ValueError(f"save_sample_figure needs an 'events' dataset, got kind {dataset.kind!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    samples = _one_sample_per_class(dataset.test, n)
    thirds = np.array_split(np.arange(dataset.time_steps), 3)
    titles = [f"saccade {number} (steps {steps[0]}–{steps[-1]})" for number, steps in enumerate(thirds, 1)]
    windows = [*thirds, np.arange(dataset.time_steps)]
    titles.append("whole window")

    figure = Figure(figsize=(2.2 * len(windows), 2.2 * len(samples)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(samples), len(windows), squeeze=False)
    for row, (frames, label) in enumerate(samples):
        for column, steps in enumerate(windows):
            on_count = frames[steps, 0].sum(0).numpy()
            off_count = frames[steps, 1].sum(0).numpy()
            picture = np.zeros((*on_count.shape, 3))
            picture[..., 1] = on_count / max(on_count.max(), 1)
            picture[..., 0] = picture[..., 2] = off_count / max(off_count.max(), 1)
            axis = axes[row, column]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[column], fontsize=8)
            if column == 0:
                axis.set_ylabel(f"{dataset.class_names[label]}  ({int(frames.sum())} events)", fontsize=8)
    figure.suptitle(f"{dataset.name}: ON (green) and OFF (magenta) events", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _one_sample_per_class(split: torch.utils.data.Dataset, n: int) -> list[tuple[Tensor, int]]:
    """The first sample of each of the ``n`` lowest labels (the first ``n`` samples if labels are few)."""
    labels = np.asarray(getattr(split, "labels", [split[index][1] for index in range(len(split))]))
    firsts = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)[:n]]
    firsts += [index for index in range(len(labels)) if index not in firsts][: n - len(firsts)]
    return [split[index] for index in firsts]
