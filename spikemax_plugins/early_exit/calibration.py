"""Calibration: an :class:`~spikemax_plugins.early_exit.ExitRule` from recorded spikes of a held-out split.

``method="conformal"`` (SpikeCP) and ``method="accuracy"``; the semantics are in
:mod:`spikemax_plugins.early_exit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import torch
from torch import Tensor

from .. import _validation as check
from .._counts import decision_dtype, running_counts
from .._decisions import argmax_or_no_decision
from .rule import (
    METHODS,
    ExitRule,
    _check_alpha,
    _check_checkpoints,
    _check_score_options,
    _check_spike_values,
    _require_values,
    _scores,
    default_checkpoints,
)

__all__ = ["calibrate"]


def _exact(alpha: float) -> Fraction:
    # alpha as the decimal it prints as (0.1 is 1/10), so that ceil((1 - alpha / K) (n + 1)) is what it reads as.
    return Fraction(repr(alpha))


def _conformal_rank(alpha: float, num_checkpoints: int, calibration_size: int) -> int:
    """``r = ceil((1 - alpha / K) (n + 1))``: the threshold is the r-th largest true-class score."""
    return math.ceil((1 - _exact(alpha) / num_checkpoints) * (calibration_size + 1))


def calibrate(
    spikes: Tensor,
    target: Tensor,
    *,
    method: str,
    alpha: float,
    score: str = "probability",
    checkpoints: Sequence[int] | None = None,
    max_set_size: int = 1,
    smoothing: float = 1.0,
    num_classes: int | None = None,
    time_dim: int = 0,
) -> ExitRule:
    """An :class:`ExitRule` from recorded spikes of a held-out calibration split (never the test split).

    Args:
        spikes: the network's output spikes on the calibration samples.
        target: their classes.
        method: ``"conformal"`` (``alpha``: allowed miscoverage, ``0 < alpha < 1``) or ``"accuracy"``
            (``alpha``: tolerated accuracy loss against the full window, ``0 <= alpha < 1``). See the module
            docstring. ``alpha`` is read as the decimal it prints as (``0.1`` is exactly one tenth).
        score, smoothing: the :func:`confidence` score.
        checkpoints: steps at which samples may exit, strictly increasing in ``[0, T - 1]``; ``T - 1`` is added
            if missing. Default :func:`default_checkpoints` (every step for "accuracy", 4 evenly spaced steps
            for "conformal", so that ``alpha / K`` stays usable).
        max_set_size: exit once 1 to this many classes are admitted.

    The "conformal" thresholds need ``n >= K / alpha - 1`` calibration samples (``r <= n``); with fewer, no
    finite threshold has the guarantee and a ``ValueError`` says how many are needed. The "accuracy" method
    evaluates every threshold at which the exit pattern of the calibration set changes (each sample's top score
    at each checkpoint, and just above its ``(max_set_size + 1)``-th score) and keeps the one with the smallest
    mean exit step among those whose accuracy is ``>=`` the full-window accuracy ``- alpha``; ties go to the
    larger threshold. ``+inf`` (no early exit) is always feasible.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` integer class indices
    """
    alpha = _check_alpha(alpha, check.check_choice(method, "method", METHODS))
    score, smoothing = _check_score_options(score, smoothing)
    time_dim = check.check_time_dim(time_dim)
    num_steps, batch_size, num_outputs = _calibration_shape(spikes, time_dim)
    classes = check.resolve_num_classes(num_outputs, check.check_num_classes(num_classes))
    target = check.check_target(target, spikes, batch_size, classes, time_dim, allow_soft=False)
    _require_values(spikes, "spikes")
    max_set_size = check.check_int(max_set_size, "max_set_size", minimum=1, maximum=classes, why=" (C, the classes)")
    if checkpoints is None:
        steps = default_checkpoints(num_steps, method)
    else:
        steps = _check_checkpoints(checkpoints, num_steps)
    if steps[-1] != num_steps - 1:
        steps = [*steps, num_steps - 1]
    counts = running_counts(spikes, classes, time_dim, decision_dtype(spikes.device))
    if check.values_checkable(spikes, target):
        _check_spike_values(spikes)
        check.check_values(counts[-1], target, classes)
    with torch.no_grad():
        scores = _scores(counts[steps], score, smoothing)  # [K, B, C]
        if method == "conformal":
            thresholds = _conformal_thresholds(scores, target, alpha, batch_size)
        else:
            threshold = _accuracy_threshold(scores, counts[-1], target, alpha, max_set_size, steps)
            thresholds = torch.full((len(steps),), threshold, dtype=torch.float64)
    return ExitRule(
        checkpoints=steps,
        thresholds=thresholds,
        max_set_size=max_set_size,
        score=score,
        smoothing=smoothing,
        num_classes=classes,
        num_steps=num_steps,
        method=method,
        alpha=alpha,
        calibration_size=batch_size,
    )


def _calibration_shape(spikes: object, time_dim: int) -> tuple[int, int, int]:
    if isinstance(spikes, Tensor) and spikes.dim() == 3:
        batch_dim = [dim for dim in range(3) if dim != time_dim][0]
        if spikes.shape[batch_dim] == 0:
            raise ValueError(f"the calibration set is empty: spikes has B = 0 samples (shape {tuple(spikes.shape)})")
    return check.check_spikes(spikes, time_dim)


def _conformal_thresholds(scores: Tensor, target: Tensor, alpha: float, calibration_size: int) -> Tensor:
    num_checkpoints = scores.shape[0]
    rank = _conformal_rank(alpha, num_checkpoints, calibration_size)
    if rank > calibration_size:
        needed = math.ceil(num_checkpoints / _exact(alpha) - 1)
        raise ValueError(
            f"the calibration set of n = {calibration_size} samples is too small for alpha = {alpha} over K = "
            f"{num_checkpoints} checkpoints: the conformal threshold is the r-th largest true-class score with "
            f"r = ceil((1 - alpha / K)(n + 1)) = {rank} > n, so no rule could ever exit; use n >= {needed} "
            f"calibration samples, a larger alpha, or fewer checkpoints"
        )
    true_scores = scores.gather(2, target.view(1, -1, 1).expand(num_checkpoints, -1, 1)).squeeze(2)  # [K, B]
    return true_scores.sort(dim=1, descending=True).values[:, rank - 1].to("cpu", torch.float64)


def _accuracy_threshold(
    scores: Tensor,
    final_counts: Tensor,
    target: Tensor,
    alpha: float,
    max_set_size: int,
    checkpoints: list[int],
) -> float:
    """The shared threshold of the "accuracy" method (see :func:`calibrate`); scores ``[K, B, C]``."""
    num_checkpoints, calibration_size, num_classes = scores.shape
    ordered = scores.sort(dim=-1, descending=True).values
    highest = ordered[..., 0]  # [K, B]: a sample exits at a threshold <= its top score ...
    # ... and > its (max_set_size + 1)-th score (at most max_set_size classes admitted); no limit when C is.
    limit = ordered[..., max_set_size] if max_set_size < num_classes else torch.full_like(highest, -torch.inf)
    # The exit prediction at a checkpoint is the top class (ties: -1) whatever the threshold; a sample that
    # never exits (row K) is predicted from the full counts, which need not tie where the last scores do
    # (rounding: counts 0.1 + 0.2 and 0.3 give equal probabilities), so exiting at T - 1 is a row of its own.
    predictions = torch.cat([argmax_or_no_decision(scores), argmax_or_no_decision(final_counts).unsqueeze(0)])
    correct = (predictions == target).to(torch.int64)  # [K + 1, B]
    # Accuracy counts are integers: correct >= full - alpha * n  <=>  correct >= ceil(full - alpha * n).
    least_correct = math.ceil(int(correct[-1].sum().item()) - _exact(alpha) * calibration_size)
    candidates = [highest.flatten()]
    if max_set_size < num_classes:
        candidates.append(torch.nextafter(limit.flatten(), torch.full_like(limit.flatten(), torch.inf)))
    values = torch.cat(candidates)
    values = torch.unique(values[torch.isfinite(values)]).flip(0)  # descending: a tie keeps the larger threshold
    steps = torch.tensor([*checkpoints, checkpoints[-1]], device=scores.device)  # row K: decided at T - 1
    best_threshold, best_step_sum = math.inf, int(steps[-1].item()) * calibration_size
    for chunk in values.split(256):
        threshold = chunk.view(-1, 1, 1)
        exits = (highest >= threshold) & (limit < threshold)  # [L, K, B]
        first = torch.where(exits, torch.arange(num_checkpoints, device=scores.device).view(1, -1, 1), num_checkpoints)
        first = first.amin(1)  # [L, B]: the exit checkpoint of each sample, K if it never exits
        feasible = correct.gather(0, first).sum(-1) >= least_correct
        step_sums = torch.where(feasible, steps[first].sum(-1), torch.iinfo(torch.int64).max)
        position = int(step_sums.argmin().item())  # argmin returns the first minimum: the larger threshold
        if int(step_sums[position].item()) < best_step_sum:
            best_threshold, best_step_sum = float(chunk[position].item()), int(step_sums[position].item())
    return best_threshold
