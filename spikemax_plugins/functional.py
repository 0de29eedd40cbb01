"""SpikeMax losses and the spike-count MSE baseline over time-first spike tensors.

Every loss reads the output spikes ``[T, B, N]`` as spike counts ``c[b, i] = sum_t spikes[t, b, i]``
(summed per class group of ``N / num_classes`` neurons with population coding) and compares them with the
target. The two SpikeMax variants are a cross-entropy over *count logits* ``z`` divided by a temperature:

* ``mode="probability"`` (the paper's spike-count probability): ``z_i = log(c_i + smoothing) / temperature``.
  With temperature 1 this is ``p_i = (c_i + smoothing) / sum_j (c_j + smoothing)`` and the loss is
  ``-log p_target``.
* ``mode="softmax"``: ``z_i = c_i / temperature`` (snnTorch's ``ce_count_loss`` at temperature 1).

``weight``, ``reduction``, ``label_smoothing`` and soft (probability) targets follow
:func:`torch.nn.functional.cross_entropy` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _validation as check
from ._counts import total_counts, window_counts

__all__ = ["spikemax_g", "spikemax_s", "mse_count"]


def _count_cross_entropy(
    counts: Tensor,
    target: Tensor,
    weight: Tensor | None,
    *,
    mode: str,
    temperature: float,
    smoothing: float,
    label_smoothing: float,
) -> Tensor:
    """Cross-entropy of count logits per window: counts ``[S, B, C]``, target ``[B]`` or ``[B, C]`` -> ``[S, B]``."""
    num_windows, batch_size, num_classes = counts.shape
    if mode == "probability" and smoothing == 0:
        probabilities = _target_probabilities(target, num_classes, label_smoothing, counts.dtype)
        target_mass = probabilities if weight is None else probabilities * weight.to(counts.dtype)
        return _ExactCountCrossEntropy.apply(counts, target_mass, temperature)
    # Every logit is finite here: torch's fused cross_entropy is exact, cheapest, and defines the semantics of
    # weight, label_smoothing and soft targets that we promise.
    logits = (counts + smoothing).log() if mode == "probability" else counts
    if temperature != 1.0:
        logits = logits / temperature
    if target.is_floating_point():
        target = target.to(counts.dtype)
    else:
        target = target.long()
    repeated_target = target.expand(num_windows, *target.shape).reshape(num_windows * batch_size, *target.shape[1:])
    per_window = torch.nn.functional.cross_entropy(
        logits.reshape(num_windows * batch_size, num_classes),
        repeated_target,
        weight=None if weight is None else weight.to(counts.dtype),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return per_window.view(num_windows, batch_size)


class _ExactCountCrossEntropy(torch.autograd.Function):
    """Probability mode with smoothing 0, where silent classes make logits of -inf.

    Autograd through ``log(c)`` would give ``0 / 0 = NaN`` for a silent class, although the true derivative is
    finite (``1 / sum_j c_j`` at temperature 1). The closed form
    ``dL/dc_i = (sum(a) * p_i - a_i) / (temperature * c_i)`` is evaluated without that 0 / 0, and a silent
    class that carries target mass gives a loss of +inf, never NaN.

    Shapes: counts ``[S, B, C]``, target_mass ``[B, C]``, output ``[S, B]``.
    """

    @staticmethod
    def forward(ctx, counts, target_mass, temperature):  # type: ignore[override]
        logits = counts.log() / temperature
        log_normaliser = torch.logsumexp(logits, dim=-1, keepdim=True)
        mass = target_mass.sum(-1, keepdim=True)
        has_target = target_mass > 0
        # a * z with the convention 0 * (-inf) = 0: a class with no target mass adds nothing, even when silent.
        target_term = torch.where(has_target, target_mass * logits, 0).sum(-1)
        normaliser_term = torch.where(mass > 0, mass * log_normaliser, 0).squeeze(-1)
        # A silent class that carries target mass has p = 0: the loss is +inf.
        silent_target = (has_target & torch.isneginf(logits)).any(-1)
        loss = torch.where(silent_target, torch.inf, normaliser_term - target_term)
        ctx.save_for_backward(counts, log_normaliser, target_mass)
        ctx.temperature = temperature
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):  # type: ignore[override]
        counts, log_normaliser, target_mass = ctx.saved_tensors
        temperature = ctx.temperature
        mass = target_mass.sum(-1, keepdim=True)
        has_target = target_mass > 0
        # p_i / c_i = c_i^(1/T - 1) / sum_j c_j^(1/T), computed in the log domain; xlogy makes 0 * log 0 = 0,
        # so at temperature 1 a silent class gets the finite 1 / sum_j c_j.
        probability_over_count = torch.exp(torch.xlogy(1.0 / temperature - 1.0, counts) - log_normaliser)
        mass_over_count = torch.where(has_target, target_mass / counts, 0)
        gradient = (torch.where(mass > 0, mass * probability_over_count, 0) - mass_over_count) / temperature
        # A silent target class: -a_i / c_i = -inf dominates (mass * p_i / c_i may be +inf too when T > 1: the
        # limit of their difference is still -inf). Every class silent: p is 0 / 0; leave non-targets at 0.
        silent_target = has_target & (counts == 0)
        all_silent = torch.isneginf(log_normaliser)
        gradient = torch.where(all_silent, 0.0, gradient)
        gradient = torch.where(silent_target, -torch.inf, gradient)
        gradient = grad_loss.unsqueeze(-1) * gradient
        # A window whose loss is not used (zero upstream gradient) contributes exactly 0, never 0 * inf.
        gradient = torch.where(grad_loss.unsqueeze(-1) == 0, 0, gradient)
        return gradient, None, None


def _target_probabilities(target: Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype) -> Tensor:
    """Class indices [B] or probabilities [B, C] -> smoothed target distribution [B, C] (as cross_entropy)."""
    if target.is_floating_point():
        probabilities = target.to(dtype)
    else:
        probabilities = torch.nn.functional.one_hot(target.long(), num_classes).to(dtype)
    if label_smoothing > 0:
        probabilities = probabilities * (1 - label_smoothing) + label_smoothing / num_classes
    return probabilities


def _sample_weights(target: Tensor, weight: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Weight of each sample for a weighted mean: weight[target] for class indices, sum_i weight_i t_i for soft."""
    if weight is None:
        return None
    weight = weight.to(dtype)
    if target.is_floating_point():
        return target.to(dtype) @ weight
    return weight[target.long()]


def _reduce(per_sample: Tensor, reduction: str, mean_denominator: Tensor | None) -> Tensor:
    """Reduce [B] losses; ``mean_denominator`` replaces the batch size in the mean (weighted mean)."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if mean_denominator is None:
        return per_sample.mean()
    return per_sample.sum() / mean_denominator


def _spikemax(
    spikes: Tensor,
    target: Tensor,
    *,
    window: int | None,
    stride: int,
    mode: str,
    temperature: float,
    smoothing: float,
    weight: Tensor | None,
    reduction: str,
    num_classes: int | None,
    label_smoothing: float,
) -> Tensor:
    """SpikeMax over causal windows; ``window=None`` is the global loss (one window of length T)."""
    check.check_spikes(spikes)
    num_steps, _, num_outputs = spikes.shape
    num_classes = check.resolve_num_classes(num_outputs, num_classes)
    check.check_target(target, spikes, num_classes)
    weight = check.check_weight(weight, num_classes, spikes)
    check.check_choice(mode, "mode", check._MODES)
    check.check_choice(reduction, "reduction", check._REDUCTIONS)
    temperature = check.check_real(temperature, "temperature", minimum=0.0, exclusive=True)
    smoothing = check.check_real(smoothing, "smoothing", minimum=0.0)
    label_smoothing = check.check_real(label_smoothing, "label_smoothing", minimum=0.0, maximum=1.0)
    if window is None:
        window = num_steps
    else:
        check.check_int(window, "window", minimum=1, maximum=num_steps)
    check.check_int(stride, "stride", minimum=1)

    counts = window_counts(spikes, num_classes, window, stride)  # [S, B, C]
    check.check_values(counts, target, num_classes)
    per_window = _count_cross_entropy(
        counts,
        target,
        weight,
        mode=mode,
        temperature=temperature,
        smoothing=smoothing,
        label_smoothing=label_smoothing,
    )
    per_sample = per_window[0] if per_window.shape[0] == 1 else per_window.mean(0)
    # torch's cross_entropy divides a weighted mean by sum_b weight[target_b] for class indices but by B for
    # probability targets; we follow it exactly.
    denominator = None
    if weight is not None and not target.is_floating_point():
        denominator = _sample_weights(target, weight, counts.dtype).sum()
    return _reduce(per_sample, reduction, denominator)


def spikemax_g(
    spikes: Tensor,
    target: Tensor,
    *,
    mode: str = "probability",
    temperature: float = 1.0,
    smoothing: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Global SpikeMax loss: cross-entropy of the spike-count probability over the whole time window.

    With counts ``c = spikes.sum(0)`` and ``x_i = c_i + smoothing``, ``mode="probability"`` computes
    ``p_i = x_i^(1/temperature) / sum_j x_j^(1/temperature)`` and the loss ``-log p_target``
    (temperature 1: ``p_i = (c_i + smoothing) / sum_j (c_j + smoothing)``). ``mode="softmax"`` uses
    ``softmax(c / temperature)`` instead.

    Args:
        spikes: output spikes, binary or graded, ``>= 0``.
        target: class indices, or class probabilities (soft targets; each row sums to 1).
        mode: ``"probability"`` (spike-count probability, the paper's loss) or ``"softmax"``.
        temperature: divides the count logits; ``< 1`` sharpens, ``> 1`` flattens.
        smoothing: ``alpha >= 0`` added to every count in probability mode. The default 1.0 keeps a silent true
            class at a finite loss with a finite gradient (the authors' code floors counts at 1 for the same
            reason); ``0`` is the paper's exact formula, where a silent true class gives a loss of ``+inf``
            (never NaN). Ignored in softmax mode.
        weight: per-class weights, as in :func:`torch.nn.functional.cross_entropy`.
        reduction: ``"mean"`` (weighted mean with ``weight``), ``"sum"`` or ``"none"``.
        num_classes: with population coding, the number of classes C; the N output neurons are split into C
            contiguous groups of ``N / C`` and counted per group. ``None`` means ``N = C``.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.

    Shape:
        - spikes: ``(T, B, N)`` with ``N = C`` or ``N = k * C`` (population coding)
        - target: ``(B)`` integer class indices in ``[0, C)``, or ``(B, C)`` floating probabilities
        - weight: ``(C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``

    Float16/bfloat16 spikes are counted and the loss computed in float32; the loss is float32 then.
    """
    return _spikemax(
        spikes,
        target,
        window=None,
        stride=1,
        mode=mode,
        temperature=temperature,
        smoothing=smoothing,
        weight=weight,
        reduction=reduction,
        num_classes=num_classes,
        label_smoothing=label_smoothing,
    )


def spikemax_s(
    spikes: Tensor,
    target: Tensor,
    *,
    window: int,
    stride: int = 1,
    mode: str = "probability",
    temperature: float = 1.0,
    smoothing: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Sliding-window SpikeMax loss: the SpikeMax cross-entropy on causal windows, averaged over time.

    At each evaluated step ``t = window - 1, window - 1 + stride, ... <= T - 1`` the counts of the causal window
    ``c_i(t) = sum_{k = t - window + 1}^{t} spikes[k, b, i]`` give a loss as in :func:`spikemax_g`; each
    sample's loss is the mean over its evaluated steps, then ``reduction`` applies over the batch. Because every
    window is scored, a network must be right early and stay right, which lowers decision latency.
    ``window = T`` gives exactly :func:`spikemax_g`.

    The window counts are differences of one cumulative sum: the cost is O(T * B * C) for any window length and
    the extra memory is O(T * B * C).

    Args:
        window: window length in time steps, ``1 <= window <= T``.
        stride: steps between evaluated windows, ``>= 1``.
        Every other argument is as in :func:`spikemax_g`.

    Shape:
        - spikes: ``(T, B, N)``
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    if window is None:
        raise TypeError("window must be an int in [1, T], got None (use spikemax_g for the whole window)")
    return _spikemax(
        spikes,
        target,
        window=window,
        stride=stride,
        mode=mode,
        temperature=temperature,
        smoothing=smoothing,
        weight=weight,
        reduction=reduction,
        num_classes=num_classes,
        label_smoothing=label_smoothing,
    )


def mse_count(
    spikes: Tensor,
    target: Tensor,
    *,
    true_rate: float,
    false_rate: float,
    weight: Tensor | None = None,
    num_classes: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Spike-count mean squared error, the usual baseline (SLAYER numSpikes, lava-dl SpikeRate, snnTorch).

    Each class's target count is ``rate * T * k`` (``k = N / C`` neurons per class): ``true_rate`` for the
    target class and ``false_rate`` for the others; a soft target interpolates,
    ``false_rate + (true_rate - false_rate) * t_i``. A sample's loss is the mean over classes of
    ``(c_i - target_count_i)^2`` (squared counts, i.e. ``T^2`` times an MSE on rates).

    Unlike snnTorch's ``mse_count_loss``: target counts are not truncated to integers, ``weight`` weights each
    sample by its target class's weight (``sum_i weight_i t_i`` for soft targets) for every batch size, the
    weighted mean divides by the sum of those sample weights, and ``reduction="sum"`` sums.

    Args:
        true_rate, false_rate: target firing rates per neuron and step, ``>= 0``.
        weight, num_classes, reduction: as in :func:`spikemax_g`.

    Shape:
        - spikes: ``(T, B, N)``
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    check.check_spikes(spikes)
    num_steps, _, num_outputs = spikes.shape
    num_classes = check.resolve_num_classes(num_outputs, num_classes)
    check.check_target(target, spikes, num_classes)
    weight = check.check_weight(weight, num_classes, spikes)
    check.check_choice(reduction, "reduction", check._REDUCTIONS)
    true_rate = check.check_real(true_rate, "true_rate", minimum=0.0)
    false_rate = check.check_real(false_rate, "false_rate", minimum=0.0)

    counts = total_counts(spikes, num_classes)
    check.check_values(counts, target, num_classes)
    probabilities = _target_probabilities(target, num_classes, 0.0, counts.dtype)
    neurons_per_class = num_outputs // num_classes
    target_counts = (false_rate + (true_rate - false_rate) * probabilities) * (num_steps * neurons_per_class)
    per_sample = (counts - target_counts).square().mean(-1)
    sample_weights = _sample_weights(target, weight, counts.dtype)
    if sample_weights is None:
        return _reduce(per_sample, reduction, None)
    return _reduce(per_sample * sample_weights, reduction, sample_weights.sum())
