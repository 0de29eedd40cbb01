"""Runners: a rule applied to a recording (:func:`evaluate`), to a batch stepped together (:func:`run`), and to a
stream of samples in a pool of batch rows that a new sample takes as soon as its sample exits (:func:`stream`).

All three decide through ``rule.decide_rows``, so they give the same decision
for every sample; only the work the network does differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .. import _validation as check
from .._counts import decision_dtype, time_first
from ._inputs import BufferedInputs, SampleQueue, WholeInputs
from .rule import (
    ExitReport,
    ExitRule,
    ExitState,
    _check_spike_values,
    _require_values,
    check_step_spikes,
    decide_rows,
    make_report,
    step_counts,
    thresholds_by_step,
)

__all__ = ["evaluate", "run", "stream", "SlotNetwork"]


def _check_rule(rule: object) -> ExitRule:
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule, got {type(rule).__name__}")
    return rule


# ------------------------------------------------------------------------------------------------- offline


def _check_rule_spikes(rule: ExitRule, spikes: Tensor, time_dim: int) -> Tensor:
    """Validate a recording against a rule; returns the ``[T, B, N]`` view."""
    _check_rule(rule)
    time_dim = check.check_time_dim(time_dim)
    num_steps, _, num_outputs = check.check_spikes(spikes, time_dim)
    if num_steps != rule.num_steps:
        raise ValueError(f"spikes must have the rule's T = {rule.num_steps} steps, got {num_steps}")
    if num_outputs % rule.num_classes:
        raise ValueError(
            f"the number of output neurons N = {num_outputs} must be a multiple of the rule's C = {rule.num_classes}"
        )
    _require_values(spikes, "spikes")
    if check.values_checkable(spikes):
        _check_spike_values(spikes)
    return time_first(spikes, time_dim)


def evaluate(rule: ExitRule, spikes: Tensor, target: Tensor | None = None, *, time_dim: int = 0) -> ExitReport:
    """Apply ``rule`` to a recording: exactly what :meth:`ExitRule.start` / :meth:`ExitState.update` decide when
    fed the recording step by step (this function does precisely that).

    Shape:
        - spikes: ``(T, B, N)`` with the rule's T and ``N = k * C``, or another layout with ``time_dim``
        - target: ``(B)`` class indices, optional
        - output: :class:`ExitReport`
    """
    steps = _check_rule_spikes(rule, spikes, time_dim)
    with torch.no_grad():
        state = rule.start(steps.shape[1], device=steps.device)
        # Many steps decided at once, in blocks that keep the decision's (K, B, C) tensors to a few MB.
        block = max(1, _EVALUATE_BLOCK_ELEMENTS // (steps.shape[1] * rule.num_classes))
        for start in range(0, rule.num_steps, block):
            state.advance_steps(steps[start:start + block])  # checked above, in one synchronisation
        return state.report(target)


_EVALUATE_BLOCK_ELEMENTS = 1 << 20
# run's default blocks: at least this many steps (deciding costs a fraction of a network step, so deciding at
# every step costs more than the few steps a block may run past the batch's last exit) ...
_RUN_MIN_BLOCK = 4
# ... and longer while many samples are undecided (a batch is done only when its last sample is).
_RUN_UNDECIDED_PER_STEP = 8


def _run_block_end(rule: ExitRule, step: int, undecided: int, decide_every: int | None) -> int:
    """The last step of the next block :func:`run` decides at once, the block starting at ``step``: the first
    checkpoint at least ``length - 1`` steps on (only at a checkpoint can the batch become done), ``length``
    being ``decide_every``, or by default ``max(4, ceil(undecided / 8))``."""
    length = decide_every or max(_RUN_MIN_BLOCK, -(-undecided // _RUN_UNDECIDED_PER_STEP))
    earliest = min(step + length, rule.num_steps) - 1
    return next(checkpoint for checkpoint in rule.checkpoints if checkpoint >= earliest)


# ------------------------------------------------------------------------------------------ batch-synchronous


def run(
    step_fn: Callable[[Any], Tensor],
    inputs: Tensor | Sequence[Any],
    rule: ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
    decide_every: int | None = None,
) -> ExitReport:
    """Simulate a batch step by step and stop once every sample of the batch has exited.

    Calls ``step_fn(inputs[t])`` for ``t = 0, 1, ...`` (``inputs`` is a tensor with time at ``time_dim``, or a
    sequence of per-step inputs); ``step_fn`` returns the output spikes of that step, ``(B, N)``. Samples that
    exited earlier keep being simulated until the last one exits (the batch steps together), but their later
    outputs are ignored. ``report.steps_simulated`` says how many steps ran. Runs under ``torch.no_grad()``.

    The rule decides blocks of steps, each block's steps at once (:meth:`ExitState.advance_steps`, one host
    synchronisation per block), and a block ends at a checkpoint. ``decide_every`` sets the block's length:
    ``1`` decides at every step, so the network stops right after the last exit (``steps_simulated ==
    max(exit_step) + 1``); by default (None) a block is ``max(4, ceil(undecided / 8))`` steps, ``undecided`` the
    samples not exited before it, so the network may run a few steps past the last exit, and spends far fewer
    operations and synchronisations on deciding. The decisions are the same either way. The adapters wrap this
    for snnTorch (``spikemax_snntorch.run_early_exit``) and Norse (``spikemax_norse.run_early_exit``). On
    hardware that can re-batch, :func:`stream` turns the saved steps into throughput.

    Shape:
        - inputs: ``(T, B, ...)`` (time at ``time_dim``), or a sequence of T per-step inputs
        - target: ``(B)`` class indices, optional
    """
    _check_rule(rule)
    if decide_every is not None:
        decide_every = check.check_int(decide_every, "decide_every", minimum=1)
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable (one step of the network), got {type(step_fn).__name__}")
    if isinstance(inputs, Tensor):
        time_dim = check.check_time_dim(time_dim, max(inputs.dim(), 1))
        per_step: Sequence[Any] = time_first(inputs, time_dim) if time_dim else inputs
    elif isinstance(inputs, Sequence):
        per_step = inputs
    else:
        raise TypeError(f"inputs must be a tensor or a sequence of per-step inputs, got {type(inputs).__name__}")
    if len(per_step) != rule.num_steps:
        raise ValueError(f"inputs must have the rule's T = {rule.num_steps} steps, got {len(per_step)}")
    state: ExitState | None = None
    block: list[Tensor] = []  # the outputs of the steps not decided yet
    block_end = undecided = 0
    with torch.no_grad():
        for step in range(rule.num_steps):
            output = _checked_step_output(step_fn(per_step[step]), step, rule, state)
            if state is None:
                state = rule.start(output.shape[0], device=output.device)
                block_end = _run_block_end(rule, 0, output.shape[0], decide_every)
            block.append(output)
            if step < block_end:
                continue
            outputs = torch.stack(block)  # [K, B, N]
            block.clear()
            if check.values_checkable(outputs):
                _check_spike_values(outputs, f"step_fn's output at steps {step - outputs.shape[0] + 1} to {step}")
            done = state.advance_steps(outputs)
            undecided = state.batch_size - int(done.sum())
            if not undecided:
                break
            block_end = _run_block_end(rule, step + 1, undecided, decide_every)
        assert state is not None
        return state.report(target, steps_simulated=state.step)


def _checked_step_output(output: object, step: int, rule: ExitRule, state: ExitState | None) -> Tensor:
    """What ``step_fn`` returned at ``step``: the floating-point output spikes ``[B, N]`` of one step."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"step_fn must return the output spikes of one step as a tensor [B, N], got {type(output).__name__}"
        )
    if not output.is_floating_point():
        raise TypeError(
            f"step_fn must return floating-point output spikes [B, N], got dtype {output.dtype} at step {step}"
        )
    if output.dim() != 2:
        raise ValueError(
            f"step_fn must return the output spikes of one step, [B, N], got shape {tuple(output.shape)} at step {step}"
        )
    if output.shape[1] % rule.num_classes:
        raise ValueError(
            f"step_fn must return [B, N] with N a multiple of the rule's C = {rule.num_classes}, got shape "
            f"{tuple(output.shape)} at step {step}"
        )
    if state is not None and output.shape[0] != state.batch_size:
        raise ValueError(
            f"step_fn returned B = {output.shape[0]} samples at step {step} but B = {state.batch_size} before: the "
            "batch must stay the same through the steps"
        )
    if state is not None and output.device != state.device:
        raise ValueError(f"step_spikes is on {output.device} but the state is on {state.device}")
    _require_values(output, f"step_fn's output at step {step}")
    return output


# -------------------------------------------------------------------------------------- continuous batching


@runtime_checkable
class SlotNetwork(Protocol):
    """A network that :func:`stream` steps, one row of the batch per sample in flight (``S`` rows live).

    The host adapters implement it (``spikemax_snntorch``, ``spikemax_norse``, ...); write one for another host
    in three methods. The engine resets the network before the first step is its caller's job; after that:

    * ``step(x)``: one time step for the live rows: ``x`` ``(S, ...)`` -> output spikes ``(S, N)``.
    * ``reset_rows(rows)``: a new sample starts in these rows, int64 ``(k)`` indices in ``[0, S)``: their neuron
      state goes back to the value a freshly reset network starts from.
    * ``keep_rows(rows)``: only these rows stay, int64 ``(S')`` increasing indices in ``[0, S)``, in this order;
      the others are dropped and ``S`` becomes ``S'``.
    """

    def step(self, x: Tensor) -> Tensor: ...

    def reset_rows(self, rows: Tensor) -> None: ...

    def keep_rows(self, rows: Tensor) -> None: ...


def stream(
    network: SlotNetwork,
    inputs: Tensor | Iterable[Tensor] | Iterable[tuple[Tensor, Tensor]],
    rule: ExitRule,
    *,
    slots: int,
    target: Tensor | None = None,
    time_dim: int = 0,
    device: torch.device | str | None = None,
) -> ExitReport:
    """Early-exit inference with continuous batching: ``slots`` batch rows, each at its own step.

    Every row holds one sample in flight. After each ``network.step`` the rule decides every row at that row's
    own step (the same decision as :func:`evaluate`); a row whose sample exits emits the decision and takes the
    next waiting sample (``network.reset_rows``); once nothing waits, finished rows are dropped
    (``network.keep_rows``). The network thus simulates each sample only up to its exit, in batches that stay
    full, instead of stepping a batch until its slowest sample exits (:func:`run`).

    The report is over all samples in input order and equals ``evaluate(rule, full_recording, target)``
    (prediction, exit step, prediction set, accuracy, coverage) whatever ``slots`` and the batch boundaries of
    ``inputs``; ``steps_simulated`` counts the network's calls and ``sample_steps_simulated`` the rows it stepped,
    ``sum(exit_step + 1)`` (the full window costs ``N * T``). Runs under ``torch.no_grad()``; one host
    synchronisation per step (which rows exited), plus the value check of the outputs when value checks are on.

    Args:
        network: a :class:`SlotNetwork`, reset before the call (the host adapters' ``stream_early_exit`` do it).
        inputs: a tensor ``(T, N, ...)`` with time at ``time_dim``, or an iterable of tensors ``(T, b, ...)`` or
            of ``(inputs, target)`` pairs (a ``DataLoader`` with time-first collation works as is); batches are
            pulled only as rows free up, so the stream need not fit in memory.
        rule: the :class:`ExitRule`; its T must be the inputs'.
        slots: the number of batch rows, ``>= 1``.
        target: ``(N)`` class indices for accuracy and coverage; with ``(inputs, target)`` pairs, leave it None.
        device: where the rows' inputs are kept and fed to the network (default: where they come from).

    Shape:
        - one step fed to ``network.step``: ``(S, ...)``, ``S <= slots`` live rows; its output ``(S, N)``
        - output: :class:`ExitReport` over the ``N`` samples
    """
    if not isinstance(network, SlotNetwork):
        raise TypeError(
            "network must implement the SlotNetwork protocol (step, reset_rows, keep_rows), got "
            f"{type(network).__name__}"
        )
    _check_rule(rule)
    slots = check.check_int(slots, "slots", minimum=1)
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        raise TypeError(f"time_dim must be an int, got {type(time_dim).__name__}")
    # The target's type is refused before the stream runs; its length (N is known only at the end of an iterable)
    # and values are checked with the report.
    if target is not None:
        check.require_index_tensor(target, "target", "of class indices [N]")
    queue = SampleQueue(inputs, rule, time_dim, None if device is None else torch.device(device))
    with torch.no_grad():
        first = queue.take(slots)  # [T, S, ...], a view of the caller's inputs
        if first is None:
            raise ValueError("inputs hold no sample: early exit needs at least one")
        if queue.has_pair_targets and target is not None:
            raise ValueError("target must be None when inputs yield (inputs, target) pairs: they carry it")
        engine = _Engine(network, rule, queue.store(first), first.shape[1])
        while engine.live_rows:
            exited = engine.step()
            if exited.numel():
                engine.refill(exited, queue)
        engine.check_outputs()
        decisions = engine.decisions()
        if queue.has_pair_targets:
            target = torch.cat(queue.targets).to(decisions[0].device)
        if target is not None and target.shape != (queue.pulled,):
            raise ValueError(f"target must be [N] = [{queue.pulled}] (one class per input sample), got shape "
                             f"{tuple(target.shape)}")
        return make_report(rule, *decisions, target, steps_simulated=engine.calls,
                           sample_steps_simulated=engine.sample_steps)


class _Engine:
    """The rows in flight: where each row's sample lies in the store, its running counts; the decisions made.

    A row's input at call ``c`` is store row ``offset + c * stride`` (``offset`` = its sample's column minus the
    call at which the sample took the row, times the stride), so one addition per call finds every row's input,
    a new sample costs one write, and the row's step is ``index // stride`` (a column is ``< stride``).
    Per call the engine spends that addition, one gather of the inputs, the network's step, one in-place count
    update, the decision (:func:`decide_rows`) and one host synchronisation (which rows exited); the value check
    of the outputs is one reduction per call, read back once at the end (:meth:`check_outputs`).
    """

    def __init__(self, network: SlotNetwork, rule: ExitRule, inputs: WholeInputs | BufferedInputs, rows: int) -> None:
        self.network, self.rule, self.inputs = network, rule, inputs
        self.stride = inputs.stride
        self.row_offset = torch.arange(rows, device=inputs.device)  # call 0, step 0: index = column = row
        # One input tensor: a sample's column is its number (index % stride). A buffer reuses its columns for new
        # samples, so each row's sample number is kept.
        self.row_sample = None if isinstance(inputs, WholeInputs) else torch.arange(rows, device=inputs.device)
        self.row_counts: Tensor | None = None  # [S, C], on the outputs' device once the first step ran
        self.check_values: bool | None = None  # decided on the first output
        self.calls = self.sample_steps = 0
        # Host-side, per row: the call at which its sample took it. A row is at step T - 1 at call
        # start + T - 1, so the host knows when no row can be (most calls) and the fallback decision is skipped.
        self.row_start = [0] * rows
        self._thresholds: Tensor | float = 0.0
        self._is_checkpoint: Tensor | None = None
        self._extremes: list[Any] = []  # per call, the output's (min, max), read back at the end
        # Per call with exits: the exited rows' (store index, sample number or None, prediction, prediction set).
        self._exits: list[tuple[Tensor, Tensor | None, Tensor, Tensor]] = []

    @property
    def live_rows(self) -> int:
        return self.row_offset.shape[0]

    def _first_output(self, output: Tensor) -> None:
        """The decision tables, on the device of the first output (every later one must stay there)."""
        device, rows = output.device, output.shape[0]
        self.row_counts = torch.zeros(rows, self.rule.num_classes, dtype=decision_dtype(device), device=device)
        thresholds, is_checkpoint = thresholds_by_step(self.rule, device)
        if len(self.rule.checkpoints) < self.rule.num_steps:
            self._thresholds, self._is_checkpoint = thresholds, is_checkpoint
        elif bool((thresholds == thresholds[0]).all()):
            self._thresholds = float(thresholds[0])  # one threshold at every step ("accuracy" rules): no lookup
        else:
            self._thresholds = thresholds
        self.check_values = check.values_checkable(output)

    def step(self) -> Tensor:
        """One network call for every live row; returns the rows whose samples exit now, int64 ``(k)``."""
        rows = self.live_rows
        index = self.row_offset + self.calls * self.stride  # [S]: each row's input at its own step
        output = self.network.step(self.inputs.gather(index, rows))
        what = f"network.step's output at call {self.calls}"
        device = self.row_counts.device if self.row_counts is not None else getattr(output, "device", None)
        check_step_spikes(output, rows, self.rule, device, what)
        if self.row_counts is None:
            self._first_output(output)
        assert self.row_counts is not None
        if self.check_values:
            self._extremes.append(torch.aminmax(output))  # under no_grad: no graph to detach from
        self.calls += 1
        self.sample_steps += rows
        self.row_counts.add_(step_counts(output, self.rule.num_classes, self.row_counts.dtype))
        thresholds = self._thresholds
        near_last_step = self.calls - 1 - min(self.row_start) >= self.rule.num_steps - 1
        row_step = None
        if near_last_step or not isinstance(thresholds, float):
            row_step = (index // self.stride).to(self.row_counts.device)
        exits, prediction, admitted = decide_rows(
            self.rule,
            self.row_counts,
            thresholds if isinstance(thresholds, float) else thresholds[row_step].unsqueeze(-1),
            None if self._is_checkpoint is None else self._is_checkpoint[row_step],
            row_step == self.rule.num_steps - 1 if near_last_step else None,
        )
        exited = exits.nonzero().squeeze(-1)
        if exited.numel():
            store_exited = exited.to(index.device)
            self._exits.append((  # index_select: the cheapest gather of rows
                index.index_select(0, store_exited),
                None if self.row_sample is None else self.row_sample.index_select(0, store_exited),
                prediction.index_select(0, exited),
                admitted.index_select(0, exited),
            ))
        return exited

    def refill(self, exited: Tensor, queue: SampleQueue) -> None:
        """New samples into the exited rows while any wait; the rest of the exited rows are dropped."""
        if self.row_sample is None:  # one input tensor: the rows read the new samples from it, none is copied
            new_inputs, taken = None, queue.take_count(exited.numel())
        else:
            new_inputs = queue.take(exited.numel())
            taken = 0 if new_inputs is None else new_inputs.shape[1]
        if taken:
            assert self.row_counts is not None
            rows = exited if taken == exited.numel() else exited[:taken]
            for row in rows.tolist():
                self.row_start[row] = self.calls
            self.network.reset_rows(rows)
            store_rows = rows.to(self.inputs.device)
            shift = self.calls * self.stride  # the new samples' step 0 is the next call
            if new_inputs is None:  # a sample's column is its number
                offsets = torch.arange(queue.pulled - taken - shift, queue.pulled - shift, device=self.inputs.device)
            else:
                assert self.row_sample is not None
                # offset = column - start * stride, so offset % stride is the row's column (a remainder >= 0)
                columns = self.inputs.put(self.row_offset.index_select(0, store_rows) % self.stride, new_inputs)
                offsets = columns - shift
                numbers = torch.arange(queue.pulled - taken, queue.pulled, device=self.inputs.device)
                self.row_sample.index_copy_(0, store_rows, numbers)
            self.row_offset.index_copy_(0, store_rows, offsets)
            self.row_counts.index_fill_(0, rows, 0)
        if taken < exited.numel():
            assert self.row_counts is not None
            keep = torch.ones(self.live_rows, dtype=torch.bool, device=exited.device)
            keep[exited[taken:]] = False
            kept = keep.nonzero().squeeze(-1)
            self.row_start = [self.row_start[row] for row in kept.tolist()]
            self.network.keep_rows(kept)
            store_kept = kept.to(self.inputs.device)
            self.row_offset = self.row_offset.index_select(0, store_kept)
            if self.row_sample is not None:
                self.row_sample = self.row_sample.index_select(0, store_kept)
            self.row_counts = self.row_counts.index_select(0, kept)

    def check_outputs(self) -> None:
        """The value check of every output (finite, ``>= 0``), read back in one synchronisation; names the first
        bad call. Bad values cannot stop the engine early (every row exits by ``T - 1``), so the check waits."""
        if not self._extremes:
            return
        low = torch.stack([extreme.min.to(torch.float64) for extreme in self._extremes])  # [calls]
        high = torch.stack([extreme.max.to(torch.float64) for extreme in self._extremes])
        bad = ~((low >= 0) & (high < torch.inf))  # NaN fails both comparisons
        if bool(bad.any()):
            call = int(bad.nonzero()[0, 0])
            low, high = low[call].item(), high[call].item()
            check.require_finite_non_negative(f"network.step's output at call {call}", low, high, kind="spikes")

    def decisions(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(exit_step, prediction, prediction_set)`` of every sample, in input order."""
        indices, samples, predictions, sets = zip(*self._exits, strict=True)
        index = torch.cat(indices)
        steps = index // self.stride
        numbers = index % self.stride if self.row_sample is None else torch.cat(samples)  # type: ignore[arg-type]
        prediction = torch.cat(predictions)
        order = numbers.to(prediction.device).argsort()
        return steps.to(prediction.device)[order], prediction[order], torch.cat(sets)[order]
