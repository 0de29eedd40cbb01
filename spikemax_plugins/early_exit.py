r"""Early exit: stop simulating a sample once its spike-count decision is confident.

A network trained to decide early (SpikeMax, especially :func:`~spikemax_plugins.spikemax_s`) wastes time steps
and synaptic operations if it is always simulated to the end. An :class:`ExitRule` says, step by step, when a
sample is decided:

* at checkpoint ``k`` (step ``t = checkpoints[k]``), class ``i`` is **admitted** iff ``score_i(t) >=
  thresholds[k]``, where the score is :func:`confidence` of the running counts;
* a sample that has not exited yet **exits** at the first checkpoint where the number of admitted classes is
  between 1 and ``max_set_size``, predicting the admitted class with the highest score (a tie between admitted
  classes: ``-1``, no decision);
* a sample that never exits is decided at step ``T - 1`` by :func:`~spikemax_plugins.predict` on the full counts
  (ties: ``-1``). A sample's **prediction set** is its admitted set at its exit checkpoint (at ``T - 1`` if it
  never exited).

The same rule object runs offline (:func:`evaluate` on a recording) and online (:meth:`ExitRule.start`, then
:meth:`ExitState.update` once per simulated step, or :func:`run`, which stops calling the network once every
sample of the batch has exited); :func:`evaluate` is literally the online path fed a recording, so the two give
identical results. :func:`calibrate` makes a rule from recorded spikes of a held-out calibration split:

* ``method="conformal"`` (SpikeCP, Chen, Park and Simeone 2023): per checkpoint, the threshold is the
  ``r``-th largest true-class score of the ``n`` calibration samples, ``r = ceil((1 - alpha / K) (n + 1))``, so
  that each checkpoint admits the true class with probability ``>= 1 - alpha / K``; by Bonferroni over the K
  checkpoints, the true class is in the prediction set at the stopping time with probability ``>= 1 - alpha``
  (for exchangeable calibration and test samples).
* ``method="accuracy"``: one threshold for every checkpoint, the one that minimises the mean exit step on the
  calibration set subject to early-exit accuracy ``>=`` full-window accuracy ``- alpha``.

Scores (:func:`confidence`): ``"probability"``, the spike-count probability of the running counts
``p_i(t) = (c_i(t) + smoothing) / sum_j (c_j(t) + smoothing)`` (scale-free, unlike a softmax of raw counts;
``1 / C`` for every class while all are silent with smoothing 0); ``"margin"``, the count lead
``c_i(t) - max_{j != i} c_j(t)`` (positive only for the unique leader).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor

from . import _validation as check
from ._counts import decision_dtype, group_population, running_counts, time_first
from .metrics import NO_DECISION, _argmax_or_no_decision

__all__ = [
    "SCORES",
    "METHODS",
    "confidence",
    "calibrate",
    "default_checkpoints",
    "evaluate",
    "run",
    "ExitRule",
    "ExitState",
    "ExitReport",
]

SCORES = ("probability", "margin")
"""The confidence scores of :func:`confidence`: the spike-count probability and the count margin."""
METHODS = ("conformal", "accuracy")
"""The calibration methods of :func:`calibrate`."""
# SpikeCP's own setting: few checkpoints keep the Bonferroni factor alpha / K usable on small calibration sets.
CONFORMAL_CHECKPOINTS = 4


# ---------------------------------------------------------------------------------------------------- scores


def _scores(counts: Tensor, score: str, smoothing: float) -> Tensor:
    """Per-class scores of counts ``[..., C]`` (float64 or the decision dtype) -> ``[..., C]``."""
    if score == "probability":
        shifted = counts + smoothing
        total = shifted.sum(-1, keepdim=True)
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
    """What an early-exit rule decided for a batch.

    Attributes:
        exit_step: int64 ``(B)``, the 0-based step at which each sample was decided.
        prediction: int64 ``(B)``, the predicted class (``-1``: no decision).
        prediction_set: bool ``(B, C)``, the admitted classes at the exit checkpoint (at ``T - 1`` if never
            exited).
        num_steps: T; ``steps_simulated``: how many steps a batch-synchronous runner needs, ``max(exit_step) + 1``
            (:func:`run` stops there).
        mean_exit_step: mean of ``exit_step``; ``exit_fraction``: mean of ``(exit_step + 1) / T``.
        accuracy, coverage: with a target, the share of correct predictions and of samples whose true class is
            in the prediction set; None without.
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


class ExitState:
    """The online side of an :class:`ExitRule`: running counts and decisions of one batch, fed step by step.

    ``done = state.update(step_spikes)`` with the output spikes of one step ``(B, N)``; ``state.exit_step``,
    ``state.prediction``, ``state.prediction_set`` and ``state.done`` (bool ``(B)``) are current after every
    update; after ``T`` updates every sample is done. With value checks on, each update checks its spikes (one
    host synchronisation); :func:`spikemax_plugins.set_value_checks` turns that off.
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
        self._thresholds = rule.thresholds.to(self.device, dtype)
        self._checkpoint_of_step = {step: index for index, step in enumerate(rule.checkpoints)}
        self._check_values = True

    def update(self, step_spikes: Tensor) -> Tensor:
        """Add one step's output spikes ``(B, N)``; decide at checkpoints. Returns ``done``, bool ``(B)``."""
        rule = self.rule
        if self.step >= rule.num_steps:
            raise RuntimeError(f"this state has already received all T = {rule.num_steps} steps of the rule")
        if not isinstance(step_spikes, Tensor):
            raise TypeError(f"step_spikes must be a torch.Tensor [B, N], got {type(step_spikes).__name__}")
        if not step_spikes.is_floating_point():
            raise TypeError(f"step_spikes must be a floating-point tensor [B, N], got dtype {step_spikes.dtype}")
        num_outputs = step_spikes.shape[-1] if step_spikes.dim() == 2 else 0
        if step_spikes.dim() != 2 or step_spikes.shape[0] != self.batch_size or num_outputs % rule.num_classes:
            raise ValueError(
                f"step_spikes must be [B, N] with B = {self.batch_size} and N a multiple of C = {rule.num_classes} "
                f"(the output spikes of one step), got shape {tuple(step_spikes.shape)}"
            )
        if step_spikes.device != self.device:
            raise ValueError(f"step_spikes is on {step_spikes.device} but the state is on {self.device}")
        if self._check_values and check.values_checkable(step_spikes):
            _check_spike_values(step_spikes, "step_spikes")
        self.counts = self.counts + group_population(step_spikes.to(self.counts.dtype), rule.num_classes)
        checkpoint = self._checkpoint_of_step.get(self.step)
        if checkpoint is not None:
            self._decide(checkpoint)
        self.step += 1
        return self.done

    def _decide(self, checkpoint: int) -> None:
        rule = self.rule
        scores = _scores(self.counts, rule.score, rule.smoothing)
        admitted = scores >= self._thresholds[checkpoint]
        set_size = admitted.sum(-1)
        exits = ~self.done & (set_size >= 1) & (set_size <= rule.max_set_size)
        prediction = _argmax_or_no_decision(torch.where(admitted, scores, -torch.inf))
        if self.step == rule.num_steps - 1:
            # Never exited: decided on the full counts, with the admitted set at T - 1 as its prediction set.
            undecided = ~self.done & ~exits
            prediction = torch.where(undecided, _argmax_or_no_decision(self.counts), prediction)
            exits = ~self.done
        self.exit_step = torch.where(exits, self.step, self.exit_step)
        self.prediction = torch.where(exits, prediction, self.prediction)
        self.prediction_set = torch.where(exits.unsqueeze(-1), admitted, self.prediction_set)
        self.done = self.done | exits

    def report(self, target: Tensor | None = None, *, steps_simulated: int | None = None) -> ExitReport:
        """The :class:`ExitReport` once every sample is done; with ``target`` ``(B)``, accuracy and coverage."""
        if not bool(self.done.all()):
            raise RuntimeError(
                f"not every sample has exited yet (step {self.step} of T = {self.rule.num_steps}); keep updating"
            )
        if target is not None:
            target = _check_exit_target(target, self.batch_size, self.rule.num_classes, self.device)
        statistics = _report_statistics(self.exit_step, self.prediction, self.prediction_set, target, self.rule)
        return ExitReport(
            exit_step=self.exit_step,
            prediction=self.prediction,
            prediction_set=self.prediction_set,
            num_steps=self.rule.num_steps,
            steps_simulated=int(self.exit_step.max().item()) + 1 if steps_simulated is None else steps_simulated,
            mean_exit_step=statistics["exit_step_sum"] / self.batch_size,
            exit_fraction=statistics["exit_fraction_sum"] / self.batch_size,
            accuracy=None if target is None else statistics["correct"] / self.batch_size,
            coverage=None if target is None else statistics["covered"] / self.batch_size,
        )


def _check_exit_target(target: object, batch_size: int, num_classes: int, device: torch.device) -> Tensor:
    if not check.is_index_tensor(target):
        kind = f"a tensor of dtype {target.dtype}" if isinstance(target, Tensor) else type(target).__name__
        raise TypeError(f"target must be an integer tensor of class indices [B], got {kind}")
    if target.shape != (batch_size,):
        raise ValueError(f"target must be [B] = [{batch_size}], got shape {tuple(target.shape)}")
    if target.device != device:
        raise ValueError(f"target is on {target.device} but the spikes are on {device}")
    target = target.long()
    if check.values_checkable(target):
        low, high = check._read([*torch.aminmax(target)])
        if low < 0 or high >= num_classes:
            raise ValueError(f"target class indices must be in [0, {num_classes - 1}], got values in "
                             f"[{int(low)}, {int(high)}]")
    return target


def _report_statistics(
    exit_step: Tensor, prediction: Tensor, prediction_set: Tensor, target: Tensor | None, rule: ExitRule
) -> dict[str, float]:
    """Sums over the batch (shared by :class:`ExitReport` and :class:`EarlyExitMetric`)."""
    sums = _report_sums(exit_step, prediction, prediction_set, target, rule.num_steps)
    values = check._read(list(sums.values()))
    return dict(zip(sums, values, strict=True))


def _report_sums(
    exit_step: Tensor, prediction: Tensor, prediction_set: Tensor, target: Tensor | None, num_steps: int
) -> dict[str, Tensor]:
    sums = {
        "exit_step_sum": exit_step.sum(),
        "exit_fraction_sum": ((exit_step + 1).to(torch.float64) / num_steps).sum(),
        "set_size_sum": prediction_set.sum(),
    }
    if target is not None:
        sums["correct"] = (prediction == target).sum()
        sums["covered"] = prediction_set.gather(1, target.unsqueeze(1)).sum()
    return sums


# ------------------------------------------------------------------------------------------------- offline


def _check_rule_spikes(rule: ExitRule, spikes: Tensor, time_dim: int) -> Tensor:
    """Validate a recording against a rule; returns the ``[T, B, N]`` view."""
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule, got {type(rule).__name__}")
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
        state._check_values = False  # the whole recording was checked above, in one synchronisation
        for step in steps:
            state.update(step)
        return state.report(target)


def run(
    step_fn: Callable[[Any], Tensor],
    inputs: Tensor | Sequence[Any],
    rule: ExitRule,
    *,
    target: Tensor | None = None,
    time_dim: int = 0,
) -> ExitReport:
    """Simulate step by step and stop once every sample of the batch has exited.

    Calls ``step_fn(inputs[t])`` for ``t = 0, 1, ...`` (``inputs`` is a tensor with time at ``time_dim``, or a
    sequence of per-step inputs); ``step_fn`` returns the output spikes of that step, ``(B, N)``. Samples that
    exited earlier keep being simulated until the last one exits (the batch steps together), but their later
    outputs are ignored. ``report.steps_simulated`` says how many steps ran. Runs under ``torch.no_grad()``;
    checking whether every sample is done costs one host synchronisation per step. The adapters wrap this for
    snnTorch (``spikemax_snntorch.run_early_exit``) and Norse (``spikemax_norse.run_early_exit``).
    """
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule, got {type(rule).__name__}")
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
    with torch.no_grad():
        for step in range(rule.num_steps):
            output = step_fn(per_step[step])
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"step_fn must return the output spikes of one step as a tensor [B, N], got {type(output).__name__}"
                )
            _check_step_output(output, step, rule, None if state is None else state.batch_size)
            if state is None:
                state = rule.start(output.shape[0], device=output.device)
            if bool(state.update(output).all()):
                break
        assert state is not None
        return state.report(target, steps_simulated=state.step)


# ------------------------------------------------------------------------------------------------ calibrate


def _exact(alpha: float) -> Fraction:
    # alpha as the decimal it prints as (0.1 is 1/10), so that ceil((1 - alpha / K) (n + 1)) is what it reads as.
    return Fraction(repr(alpha))


def _conformal_rank(alpha: float, num_checkpoints: int, calibration_size: int) -> int:
    """``r = ceil((1 - alpha / K) (n + 1))``: the threshold is the r-th largest true-class score."""
    return math.ceil((1 - _exact(alpha) / num_checkpoints) * (calibration_size + 1))


def calibrate(
    spikes: Tensor,
    target: Tensor,
    *,
    method: str,
    alpha: float,
    score: str = "probability",
    checkpoints: Sequence[int] | None = None,
    max_set_size: int = 1,
    smoothing: float = 1.0,
    num_classes: int | None = None,
    time_dim: int = 0,
) -> ExitRule:
    """An :class:`ExitRule` from recorded spikes of a held-out calibration split (never the test split).

    Args:
        spikes: the network's output spikes on the calibration samples.
        target: their classes.
        method: ``"conformal"`` (``alpha``: allowed miscoverage, ``0 < alpha < 1``) or ``"accuracy"``
            (``alpha``: tolerated accuracy loss against the full window, ``0 <= alpha < 1``). See the module
            docstring. ``alpha`` is read as the decimal it prints as (``0.1`` is exactly one tenth).
        score, smoothing: the :func:`confidence` score.
        checkpoints: steps at which samples may exit, strictly increasing in ``[0, T - 1]``; ``T - 1`` is added
            if missing. Default :func:`default_checkpoints` (every step for "accuracy", 4 evenly spaced steps
            for "conformal", so that ``alpha / K`` stays usable).
        max_set_size: exit once 1 to this many classes are admitted.

    The "conformal" thresholds need ``n >= K / alpha - 1`` calibration samples (``r <= n``); with fewer, no
    finite threshold has the guarantee and a ``ValueError`` says how many are needed. The "accuracy" method
    evaluates every threshold at which the exit pattern of the calibration set changes (each sample's top score
    at each checkpoint, and just above its ``(max_set_size + 1)``-th score) and keeps the one with the smallest
    mean exit step among those whose accuracy is ``>=`` the full-window accuracy ``- alpha``; ties go to the
    larger threshold. ``+inf`` (no early exit) is always feasible.

    Shape:
        - spikes: ``(T, B, N)``, or another layout with ``time_dim``
        - target: ``(B)`` integer class indices
    """
    alpha = _check_alpha(alpha, check.check_choice(method, "method", METHODS))
    score, smoothing = _check_score_options(score, smoothing)
    time_dim = check.check_time_dim(time_dim)
    num_steps, batch_size, num_outputs = _calibration_shape(spikes, time_dim)
    classes = check.resolve_num_classes(num_outputs, check.check_num_classes(num_classes))
    target = check.check_target(target, spikes, batch_size, classes, time_dim, allow_soft=False)
    _require_values(spikes, "spikes")
    max_set_size = check.check_int(max_set_size, "max_set_size", minimum=1, maximum=classes, why=" (C, the classes)")
    if checkpoints is None:
        steps = default_checkpoints(num_steps, method)
    else:
        steps = _check_checkpoints(checkpoints, num_steps)
    if steps[-1] != num_steps - 1:
        steps = [*steps, num_steps - 1]
    counts = running_counts(spikes, classes, time_dim, decision_dtype(spikes.device))
    if check.values_checkable(spikes, target):
        _check_spike_values(spikes)
        check.check_values(counts[-1], target, classes)
    with torch.no_grad():
        scores = _scores(counts[steps], score, smoothing)  # [K, B, C]
        if method == "conformal":
            thresholds = _conformal_thresholds(scores, target, alpha, batch_size)
        else:
            threshold = _accuracy_threshold(scores, counts[-1], target, alpha, max_set_size, steps)
            thresholds = torch.full((len(steps),), threshold, dtype=torch.float64)
    return ExitRule(
        checkpoints=steps,
        thresholds=thresholds,
        max_set_size=max_set_size,
        score=score,
        smoothing=smoothing,
        num_classes=classes,
        num_steps=num_steps,
        method=method,
        alpha=alpha,
        calibration_size=batch_size,
    )


def _check_step_output(output: Tensor, step: int, rule: ExitRule, batch_size: int | None) -> None:
    """What ``step_fn`` returned at ``step``: the floating-point output spikes ``[B, N]`` of one step."""
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
    if batch_size is not None and output.shape[0] != batch_size:
        raise ValueError(
            f"step_fn returned B = {output.shape[0]} samples at step {step} but B = {batch_size} before: the batch "
            "must stay the same through the steps"
        )
    _require_values(output, f"step_fn's output at step {step}")


def _calibration_shape(spikes: object, time_dim: int) -> tuple[int, int, int]:
    if isinstance(spikes, Tensor) and spikes.dim() == 3:
        batch_dim = [dim for dim in range(3) if dim != time_dim][0]
        if spikes.shape[batch_dim] == 0:
            raise ValueError(f"the calibration set is empty: spikes has B = 0 samples (shape {tuple(spikes.shape)})")
    return check.check_spikes(spikes, time_dim)


def _conformal_thresholds(scores: Tensor, target: Tensor, alpha: float, calibration_size: int) -> Tensor:
    num_checkpoints = scores.shape[0]
    rank = _conformal_rank(alpha, num_checkpoints, calibration_size)
    if rank > calibration_size:
        needed = math.ceil(num_checkpoints / _exact(alpha) - 1)
        raise ValueError(
            f"the calibration set of n = {calibration_size} samples is too small for alpha = {alpha} over K = "
            f"{num_checkpoints} checkpoints: the conformal threshold is the r-th largest true-class score with "
            f"r = ceil((1 - alpha / K)(n + 1)) = {rank} > n, so no rule could ever exit; use n >= {needed} "
            f"calibration samples, a larger alpha, or fewer checkpoints"
        )
    true_scores = scores.gather(2, target.view(1, -1, 1).expand(num_checkpoints, -1, 1)).squeeze(2)  # [K, B]
    return true_scores.sort(dim=1, descending=True).values[:, rank - 1].to("cpu", torch.float64)


def _accuracy_threshold(
    scores: Tensor,
    final_counts: Tensor,
    target: Tensor,
    alpha: float,
    max_set_size: int,
    checkpoints: list[int],
) -> float:
    """The shared threshold of the "accuracy" method (see :func:`calibrate`); scores ``[K, B, C]``."""
    num_checkpoints, calibration_size, num_classes = scores.shape
    ordered = scores.sort(dim=-1, descending=True).values
    highest = ordered[..., 0]  # [K, B]: a sample exits at a threshold <= its top score ...
    # ... and > its (max_set_size + 1)-th score (at most max_set_size classes admitted); no limit when C is.
    limit = ordered[..., max_set_size] if max_set_size < num_classes else torch.full_like(highest, -torch.inf)
    # The exit prediction at a checkpoint is the top class (ties: -1) whatever the threshold; a sample that
    # never exits (row K) is predicted from the full counts, which need not tie where the last scores do
    # (rounding: counts 0.1 + 0.2 and 0.3 give equal probabilities), so exiting at T - 1 is a row of its own.
    predictions = torch.cat([_argmax_or_no_decision(scores), _argmax_or_no_decision(final_counts).unsqueeze(0)])
    correct = (predictions == target).to(torch.int64)  # [K + 1, B]
    # Accuracy counts are integers: correct >= full - alpha * n  <=>  correct >= ceil(full - alpha * n).
    least_correct = math.ceil(int(correct[-1].sum().item()) - _exact(alpha) * calibration_size)
    candidates = [highest.flatten()]
    if max_set_size < num_classes:
        candidates.append(torch.nextafter(limit.flatten(), torch.full_like(limit.flatten(), torch.inf)))
    values = torch.cat(candidates)
    values = torch.unique(values[torch.isfinite(values)]).flip(0)  # descending: a tie keeps the larger threshold
    steps = torch.tensor([*checkpoints, checkpoints[-1]], device=scores.device)  # row K: decided at T - 1
    best_threshold, best_step_sum = math.inf, int(steps[-1].item()) * calibration_size
    for chunk in values.split(256):
        threshold = chunk.view(-1, 1, 1)
        exits = (highest >= threshold) & (limit < threshold)  # [L, K, B]
        first = torch.where(exits, torch.arange(num_checkpoints, device=scores.device).view(1, -1, 1), num_checkpoints)
        first = first.amin(1)  # [L, B]: the exit checkpoint of each sample, K if it never exits
        feasible = correct.gather(0, first).sum(-1) >= least_correct
        step_sums = torch.where(feasible, steps[first].sum(-1), torch.iinfo(torch.int64).max)
        position = int(step_sums.argmin().item())  # argmin returns the first minimum: the larger threshold
        if int(step_sums[position].item()) < best_step_sum:
            best_threshold, best_step_sum = float(chunk[position].item()), int(step_sums[position].item())
    return best_threshold
