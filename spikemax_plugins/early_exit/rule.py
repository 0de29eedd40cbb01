"""The early-exit rule and its semantics: scores, :class:`ExitRule`, the per-row decision, the online state.

Every runner decides through :func:`decide_rows`: :class:`ExitState` (one batch, every row at the same step),
and through it :func:`~spikemax_plugins.early_exit.evaluate` and :func:`~spikemax_plugins.early_exit.run`, and
:func:`~spikemax_plugins.early_exit.stream` (every row at its own step). One rule, one code path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import _validation as check
from .._counts import decision_dtype, group_population, running_counts
from .._decisions import NO_DECISION, argmax_or_no_decision, checked_exit_target, exit_report_sums

SCORES = ("probability", "margin")
"""The confidence scores of :func:`confidence`: the spike-count probability and the count margin."""
METHODS = ("conformal", "accuracy")
"""The calibration methods of :func:`~spikemax_plugins.early_exit.calibrate`."""
CONFORMAL_CHECKPOINTS = 4
"""The number of checkpoints of a "conformal" rule by default (SpikeCP's own setting: few checkpoints keep the
Bonferroni factor alpha / K usable on small calibration sets)."""


# ---------------------------------------------------------------------------------------------------- scores


def _scores(counts: Tensor, score: str, smoothing: float) -> Tensor:
    """Per-class scores of counts ``[..., C]`` (float64 or the decision dtype) -> ``[..., C]``."""
    if score == "probability":
        shifted = counts + smoothing
        total = shifted.sum(-1, keepdim=True)
        if smoothing > 0:
            return shifted / total  # total > 0: counts are >= 0
        # All classes silent with smoothing 0: the limit of smoothing -> 0 is the uniform distribution.
        return torch.where(total > 0, shifted / total, 1 / counts.shape[-1])
    top_two = counts.topk(2, dim=-1).values
    best, second = top_two[..., :1], top_two[..., 1:]
    return counts - torch.where(counts == best, second, best)


def _check_score_options(score: object, smoothing: object) -> tuple[str, float]:
    return check.check_choice(score, "score", SCORES), check.check_smoothing(smoothing)


def confidence(
    spikes: Tensor,
    *,
    score: str = "probability",
    smoothing: float = 1.0,
    num_classes: int | None = None,
    time_dim: int = 0,
) -> Tensor:
    """The per-class score of the running counts at every step (see the module docstring).

    ``score="probability"``: ``p_i(t) = (c_i(t) + smoothing) / sum_j (c_j(t) + smoothing)``, in ``[0, 1]``,
    summing to 1 over classes. ``score="margin"``: ``c_i(t) - max_{j != i} c_j(t)``, the count lead (``> 0`` only
    for a unique leader, ``0`` for tied leaders). ``c(t)`` counts steps ``0..t`` (float64).

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``; ``N = C`` or ``N = k * C``
        - output: ``(T, B, C)`` float64 (float32 on devices without float64), in the layout of ``spikes``
          (time at ``time_dim``)
    """
    score, smoothing = _check_score_options(score, smoothing)
    time_dim = check.check_time_dim(time_dim)
    counts = _validated_running_counts(spikes, check.check_num_classes(num_classes), time_dim)
    scores = _scores(counts, score, smoothing)
    return scores if time_dim == 0 else scores.movedim(0, time_dim)


def _validated_running_counts(spikes: Tensor, num_classes: int | None, time_dim: int) -> Tensor:
    _, _, num_outputs = check.check_spikes(spikes, time_dim)
    classes = check.resolve_num_classes(num_outputs, num_classes)
    counts = running_counts(spikes, classes, time_dim, decision_dtype(spikes.device))
    if check.values_checkable(spikes):
        _check_spike_values(spikes)
    return counts


def _require_values(tensor: Tensor, what: str) -> None:
    """Early exit decides from values: a meta tensor (shapes only) cannot be decided on."""
    if tensor.is_meta:
        raise ValueError(
            f"{what} is a meta tensor: early exit decides from spike values, which a meta tensor does not have "
            "(the losses and metrics accept meta tensors; early exit does not)"
        )


def _check_spike_values(spikes: Tensor, what: str = "spikes") -> None:
    # Running counts hide a negative spike that earlier spikes outweigh; decisions read every step, so check
    # the spikes themselves (one pass, one synchronisation).
    check.check_finite_non_negative(spikes, what, kind="spikes")


# ------------------------------------------------------------------------------------------------ the rule


def default_checkpoints(num_steps: int, method: str) -> list[int]:
    """Every step for ``"accuracy"``; ``min(T, 4)`` evenly spaced steps ending at ``T - 1`` for ``"conformal"``."""
    num_steps = check.check_int(num_steps, "num_steps", minimum=1)
    check.check_choice(method, "method", METHODS)
    if method == "accuracy":
        return list(range(num_steps))
    count = min(num_steps, CONFORMAL_CHECKPOINTS)
    return [math.ceil(num_steps * (k + 1) / count) - 1 for k in range(count)]


def _check_checkpoints(checkpoints: object, num_steps: int) -> list[int]:
    if isinstance(checkpoints, (str, bytes, Tensor)) or not isinstance(checkpoints, Sequence):
        raise TypeError(f"checkpoints must be a sequence of int steps, got {type(checkpoints).__name__}")
    steps = list(checkpoints)
    if not steps:
        raise ValueError("checkpoints must hold at least one step, got an empty sequence")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"checkpoints must hold ints, got {step!r} ({type(step).__name__})")
    if any(step < 0 or step > num_steps - 1 for step in steps):
        raise ValueError(f"checkpoints must lie in [0, T - 1] = [0, {num_steps - 1}], got {steps}")
    if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"checkpoints must be strictly increasing, got {steps}")
    return steps


def _check_alpha(alpha: object, method: str | None) -> float:
    """``alpha`` in (0, 1) for "conformal" (allowed miscoverage), in [0, 1) otherwise (tolerated accuracy loss)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    if method == "conformal" and not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) for method='conformal' (the allowed miscoverage), got {alpha!r}")
    if method != "conformal" and not 0 <= alpha < 1:
        raise ValueError(
            f"alpha must be in [0, 1) for method='accuracy' (the tolerated accuracy loss), got {alpha!r}"
        )
    return float(alpha)


def _format_threshold(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _parse_threshold(value: object) -> float:
    if value in ("inf", "-inf"):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"thresholds must hold numbers or 'inf' / '-inf', got {value!r}")
    return float(value)


@dataclass(eq=False)
class ExitRule:
    """A calibrated early-exit rule (semantics in the module docstring: admitted classes, exit, prediction).

    Attributes:
        checkpoints: the 0-based steps at which a sample may exit, strictly increasing; the last is ``T - 1``.
        thresholds: float64 ``(K)``, one per checkpoint; a class is admitted iff its score is ``>=`` it.
        max_set_size: a sample exits when 1 to ``max_set_size`` classes are admitted.
        score, smoothing: the :func:`confidence` score.
        num_classes: C; ``num_steps``: T, the length the rule was made for.
        method, alpha, calibration_size: how the rule was calibrated (None for a hand-made rule).

    Serialise with :meth:`to_dict` (JSON-safe) and :meth:`from_dict`, so that a rule calibrated once ships with
    the model.
    """

    checkpoints: list[int]
    thresholds: Tensor
    max_set_size: int
    score: str
    smoothing: float
    num_classes: int
    num_steps: int
    method: str | None = None
    alpha: float | None = None
    calibration_size: int | None = None

    def __post_init__(self) -> None:
        self.num_steps = check.check_int(self.num_steps, "num_steps", minimum=1)
        self.num_classes = check.check_int(self.num_classes, "num_classes", minimum=2)
        self.checkpoints = _check_checkpoints(self.checkpoints, self.num_steps)
        if self.checkpoints[-1] != self.num_steps - 1:
            raise ValueError(
                f"the last checkpoint must be the last step T - 1 = {self.num_steps - 1}, got {self.checkpoints}"
            )
        self.score, self.smoothing = _check_score_options(self.score, self.smoothing)
        self.max_set_size = check.check_int(
            self.max_set_size, "max_set_size", minimum=1, maximum=self.num_classes, why=" (C, the classes)"
        )
        if not isinstance(self.thresholds, Tensor):
            try:
                values = list(self.thresholds)
            except TypeError:
                raise TypeError(
                    f"thresholds must be a tensor or a sequence of numbers [K], got {type(self.thresholds).__name__}"
                ) from None
            self.thresholds = torch.tensor([_parse_threshold(value) for value in values], dtype=torch.float64)
        if self.thresholds.shape != (len(self.checkpoints),):
            raise ValueError(
                f"thresholds must be [K] = [{len(self.checkpoints)}] (one per checkpoint), got shape "
                f"{tuple(self.thresholds.shape)}"
            )
        self.thresholds = self.thresholds.detach().to("cpu", torch.float64)
        if torch.isnan(self.thresholds).any():
            raise ValueError(f"thresholds must not be NaN, got {self.thresholds.tolist()}")
        if self.method is not None:
            check.check_choice(self.method, "method", METHODS)
        if self.alpha is not None:
            self.alpha = _check_alpha(self.alpha, self.method)
        if self.calibration_size is not None:
            self.calibration_size = check.check_int(self.calibration_size, "calibration_size", minimum=1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (infinite thresholds as the strings ``"inf"`` / ``"-inf"``)."""
        return {
            "checkpoints": list(self.checkpoints),
            "thresholds": [_format_threshold(value) for value in self.thresholds.tolist()],
            "max_set_size": self.max_set_size,
            "score": self.score,
            "smoothing": self.smoothing,
            "num_classes": self.num_classes,
            "num_steps": self.num_steps,
            "method": self.method,
            "alpha": self.alpha,
            "calibration_size": self.calibration_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExitRule:
        """The rule :meth:`to_dict` wrote; every field is validated again."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict written by ExitRule.to_dict, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"data has keys ExitRule does not know: {unknown}")
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExitRule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def start(self, batch_size: int, *, device: torch.device | str | None = None) -> ExitState:
        """A fresh streaming state for ``batch_size`` samples; feed it one step at a time with ``update``."""
        return ExitState(self, batch_size, device=device)


@dataclass
class ExitReport:
    """What an early-exit rule decided, one entry per sample (in input order).

    Attributes:
        exit_step: int64 ``(B)``, the 0-based step at which each sample was decided.
        prediction: int64 ``(B)``, the predicted class (``-1``: no decision).
        prediction_set: bool ``(B, C)``, the admitted classes at the exit checkpoint (at ``T - 1`` if never
            exited).
        num_steps: T.
        steps_simulated: how many times the network was called: for
            :func:`~spikemax_plugins.early_exit.evaluate`, ``max(exit_step) + 1`` (the batch steps until its last
            sample exits); for :func:`~spikemax_plugins.early_exit.run`, the same with ``decide_every=1`` and up
            to one decision block more by default; for :func:`~spikemax_plugins.early_exit.stream`, the engine's
            calls.
        mean_exit_step: mean of ``exit_step``; ``exit_fraction``: mean of ``(exit_step + 1) / T``.
        accuracy, coverage: with a target, the share of correct predictions and of samples whose true class is
            in the prediction set; None without.
        sample_steps_simulated: the (sample, step) pairs the network simulated, summed over its calls (rows per
            call); the full window costs ``B * T`` of them. ``B * steps_simulated`` for a batch-synchronous
            runner, ``sum(exit_step + 1)`` for :func:`~spikemax_plugins.early_exit.stream`.
    """

    exit_step: Tensor
    prediction: Tensor
    prediction_set: Tensor
    num_steps: int
    steps_simulated: int
    mean_exit_step: float
    exit_fraction: float
    accuracy: float | None = None
    coverage: float | None = None
    sample_steps_simulated: int | None = None


def make_report(
    rule: ExitRule,
    exit_step: Tensor,
    prediction: Tensor,
    prediction_set: Tensor,
    target: Tensor | None,
    *,
    steps_simulated: int | None = None,
    sample_steps_simulated: int | None = None,
) -> ExitReport:
    """The :class:`ExitReport` of finished decisions ``(B)``; with ``target`` ``(B)``, accuracy and coverage."""
    batch_size = exit_step.shape[0]
    if target is not None:
        target = checked_exit_target(target, batch_size, rule.num_classes, exit_step.device)
    sums = exit_report_sums(exit_step, prediction, prediction_set, target, rule.num_steps)
    statistics = dict(zip(sums, check._read(list(sums.values())), strict=True))
    if steps_simulated is None:
        steps_simulated = int(exit_step.max().item()) + 1
    if sample_steps_simulated is None:
        sample_steps_simulated = batch_size * steps_simulated
    return ExitReport(
        exit_step=exit_step,
        prediction=prediction,
        prediction_set=prediction_set,
        num_steps=rule.num_steps,
        steps_simulated=steps_simulated,
        mean_exit_step=statistics["exit_step_sum"] / batch_size,
        exit_fraction=statistics["exit_fraction_sum"] / batch_size,
        accuracy=None if target is None else statistics["correct"] / batch_size,
        coverage=None if target is None else statistics["covered"] / batch_size,
        sample_steps_simulated=sample_steps_simulated,
    )


# ------------------------------------------------------------------------------------------- the decision


def decide_rows(
    rule: ExitRule,
    counts: Tensor,
    thresholds: Tensor | float,
    at_checkpoint: Tensor | None,
    at_last_step: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The rule's decision for rows that have not exited yet, each at its own step.

    ``S`` stands for any leading shape: the rows of :func:`~spikemax_plugins.early_exit.stream` or of a batch,
    ``(B)``. The other arguments broadcast against it.

    Args:
        counts: ``(*S, C)`` running counts of each row up to and including its current step (decision dtype).
        thresholds: ``(*S, 1)`` (or broadcastable to it), or one number (a float, or a scalar tensor) when every
            row has the same threshold: the threshold of each row's step (any value where the step is no
            checkpoint).
        at_checkpoint: bool, broadcastable to ``S``: whether each row's step is a checkpoint; None when every
            row's is (the caller knows it on the host: no operation spent on it).
        at_last_step: bool, broadcastable to ``S``: whether each row's step is ``T - 1``; None when no row's is.

    Returns:
        ``exits`` bool ``S`` (the row is decided now), ``prediction`` int64 ``S`` and ``admitted`` bool
        ``(*S, C)`` (the row's prediction set, where it exits).
    """
    scores = _scores(counts, rule.score, rule.smoothing)
    admitted = scores >= thresholds
    set_size = admitted.sum(-1)
    if rule.max_set_size == 1:
        # One class admitted: every other score is below the threshold, so that class is the unique top score
        # (the general branch below, in fewer operations: this runs at every step).
        exits = set_size == 1
        prediction = scores.argmax(-1)
    else:
        exits = (set_size >= 1) & (set_size <= rule.max_set_size)
        prediction = argmax_or_no_decision(torch.where(admitted, scores, -torch.inf))
    if at_checkpoint is not None:
        exits = exits & at_checkpoint
    if at_last_step is None:
        return exits, prediction, admitted
    at_last_step = at_last_step & ~exits
    return exits | at_last_step, _decided_at_last_step(counts, prediction, at_last_step), admitted


def _decided_at_last_step(counts: Tensor, prediction: Tensor, undecided: Tensor) -> Tensor:
    """The prediction of rows that reach ``T - 1`` without exiting (``undecided``, bool ``S``): the unique top
    class of their full counts ``(*S, C)``, or no decision; their prediction set is the admitted set at ``T - 1``.
    Elsewhere ``prediction`` ``S`` stays."""
    return torch.where(undecided, argmax_or_no_decision(counts), prediction)


def step_counts(step_spikes: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """What one step adds to the running counts: ``(S, N)`` spikes -> ``(S, C)``, exact in ``dtype``.

    With ``N = C`` the spikes themselves (adding them to float64 counts promotes them exactly, no copy made);
    with ``N = k * C`` the group sums, taken in ``dtype`` so that no float32 rounding enters them.
    """
    if step_spikes.shape[-1] == num_classes:
        return step_spikes
    return group_population(step_spikes.to(dtype), num_classes)


def thresholds_by_step(rule: ExitRule, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(thresholds [T], is_checkpoint bool [T])`` on ``device``: each step's threshold (+inf off checkpoints)."""
    dtype = decision_dtype(device)
    thresholds = torch.full((rule.num_steps,), torch.inf, dtype=dtype, device=device)
    is_checkpoint = torch.zeros(rule.num_steps, dtype=torch.bool, device=device)
    steps = torch.tensor(rule.checkpoints, device=device)
    thresholds[steps] = rule.thresholds.to(device, dtype)
    is_checkpoint[steps] = True
    return thresholds, is_checkpoint


def check_step_spikes(
    step_spikes: object, rows: int, rule: ExitRule, device: torch.device | None, what: str
) -> Tensor:
    """One step's output spikes: a floating-point ``[rows, N]`` tensor on ``device``, ``N`` a multiple of C."""
    if not isinstance(step_spikes, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor [B, N], got {type(step_spikes).__name__}")
    if not step_spikes.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor [B, N], got dtype {step_spikes.dtype}")
    num_outputs = step_spikes.shape[-1] if step_spikes.dim() == 2 else 0
    if step_spikes.dim() != 2 or step_spikes.shape[0] != rows or num_outputs % rule.num_classes:
        raise ValueError(
            f"{what} must be [B, N] with B = {rows} and N a multiple of C = {rule.num_classes} (the output spikes "
            f"of one step), got shape {tuple(step_spikes.shape)}"
        )
    if step_spikes.device != device:
        raise ValueError(f"{what} is on {step_spikes.device} but the state is on {device}")
    _require_values(step_spikes, what)
    return step_spikes


class ExitState:
    """The online side of an :class:`ExitRule`: running counts and decisions of one batch, fed step by step.

    ``done = state.update(step_spikes)`` with the output spikes of one step ``(B, N)``; ``state.exit_step``,
    ``state.prediction``, ``state.prediction_set`` and ``state.done`` (bool ``(B)``) are current after every
    update; after ``T`` updates every sample is done. With value checks on, each update checks its spikes (one
    host synchronisation); :func:`spikemax_plugins.set_value_checks` turns that off. :meth:`advance_steps`
    takes several steps at once, deciding them in one vectorised pass (the runners use it).
    """

    def __init__(self, rule: ExitRule, batch_size: int, *, device: torch.device | str | None = None) -> None:
        if not isinstance(rule, ExitRule):
            raise TypeError(f"rule must be an ExitRule, got {type(rule).__name__}")
        self.rule = rule
        self.batch_size = check.check_int(batch_size, "batch_size", minimum=1)
        self.device = torch.device("cpu" if device is None else device)
        dtype = decision_dtype(self.device)
        self.step = 0
        self.counts = torch.zeros(batch_size, rule.num_classes, dtype=dtype, device=self.device)
        self.exit_step = torch.full((batch_size,), NO_DECISION, dtype=torch.int64, device=self.device)
        self.prediction = torch.full((batch_size,), NO_DECISION, dtype=torch.int64, device=self.device)
        self.prediction_set = torch.zeros(batch_size, rule.num_classes, dtype=torch.bool, device=self.device)
        self.done = torch.zeros(batch_size, dtype=torch.bool, device=self.device)
        self._thresholds, _ = thresholds_by_step(rule, self.device)  # [T], +inf off checkpoints
        self._checkpoints = set(rule.checkpoints)

    def update(self, step_spikes: Tensor) -> Tensor:
        """Add one step's output spikes ``(B, N)``; decide at checkpoints. Returns ``done``, bool ``(B)``."""
        if self.step >= self.rule.num_steps:
            raise RuntimeError(f"this state has already received all T = {self.rule.num_steps} steps of the rule")
        check_step_spikes(step_spikes, self.batch_size, self.rule, self.device, "step_spikes")
        if check.values_checkable(step_spikes):
            _check_spike_values(step_spikes, "step_spikes")
        return self.advance(step_spikes)

    def advance(self, step_spikes: Tensor) -> Tensor:
        """:meth:`update` for spikes its caller has checked already: one step ``(B, N)``."""
        return self.advance_steps(step_spikes.unsqueeze(0))

    def advance_steps(self, steps: Tensor) -> Tensor:
        """The next ``K`` steps at once, ``(K, B, N)``, checked by the caller: the decisions ``K`` calls of
        :meth:`advance` make, with the rule applied to all ``K`` steps in one pass. Returns ``done``, bool ``(B)``.
        """
        rule, first, count = self.rule, self.step, steps.shape[0]
        if first + count > rule.num_steps:
            raise RuntimeError(f"{count} more steps would pass the rule's T = {rule.num_steps} (at step {first})")
        # Running counts at each step, added one step at a time: the same float64 sums, in the same order, as
        # every other runner (a cumulative sum may associate differently on an accelerator).
        per_step = []
        counts = self.counts
        for step_spikes in steps.detach().unbind(0):  # decisions take no gradient
            counts = counts + step_counts(step_spikes, rule.num_classes, counts.dtype)
            per_step.append(counts)
        self.counts = counts
        self.step = first + count
        at_checkpoints = [step in self._checkpoints for step in range(first, first + count)]
        if not any(at_checkpoints):
            return self.done
        reaches_last_step = first + count == rule.num_steps
        if count == 1:
            exits, prediction, admitted = decide_rows(rule, counts, self._thresholds[first], None, None)
            exits = exits & ~self.done
            undecided = ~exits & ~self.done if reaches_last_step else None
            exit_step: Tensor | int = first
        else:
            # Every step of the block decided at once: counts (K, B, C); off checkpoints the threshold is +inf and
            # at_checkpoint False, so no sample exits there.
            at_checkpoint = None if all(at_checkpoints) else torch.tensor(at_checkpoints, device=self.device)[:, None]
            thresholds = self._thresholds[first:first + count].view(count, 1, 1)
            exits, prediction, admitted = decide_rows(rule, torch.stack(per_step), thresholds, at_checkpoint, None)
            exits = exits & ~self.done  # (K, B)
            # Each sample's first exit: max over K returns the index of the first maximum (and in one pass
            # whether there is any, cheaper than argmax and any).
            exited, first_exit = exits.to(torch.uint8).max(0)  # (B), (B)
            exits = exited.bool()
            undecided = ~exits & ~self.done if reaches_last_step else None
            if undecided is not None:  # decided at T - 1, the block's last step
                first_exit = torch.where(undecided, count - 1, first_exit)
            prediction = prediction.gather(0, first_exit.unsqueeze(0)).squeeze(0)
            admitted = admitted.gather(0, first_exit.view(1, -1, 1).expand(1, -1, rule.num_classes)).squeeze(0)
            exit_step = first_exit + first
        if undecided is not None:
            # Not exited by T - 1: decided on the (B, C) counts at T - 1 (the rule's fallback), with the admitted
            # set at T - 1 as the prediction set.
            exits = exits | undecided
            prediction = _decided_at_last_step(counts, prediction, undecided)
        self.exit_step = torch.where(exits, exit_step, self.exit_step)
        self.prediction = torch.where(exits, prediction, self.prediction)
        self.prediction_set = torch.where(exits.unsqueeze(-1), admitted, self.prediction_set)
        self.done = self.done | exits
        return self.done

    def report(self, target: Tensor | None = None, *, steps_simulated: int | None = None) -> ExitReport:
        """The :class:`ExitReport` once every sample is done; with ``target`` ``(B)``, accuracy and coverage."""
        if not bool(self.done.all()):
            raise RuntimeError(
                f"not every sample has exited yet (step {self.step} of T = {self.rule.num_steps}); keep updating"
            )
        return make_report(
            self.rule, self.exit_step, self.prediction, self.prediction_set, target, steps_simulated=steps_simulated
        )
