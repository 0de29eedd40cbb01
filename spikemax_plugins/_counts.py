"""Spike counting shared by the losses and the metrics: population grouping, totals, windows, running counts."""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import accumulation_dtype


def group_population(neuron_values: Tensor, num_classes: int) -> Tensor:
    """Sum the last dimension N = k * C into C contiguous groups of k neurons (snnTorch's population code)."""
    num_outputs = neuron_values.shape[-1]
    if num_outputs == num_classes:
        return neuron_values
    group_size = num_outputs // num_classes
    return neuron_values.reshape(*neuron_values.shape[:-1], num_classes, group_size).sum(-1)


def total_counts(spikes: Tensor, num_classes: int) -> Tensor:
    """Counts over the whole window: [T, B, N] -> [B, C], in float32 or wider."""
    # Group after the time sum: the grouping then touches B x N values instead of T x B x N.
    return group_population(spikes.sum(0, dtype=accumulation_dtype(spikes.dtype)), num_classes)


def running_counts(spikes: Tensor, num_classes: int) -> Tensor:
    """Counts up to and including each step: [T, B, N] -> [T, B, C], in float32 or wider."""
    grouped = group_population(spikes.to(accumulation_dtype(spikes.dtype)), num_classes)
    return grouped.cumsum(0)


def window_counts(spikes: Tensor, num_classes: int, window: int, stride: int) -> Tensor:
    """Counts in causal windows ending at steps window-1, window-1+stride, ... <= T-1: [T, B, N] -> [S, B, C].

    Differences of one cumulative sum, so the cost is O(T * B * C) whatever the window length.
    """
    num_steps = spikes.shape[0]
    if window == num_steps:
        # The single window is the whole sample: the same sum as the global loss, bit for bit.
        return total_counts(spikes, num_classes).unsqueeze(0)
    cumulative = running_counts(spikes, num_classes)
    window_ends = torch.arange(window - 1, num_steps, stride, device=spikes.device)
    counts = cumulative[window_ends]
    # A window ending at step t starts at t - window + 1; subtract the running count just before it.
    starts_after_zero = window_ends >= window
    before_window = cumulative[(window_ends - window).clamp(min=0)]
    return counts - before_window * starts_after_zero.view(-1, 1, 1).to(counts.dtype)
