"""Where :func:`~spikemax_plugins.early_exit.stream` gets its samples: the queue of samples waiting for a row,
pulled batch by batch from a tensor or an iterable, and the two stores the rows read their inputs from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from .. import _validation as check
from .._counts import time_first
from .rule import ExitRule

_EXHAUSTED = object()  # the end of the source (an iterable may yield None: a bad batch, reported as such)


class SampleQueue:
    """The samples waiting for a row, pulled batch by batch from a tensor or an iterable.

    Each batch is kept time-first, ``[T, b, ...]``; samples are numbered in input order as they are pulled.
    """

    def __init__(self, inputs: object, rule: ExitRule, time_dim: int, device: torch.device | None) -> None:
        self.rule = rule
        self.time_dim = time_dim
        self.device = device
        self.pulled = 0  # samples taken from the source so far
        self.targets: list[Tensor] = []  # the targets of (inputs, target) pairs, in input order
        self.has_pair_targets: bool | None = None
        self.sample_shape: torch.Size | None = None
        self.dtype: torch.dtype | None = None
        self._waiting: list[Tensor] = []  # time-first chunks, [T, b, ...]
        self._waiting_count = 0
        self._one_tensor = isinstance(inputs, Tensor)
        self._whole: Tensor | None = None  # that tensor, time-first and checked, once pulled
        if self._one_tensor:
            self._source: Iterator[Any] | None = iter([inputs])
        elif isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes)):
            self._source = iter(inputs)
        else:
            raise TypeError(
                "inputs must be a tensor [T, N, ...] or an iterable of tensors [T, b, ...] or of (inputs, target) "
                f"pairs, got {type(inputs).__name__}"
            )
        self._batch_index = 0

    def _pull(self) -> bool:
        """Add the next batch of the source to the queue; False when the source is exhausted."""
        if self._source is None:
            return False
        item = next(self._source, _EXHAUSTED)
        if item is _EXHAUSTED:
            self._source = None
            return False
        name = f"inputs batch {self._batch_index}"
        is_pair = isinstance(item, (tuple, list))
        if self.has_pair_targets is None:
            self.has_pair_targets = is_pair
        elif is_pair != self.has_pair_targets:
            raise TypeError(f"{name} must be {'an (inputs, target) pair' if self.has_pair_targets else 'a tensor'} "
                            f"like the batches before it, got {type(item).__name__}")
        if is_pair:
            if len(item) != 2:
                raise ValueError(f"{name} must be an (inputs, target) pair, got a sequence of {len(item)} items")
            batch, batch_target = item
        else:
            batch, batch_target = item, None
        steps = self._checked_batch(batch, name)
        if batch_target is not None:
            if not check.is_index_tensor(batch_target) or batch_target.shape != (steps.shape[1],):
                what = tuple(batch_target.shape) if isinstance(batch_target, Tensor) else type(batch_target).__name__
                raise ValueError(f"the target of {name} must be an integer tensor [b] = [{steps.shape[1]}] of class "
                                 f"indices, got {what}")
            self.targets.append(batch_target)
        self._batch_index += 1
        if self._one_tensor:
            self._whole = steps  # taken by position (take, take_count), not through the chunks
        elif steps.shape[1]:
            self._waiting.append(steps)
            self._waiting_count += steps.shape[1]
        return True

    def _checked_batch(self, batch: object, name: str) -> Tensor:
        if not isinstance(batch, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor [T, b, ...] (time at time_dim), got {type(batch).__name__}")
        if batch.dim() < 2:
            raise ValueError(f"{name} must have a time and a batch dimension, got shape {tuple(batch.shape)}")
        time_dim = check.check_time_dim(self.time_dim, batch.dim())
        steps = time_first(batch, time_dim)
        if steps.shape[0] != self.rule.num_steps:
            raise ValueError(
                f"{name} must have the rule's T = {self.rule.num_steps} steps at time_dim={self.time_dim}, got "
                f"{steps.shape[0]} (shape {tuple(batch.shape)})"
            )
        if self.sample_shape is None:
            self.sample_shape, self.dtype = steps.shape[2:], steps.dtype
        elif steps.shape[2:] != self.sample_shape or steps.dtype != self.dtype:
            raise ValueError(
                f"{name} must hold samples of one step shaped {tuple(self.sample_shape)}, dtype {self.dtype}, like "
                f"the batches before it, got {tuple(steps.shape[2:])}, {steps.dtype} (shape {tuple(batch.shape)})"
            )
        return steps if self.device is None else steps.to(self.device)

    def store(self, first: Tensor) -> WholeInputs | BufferedInputs:
        """Where the rows read their inputs: the one input tensor itself, or a buffer that starts with ``first``
        (the samples of the first rows, ``[T, S, ...]``)."""
        return WholeInputs(self._whole) if self._whole is not None else BufferedInputs(first)

    def take(self, count: int) -> Tensor | None:
        """Up to ``count`` waiting samples as ``[T, k, ...]``; None if none wait."""
        if self._one_tensor:
            start = self.pulled
            taken = self.take_count(count)
            return self._whole[:, start:start + taken] if taken else None
        while self._waiting_count < count and self._pull():
            pass
        if not self._waiting_count:
            return None
        chunks, taken = [], 0
        while taken < count and self._waiting:
            head = self._waiting[0]
            use = min(count - taken, head.shape[1])
            chunks.append(head[:, :use])
            if use == head.shape[1]:
                self._waiting.pop(0)
            else:
                self._waiting[0] = head[:, use:]
            taken += use
        self._waiting_count -= taken
        self.pulled += taken
        return torch.cat(chunks, 1) if len(chunks) > 1 else chunks[0]

    def take_count(self, count: int) -> int:
        """Of one input tensor: take up to ``count`` waiting samples without slicing them out (the rows read them
        from the tensor itself, :class:`WholeInputs`); returns how many were taken, numbered from ``pulled``."""
        if not self._one_tensor:
            raise RuntimeError("take_count is for one input tensor; an iterable's samples are taken with take")
        if self._source is not None:
            self._pull()  # the tensor itself, checked
            self._source = None
        assert self._whole is not None
        taken = min(count, self._whole.shape[1] - self.pulled)
        self.pulled += taken
        return taken


class WholeInputs:
    """Inputs given as one tensor: each row reads its sample's step straight from it (column = sample number)."""

    def __init__(self, steps: Tensor) -> None:
        self.steps = steps  # [T, N, ...], a view of the caller's tensor: only read, and only what is simulated
        self.device = steps.device
        self.stride = steps.shape[1]  # one step further = N rows further in the [T * N, ...] layout
        self._flat = steps.reshape(steps.shape[0] * steps.shape[1], -1) if steps.is_contiguous() else None

    def gather(self, index: Tensor, rows: int) -> Tensor:
        """One step of every row, ``[S, ...]``; ``index`` ``(S)``: step * N + sample number of each row."""
        if self._flat is None:
            return self.steps[index // self.stride, index % self.stride]
        return self._flat.index_select(0, index).view(rows, *self.steps.shape[2:])


class BufferedInputs:
    """Inputs pulled batch by batch: the samples in flight are copied into one buffer ``[T, S0, ...]`` (``S0`` the
    rows at the start, which only shrink); a new sample takes the column of the row's previous one."""

    def __init__(self, first: Tensor) -> None:
        num_steps, columns = first.shape[:2]
        # [T * S0, features], never the caller's tensor: gathering rows of a 2-D tensor takes torch's fast kernel.
        self.buffer = first.reshape(num_steps * columns, -1).clone()
        self.sample_shape, self.stride, self.device = first.shape[2:], columns, first.device

    def gather(self, index: Tensor, rows: int) -> Tensor:
        """One step of every row, ``[S, ...]``; ``index`` ``(S)``: step * S0 + column of each row."""
        return self.buffer.index_select(0, index).view(rows, *self.sample_shape)

    def put(self, columns: Tensor, samples: Tensor) -> Tensor:
        """New samples ``[T, k, ...]`` into ``columns`` ``(k)``; returns those columns."""
        num_steps, count = samples.shape[:2]
        self.buffer.view(num_steps, self.stride, -1)[:, columns] = samples.reshape(num_steps, count, -1)
        return columns
