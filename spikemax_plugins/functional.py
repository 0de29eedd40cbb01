"""SpikeMax losses and the spike-count MSE baseline.

Every loss reads the output spikes as spike counts ``c[b, i] = sum_t spikes[t, b, i]`` (summed per class group of
``N / num_classes`` neurons with population coding) and compares them with the target. The two SpikeMax
variants are a cross-entropy over *count logits* ``z`` divided by a temperature:

* ``mode="probability"`` (the paper's spike-count probability): ``z_i = log(c_i + smoothing) / temperature``.
  With temperature 1 this is ``p_i = (c_i + smoothing) / sum_j (c_j + smoothing)`` and the loss is
  ``-log p_target``.
* ``mode="softmax"``: ``z_i = c_i / temperature`` (snnTorch's ``ce_count_loss`` at temperature 1).

``weight``, ``reduction``, ``label_smoothing`` and soft (probability) targets follow
:func:`torch.nn.functional.cross_entropy` exactly: wherever the logits are finite the loss *is* that function
(or, when ``weight`` requires grad, which torch's ``nll_loss`` cannot differentiate, the same formula written
out). Spikes may come in any layout: ``time_dim`` names the time dimension and the other two are batch, then
output neurons (``time_dim=-1`` for lava-dl's ``[B, C, T]``); no copy is made to change the layout.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _validation as check
from ._counts import total_counts, window_counts
from ._exact_nll import EagerExactProbabilityNLL, ExactProbabilityNLL
from ._options import MSECountOptions, SpikeMaxOptions, mse_count_options, spikemax_options
from .penalties import activity_penalty

__all__ = ["spikemax_g", "spikemax_s", "mse_count", "activity_penalty"]

# ---------------------------------------------------------------------------------------------- the losses


def _target_distribution(target: Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype) -> Tensor:
    """Class indices [B] or probabilities [B, C] -> the smoothed target distribution [B, C] (as cross_entropy)."""
    if target.is_floating_point():
        distribution = target.to(dtype)
    else:
        distribution = (target.unsqueeze(-1) == torch.arange(num_classes, device=target.device)).to(dtype)
    if label_smoothing > 0:
        distribution = distribution * (1 - label_smoothing) + label_smoothing / num_classes
    return distribution


def _sample_weights(target: Tensor, weight: Tensor, num_classes: int) -> Tensor:
    """Each sample's weight [B]: ``weight[target]`` for class indices, ``sum_i weight_i t_i`` for probabilities.

    Indices are clamped so that this can run before the value checks have seen the target (an out-of-range
    index is then reported by the checks, not by an indexing error).
    """
    if target.is_floating_point():
        return target.to(weight.dtype) @ weight
    return weight[target.clamp(0, num_classes - 1)]


def _weights_for(
    weight: Tensor | None, target: Tensor, dtype: torch.dtype, num_classes: int, reduction: str
) -> tuple[Tensor | None, Tensor | None]:
    """The class weights the loss computes with, and the weighted mean's denominator (None: the batch size).

    torch's weighted mean divides by ``sum_b weight[target_b]`` for class indices and by B for probabilities.
    With class indices and ``reduction="mean"`` the loss does not change when every weight is scaled, so the
    weights are divided by the largest: ``sum(w * loss)`` and ``sum(w)`` then cannot overflow, whatever finite
    weights come. (With probabilities, or another reduction, the weights' scale is part of the result.)
    """
    if weight is None:
        return None, None
    if reduction != "mean" or target.is_floating_point():
        return weight.to(dtype), None
    # Scaled in the wider of the two dtypes: a float64 weight could overflow float32 counts before it is scaled,
    # and a float32 weight scaled in float32 would round what float64 counts compute exactly.
    weight = weight.to(torch.promote_types(weight.dtype, dtype))
    largest = weight.amax()
    weight = torch.where(largest > 0, weight / largest, weight).to(dtype)  # all zero stays zero: the checks refuse it
    return weight, _sample_weights(target, weight, num_classes).sum()


def _reduce(per_sample: Tensor, reduction: str, mean_denominator: Tensor | None) -> Tensor:
    """Reduce [B] losses; ``mean_denominator`` replaces the batch size in the mean (a weighted mean)."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if mean_denominator is None:
        return per_sample.mean()
    return per_sample.sum() / mean_denominator


def _count_logits(counts: Tensor, options: SpikeMaxOptions) -> Tensor:
    """Finite count logits: ``log(c + smoothing) / temperature`` or ``c / temperature``."""
    if options.mode == "softmax":
        logits = counts
    elif options.smoothing == 1.0:
        logits = torch.log1p(counts)
    else:
        logits = (counts + options.smoothing).log()
    return logits if options.temperature == 1.0 else logits / options.temperature


def _cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
    mean_denominator: Tensor | None,
) -> Tensor:
    """:func:`torch.nn.functional.cross_entropy` of logits [R, C]; ``mean_denominator`` as torch's weighted mean."""
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        # torch's nll_loss does not differentiate its weight: the same loss, written out, differentiates all.
        num_classes = logits.shape[-1]
        mass = _target_distribution(target, num_classes, label_smoothing, logits.dtype) * weight.to(logits.dtype)
        per_row = -(mass * torch.log_softmax(logits, -1)).sum(-1)
        return _reduce(per_row, reduction, mean_denominator)
    return torch.nn.functional.cross_entropy(
        logits,
        target.to(logits.dtype) if target.is_floating_point() else target,
        weight=None if weight is None else weight.to(logits.dtype),
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def _checked_arguments(
    spikes: Tensor, target: Tensor, weight: Tensor | None, num_classes: int | None, time_dim: int
) -> tuple[tuple[int, int, int], int, Tensor, Tensor | None]:
    """Every loss's shape, dtype and device checks: ``((T, B, N), C, target, weight)``, the target as int64 indices
    or probabilities."""
    shape = check.check_spikes(spikes, time_dim)
    num_classes = check.resolve_num_classes(shape[2], num_classes)
    target = check.check_target(target, spikes, shape[1], num_classes, time_dim)
    return shape, num_classes, target, check.check_weight(weight, num_classes, spikes)


def _spikemax_loss(spikes: Tensor, target: Tensor, weight: Tensor | None, options: SpikeMaxOptions) -> Tensor:
    """Both SpikeMax losses for validated options (the functions and the modules call this)."""
    time_dim = options.time_dim
    (num_steps, batch_size, _), num_classes, target, weight = _checked_arguments(
        spikes, target, weight, options.num_classes, time_dim
    )
    window = num_steps
    if options.window is not None:
        window = check.check_int(options.window, "window", minimum=1, maximum=num_steps, why=" (T, the time steps)")
    if window == num_steps:
        counts = total_counts(spikes, num_classes, time_dim)  # [B, C]
    else:
        counts = window_counts(spikes, num_classes, window, options.stride, time_dim)  # [S, B, C]
    raw_weight, mean_denominator = weight, None
    if weight is not None:
        weight, mean_denominator = _weights_for(weight, target, counts.dtype, num_classes, options.reduction)
    if check.values_checkable(spikes, target, raw_weight):
        check.check_values(counts, target, num_classes, raw_weight, mean_denominator=mean_denominator)

    if options.mode == "probability" and options.smoothing == 0:
        distribution = _target_distribution(target, num_classes, options.label_smoothing, counts.dtype)
        if options.label_smoothing == 1:
            distribution = distribution.detach()  # the target has no effect; avoid 0 * inf in its gradient
        exact_nll = ExactProbabilityNLL if torch.compiler.is_compiling() else EagerExactProbabilityNLL
        per_window = exact_nll.apply(
            counts if counts.dim() == 3 else counts.unsqueeze(0), distribution, weight, options.temperature
        )  # [S, B]
        per_sample = per_window[0] if per_window.shape[0] == 1 else per_window.mean(0)
        return _reduce(per_sample, options.reduction, mean_denominator)

    logits = _count_logits(counts, options)
    if counts.dim() == 2:  # one window: torch reduces
        return _cross_entropy(logits, target, weight, options.label_smoothing, options.reduction, mean_denominator)
    num_windows = logits.shape[0]
    per_row = _cross_entropy(
        logits.flatten(0, 1),
        target.expand(num_windows, *target.shape).flatten(0, 1),
        weight,
        options.label_smoothing,
        "none",
        None,
    )
    per_sample = per_row.view(num_windows, batch_size).mean(0)
    return _reduce(per_sample, options.reduction, mean_denominator)


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
    time_dim: int = 0,
) -> Tensor:
    r"""Global SpikeMax loss: cross-entropy of the spike-count probability over the whole time window.

    With counts ``c = spikes.sum(time_dim)`` and ``x_i = c_i + smoothing``, ``mode="probability"`` computes
    ``p_i = x_i^(1/temperature) / sum_j x_j^(1/temperature)`` and the loss ``-log p_target``
    (temperature 1: ``p_i = (c_i + smoothing) / sum_j (c_j + smoothing)``). ``mode="softmax"`` uses
    ``softmax(c / temperature)`` instead.

    Args:
        spikes: output spikes, binary or graded, ``>= 0``.
        target: class indices (any integer dtype but uint64), or class probabilities (soft targets; each row
            sums to 1 within ``max(1e-4, 2 * eps)`` of its dtype).
        mode: ``"probability"`` (spike-count probability, the paper's loss) or ``"softmax"``.
        temperature: divides the count logits, in ``[1e-4, 1e4]``; ``< 1`` sharpens, ``> 1`` flattens.
        smoothing: ``alpha`` added to every count in probability mode: 0 or a number in ``[1e-30, 1e30]``. The
            default 1.0 keeps a silent true class at a finite loss with a finite gradient (the authors' code
            floors counts at 1 for the same reason); ``0`` is the paper's exact formula, where a silent true
            class gives a loss of ``+inf`` and a gradient of ``-inf`` on it (never NaN), and the loss is
            differentiable once (a second derivative raises). Ignored in softmax mode.
        weight: per-class weights, finite and ``>= 0``, as in :func:`torch.nn.functional.cross_entropy`; may
            require grad.
        reduction: ``"mean"`` (weighted mean with ``weight``), ``"sum"`` or ``"none"``.
        num_classes: with population coding, the number of classes C; the N output neurons are split into C
            contiguous groups of ``N / C`` and counted per group. ``None`` means ``N = C``.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
        time_dim: the time dimension of ``spikes``; the other two are batch, then output neurons.

    Shape:
        - spikes: ``(T, B, N)`` with ``time_dim=0`` (snnTorch, Norse), ``(B, N, T)`` with ``time_dim=-1``
          (lava-dl), ``(B, T, N)`` with ``time_dim=1``; ``N = C`` or ``N = k * C`` (population coding)
        - target: ``(B)`` integer class indices in ``[0, C)``, or ``(B, C)`` floating probabilities
        - weight: ``(C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``

    Float16/bfloat16 spikes are counted and the loss computed in float32; the loss is float32 then. Value
    checks (finite non-negative counts, valid targets and weights) cost one host synchronisation; see
    :func:`spikemax_plugins.set_value_checks`.
    """
    options = spikemax_options(
        mode=mode, temperature=temperature, smoothing=smoothing, reduction=reduction, num_classes=num_classes,
        label_smoothing=label_smoothing, time_dim=time_dim,
    )
    return _spikemax_loss(spikes, target, weight, options)


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
    time_dim: int = 0,
) -> Tensor:
    r"""Sliding-window SpikeMax loss: the SpikeMax cross-entropy on causal windows, averaged over time.

    At each evaluated step ``t = window - 1, window - 1 + stride, ... <= T - 1`` the counts of the causal window
    ``c_i(t) = sum_{k = t - window + 1}^{t} spikes[k, b, i]`` give a loss as in :func:`spikemax_g`; each
    sample's loss is the mean over its evaluated steps, then ``reduction`` applies over the batch. Because every
    window is scored, a network must be right early and stay right, which lowers decision latency.
    ``window = T`` gives exactly :func:`spikemax_g`.

    Window counts add up only the window's own spikes (van Herk / Gil-Werman blocks, partial sums in float64
    for float32 spikes): their error does not grow with t or with the size of earlier spikes, and the cost is
    O(T * B * C) for any window length, with O(T * B * C) extra memory.

    Args:
        window: window length in time steps, ``1 <= window <= T``.
        stride: steps between evaluated windows, ``>= 1``.
        Every other argument is as in :func:`spikemax_g`.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    if window is None:
        raise TypeError("window must be an int in [1, T], got None (use spikemax_g for the whole window)")
    options = spikemax_options(
        mode=mode, temperature=temperature, smoothing=smoothing, reduction=reduction, num_classes=num_classes,
        label_smoothing=label_smoothing, window=window, stride=stride, time_dim=time_dim,
    )
    return _spikemax_loss(spikes, target, weight, options)


def _mse_count_loss(spikes: Tensor, target: Tensor, weight: Tensor | None, options: MSECountOptions) -> Tensor:
    """The MSE count loss for validated options (the function and the module call this)."""
    time_dim = options.time_dim
    (num_steps, _, num_outputs), num_classes, target, weight = _checked_arguments(
        spikes, target, weight, options.num_classes, time_dim
    )
    counts = total_counts(spikes, num_classes, time_dim)
    scaled_weight, _ = _weights_for(weight, target, counts.dtype, num_classes, options.reduction)
    sample_weights = None if scaled_weight is None else _sample_weights(target, scaled_weight, num_classes)
    mean_denominator = None if sample_weights is None or options.reduction != "mean" else sample_weights.sum()
    if check.values_checkable(spikes, target, weight):
        check.check_values(counts, target, num_classes, weight, mean_denominator=mean_denominator)
    scale = num_steps * (num_outputs // num_classes)  # each of the k neurons of a class aims at rate * T
    true_count, false_count = options.true_rate * scale, options.false_rate * scale
    if target.is_floating_point():
        target_counts = false_count + (true_count - false_count) * target.to(counts.dtype)
    else:
        target_counts = torch.full_like(counts, false_count).scatter(1, target.unsqueeze(1), true_count)
    per_sample = (counts - target_counts).square().mean(-1)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    return _reduce(per_sample, options.reduction, mean_denominator)


def mse_count(
    spikes: Tensor,
    target: Tensor,
    *,
    true_rate: float,
    false_rate: float,
    weight: Tensor | None = None,
    num_classes: int | None = None,
    reduction: str = "mean",
    time_dim: int = 0,
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
        true_rate, false_rate: target firing rates per neuron and step, in ``[0, 1e6]``.
        weight, num_classes, reduction, time_dim: as in :func:`spikemax_g`.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` or ``(B, C)``
        - output: scalar, or ``(B)`` with ``reduction="none"``
    """
    options = mse_count_options(
        true_rate=true_rate, false_rate=false_rate, reduction=reduction, num_classes=num_classes, time_dim=time_dim
    )
    return _mse_count_loss(spikes, target, weight, options)
