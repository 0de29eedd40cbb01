"""NumPy twins of spikemax_plugins.early_exit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ._losses_and_metrics import _decide, _grouped_counts, spike_counts

# ------------------------------------------------------------------------------------------------------------------
# Early exit (twins of spikemax_plugins.early_exit)
#
# Written from the semantics in the module docstring of spikemax_plugins.early_exit. A rule is passed as its plain
# fields: ``checkpoints`` (0-based steps, strictly increasing, the last is T - 1), ``thresholds`` (one per
# checkpoint, +-inf allowed), ``max_set_size``, ``score``, ``smoothing`` and ``num_classes``. Spikes are time first,
# [T, B, N]. Scores are computed from their definitions in float64, one class at a time.
# ------------------------------------------------------------------------------------------------------------------


def _exit_scores(count_row, score: str, smoothing: float) -> list[float]:
    """The score of every class for one sample's running counts ``[C]``."""
    num_classes = len(count_row)
    if score == "probability":
        shifted = [float(c) + smoothing for c in count_row]
        total = 0.0
        for value in shifted:
            total += value
        if total == 0:
            return [1.0 / num_classes] * num_classes  # every class silent with smoothing 0
        return [value / total for value in shifted]
    if score == "margin":
        return [
            float(count_row[i]) - max(float(count_row[j]) for j in range(num_classes) if j != i)
            for i in range(num_classes)
        ]
    raise ValueError(f"unknown score {score!r}")


def exit_confidence(spikes, score: str = "probability", smoothing: float = 1.0, num_classes: int | None = None):
    """[T, B, N] -> [T, B, C]: the score of the running counts of steps 0..t, for every t."""
    spikes = np.asarray(spikes, dtype=np.float64)
    num_steps, batch_size, num_outputs = spikes.shape
    classes = num_outputs if num_classes is None else num_classes
    result = np.zeros((num_steps, batch_size, classes))
    for t in range(num_steps):
        counts = _grouped_counts(spikes, 0, t, num_classes)
        for b in range(batch_size):
            result[t, b] = _exit_scores(counts[b], score, smoothing)
    return result


def exit_default_checkpoints(num_steps: int, method: str) -> list[int]:
    """Every step for "accuracy"; for "conformal" K = min(T, 4) steps ceil(T (k + 1) / K) - 1, k = 0..K-1."""
    if method == "accuracy":
        return list(range(num_steps))
    count = min(num_steps, 4)
    return [-(-num_steps * (k + 1) // count) - 1 for k in range(count)]


def _exit_decisions(checkpoint_scores, final_counts, thresholds, max_set_size: int, checkpoints: list[int]):
    """Apply a rule to precomputed scores ``[K][B][C]`` (at the checkpoints) and full counts ``[B][C]``.

    Returns exit steps, predictions and prediction sets (lists of admitted classes), one per sample.
    """
    num_checkpoints = len(checkpoints)
    batch_size = len(final_counts)
    exit_steps, predictions, prediction_sets = [], [], []
    for b in range(batch_size):
        decided = False
        admitted: list[int] = []
        for k in range(num_checkpoints):
            row = checkpoint_scores[k][b]
            admitted = [i for i in range(len(row)) if row[i] >= thresholds[k]]
            if 1 <= len(admitted) <= max_set_size:
                best = max(row[i] for i in admitted)
                leaders = [i for i in admitted if row[i] == best]
                exit_steps.append(checkpoints[k])
                predictions.append(leaders[0] if len(leaders) == 1 else -1)
                prediction_sets.append(admitted)
                decided = True
                break
        if not decided:
            # Never exited: decided at T - 1 (the last checkpoint) on the full counts; the prediction set is the
            # admitted set of the last checkpoint, the one the loop ended on (possibly empty, or too large).
            exit_steps.append(checkpoints[-1])
            predictions.append(_decide(final_counts[b]))
            prediction_sets.append(admitted)
    return exit_steps, predictions, prediction_sets


def exit_evaluate(
    spikes,
    *,
    checkpoints: Sequence[int],
    thresholds,
    max_set_size: int,
    score: str,
    smoothing: float,
    num_classes: int | None = None,
    target=None,
) -> dict:
    """Apply an early-exit rule to a recording [T, B, N].

    Returns a dict with ``exit_step`` [B] int64, ``prediction`` [B] int64 (-1: no decision), ``prediction_set``
    [B, C] bool, ``mean_exit_step``, ``exit_fraction`` (mean of (exit_step + 1) / T), ``steps_simulated``
    (max(exit_step) + 1) and, with a target, ``accuracy`` and ``coverage`` (None without).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    num_steps, batch_size, num_outputs = spikes.shape
    classes = num_outputs if num_classes is None else num_classes
    checkpoints = [int(t) for t in checkpoints]
    thresholds = [float(x) for x in np.asarray(thresholds, dtype=np.float64).reshape(-1)]
    assert checkpoints[-1] == num_steps - 1 and len(thresholds) == len(checkpoints)
    scores = exit_confidence(spikes, score, smoothing, num_classes)
    checkpoint_scores = [[list(scores[t, b]) for b in range(batch_size)] for t in checkpoints]
    final_counts = spike_counts(spikes, num_classes)
    exit_steps, predictions, prediction_sets = _exit_decisions(
        checkpoint_scores, final_counts, thresholds, max_set_size, checkpoints
    )
    prediction_set = np.zeros((batch_size, classes), dtype=bool)
    for b, admitted in enumerate(prediction_sets):
        for i in admitted:
            prediction_set[b, i] = True
    result = {
        "exit_step": np.array(exit_steps, dtype=np.int64),
        "prediction": np.array(predictions, dtype=np.int64),
        "prediction_set": prediction_set,
        "mean_exit_step": sum(exit_steps) / batch_size,
        "exit_fraction": sum((step + 1) / num_steps for step in exit_steps) / batch_size,
        "steps_simulated": max(exit_steps) + 1,
        "accuracy": None,
        "coverage": None,
    }
    if target is not None:
        target = [int(y) for y in np.asarray(target)]
        result["accuracy"] = sum(int(p == y) for p, y in zip(predictions, target, strict=True)) / batch_size
        result["coverage"] = sum(int(y in s) for s, y in zip(prediction_sets, target, strict=True)) / batch_size
    return result


def exit_conformal_rank(alpha: float, num_checkpoints: int, calibration_size: int) -> int:
    """r = ceil((1 - alpha / K) (n + 1)) in exact rational arithmetic, alpha read as the decimal it prints as."""
    exact_alpha = Fraction(repr(float(alpha)))
    return math.ceil((1 - exact_alpha / num_checkpoints) * (calibration_size + 1))


def exit_calibrate(
    spikes,
    target,
    *,
    method: str,
    alpha: float,
    score: str = "probability",
    checkpoints: Sequence[int] | None = None,
    max_set_size: int = 1,
    smoothing: float = 1.0,
    num_classes: int | None = None,
) -> dict:
    """An early-exit rule from a calibration recording [T, B, N] and its classes [B].

    Returns the rule's fields: ``checkpoints``, ``thresholds`` (float64 [K]), ``max_set_size``, ``score``,
    ``smoothing``, ``num_classes`` (C) and ``num_steps`` (T). "conformal": thresholds[k] is the r-th largest
    true-class score at checkpoint k (ValueError when r > n). "accuracy": one threshold shared by all checkpoints,
    the feasible candidate with the smallest sum of exit steps (ties: the largest threshold).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    target = [int(y) for y in np.asarray(target)]
    num_steps, batch_size, num_outputs = spikes.shape
    classes = num_outputs if num_classes is None else num_classes
    if checkpoints is None:
        checkpoints = exit_default_checkpoints(num_steps, method)
    checkpoints = [int(t) for t in checkpoints]
    if checkpoints[-1] != num_steps - 1:
        checkpoints.append(num_steps - 1)
    num_checkpoints = len(checkpoints)
    scores = exit_confidence(spikes, score, smoothing, num_classes)
    checkpoint_scores = [[list(scores[t, b]) for b in range(batch_size)] for t in checkpoints]
    if method == "conformal":
        rank = exit_conformal_rank(alpha, num_checkpoints, batch_size)
        if rank > batch_size:
            raise ValueError(f"calibration set too small: r = {rank} > n = {batch_size}")
        thresholds = []
        for k in range(num_checkpoints):
            true_class_scores = sorted((checkpoint_scores[k][b][target[b]] for b in range(batch_size)), reverse=True)
            thresholds.append(true_class_scores[rank - 1])
    elif method == "accuracy":
        final_counts = spike_counts(spikes, num_classes)
        full_correct = sum(int(_decide(final_counts[b]) == target[b]) for b in range(batch_size))
        allowed_loss = Fraction(repr(float(alpha))) * batch_size
        candidates = {math.inf}
        for k in range(num_checkpoints):
            for b in range(batch_size):
                ordered = sorted(checkpoint_scores[k][b], reverse=True)
                if math.isfinite(ordered[0]):
                    candidates.add(ordered[0])
                if max_set_size < classes:
                    candidates.add(math.nextafter(ordered[max_set_size], math.inf))
        best_key, best_threshold = None, None
        for candidate in candidates:
            exit_steps, predictions, _ = _exit_decisions(
                checkpoint_scores, final_counts, [candidate] * num_checkpoints, max_set_size, checkpoints
            )
            correct = sum(int(p == y) for p, y in zip(predictions, target, strict=True))
            if correct < full_correct - allowed_loss:
                continue
            key = (sum(exit_steps), -candidate)
            if best_key is None or key < best_key:
                best_key, best_threshold = key, candidate
        thresholds = [best_threshold] * num_checkpoints
    else:
        raise ValueError(f"unknown method {method!r}")
    return {
        "checkpoints": checkpoints,
        "thresholds": np.array(thresholds, dtype=np.float64),
        "max_set_size": max_set_size,
        "score": score,
        "smoothing": smoothing,
        "num_classes": classes,
        "num_steps": num_steps,
    }
