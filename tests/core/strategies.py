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
