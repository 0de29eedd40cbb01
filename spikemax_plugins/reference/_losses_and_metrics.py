"""NumPy twins of the losses (spikemax_g, spikemax_s, mse_count) and the decision metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


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
