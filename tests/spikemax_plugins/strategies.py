"""Hypothesis strategies shared by the core tests: random spike problems and loss options.

A problem is drawn as a few small integers plus a NumPy seed, so that examples stay cheap to generate and
shrink to small shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st


@dataclass
class SpikeProblem:
    spikes: np.ndarray  # [T, B, N] float64, >= 0
    target: np.ndarray  # [B] int64 or [B, C] float64 rows summing to 1
    num_classes: int | None  # None: N = C; else population coding with N = k * C
    classes: int  # C

    def torch_spikes(self, dtype=torch.float64, device="cpu", requires_grad=False) -> torch.Tensor:
        return torch.tensor(self.spikes, dtype=dtype, device=device, requires_grad=requires_grad)

    def torch_target(self, device="cpu") -> torch.Tensor:
        return torch.tensor(self.target, device=device)


def as_torch_options(options: dict, device="cpu") -> dict:
    """Loss options drawn as NumPy values, with the class weight turned into a tensor."""
    options = dict(options)
    if options.get("weight") is not None:
        options["weight"] = torch.tensor(options["weight"], device=device)
    return options


def draw_spikes(rng: np.random.Generator, shape, graded: bool, rate: float) -> np.ndarray:
    fired = rng.random(shape) < rate
    if not graded:
        return fired.astype(np.float64)
    return fired * rng.uniform(0.05, 2.0, size=shape)


@st.composite
def spike_problems(
    draw,
    *,
    max_steps: int = 50,
    max_batch: int = 16,
    max_classes: int = 20,
    population: bool = True,
    soft_targets: bool = True,
    hard_targets: bool = True,
):
    num_steps = draw(st.integers(1, max_steps))
    batch_size = draw(st.integers(1, max_batch))
    classes = draw(st.integers(2, max_classes))
    group_size = draw(st.sampled_from([1, 1, 2, 3])) if population else 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    graded = draw(st.booleans())
    rate = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 0.9, 1.0]))
    spikes = draw_spikes(rng, (num_steps, batch_size, classes * group_size), graded, rate)
    kinds = (["hard"] if hard_targets else []) + (["soft"] if soft_targets else [])
    if draw(st.sampled_from(kinds)) == "hard":
        target = rng.integers(0, classes, size=batch_size).astype(np.int64)
    else:
        target = rng.dirichlet(np.full(classes, 0.5), size=batch_size)
    # Population coding needs num_classes; without it, num_classes = C is optional.
    num_classes = classes if group_size > 1 or draw(st.booleans()) else None
    return SpikeProblem(spikes, target, num_classes, classes)


@st.composite
def spikemax_options(draw, classes: int, num_steps: int, sliding: bool):
    options = {
        "mode": draw(st.sampled_from(["probability", "softmax"])),
        "temperature": draw(st.sampled_from([1.0, 1.0, 0.25, 0.5, 2.0, 4.0])),
        "smoothing": draw(st.sampled_from([1.0, 1.0, 0.0, 0.1, 2.5])),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
    }
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        options["weight"] = np.random.default_rng(seed).uniform(0.1, 2.0, size=classes)
    if sliding:
        options["window"] = draw(st.integers(1, num_steps))
        options["stride"] = draw(st.integers(1, max(1, num_steps)))
    return options


@st.composite
def mse_options(draw, classes: int):
    options = {
        "true_rate": draw(st.sampled_from([1.0, 0.75, 0.5, 0.2])),
        "false_rate": draw(st.sampled_from([0.0, 0.05, 0.25])),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
    }
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        options["weight"] = np.random.default_rng(seed).uniform(0.1, 2.0, size=classes)
    return options


# ------------------------------------------------------------------------------------------------ early exit

# Smoothings that are exact binary fractions: with 0/1 spikes or spikes in multiples of 1/8, every running count,
# every c + smoothing and every sum of them is exact in float64, so a probability score is one correctly rounded
# division and a margin is exact, whatever order an implementation sums in. Decisions compare scores with
# thresholds by ">=", so the exact-agreement tests need this (0.1 would make the last bit order-dependent).
EXACT_SMOOTHINGS = [0.0, 0.0, 0.5, 1.0, 2.5]


def draw_exact_spikes(rng: np.random.Generator, shape, graded: bool, rate: float) -> np.ndarray:
    fired = rng.random(shape) < rate
    if not graded:
        return fired.astype(np.float64)
    return fired * (rng.integers(1, 17, size=shape) / 8.0)


@st.composite
def exit_problems(
    draw, *, max_steps: int = 8, max_batch: int = 10, max_classes: int = 5, exact: bool = True
) -> SpikeProblem:
    """Small recordings for early exit, with hard targets; silent samples and duplicated samples (ties between
    calibration scores) come up often. ``exact``: values whose counts are exact in float64 (see above)."""
    num_steps = draw(st.integers(1, max_steps))
    batch_size = draw(st.integers(1, max_batch))
    classes = draw(st.integers(2, max_classes))
    group_size = draw(st.sampled_from([1, 1, 2, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    graded = draw(st.booleans())
    rate = draw(st.sampled_from([0.0, 0.1, 0.3, 0.3, 0.6, 1.0]))
    shape = (num_steps, batch_size, classes * group_size)
    spikes = draw_exact_spikes(rng, shape, graded, rate) if exact else draw_spikes(rng, shape, graded, rate)
    if draw(st.booleans()):
        spikes[:, rng.random(batch_size) < 0.3] = 0.0  # all-silent samples
    if draw(st.booleans()) and batch_size > 1:
        spikes[:, rng.integers(1, batch_size)] = spikes[:, 0]  # a duplicate of sample 0
    target = rng.integers(0, classes, size=batch_size).astype(np.int64)
    num_classes = classes if group_size > 1 or draw(st.booleans()) else None
    return SpikeProblem(spikes, target, num_classes, classes)


@st.composite
def exit_checkpoints(draw, num_steps: int, with_last: bool = True) -> list[int]:
    """Strictly increasing steps in [0, T - 1]; ``with_last``: ending at T - 1 (else T - 1 may be missing)."""
    keep = draw(st.lists(st.booleans(), min_size=num_steps, max_size=num_steps))
    steps = [step for step in range(num_steps) if keep[step]]
    if not steps and not with_last:
        steps = [draw(st.integers(0, num_steps - 1))]
    if with_last and (not steps or steps[-1] != num_steps - 1):
        steps.append(num_steps - 1)
    return steps


@st.composite
def exit_thresholds(draw, scores: np.ndarray, checkpoints: list[int]) -> np.ndarray:
    """One threshold per checkpoint: often a score of that step itself (``>=`` at equality; often a sample's top
    score), or the float just above / below one, +-inf, or a random value in the score range. ``scores``:
    [T, B, C] from the twin."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    low, high = float(scores.min()), float(scores.max())
    thresholds = []
    for step in checkpoints:
        kinds = ["top", "lowest-top", "lowest-top", "score", "score", "above", "below", "inf", "-inf", "uniform"]
        kind = draw(st.sampled_from(kinds))
        value = float(rng.choice(scores[step].reshape(-1)))
        if kind == "top":  # a sample's top score: it exits here if its leader is unique (max_set_size 1)
            value = float(scores[step, rng.integers(scores.shape[1])].max())
        elif kind == "lowest-top":  # every sample admits a class here
            value = float(scores[step].max(axis=-1).min())
        if kind == "above":
            value = float(np.nextafter(value, np.inf))
        elif kind == "below":
            value = float(np.nextafter(value, -np.inf))
        elif kind == "inf":
            value = np.inf
        elif kind == "-inf":
            value = -np.inf
        elif kind == "uniform":
            value = float(rng.uniform(low - 1.0, high + 1.0))
        thresholds.append(value)
    return np.array(thresholds, dtype=np.float64)
