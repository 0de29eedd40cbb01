"""Spike counting shared by the losses, the metrics and early exit: layouts, population groups, totals,
running counts and causal windows.

Spikes arrive with time at ``time_dim``; the two other dimensions are batch, then output neurons. Nothing here
copies the spikes to change the layout: a sum reduces over ``time_dim`` directly and running/window counts
work on a ``movedim`` view.

Two accumulation precisions:

* :func:`accumulation_dtype` (the losses): float32 for half, bfloat16 and float32 spikes, float64 for float64.
* :func:`decision_dtype` (predictions, decisions, early exit): float64 wherever the device has it, so that
  counts stay exact integers up to 2**53 and two different counts never compare equal (in float32, counts
  above 2**24 would round together and a clear winner would look like a tie).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Counts of half-precision spikes are summed in float32: float16 cannot count past 2048 exactly."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def decision_dtype(device: torch.device) -> torch.dtype:
    """float64 for counts that decide (exact to 2**53); float32 only where the device has no float64 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def time_first(spikes: Tensor, time_dim: int) -> Tensor:
    """A ``[T, B, N]`` view of spikes whose time dimension is ``time_dim`` (no copy)."""
    return spikes if time_dim == 0 else spikes.movedim(time_dim, 0)


def group_population(neuron_values: Tensor, num_classes: int) -> Tensor:
    """Sum the last dimension N = k * C into C contiguous groups of k neurons (snnTorch's population code)."""
    num_outputs = neuron_values.shape[-1]
    if num_outputs == num_classes:
        return neuron_values
    group_size = num_outputs // num_classes
    return neuron_values.reshape(*neuron_values.shape[:-1], num_classes, group_size).sum(-1)


def total_counts(spikes: Tensor, num_classes: int, time_dim: int = 0, dtype: torch.dtype | None = None) -> Tensor:
    """Counts over the whole window: spikes (time at ``time_dim``) -> ``[B, C]``.

    ``dtype`` defaults to :func:`accumulation_dtype`. Grouping after the time sum touches B x N values instead
    of T x B x N.
    """
    dtype = accumulation_dtype(spikes.dtype) if dtype is None else dtype
    # sum(dtype=...) takes a slower path even when no conversion is needed (3 % at (100, 64, 1000)).
    total = spikes.sum(time_dim) if spikes.dtype == dtype else spikes.sum(time_dim, dtype=dtype)
    return group_population(total, num_classes)


def running_counts(spikes: Tensor, num_classes: int, time_dim: int = 0, dtype: torch.dtype | None = None) -> Tensor:
    """Counts up to and including each step: spikes (time at ``time_dim``) -> ``[T, B, C]``."""
    dtype = accumulation_dtype(spikes.dtype) if dtype is None else dtype
    grouped = group_population(time_first(spikes, time_dim).to(dtype), num_classes)
    return grouped.cumsum(0)


def _window_accumulator(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    # Partial sums of float32 (or narrower) spikes are kept in float64 where the device has it, so a window
    # count is the float32 rounding of an (almost) exact sum of its own spikes, whatever the window length.
    if dtype == torch.float64 or device.type == "mps":
        return dtype
    return torch.float64


# Working memory per batch slice of the window sums: cache-sized, and small enough that malloc reuses it
# instead of mapping fresh pages for every call (at (T, B, C) = (100, 64, 1000) whole-batch float64 buffers are
# 51 MB each, and their page faults cost more than the arithmetic).
_SLICE_BYTES = 1 << 22


def _block_window_sums(values: Tensor, window: int) -> Tensor:
    """``[L, B, C]`` -> ``[L - window + 1, B, C]``: the sum over steps ``t - window + 1 .. t`` for each ``t``.

    The van Herk / Gil-Werman scheme: cut time into blocks of ``window`` steps and take, within each block, the
    running sum from the block's start (prefix) and to the block's end (suffix). A window then spans at most
    two blocks and its sum is ``suffix[start] + prefix[end]`` (``prefix[end]`` alone when it is exactly one
    block). Both terms add up only elements inside the window, so the error does not grow with t and an
    infinite element (a gradient) reaches only the windows that contain it: never ``+inf - inf``.
    """
    length = values.shape[0]
    padding = -length % window
    if padding:
        values = torch.cat([values, values.new_zeros(padding, *values.shape[1:])])
    blocks = values.reshape(-1, window, *values.shape[1:])
    prefix = blocks.cumsum(1).flatten(0, 1)
    suffix = blocks.flip(1).cumsum(1).flip(1).flatten(0, 1)
    count = length - window + 1
    on_boundary = torch.arange(count, device=values.device) % window == 0
    return prefix[window - 1 : length] + torch.where(on_boundary.view(-1, 1, 1), 0, suffix[:count])


def _by_batch_slices(values: Tensor, bytes_per_value: int, function: Callable[[Tensor], Tensor]) -> Tensor:
    """``function`` applied to slices of the batch (dimension 1) of about ``_SLICE_BYTES`` each, concatenated."""
    step = max(1, _SLICE_BYTES // max(values[:, :1].numel() * bytes_per_value, 1))
    batch_size = values.shape[1]
    if step >= batch_size:
        return function(values)
    return torch.cat([function(values[:, start : start + step]) for start in range(0, batch_size, step)], dim=1)


def _causal_window_sums(values: Tensor, window: int, stride: int, accumulator: torch.dtype) -> Tensor:
    """Sums of the windows ending at ``window - 1, window - 1 + stride, ...`` (:func:`_block_window_sums`),
    computed in ``accumulator`` and returned in the values' dtype."""

    def sums(part: Tensor) -> Tensor:
        return _block_window_sums(part.to(accumulator), window)[::stride].to(values.dtype)

    return _by_batch_slices(values, torch.finfo(accumulator).bits // 8, sums)


class _WindowSums(torch.autograd.Function):
    """Causal window sums ``[T, B, C] -> [S, B, C]`` (windows ending at ``window-1, window-1+stride, ...``).

    The adjoint of a window sum is again a window sum (of the gradient, zero-padded): :class:`_WindowSumsAdjoint`.
    Each is the other's backward, so the loss stays differentiable any number of times.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(values: Tensor, window: int, stride: int, accumulator: torch.dtype) -> Tensor:
        return _causal_window_sums(values, window, stride, accumulator)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        values, window, stride, _ = inputs
        ctx.window, ctx.stride, ctx.num_steps = window, stride, values.shape[0]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _window_sums_adjoint(grad, ctx.window, ctx.stride, ctx.num_steps), None, None, None


class _WindowSumsAdjoint(torch.autograd.Function):
    """``[S, B, C] -> [T, B, C]``: each step receives the summed values of the windows that contain it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(window_values: Tensor, window: int, stride: int, num_steps: int) -> Tensor:
        count = num_steps - window + 1

        def adjoint(part: Tensor) -> Tensor:
            if stride > 1:  # the windows that were not evaluated contribute nothing
                ends = torch.arange(0, count, stride, device=part.device)
                part = part.new_zeros(count, *part.shape[1:]).index_copy(0, ends, part)
            # Step t lies in the windows ending at t .. t + window - 1: a causal window sum over the window values
            # placed at their end steps, read window - 1 steps later.
            edge = part.new_zeros(window - 1, *part.shape[1:])
            return _block_window_sums(torch.cat([edge, part, edge]), window)

        return _by_batch_slices(window_values, window_values.element_size(), adjoint)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        _, window, stride, num_steps = inputs
        ctx.window, ctx.stride, ctx.num_steps = window, stride, num_steps

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _window_sums(grad, ctx.window, ctx.stride, grad.dtype), None, None, None


# Forward mode: both maps are linear, so each is its own jvp. Dynamo cannot trace an autograd.Function that
# defines jvp, so the eager twins below carry it and torch.compile traces the classes above.
class _EagerWindowSums(_WindowSums):
    @staticmethod
    def jvp(ctx, tangent, *_):  # type: ignore[override]
        return _window_sums(tangent, ctx.window, ctx.stride, tangent.dtype)


class _EagerWindowSumsAdjoint(_WindowSumsAdjoint):
    @staticmethod
    def jvp(ctx, tangent, *_):  # type: ignore[override]
        return _window_sums_adjoint(tangent, ctx.window, ctx.stride, ctx.num_steps)


def _window_sums(values: Tensor, window: int, stride: int, accumulator: torch.dtype) -> Tensor:
    function = _WindowSums if torch.compiler.is_compiling() else _EagerWindowSums
    return function.apply(values, window, stride, accumulator)


def _window_sums_adjoint(window_values: Tensor, window: int, stride: int, num_steps: int) -> Tensor:
    function = _WindowSumsAdjoint if torch.compiler.is_compiling() else _EagerWindowSumsAdjoint
    return function.apply(window_values, window, stride, num_steps)


def window_counts(spikes: Tensor, num_classes: int, window: int, stride: int, time_dim: int = 0) -> Tensor:
    """Counts in causal windows ending at steps ``window-1, window-1+stride, ... <= T-1``: -> ``[S, B, C]``.

    Each window count adds up only the window's own spikes (see :func:`_causal_window_sums`), with partial sums
    in float64 for float32 and narrower spikes: a count is the float32 rounding of its (almost) exact sum, its
    error does not grow with t or with the size of earlier spikes, and in the backward pass each spike receives
    the summed gradient of the windows that contain it and nothing else (no ``+inf - inf`` when a window's
    gradient is infinite: smoothing 0, silent true class). Cost O(T * B * C) for any window length.
    Output dtype: :func:`accumulation_dtype`.
    """
    num_steps = spikes.shape[time_dim]
    if window == num_steps:
        # The single window is the whole sample: the same sum as the global loss, bit for bit.
        return total_counts(spikes, num_classes, time_dim).unsqueeze(0)
    values = group_population(time_first(spikes, time_dim).to(accumulation_dtype(spikes.dtype)), num_classes)
    return _window_sums(values, window, stride, _window_accumulator(spikes.dtype, spikes.device))
