"""A picture of an ``events`` data set: a few test samples, their ON and OFF events per third of the window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import SpikeDataset

__all__ = ["save_sample_figure"]


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
