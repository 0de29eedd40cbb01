"""NumPy (float64) reference implementations of every loss and metric, for testing.

Written independently of the torch code, for clarity over speed: explicit loops over samples, classes and
time steps, the spike-count probability computed directly from its definition, and
:func:`torch.nn.functional.cross_entropy`'s label-smoothing and weighting rules written out term by term.
Inputs are NumPy arrays (or anything ``np.asarray`` accepts); outputs are NumPy float64 / int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

__all__ = [
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
    "spikemax_g",
    "spikemax_s",
    "mse_count",
    "activity_penalty",
    "activity_penalty_gradient",
    # early exit
    "exit_confidence",
    "exit_default_checkpoints",
    "exit_evaluate",
    "exit_conformal_rank",
    "exit_calibrate",
]


def _grouped_counts(spikes: np.ndarray, first_step: int, last_step: int, num_classes: int | None) -> np.ndarray:
    """Counts per class of steps first_step..last_step (inclusive), neurons grouped in contiguous blocks."""
    _, batch_size, num_outputs = spikes.shape
    num_classes = num_outputs if num_classes is None else num_classes
    group_size = num_outputs // num_classes
    counts = np.zeros((batch_size, num_classes))
    for b in range(batch_size):
        for neuron in range(num_outputs):
            counts[b, neuron // group_size] += float(np.sum(spikes[first_step : last_step + 1, b, neuron]))
    return counts


def spike_counts(spikes, num_classes: int | None = None) -> np.ndarray:
    """[T, B, N] -> [B, C]."""
    spikes = np.asarray(spikes, dtype=np.float64)
    return _grouped_counts(spikes, 0, spikes.shape[0] - 1, num_classes)


def _decide(count_row: np.ndarray) -> int:
    """Index of the unique largest count, or -1 when the largest count is shared (no decision)."""
    best = max(count_row)
    winners = [i for i, value in enumerate(count_row) if value == best]
    return winners[0] if len(winners) == 1 else -1


def predict(spikes, num_classes: int | None = None) -> np.ndarray:
    counts = spike_counts(spikes, num_classes)
    return np.array([_decide(row) for row in counts], dtype=np.int64)


def accuracy(spikes, target, num_classes: int | None = None) -> float:
    predictions = predict(spikes, num_classes)
    target = np.asarray(target)
    return sum(int(p == y) for p, y in zip(predictions, target, strict=True)) / len(target)


def _running_predictions(spikes: np.ndarray, num_classes: int | None) -> np.ndarray:
    """[T, B]: the decision from the counts of steps 0..t, for every t."""
    num_steps, batch_size, _ = spikes.shape
    predictions = np.zeros((num_steps, batch_size), dtype=np.int64)
    for t in range(num_steps):
        counts = _grouped_counts(spikes, 0, t, num_classes)
        for b in range(batch_size):
            predictions[t, b] = _decide(counts[b])
    return predictions


def accuracy_over_time(spikes, target, num_classes: int | None = None) -> np.ndarray:
    spikes = np.asarray(spikes, dtype=np.float64)
    target = np.asarray(target)
    predictions = _running_predictions(spikes, num_classes)
    return np.array([np.mean([p == y for p, y in zip(row, target, strict=True)]) for row in predictions])


def time_to_decision(spikes, num_classes: int | None = None) -> np.ndarray:
    spikes = np.asarray(spikes, dtype=np.float64)
    predictions = _running_predictions(spikes, num_classes)
    num_steps, batch_size = predictions.shape
    result = np.zeros(batch_size, dtype=np.int64)
    for b in range(batch_size):
        final = predictions[-1, b]
        if final == -1:
            result[b] = -1
            continue
        # Walk back from the end while the prediction still equals the final one.
        t = num_steps - 1
        while t > 0 and predictions[t - 1, b] == final:
            t -= 1
        result[b] = t
    return result


def synaptic_operations(layer_spikes: Sequence, fan_out: Sequence, until=None) -> np.ndarray:
    """Time-first layers [T, B, ...]; with ``until`` [B], only steps 0..until[b] of sample b count."""
    total = None
    for spikes, layer_fan_out in zip(layer_spikes, fan_out, strict=True):
        spikes = np.asarray(spikes, dtype=np.float64)
        weights = np.broadcast_to(np.asarray(layer_fan_out, dtype=np.float64), spikes.shape[2:])
        per_sample = np.zeros(spikes.shape[1])
        for b in range(spikes.shape[1]):
            last_step = spikes.shape[0] - 1 if until is None else int(until[b])
            for t in range(last_step + 1):
                per_sample[b] += float(np.sum(spikes[t, b] * weights))
        total = per_sample if total is None else total + per_sample
    return total


def _log_probabilities(counts: np.ndarray, mode: str, temperature: float, smoothing: float) -> list[float]:
    """log p_i for one sample; -inf for a class whose probability is exactly zero."""
    if mode == "softmax":
        scores = [c / temperature for c in counts]
    else:
        scores = [math.log(c + smoothing) / temperature if c + smoothing > 0 else -math.inf for c in counts]
    finite = [s for s in scores if s != -math.inf]
    if not finite:
        return [-math.inf] * len(scores)  # every class silent with smoothing 0: no class has any probability
    top = max(finite)
    log_total = top + math.log(sum(math.exp(s - top) for s in finite))
    return [s - log_total if s != -math.inf else -math.inf for s in scores]


def _negative_log(log_probability: float) -> float:
    return math.inf if log_probability == -math.inf else -log_probability


def _cross_entropy(
    log_probabilities: list[float],
    target_row,
    soft: bool,
    weight: np.ndarray,
    label_smoothing: float,
) -> float:
    """One sample's loss, following torch.nn.functional.cross_entropy's definition term by term."""
    num_classes = len(log_probabilities)
    if soft:
        loss = 0.0
        for i in range(num_classes):
            share = (1 - label_smoothing) * float(target_row[i]) + label_smoothing / num_classes
            if share > 0 and weight[i] != 0:  # a class without weight adds nothing, even with p = 0
                loss += weight[i] * share * _negative_log(log_probabilities[i])
        return loss
    target_class = int(target_row)
    loss = 0.0
    if label_smoothing < 1 and weight[target_class] != 0:
        loss += (1 - label_smoothing) * weight[target_class] * _negative_log(log_probabilities[target_class])
    if label_smoothing > 0:
        for i in range(num_classes):
            if weight[i] != 0:
                loss += label_smoothing / num_classes * weight[i] * _negative_log(log_probabilities[i])
    return loss


def _reduce(per_sample: np.ndarray, reduction: str, mean_denominator: float):
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return float(np.sum(per_sample))
    return float(np.sum(per_sample)) / mean_denominator


def spikemax_s(
    spikes,
    target,
    *,
    window: int,
    stride: int = 1,
    mode: str = "probability",
    temperature: float = 1.0,
    smoothing: float = 1.0,
    weight=None,
    reduction: str = "mean",
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
):
    """Sliding-window SpikeMax: mean over window ends t = window-1, window-1+stride, ... of the window loss."""
    spikes = np.asarray(spikes, dtype=np.float64)
    target = np.asarray(target)
    num_steps, batch_size, num_outputs = spikes.shape
    classes = num_outputs if num_classes is None else num_classes
    soft = np.issubdtype(target.dtype, np.floating)
    class_weight = np.ones(classes) if weight is None else np.asarray(weight, dtype=np.float64)
    window_ends = list(range(window - 1, num_steps, stride))
    per_sample = np.zeros(batch_size)
    for t in window_ends:
        counts = _grouped_counts(spikes, t - window + 1, t, num_classes)
        for b in range(batch_size):
            log_probabilities = _log_probabilities(counts[b], mode, temperature, smoothing)
            per_sample[b] += _cross_entropy(log_probabilities, target[b], soft, class_weight, label_smoothing)
    per_sample /= len(window_ends)
    if weight is not None and not soft:
        denominator = float(sum(class_weight[int(y)] for y in target))
    else:
        denominator = float(batch_size)
    return _reduce(per_sample, reduction, denominator)


def spikemax_g(spikes, target, **options):
    """Global SpikeMax: the sliding-window loss with a single window covering all T steps."""
    spikes = np.asarray(spikes, dtype=np.float64)
    return spikemax_s(spikes, target, window=spikes.shape[0], stride=1, **options)


def mse_count(
    spikes,
    target,
    *,
    true_rate: float,
    false_rate: float,
    weight=None,
    num_classes: int | None = None,
    reduction: str = "mean",
):
    spikes = np.asarray(spikes, dtype=np.float64)
    target = np.asarray(target)
    num_steps, batch_size, num_outputs = spikes.shape
    classes = num_outputs if num_classes is None else num_classes
    neurons_per_class = num_outputs // classes
    soft = np.issubdtype(target.dtype, np.floating)
    counts = spike_counts(spikes, num_classes)
    per_sample = np.zeros(batch_size)
    sample_weight = np.ones(batch_size)
    for b in range(batch_size):
        for i in range(classes):
            if soft:
                share = float(target[b, i])
            else:
                share = 1.0 if i == int(target[b]) else 0.0
            rate = false_rate + (true_rate - false_rate) * share
            per_sample[b] += (counts[b, i] - rate * num_steps * neurons_per_class) ** 2 / classes
        if weight is not None:
            weight_row = np.asarray(weight, dtype=np.float64)
            sample_weight[b] = float(np.dot(weight_row, target[b])) if soft else float(weight_row[int(target[b])])
    if weight is None:
        return _reduce(per_sample, reduction, float(batch_size))
    return _reduce(per_sample * sample_weight, reduction, float(np.sum(sample_weight)))


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


# ------------------------------------------------------------------------------------------------------------------
# Activity penalty (twin of spikemax_plugins.penalties)
#
# Spikes of any layer, time at ``time_dim``, then batch, then any neuron shape (read in row-major order). Rates are
# sums over the steps divided by T, one neuron at a time; the gradient is written out from the definition.
# ------------------------------------------------------------------------------------------------------------------


def _layer_rates(spikes, time_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The spikes as ``[T, B, N]`` and the firing rates ``[B, N]``: ``r[b, i] = (1 / T) sum_t spikes[t, b, i]``."""
    spikes = np.asarray(spikes, dtype=np.float64)
    time_first = np.moveaxis(spikes, time_dim, 0)
    num_steps, batch_size = time_first.shape[0], time_first.shape[1]
    flat = time_first.reshape(num_steps, batch_size, -1)
    rates = np.zeros((batch_size, flat.shape[2]))
    for b in range(batch_size):
        for i in range(flat.shape[2]):
            total = 0.0
            for t in range(num_steps):
                total += float(flat[t, b, i])
            rates[b, i] = total / num_steps
    return flat, rates


def activity_penalty(
    spikes, *, target_rate: float = 0.0, power: int = 1, reduction: str = "mean", time_dim: int = 0
):
    """Per sample ``mean_i max(r[b, i] - target_rate, 0) ** power``, then ``reduction`` over the batch."""
    _, rates = _layer_rates(spikes, time_dim)
    batch_size, num_neurons = rates.shape
    per_sample = np.zeros(batch_size)
    for b in range(batch_size):
        for i in range(num_neurons):
            excess = max(rates[b, i] - target_rate, 0.0)
            per_sample[b] += excess**power / num_neurons
    return _reduce(per_sample, reduction, float(batch_size))


def activity_penalty_gradient(
    spikes, *, target_rate: float = 0.0, power: int = 1, reduction: str = "mean", time_dim: int = 0
) -> np.ndarray:
    """d penalty / d spikes, in the spikes' shape; with ``reduction="none"`` the gradient of the sum over samples.

    Every step of neuron i of sample b gets ``power * excess ** (power - 1) / (N * T)`` (divided by B for "mean")
    where ``excess = r[b, i] - target_rate > 0``, and 0 where ``r[b, i] <= target_rate`` (0 at the kink, as
    torch.relu).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    flat, rates = _layer_rates(spikes, time_dim)
    num_steps, batch_size, num_neurons = flat.shape
    scale = 1.0 / batch_size if reduction == "mean" else 1.0
    gradient = np.zeros(flat.shape)
    for b in range(batch_size):
        for i in range(num_neurons):
            excess = rates[b, i] - target_rate
            if excess <= 0:
                continue
            derivative = (1.0 if power == 1 else 2.0 * excess) / (num_neurons * num_steps) * scale
            for t in range(num_steps):
                gradient[t, b, i] = derivative
    time_first_shape = np.moveaxis(spikes, time_dim, 0).shape
    return np.moveaxis(gradient.reshape(time_first_shape), 0, time_dim)
